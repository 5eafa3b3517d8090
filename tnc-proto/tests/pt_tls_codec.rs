//! PT-TLS (RFC 6876) through the public API: every message type against bytes
//! written by hand from the RFC layout (digest: shared/specs/nea-pt-tls.md), the
//! errors a bad header or value produces, round trips of arbitrary messages, and the
//! client and server endpoints talking to each other and to misbehaving peers.

use proptest::prelude::*;
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_proto::pt_tls::{
    error_message, ClientConnection, CloseReason, ErrorCode, Event, Framer, Limits, Mechanism,
    Message, MessageBody, NotReady, PtTlsError, SaslPolicy, SaslResultCode, SaslResultWidth,
    ServerConnection, MAX_ERROR_COPY,
};
use tnc_proto::U24;

const MAX: u32 = 1 << 20;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn mech(name: &str) -> Mechanism<'_> {
    Mechanism::new(name).expect("valid mechanism name")
}

// ---------------------------------------------------------------------------
// Hand-written vectors: 16-byte header (reserved, vendor, type, length, id), value.
// ---------------------------------------------------------------------------

const EXPERIMENTAL: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x00, // type 0 Experimental
    0x00, 0x00, 0x00, 0x13, // length 19
    0x00, 0x00, 0x00, 0x2A, // identifier 42
    b'x', b'y', b'z',
];

const VERSION_REQUEST: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x01, // type 1 Version Request
    0x00, 0x00, 0x00, 0x14, // length 20
    0x00, 0x00, 0x00, 0x00, // identifier 0
    0x00, 0x01, 0x01, 0x01, // reserved | min | max | preferred
];

const VERSION_RESPONSE: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x02, // type 2 Version Response
    0x00, 0x00, 0x00, 0x14, // length 20
    0x00, 0x00, 0x00, 0x00, // identifier 0
    0x00, 0x00, 0x00, 0x01, // reserved (24) | version
];

const SASL_MECHANISMS_EMPTY: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x03, // type 3 SASL Mechanisms
    0x00, 0x00, 0x00, 0x10, // length 16
    0x00, 0x00, 0x00, 0x01, // identifier 1
];

fn sasl_mechanisms_two() -> Vec<u8> {
    cat(&[
        &[
            0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
            0x00, 0x00, 0x00, 0x03, // type 3 SASL Mechanisms
            0x00, 0x00, 0x00, 0x24, // length 36 = 16 + 6 + 14
            0x00, 0x00, 0x00, 0x01, // identifier 1
            0x05, // R R R | Mech Len 5
        ],
        b"PLAIN",
        &[0x0D], // Mech Len 13
        b"SCRAM-SHA-256",
    ])
}

fn selection_plain() -> Vec<u8> {
    cat(&[
        &[
            0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
            0x00, 0x00, 0x00, 0x04, // type 4 SASL Mechanism Selection
            0x00, 0x00, 0x00, 0x16, // length 22
            0x00, 0x00, 0x00, 0x01, // identifier 1
            0x05,
        ],
        b"PLAIN",
    ])
}

fn selection_plain_initial() -> Vec<u8> {
    cat(&[
        &[
            0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
            0x00, 0x00, 0x00, 0x04, // type 4 SASL Mechanism Selection
            0x00, 0x00, 0x00, 0x1D, // length 29 = 16 + 6 + 7
            0x00, 0x00, 0x00, 0x01, // identifier 1
            0x05,
        ],
        b"PLAIN",
        b"\0tim\0pw",
    ])
}

const SASL_AUTH_DATA: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x05, // type 5 SASL Authentication Data
    0x00, 0x00, 0x00, 0x14, // length 20
    0x00, 0x00, 0x00, 0x02, // identifier 2
    0x00, 0x01, 0x02, 0xFF,
];

const SASL_RESULT_ONE_BYTE_SUCCESS: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x06, // type 6 SASL Result
    0x00, 0x00, 0x00, 0x11, // length 17 (strongSwan form)
    0x00, 0x00, 0x00, 0x02, // identifier 2
    0x00, // Success, one byte
];

const SASL_RESULT_ONE_BYTE_FAILURE: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x06, // type 6 SASL Result
    0x00, 0x00, 0x00, 0x11, // length 17
    0x00, 0x00, 0x00, 0x02, // identifier 2
    0x01, // Failure, one byte
];

const SASL_RESULT_TWO_BYTE_ABORT: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x06, // type 6 SASL Result
    0x00, 0x00, 0x00, 0x12, // length 18
    0x00, 0x00, 0x00, 0x03, // identifier 3
    0x00, 0x02, // Abort, 16 bits
];

const SASL_RESULT_TWO_BYTE_MECH_FAILURE: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x06, // type 6 SASL Result
    0x00, 0x00, 0x00, 0x12, // length 18
    0x00, 0x00, 0x00, 0x03, // identifier 3
    0x00, 0x03, // Mechanism Failure, 16 bits
];

const SASL_RESULT_SUCCESS_DATA: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x06, // type 6 SASL Result
    0x00, 0x00, 0x00, 0x14, // length 20
    0x00, 0x00, 0x00, 0x04, // identifier 4
    0x00, 0x00, b'o', b'k', // Success (16 bits) | result data "ok"
];

const PB_TNC_BATCH: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x07, // type 7 PB-TNC Batch
    0x00, 0x00, 0x00, 0x18, // length 24
    0x00, 0x00, 0x00, 0x05, // identifier 5
    0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, // empty CDATA batch
];

const PT_TLS_ERROR: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x08, // type 8 PT-TLS Error
    0x00, 0x00, 0x00, 0x28, // length 40 = 16 + 8 + 16
    0x00, 0x00, 0x00, 0x06, // identifier 6
    0x00, 0x00, 0x00, 0x00, // reserved | error code vendor 0
    0x00, 0x00, 0x00, 0x04, // Invalid Message
    // copy of the offending message: the PB-TNC Batch header above
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x05,
];

const UNKNOWN_VENDOR: &[u8] = &[
    0x00, 0x00, 0x55, 0x97, // reserved | vendor 0x005597 (TCG)
    0x00, 0x00, 0x00, 0xAB, // type 0xAB
    0x00, 0x00, 0x00, 0x12, // length 18
    0x00, 0x00, 0x00, 0x07, // identifier 7
    0xDE, 0xAD,
];

const UNASSIGNED_IETF: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, // reserved | vendor 0
    0x00, 0x00, 0x00, 0x09, // type 9: unassigned
    0x00, 0x00, 0x00, 0x10, // length 16
    0x00, 0x00, 0x00, 0x08, // identifier 8
];

/// Every vector with the message it must decode to.
fn vectors() -> Vec<(&'static str, Vec<u8>, Message<'static>)> {
    vec![
        (
            "Experimental",
            EXPERIMENTAL.to_vec(),
            Message {
                identifier: 42,
                body: MessageBody::Experimental(b"xyz"),
            },
        ),
        (
            "Version Request",
            VERSION_REQUEST.to_vec(),
            Message {
                identifier: 0,
                body: MessageBody::VersionRequest {
                    min: 1,
                    max: 1,
                    preferred: 1,
                },
            },
        ),
        (
            "Version Response",
            VERSION_RESPONSE.to_vec(),
            Message {
                identifier: 0,
                body: MessageBody::VersionResponse { version: 1 },
            },
        ),
        (
            "SASL Mechanisms (empty)",
            SASL_MECHANISMS_EMPTY.to_vec(),
            Message {
                identifier: 1,
                body: MessageBody::SaslMechanisms(vec![]),
            },
        ),
        (
            "SASL Mechanisms (PLAIN, SCRAM-SHA-256)",
            sasl_mechanisms_two(),
            Message {
                identifier: 1,
                body: MessageBody::SaslMechanisms(vec![Mechanism::PLAIN, mech("SCRAM-SHA-256")]),
            },
        ),
        (
            "SASL Mechanism Selection (no initial response)",
            selection_plain(),
            Message {
                identifier: 1,
                body: MessageBody::SaslMechanismSelection {
                    mechanism: Mechanism::PLAIN,
                    initial: b"",
                },
            },
        ),
        (
            "SASL Mechanism Selection (initial response)",
            selection_plain_initial(),
            Message {
                identifier: 1,
                body: MessageBody::SaslMechanismSelection {
                    mechanism: Mechanism::PLAIN,
                    initial: b"\0tim\0pw",
                },
            },
        ),
        (
            "SASL Authentication Data",
            SASL_AUTH_DATA.to_vec(),
            Message {
                identifier: 2,
                body: MessageBody::SaslAuthenticationData(&[0x00, 0x01, 0x02, 0xFF]),
            },
        ),
        (
            "SASL Result (1 byte, Success)",
            SASL_RESULT_ONE_BYTE_SUCCESS.to_vec(),
            Message {
                identifier: 2,
                body: MessageBody::SaslResult {
                    code: SaslResultCode::Success,
                    data: b"",
                    width: SaslResultWidth::OneByte,
                },
            },
        ),
        (
            "SASL Result (1 byte, Failure)",
            SASL_RESULT_ONE_BYTE_FAILURE.to_vec(),
            Message {
                identifier: 2,
                body: MessageBody::SaslResult {
                    code: SaslResultCode::Failure,
                    data: b"",
                    width: SaslResultWidth::OneByte,
                },
            },
        ),
        (
            "SASL Result (2 bytes, Abort)",
            SASL_RESULT_TWO_BYTE_ABORT.to_vec(),
            Message {
                identifier: 3,
                body: MessageBody::SaslResult {
                    code: SaslResultCode::Abort,
                    data: b"",
                    width: SaslResultWidth::TwoBytes,
                },
            },
        ),
        (
            "SASL Result (2 bytes, Mechanism Failure)",
            SASL_RESULT_TWO_BYTE_MECH_FAILURE.to_vec(),
            Message {
                identifier: 3,
                body: MessageBody::SaslResult {
                    code: SaslResultCode::MechanismFailure,
                    data: b"",
                    width: SaslResultWidth::TwoBytes,
                },
            },
        ),
        (
            "SASL Result (2 bytes, Success with data)",
            SASL_RESULT_SUCCESS_DATA.to_vec(),
            Message {
                identifier: 4,
                body: MessageBody::SaslResult {
                    code: SaslResultCode::Success,
                    data: b"ok",
                    width: SaslResultWidth::TwoBytes,
                },
            },
        ),
        (
            "PB-TNC Batch",
            PB_TNC_BATCH.to_vec(),
            Message {
                identifier: 5,
                body: MessageBody::PbTncBatch(&[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08]),
            },
        ),
        (
            "PT-TLS Error",
            PT_TLS_ERROR.to_vec(),
            Message {
                identifier: 6,
                body: MessageBody::Error {
                    vendor: U24::IETF,
                    code: 4,
                    original: &PB_TNC_BATCH[..16],
                },
            },
        ),
        (
            "unknown vendor type",
            UNKNOWN_VENDOR.to_vec(),
            Message {
                identifier: 7,
                body: MessageBody::Unknown {
                    vendor: U24::TCG,
                    message_type: 0xAB,
                    value: &[0xDE, 0xAD],
                },
            },
        ),
        (
            "unassigned IETF type",
            UNASSIGNED_IETF.to_vec(),
            Message {
                identifier: 8,
                body: MessageBody::Unknown {
                    vendor: U24::IETF,
                    message_type: 9,
                    value: &[],
                },
            },
        ),
    ]
}

#[test]
fn every_vector_decodes_and_encodes_byte_for_byte() {
    for (name, bytes, expected) in vectors() {
        let decoded = Message::decode(&bytes, MAX).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected, "{name}: decode");
        assert_eq!(expected.to_bytes(), bytes, "{name}: encode");
        let mut appended = vec![0xEE];
        expected.encode(&mut appended);
        assert_eq!(&appended[1..], &bytes[..], "{name}: encode appends");
    }
}

#[test]
fn vector_header_fields_match_the_body() {
    // The type number in the header is what type_id reports, vendor 0 for IETF types.
    for (name, bytes, expected) in vectors() {
        let (vendor, t) = expected.body.type_id();
        assert_eq!(
            u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]),
            vendor.get(),
            "{name}"
        );
        assert_eq!(
            u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
            t,
            "{name}"
        );
        assert_eq!(
            u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize,
            bytes.len(),
            "{name}: Message Length includes the header"
        );
    }
}

#[test]
fn every_truncation_is_refused() {
    for (name, bytes, _) in vectors() {
        for cut in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..cut], MAX).is_err(),
                "{name}: prefix of {cut} bytes accepted"
            );
        }
    }
}

#[test]
fn a_trailing_byte_is_refused() {
    for (name, bytes, _) in vectors() {
        let mut longer = bytes.clone();
        longer.push(0);
        let err = Message::decode(&longer, MAX).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidParameter, "{name}");
    }
}

#[test]
fn truncating_fixed_size_values_with_a_consistent_length_is_malformed() {
    // Cutting the value and fixing the Message Length: the header is then fine and
    // the value itself is too short.
    for (name, bytes) in [
        ("Version Request", VERSION_REQUEST.to_vec()),
        ("Version Response", VERSION_RESPONSE.to_vec()),
        ("SASL Mechanisms", sasl_mechanisms_two()),
        ("SASL Mechanism Selection", selection_plain()),
        ("PT-TLS Error", PT_TLS_ERROR[..24].to_vec()),
    ] {
        for value_len in 0..bytes.len() - 16 {
            if name == "SASL Mechanisms" && value_len == 6 {
                continue; // exactly the first entry: a valid one-entry list
            }
            let mut cut = bytes[..16 + value_len].to_vec();
            cut[8..12].copy_from_slice(&((16 + value_len) as u32).to_be_bytes());
            if name == "SASL Mechanisms" && value_len == 0 {
                assert!(Message::decode(&cut, MAX).is_ok(), "empty list is legal");
                continue;
            }
            let err = Message::decode(&cut, MAX)
                .expect_err(&format!("{name} with a {value_len}-byte value accepted"));
            assert_eq!(
                err.code(),
                ErrorCode::MalformedMessage,
                "{name} {value_len}"
            );
        }
    }
    // SASL Result with an empty value.
    let mut empty = SASL_RESULT_ONE_BYTE_SUCCESS[..16].to_vec();
    empty[8..12].copy_from_slice(&16u32.to_be_bytes());
    assert_eq!(
        Message::decode(&empty, MAX).unwrap_err().code(),
        ErrorCode::MalformedMessage
    );
}

// ---------------------------------------------------------------------------
// Header and value errors
// ---------------------------------------------------------------------------

fn with_length(bytes: &[u8], len: u32) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[8..12].copy_from_slice(&len.to_be_bytes());
    v
}

#[test]
fn message_length_below_the_header_is_invalid_parameter() {
    for len in [0u32, 1, 15] {
        // With the value still present, and with the header alone.
        for bytes in [
            with_length(VERSION_REQUEST, len),
            with_length(&VERSION_REQUEST[..16], len),
        ] {
            let err = Message::decode(&bytes, MAX).unwrap_err();
            assert!(
                matches!(err, PtTlsError::InvalidParameter(_)),
                "length {len}: {err:?}"
            );
            assert_eq!(err.code(), ErrorCode::InvalidParameter);
        }
    }
}

#[test]
fn message_length_above_the_maximum_is_invalid_parameter() {
    let err = Message::decode(VERSION_REQUEST, 19).unwrap_err();
    assert!(matches!(err, PtTlsError::InvalidParameter(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::InvalidParameter);
    // Exactly the maximum is fine.
    assert!(Message::decode(VERSION_REQUEST, 20).is_ok());
    // The check is on the header field, before any value is looked at.
    let huge = with_length(&VERSION_REQUEST[..16], u32::MAX);
    assert_eq!(
        Message::decode(&huge, MAX).unwrap_err().code(),
        ErrorCode::InvalidParameter
    );
}

#[test]
fn message_length_differing_from_the_bytes_is_invalid_parameter() {
    let longer_field = with_length(VERSION_REQUEST, 24);
    assert_eq!(
        Message::decode(&longer_field, MAX).unwrap_err().code(),
        ErrorCode::InvalidParameter
    );
    let shorter_field = with_length(VERSION_REQUEST, 18);
    assert_eq!(
        Message::decode(&shorter_field, MAX).unwrap_err().code(),
        ErrorCode::InvalidParameter
    );
}

#[test]
fn version_request_value_of_3_or_5_bytes_is_malformed() {
    let three: &[u8] = &[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x01,
    ];
    let five: &[u8] = &[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x01, 0x01, 0x00,
    ];
    for bytes in [three, five] {
        let err = Message::decode(bytes, MAX).unwrap_err();
        assert!(matches!(err, PtTlsError::MalformedMessage(_)), "{err:?}");
        assert_eq!(err.code(), ErrorCode::MalformedMessage);
    }
    // Same for a Version Response of 5 bytes.
    let mut resp = with_length(VERSION_RESPONSE, 21);
    resp.push(0);
    assert_eq!(
        Message::decode(&resp, MAX).unwrap_err().code(),
        ErrorCode::MalformedMessage
    );
}

#[test]
fn lowercase_mechanism_name_is_malformed() {
    let bytes = cat(&[
        &[
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00,
            0x00, 0x01, 0x05,
        ],
        b"plain",
    ]);
    let err = Message::decode(&bytes, MAX).unwrap_err();
    assert!(matches!(err, PtTlsError::MalformedMessage(_)), "{err:?}");
    // In a Selection too, and a bad second entry after a good first one.
    let mut sel = bytes.clone();
    sel[7] = 4;
    assert_eq!(
        Message::decode(&sel, MAX).unwrap_err().code(),
        ErrorCode::MalformedMessage
    );
    let mut second = sasl_mechanisms_two();
    second[16 + 6 + 1] = b's'; // "sCRAM-SHA-256"
    assert_eq!(
        Message::decode(&second, MAX).unwrap_err().code(),
        ErrorCode::MalformedMessage
    );
}

#[test]
fn mechanism_names_follow_rfc4422() {
    assert!(Mechanism::new("PLAIN").is_some());
    assert!(Mechanism::new("SCRAM-SHA-1_X9").is_some());
    assert!(Mechanism::new("ABCDEFGHIJKLMNOPQRST").is_some(), "20 chars");
    assert!(
        Mechanism::new("ABCDEFGHIJKLMNOPQRSTU").is_none(),
        "21 chars"
    );
    assert!(Mechanism::new("").is_none());
    assert!(Mechanism::new("plain").is_none());
    assert!(Mechanism::new("PLA IN").is_none());
    // A zero-length entry on the wire is refused.
    let bytes = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00,
        0x01, 0x00,
    ];
    assert_eq!(
        Message::decode(&bytes, MAX).unwrap_err().code(),
        ErrorCode::MalformedMessage
    );
}

#[test]
fn mechanism_length_ignores_the_reserved_bits() {
    // R R R bits set: the length is the low 5 bits (digest §3.3, strongSwan `& 0x1F`).
    let mut bytes = selection_plain();
    bytes[16] = 0xE5;
    let msg = Message::decode(&bytes, MAX).unwrap();
    assert_eq!(
        msg.body,
        MessageBody::SaslMechanismSelection {
            mechanism: Mechanism::PLAIN,
            initial: b""
        }
    );
}

#[test]
fn undefined_sasl_result_code_is_malformed() {
    let one = with_length(&[&SASL_RESULT_ONE_BYTE_SUCCESS[..16], &[0x09]].concat(), 17);
    let two = with_length(
        &[&SASL_RESULT_ONE_BYTE_SUCCESS[..16], &[0x00, 0x09]].concat(),
        18,
    );
    for bytes in [one, two] {
        let err = Message::decode(&bytes, MAX).unwrap_err();
        assert!(matches!(err, PtTlsError::MalformedMessage(_)), "{err:?}");
    }
}

#[test]
fn sasl_result_data_only_with_success() {
    // Failure (16 bits) followed by data.
    let bytes = with_length(
        &[&SASL_RESULT_ONE_BYTE_SUCCESS[..16], &[0x00, 0x01, b'x']].concat(),
        19,
    );
    assert_eq!(
        Message::decode(&bytes, MAX).unwrap_err().code(),
        ErrorCode::MalformedMessage
    );
}

#[test]
fn error_copy_is_cut_at_1024_bytes() {
    let original: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    let msg = error_message(3, ErrorCode::MalformedMessage, &original);
    match &msg.body {
        MessageBody::Error {
            vendor,
            code,
            original: copy,
        } => {
            assert_eq!(*vendor, U24::IETF);
            assert_eq!(*code, 1);
            assert_eq!(copy.len(), MAX_ERROR_COPY);
            assert_eq!(MAX_ERROR_COPY, 1024);
            assert_eq!(*copy, &original[..1024]);
        }
        other => panic!("not an error: {other:?}"),
    }
    let bytes = msg.to_bytes();
    assert_eq!(bytes.len(), 16 + 8 + 1024);
    assert_eq!(&bytes[8..12], &(16u32 + 8 + 1024).to_be_bytes());
    assert_eq!(&bytes[16..24], &[0, 0, 0, 0, 0, 0, 0, 1]);
    // A short original is kept whole.
    let short = error_message(3, ErrorCode::InvalidMessage, &original[..20]);
    assert_eq!(short.to_bytes().len(), 16 + 8 + 20);
    // The encoder cuts too, for an Error built by hand.
    let by_hand = Message {
        identifier: 0,
        body: MessageBody::Error {
            vendor: U24::IETF,
            code: 4,
            original: &original,
        },
    };
    assert_eq!(by_hand.to_bytes().len(), 16 + 8 + 1024);
}

#[test]
fn error_codes_and_fatality_follow_rfc6876() {
    let table = [
        (0, ErrorCode::Reserved, false),
        (1, ErrorCode::MalformedMessage, true),
        (2, ErrorCode::VersionNotSupported, true),
        (3, ErrorCode::TypeNotSupported, false),
        (4, ErrorCode::InvalidMessage, true),
        (5, ErrorCode::SaslMechanismError, true),
        (6, ErrorCode::InvalidParameter, true),
    ];
    for (n, code, fatal) in table {
        assert_eq!(ErrorCode::from_u32(n), code);
        assert_eq!(code.to_u32(), n);
        assert_eq!(code.is_fatal(), fatal, "{code:?}");
    }
    assert_eq!(ErrorCode::from_u32(77), ErrorCode::Unknown(77));
}

// ---------------------------------------------------------------------------
// Round trips of arbitrary messages
// ---------------------------------------------------------------------------

/// An owned description of a message body, from which the borrowed one is built.
#[derive(Clone, Debug)]
enum Body {
    Experimental(Vec<u8>),
    VersionRequest(u8, u8, u8),
    VersionResponse(u8),
    SaslMechanisms(Vec<String>),
    Selection(String, Vec<u8>),
    AuthData(Vec<u8>),
    /// Code, data, two-byte width. One-byte results carry no data: `00 xx` cannot
    /// be told apart from a 16-bit code.
    SaslResult(u16, Vec<u8>, bool),
    Batch(Vec<u8>),
    Error(u32, u32, Vec<u8>),
    Unknown(u32, u32, Vec<u8>),
}

impl Body {
    fn message(&self, identifier: u32) -> Message<'_> {
        let body = match self {
            Body::Experimental(v) => MessageBody::Experimental(v),
            Body::VersionRequest(min, max, preferred) => MessageBody::VersionRequest {
                min: *min,
                max: *max,
                preferred: *preferred,
            },
            Body::VersionResponse(version) => MessageBody::VersionResponse { version: *version },
            Body::SaslMechanisms(list) => {
                MessageBody::SaslMechanisms(list.iter().map(|n| mech(n)).collect())
            }
            Body::Selection(name, initial) => MessageBody::SaslMechanismSelection {
                mechanism: mech(name),
                initial,
            },
            Body::AuthData(v) => MessageBody::SaslAuthenticationData(v),
            Body::SaslResult(code, data, two) => MessageBody::SaslResult {
                code: SaslResultCode::from_u16(*code).unwrap(),
                data,
                width: if *two {
                    SaslResultWidth::TwoBytes
                } else {
                    SaslResultWidth::OneByte
                },
            },
            Body::Batch(v) => MessageBody::PbTncBatch(v),
            Body::Error(vendor, code, original) => MessageBody::Error {
                vendor: U24::new(*vendor).unwrap(),
                code: *code,
                original,
            },
            Body::Unknown(vendor, message_type, value) => MessageBody::Unknown {
                vendor: U24::new(*vendor).unwrap(),
                message_type: *message_type,
                value,
            },
        };
        Message { identifier, body }
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn mechanism_name() -> impl Strategy<Value = String> {
    "[A-Z0-9_-]{1,20}"
}

fn body_strategy() -> impl Strategy<Value = Body> {
    prop_oneof![
        bytes(64).prop_map(Body::Experimental),
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| Body::VersionRequest(a, b, c)),
        any::<u8>().prop_map(Body::VersionResponse),
        proptest::collection::vec(mechanism_name(), 0..6).prop_map(Body::SaslMechanisms),
        (mechanism_name(), bytes(64)).prop_map(|(n, i)| Body::Selection(n, i)),
        bytes(64).prop_map(Body::AuthData),
        (0u16..4, any::<bool>()).prop_map(|(c, two)| Body::SaslResult(c, vec![], two)),
        bytes(32).prop_map(|d| Body::SaslResult(0, d, true)),
        bytes(128).prop_map(Body::Batch),
        (0u32..=0xFF_FFFF, any::<u32>(), bytes(MAX_ERROR_COPY + 1))
            .prop_map(|(v, c, o)| Body::Error(v, c, o)),
        (1u32..=0xFF_FFFF, any::<u32>(), bytes(64)).prop_map(|(v, t, b)| Body::Unknown(v, t, b)),
        (9u32..=u32::MAX, bytes(64)).prop_map(|(t, b)| Body::Unknown(0, t, b)),
    ]
}

proptest! {
    #[test]
    fn arbitrary_messages_round_trip(id in any::<u32>(), body in body_strategy()) {
        let msg = body.message(id);
        let bytes = msg.to_bytes();
        prop_assert_eq!(bytes.len() as u32, u32::from_be_bytes(bytes[8..12].try_into().unwrap()));
        prop_assert_eq!(&bytes[12..16], &id.to_be_bytes());
        let decoded = Message::decode(&bytes, bytes.len() as u32).unwrap();
        prop_assert_eq!(&decoded, &msg);
        prop_assert_eq!(decoded.to_bytes(), bytes);
    }

    #[test]
    fn arbitrary_messages_frame_in_any_chunking(
        bodies in proptest::collection::vec(body_strategy(), 1..6),
        chunk in 1usize..40,
    ) {
        let msgs: Vec<_> = bodies.iter().enumerate().map(|(i, b)| b.message(i as u32)).collect();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| m.to_bytes()).collect();
        let mut framer = Framer::new(MAX);
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            framer.push(c);
            while let Some(frame) = framer.next_frame().unwrap() {
                got.push(frame);
            }
        }
        prop_assert_eq!(got.len(), msgs.len());
        for (frame, msg) in got.iter().zip(&msgs) {
            prop_assert_eq!(&Message::decode(frame, MAX).unwrap(), msg);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes(64), max in 0u32..100) {
        let _ = Message::decode(&bytes, max);
    }
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

fn client_events(c: &mut ClientConnection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn server_events(s: &mut ServerConnection) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Moves bytes both ways until neither side has anything to send.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
    for _ in 0..100 {
        let to_server = c.take_output();
        let to_client = s.take_output();
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
        s.receive(&to_server);
        c.receive(&to_client);
    }
    panic!("endpoints never went quiet");
}

/// Splits an output stream into messages.
fn frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut f = Framer::new(u32::MAX);
    f.push(stream);
    let mut out = Vec::new();
    while let Some(frame) = f.next_frame().unwrap() {
        out.push(frame);
    }
    assert_eq!(f.buffered(), 0, "output ends on a message boundary");
    out
}

/// The one PT-TLS Error in `stream`: (code, copy of the original).
fn sole_error(stream: &[u8]) -> (u32, Vec<u8>) {
    let frames = frames(stream);
    assert_eq!(frames.len(), 1, "exactly one message: {frames:?}");
    let f = &frames[0];
    assert_eq!(&f[..8], &[0, 0, 0, 0, 0, 0, 0, 8], "an IETF PT-TLS Error");
    match Message::decode(f, u32::MAX).unwrap().body {
        MessageBody::Error {
            vendor,
            code,
            original,
        } => {
            assert_eq!(vendor, U24::IETF);
            (code, original.to_vec())
        }
        other => panic!("not an error: {other:?}"),
    }
}

fn credentials() -> PlainCredentials {
    PlainCredentials::new("alice", "secret")
}

#[test]
fn no_sasl_negotiation_then_batches_both_ways() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    assert!(!c.is_ready() && !s.is_ready());
    assert_eq!(c.send_batch(&[2, 0, 0, 1, 0, 0, 0, 8]), Err(NotReady));
    assert_eq!(s.send_batch(&[2, 0x80, 0, 2, 0, 0, 0, 8]), Err(NotReady));

    // The client opens with the Version Request, byte for byte.
    let vr = c.take_output();
    assert_eq!(vr, VERSION_REQUEST);
    s.receive(&vr);
    assert_eq!(
        server_events(&mut s),
        [Event::VersionNegotiated(1), Event::Ready]
    );
    assert!(s.is_ready());
    // Version Response (id 0) then an empty SASL Mechanisms (id 1).
    let answer = s.take_output();
    assert_eq!(answer, [VERSION_RESPONSE, SASL_MECHANISMS_EMPTY].concat());
    c.receive(&answer);
    assert_eq!(
        client_events(&mut c),
        [Event::VersionNegotiated(1), Event::Ready]
    );
    assert!(c.is_ready());
    assert!(!c.wants_write() && !s.wants_write());

    let cdata = [2u8, 0, 0, 1, 0, 0, 0, 8];
    c.send_batch(&cdata).unwrap();
    let out = c.take_output();
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(
        Message::decode(&f[0], MAX).unwrap().body,
        MessageBody::PbTncBatch(&cdata)
    );
    s.receive(&out);
    assert_eq!(server_events(&mut s), [Event::Batch(cdata.to_vec())]);

    let sdata = [2u8, 0x80, 0, 2, 0, 0, 0, 8];
    s.send_batch(&sdata).unwrap();
    s.send_batch(&sdata).unwrap();
    pump(&mut c, &mut s);
    assert_eq!(
        client_events(&mut c),
        [Event::Batch(sdata.to_vec()), Event::Batch(sdata.to_vec())]
    );
    assert!(!c.is_closed() && !s.is_closed());
}

#[test]
fn identifiers_count_up_per_sender() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    pump(&mut c, &mut s);
    for _ in 0..3 {
        c.send_batch(&[2, 0, 0, 1, 0, 0, 0, 8]).unwrap();
    }
    let ids: Vec<u32> = frames(&c.take_output())
        .iter()
        .map(|f| Message::decode(f, MAX).unwrap().identifier)
        .collect();
    assert_eq!(ids, [1, 2, 3], "the Version Request took 0");
}

#[test]
fn batches_split_into_single_bytes_arrive_whole() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    for b in c.take_output() {
        s.receive(&[b]);
    }
    for b in s.take_output() {
        c.receive(&[b]);
    }
    assert!(c.is_ready() && s.is_ready());
    let batch: Vec<u8> = [2u8, 0, 0, 1, 0, 0, 0, 8].to_vec();
    c.send_batch(&batch).unwrap();
    c.send_batch(&batch).unwrap();
    let out = c.take_output();
    server_events(&mut s);
    for b in out {
        s.receive(&[b]);
    }
    assert_eq!(
        server_events(&mut s),
        [Event::Batch(batch.clone()), Event::Batch(batch)]
    );
}

#[test]
fn plain_with_good_password() {
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 3 });
    pump(&mut c, &mut s);
    assert_eq!(
        server_events(&mut s),
        [
            Event::VersionNegotiated(1),
            Event::Authenticate(credentials())
        ]
    );
    assert_eq!(client_events(&mut c), [Event::VersionNegotiated(1)]);
    assert!(!s.is_ready() && !c.is_ready());
    assert_eq!(s.send_batch(&[2, 0x80, 0, 2, 0, 0, 0, 8]), Err(NotReady));
    assert_eq!(c.send_batch(&[2, 0, 0, 1, 0, 0, 0, 8]), Err(NotReady));

    s.authentication_result(true);
    assert_eq!(server_events(&mut s), [Event::Authenticated, Event::Ready]);
    // SASL Result Success in the 1-byte form, then an empty SASL Mechanisms.
    let out = s.take_output();
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert_eq!(&f[0][..12], &SASL_RESULT_ONE_BYTE_SUCCESS[..12]);
    assert_eq!(&f[0][16..], &[0x00]);
    assert_eq!(
        Message::decode(&f[1], MAX).unwrap().body,
        MessageBody::SaslMechanisms(vec![])
    );
    c.receive(&out);
    assert_eq!(client_events(&mut c), [Event::Authenticated, Event::Ready]);
    assert!(c.is_ready() && s.is_ready());
    c.send_batch(&[2, 0, 0, 1, 0, 0, 0, 8]).unwrap();
    pump(&mut c, &mut s);
    assert_eq!(
        server_events(&mut s),
        [Event::Batch(vec![2, 0, 0, 1, 0, 0, 0, 8])]
    );
}

#[test]
fn plain_client_sends_its_credentials_as_initial_response() {
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 1 });
    s.receive(&c.take_output());
    let offer = s.take_output();
    let f = frames(&offer);
    assert_eq!(
        Message::decode(&f[1], MAX).unwrap().body,
        MessageBody::SaslMechanisms(vec![Mechanism::PLAIN])
    );
    c.receive(&offer);
    let sel = frames(&c.take_output());
    assert_eq!(sel.len(), 1);
    assert_eq!(
        Message::decode(&sel[0], MAX).unwrap().body,
        MessageBody::SaslMechanismSelection {
            mechanism: Mechanism::PLAIN,
            initial: b"\0alice\0secret",
        }
    );
}

#[test]
fn plain_wrong_password_with_attempts_left() {
    // The server offers PLAIN again; the client has no other credentials and ends
    // the session with a SASL Mechanism Error.
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 3 });
    pump(&mut c, &mut s);
    server_events(&mut s);
    client_events(&mut c);

    s.authentication_result(false);
    assert_eq!(
        server_events(&mut s),
        [Event::AuthenticationFailed(SaslResultCode::Failure)]
    );
    assert!(!s.is_closed());
    let out = s.take_output();
    let f = frames(&out);
    assert_eq!(f.len(), 2, "SASL Result Failure and a new offer");
    assert_eq!(&f[0][16..], &[0x01]);
    assert_eq!(
        Message::decode(&f[1], MAX).unwrap().body,
        MessageBody::SaslMechanisms(vec![Mechanism::PLAIN])
    );
    c.receive(&out);
    let ev = client_events(&mut c);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0], Event::AuthenticationFailed(SaslResultCode::Failure));
    assert!(
        matches!(
            &ev[1],
            Event::Closed(CloseReason::LocalError(PtTlsError::SaslMechanism(_)))
        ),
        "{ev:?}"
    );
    assert!(c.is_closed() && !c.is_ready());
    let err = c.take_output();
    let (code, copy) = sole_error(&err);
    assert_eq!(code, 5, "SASL Mechanism Error");
    assert_eq!(copy, f[1], "copy of the re-offer");

    s.receive(&err);
    assert_eq!(
        server_events(&mut s),
        [
            Event::PeerError {
                vendor: U24::IETF,
                code: ErrorCode::SaslMechanismError,
                original: f[1].clone(),
            },
            Event::Closed(CloseReason::PeerError(ErrorCode::SaslMechanismError)),
        ]
    );
    assert!(s.is_closed());
    assert!(s.take_output().is_empty(), "no error answers an error");
}

#[test]
fn plain_wrong_password_last_attempt() {
    // No attempts left: the server itself ends with a SASL Mechanism Error.
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 1 });
    pump(&mut c, &mut s);
    server_events(&mut s);
    client_events(&mut c);

    s.authentication_result(false);
    let ev = server_events(&mut s);
    assert_eq!(ev[0], Event::AuthenticationFailed(SaslResultCode::Failure));
    assert!(
        matches!(
            &ev[1..],
            [Event::Closed(CloseReason::LocalError(
                PtTlsError::SaslMechanism(_)
            ))]
        ),
        "{ev:?}"
    );
    assert!(s.is_closed());
    let out = s.take_output();
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert_eq!(
        Message::decode(&f[0], MAX).unwrap().body,
        MessageBody::SaslResult {
            code: SaslResultCode::Failure,
            data: b"",
            width: SaslResultWidth::OneByte
        }
    );
    let (code, _) = sole_error(&f[1]);
    assert_eq!(code, 5);

    c.receive(&out);
    let ev = client_events(&mut c);
    assert_eq!(ev[0], Event::AuthenticationFailed(SaslResultCode::Failure));
    assert!(matches!(
        ev[1],
        Event::PeerError {
            code: ErrorCode::SaslMechanismError,
            ..
        }
    ));
    assert_eq!(
        ev[2],
        Event::Closed(CloseReason::PeerError(ErrorCode::SaslMechanismError))
    );
    assert_eq!(ev.len(), 3);
    assert!(c.is_closed());
    assert!(c.take_output().is_empty());
    // Late answers change nothing.
    s.authentication_result(true);
    assert!(s.take_output().is_empty());
    assert!(server_events(&mut s).is_empty());
}

#[test]
fn client_without_credentials_against_plain_server() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 3 });
    s.receive(&c.take_output());
    let offer = s.take_output();
    c.receive(&offer);
    let ev = client_events(&mut c);
    assert_eq!(ev[0], Event::VersionNegotiated(1));
    assert!(
        matches!(
            &ev[1..],
            [Event::Closed(CloseReason::LocalError(
                PtTlsError::SaslMechanism(_)
            ))]
        ),
        "{ev:?}"
    );
    let out = c.take_output();
    let (code, copy) = sole_error(&out);
    assert_eq!(code, 5);
    assert_eq!(copy, frames(&offer)[1], "copy of the SASL Mechanisms");
    server_events(&mut s);
    s.receive(&out);
    assert_eq!(
        server_events(&mut s).last(),
        Some(&Event::Closed(CloseReason::PeerError(
            ErrorCode::SaslMechanismError
        )))
    );
    assert!(s.is_closed() && c.is_closed());
}

#[test]
fn client_refuses_offer_without_plain() {
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    c.take_output();
    c.receive(VERSION_RESPONSE);
    // SASL Mechanisms offering only SCRAM-SHA-256.
    let offer = Message {
        identifier: 1,
        body: MessageBody::SaslMechanisms(vec![mech("SCRAM-SHA-256")]),
    }
    .to_bytes();
    c.receive(&offer);
    assert!(c.is_closed());
    assert_eq!(sole_error(&c.take_output()), (5, offer));
}

#[test]
fn server_answering_with_two_byte_result_width() {
    for (accepted, value) in [(true, [0x00, 0x00]), (false, [0x00, 0x01])] {
        let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
        let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 1 })
            .with_result_width(SaslResultWidth::TwoBytes);
        pump(&mut c, &mut s);
        s.authentication_result(accepted);
        let out = s.take_output();
        let f = frames(&out);
        assert_eq!(&f[0][..12], &[0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 18]);
        assert_eq!(&f[0][16..], &value);
        // Our client reads the 16-bit form.
        c.receive(&out);
        let ev = client_events(&mut c);
        let expect = if accepted {
            Event::Authenticated
        } else {
            Event::AuthenticationFailed(SaslResultCode::Failure)
        };
        assert!(ev.contains(&expect), "{ev:?}");
        assert_eq!(c.is_ready(), accepted);
    }
}

#[test]
fn client_reads_a_one_byte_success_from_strongswan() {
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    c.take_output();
    c.receive(VERSION_RESPONSE);
    let offer = Message {
        identifier: 1,
        body: MessageBody::SaslMechanisms(vec![Mechanism::PLAIN]),
    }
    .to_bytes();
    c.receive(&offer);
    assert_eq!(frames(&c.take_output()).len(), 1, "Selection sent");
    c.receive(SASL_RESULT_ONE_BYTE_SUCCESS);
    c.receive(SASL_MECHANISMS_EMPTY);
    assert_eq!(
        client_events(&mut c),
        [
            Event::VersionNegotiated(1),
            Event::Authenticated,
            Event::Ready
        ]
    );
}

#[test]
fn client_abort_result_ends_the_session() {
    let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
    c.take_output();
    c.receive(VERSION_RESPONSE);
    c.receive(
        &Message {
            identifier: 1,
            body: MessageBody::SaslMechanisms(vec![Mechanism::PLAIN]),
        }
        .to_bytes(),
    );
    c.take_output();
    c.receive(SASL_RESULT_TWO_BYTE_ABORT);
    let ev = client_events(&mut c);
    assert!(ev.contains(&Event::AuthenticationFailed(SaslResultCode::Abort)));
    assert!(c.is_closed());
    assert_eq!(
        sole_error(&c.take_output()),
        (5, SASL_RESULT_TWO_BYTE_ABORT.to_vec())
    );
}

#[test]
fn server_answers_empty_selection_with_empty_challenge() {
    // RFC 4616: PLAIN without initial response gets an empty challenge.
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 1 });
    s.receive(VERSION_REQUEST);
    s.take_output();
    server_events(&mut s);
    s.receive(&selection_plain());
    let f = frames(&s.take_output());
    assert_eq!(
        Message::decode(&f[0], MAX).unwrap().body,
        MessageBody::SaslAuthenticationData(b"")
    );
    let data = Message {
        identifier: 2,
        body: MessageBody::SaslAuthenticationData(b"\0alice\0secret"),
    }
    .to_bytes();
    s.receive(&data);
    assert_eq!(server_events(&mut s), [Event::Authenticate(credentials())]);
}

#[test]
fn batch_before_negotiation_is_invalid_message() {
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    s.receive(PB_TNC_BATCH);
    let out = s.take_output();
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    // Type 8, code 4, and the copy starts with the offending header.
    assert_eq!(&f[0][4..8], &[0, 0, 0, 8]);
    assert_eq!(&f[0][16..24], &[0, 0, 0, 0, 0, 0, 0, 4]);
    assert_eq!(&f[0][24..], PB_TNC_BATCH);
    assert_eq!(&f[0][24..40], &PB_TNC_BATCH[..16]);
    assert!(s.is_closed());
    let ev = server_events(&mut s);
    assert!(
        matches!(
            &ev[..],
            [Event::Closed(CloseReason::LocalError(
                PtTlsError::InvalidMessage(_)
            ))]
        ),
        "{ev:?}"
    );
    // Nothing more is processed.
    s.receive(VERSION_REQUEST);
    assert!(s.take_output().is_empty());
    assert!(server_events(&mut s).is_empty());
    assert_eq!(s.send_batch(&[2, 0x80, 0, 2, 0, 0, 0, 8]), Err(NotReady));
}

#[test]
fn client_refuses_batch_before_negotiation() {
    let mut c = ClientConnection::new(Limits::default(), None);
    c.take_output();
    c.receive(PB_TNC_BATCH);
    assert!(c.is_closed());
    assert_eq!(sole_error(&c.take_output()), (4, PB_TNC_BATCH.to_vec()));
}

#[test]
fn version_request_without_version_1_is_version_not_supported() {
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    let vr2 = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02, 0x02, 0x02,
    ];
    s.receive(&vr2);
    assert_eq!(sole_error(&s.take_output()), (2, vr2.to_vec()));
    assert!(s.is_closed());
    assert_eq!(
        server_events(&mut s),
        [Event::Closed(CloseReason::LocalError(
            PtTlsError::VersionNotSupported { min: 2, max: 2 }
        ))]
    );
    // A range that includes 1 is accepted.
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    let vr = with_length(
        &[&VERSION_REQUEST[..16], &[0x00, 0x01, 0x03, 0x02]].concat(),
        20,
    );
    s.receive(&vr);
    assert_eq!(frames(&s.take_output())[0], VERSION_RESPONSE);
}

#[test]
fn client_refuses_a_version_it_did_not_offer() {
    let mut c = ClientConnection::new(Limits::default(), None);
    c.take_output();
    let resp2 = with_length(
        &[&VERSION_RESPONSE[..16], &[0x00, 0x00, 0x00, 0x02]].concat(),
        20,
    );
    c.receive(&resp2);
    assert!(c.is_closed());
    assert_eq!(sole_error(&c.take_output()).0, 2);
}

#[test]
fn second_version_request_is_invalid_message() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    pump(&mut c, &mut s);
    s.receive(VERSION_REQUEST);
    assert_eq!(sole_error(&s.take_output()), (4, VERSION_REQUEST.to_vec()));
    assert!(s.is_closed());
}

#[test]
fn server_only_messages_from_a_client_are_invalid_message() {
    for bad in [
        VERSION_RESPONSE.to_vec(),
        SASL_MECHANISMS_EMPTY.to_vec(),
        SASL_RESULT_ONE_BYTE_SUCCESS.to_vec(),
    ] {
        let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
        s.receive(VERSION_REQUEST);
        s.take_output();
        s.receive(&bad);
        assert_eq!(sole_error(&s.take_output()), (4, bad.clone()));
        assert!(s.is_closed());
    }
}

#[test]
fn unknown_type_is_type_not_supported_and_the_session_goes_on() {
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    s.receive(UNKNOWN_VENDOR);
    assert_eq!(sole_error(&s.take_output()), (3, UNKNOWN_VENDOR.to_vec()));
    assert!(!s.is_closed());
    assert_eq!(
        server_events(&mut s),
        [Event::UnsupportedType {
            vendor: U24::TCG,
            message_type: 0xAB
        }]
    );
    // Negotiation still works afterwards.
    s.receive(VERSION_REQUEST);
    let f = frames(&s.take_output());
    assert_eq!(
        Message::decode(&f[0], MAX).unwrap().body,
        MessageBody::VersionResponse { version: 1 }
    );
    assert!(s.is_ready());
    // And in the data phase, an unassigned IETF type too.
    s.receive(UNASSIGNED_IETF);
    assert_eq!(sole_error(&s.take_output()).0, 3);
    assert!(s.is_ready());
}

#[test]
fn experimental_is_invalid_message() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    pump(&mut c, &mut s);
    s.receive(EXPERIMENTAL);
    assert_eq!(sole_error(&s.take_output()), (4, EXPERIMENTAL.to_vec()));
    assert!(s.is_closed());
}

#[test]
fn fatal_peer_error_closes_without_answer() {
    let mut c = ClientConnection::new(Limits::default(), None);
    c.take_output();
    c.receive(PT_TLS_ERROR);
    assert_eq!(
        client_events(&mut c),
        [
            Event::PeerError {
                vendor: U24::IETF,
                code: ErrorCode::InvalidMessage,
                original: PB_TNC_BATCH[..16].to_vec(),
            },
            Event::Closed(CloseReason::PeerError(ErrorCode::InvalidMessage)),
        ]
    );
    assert!(c.is_closed());
    assert!(
        c.take_output().is_empty(),
        "a PT-TLS Error is never answered"
    );
    assert!(!c.wants_write());
}

#[test]
fn non_fatal_peer_errors_are_reported_and_not_answered() {
    for code in [0u8, 3] {
        let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
        let mut err = PT_TLS_ERROR.to_vec();
        err[23] = code;
        s.receive(&err);
        let ev = server_events(&mut s);
        assert!(matches!(ev[..], [Event::PeerError { .. }]), "{ev:?}");
        assert!(!s.is_closed(), "code {code} is not fatal");
        assert!(s.take_output().is_empty());
    }
}

#[test]
fn malformed_message_from_peer_is_answered_with_malformed_message() {
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    let three = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x01,
    ];
    s.receive(&three);
    assert_eq!(sole_error(&s.take_output()), (1, three.to_vec()));
    assert!(s.is_closed());
}

#[test]
fn message_length_3_in_the_stream_is_invalid_parameter() {
    let header = with_length(&VERSION_REQUEST[..16], 3);
    // Whole, and one byte at a time.
    for chunk in [16, 1] {
        let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
        for c in header.chunks(chunk) {
            s.receive(c);
        }
        let (code, copy) = sole_error(&s.take_output());
        assert_eq!(code, 6, "Invalid Parameter");
        assert_eq!(copy, header, "copy of the 16-byte header");
        assert!(s.is_closed());
        let ev = server_events(&mut s);
        assert!(
            matches!(
                &ev[..],
                [Event::Closed(CloseReason::LocalError(
                    PtTlsError::InvalidParameter(_)
                ))]
            ),
            "{ev:?}"
        );
        s.receive(VERSION_REQUEST);
        assert!(s.take_output().is_empty());
    }
}

#[test]
fn oversized_message_is_refused_from_its_header() {
    let limits = Limits {
        max_message_len: 64,
    };
    let mut s = ServerConnection::new(limits, SaslPolicy::None);
    s.receive(&with_length(&VERSION_REQUEST[..16], 65));
    assert_eq!(sole_error(&s.take_output()).0, 6);
    assert!(s.is_closed());
}

#[test]
fn local_close_is_reported_and_sends_nothing() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    pump(&mut c, &mut s);
    client_events(&mut c);
    c.close();
    assert_eq!(client_events(&mut c), [Event::Closed(CloseReason::Local)]);
    assert!(c.take_output().is_empty());
    assert_eq!(c.send_batch(&[2, 0, 0, 1, 0, 0, 0, 8]), Err(NotReady));
    c.close();
    assert!(client_events(&mut c).is_empty(), "Closed is reported once");
}

#[test]
fn sasl_result_in_the_data_phase_is_invalid_message() {
    let mut c = ClientConnection::new(Limits::default(), None);
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    pump(&mut c, &mut s);
    c.receive(SASL_RESULT_ONE_BYTE_SUCCESS);
    assert_eq!(
        sole_error(&c.take_output()),
        (4, SASL_RESULT_ONE_BYTE_SUCCESS.to_vec())
    );
    assert!(c.is_closed());
}

#[test]
fn error_copy_of_a_long_message_is_cut_at_1024_bytes() {
    let mut s = ServerConnection::new(Limits::default(), SaslPolicy::None);
    let value = vec![0x5A; 2000];
    let unknown = Message {
        identifier: 1,
        body: MessageBody::Unknown {
            vendor: U24::TCG,
            message_type: 1,
            value: &value,
        },
    }
    .to_bytes();
    s.receive(&unknown);
    let (code, copy) = sole_error(&s.take_output());
    assert_eq!(code, 3);
    assert_eq!(copy.len(), 1024);
    assert_eq!(copy, &unknown[..1024]);
}

proptest! {
    /// Endpoints fed any sequence of messages (and junk) never panic, and once
    /// closed they neither send nor report anything more.
    #[test]
    fn endpoints_survive_any_input(
        bodies in proptest::collection::vec(body_strategy(), 0..8),
        junk in bytes(40),
        plain in any::<bool>(),
    ) {
        let policy = if plain { SaslPolicy::Plain { max_attempts: 2 } } else { SaslPolicy::None };
        let mut s = ServerConnection::new(Limits::default(), policy);
        let mut c = ClientConnection::new(Limits::default(), Some(credentials()));
        let mut stream: Vec<u8> = bodies
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.message(i as u32).to_bytes())
            .collect();
        stream.extend(&junk);
        for chunk in stream.chunks(7) {
            s.receive(chunk);
            c.receive(chunk);
            s.authentication_result(false);
        }
        if s.is_closed() {
            s.take_output();
            server_events(&mut s);
            s.receive(VERSION_REQUEST);
            prop_assert!(s.take_output().is_empty());
            prop_assert!(server_events(&mut s).is_empty());
        }
        if c.is_closed() {
            c.take_output();
            client_events(&mut c);
            c.receive(VERSION_RESPONSE);
            prop_assert!(c.take_output().is_empty());
            prop_assert!(client_events(&mut c).is_empty());
        }
    }
}

#[test]
fn result_data_forces_the_two_byte_code() {
    // A one-byte code followed by data could not be decoded unambiguously.
    let m = Message {
        identifier: 9,
        body: MessageBody::SaslResult {
            code: SaslResultCode::Success,
            data: b"welcome",
            width: SaslResultWidth::OneByte,
        },
    };
    let bytes = m.to_bytes();
    assert_eq!(&bytes[16..18], &[0, 0]);
    let back = Message::decode(&bytes, 1024).unwrap();
    assert_eq!(
        back.body,
        MessageBody::SaslResult {
            code: SaslResultCode::Success,
            data: b"welcome",
            width: SaslResultWidth::TwoBytes,
        }
    );
}

#[test]
fn exhausted_attempts_copy_only_the_header_never_the_password() {
    let mut server =
        ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 1 });
    let mut client = ClientConnection::new(
        Limits::default(),
        Some(PlainCredentials::new("eve", "guess-123")),
    );
    server.receive(&client.take_output());
    client.receive(&server.take_output());
    server.receive(&client.take_output());
    while let Some(e) = server.poll_event() {
        if matches!(e, Event::Authenticate(_)) {
            server.authentication_result(false);
        }
    }
    assert!(server.is_closed());
    let out = server.take_output();
    let mut f = Framer::new(1 << 20);
    f.push(&out);
    let mut error = None;
    while let Some(frame) = f.next_frame().unwrap() {
        if let MessageBody::Error { code, original, .. } =
            Message::decode(&frame, 1 << 20).unwrap().body
        {
            error = Some((code, original.to_vec()));
        }
    }
    let (code, original) = error.expect("a PT-TLS Error ends the session");
    assert_eq!(code, ErrorCode::SaslMechanismError.to_u32());
    assert_eq!(original.len(), 16, "the copy is the selection's header");
    assert_eq!(
        &original[4..8],
        &4u32.to_be_bytes(),
        "type 4, SASL Mechanism Selection"
    );
    assert!(!out.windows(9).any(|w| w == b"guess-123"));
}

fn limits_len() -> u32 {
    1 << 20
}

/// Before the data transport phase a peer cannot make the other side buffer a
/// large message: a header claiming more than 8 KiB is refused at once (a
/// PT-TLS Error Invalid Parameter and close); after negotiation, messages up to
/// the configured limit are accepted.
#[test]
fn large_messages_only_after_negotiation() {
    use tnc_proto::pt_tls::NEGOTIATION_MAX_MESSAGE_LEN;
    let limits = Limits {
        max_message_len: limits_len(),
    };
    // A 64 KiB SASL Authentication Data header while authenticating.
    let mut s = ServerConnection::new(limits.clone(), SaslPolicy::Plain { max_attempts: 3 });
    s.receive(VERSION_REQUEST);
    let _ = s.take_output();
    let mut big = vec![0, 0, 0, 0, 0, 0, 0, 5];
    big.extend_from_slice(&(64u32 << 10).to_be_bytes());
    big.extend_from_slice(&[0, 0, 0, 1]);
    s.receive(&big);
    let (code, _) = sole_error(&s.take_output());
    assert_eq!(code, ErrorCode::InvalidParameter.to_u32());
    assert!(s.is_closed());
    // The refused size is over the negotiation bound, under the session's.
    let refused: u32 = 64 << 10;
    assert!(refused > NEGOTIATION_MAX_MESSAGE_LEN && refused < limits_len());

    // After negotiation (no SASL), a 64 KiB batch goes through.
    let mut c = ClientConnection::new(limits.clone(), None);
    let mut s = ServerConnection::new(limits, SaslPolicy::None);
    pump(&mut c, &mut s);
    assert!(c.is_ready() && s.is_ready());
    let mut batch = vec![2, 0, 0, 1];
    batch.extend_from_slice(&(64u32 << 10).to_be_bytes());
    batch.resize(64 << 10, 0);
    c.send_batch(&batch).unwrap();
    s.receive(&c.take_output());
    assert!(server_events(&mut s)
        .iter()
        .any(|e| matches!(e, Event::Batch(b) if b.len() == 64 << 10)));
}
