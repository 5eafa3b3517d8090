//! Interoperability with strongSwan 6.0.6: real PT-TLS sessions between its
//! `pt-tls-client` and its PDP (`../shared/testdata/nea/strongswan-6.0.6/`).
//!
//! Every message of both directions decodes and re-encodes to the same bytes, our
//! state machines accept both streams in order, and our PT-TLS server answers the
//! captured client with the very bytes strongSwan's server sent.

use std::path::PathBuf;
use tnc_proto::pa_tnc::{Attribute, PaMessage};
use tnc_proto::pb_tnc::{Batch, BatchType, PbMessage, PbSession, PbState, Side};
use tnc_proto::pt_tls::{
    ClientConnection, Event, Framer, Limits, Message, MessageBody, SaslPolicy, ServerConnection,
};
use tnc_proto::U24;

fn capture(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("TNC_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    let path = dir.join("nea/strongswan-6.0.6").join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set TNC_TESTDATA to shared/testdata)",
            path.display()
        )
    })
}

fn frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut f = Framer::new(1 << 24);
    f.push(stream);
    let mut out = Vec::new();
    while let Some(frame) = f.next_frame().expect("strongSwan stream frames cleanly") {
        out.push(frame);
    }
    assert_eq!(f.buffered(), 0, "no trailing bytes");
    out
}

/// The PB-TNC batches of a stream, in order.
fn batches(stream: &[u8]) -> Vec<Vec<u8>> {
    frames(stream)
        .iter()
        .filter_map(|f| match Message::decode(f, u32::MAX).unwrap().body {
            MessageBody::PbTncBatch(b) => Some(b.to_vec()),
            _ => None,
        })
        .collect()
}

const SESSIONS: [&str; 2] = ["os-allow", "swima"];

#[test]
fn every_message_decodes_and_reencodes_identically() {
    let mut attributes_seen = 0;
    for session in SESSIONS {
        for dir in ["c2s", "s2c"] {
            let stream = capture(&format!("{session}.{dir}.bin"));
            for frame in frames(&stream) {
                let msg = Message::decode(&frame, u32::MAX).unwrap();
                assert_eq!(msg.to_bytes(), frame, "{session}.{dir}: PT-TLS {msg:?}");
                let MessageBody::PbTncBatch(bytes) = msg.body else {
                    continue;
                };
                let batch = Batch::decode(bytes).unwrap();
                assert_eq!(batch.to_bytes(), bytes, "{session}.{dir}: batch");
                for pa in batch.pa_messages() {
                    let m = PaMessage::decode(pa.body).unwrap();
                    let mut again = Vec::new();
                    m.encode(&mut again);
                    assert_eq!(again, pa.body, "{session}.{dir}: PA-TNC message");
                    for raw in &m.attributes {
                        attributes_seen += 1;
                        let typed = raw.parse().unwrap_or_else(|e| {
                            panic!(
                                "{session}.{dir}: attribute {} {}: {e}",
                                raw.vendor, raw.attr_type
                            )
                        });
                        let mut value = Vec::new();
                        typed.encode_value(&mut value);
                        assert_eq!(value, raw.value, "{session}.{dir}: {}", typed.name());
                    }
                }
            }
        }
    }
    assert!(attributes_seen >= 20, "only {attributes_seen} attributes");
}

#[test]
fn os_allow_contents_are_what_strongswan_sent() {
    let c2s = batches(&capture("os-allow.c2s.bin"));
    let first = Batch::decode(&c2s[0]).unwrap();
    assert_eq!(first.batch_type, BatchType::CData);
    assert!(matches!(
        first.messages[0],
        PbMessage::LanguagePreference("Accept-Language: en")
    ));
    let pa = first.pa_messages().next().unwrap();
    assert_eq!(pa.subtype.describe(), "IETF/Operating System");
    let msg = PaMessage::decode(pa.body).unwrap();
    let product = msg
        .attributes
        .iter()
        .find_map(|a| match a.parse().unwrap() {
            Attribute::ProductInformation(p) => Some(p),
            _ => None,
        });
    assert_eq!(product.unwrap().name, "Debian");
    // The ITA-HSR and TCG attributes are vendor attributes without NOSKIP: a
    // recipient that supports only the IETF ones skips them (RFC 5792 §4.1).
    msg.check_supported(|v, _| v == U24::IETF).unwrap();

    let s2c = batches(&capture("os-allow.s2c.bin"));
    let result = Batch::decode(s2c.last().unwrap()).unwrap();
    assert_eq!(result.batch_type, BatchType::Result);
    assert!(result
        .messages
        .iter()
        .any(|m| matches!(m, PbMessage::AccessRecommendation(a) if a.name() == "Access Allowed")));
}

/// Runs both PB-TNC state machines over a capture, re-sending each batch through
/// the sending side (which must produce the captured bytes) and receiving it on
/// the other side.
#[test]
fn state_machines_accept_both_streams_in_order() {
    for session in SESSIONS {
        let c2s = batches(&capture(&format!("{session}.c2s.bin")));
        let s2c = batches(&capture(&format!("{session}.s2c.bin")));
        let mut client = PbSession::new(Side::Client);
        let mut server = PbSession::new(Side::Server);
        let mut order = Vec::new();
        for i in 0..c2s.len().max(s2c.len()) {
            if let Some(b) = c2s.get(i) {
                order.push((Side::Client, b));
            }
            if let Some(b) = s2c.get(i) {
                order.push((Side::Server, b));
            }
        }
        for (sender, bytes) in order {
            let (tx, rx) = match sender {
                Side::Client => (&mut client, &mut server),
                Side::Server => (&mut server, &mut client),
            };
            let decoded = Batch::decode(bytes).unwrap();
            let sent = tx
                .send(decoded.batch_type, decoded.messages.clone())
                .unwrap_or_else(|e| {
                    panic!("{session}: {sender:?} sends {:?}: {e}", decoded.batch_type)
                });
            assert_eq!(
                &sent, bytes,
                "{session}: our encoding of {:?}",
                decoded.batch_type
            );
            rx.receive(bytes).unwrap_or_else(|v| {
                panic!(
                    "{session}: {:?} refused {:?}: {}",
                    rx.side(),
                    decoded.batch_type,
                    v.error
                )
            });
        }
        assert_eq!(client.state(), PbState::End, "{session}: the client closed");
        assert_eq!(server.state(), PbState::End);
    }
}

#[test]
fn our_server_answers_strongswans_client_byte_for_byte() {
    for session in SESSIONS {
        let c2s = capture(&format!("{session}.c2s.bin"));
        let s2c = capture(&format!("{session}.s2c.bin"));
        let mut server =
            ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 3 });
        // Feed the stream in awkward chunks to exercise the framer too.
        let mut batches = 0;
        for chunk in c2s.chunks(7) {
            server.receive(chunk);
            while let Some(ev) = server.poll_event() {
                match ev {
                    Event::Authenticate(c) => {
                        assert_eq!(
                            (c.authcid.as_str(), c.password.expose()),
                            ("tnc-user", "tnc-secret")
                        );
                        server.authentication_result(true);
                    }
                    Event::Batch(_) => batches += 1,
                    Event::Closed(r) => panic!("{session}: closed: {r:?}"),
                    _ => {}
                }
            }
        }
        assert!(server.is_ready());
        assert_eq!(batches, self::batches(&c2s).len());
        // Version Response, SASL Mechanisms, SASL Result (1-byte code), empty SASL
        // Mechanisms: identical to strongSwan's, identifiers included.
        let ours = server.take_output();
        let negotiation: usize = frames(&s2c)[..4].iter().map(Vec::len).sum();
        assert_eq!(ours, s2c[..negotiation], "{session}");
    }
}

#[test]
fn our_client_follows_strongswans_server() {
    for session in SESSIONS {
        let s2c = capture(&format!("{session}.s2c.bin"));
        let c2s = capture(&format!("{session}.c2s.bin"));
        let creds = tnc_proto::pt_tls::sasl::PlainCredentials::new("tnc-user", "tnc-secret");
        let mut client = ClientConnection::new(Limits::default(), Some(creds));
        client.receive(&s2c);
        let mut events = Vec::new();
        while let Some(ev) = client.poll_event() {
            events.push(ev);
        }
        assert!(events.contains(&Event::Authenticated), "{events:?}");
        assert!(events.contains(&Event::Ready));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Batch(_)))
                .count(),
            batches(&s2c).len()
        );
        // Version Request and SASL Mechanism Selection as strongSwan's client sent.
        let ours = client.take_output();
        let negotiation: usize = frames(&c2s)[..2].iter().map(Vec::len).sum();
        assert_eq!(ours, c2s[..negotiation], "{session}");
    }
}
