//! RFC 5793 §3.2: a PDP that answers the first CDATA with SRETRY gets a new
//! assessment: the agent sends its collectors' opening messages again (no
//! second language preference) and takes the RESULT that follows.

use tnc_client::agent::run_session;
use tnc_proto::common::AssessmentResult;
use tnc_proto::pa_tnc::PaSubtype;
use tnc_proto::pb_tnc::{AccessRecommendation, Batch, BatchType, PbMessage, PbSession, Side};
use tnc_proto::pt_tls::{Event, Limits, SaslPolicy, ServerConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn sretry_starts_a_new_assessment() {
    let dir = std::env::temp_dir().join(format!("tnc-sretry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut agent = testnet::e2e::agent_without_tpm(&dir).unwrap();
    let (client_io, mut server_io) = tokio::io::duplex(1 << 16);

    let server = tokio::spawn(async move {
        let mut conn = ServerConnection::new(Limits::default(), SaslPolicy::None);
        let mut pb = PbSession::new(Side::Server);
        let mut cdata = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            while let Some(e) = conn.poll_event() {
                if let Event::Batch(b) = e {
                    let batch = pb.receive(&b).unwrap();
                    let reply = match batch.batch_type {
                        BatchType::CData if cdata.is_empty() => {
                            cdata.push(b.clone());
                            pb.send(BatchType::SRetry, vec![]).unwrap()
                        }
                        BatchType::CData => {
                            cdata.push(b.clone());
                            pb.send(
                                BatchType::Result,
                                vec![
                                    PbMessage::AssessmentResult(AssessmentResult::Compliant),
                                    PbMessage::AccessRecommendation(AccessRecommendation::Allowed),
                                ],
                            )
                            .unwrap()
                        }
                        _ => continue,
                    };
                    conn.send_batch(&reply).unwrap();
                }
            }
            server_io.write_all(&conn.take_output()).await.unwrap();
            let n = server_io.read(&mut buf).await.unwrap();
            if n == 0 {
                return cdata;
            }
            conn.receive(&buf[..n]);
        }
    });

    let outcome = run_session(client_io, &mut agent, None, 1 << 20)
        .await
        .unwrap();
    assert!(outcome.allowed(), "{outcome:?}");
    let cdata = server.await.unwrap();
    assert_eq!(
        cdata.len(),
        2,
        "the opening batch, then the one after SRETRY"
    );
    let second = Batch::decode(&cdata[1]).unwrap();
    assert!(!second
        .messages
        .iter()
        .any(|m| matches!(m, PbMessage::LanguagePreference(_))));
    assert!(second
        .pa_messages()
        .any(|pa| pa.subtype == PaSubtype::OPERATING_SYSTEM));
    std::fs::remove_dir_all(&dir).unwrap();
}
