//! A standards-conforming peer that knows nothing of the project's attestation
//! attributes gets a complete, correct exchange from the running PDP: the
//! messages strongSwan 6.0.6's `pt-tls-client` (OS IMC) sent in a real session
//! (../shared/testdata/nea), replayed over TLS to our PDP. It authenticates
//! with SASL PLAIN, reports its OS, and gets RESULT with PB-Assessment-Result,
//! PB-Access-Recommendation and a reason: isolate, the operator's default for
//! an endpoint without TPM evidence.
//!
//! (strongSwan's TNC packages are not in Debian 12, so its binary cannot run
//! here; its captured bytes are the peer.)

use testnet::e2e::{profile, strongswan_messages as capture, PdpOptions, TestPdp};
use tnc_proto::pb_tnc::{AccessRecommendation, Batch, BatchType, PbMessage};
use tnc_proto::pt_tls::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PB_TNC_BATCH: u32 = 7;
const SASL_RESULT: u32 = 6;

fn message_type(m: &[u8]) -> u32 {
    u32::from_be_bytes([m[4], m[5], m[6], m[7]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongswan_client_messages_get_a_complete_exchange() {
    let client = capture("os-allow.c2s.bin");
    let pdp = TestPdp::start_raw(
        &[(
            tnc_proto::attestation::Role::Terminal,
            &profile("good-terminal").unwrap(),
        )],
        (Vec::new(), Vec::new()),
        PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    // The capture's test credentials.
    pdp.add_user("tnc-user", "tnc-secret").await.unwrap();

    let tcp = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
    let mut io = tokio_rustls::TlsConnector::from(
        tnc_client::agent::tls_client_config(&pdp.tls.ca).unwrap(),
    )
    .connect("localhost".try_into().unwrap(), tcp)
    .await
    .unwrap();
    let mut from_pdp = Framer::new(1 << 20);
    let mut buf = vec![0u8; 1 << 16];
    let mut received: Vec<Vec<u8>> = Vec::new();
    // Reads until the PDP has sent a message of type `t`.
    macro_rules! until {
        ($t:expr) => {
            loop {
                if let Some(m) = received.iter().find(|m| message_type(m) == $t) {
                    break m.clone();
                }
                let n = tokio::time::timeout(std::time::Duration::from_secs(10), io.read(&mut buf))
                    .await
                    .expect("the PDP answers")
                    .unwrap();
                assert!(n > 0, "the PDP closed early; got {received:?}");
                from_pdp.push(&buf[..n]);
                while let Some(m) = from_pdp.next_frame().unwrap() {
                    received.push(m);
                }
            }
        };
    }

    // Version Request, SASL Mechanism Selection (PLAIN with credentials).
    let batches: Vec<&Vec<u8>> = client
        .iter()
        .filter(|m| message_type(m) == PB_TNC_BATCH)
        .collect();
    for m in client
        .iter()
        .take_while(|m| message_type(m) != PB_TNC_BATCH)
    {
        io.write_all(m).await.unwrap();
    }
    let sasl = until!(SASL_RESULT);
    // strongSwan reads a 1-byte result code: ours is 1 byte, 0 = success.
    assert_eq!(&sasl[16..], &[0], "SASL Result {sasl:02x?}");

    // Its first CDATA: PB-Language-Preference and the OS attributes.
    io.write_all(batches[0]).await.unwrap();
    let result = until!(PB_TNC_BATCH);
    let batch = Batch::decode(&result[16..]).unwrap();
    assert_eq!(batch.batch_type, BatchType::Result, "{batch:?}");
    assert!(batch
        .messages
        .iter()
        .any(|m| matches!(m, PbMessage::AssessmentResult(_))));
    assert!(batch.messages.contains(&PbMessage::AccessRecommendation(
        AccessRecommendation::Quarantined
    )));
    let reason = batch
        .messages
        .iter()
        .find_map(|m| match m {
            PbMessage::ReasonString { text, .. } => Some(text.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("no TPM evidence"), "{reason}");

    // Its CLOSE ends the session cleanly.
    io.write_all(batches.last().unwrap()).await.unwrap();
    let close = Batch::decode(&batches.last().unwrap()[16..]).unwrap();
    assert_eq!(close.batch_type, BatchType::Close);
    let mut rest = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), io.read_to_end(&mut rest)).await;
    pdp.stop().await.unwrap();
}

/// Our login agent against strongSwan's PT-TLS server: the messages
/// strongSwan's PDP sent in a real session, replayed over TLS in answer to
/// ours. The agent authenticates (1-byte SASL Result), skips the TCG
/// segmentation attributes it does not know, answers the Attribute Request
/// with the installed packages, and reports strongSwan's verdict: allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_agent_gets_strongswans_verdict() {
    use tnc_client::agent::{login, tls_client_config};
    let server_msgs = capture("os-allow.s2c.bin");
    let dir = testnet::swtpm::scratch_dir("strongswan-server").unwrap();
    let tls = testnet::e2e::make_tls_files(&dir).unwrap();
    let config = tnc_server::net::tls_server_config(&tls.cert, &tls.key, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    // The replaying server: after the client's Version Request, everything
    // up to the SASL Result; after its SASL selection, everything up to the
    // first batch; after each client batch, the next server batch.
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut io = tokio_rustls::TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .unwrap();
        let mut framer = Framer::new(1 << 24);
        let mut buf = vec![0u8; 1 << 16];
        let mut next = server_msgs.iter().peekable();
        let mut from_client = Vec::new();
        loop {
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            framer.push(&buf[..n]);
            while let Some(m) = framer.next_frame().unwrap() {
                let stop_before = match message_type(&m) {
                    1 => Some(SASL_RESULT),
                    4 => Some(PB_TNC_BATCH),
                    _ => None,
                };
                let mut reply = Vec::new();
                match stop_before {
                    Some(t) => {
                        while let Some(s) = next.next_if(|s| message_type(s) != t) {
                            reply.extend_from_slice(s);
                        }
                        if t == SASL_RESULT {
                            // The SASL Result and the empty mechanism list after it.
                            while let Some(s) = next.next_if(|s| message_type(s) != PB_TNC_BATCH) {
                                reply.extend_from_slice(s);
                            }
                        }
                    }
                    None if message_type(&m) == PB_TNC_BATCH => {
                        if let Some(s) = next.next() {
                            reply.extend_from_slice(s);
                        }
                    }
                    None => {}
                }
                io.write_all(&reply).await.unwrap();
                from_client.push(m);
            }
        }
        from_client
    });

    let os_dir = testnet::swtpm::scratch_dir("strongswan-os").unwrap();
    // An endpoint without a TPM: it says so, and its TPM is never opened.
    let mut agent = testnet::e2e::agent_without_tpm(&os_dir).unwrap();
    let outcome = login(
        addr,
        "localhost",
        tls_client_config(&tls.ca).unwrap(),
        &mut agent,
        Some(tnc_proto::pt_tls::sasl::PlainCredentials::new(
            "tnc-user",
            "tnc-secret",
        )),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome.recommendation,
        Some(AccessRecommendation::Allowed),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.assessment,
        Some(tnc_proto::common::AssessmentResult::Compliant)
    );
    let from_client = server.await.unwrap();
    // Our second CDATA answered the Attribute Request with Installed Packages.
    let batches: Vec<Batch> = from_client
        .iter()
        .filter(|m| message_type(m) == PB_TNC_BATCH)
        .map(|m| Batch::decode(&m[16..]).unwrap())
        .collect();
    let answered = batches[1].pa_messages().any(|pa| {
        tnc_proto::pa_tnc::PaMessage::decode(pa.body).is_ok_and(|m| {
            m.attributes.iter().any(|a| {
                matches!(
                    a.parse(),
                    Ok(tnc_proto::pa_tnc::Attribute::InstalledPackages(p)) if !p.packages.is_empty()
                )
            })
        })
    });
    assert!(answered, "{batches:?}");
    assert_eq!(batches.last().unwrap().batch_type, BatchType::Close);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&os_dir).unwrap();
}
