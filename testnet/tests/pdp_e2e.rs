//! The PDP and the login agent end to end: PT-TLS over TCP + TLS 1.3 on
//! loopback, PB-TNC and the project's attestation attributes, real swtpm
//! endpoints booted with the simulator's profiles, AK enrollment with
//! credential activation, and the appraisal deciding.

use std::time::Duration;
use testnet::e2e::{profile, Endpoint, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_client::agent::{tls_client_config, Outcome};
use tnc_proto::attestation::Role;
use tnc_proto::pb_tnc::AccessRecommendation;
use tnc_server::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn log_in(pdp: &TestPdp, endpoint: &Endpoint) -> Outcome {
    pdp.log_in(endpoint)
        .await
        .unwrap_or_else(|e| panic!("login failed: {e:#}"))
}

/// A PDP with the good terminal's reference values, and a terminal booted
/// from `profile` (booted first: that makes swtpm's local CA create its keys).
async fn pdp_and_terminal(profile_name: &str, limits: Limits) -> (TestPdp, Endpoint, LocalCa) {
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot(profile_name, Role::Terminal, &ca).unwrap();
    let pdp = TestPdp::start(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        &ca,
        limits,
    )
    .await
    .unwrap();
    (pdp, terminal, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_terminal_is_allowed_then_reattests_incrementally() {
    let (mut pdp, mut terminal, _ca) = pdp_and_terminal("good-terminal", Limits::default()).await;

    let first = log_in(&pdp, &terminal).await;
    assert_eq!(
        first.recommendation,
        Some(AccessRecommendation::Allowed),
        "{first:?}"
    );
    let att = first.attestation.as_ref().expect("attestation result");
    assert_eq!(att.verdict, "allow", "{att:?}");
    assert!(att.findings[0].contains("AK newly enrolled"), "{att:?}");
    let report = pdp.reports.recv().await.unwrap();
    assert_eq!(report.decision.unwrap().verdict, policy::Verdict::Allow);
    let devices = pdp.store.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].state.as_ref().unwrap().ima_entries, 6);

    // A key application measured again with an allowed digest after boot: the
    // second login sends only the new entry and is still allowed.
    let again = &terminal.profile.ima[0];
    let (path, content) = (again.path.clone(), again.content.clone());
    terminal
        .measure_more(&[(path.as_str(), content.as_bytes())])
        .unwrap();
    let second = log_in(&pdp, &terminal).await;
    assert!(second.allowed(), "{second:?}");
    let att = second.attestation.unwrap();
    assert!(!att.findings[0].contains("newly"), "enrolled once: {att:?}");
    let devices = pdp.store.devices().await.unwrap();
    assert_eq!(devices[0].state.as_ref().unwrap().ima_entries, 7);
    pdp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_kernel_is_isolated_with_the_kernel_finding() {
    let (pdp, terminal, _ca) = pdp_and_terminal("tampered-kernel", Limits::default()).await;
    let outcome = log_in(&pdp, &terminal).await;
    assert_eq!(
        outcome.recommendation,
        Some(AccessRecommendation::Quarantined),
        "{outcome:?}"
    );
    let reason = outcome.reason.unwrap();
    assert!(reason.contains("PCR 9"), "{reason}");
    assert!(outcome.remediation.is_some());
    pdp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_key_application_is_isolated_naming_the_file() {
    let (pdp, terminal, _ca) = pdp_and_terminal("tampered-keyapp", Limits::default()).await;
    let outcome = log_in(&pdp, &terminal).await;
    assert_eq!(
        outcome.recommendation,
        Some(AccessRecommendation::Quarantined),
        "{outcome:?}"
    );
    let att = outcome.attestation.unwrap();
    assert!(
        att.findings
            .iter()
            .any(|f| f.contains("modified file") && f.contains('/')),
        "{att:?}"
    );
    pdp.stop().await.unwrap();
}

/// An EK certificate from a CA the PDP does not trust: no access, and the
/// device is not enrolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ek_ca_gets_no_access() {
    let trusted = LocalCa::create().unwrap();
    let other = LocalCa::create().unwrap();
    let _provisions_trusted = Endpoint::boot("good-terminal", Role::Terminal, &trusted).unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &other).unwrap();
    let pdp = TestPdp::start(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        &trusted,
        Limits::default(),
    )
    .await
    .unwrap();
    let outcome = log_in(&pdp, &terminal).await;
    assert_eq!(
        outcome.recommendation,
        Some(AccessRecommendation::Denied),
        "{outcome:?}"
    );
    assert!(outcome.reason.unwrap().contains("AK enrollment refused"));
    assert!(pdp.store.devices().await.unwrap().is_empty());
    pdp.stop().await.unwrap();
}

/// A peer that sends a malformed PB-TNC batch gets a CLOSE with a PB-Error,
/// and a peer that stalls is cut off at the deadline; the PDP serves a good
/// terminal meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_stalling_peers_do_not_stop_others() {
    // Short enough that the staller is cut within the test's wait, long
    // enough for the genuine swtpm login beside it under a loaded make
    // test (2 s cut it off once: an enrollment with credential activation
    // on a busy machine).
    let limits = Limits {
        handshake_timeout_secs: 4,
        ..Limits::default()
    };
    let (mut pdp, terminal, _ca) = pdp_and_terminal("good-terminal", limits).await;
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(tls.clone())
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap()
    };
    // The staller: TLS, then nothing.
    let staller = connect().await;
    // The bad peer: PT-TLS version negotiation, then a batch with a bad
    // PB-TNC version.
    let mut bad = connect().await;
    let mut client = tnc_proto::pt_tls::ClientConnection::new(Default::default(), None);
    let mut buf = vec![0u8; 4096];
    loop {
        let out = client.take_output();
        bad.write_all(&out).await.unwrap();
        if client.is_ready() {
            break;
        }
        let n = bad.read(&mut buf).await.unwrap();
        client.receive(&buf[..n]);
        while client.poll_event().is_some() {}
    }
    // PB-TNC batch header with version 1 (RFC 5793 §4.1 requires 2).
    client.send_batch(&[1, 0x80, 0, 1, 0, 0, 0, 8]).unwrap();
    bad.write_all(&client.take_output()).await.unwrap();

    let outcome = log_in(&pdp, &terminal).await;
    assert!(outcome.allowed(), "{outcome:?}");

    // The bad peer got a PT-TLS PB-TNC batch: CLOSE with a PB-Error.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut got)).await;
    client.receive(&got);
    let mut saw_close = false;
    while let Some(e) = client.poll_event() {
        if let tnc_proto::pt_tls::Event::Batch(b) = e {
            let batch = tnc_proto::pb_tnc::Batch::decode(&b).unwrap();
            assert_eq!(batch.batch_type, tnc_proto::pb_tnc::BatchType::Close);
            assert!(batch.fatal_error().is_some(), "{batch:?}");
            saw_close = true;
        }
    }
    assert!(saw_close, "the bad peer got no CLOSE");

    let mut reports = Vec::new();
    while reports.len() < 3 {
        reports.push(
            tokio::time::timeout(Duration::from_secs(10), pdp.reports.recv())
                .await
                .expect("three sessions end")
                .unwrap(),
        );
    }
    assert!(
        reports
            .iter()
            .any(|r| r.error.as_deref().is_some_and(|e| e.contains("deadline"))),
        "{reports:?}"
    );
    assert!(
        reports.iter().any(|r| r
            .error
            .as_deref()
            .is_some_and(|e| e.contains("PB-TNC violation"))),
        "{reports:?}"
    );
    drop(staller);
    pdp.stop().await.unwrap();
}

/// SASL PLAIN inside PT-TLS against the store's argon2id hashes: the right
/// password gets a decision, a wrong one a SASL failure and no decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_checks_the_users_password() {
    use tnc_proto::pt_tls::sasl::PlainCredentials;
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        ca.roots().unwrap(),
        testnet::e2e::PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let rng = pki::rand::SystemRandom::new();
    let hash = tnc_server::auth::hash_password("s3cret pass", &rng).unwrap();
    assert!(pdp.store.add_user("alice", &hash, 1).await.unwrap());

    let wrong = pdp
        .log_in_as(&terminal, Some(PlainCredentials::new("alice", "guess")))
        .await
        .unwrap_err();
    assert!(format!("{wrong:#}").contains("SASL"), "{wrong:#}");
    let unknown = pdp
        .log_in_as(
            &terminal,
            Some(PlainCredentials::new("mallory", "s3cret pass")),
        )
        .await
        .unwrap_err();
    assert!(format!("{unknown:#}").contains("SASL"), "{unknown:#}");
    let ok = pdp
        .log_in_as(
            &terminal,
            Some(PlainCredentials::new("alice", "s3cret pass")),
        )
        .await
        .unwrap();
    assert!(ok.allowed(), "{ok:?}");
    pdp.stop().await.unwrap();
}

/// A PDP restart keeps the enrolled device (no second enrollment, the IMA
/// list continues where it stopped) and the audit chain, which still verifies
/// and keeps growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_devices_and_the_audit_chain() {
    let ca = LocalCa::create().unwrap();
    let mut terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let store_dir = testnet::swtpm::scratch_dir("store").unwrap();
    let good = profile("good-terminal").unwrap();
    let refs = [(Role::Terminal, &good)];
    let start = || {
        TestPdp::start_raw(
            &refs,
            ca.roots().unwrap(),
            testnet::e2e::PdpOptions {
                store_dir: Some(store_dir.clone()),
                ..Default::default()
            },
        )
    };
    let pdp = start().await.unwrap();
    let first = log_in(&pdp, &terminal).await;
    assert!(first.attestation.unwrap().findings[0].contains("newly"));
    assert_eq!(
        pdp.store.verify_audit().await.unwrap(),
        Ok(3),
        "policy-load + enroll + verdict"
    );
    pdp.stop().await.unwrap();

    let again = terminal.profile.ima[1].clone();
    terminal
        .measure_more(&[(again.path.as_str(), again.content.as_bytes())])
        .unwrap();
    let pdp = start().await.unwrap();
    let second = log_in(&pdp, &terminal).await;
    assert!(second.allowed(), "{second:?}");
    assert!(!second.attestation.unwrap().findings[0].contains("newly"));
    let devices = pdp.store.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].state.as_ref().unwrap().ima_entries, 7);
    // The same reference values: no new policy version; one more verdict.
    assert_eq!(pdp.store.verify_audit().await.unwrap(), Ok(4));
    let history = pdp
        .store
        .attestations(&devices[0].device_id, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    pdp.stop().await.unwrap();
    std::fs::remove_dir_all(&store_dir).unwrap();
}

/// The same handshake over QUIC (one bidirectional stream, ALPN pt-tls):
/// a good terminal is allowed, a tampered kernel isolated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_transport_decides_like_tcp() {
    let ca = LocalCa::create().unwrap();
    let good = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let bad = Endpoint::boot("tampered-kernel", Role::Terminal, &ca).unwrap();
    let pdp = TestPdp::start(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        &ca,
        Limits::default(),
    )
    .await
    .unwrap();
    let ok = pdp.log_in_over(&good, None, true).await.unwrap();
    assert!(ok.allowed(), "{ok:?}");
    let isolated = pdp.log_in_over(&bad, None, true).await.unwrap();
    assert_eq!(
        isolated.recommendation,
        Some(AccessRecommendation::Quarantined),
        "{isolated:?}"
    );
    assert!(isolated.reason.unwrap().contains("PCR 9"));
    pdp.stop().await.unwrap();
}

/// Everything a client writes, kept: the test replays it in a later session.
struct Recorder<S> {
    inner: S,
    written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Evidence recorded from one session and replayed in the next (a captured
/// quote, event log and IMA list, sent again by someone without the TPM) is
/// refused: the PDP's nonce is new every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_replayed_from_an_earlier_session_gets_no_access() {
    use tnc_proto::pt_tls::{ClientConnection, Event, SaslPolicy, ServerConnection};
    let (pdp, terminal, _ca) = pdp_and_terminal("good-terminal", Limits::default()).await;

    // Session 1: a genuine login, with everything the client wrote recorded.
    let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (addr, tls, mut agent, sink) = (
        pdp.addr,
        tls_client_config(&pdp.tls.ca).unwrap(),
        terminal.agent().unwrap(),
        written.clone(),
    );
    let first = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect("localhost".try_into().unwrap(), tcp)
                    .await
                    .unwrap();
                let recorder = Recorder {
                    inner: stream,
                    written: sink,
                };
                tnc_client::agent::run_session(recorder, &mut agent, None, 16 << 20).await
            })
    })
    .await
    .unwrap()
    .unwrap();
    assert!(first.allowed(), "{first:?}");

    // The client's PB-TNC batches, as a PT-TLS server reads them.
    let mut reader = ServerConnection::new(Default::default(), SaslPolicy::None);
    reader.receive(&written.lock().unwrap());
    let batches: Vec<Vec<u8>> = std::iter::from_fn(|| reader.poll_event())
        .filter_map(|e| match e {
            Event::Batch(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 3, "hello with the identity, evidence, close");

    // Session 2: the same batches again, each after the PDP's answer.
    let tcp = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
    let mut io = tokio_rustls::TlsConnector::from(tls_client_config(&pdp.tls.ca).unwrap())
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut client = ClientConnection::new(Default::default(), None);
    let mut buf = vec![0u8; 1 << 16];
    let mut next = batches.iter();
    let result: Vec<u8>;
    'session: loop {
        let mut got = Vec::new();
        while let Some(e) = client.poll_event() {
            match e {
                Event::Ready => got.push(None),
                Event::Batch(b) => got.push(Some(b)),
                _ => {}
            }
        }
        for g in got {
            if let Some(b) = &g {
                let batch = tnc_proto::pb_tnc::Batch::decode(b).unwrap();
                if batch.batch_type == tnc_proto::pb_tnc::BatchType::Result {
                    result = b.clone();
                    break 'session;
                }
            }
            client.send_batch(next.next().unwrap()).unwrap();
        }
        io.write_all(&client.take_output()).await.unwrap();
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0, "the PDP closed without a RESULT");
        client.receive(&buf[..n]);
    }
    let (recommendation, reason) = result_of(&result);
    assert_eq!(
        recommendation,
        Some(AccessRecommendation::Denied),
        "{reason}"
    );
    assert!(reason.contains("nonce"), "{reason}");
    pdp.stop().await.unwrap();
}

/// A PT-TLS + PB-TNC client driven by hand, one batch at a time.
struct RawClient {
    io: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    conn: tnc_proto::pt_tls::ClientConnection,
    pb: tnc_proto::pb_tnc::PbSession,
}

impl RawClient {
    async fn connect(pdp: &TestPdp) -> Self {
        let tcp = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
        let io = tokio_rustls::TlsConnector::from(tls_client_config(&pdp.tls.ca).unwrap())
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let mut c = Self {
            io,
            conn: tnc_proto::pt_tls::ClientConnection::new(Default::default(), None),
            pb: tnc_proto::pb_tnc::PbSession::new(tnc_proto::pb_tnc::Side::Client),
        };
        let mut buf = vec![0u8; 4096];
        while !c.conn.is_ready() {
            c.io.write_all(&c.conn.take_output()).await.unwrap();
            let n = c.io.read(&mut buf).await.unwrap();
            c.conn.receive(&buf[..n]);
            while c.conn.poll_event().is_some() {}
        }
        c
    }

    /// Sends a CDATA with one attestation PA message; the PDP's next batch.
    async fn send(&mut self, attrs: &[tnc_proto::attestation::AttestationAttribute]) -> Vec<u8> {
        self.send_as(tnc_proto::pb_tnc::BatchType::CData, attrs)
            .await
    }

    /// As [`RawClient::send`], in a batch of type `batch_type` (no PA
    /// message when `attrs` is empty).
    async fn send_as(
        &mut self,
        batch_type: tnc_proto::pb_tnc::BatchType,
        attrs: &[tnc_proto::attestation::AttestationAttribute],
    ) -> Vec<u8> {
        use tnc_proto::attestation::{SUBTYPE, VENDOR};
        let body = attrs
            .iter()
            .fold(tnc_proto::pa_tnc::PaMessageWriter::new(1), |w, a| {
                w.raw(true, VENDOR, a.attr_type(), &a.encode_value())
            })
            .finish();
        let messages = if attrs.is_empty() {
            Vec::new()
        } else {
            vec![tnc_proto::pb_tnc::PbMessage::Pa(tnc_proto::pb_tnc::PbPa {
                exclusive: false,
                subtype: SUBTYPE,
                collector_id: 2,
                validator_id: tnc_proto::pb_tnc::ID_ANY,
                body: &body,
            })]
        };
        let batch = self.pb.send(batch_type, messages).unwrap();
        self.conn.send_batch(&batch).unwrap();
        self.io.write_all(&self.conn.take_output()).await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            while let Some(e) = self.conn.poll_event() {
                if let tnc_proto::pt_tls::Event::Batch(b) = e {
                    self.pb.receive(&b).unwrap();
                    return b;
                }
            }
            let n = self.io.read(&mut buf).await.unwrap();
            assert!(n > 0, "the PDP closed the connection");
            self.conn.receive(&buf[..n]);
        }
    }
}

/// The attestation attributes of a PDP batch.
fn attestation_attrs(batch: &[u8]) -> Vec<tnc_proto::attestation::AttestationAttribute> {
    let batch = tnc_proto::pb_tnc::Batch::decode(batch).unwrap();
    let mut out = Vec::new();
    for pa in batch.pa_messages() {
        let msg = tnc_proto::pa_tnc::PaMessage::decode(pa.body).unwrap();
        for a in &msg.attributes {
            if a.vendor == tnc_proto::attestation::VENDOR {
                out.push(
                    tnc_proto::attestation::AttestationAttribute::decode(a.attr_type, a.value)
                        .unwrap(),
                );
            }
        }
    }
    out
}

/// An AK that is not in the EK's TPM: the identity names TPM A's certified EK
/// and an AK of TPM B. TPM B cannot activate the credential wrapped to A's
/// EK, and a made-up proof with B's genuine quote is refused: no access, and
/// the device is not enrolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ak_fails_credential_activation_and_gets_no_access() {
    use policy::HashAlg;
    use tnc_client::tpm::{AkKind, Tpm, TpmConfig};
    use tnc_proto::attestation::{
        AttestationAttribute, CredentialProof, Hello, Identity, QuoteEvidence,
    };
    let (pdp, a, ca) = pdp_and_terminal("good-terminal", Limits::default()).await;
    let b = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let (kind, ek_cert, ek_public) = {
        let mut tpm = Tpm::open(&TpmConfig::parse(&a.swtpm.tcti()).unwrap()).unwrap();
        let (kind, cert) = tpm.certified_ek().unwrap().unwrap();
        let ek = tpm.endorsement_key(kind).unwrap();
        (kind, cert, ek.marshalled().to_vec())
    };
    let mut tpm_b = Tpm::open(&TpmConfig::parse(&b.swtpm.tcti()).unwrap()).unwrap();
    tpm_b.endorsement_key(kind).unwrap();
    let ak_b = tpm_b.create_ak(kind, AkKind::EcdsaP256Sha256).unwrap();

    let mut raw = RawClient::connect(&pdp).await;
    let asked = raw
        .send(&[AttestationAttribute::Hello(Hello {
            role: Role::Terminal,
            tpm: true,
            software: "test".into(),
            host: None,
        })])
        .await;
    assert_eq!(
        attestation_attrs(&asked),
        vec![AttestationAttribute::IdentityRequest]
    );
    let identity = Identity {
        ek_public,
        ek_certificate: ek_cert,
        ak_public: ak_b.public_area().to_vec(),
    };
    let challenge = raw
        .send(&[AttestationAttribute::Identity(identity.clone())])
        .await;
    let attrs = attestation_attrs(&challenge);
    let (AttestationAttribute::CredentialChallenge(c), AttestationAttribute::QuoteRequest(q)) =
        (&attrs[0], &attrs[1])
    else {
        panic!("{attrs:?}");
    };
    assert!(
        tpm_b
            .activate_credential(&ak_b, kind, &c.id_object, &c.encrypted_secret)
            .is_err(),
        "TPM B must not open a credential made for TPM A's EK"
    );
    let pcrs: Vec<u32> = q.selection[0].pcrs.iter().map(|&p| u32::from(p)).collect();
    let quote = tpm_b
        .quote(&ak_b, &q.nonce, &[(HashAlg::Sha256, pcrs)])
        .unwrap();
    let result = raw
        .send(&[
            AttestationAttribute::CredentialProof(CredentialProof {
                secret: vec![0x42; 32],
            }),
            AttestationAttribute::QuoteEvidence(QuoteEvidence {
                attest: quote.attest,
                signature: quote.signature,
                event_log: b.measurements.event_log.clone(),
                ima: b.measurements.ima.clone(),
                ima_offset: 0,
            }),
        ])
        .await;
    let (recommendation, reason) = result_of(&result);
    assert_eq!(
        recommendation,
        Some(AccessRecommendation::Denied),
        "{reason}"
    );
    assert!(reason.contains("AK enrollment"), "{reason}");
    assert!(pdp.store.devices().await.unwrap().is_empty());

    // As our collector does when activation fails: a Failure instead of the
    // proof. Still no access (not the milder verdict for "no evidence").
    let mut raw = RawClient::connect(&pdp).await;
    raw.send(&[AttestationAttribute::Hello(Hello {
        role: Role::Terminal,
        tpm: true,
        software: "test".into(),
        host: None,
    })])
    .await;
    raw.send(&[AttestationAttribute::Identity(identity.clone())])
        .await;
    let result = raw
        .send(&[AttestationAttribute::Failure(
            tnc_proto::attestation::Failure {
                message: "credential activation: TPM_RC_INTEGRITY".into(),
            },
        )])
        .await;
    let (recommendation, reason) = result_of(&result);
    assert_eq!(
        recommendation,
        Some(AccessRecommendation::Denied),
        "{reason}"
    );
    drop(tpm_b);
    pdp.stop().await.unwrap();
}

/// A peer over its rate of new sessions is closed before TLS; the PDP logs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_over_its_session_rate_is_refused() {
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        (Vec::new(), Vec::new()),
        testnet::e2e::PdpOptions {
            limits: Limits {
                sessions_per_peer_per_minute: 2,
                ..Limits::default()
            },
            report: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let mut handshakes = Vec::new();
    for _ in 0..3 {
        let tcp = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
        handshakes.push(
            tokio_rustls::TlsConnector::from(tls.clone())
                .connect("localhost".try_into().unwrap(), tcp)
                .await
                .is_ok(),
        );
    }
    assert_eq!(handshakes, [true, true, false]);
    pdp.stop().await.unwrap();
}

/// A client certificate from the configured client CA authenticates the
/// session in place of SASL PLAIN (no password asked); one from another CA
/// fails the TLS handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_replaces_the_password() {
    use testnet::e2e::{make_client_certs, PdpOptions};
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let dir = testnet::swtpm::scratch_dir("client-certs").unwrap();
    let (client_ca, certs) = make_client_certs(&dir, 1).unwrap();
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, foreign) = make_client_certs(&other, 1).unwrap();
    let mut pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        ca.roots().unwrap(),
        PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            client_ca: Some(client_ca),
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let login_with = |cert: Option<(std::path::PathBuf, std::path::PathBuf)>| {
        let tls = tnc_client::agent::tls_client_config_with(
            &pdp.tls.ca,
            cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )
        .unwrap();
        let mut agent = terminal.agent().unwrap();
        let addr = pdp.addr;
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(tnc_client::agent::login(
                    addr,
                    "localhost",
                    tls,
                    &mut agent,
                    None,
                ))
        })
    };
    let ok = login_with(Some(certs[0].clone())).await.unwrap().unwrap();
    assert!(ok.allowed(), "{ok:?}");
    let report = pdp.reports.recv().await.unwrap();
    assert!(report.decision.is_some(), "{report:?}");
    // Without a certificate the PDP asks for SASL PLAIN, which this client
    // cannot answer; with a foreign one the TLS handshake fails.
    assert!(login_with(None).await.unwrap().is_err());
    let err = login_with(Some(foreign[0].clone()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("connection"), "{err}");
    let audit = pdp.store.audit_entries().await.unwrap();
    assert!(audit.iter().any(|e| e.kind == "verdict"), "{audit:?}");
    pdp.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The OS validator asks for the package inventory when its policy forbids
/// packages, and isolates an endpoint that has one installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_package_is_isolated() {
    use testnet::e2e::PdpOptions;
    use tnc_server::config::OsPolicy;
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    for (forbidden, allowed) in [("telnetd", true), ("tnc-client", false)] {
        let pdp = TestPdp::start_raw(
            &[(Role::Terminal, &profile("good-terminal").unwrap())],
            ca.roots().unwrap(),
            PdpOptions {
                os_policy: OsPolicy {
                    forbidden_packages: vec![forbidden.into()],
                    ..OsPolicy::default()
                },
                ..PdpOptions::default()
            },
        )
        .await
        .unwrap();
        let outcome = log_in(&pdp, &terminal).await;
        assert_eq!(outcome.allowed(), allowed, "{forbidden}: {outcome:?}");
        if !allowed {
            let reason = outcome.reason.unwrap();
            assert!(
                reason.contains("forbidden package tnc-client 0.1.0 is installed"),
                "{reason}"
            );
        }
        pdp.stop().await.unwrap();
    }
}

/// A reboot between two logins: the PDP asked for IMA entries after the ones
/// it had, the TPM's reset count shows a new boot, so it asks again for the
/// whole list over a new nonce and allows the device (no lockout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_between_logins_is_handled() {
    let (pdp, mut terminal, _ca) = pdp_and_terminal("good-terminal", Limits::default()).await;
    let first = log_in(&pdp, &terminal).await;
    assert!(first.allowed(), "{first:?}");
    let before = pdp.store.devices().await.unwrap()[0].state.clone().unwrap();
    terminal.reboot().unwrap();
    let second = log_in(&pdp, &terminal).await;
    assert!(second.allowed(), "{second:?}");
    let after = pdp.store.devices().await.unwrap()[0].state.clone().unwrap();
    assert!(
        after.reset_count > before.reset_count,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.ima_entries, before.ima_entries);
    let reasons = second.attestation.unwrap().findings;
    assert!(!reasons[0].contains("newly"), "{reasons:?}");
    pdp.stop().await.unwrap();
}

/// The role is bound at enrollment: the same TPM claiming to be a VM (whose
/// reference values may be looser) gets no access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_device_cannot_change_its_role() {
    let (pdp, mut terminal, _ca) = pdp_and_terminal("good-terminal", Limits::default()).await;
    assert!(log_in(&pdp, &terminal).await.allowed());
    terminal.role = Role::Vm;
    let outcome = log_in(&pdp, &terminal).await;
    assert_eq!(
        outcome.recommendation,
        Some(AccessRecommendation::Denied),
        "{outcome:?}"
    );
    assert!(
        outcome.reason.unwrap().contains("enrolled as a terminal"),
        "the reason names the enrolled role"
    );
    pdp.stop().await.unwrap();
}

/// The verdict and reason of a RESULT batch.
fn result_of(batch: &[u8]) -> (Option<AccessRecommendation>, String) {
    let batch = tnc_proto::pb_tnc::Batch::decode(batch).unwrap();
    assert_eq!(
        batch.batch_type,
        tnc_proto::pb_tnc::BatchType::Result,
        "{batch:?}"
    );
    let mut out = (None, String::new());
    for m in &batch.messages {
        match m {
            tnc_proto::pb_tnc::PbMessage::AccessRecommendation(r) => out.0 = Some(*r),
            tnc_proto::pb_tnc::PbMessage::ReasonString { text, .. } => out.1 = text.to_string(),
            _ => {}
        }
    }
    out
}

/// An enrolled device that identifies its TPM and then sends a Failure
/// instead of its quote gets no access; one whose quote does not verify gets
/// no access and no attestation recorded under the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_device_without_a_valid_quote_gets_no_access() {
    use tnc_proto::attestation::{AttestationAttribute, Failure, Hello, QuoteEvidence};
    let (pdp, terminal, _ca) = pdp_and_terminal("good-terminal", Limits::default()).await;
    assert!(log_in(&pdp, &terminal).await.allowed());
    let device = pdp.store.devices().await.unwrap()[0].device_id;
    // The enrolled identity, as the terminal's collector presents it: when
    // asked, and with its Hello; asked once more after that (a PDP that
    // asks before it reads on), it does not send it twice.
    let identity = {
        let mut collector =
            tnc_client::attest::AttestationCollector::new(terminal.attestation_config());
        let asked = collector
            .receive(vec![AttestationAttribute::IdentityRequest])
            .remove(0);
        let opening = collector.opening();
        assert_eq!(opening.len(), 2);
        assert!(matches!(opening[0], AttestationAttribute::Hello(_)));
        assert_eq!(opening[1], asked);
        assert!(collector
            .receive(vec![AttestationAttribute::IdentityRequest])
            .is_empty());
        collector.release();
        asked
    };
    let hello = AttestationAttribute::Hello(Hello {
        role: Role::Terminal,
        tpm: true,
        software: "test".into(),
        host: None,
    });

    let mut raw = RawClient::connect(&pdp).await;
    raw.send(std::slice::from_ref(&hello)).await;
    raw.send(std::slice::from_ref(&identity)).await;
    let result = raw
        .send(&[AttestationAttribute::Failure(Failure {
            message: "no quote today".into(),
        })])
        .await;
    let (verdict, reason) = result_of(&result);
    assert_eq!(verdict, Some(AccessRecommendation::Denied), "{reason}");
    assert!(reason.contains("sent no quote"), "{reason}");

    let mut raw = RawClient::connect(&pdp).await;
    raw.send(&[hello]).await;
    raw.send(&[identity]).await;
    let result = raw
        .send(&[AttestationAttribute::QuoteEvidence(QuoteEvidence {
            attest: vec![0xFF, 0x54, 0x43, 0x47, 0, 0],
            signature: vec![0, 0x18, 0, 0x0b],
            event_log: terminal.measurements.event_log.clone(),
            ima: Vec::new(),
            ima_offset: 6,
        })])
        .await;
    assert_eq!(result_of(&result).0, Some(AccessRecommendation::Denied));
    let history = pdp.store.attestations(&device, 10).await.unwrap();
    assert_eq!(
        history.len(),
        1,
        "only the genuine login is recorded: {history:?}"
    );
    pdp.stop().await.unwrap();
}

/// A client may ask for a new assessment (CRETRY) twice in one session; the
/// third time the PDP ends the session with a PB-TNC error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cretry_is_limited_per_session() {
    use tnc_proto::attestation::{AttestationAttribute, Hello};
    use tnc_proto::pb_tnc::{Batch, BatchType};
    let (pdp, _terminal, _ca) = pdp_and_terminal("good-terminal", Limits::default()).await;
    let mut raw = RawClient::connect(&pdp).await;
    let first = raw
        .send(&[AttestationAttribute::Hello(Hello {
            role: Role::Terminal,
            tpm: false,
            software: "test".into(),
            host: None,
        })])
        .await;
    assert!(result_of(&first).0.is_some());
    for _ in 0..2 {
        let again = raw.send_as(BatchType::CRetry, &[]).await;
        assert!(
            result_of(&again).0.is_some(),
            "a re-assessment gets a RESULT"
        );
    }
    let refused = raw.send_as(BatchType::CRetry, &[]).await;
    let batch = Batch::decode(&refused).unwrap();
    assert_eq!(batch.batch_type, BatchType::Close, "{batch:?}");
    assert!(batch.fatal_error().is_some(), "{batch:?}");
    pdp.stop().await.unwrap();
}
