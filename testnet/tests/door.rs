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
    pdp.store.close().await;
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
    pdp.add_user("tnc-user", "tnc-secret").await.unwrap();
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

/// A PDP with SASL PLAIN and the user alice (password "right").
async fn sasl_pdp(options: PdpOptions) -> TestPdp {
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            report: false,
            ..options
        },
    )
    .await
    .unwrap();
    pdp.add_user("alice", "right").await.unwrap();
    pdp
}

/// A TPM-less login from 127.0.0.1 as `user`, its OS facts in `dir`.
async fn sasl_login(
    pdp: &TestPdp,
    dir: &std::path::Path,
    user: &str,
    password: &str,
) -> Result<tnc_client::agent::Outcome, tnc_client::agent::AgentError> {
    std::fs::create_dir_all(dir).unwrap();
    let mut agent = agent_without_tpm(dir).unwrap();
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let credentials = tnc_proto::pt_tls::sasl::PlainCredentials::new(user, password);
    login(pdp.addr, "localhost", tls, &mut agent, Some(credentials)).await
}

/// The per-address limit counts failures, not genuine terminals: with a
/// limit of 2 sessions a minute, six users log in from one address one
/// after the other (each authenticated session gives its token back); two
/// wrong passwords then use the budget up, and the next connection from
/// that address is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_counts_failures_not_genuine_terminals() {
    let pdp = sasl_pdp(PdpOptions {
        limits: tnc_server::config::Limits {
            sessions_per_peer_per_minute: 2,
            ..Default::default()
        },
        ..PdpOptions::default()
    })
    .await;
    let hosts = scratch_dir("door-rate").unwrap();
    let attempt = |i: usize, password: &'static str| {
        let (pdp, dir) = (&pdp, hosts.join(i.to_string()));
        async move { sasl_login(pdp, &dir, "alice", password).await }
    };
    for i in 0..6 {
        let o = attempt(i, "right")
            .await
            .unwrap_or_else(|e| panic!("login {i}: {e}"));
        assert_eq!(o.verdict_name(), "isolate");
    }
    for i in 6..8 {
        assert!(attempt(i, "wrong").await.is_err());
    }
    let refused = attempt(8, "right").await;
    assert!(
        refused.is_err(),
        "the budget is spent by the failures: {refused:?}"
    );
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&hosts);
}

/// Password guessing is slowed, then locked, and recorded once per address
/// per minute: with 3 guesses allowed, the fourth attempt fails even with the
/// right password (unchecked), and the audit log holds one entry for the
/// burst, not one per guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_locked_out_and_audited_once() {
    let pdp = sasl_pdp(PdpOptions {
        guesses: tnc_server::guard::GuessLimits {
            per_minute: 1,
            burst: 3,
        },
        ..PdpOptions::default()
    })
    .await;
    let hosts = scratch_dir("door-guess").unwrap();
    let attempt = |i: usize, user: &'static str, password: &'static str| {
        let (pdp, dir) = (&pdp, hosts.join(i.to_string()));
        async move { sasl_login(pdp, &dir, user, password).await }
    };
    for i in 0..3 {
        assert!(attempt(i, "alice", "guess").await.is_err());
    }
    let locked = attempt(3, "alice", "right").await;
    assert!(
        locked.is_err(),
        "the right password while locked: {locked:?}"
    );
    // A user name that does not exist is locked the same way (no enumeration).
    for i in 4..8 {
        assert!(attempt(i, "nobody", "guess").await.is_err());
    }
    let audit = pdp.store.audit_entries().await.unwrap();
    let failed: Vec<_> = audit.iter().filter(|e| e.kind == "sasl-failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].detail.starts_with("1 failed SASL login"),
        "{failed:?}"
    );
    let drained = pdp.ctx.guesses.drain_audit();
    assert_eq!(drained.len(), 1);
    assert!(
        drained[0].1.starts_with("7 failed SASL logins"),
        "{drained:?}"
    );
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&hosts);
}

/// An idle flood: 2,200 TCP connections that send nothing, from 127.0.0.2-5,
/// kept coming while a genuine terminal logs in from 127.0.0.1. They hold no
/// session slot (only places in the bounded pool of unauthenticated
/// connections, 64 per address): the genuine login finishes within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_does_not_hold_the_door_shut() {
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            report: false,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let addr = pdp.addr;
    let open = move |source: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket
            .bind((std::net::Ipv4Addr::from(source), 0).into())
            .ok()?;
        socket.connect(addr).await.ok()
    };
    let mut idle = Vec::new();
    for i in 0..2_200usize {
        let source = [127, 0, 0, 2 + (i % 4) as u8];
        if let Some(s) = open(source).await {
            idle.push(s);
        }
    }
    assert!(
        idle.len() >= 2_000,
        "{} idle connections opened",
        idle.len()
    );
    // More keep coming while the genuine terminal logs in.
    let flood = tokio::spawn(async move {
        let mut more = Vec::new();
        for i in 0..10_000usize {
            if let Some(s) = open([127, 0, 0, 2 + (i % 4) as u8]).await {
                more.push(s);
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        more.len()
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dir = scratch_dir("door-flood").unwrap();
    let mut agent = agent_without_tpm(&dir).unwrap();
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        login(addr, "localhost", tls, &mut agent, None),
    )
    .await
    .expect("the genuine login got through at all")
    .unwrap();
    let took = started.elapsed();
    assert_eq!(outcome.verdict_name(), "isolate");
    assert!(
        took < std::time::Duration::from_secs(2),
        "the genuine login took {took:?} under the flood"
    );
    assert!(pdp.store.audit_entries().await.is_ok(), "the PDP is alive");
    flood.abort();
    drop(idle);
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
