//! `tnc-server dissect` as an operator runs it: on a PT-TLS stream this test
//! captures from a session between our own endpoints, on strongSwan's captures,
//! on malformed input, as text and as JSON.

mod common;
use common::Temp;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tnc_proto::pb_tnc::{BatchType, PbMessage, PbSession, Side};
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_proto::pt_tls::{ClientConnection, Event, Limits, Loopback, SaslPolicy, ServerConnection};

fn tnc_server(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tnc-server"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn temp_file(name: &str, bytes: &[u8]) -> Temp {
    common::temp_file("dissect", name, bytes)
}

/// The client-to-server plaintext of a short session: negotiation with SASL
/// PLAIN, one CDATA, a RESULT back, CLOSE.
fn captured_session() -> Vec<u8> {
    let mut link = Loopback::new(
        ClientConnection::new(
            Limits::default(),
            Some(PlainCredentials::new("bob", "s3cret-pw")),
        ),
        ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 1 }),
    );
    let ev = link.pump();
    assert!(ev
        .server
        .iter()
        .any(|e| matches!(e, Event::Authenticate(_))));
    link.server.authentication_result(true);
    link.pump();
    let (mut c, mut s) = (PbSession::new(Side::Client), PbSession::new(Side::Server));
    let b = c
        .send(
            BatchType::CData,
            vec![PbMessage::LanguagePreference("Accept-Language: de")],
        )
        .unwrap();
    link.client.send_batch(&b).unwrap();
    link.pump();
    s.receive(&b).unwrap();
    let r = s
        .send(
            BatchType::Result,
            vec![PbMessage::AssessmentResult(
                tnc_proto::common::AssessmentResult::Compliant,
            )],
        )
        .unwrap();
    link.server.send_batch(&r).unwrap();
    link.pump();
    c.receive(&r).unwrap();
    link.client
        .send_batch(&c.send(BatchType::Close, vec![]).unwrap())
        .unwrap();
    link.pump();
    link.c2s
}

fn strongswan(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/nea/strongswan-6.0.6")
        .join(name)
}

#[test]
fn dissects_a_captured_session_as_text() {
    let path = temp_file("session.c2s.bin", &captured_session());
    let out = tnc_server(&["dissect", path.to_str().unwrap()], None);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    for field in [
        "PT-TLS message [Version Request]",
        "Pref Vers: 1",
        "authcid: bob",
        "PB-TNC batch [CDATA]",
        "Language Preference: Accept-Language: de",
        "PB-TNC batch [CLOSE]",
        "well-formed PT-TLS",
    ] {
        assert!(text.contains(field), "missing {field:?} in\n{text}");
    }
    assert!(
        !text.contains("s3cret-pw"),
        "the password must never be printed"
    );
}

#[test]
fn json_output_has_offsets_and_fields() {
    let session = captured_session();
    let out = tnc_server(&["dissect", "--json", "-"], Some(&session));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["well_formed"], true);
    assert_eq!(v["length"], session.len());
    let first = &v["nodes"][0];
    assert_eq!(first["value"], "Version Request");
    assert_eq!(first["children"][3]["field"], "Message Length");
    assert_eq!(first["children"][3]["offset"], 8);
    assert_eq!(first["children"][3]["value"], "20");
}

#[test]
fn strongswan_streams_dissect_cleanly() {
    for name in [
        "os-allow.c2s.bin",
        "os-allow.s2c.bin",
        "swima.c2s.bin",
        "swima.s2c.bin",
    ] {
        let path = strongswan(name);
        let out = tnc_server(&["dissect", path.to_str().unwrap()], None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}");
        assert!(!text.contains("tnc-secret"), "{name}: password printed");
    }
}

#[test]
fn malformed_input_names_offset_and_protocol_error() {
    // A CDATA batch whose only message claims a length of 11 (below its header).
    let batch = [
        2u8, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 11,
    ];
    let path = temp_file("bad-batch.bin", &batch);
    let out = tnc_server(
        &["dissect", "--layer", "pb-tnc", path.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("MALFORMED: PB-TNC at byte 16"), "{text}");
    assert!(text.contains("Invalid Parameter (1)"), "{text}");

    // A PA-TNC message with version 2.
    let out = tnc_server(
        &["dissect", "--layer", "pa-tnc", "-"],
        Some(&[2, 0, 0, 0, 0, 0, 0, 1]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PA-TNC Error Version Not Supported (2)"));

    // A PT-TLS stream cut in the middle of a message.
    let mut cut = captured_session();
    cut.truncate(30);
    let out = tnc_server(&["dissect", "-"], Some(&cut));
    assert_eq!(out.status.code(), Some(1));

    // A file that does not exist is a usage error, not a protocol one.
    let out = tnc_server(&["dissect", "/nonexistent/capture.bin"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/capture.bin"));
}
