//! The revocation stream between a PDP and its subscribers (gateways and
//! serving VMs), and a gateway's enrolment on the same port: the frames.
//! `docs/revocations.md` is the specification; this is its one codec.
//!
//! A frame is `u32 length (big-endian) || body`, the body one CBOR map (RFC
//! 8949) with text keys whose key `t` names the frame; at most [`MAX_FRAME`]
//! bytes. Unknown keys are ignored; an unknown `t` is an error.
//!
//! ```text
//! subscriber (certificate OU=vm|gateway)        PDP
//! Subscribe {after}                        ->
//!                                          <-   Revoked {seq, …}   (each unexpired one after `after`)
//! Ack {seq}                                ->                     (after applying it: connections cut)
//!                                          <-   Heartbeat {newest, at}   (every second)
//!                                          <-   Revoked {seq, …}   (each new one, as it is stored)
//! Ack {seq}                                ->
//!
//! gateway (no certificate yet)                  PDP
//! Enrol {name, token, csr}                 ->
//!                                          <-   Enrolled {certificate, ca} | Error {message}
//! ```

use serde::{Deserialize, Serialize};

/// The ALPN protocol of the stream (TLS 1.3 over TCP, RFC 8998 suites).
pub const ALPN: &[u8] = b"tnc-revocations";

/// The largest frame body.
pub const MAX_FRAME: usize = 64 * 1024;

/// One revoked ticket, as pushed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedTicket {
    /// Its number in the PDP's revocation log; subscribers acknowledge it and
    /// resume after the last one they applied.
    pub seq: i64,
    /// When it was decided (Unix seconds).
    pub at: i64,
    /// The device the ticket was issued to (SHA-256 of its EK certificate,
    /// hex).
    pub device: String,
    /// The ticket's id (the `cti` of the COSE ticket).
    #[serde(with = "serde_bytes")]
    pub ticket: Vec<u8>,
    /// SHA-256 of the certificate the ticket is bound to.
    #[serde(with = "serde_bytes")]
    pub certificate_sha256: Vec<u8>,
    /// The ticket's expiry: a subscriber may forget the entry after it.
    pub not_after: i64,
    pub reason: String,
}

/// A frame of the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Frame {
    /// Subscriber -> PDP, first: every unexpired revocation numbered after
    /// `after`, then each new one.
    Subscribe { after: i64 },
    /// PDP -> subscriber.
    Revoked(RevokedTicket),
    /// Subscriber -> PDP: everything up to `seq` is applied.
    Ack { seq: i64 },
    /// PDP -> subscriber, every second: the newest revocation's number, and
    /// the PDP's time (Unix seconds). A subscriber that hears nothing for
    /// its grace period takes the PDP for gone.
    Heartbeat { newest: i64, at: i64 },
    /// Gateway -> PDP, on a connection without a client certificate: a
    /// one-time token (`tnc-server gateway token`) and a PKCS#10 request
    /// for the gateway's SM2 key.
    Enrol {
        name: String,
        token: String,
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
    },
    /// PDP -> gateway: its certificate (DER, OU=gateway) and the CA's.
    Enrolled {
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        #[serde(with = "serde_bytes")]
        ca: Vec<u8>,
    },
    /// Either way, before closing: why.
    Error { message: String },
}

/// Why bytes are not a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a revocation-stream frame of {0} bytes (at most {MAX_FRAME})")]
    TooLong(usize),
    #[error("a revocation-stream frame that is not the expected CBOR: {0}")]
    Malformed(String),
}

impl Frame {
    /// The frame with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let body = crate::cbor::encode(self);
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The body's length from a frame's 4-byte prefix, if it is allowed.
    pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
        let n = u32::from_be_bytes(prefix) as usize;
        if n > MAX_FRAME {
            return Err(FrameError::TooLong(n));
        }
        Ok(n)
    }

    /// A frame's body (without the prefix).
    pub fn decode(body: &[u8]) -> Result<Self, FrameError> {
        crate::cbor::decode(body, MAX_FRAME).map_err(|e| match e {
            crate::cbor::CborError::TooLong(n) => FrameError::TooLong(n),
            crate::cbor::CborError::Cbor(m) => FrameError::Malformed(m),
            crate::cbor::CborError::Trailing(n) => {
                FrameError::Malformed(format!("{n} bytes after the map"))
            }
        })
    }

    /// The frame's name, for log lines and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Subscribe { .. } => "subscribe",
            Frame::Revoked(_) => "revoked",
            Frame::Ack { .. } => "ack",
            Frame::Heartbeat { .. } => "heartbeat",
            Frame::Enrol { .. } => "enrol",
            Frame::Enrolled { .. } => "enrolled",
            Frame::Error { .. } => "error",
        }
    }
}

/// Frames out of a byte stream, sans I/O: push what was read, take the
/// frames that are whole. Holds at most one frame and what one read added.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is there. An error ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let mut p = [0u8; 4];
        p.copy_from_slice(prefix);
        let n = Frame::body_len(p)?;
        let Some(body) = self.buf.get(4..4 + n) else {
            return Ok(None);
        };
        let frame = Frame::decode(body);
        self.buf.drain(..4 + n);
        frame.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked() -> Frame {
        Frame::Revoked(RevokedTicket {
            seq: 7,
            at: 1_800_000_000,
            device: "ab".repeat(32),
            ticket: vec![0xc7; 16],
            certificate_sha256: vec![0xcd; 32],
            not_after: 1_800_003_600,
            reason: "isolate: /usr/bin/x".into(),
        })
    }

    #[test]
    fn every_frame_round_trips() {
        for f in [
            Frame::Subscribe { after: 0 },
            revoked(),
            Frame::Ack { seq: 7 },
            Frame::Heartbeat {
                newest: 7,
                at: 1_800_000_001,
            },
            Frame::Enrol {
                name: "gw-1".into(),
                token: "t0k3n".into(),
                csr: vec![0x30, 1, 2],
            },
            Frame::Enrolled {
                certificate: vec![0x30, 3],
                ca: vec![0x30, 4],
            },
            Frame::Error {
                message: "no".into(),
            },
        ] {
            let bytes = f.encode();
            let n = Frame::body_len(bytes[..4].try_into().unwrap()).unwrap();
            assert_eq!(n, bytes.len() - 4);
            assert_eq!(Frame::decode(&bytes[4..]).unwrap(), f, "{}", f.name());
        }
    }

    #[test]
    fn the_wire_form_is_a_tagged_map() {
        // {"t": "ack", "seq": 7}
        let bytes = Frame::Ack { seq: 7 }.encode();
        assert_eq!(
            bytes,
            [0, 0, 0, 12, 0xa2, 0x61, b't', 0x63, b'a', b'c', b'k', 0x63, b's', b'e', b'q', 0x07]
        );
        // Unknown keys are ignored; an unknown frame is not.
        let mut extra = Vec::new();
        ciborium::ser::into_writer(
            &ciborium::Value::Map(vec![
                ("t".into(), "ack".into()),
                ("seq".into(), 3.into()),
                ("later".into(), true.into()),
            ]),
            &mut extra,
        )
        .unwrap();
        assert_eq!(Frame::decode(&extra).unwrap(), Frame::Ack { seq: 3 });
        let mut unknown = Vec::new();
        ciborium::ser::into_writer(
            &ciborium::Value::Map(vec![("t".into(), "nack".into())]),
            &mut unknown,
        )
        .unwrap();
        assert!(matches!(
            Frame::decode(&unknown),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn the_reader_takes_frames_split_anyhow() {
        let mut stream = revoked().encode();
        stream.extend(Frame::Ack { seq: 7 }.encode());
        for step in [1, 3, 5, stream.len()] {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                r.push(chunk);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, [revoked(), Frame::Ack { seq: 7 }], "step {step}");
        }
        let mut r = FrameReader::default();
        r.push(&[0, 1, 0, 1]);
        assert!(
            r.next_frame().is_err(),
            "a 65,537-byte frame is refused at once"
        );
    }

    #[test]
    fn oversized_truncated_and_trailing_frames_are_refused() {
        assert_eq!(
            Frame::body_len(((MAX_FRAME + 1) as u32).to_be_bytes()),
            Err(FrameError::TooLong(MAX_FRAME + 1))
        );
        let bytes = revoked().encode();
        for cut in 4..bytes.len() - 1 {
            assert!(Frame::decode(&bytes[4..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes[4..].to_vec();
        trailing.push(0);
        assert!(Frame::decode(&trailing).is_err());
        assert!(Frame::decode(&[]).is_err());
    }
}
