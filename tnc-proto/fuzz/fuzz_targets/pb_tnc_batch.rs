//! PB-TNC (RFC 5793): the batch codec and the Posture Broker state machine.
//!
//! Input layout: one selector byte, then the batch. Bit 0 of the selector picks the
//! receiving side (0: server, 1: client); the other bits pick a script of valid
//! exchanges that brings the session into a state before the batch is received.
//!
//! Properties:
//! - an accepted batch re-encodes to the input, except for reserved bits (ignored
//!   on receipt, sent as zero), and the re-encoding decodes to the same batch;
//! - every error offset lies within the batch;
//! - a valid script of sends is accepted by both sides;
//! - `receive` moves the state as the §3.2 table says; on a violation the session
//!   ends and the answer is a CLOSE batch with exactly one fatal PB-Error of the
//!   violation's code (nothing at all once the peer ended with a fatal error).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::common::AssessmentResult;
use tnc_proto::pb_tnc::{
    msg_type, Batch, BatchError, BatchType, PbErrorCode, PbMessage, PbSession, Role,
    BATCH_HEADER_LEN, FLAG_EXCL, FLAG_FATAL, FLAG_NOSKIP, MESSAGE_HEADER_LEN,
};

#[derive(Clone, Copy, Debug)]
enum Step {
    /// This side sends a batch of this type, which the other side receives.
    Send(Role, BatchType),
    /// This side ends the session with a fatal Local Error in a CLOSE batch.
    Abort(Role),
}

use BatchType as T;
use Role::{Client as C, Server as S};
use Step::{Abort, Send};

/// Valid exchanges, each leaving the sessions in a different state.
const SCRIPTS: &[&[Step]] = &[
    &[],
    &[Send(C, T::CData)],
    &[Send(S, T::SData)],
    &[Send(C, T::CData), Send(S, T::SData)],
    &[Send(C, T::CData), Send(S, T::SRetry)],
    &[Send(C, T::CData), Send(C, T::CRetry)],
    &[Send(C, T::CData), Send(S, T::Result)],
    &[Send(C, T::CData), Send(S, T::Result), Send(C, T::CRetry)],
    &[Send(C, T::CData), Send(S, T::Result), Send(S, T::SRetry)],
    &[Send(C, T::CData), Send(S, T::SData), Send(C, T::CData)],
    &[Send(C, T::CData), Send(S, T::SData), Send(C, T::CRetry)],
    &[Send(S, T::SData), Send(S, T::SRetry)],
    &[Send(C, T::Close)],
    &[Send(S, T::Close)],
    &[Send(C, T::CData), Send(S, T::Result), Send(S, T::Close)],
    &[Abort(C)],
    &[Abort(S)],
    &[Send(C, T::CData), Abort(S)],
    &[Send(C, T::CData), Send(S, T::SData), Abort(C)],
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    check_codec(bytes);

    let role = if selector & 1 == 0 { S } else { C };
    let script = SCRIPTS[usize::from(selector >> 1) % SCRIPTS.len()];
    let (mut session, silenced) = drive(role, script);
    let before = session.state();
    match session.receive(bytes) {
        Ok(batch) => {
            assert_eq!(batch.sender, role.peer());
            if batch.fatal_error().is_some() {
                assert!(session.is_ended());
            } else {
                assert_eq!(Some(session.state()), before.after(batch.batch_type));
            }
        }
        Err(violation) => {
            assert!(session.is_ended());
            check_offset(&violation.error, bytes.len());
            if silenced {
                assert!(violation.close.is_empty(), "answered a peer's fatal error");
                return;
            }
            let close = match Batch::decode(&violation.close) {
                Ok(b) => b,
                Err(e) => panic!("our CLOSE batch does not decode: {e}"),
            };
            assert_eq!(close.batch_type, T::Close);
            assert_eq!(close.sender, role);
            assert_eq!(close.messages.len(), 1);
            let error = close.fatal_error().expect("CLOSE carries a fatal PB-Error");
            assert_eq!(error.ietf_code(), Some(violation.error.code()));
            assert_eq!(close.to_bytes(), violation.close);
        }
    }
});

/// Runs `script` between a session of `role` and its peer. Returns our session and
/// whether the peer silenced it with a fatal PB-Error.
fn drive(role: Role, script: &[Step]) -> (PbSession, bool) {
    let mut ours = PbSession::new(role);
    let mut peer = PbSession::new(role.peer());
    let mut silenced = false;
    for step in script {
        let sender = match *step {
            Send(sender, _) | Abort(sender) => sender,
        };
        let (from, to) = if sender == role {
            (&mut ours, &mut peer)
        } else {
            (&mut peer, &mut ours)
        };
        let bytes = match *step {
            Send(_, t) => {
                let messages = if t == T::Result {
                    vec![PbMessage::AssessmentResult(AssessmentResult::Compliant)]
                } else {
                    Vec::new()
                };
                match from.send(t, messages) {
                    Ok(b) => b,
                    Err(e) => panic!("script {script:?}: valid send refused: {e}"),
                }
            }
            Abort(_) => {
                silenced = sender != role;
                from.abort("fuzz script")
                    .expect("a session that was not silenced answers")
            }
        };
        if let Err(v) = to.receive(&bytes) {
            panic!("script {script:?}: valid batch refused: {v}");
        }
    }
    (ours, silenced)
}

fn check_codec(bytes: &[u8]) {
    let batch = match Batch::decode(bytes) {
        Ok(b) => b,
        Err(e) => {
            check_offset(&e, bytes.len());
            return;
        }
    };
    let again = batch.to_bytes();
    assert_eq!(again.len(), bytes.len(), "re-encoding changed the length");
    let reserved = reserved_bits(bytes);
    for (i, ((a, b), r)) in again.iter().zip(bytes).zip(&reserved).enumerate() {
        assert_eq!(
            (a ^ b) & !r,
            0,
            "byte {i} re-encoded as {a:#04x}, received {b:#04x}"
        );
    }
    match Batch::decode(&again) {
        Ok(b) => assert_eq!(b, batch),
        Err(e) => panic!("re-encoding does not decode: {e}"),
    }
}

/// Error offsets name a byte of the batch (or its end, for "cut short").
fn check_offset(e: &BatchError, len: usize) {
    if let BatchError::InvalidParameter { offset, .. }
    | BatchError::UnsupportedMandatoryMessage { offset, .. } = *e
    {
        assert!(offset <= len, "offset {offset} beyond a {len}-byte batch");
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The bits of an accepted batch that RFC 5793 reserves (a receiver ignores them,
/// a sender writes zero): per byte, set bits are reserved.
fn reserved_bits(b: &[u8]) -> Vec<u8> {
    let mut mask = vec![0u8; b.len()];
    // §4.1: D bit and reserved bits, reserved byte, 4 reserved bits before the type.
    mask[1] = !0x80;
    mask[2] = 0xFF;
    mask[3] = 0xF0;
    let mut at = BATCH_HEADER_LEN;
    while at + MESSAGE_HEADER_LEN <= b.len() {
        mask[at] = !FLAG_NOSKIP;
        let ietf = b[at + 1..at + 4] == [0, 0, 0];
        let t = u32_at(b, at + 4);
        let end = at + u32_at(b, at + 8) as usize;
        let v = at + MESSAGE_HEADER_LEN;
        if ietf {
            match t {
                msg_type::PA => mask[v] = !FLAG_EXCL,
                msg_type::ACCESS_RECOMMENDATION => mask[v..v + 2].fill(0xFF),
                msg_type::REMEDIATION_PARAMETERS => mask[v] = 0xFF,
                msg_type::ERROR => {
                    mask[v] = !FLAG_FATAL;
                    mask[v + 6..v + 8].fill(0xFF);
                    let ietf_code = b[v + 1..v + 4] == [0, 0, 0];
                    let code = u16::from_be_bytes([b[v + 4], b[v + 5]]);
                    if ietf_code
                        && code == PbErrorCode::VersionNotSupported.to_u16()
                        && end - v == 12
                    {
                        mask[v + 11] = 0xFF;
                    }
                }
                _ => {}
            }
        }
        at = end;
    }
    mask
}
