//! A whole NEA session between our client and our server, driven only through the
//! state machines: PT-TLS version and SASL PLAIN negotiation, several CDATA/SDATA
//! rounds, RESULT, a client-initiated (CRETRY) and a server-initiated (SRETRY)
//! re-assessment, CLOSE. The transcript is then dissected like an operator would.

use tnc_proto::common::{AssessmentResult, Remediation};
use tnc_proto::dissect::{dissect, Layer};
use tnc_proto::pa_tnc::{
    ietf_attr, Attribute, AttributeId, ForwardingEnabled, InstalledPackages, NumericVersion,
    PaMessage, PaMessageWriter, PaSubtype, Package, ProductInformation,
};
use tnc_proto::pb_tnc::{
    AccessRecommendation, Batch, BatchType, PbMessage, PbPa, PbSession, PbState, Side, ID_ANY,
};
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_proto::pt_tls::{ClientConnection, Event, Limits, Loopback, SaslPolicy, ServerConnection};
use tnc_proto::U24;

const IMC: u16 = 1;
const IMV: u16 = 1;

struct Session {
    link: Loopback,
    client: PbSession,
    server: PbSession,
}

impl Session {
    fn start() -> Self {
        let creds = PlainCredentials::new("alice", "correct horse");
        let mut link = Loopback::new(
            ClientConnection::new(Limits::default(), Some(creds)),
            ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 3 }),
        );
        let ev = link.pump();
        let creds = ev
            .server
            .iter()
            .find_map(|e| match e {
                Event::Authenticate(c) => Some(c.clone()),
                _ => None,
            })
            .expect("server asks to check credentials");
        assert_eq!(creds.authcid, "alice");
        link.server
            .authentication_result(creds.password.expose() == "correct horse");
        let ev = link.pump();
        assert!(ev.client.contains(&Event::Authenticated));
        assert!(ev.client.contains(&Event::Ready));
        assert!(ev.server.contains(&Event::Ready));
        Self {
            link,
            client: PbSession::new(Side::Client),
            server: PbSession::new(Side::Server),
        }
    }

    /// Sends a batch from `from` over PT-TLS and returns the received bytes as the
    /// other side's PB-TNC session accepted them.
    fn send(&mut self, from: Side, t: BatchType, messages: Vec<PbMessage<'_>>) -> Vec<u8> {
        let (tx, rx) = match from {
            Side::Client => (&mut self.client, &mut self.server),
            Side::Server => (&mut self.server, &mut self.client),
        };
        let bytes = tx.send(t, messages).expect("allowed by RFC 5793");
        match from {
            Side::Client => self.link.client.send_batch(&bytes).unwrap(),
            Side::Server => self.link.server.send_batch(&bytes).unwrap(),
        }
        let ev = self.link.pump();
        let got = match from {
            Side::Client => ev.server,
            Side::Server => ev.client,
        };
        let [Event::Batch(received)] = got.as_slice() else {
            panic!("expected one batch, got {got:?}");
        };
        assert_eq!(received, &bytes);
        rx.receive(received).expect("peer accepts the batch");
        received.clone()
    }

    fn states(&self) -> (PbState, PbState) {
        (self.client.state(), self.server.state())
    }
}

fn pa<'a>(from: Side, body: &'a [u8]) -> PbMessage<'a> {
    PbMessage::Pa(PbPa {
        exclusive: from == Side::Server,
        subtype: PaSubtype::OPERATING_SYSTEM,
        collector_id: IMC,
        validator_id: if from == Side::Client { ID_ANY } else { IMV },
        body,
    })
}

/// The typed attributes of the (single) PB-PA of a received batch.
fn attributes(batch: &[u8]) -> Vec<(u32, String)> {
    let b = Batch::decode(batch).unwrap();
    let pa = b.pa_messages().next().expect("one PB-PA");
    let m = PaMessage::decode(pa.body).unwrap();
    m.check_supported(|v, _| v == U24::IETF).unwrap();
    m.attributes
        .iter()
        .map(|a| (a.attr_type, format!("{:?}", a.parse().unwrap())))
        .collect()
}

#[test]
fn full_session_with_reassessments() {
    let mut s = Session::start();
    assert_eq!(s.states(), (PbState::Init, PbState::Init));

    // Round 1: the client volunteers product information and version.
    let os = PaMessageWriter::new(1)
        .attribute(
            false,
            &Attribute::ProductInformation(ProductInformation {
                vendor: U24::truncate(9586),
                product_id: 0,
                name: "Debian",
            }),
        )
        .attribute(
            false,
            &Attribute::NumericVersion(NumericVersion {
                major: 12,
                minor: 0,
                build: 0,
                service_pack_major: 0,
                service_pack_minor: 0,
            }),
        )
        .finish();
    let got = s.send(
        Side::Client,
        BatchType::CData,
        vec![
            PbMessage::LanguagePreference("Accept-Language: en"),
            pa(Side::Client, &os),
        ],
    );
    assert_eq!(attributes(&got).len(), 2);
    assert_eq!(s.states(), (PbState::ServerWorking, PbState::ServerWorking));

    // Round 2: the validator asks for installed packages.
    let request = PaMessageWriter::new(100)
        .attribute(
            false,
            &Attribute::AttributeRequest(vec![AttributeId::ietf(ietf_attr::INSTALLED_PACKAGES)]),
        )
        .finish();
    let got = s.send(
        Side::Server,
        BatchType::SData,
        vec![pa(Side::Server, &request)],
    );
    assert_eq!(attributes(&got)[0].0, ietf_attr::ATTRIBUTE_REQUEST);
    assert_eq!(s.states(), (PbState::ClientWorking, PbState::ClientWorking));

    let packages = InstalledPackages::new(vec![
        Package::new("openssh-server", "1:9.2p1-2").unwrap(),
        Package::new("nginx", "1.22.1-9").unwrap(),
    ])
    .unwrap();
    let inv = PaMessageWriter::new(2)
        .attribute(false, &Attribute::InstalledPackages(packages))
        .finish();
    let got = s.send(Side::Client, BatchType::CData, vec![pa(Side::Client, &inv)]);
    assert!(attributes(&got)[0].1.contains("nginx"));

    // Round 3: one more question, one more answer.
    let request = PaMessageWriter::new(101)
        .attribute(
            false,
            &Attribute::AttributeRequest(vec![AttributeId::ietf(ietf_attr::FORWARDING_ENABLED)]),
        )
        .finish();
    s.send(
        Side::Server,
        BatchType::SData,
        vec![pa(Side::Server, &request)],
    );
    let fwd = PaMessageWriter::new(3)
        .attribute(
            false,
            &Attribute::ForwardingEnabled(ForwardingEnabled::Disabled),
        )
        .finish();
    s.send(Side::Client, BatchType::CData, vec![pa(Side::Client, &fwd)]);

    // The decision.
    let verdict = PaMessageWriter::new(102)
        .attribute(
            false,
            &Attribute::AssessmentResult(AssessmentResult::Compliant),
        )
        .finish();
    let got = s.send(
        Side::Server,
        BatchType::Result,
        vec![
            pa(Side::Server, &verdict),
            PbMessage::AssessmentResult(AssessmentResult::Compliant),
            PbMessage::AccessRecommendation(AccessRecommendation::Allowed),
            PbMessage::ReasonString {
                text: "all checks passed",
                lang: "en",
            },
        ],
    );
    let result = Batch::decode(&got).unwrap();
    assert!(result.messages.contains(&PbMessage::AccessRecommendation(
        AccessRecommendation::Allowed
    )));
    assert_eq!(s.states(), (PbState::Decided, PbState::Decided));

    // The client's posture changed: CRETRY starts a new assessment.
    let fwd_on = PaMessageWriter::new(4)
        .attribute(
            false,
            &Attribute::ForwardingEnabled(ForwardingEnabled::Enabled),
        )
        .finish();
    s.send(
        Side::Client,
        BatchType::CRetry,
        vec![pa(Side::Client, &fwd_on)],
    );
    assert_eq!(s.states(), (PbState::ServerWorking, PbState::ServerWorking));
    let got = s.send(
        Side::Server,
        BatchType::Result,
        vec![
            PbMessage::AssessmentResult(AssessmentResult::NonCompliantMinor),
            PbMessage::AccessRecommendation(AccessRecommendation::Quarantined),
            PbMessage::RemediationParameters(Remediation::String {
                text: "disable IP forwarding",
                lang: "en",
            }),
        ],
    );
    assert!(Batch::decode(&got)
        .unwrap()
        .messages
        .contains(&PbMessage::AccessRecommendation(
            AccessRecommendation::Quarantined
        )));

    // The server wants a fresh look (policy changed): SRETRY from Decided keeps the
    // turn with the server, which asks again.
    s.send(Side::Server, BatchType::SRetry, vec![]);
    assert_eq!(s.states(), (PbState::ServerWorking, PbState::ServerWorking));
    s.send(
        Side::Server,
        BatchType::SData,
        vec![pa(Side::Server, &request)],
    );
    s.send(Side::Client, BatchType::CData, vec![pa(Side::Client, &fwd)]);
    s.send(
        Side::Server,
        BatchType::Result,
        vec![
            PbMessage::AssessmentResult(AssessmentResult::Compliant),
            PbMessage::AccessRecommendation(AccessRecommendation::Allowed),
        ],
    );

    // Goodbye.
    s.send(Side::Client, BatchType::Close, vec![]);
    assert_eq!(s.states(), (PbState::End, PbState::End));
    // Nothing but CLOSE may follow.
    assert!(s.client.send(BatchType::CData, vec![]).is_err());

    // The transcript is what an operator would capture; it dissects cleanly.
    for (stream, dir) in [(&s.link.c2s, "c2s"), (&s.link.s2c, "s2c")] {
        let d = dissect(Layer::PtTls, stream, 1 << 20);
        assert!(d.faults.is_empty(), "{dir}: {:?}", d.faults);
        let text = d.to_string();
        assert!(
            !text.contains("correct horse"),
            "{dir}: the password leaked"
        );
        let batches = text.matches("PB-TNC batch [").count();
        assert_eq!(batches, if dir == "c2s" { 6 } else { 7 }, "{dir}\n{text}");
    }
}

#[test]
fn a_bad_batch_gets_a_pb_error_in_close_and_ends_both_sessions() {
    let mut s = Session::start();
    // The client (wrongly) sends SDATA; its own state machine would refuse, so
    // write the batch by hand.
    let bad = Batch::new(Side::Client, BatchType::SData, vec![]).to_bytes();
    s.link.client.send_batch(&bad).unwrap();
    let ev = s.link.pump();
    let [Event::Batch(got)] = ev.server.as_slice() else {
        panic!("{ev:?}")
    };
    let violation = s.server.receive(got).unwrap_err();
    assert_eq!(s.server.state(), PbState::End);
    s.link.server.send_batch(&violation.close).unwrap();
    let ev = s.link.pump();
    let [Event::Batch(close)] = ev.client.as_slice() else {
        panic!("{ev:?}")
    };
    let batch = s.client.receive(close).unwrap();
    assert_eq!(batch.batch_type, BatchType::Close);
    assert_eq!(
        tnc_proto::pb_tnc::fatal_code(&batch),
        Some(tnc_proto::pb_tnc::PbErrorCode::UnexpectedBatchType)
    );
    assert!(s.client.is_ended());
    // RFC 5793 §4.9: nothing may be sent back after a fatal PB-Error.
    assert_eq!(s.client.close(None), None);
}
