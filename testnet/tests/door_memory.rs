//! The PDP's budget for unfinished peer messages (issue "Holding the
//! door"), measured as this process's resident memory: the only test in its
//! binary, so that no other test's allocations count.

use std::sync::Arc;
use testnet::e2e::{PdpOptions, TestPdp};
use tnc_client::agent::tls_client_config;

/// This process's resident memory, in MiB.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// 160 sessions each announce a 1 MiB PT-TLS message and send all of it but
/// its last byte. With an 8 MiB budget for unfinished messages the PDP holds
/// 64 KiB of each and the budget, not 160 MiB: its sessions stop reading
/// (TCP pushes back on the peers) instead of buffering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_announcing_large_messages_stay_within_the_budget() {
    use tnc_proto::pt_tls::{Message, MessageBody};
    use tokio::io::AsyncWriteExt;
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            limits: tnc_server::config::Limits {
                max_message_len: 1 << 20,
                message_budget_mib: 8,
                // All 160 come from 127.0.0.1 at once.
                pending_per_address: 1_000,
                ..Default::default()
            },
            report: false,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let version = Message {
        identifier: 0,
        body: MessageBody::VersionRequest {
            min: 1,
            max: 1,
            preferred: 1,
        },
    }
    .to_bytes();
    let big = Arc::new(
        Message {
            identifier: 1,
            body: MessageBody::PbTncBatch(&vec![0u8; (1 << 20) - 16]),
        }
        .to_bytes(),
    );
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let before = rss_mib();
    let mut peers = tokio::task::JoinSet::new();
    for _ in 0..160 {
        let (tls, version, big) = (tls.clone(), version.clone(), big.clone());
        let addr = pdp.addr;
        peers.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut io = tokio_rustls::TlsConnector::from(tls)
                .connect("localhost".try_into().unwrap(), tcp)
                .await
                .unwrap();
            io.write_all(&version).await.unwrap();
            // Everything but the last byte: the message never completes.
            let _ = io.write_all(&big[..big.len() - 1]).await;
            // Hold the connection open.
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            drop(io);
        });
    }
    // Let the PDP read what it will.
    let mut peak = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        peak = peak.max(rss_mib().saturating_sub(before));
        let b = &pdp.ctx.message_budget;
        assert!(b.in_use_kib() <= b.total_kib());
    }
    eprintln!("160 sessions x 1 MiB announced: memory grew by {peak} MiB");
    assert!(peak < 120, "memory grew by {peak} MiB");
    let b = &pdp.ctx.message_budget;
    assert!(
        b.in_use_kib() > b.total_kib() / 2,
        "the budget is in use: {} of {} KiB",
        b.in_use_kib(),
        b.total_kib()
    );
    peers.abort_all();
    pdp.stop().await.unwrap();
}
