//! The PDP under pressure from its own operator and from hostile peers
//! (issue "Holding the door"): every test here fails on a PDP without the
//! defence it names.

use std::sync::Arc;
use testnet::e2e::{agent_without_tpm, PdpOptions, TestPdp};
use testnet::swtpm::scratch_dir;
use tnc_client::agent::{login, tls_client_config};
use tnc_server::store::Store;

/// Operator commands (`user add/remove`, `policy load`, audit entries) run
/// in a loop against the same SQLite file from another connection while
/// endpoints log in: no verdict is lost to the store's write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_writes_during_a_login_storm_cost_no_verdict() {
    let store_dir = scratch_dir("door-store").unwrap();
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            store_dir: Some(store_dir.clone()),
            report: false,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let operator = Arc::new(
        Store::open(&format!("sqlite://{}", store_dir.join("tnc.db").display()))
            .await
            .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = {
        let (operator, stop) = (operator.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("user-{}", n % 4);
                let now = tnc_server::pdp::system_clock();
                operator.add_user(&name, "x", now).await.unwrap();
                operator.audit(now, "user-add", &name, "").await.unwrap();
                operator.remove_user(&name).await.unwrap();
                let policy = format!("name = \"p{n}\"\nbank = \"sha256\"\n");
                operator
                    .seed_policy(tnc_proto::attestation::Role::Vm, &policy, now)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let hosts = scratch_dir("door-hosts").unwrap();
    let mut outcomes = Vec::new();
    for round in 0..12 {
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..10 {
            let dir = hosts.join(format!("{round}-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut agent = agent_without_tpm(&dir).unwrap();
            let (tls, addr) = (tls.clone(), pdp.addr);
            logins.spawn(async move {
                login(addr, "localhost", tls, &mut agent, None)
                    .await
                    .unwrap()
            });
        }
        while let Some(o) = logins.join_next().await {
            outcomes.push(o.unwrap());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let operator_rounds = writes.await.unwrap();
    assert!(
        operator_rounds > 10,
        "the operator wrote {operator_rounds} times"
    );
    // A decision that cannot be recorded (here: the store closed under the
    // PDP) is no access with a generic reason; the database's words stay in
    // the PDP's log.
    let lost: Vec<_> = outcomes
        .iter()
        .filter(|o| o.verdict_name() != "isolate")
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} logins lost their verdict, e.g. {:?}",
        lost.len(),
        outcomes.len(),
        lost.first()
    );
    pdp.ctx.store.close().await;
    let dir = hosts.join("closed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut agent = agent_without_tpm(&dir).unwrap();
    let o = login(pdp.addr, "localhost", tls.clone(), &mut agent, None)
        .await
        .unwrap();
    assert_eq!(o.verdict_name(), "no access", "{o:?}");
    assert_eq!(
        o.reason.as_deref(),
        Some("the PDP could not record its decision; try again")
    );
    operator.close().await;
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&store_dir);
    let _ = std::fs::remove_dir_all(&hosts);
}

const PB_TNC_BATCH: u32 = 7;
const SASL_RESULT: u32 = 6;

/// A peer that reads its RESULT and drops the TCP connection without CLOSE
/// or TLS close_notify (as some clients do) leaves a session logged and
/// reported as decided, with its verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_leaving_after_result_leaves_a_decided_session() {
    use tnc_proto::pt_tls::Framer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let client = testnet::e2e::strongswan_messages("os-allow.c2s.bin");
    let mut pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let rng = pki::rand::SystemRandom::new();
    let hash = tnc_server::auth::hash_password("tnc-secret", &rng).unwrap();
    pdp.ctx.store.add_user("tnc-user", &hash, 0).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
    let mut io = tokio_rustls::TlsConnector::from(tls_client_config(&pdp.tls.ca).unwrap())
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let kind = |m: &[u8]| u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
    let mut framer = Framer::new(1 << 20);
    let mut buf = vec![0u8; 1 << 16];
    let mut wait_for = async |io: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
                              t: u32| loop {
        while let Some(m) = framer.next_frame().unwrap() {
            if kind(&m) == t {
                return;
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), io.read(&mut buf))
            .await
            .expect("the PDP answers")
            .unwrap();
        assert!(n > 0, "the PDP closed early");
        framer.push(&buf[..n]);
    };
    for m in client.iter().take_while(|m| kind(m) != PB_TNC_BATCH) {
        io.write_all(m).await.unwrap();
    }
    wait_for(&mut io, SASL_RESULT).await;
    let first_batch = client.iter().find(|m| kind(m) == PB_TNC_BATCH).unwrap();
    io.write_all(first_batch).await.unwrap();
    wait_for(&mut io, PB_TNC_BATCH).await;
    // Gone: no CLOSE batch, no close_notify, just the TCP close.
    drop(io);
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), pdp.reports.recv())
        .await
        .unwrap()
        .unwrap();
    let decision = report
        .decision
        .as_ref()
        .unwrap_or_else(|| panic!("the session was not reported as decided: {report:?}"));
    assert_eq!(decision.verdict.name(), "isolate");
    pdp.stop().await.unwrap();
}
