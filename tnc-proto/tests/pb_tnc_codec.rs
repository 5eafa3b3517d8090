//! PB-TNC (RFC 5793) through the public API: batch headers and every IETF message
//! type against bytes written by hand from the RFC layout (digest:
//! shared/specs/nea-pb-tnc.md), the PB-Errors and offsets each violation produces,
//! the §3.2 state machine of both sides, and round trips of arbitrary batches.

use proptest::prelude::*;
use tnc_proto::common::{AssessmentResult, Remediation};
use tnc_proto::pa_tnc::PaSubtype;
use tnc_proto::pb_tnc::{
    AccessRecommendation, Batch, BatchError, BatchType, PbError, PbErrorCode, PbErrorParams,
    PbMessage, PbPa, PbSession, PbState, SendError, Side,
};
use tnc_proto::U24;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A batch header with the right Batch Length around `messages`, for the error
/// tests (the reference vectors below spell their lengths out).
fn batch(d: u8, btype: u8, messages: &[&[u8]]) -> Vec<u8> {
    let body = messages.concat();
    let len = (8 + body.len()) as u32;
    cat(&[&[0x02, d, 0x00, btype], &len.to_be_bytes(), &body])
}

/// A message header with the right length around `value`.
fn message(flags: u8, vendor: u32, msg_type: u32, value: &[u8]) -> Vec<u8> {
    let len = (12 + value.len()) as u32;
    cat(&[
        &[flags],
        &vendor.to_be_bytes()[1..],
        &msg_type.to_be_bytes(),
        &len.to_be_bytes(),
        value,
    ])
}

fn invalid_at(err: &BatchError) -> usize {
    match err {
        BatchError::InvalidParameter { offset, .. } => *offset,
        other => panic!("expected Invalid Parameter, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Batch headers
// ---------------------------------------------------------------------------

#[test]
fn batch_header_of_each_type() {
    let table: [(&[u8], BatchType, Side); 6] = [
        (
            &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08],
            BatchType::CData,
            Side::Client,
        ),
        (
            &[0x02, 0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08],
            BatchType::SData,
            Side::Server,
        ),
        (
            &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08],
            BatchType::Result,
            Side::Server,
        ),
        (
            &[0x02, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x08],
            BatchType::CRetry,
            Side::Client,
        ),
        (
            &[0x02, 0x80, 0x00, 0x05, 0x00, 0x00, 0x00, 0x08],
            BatchType::SRetry,
            Side::Server,
        ),
        (
            &[0x02, 0x80, 0x00, 0x06, 0x00, 0x00, 0x00, 0x08],
            BatchType::Close,
            Side::Server,
        ),
    ];
    for (bytes, t, sender) in table {
        let expected = Batch::new(sender, t, vec![]);
        assert_eq!(Batch::decode(bytes).unwrap(), expected, "{t:?}");
        assert_eq!(expected.to_bytes(), bytes, "{t:?}");
        assert_eq!(t.to_u8(), bytes[3]);
        assert_eq!(BatchType::from_u8(bytes[3]), Some(t));
    }
    // CLOSE from a client: D bit clear.
    let close = [0x02, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x08];
    let b = Batch::new(Side::Client, BatchType::Close, vec![]);
    assert_eq!(Batch::decode(&close).unwrap(), b);
    assert_eq!(b.to_bytes(), close);
}

#[test]
fn batch_header_reserved_bits_are_ignored() {
    // Reserved bits of bytes 1-3 set: D still comes from 0x80, the type from the
    // low nibble of byte 3.
    let bytes = [0x02, 0x7F, 0xFF, 0xF1, 0x00, 0x00, 0x00, 0x08];
    assert_eq!(
        Batch::decode(&bytes).unwrap(),
        Batch::new(Side::Client, BatchType::CData, vec![])
    );
}

#[test]
fn batch_types_and_senders_follow_rfc5793() {
    use BatchType::*;
    assert_eq!(BatchType::from_u8(0), None);
    assert_eq!(BatchType::from_u8(7), None);
    for (t, client, server) in [
        (CData, true, false),
        (SData, false, true),
        (Result, false, true),
        (CRetry, true, false),
        (SRetry, false, true),
        (Close, true, true),
    ] {
        assert_eq!(t.sendable_by(Side::Client), client, "{t:?}");
        assert_eq!(t.sendable_by(Side::Server), server, "{t:?}");
    }
}

// ---------------------------------------------------------------------------
// Every IETF message type, hand-written
// ---------------------------------------------------------------------------

/// (name, whole batch bytes, expected batch)
fn vectors() -> Vec<(&'static str, Vec<u8>, Batch<'static>)> {
    let server = |m| Batch::new(Side::Server, BatchType::Result, vec![m]);
    vec![
        (
            "PB-Experimental",
            cat(&[
                &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x17], // CDATA, 23
                &[0x00, 0x00, 0x00, 0x00],                         // flags 0 | vendor 0
                &[0x00, 0x00, 0x00, 0x00],                         // type 0
                &[0x00, 0x00, 0x00, 0x0F],                         // length 15
                b"abc",
            ]),
            Batch::new(
                Side::Client,
                BatchType::CData,
                vec![PbMessage::Experimental {
                    noskip: false,
                    value: b"abc",
                }],
            ),
        ),
        (
            "PB-PA (EXCL)",
            cat(&[
                &[0x02, 0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x24], // SDATA, 36
                &[0x80, 0x00, 0x00, 0x00],                         // NOSKIP | vendor 0
                &[0x00, 0x00, 0x00, 0x01],                         // type 1
                &[0x00, 0x00, 0x00, 0x1C],                         // length 28
                &[0x80, 0x00, 0x00, 0x00],                         // EXCL | PA vendor 0
                &[0x00, 0x00, 0x00, 0x01],                         // subtype 1 (Operating System)
                &[0x00, 0x07, 0x00, 0x03],                         // collector 7 | validator 3
                &[0x01, 0x02, 0x03, 0x04],                         // PA-TNC message (opaque)
            ]),
            Batch::new(
                Side::Server,
                BatchType::SData,
                vec![PbMessage::Pa(PbPa {
                    exclusive: true,
                    subtype: PaSubtype::OPERATING_SYSTEM,
                    collector_id: 7,
                    validator_id: 3,
                    body: &[1, 2, 3, 4],
                })],
            ),
        ),
        (
            "PB-PA (not EXCL, vendor subtype, ids ANY)",
            cat(&[
                &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x20], // CDATA, 32
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x01],
                &[0x00, 0x00, 0x00, 0x18], // length 24, empty body
                &[0x00, 0x00, 0x55, 0x97], // flags 0 | PA vendor TCG
                &[0x00, 0x00, 0x00, 0x02], // subtype 2
                &[0x00, 0x01, 0xFF, 0xFF], // collector 1 | validator ANY
            ]),
            Batch::new(
                Side::Client,
                BatchType::CData,
                vec![PbMessage::Pa(PbPa {
                    exclusive: false,
                    subtype: PaSubtype {
                        vendor: U24::TCG,
                        subtype: 2,
                    },
                    collector_id: 1,
                    validator_id: 0xFFFF,
                    body: &[],
                })],
            ),
        ),
        (
            "PB-Assessment-Result",
            cat(&[
                &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x18], // RESULT, 24
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x02],
                &[0x00, 0x00, 0x00, 0x10], // length 16
                &[0x00, 0x00, 0x00, 0x02], // non-compliant major
            ]),
            server(PbMessage::AssessmentResult(
                AssessmentResult::NonCompliantMajor,
            )),
        ),
        (
            "PB-Access-Recommendation",
            cat(&[
                &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x18],
                &[0x00, 0x00, 0x00, 0x00], // NOSKIP clear
                &[0x00, 0x00, 0x00, 0x03],
                &[0x00, 0x00, 0x00, 0x10],
                &[0x00, 0x00, 0x00, 0x03], // reserved | Quarantined
            ]),
            server(PbMessage::AccessRecommendation(
                AccessRecommendation::Quarantined,
            )),
        ),
        (
            "PB-Remediation-Parameters (URI)",
            cat(&[
                &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x30], // 48
                &[0x00, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x04],
                &[0x00, 0x00, 0x00, 0x28], // length 40
                &[0x00, 0x00, 0x00, 0x00], // reserved | vendor 0
                &[0x00, 0x00, 0x00, 0x01], // URI
                b"https://fix.example/",   // 20 bytes
            ]),
            server(PbMessage::RemediationParameters(Remediation::Uri(
                "https://fix.example/",
            ))),
        ),
        (
            "PB-Remediation-Parameters (String)",
            cat(&[
                &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x29], // 41
                &[0x00, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x04],
                &[0x00, 0x00, 0x00, 0x21], // length 33
                &[0x00, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x02], // String
                &[0x00, 0x00, 0x00, 0x06], // string length 6
                b"update",
                &[0x02],
                b"en",
            ]),
            server(PbMessage::RemediationParameters(Remediation::String {
                text: "update",
                lang: "en",
            })),
        ),
        (
            "PB-Error code 0 (Unexpected Batch Type)",
            cat(&[
                &[0x02, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x1C], // CLOSE, 28
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x05],
                &[0x00, 0x00, 0x00, 0x14], // length 20
                &[0x80, 0x00, 0x00, 0x00], // FATAL | vendor 0
                &[0x00, 0x00, 0x00, 0x00], // code 0 | reserved
            ]),
            Batch::new(
                Side::Client,
                BatchType::Close,
                vec![PbMessage::Error(PbError {
                    fatal: true,
                    vendor: U24::IETF,
                    code: 0,
                    params: PbErrorParams::None,
                })],
            ),
        ),
        (
            "PB-Error code 1 (Invalid Parameter)",
            cat(&[
                &[0x02, 0x80, 0x00, 0x06, 0x00, 0x00, 0x00, 0x20], // 32
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x05],
                &[0x00, 0x00, 0x00, 0x18], // length 24
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x01, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x14], // offset 20
            ]),
            Batch::new(
                Side::Server,
                BatchType::Close,
                vec![PbMessage::Error(PbError {
                    fatal: true,
                    vendor: U24::IETF,
                    code: 1,
                    params: PbErrorParams::Offset(20),
                })],
            ),
        ),
        (
            "PB-Error code 2 (Local Error, not fatal)",
            cat(&[
                &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1C], // CDATA, 28
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x05],
                &[0x00, 0x00, 0x00, 0x14],
                &[0x00, 0x00, 0x00, 0x00], // not fatal
                &[0x00, 0x02, 0x00, 0x00],
            ]),
            Batch::new(
                Side::Client,
                BatchType::CData,
                vec![PbMessage::Error(PbError {
                    fatal: false,
                    vendor: U24::IETF,
                    code: 2,
                    params: PbErrorParams::None,
                })],
            ),
        ),
        (
            "PB-Error code 3 (Unsupported Mandatory Message)",
            cat(&[
                &[0x02, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x20],
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x05],
                &[0x00, 0x00, 0x00, 0x18],
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x03, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x08], // offset 8
            ]),
            Batch::new(
                Side::Client,
                BatchType::Close,
                vec![PbMessage::Error(PbError {
                    fatal: true,
                    vendor: U24::IETF,
                    code: 3,
                    params: PbErrorParams::Offset(8),
                })],
            ),
        ),
        (
            "PB-Error code 4 (Version Not Supported)",
            cat(&[
                &[0x02, 0x80, 0x00, 0x06, 0x00, 0x00, 0x00, 0x20],
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x05],
                &[0x00, 0x00, 0x00, 0x18],
                &[0x80, 0x00, 0x00, 0x00],
                &[0x00, 0x04, 0x00, 0x00],
                &[0x01, 0x02, 0x02, 0x00], // bad 1 | max 2 | min 2 | reserved
            ]),
            Batch::new(
                Side::Server,
                BatchType::Close,
                vec![PbMessage::Error(PbError {
                    fatal: true,
                    vendor: U24::IETF,
                    code: 4,
                    params: PbErrorParams::Version {
                        bad: 1,
                        max: 2,
                        min: 2,
                    },
                })],
            ),
        ),
        (
            "PB-Language-Preference",
            cat(&[
                &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x27], // 39
                &[0x00, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x06],
                &[0x00, 0x00, 0x00, 0x1F], // length 31
                b"Accept-Language: en",
            ]),
            Batch::new(
                Side::Client,
                BatchType::CData,
                vec![PbMessage::LanguagePreference("Accept-Language: en")],
            ),
        ),
        (
            "PB-Reason-String",
            cat(&[
                &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x24], // 36
                &[0x00, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x07],
                &[0x00, 0x00, 0x00, 0x1C], // length 28
                &[0x00, 0x00, 0x00, 0x09], // string length 9
                b"old patch",
                &[0x02],
                b"en",
            ]),
            server(PbMessage::ReasonString {
                text: "old patch",
                lang: "en",
            }),
        ),
        (
            "unknown vendor message without NOSKIP",
            cat(&[
                &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x16], // 22
                &[0x00, 0x12, 0x34, 0x56],                         // flags 0 | vendor 0x123456
                &[0x00, 0x00, 0x00, 0x01],
                &[0x00, 0x00, 0x00, 0x0E], // length 14
                &[0xCA, 0xFE],
            ]),
            Batch::new(
                Side::Client,
                BatchType::CData,
                vec![PbMessage::Unknown {
                    noskip: false,
                    vendor: U24::new(0x12_3456).unwrap(),
                    msg_type: 1,
                    value: &[0xCA, 0xFE],
                }],
            ),
        ),
        (
            "unassigned IETF type without NOSKIP",
            cat(&[
                &[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x14], // 20
                &[0x00, 0x00, 0x00, 0x00],
                &[0x00, 0x00, 0x00, 0x08],
                &[0x00, 0x00, 0x00, 0x0C], // length 12
            ]),
            Batch::new(
                Side::Client,
                BatchType::CData,
                vec![PbMessage::Unknown {
                    noskip: false,
                    vendor: U24::IETF,
                    msg_type: 8,
                    value: &[],
                }],
            ),
        ),
        (
            "RESULT with several messages",
            cat(&[
                &[0x02, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x28], // 40
                &[0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02],
                &[0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00], // Compliant
                &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03],
                &[0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x01], // Allowed
            ]),
            Batch::new(
                Side::Server,
                BatchType::Result,
                vec![
                    PbMessage::AssessmentResult(AssessmentResult::Compliant),
                    PbMessage::AccessRecommendation(AccessRecommendation::Allowed),
                ],
            ),
        ),
    ]
}

#[test]
fn every_vector_decodes_and_encodes_byte_for_byte() {
    for (name, bytes, expected) in vectors() {
        assert_eq!(
            u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize,
            bytes.len(),
            "{name}: the vector's own Batch Length"
        );
        let decoded = Batch::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected, "{name}: decode");
        assert_eq!(expected.to_bytes(), bytes, "{name}: encode");
    }
}

#[test]
fn ietf_messages_carry_the_noskip_the_rfc_fixes() {
    fn nos(m: PbMessage<'_>) -> u8 {
        Batch::new(Side::Server, BatchType::Result, vec![m]).to_bytes()[8]
    }
    assert_eq!(
        nos(PbMessage::AssessmentResult(AssessmentResult::Compliant)),
        0x80
    );
    assert_eq!(
        nos(PbMessage::AccessRecommendation(
            AccessRecommendation::Denied
        )),
        0x00
    );
    assert_eq!(nos(PbMessage::ReasonString { text: "", lang: "" }), 0x00);
    assert_eq!(
        nos(PbMessage::RemediationParameters(Remediation::Uri("x:"))),
        0x00
    );
    assert_eq!(nos(PbMessage::LanguagePreference("Accept-Language: ")), 0);
    assert_eq!(
        nos(PbMessage::Error(PbError {
            fatal: false,
            vendor: U24::IETF,
            code: 2,
            params: PbErrorParams::None
        })),
        0x80
    );
}

#[test]
fn every_truncation_is_refused() {
    for (name, bytes, _) in vectors() {
        for cut in 0..bytes.len() {
            assert!(
                Batch::decode(&bytes[..cut]).is_err(),
                "{name}: prefix of {cut} bytes accepted"
            );
        }
    }
}

#[test]
fn every_truncation_with_a_patched_batch_length_is_refused() {
    // The Batch Length agrees with the cut: the message headers or values must
    // catch it. Cutting exactly between messages leaves a valid batch.
    for (name, bytes, expected) in vectors() {
        let mut boundaries = vec![8];
        let mut at = 8;
        for m in &expected.messages {
            let mut one = Vec::new();
            m.encode(&mut one);
            at += one.len();
            boundaries.push(at);
        }
        for cut in 8..bytes.len() {
            let mut short = bytes[..cut].to_vec();
            short[4..8].copy_from_slice(&(cut as u32).to_be_bytes());
            let res = Batch::decode(&short);
            if boundaries.contains(&cut) {
                assert!(res.is_ok(), "{name}: cut at a message boundary {cut}");
            } else {
                let err = res.expect_err(&format!("{name}: cut at {cut} accepted"));
                assert_eq!(err.code(), PbErrorCode::InvalidParameter, "{name} {cut}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Errors and their offsets
// ---------------------------------------------------------------------------

fn cdata_with(messages: &[&[u8]]) -> Vec<u8> {
    batch(0x00, 0x01, messages)
}

fn lang_pref() -> Vec<u8> {
    message(0, 0, 6, b"Accept-Language: en") // 31 bytes
}

#[test]
fn batch_shorter_than_its_header() {
    for n in 0..8 {
        let err =
            Batch::decode(&[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08][..n]).unwrap_err();
        assert_eq!(invalid_at(&err), 0, "{n} bytes");
    }
}

#[test]
fn version_1_is_version_not_supported() {
    let bytes = [0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08];
    let err = Batch::decode(&bytes).unwrap_err();
    assert_eq!(err, BatchError::VersionNotSupported { version: 1 });
    assert_eq!(err.code(), PbErrorCode::VersionNotSupported);
    let pb = err.to_pb_error();
    assert_eq!(
        pb,
        PbError {
            fatal: true,
            vendor: U24::IETF,
            code: 4,
            params: PbErrorParams::Version {
                bad: 1,
                max: 2,
                min: 2
            },
        }
    );
    // Encoded exactly as §4.9.1 lays it out.
    let close = Batch::new(Side::Server, BatchType::Close, vec![PbMessage::Error(pb)]).to_bytes();
    assert_eq!(
        &close[8..],
        &[
            0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x18, //
            0x80, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x02, 0x02, 0x00,
        ]
    );
    for v in [0u8, 3, 0xFF] {
        let mut b = bytes;
        b[0] = v;
        assert_eq!(
            Batch::decode(&b).unwrap_err(),
            BatchError::VersionNotSupported { version: v }
        );
    }
}

#[test]
fn undefined_batch_types() {
    for t in 7u8..=15 {
        let err = Batch::decode(&batch(0x00, t, &[])).unwrap_err();
        assert_eq!(invalid_at(&err), 3, "type {t}");
    }
    let err = Batch::decode(&batch(0x00, 0, &[])).unwrap_err();
    assert!(
        matches!(err, BatchError::UnexpectedBatchType { batch_type: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), PbErrorCode::UnexpectedBatchType);
    assert_eq!(err.to_pb_error().params, PbErrorParams::None);
}

#[test]
fn batch_length_mismatch_is_offset_4() {
    let mut longer = cdata_with(&[&lang_pref()]);
    longer[7] += 1;
    assert_eq!(invalid_at(&Batch::decode(&longer).unwrap_err()), 4);
    let mut shorter = cdata_with(&[&lang_pref()]);
    shorter[7] -= 1;
    assert_eq!(invalid_at(&Batch::decode(&shorter).unwrap_err()), 4);
    let mut extra = cdata_with(&[]);
    extra.push(0);
    assert_eq!(invalid_at(&Batch::decode(&extra).unwrap_err()), 4);
}

#[test]
fn message_length_below_12_is_offset_8_of_the_message() {
    for len in [0u32, 11] {
        // First message at 8, and a second one at 8 + 31 = 39.
        let mut bad = message(0, 0, 6, b"");
        bad[8..12].copy_from_slice(&len.to_be_bytes());
        let err = Batch::decode(&cdata_with(&[&bad])).unwrap_err();
        assert_eq!(invalid_at(&err), 8 + 8, "length {len}");
        let err = Batch::decode(&cdata_with(&[&lang_pref(), &bad])).unwrap_err();
        assert_eq!(invalid_at(&err), 39 + 8, "length {len}");
    }
}

#[test]
fn message_length_past_the_batch_is_offset_8_of_the_message() {
    let mut bad = lang_pref();
    bad[11] += 1;
    let err = Batch::decode(&cdata_with(&[&lang_pref(), &bad])).unwrap_err();
    assert_eq!(invalid_at(&err), 39 + 8);
}

#[test]
fn a_message_header_cut_short_is_refused() {
    let err = Batch::decode(&cdata_with(&[&lang_pref(), &[0x00, 0x00, 0x00]])).unwrap_err();
    assert_eq!(err.code(), PbErrorCode::InvalidParameter);
}

#[test]
fn reserved_vendor_and_type() {
    let err =
        Batch::decode(&cdata_with(&[&lang_pref(), &message(0, 0xFF_FFFF, 1, b"")])).unwrap_err();
    assert_eq!(invalid_at(&err), 39 + 1);
    let err = Batch::decode(&cdata_with(&[&message(0, 0xFF_FFFF, 1, b"")])).unwrap_err();
    assert_eq!(invalid_at(&err), 8 + 1);
    let err = Batch::decode(&cdata_with(&[
        &lang_pref(),
        &message(0, 0, 0xFFFF_FFFF, b""),
    ]))
    .unwrap_err();
    assert_eq!(invalid_at(&err), 39 + 4);
    // Reserved with NOSKIP too: still Invalid Parameter, not Unsupported Mandatory.
    let err = Batch::decode(&cdata_with(&[&message(0x80, 0x12, 0xFFFF_FFFF, b"")])).unwrap_err();
    assert_eq!(invalid_at(&err), 8 + 4);
}

#[test]
fn unknown_type_with_noskip_is_unsupported_mandatory_message() {
    let unknown = message(0x80, 0x12_3456, 9, b"xy");
    let bytes = cdata_with(&[&lang_pref(), &unknown]);
    let err = Batch::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        BatchError::UnsupportedMandatoryMessage {
            offset: 39,
            vendor: U24::new(0x12_3456).unwrap(),
            msg_type: 9
        }
    );
    assert_eq!(
        err.to_pb_error(),
        PbError {
            fatal: true,
            vendor: U24::IETF,
            code: 3,
            params: PbErrorParams::Offset(39)
        }
    );
    // IETF: an unassigned type and PB-Experimental with NOSKIP.
    for t in [0u32, 8, 0x1000] {
        let err = Batch::decode(&cdata_with(&[&message(0x80, 0, t, b"")])).unwrap_err();
        assert_eq!(
            err,
            BatchError::UnsupportedMandatoryMessage {
                offset: 8,
                vendor: U24::IETF,
                msg_type: t
            },
            "type {t}"
        );
    }
}

#[test]
fn noskip_contradicting_the_rfc_is_invalid_parameter_at_the_message() {
    let pa_value = [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xFF, 0xFF];
    // PB-PA without NOSKIP.
    let err =
        Batch::decode(&cdata_with(&[&lang_pref(), &message(0, 0, 1, &pa_value)])).unwrap_err();
    assert_eq!(invalid_at(&err), 39);
    let err = Batch::decode(&cdata_with(&[&message(0, 0, 1, &pa_value)])).unwrap_err();
    assert_eq!(invalid_at(&err), 8);
    // The other fixed types, each second in a batch.
    for (flags, t, value) in [
        (0x00u8, 2u32, &[0u8, 0, 0, 0][..]), // Assessment-Result without NOSKIP
        (0x80, 3, &[0, 0, 0, 1][..]),        // Access-Recommendation with NOSKIP
        (0x80, 4, &[0, 0, 0, 0, 0, 0, 0, 1, b'x'][..]), // Remediation with NOSKIP
        (0x00, 5, &[0, 0, 0, 0, 0, 2, 0, 0][..]), // PB-Error without NOSKIP
        (0x80, 7, &[0, 0, 0, 0, 0][..]),     // Reason-String with NOSKIP
    ] {
        let err = Batch::decode(&batch(
            0x80,
            3,
            &[&lang_pref(), &message(flags, 0, t, value)],
        ))
        .unwrap_err();
        assert_eq!(invalid_at(&err), 39, "type {t}");
    }
    // PB-Language-Preference must have it clear, as strongSwan's table says
    // (the pb_tnc_batch fuzzer found the decoder accepting it set).
    let lp = message(0x80, 0, 6, b"Accept-Language: en");
    assert_eq!(
        invalid_at(&Batch::decode(&cdata_with(&[&lp])).unwrap_err()),
        8
    );
    let lp = message(0x00, 0, 6, b"Accept-Language: en");
    assert!(Batch::decode(&cdata_with(&[&lp])).is_ok());
}

#[test]
fn pb_pa_reserved_vendor_and_subtype() {
    let vendor = message(0x80, 0, 1, &[0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0, 1, 0, 1]);
    let err = Batch::decode(&cdata_with(&[&vendor])).unwrap_err();
    assert_eq!(invalid_at(&err), 8 + 12 + 1);
    let subtype = message(
        0x80,
        0,
        1,
        &[0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 0, 1],
    );
    let err = Batch::decode(&cdata_with(&[&subtype])).unwrap_err();
    assert_eq!(invalid_at(&err), 8 + 12 + 4);
    // PB-PA value shorter than its 12-byte fixed part.
    let short = message(0x80, 0, 1, &[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]);
    assert_eq!(
        Batch::decode(&cdata_with(&[&short])).unwrap_err().code(),
        PbErrorCode::InvalidParameter
    );
}

#[test]
fn undefined_access_recommendation_is_offset_of_the_code() {
    for code in [0u16, 4, 0xFFFF] {
        let bytes = batch(
            0x80,
            3,
            &[
                &message(0x80, 0, 2, &[0, 0, 0, 0]), // 16 bytes at 8
                &message(0, 0, 3, &[&[0u8, 0][..], &code.to_be_bytes()].concat()), // at 24
            ],
        );
        let err = Batch::decode(&bytes).unwrap_err();
        assert_eq!(invalid_at(&err), 24 + 12 + 2, "code {code}");
    }
}

#[test]
fn undefined_assessment_result_is_offset_of_the_value() {
    let bytes = batch(
        0x80,
        3,
        &[&lang_pref(), &message(0x80, 0, 2, &[0, 0, 0, 5])],
    );
    assert_eq!(invalid_at(&Batch::decode(&bytes).unwrap_err()), 39 + 12);
    // Wrong value sizes.
    for value in [&[0u8, 0, 0][..], &[0, 0, 0, 0, 0][..]] {
        let bytes = batch(0x80, 3, &[&message(0x80, 0, 2, value)]);
        assert_eq!(
            Batch::decode(&bytes).unwrap_err().code(),
            PbErrorCode::InvalidParameter
        );
    }
}

#[test]
fn pb_error_codes_0_and_2_with_four_zero_bytes_decode() {
    // strongSwan sends a 4-byte zero parameter for codes 0 and 2 (digest §3.5).
    for code in [0u8, 2] {
        let bytes = batch(
            0x80,
            6,
            &[&message(
                0x80,
                0,
                5,
                &[0x80, 0, 0, 0, 0, code, 0, 0, 0, 0, 0, 0],
            )],
        );
        let b = Batch::decode(&bytes).unwrap_or_else(|e| panic!("code {code}: {e}"));
        let PbMessage::Error(e) = &b.messages[0] else {
            panic!("not a PB-Error: {b:?}");
        };
        assert!(e.fatal);
        assert_eq!(e.ietf_code(), Some(PbErrorCode::from_u16(u16::from(code))));
        assert_eq!(e.params, PbErrorParams::Offset(0));
        assert_eq!(b.fatal_error(), Some(e));
    }
}

#[test]
fn pb_error_with_vendor_code_keeps_its_parameters() {
    let bytes = batch(
        0x80,
        6,
        &[&message(
            0x80,
            0,
            5,
            &[0x80, 0x00, 0x55, 0x97, 0x00, 0x01, 0, 0, 9, 8, 7],
        )],
    );
    let b = Batch::decode(&bytes).unwrap();
    assert_eq!(
        b.messages,
        [PbMessage::Error(PbError {
            fatal: true,
            vendor: U24::TCG,
            code: 1,
            params: PbErrorParams::Other(&[9, 8, 7]),
        })]
    );
    let PbMessage::Error(e) = &b.messages[0] else {
        unreachable!()
    };
    assert_eq!(e.ietf_code(), None, "not an IETF code");
    assert_eq!(b.to_bytes(), bytes);
}

#[test]
fn text_fields_refuse_nul_and_bad_prefix() {
    // Reason string with a NUL at its third byte: offset names that byte.
    let reason = message(0, 0, 7, &[0, 0, 0, 3, b'a', b'b', 0, 0]);
    let err = Batch::decode(&batch(0x80, 3, &[&reason])).unwrap_err();
    assert_eq!(invalid_at(&err), 8 + 12 + 4 + 2);
    // Reason string length running past the value.
    let reason = message(0, 0, 7, &[0, 0, 0, 9, b'a', 0]);
    assert_eq!(
        Batch::decode(&batch(0x80, 3, &[&reason]))
            .unwrap_err()
            .code(),
        PbErrorCode::InvalidParameter
    );
    // Language preference without the header name.
    let lp = message(0, 0, 6, b"en");
    assert_eq!(
        invalid_at(&Batch::decode(&cdata_with(&[&lp])).unwrap_err()),
        8 + 12
    );
    // Remediation string with bytes after the language code.
    let rem = message(
        0,
        0,
        4,
        &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, b'x', 0, 0xAA],
    );
    assert_eq!(
        Batch::decode(&batch(0x80, 3, &[&rem])).unwrap_err().code(),
        PbErrorCode::InvalidParameter
    );
}

#[test]
fn to_pb_error_of_each_violation() {
    let cases = [
        (
            BatchError::InvalidParameter {
                offset: 43,
                what: "x",
            },
            1,
            PbErrorParams::Offset(43),
        ),
        (
            BatchError::UnexpectedBatchType {
                batch_type: 2,
                why: "x",
            },
            0,
            PbErrorParams::None,
        ),
        (BatchError::LocalError("x"), 2, PbErrorParams::None),
    ];
    for (err, code, params) in cases {
        let pb = err.to_pb_error();
        assert!(pb.fatal);
        assert_eq!(pb.vendor, U24::IETF);
        assert_eq!(pb.code, code, "{err:?}");
        assert_eq!(pb.params, params, "{err:?}");
    }
    // Codes 0 and 2 go out with empty parameters (RFC 5793 §4.9.1): 20 bytes.
    let close = Batch::new(
        Side::Client,
        BatchType::Close,
        vec![PbMessage::Error(BatchError::LocalError("x").to_pb_error())],
    )
    .to_bytes();
    assert_eq!(close.len(), 8 + 20);
}

// ---------------------------------------------------------------------------
// Round trips of arbitrary batches
// ---------------------------------------------------------------------------

/// An owned description of a PB-TNC message.
#[derive(Clone, Debug)]
enum Msg {
    Experimental(Vec<u8>),
    Pa {
        excl: bool,
        vendor: u32,
        subtype: u32,
        collector: u16,
        validator: u16,
        body: Vec<u8>,
    },
    Assessment(u32),
    Recommendation(u16),
    RemUri(String),
    RemString(String, String),
    RemOther(u32, u32, Vec<u8>),
    Error {
        fatal: bool,
        vendor: u32,
        code: u16,
        params: ErrParams,
    },
    Lang(String),
    Reason(String, String),
    Unknown(u32, u32, Vec<u8>),
}

#[derive(Clone, Debug)]
enum ErrParams {
    None,
    Offset(u32),
    Version(u8, u8, u8),
    Other(Vec<u8>),
}

impl Msg {
    fn pb(&self) -> PbMessage<'_> {
        match self {
            Msg::Experimental(v) => PbMessage::Experimental {
                noskip: false,
                value: v,
            },
            Msg::Pa {
                excl,
                vendor,
                subtype,
                collector,
                validator,
                body,
            } => PbMessage::Pa(PbPa {
                exclusive: *excl,
                subtype: PaSubtype {
                    vendor: U24::new(*vendor).unwrap(),
                    subtype: *subtype,
                },
                collector_id: *collector,
                validator_id: *validator,
                body,
            }),
            Msg::Assessment(v) => {
                PbMessage::AssessmentResult(AssessmentResult::from_u32(*v).unwrap())
            }
            Msg::Recommendation(v) => {
                PbMessage::AccessRecommendation(AccessRecommendation::from_u16(*v).unwrap())
            }
            Msg::RemUri(u) => PbMessage::RemediationParameters(Remediation::Uri(u)),
            Msg::RemString(text, lang) => {
                PbMessage::RemediationParameters(Remediation::String { text, lang })
            }
            Msg::RemOther(vendor, param_type, params) => {
                PbMessage::RemediationParameters(Remediation::Other {
                    vendor: U24::new(*vendor).unwrap(),
                    param_type: *param_type,
                    params,
                })
            }
            Msg::Error {
                fatal,
                vendor,
                code,
                params,
            } => PbMessage::Error(PbError {
                fatal: *fatal,
                vendor: U24::new(*vendor).unwrap(),
                code: *code,
                params: match params {
                    ErrParams::None => PbErrorParams::None,
                    ErrParams::Offset(o) => PbErrorParams::Offset(*o),
                    ErrParams::Version(bad, max, min) => PbErrorParams::Version {
                        bad: *bad,
                        max: *max,
                        min: *min,
                    },
                    ErrParams::Other(p) => PbErrorParams::Other(p),
                },
            }),
            Msg::Lang(v) => PbMessage::LanguagePreference(v),
            Msg::Reason(text, lang) => PbMessage::ReasonString { text, lang },
            Msg::Unknown(vendor, msg_type, value) => PbMessage::Unknown {
                noskip: false,
                vendor: U24::new(*vendor).unwrap(),
                msg_type: *msg_type,
                value,
            },
        }
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Vendor IDs other than the IETF's and the reserved 0xFFFFFF.
fn vendor() -> impl Strategy<Value = u32> {
    1u32..0xFF_FFFF
}

fn error_strategy() -> impl Strategy<Value = Msg> {
    let e = |fatal, vendor, code, params| Msg::Error {
        fatal,
        vendor,
        code,
        params,
    };
    prop_oneof![
        (any::<bool>(), prop_oneof![Just(0u16), Just(2u16)]).prop_map(move |(f, c)| e(
            f,
            0,
            c,
            ErrParams::None
        )),
        (any::<bool>(), 0u16..4, any::<u32>()).prop_map(move |(f, c, o)| e(
            f,
            0,
            c,
            ErrParams::Offset(o)
        )),
        (any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(move |(f, b, x, n)| e(
            f,
            0,
            4,
            ErrParams::Version(b, x, n)
        )),
        // IETF codes with parameters that fit no layout.
        (any::<bool>(), 0u16..5, bytes(12))
            .prop_filter("not 0 or 4 bytes", |(_, _, p)| !p.is_empty()
                && p.len() != 4)
            .prop_map(move |(f, c, p)| e(f, 0, c, ErrParams::Other(p))),
        (
            any::<bool>(),
            5u16..=u16::MAX,
            proptest::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(move |(f, c, p)| e(f, 0, c, ErrParams::Other(p))),
        (
            any::<bool>(),
            vendor(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(move |(f, v, c, p)| e(f, v, c, ErrParams::Other(p))),
        (any::<bool>(), vendor(), any::<u16>()).prop_map(move |(f, v, c)| e(
            f,
            v,
            c,
            ErrParams::None
        )),
    ]
}

fn message_strategy() -> impl Strategy<Value = Msg> {
    prop_oneof![
        bytes(32).prop_map(Msg::Experimental),
        (
            any::<bool>(),
            0u32..0xFF_FFFF,
            0u32..u32::MAX,
            any::<u16>(),
            any::<u16>(),
            bytes(48)
        )
            .prop_map(
                |(excl, vendor, subtype, collector, validator, body)| Msg::Pa {
                    excl,
                    vendor,
                    subtype,
                    collector,
                    validator,
                    body,
                }
            ),
        (0u32..5).prop_map(Msg::Assessment),
        (1u16..4).prop_map(Msg::Recommendation),
        "[!-~]{0,40}".prop_map(Msg::RemUri),
        ("\\PC{0,24}", "[a-zA-Z-]{0,12}").prop_map(|(t, l)| Msg::RemString(t, l)),
        (vendor(), any::<u32>(), bytes(24)).prop_map(|(v, t, p)| Msg::RemOther(v, t, p)),
        (3u32..=u32::MAX, bytes(24)).prop_map(|(t, p)| Msg::RemOther(0, t, p)),
        error_strategy(),
        "[a-z]{2}(-[A-Z]{2})?(, [a-z]{2}(;q=0\\.[0-9])?){0,3}"
            .prop_map(|v| Msg::Lang(format!("Accept-Language: {v}"))),
        ("\\PC{0,24}", "[a-zA-Z-]{0,12}").prop_map(|(t, l)| Msg::Reason(t, l)),
        (vendor(), 0u32..u32::MAX, bytes(24)).prop_map(|(v, t, b)| Msg::Unknown(v, t, b)),
        (8u32..u32::MAX, bytes(24)).prop_map(|(t, b)| Msg::Unknown(0, t, b)),
    ]
}

fn batch_type() -> impl Strategy<Value = BatchType> {
    proptest::sample::select(BatchType::ALL.to_vec())
}

proptest! {
    #[test]
    fn arbitrary_batches_round_trip(
        server in any::<bool>(),
        t in batch_type(),
        msgs in proptest::collection::vec(message_strategy(), 0..8),
    ) {
        let sender = if server { Side::Server } else { Side::Client };
        let batch = Batch::new(sender, t, msgs.iter().map(Msg::pb).collect());
        let bytes = batch.to_bytes();
        prop_assert_eq!(u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len());
        let decoded = Batch::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&batch));
        prop_assert_eq!(decoded.unwrap().to_bytes(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in bytes(96), t in 0u8..16, d in any::<u8>()) {
        let len = (8 + tail.len()) as u32;
        let bytes = cat(&[&[2, d, 0, t], &len.to_be_bytes(), &tail]);
        let _ = Batch::decode(&bytes);
        let _ = Batch::decode(&tail);
        for role in [Side::Client, Side::Server] {
            let _ = PbSession::new(role).receive(&bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// State machine
// ---------------------------------------------------------------------------

const STATES: [PbState; 5] = [
    PbState::Init,
    PbState::ServerWorking,
    PbState::ClientWorking,
    PbState::Decided,
    PbState::End,
];

/// RFC 5793 §3.2 as tabled in the digest (strongSwan's reading).
fn expected_next(state: PbState, t: BatchType) -> Option<PbState> {
    use BatchType::*;
    use PbState::*;
    match (state, t) {
        (_, Close) => Some(End),
        (Init, CData) => Some(ServerWorking),
        (Init, SData) => Some(ClientWorking),
        (ServerWorking, SData) => Some(ClientWorking),
        (ServerWorking, SRetry) => Some(ClientWorking),
        (ServerWorking, Result) => Some(Decided),
        (ServerWorking, CRetry) => Some(ServerWorking),
        (ClientWorking, CData) => Some(ServerWorking),
        (ClientWorking, CRetry) => Some(ServerWorking),
        (ClientWorking, SRetry) => Some(ClientWorking),
        (Decided, CRetry) => Some(ServerWorking),
        (Decided, SRetry) => Some(ServerWorking),
        _ => None,
    }
}

fn result_msgs() -> Vec<PbMessage<'static>> {
    vec![PbMessage::AssessmentResult(AssessmentResult::Compliant)]
}

/// The smallest valid content for a batch of type `t`.
fn msgs_for(t: BatchType) -> Vec<PbMessage<'static>> {
    if t == BatchType::Result {
        result_msgs()
    } else {
        vec![]
    }
}

/// A batch of type `t` as the peer of `receiver` would send it.
fn from_peer(receiver: Side, t: BatchType) -> Vec<u8> {
    Batch::new(receiver.peer(), t, msgs_for(t)).to_bytes()
}

/// A session of `role` driven into `state` through the public API.
fn session_in(role: Side, state: PbState) -> PbSession {
    use BatchType::*;
    let mut s = PbSession::new(role);
    // Each step: (batch type, sent by the client?)
    let path: &[(BatchType, bool)] = match state {
        PbState::Init => &[],
        PbState::ServerWorking => &[(CData, true)],
        PbState::ClientWorking => &[(SData, false)],
        PbState::Decided => &[(CData, true), (Result, false)],
        PbState::End => &[(CData, true), (Close, true)],
    };
    for &(t, by_client) in path {
        if by_client == (role == Side::Client) {
            s.send(t, msgs_for(t)).unwrap();
        } else {
            s.receive(&from_peer(role, t)).unwrap();
        }
    }
    assert_eq!(s.state(), state, "{role:?} driven to {state:?}");
    s
}

fn assert_close_with(close: &[u8], sender: Side, code: PbErrorCode) -> PbError<'_> {
    let b = Batch::decode(close).expect("close bytes decode");
    assert_eq!(b.batch_type, BatchType::Close);
    assert_eq!(b.sender, sender);
    assert_eq!(b.messages.len(), 1, "exactly one message: {b:?}");
    let PbMessage::Error(e) = b.messages[0] else {
        panic!("not a PB-Error: {b:?}");
    };
    assert!(e.fatal);
    assert_eq!(e.ietf_code(), Some(code));
    e
}

#[test]
fn after_matches_the_rfc_table() {
    for state in STATES {
        for t in BatchType::ALL {
            assert_eq!(state.after(t), expected_next(state, t), "{state:?} {t:?}");
        }
    }
}

#[test]
fn full_transition_table_on_receive() {
    for role in [Side::Client, Side::Server] {
        for state in STATES {
            for t in BatchType::ALL {
                let allowed = t
                    .sendable_by(role.peer())
                    .then(|| expected_next(state, t))
                    .flatten();
                let mut s = session_in(role, state);
                let bytes = from_peer(role, t);
                match (s.receive(&bytes), allowed) {
                    (Ok(b), Some(next)) => {
                        assert_eq!(b.batch_type, t);
                        assert_eq!(s.state(), next, "{role:?} in {state:?} got {t:?}");
                        assert_eq!(Some(next), state.after(t));
                    }
                    (Err(v), None) => {
                        assert!(
                            matches!(v.error, BatchError::UnexpectedBatchType { batch_type, .. } if batch_type == t.to_u8()),
                            "{role:?} in {state:?} got {t:?}: {:?}",
                            v.error
                        );
                        assert_eq!(s.state(), PbState::End);
                        assert_close_with(&v.close, role, PbErrorCode::UnexpectedBatchType);
                    }
                    (got, want) => {
                        panic!("{role:?} in {state:?} receiving {t:?}: got {got:?}, want {want:?}")
                    }
                }
            }
        }
    }
}

#[test]
fn full_transition_table_on_send() {
    for role in [Side::Client, Side::Server] {
        for state in STATES {
            for t in BatchType::ALL {
                let allowed = t
                    .sendable_by(role)
                    .then(|| expected_next(state, t))
                    .flatten();
                let mut s = session_in(role, state);
                assert_eq!(s.can_send(t), allowed.is_some(), "{role:?} {state:?} {t:?}");
                match (s.send(t, msgs_for(t)), allowed) {
                    (Ok(bytes), Some(next)) => {
                        assert_eq!(s.state(), next, "{role:?} in {state:?} sent {t:?}");
                        let b = Batch::decode(&bytes).unwrap();
                        assert_eq!(b, Batch::new(role, t, msgs_for(t)));
                    }
                    (Err(e), None) => {
                        assert!(
                            matches!(e, SendError::NotAllowed { .. } | SendError::Ended),
                            "{e:?}"
                        );
                        assert_eq!(s.state(), state, "a refused send moves nothing");
                    }
                    (got, want) => {
                        panic!("{role:?} in {state:?} sending {t:?}: got {got:?}, want {want:?}")
                    }
                }
            }
        }
    }
}

#[test]
fn client_may_not_send_server_batches() {
    let mut c = PbSession::new(Side::Client);
    for t in [BatchType::SData, BatchType::Result, BatchType::SRetry] {
        assert_eq!(
            c.send(t, msgs_for(t)),
            Err(SendError::NotAllowed {
                side: Side::Client,
                batch_type: t,
                state: PbState::Init
            })
        );
    }
    assert_eq!(c.state(), PbState::Init);
}

#[test]
fn server_receiving_sdata_from_a_client_is_unexpected_batch_type() {
    // D bit clear (client), type SDATA: a type the client may not send.
    let mut s = PbSession::new(Side::Server);
    let v = s.receive(&batch(0x00, 2, &[])).unwrap_err();
    assert!(
        matches!(
            v.error,
            BatchError::UnexpectedBatchType { batch_type: 2, .. }
        ),
        "{:?}",
        v.error
    );
    assert!(s.is_ended());
    assert_close_with(&v.close, Side::Server, PbErrorCode::UnexpectedBatchType);
    // Client receiving CDATA with the D bit set.
    let mut c = PbSession::new(Side::Client);
    let v = c.receive(&batch(0x80, 1, &[])).unwrap_err();
    assert!(matches!(
        v.error,
        BatchError::UnexpectedBatchType { batch_type: 1, .. }
    ));
}

#[test]
fn direction_bit_naming_the_receiver_is_offset_1() {
    // A server gets a "client" CDATA with D set; a client gets SDATA with D clear.
    for (role, bytes) in [
        (Side::Server, batch(0x80, 1, &[])),
        (Side::Client, batch(0x00, 2, &[])),
    ] {
        let mut s = PbSession::new(role);
        let v = s.receive(&bytes).unwrap_err();
        assert_eq!(invalid_at(&v.error), 1, "{role:?}");
        assert!(s.is_ended());
        let e = assert_close_with(&v.close, role, PbErrorCode::InvalidParameter);
        assert_eq!(e.params, PbErrorParams::Offset(1));
    }
}

#[test]
fn result_without_assessment_result_is_refused() {
    // On send: refused, and the state does not move.
    let mut s = session_in(Side::Server, PbState::ServerWorking);
    let err = s.send(BatchType::Result, vec![]).unwrap_err();
    assert!(matches!(err, SendError::Content(_)), "{err:?}");
    let err = s
        .send(
            BatchType::Result,
            vec![PbMessage::AccessRecommendation(
                AccessRecommendation::Allowed,
            )],
        )
        .unwrap_err();
    assert!(matches!(err, SendError::Content(_)), "{err:?}");
    assert_eq!(s.state(), PbState::ServerWorking);
    assert!(s.send(BatchType::Result, result_msgs()).is_ok());

    // On receive: fatal Invalid Parameter.
    let mut c = session_in(Side::Client, PbState::ServerWorking);
    let v = c.receive(&batch(0x80, 3, &[])).unwrap_err();
    assert_eq!(invalid_at(&v.error), 3);
    assert!(c.is_ended());
    assert_close_with(&v.close, Side::Client, PbErrorCode::InvalidParameter);
}

#[test]
fn two_assessment_results_in_a_result_are_refused() {
    let ar = message(0x80, 0, 2, &[0, 0, 0, 0]);
    let mut c = session_in(Side::Client, PbState::ServerWorking);
    let v = c.receive(&batch(0x80, 3, &[&ar, &ar])).unwrap_err();
    assert_eq!(invalid_at(&v.error), 24);
    let mut s = session_in(Side::Server, PbState::ServerWorking);
    assert!(matches!(
        s.send(BatchType::Result, [result_msgs(), result_msgs()].concat()),
        Err(SendError::Content(_))
    ));
}

#[test]
fn server_receiving_server_only_messages_is_invalid_parameter_at_the_message() {
    let pa = message(0x80, 0, 1, &[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xFF, 0xFF]); // 24 bytes at 8
    for (name, m) in [
        (
            "PB-Reason-String",
            message(0, 0, 7, &[0, 0, 0, 2, b'n', b'o', 0]),
        ),
        ("PB-Assessment-Result", message(0x80, 0, 2, &[0, 0, 0, 0])),
        ("PB-Access-Recommendation", message(0, 0, 3, &[0, 0, 0, 1])),
        (
            "PB-Remediation-Parameters",
            message(0, 0, 4, &[0, 0, 0, 0, 0, 0, 0, 1, b'x', b':']),
        ),
    ] {
        let mut s = PbSession::new(Side::Server);
        let v = s.receive(&batch(0x00, 1, &[&pa, &m])).unwrap_err();
        assert_eq!(invalid_at(&v.error), 32, "{name}");
        assert!(s.is_ended());
        let e = assert_close_with(&v.close, Side::Server, PbErrorCode::InvalidParameter);
        assert_eq!(e.params, PbErrorParams::Offset(32), "{name}");
    }
    // And a client may not send them.
    let mut c = PbSession::new(Side::Client);
    assert!(matches!(
        c.send(
            BatchType::CData,
            vec![PbMessage::ReasonString {
                text: "x",
                lang: ""
            }]
        ),
        Err(SendError::Content(_))
    ));
    assert_eq!(c.state(), PbState::Init);
}

#[test]
fn client_drops_result_messages_outside_result() {
    let mut c = session_in(Side::Client, PbState::ServerWorking);
    let bytes = batch(
        0x80,
        2,
        &[
            &message(0, 0, 3, &[0, 0, 0, 2]),    // Access Recommendation
            &message(0x80, 0, 2, &[0, 0, 0, 1]), // Assessment Result
            &message(0, 0, 7, &[0, 0, 0, 2, b'h', b'i', 0]), // Reason String: kept
            &message(0x80, 0, 1, &[0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0, 1]),
        ],
    );
    let b = c.receive(&bytes).unwrap();
    assert_eq!(b.batch_type, BatchType::SData);
    assert_eq!(
        b.messages,
        [
            PbMessage::ReasonString {
                text: "hi",
                lang: ""
            },
            PbMessage::Pa(PbPa {
                exclusive: false,
                subtype: PaSubtype::OPERATING_SYSTEM,
                collector_id: 0xFFFF,
                validator_id: 1,
                body: &[],
            }),
        ]
    );
    assert_eq!(c.state(), PbState::ClientWorking);
}

#[test]
fn fatal_pb_error_received_silences_the_session() {
    // In a CLOSE batch.
    let fatal = message(0x80, 0, 5, &[0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 3]);
    let mut s = session_in(Side::Server, PbState::ServerWorking);
    let close = batch(0x00, 6, &[&fatal]);
    let b = s.receive(&close).unwrap();
    assert_eq!(
        b.fatal_error().and_then(|e| e.ietf_code()),
        Some(PbErrorCode::InvalidParameter)
    );
    assert_eq!(s.state(), PbState::End);
    assert!(!s.can_send(BatchType::Close));
    assert_eq!(s.send(BatchType::Close, vec![]), Err(SendError::Ended));
    assert_eq!(s.close(None), None, "nothing may be sent back");
    assert_eq!(s.abort("x"), None);

    // In an SDATA batch, next to other messages.
    let mut c = session_in(Side::Client, PbState::ServerWorking);
    let sdata = batch(0x80, 2, &[&lang_pref(), &fatal]);
    let b = c.receive(&sdata).unwrap();
    assert_eq!(b.messages.len(), 2);
    assert!(c.is_ended());
    assert_eq!(c.close(None), None);
    assert_eq!(c.send(BatchType::CData, vec![]), Err(SendError::Ended));
}

#[test]
fn non_fatal_pb_error_does_not_end_the_session() {
    let warn = message(0x80, 0, 5, &[0x00, 0, 0, 0, 0, 2, 0, 0]);
    let mut s = PbSession::new(Side::Server);
    let cdata = batch(0x00, 1, &[&warn]);
    let b = s.receive(&cdata).unwrap();
    assert_eq!(b.fatal_error(), None);
    assert_eq!(s.state(), PbState::ServerWorking);
    assert!(s.can_send(BatchType::SData));
}

#[test]
fn violation_close_carries_one_fatal_error_with_the_right_code() {
    let cases: Vec<(Side, Vec<u8>, PbErrorCode, PbErrorParams<'static>)> = vec![
        (
            Side::Server,
            cat(&[&[0x01, 0x00, 0x00, 0x01], &8u32.to_be_bytes()]),
            PbErrorCode::VersionNotSupported,
            PbErrorParams::Version {
                bad: 1,
                max: 2,
                min: 2,
            },
        ),
        (
            Side::Client,
            batch(0x80, 9, &[]),
            PbErrorCode::InvalidParameter,
            PbErrorParams::Offset(3),
        ),
        (
            Side::Server,
            cdata_with(&[&lang_pref(), &message(0x80, 0x12, 1, b"")]),
            PbErrorCode::UnsupportedMandatoryMessage,
            PbErrorParams::Offset(39),
        ),
        (
            Side::Client,
            batch(0x80, 0, &[]),
            PbErrorCode::UnexpectedBatchType,
            PbErrorParams::None,
        ),
    ];
    for (role, bytes, code, params) in cases {
        let mut s = PbSession::new(role);
        let v = s.receive(&bytes).unwrap_err();
        assert_eq!(v.error.code(), code);
        assert!(s.is_ended());
        let e = assert_close_with(&v.close, role, code);
        assert_eq!(e.params, params, "{code:?}");
        // The violation's bytes also pass a peer session in End.
        let mut peer = PbSession::new(role.peer());
        peer.close(None);
        assert!(peer.receive(&v.close).is_ok());
    }
}

#[test]
fn close_in_end_is_accepted() {
    for role in [Side::Client, Side::Server] {
        let mut s = session_in(role, PbState::End);
        let close = from_peer(role, BatchType::Close);
        let b = s.receive(&close).unwrap();
        assert_eq!(b.batch_type, BatchType::Close);
        assert_eq!(s.state(), PbState::End);
        assert!(s.send(BatchType::Close, vec![]).is_ok());
        assert_eq!(s.state(), PbState::End);
    }
}

#[test]
fn local_close_and_abort() {
    let mut c = PbSession::new(Side::Client);
    let bytes = c.close(None).unwrap();
    assert_eq!(bytes, [0x02, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x08]);
    assert!(c.is_ended());
    let mut s = session_in(Side::Server, PbState::ServerWorking);
    let bytes = s.abort("IMV crashed").unwrap();
    let e = assert_close_with(&bytes, Side::Server, PbErrorCode::LocalError);
    assert_eq!(e.params, PbErrorParams::None);
    assert!(s.is_ended());
}

/// One batch from `from` to `to`; both states checked afterwards.
fn step(
    from: &mut PbSession,
    to: &mut PbSession,
    t: BatchType,
    msgs: Vec<PbMessage<'_>>,
    want: PbState,
) {
    let bytes = from.send(t, msgs).unwrap_or_else(|e| panic!("{t:?}: {e}"));
    let b = to.receive(&bytes).unwrap_or_else(|v| panic!("{t:?}: {v}"));
    assert_eq!(b.batch_type, t);
    assert_eq!(b.sender, from.side());
    assert_eq!(from.state(), want, "sender after {t:?}");
    assert_eq!(to.state(), want, "receiver after {t:?}");
}

#[test]
fn a_whole_session_between_client_and_server() {
    use BatchType::*;
    use PbState::*;
    let mut c = PbSession::new(Side::Client);
    let mut s = PbSession::new(Side::Server);
    let pa = |body: &'static [u8]| {
        PbMessage::Pa(PbPa {
            exclusive: false,
            subtype: PaSubtype::OPERATING_SYSTEM,
            collector_id: 1,
            validator_id: 0xFFFF,
            body,
        })
    };
    let lang = PbMessage::LanguagePreference("Accept-Language: en");
    let result = vec![
        PbMessage::AssessmentResult(AssessmentResult::NonCompliantMinor),
        PbMessage::AccessRecommendation(AccessRecommendation::Quarantined),
        PbMessage::RemediationParameters(Remediation::Uri("https://fix.example/")),
        PbMessage::ReasonString {
            text: "patch level too old",
            lang: "en",
        },
    ];

    step(
        &mut c,
        &mut s,
        CData,
        vec![lang, pa(b"hello")],
        ServerWorking,
    );
    assert!(!c.can_send(CData) && c.can_send(CRetry) && c.can_send(Close));
    step(&mut s, &mut c, SData, vec![pa(b"more")], ClientWorking);
    assert!(!s.can_send(SData) && !s.can_send(Result) && s.can_send(SRetry));
    step(&mut c, &mut s, CData, vec![pa(b"here")], ServerWorking);
    step(&mut s, &mut c, Result, result.clone(), Decided);
    step(&mut c, &mut s, CRetry, vec![], ServerWorking);
    step(&mut s, &mut c, SData, vec![], ClientWorking);
    step(&mut c, &mut s, CData, vec![pa(b"again")], ServerWorking);
    step(
        &mut s,
        &mut c,
        Result,
        vec![PbMessage::AssessmentResult(AssessmentResult::Compliant)],
        Decided,
    );
    step(&mut s, &mut c, SRetry, vec![], ServerWorking);
    step(&mut s, &mut c, SData, vec![pa(b"re-check")], ClientWorking);
    step(&mut c, &mut s, CData, vec![pa(b"fine")], ServerWorking);
    step(&mut s, &mut c, Result, result, Decided);
    step(&mut c, &mut s, Close, vec![], End);
    assert!(c.is_ended() && s.is_ended());
    // Only CLOSE is left.
    for t in [CData, CRetry] {
        assert!(!c.can_send(t));
    }
    assert!(c.can_send(Close) && s.can_send(Close));
}

#[test]
fn the_result_batch_reaches_the_client_whole() {
    let mut c = session_in(Side::Client, PbState::ServerWorking);
    let mut s = session_in(Side::Server, PbState::ServerWorking);
    let msgs = vec![
        PbMessage::AssessmentResult(AssessmentResult::NonCompliantMajor),
        PbMessage::AccessRecommendation(AccessRecommendation::Denied),
        PbMessage::RemediationParameters(Remediation::String {
            text: "run the updater",
            lang: "en",
        }),
    ];
    let bytes = s.send(BatchType::Result, msgs.clone()).unwrap();
    assert_eq!(c.receive(&bytes).unwrap().messages, msgs);
}

#[test]
fn server_may_not_send_result_messages_outside_result() {
    // RFC 5793 §4.6/§4.7 (digest §3): PB-Assessment-Result MUST NOT be in any
    // batch but RESULT; PB-Access-Recommendation is RESULT only.
    for m in [
        PbMessage::AssessmentResult(AssessmentResult::Compliant),
        PbMessage::AccessRecommendation(AccessRecommendation::Allowed),
    ] {
        let mut s = session_in(Side::Server, PbState::ServerWorking);
        let res = s.send(BatchType::SData, vec![m.clone()]);
        assert!(matches!(res, Err(SendError::Content(_))), "{m:?}: {res:?}");
        assert_eq!(s.state(), PbState::ServerWorking);
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Send(BatchType),
    Receive(BatchType),
}

fn op() -> impl Strategy<Value = Op> {
    (any::<bool>(), batch_type())
        .prop_map(|(send, t)| if send { Op::Send(t) } else { Op::Receive(t) })
}

proptest! {
    /// Any sequence of sends and receives moves the session exactly as the RFC
    /// table says: a refused send changes nothing, a refused receive ends it.
    #[test]
    fn session_follows_the_table_model(server in any::<bool>(), ops in proptest::collection::vec(op(), 0..24)) {
        let role = if server { Side::Server } else { Side::Client };
        let mut s = PbSession::new(role);
        let mut model = PbState::Init;
        for op in ops {
            match op {
                Op::Send(t) => {
                    let next = t.sendable_by(role).then(|| expected_next(model, t)).flatten();
                    let res = s.send(t, msgs_for(t));
                    prop_assert_eq!(res.is_ok(), next.is_some(), "{:?} in {:?}", op, model);
                    if let Some(n) = next {
                        model = n;
                    }
                }
                Op::Receive(t) => {
                    let next = t.sendable_by(role.peer()).then(|| expected_next(model, t)).flatten();
                    let bytes = from_peer(role, t);
                    let res = s.receive(&bytes);
                    prop_assert_eq!(res.is_ok(), next.is_some(), "{:?} in {:?}", op, model);
                    model = next.unwrap_or(PbState::End);
                }
            }
            prop_assert_eq!(s.state(), model);
        }
    }
}

/// Found by the pb_tnc_batch fuzzer: a PB-Language-Preference with NOSKIP set was
/// accepted (and re-encoded without it). strongSwan refuses it; so do we.
#[test]
fn language_preference_with_noskip_is_invalid_parameter() {
    let bytes = tnc_proto::pb_tnc::Batch::decode(&[
        0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x25, // CDATA, 37 bytes
        0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
        0x1d, // NOSKIP, type 6
        b'A', b'c', b'c', b'e', b'p', b't', b'-', b'L', b'a', b'n', b'g', b'u', b'a', b'g', b'e',
        b':', b' ',
    ]);
    assert_eq!(
        bytes,
        Err(tnc_proto::pb_tnc::BatchError::InvalidParameter {
            offset: 8,
            what: "NOSKIP flag contradicts RFC 5793 for this type"
        })
    );
}
