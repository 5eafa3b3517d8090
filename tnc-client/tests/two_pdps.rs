//! Two PDPs on one PostgreSQL (issue 13, item 4), as operators run them:
//! `tnc-server run` twice with the same store and the same session CA,
//! swtpm terminals, the gateway subscribed to PDP B only.
//!
//! - A revocation decided on PDP A (terminal-2 isolated there) reaches the
//!   gateway through PDP B.
//! - terminal-1 stays logged in on A (`login --stay`, `servers = [B]`);
//!   A is killed with SIGKILL; terminal-1's session goes on with B, which
//!   re-assesses it, and B's later isolation of terminal-1 reaches the
//!   gateway too: no revocation is lost.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testnet::e2e::{child_lines, make_tls_files, profile, wait_for_line, Endpoint};
use testnet::postgres::Postgres;
use testnet::swtpm::{scratch_dir, LocalCa};
use tnc_proto::attestation::Role;

fn bin(name: &str) -> PathBuf {
    let b = Path::new(env!("CARGO_BIN_EXE_tnc-client")).with_file_name(name);
    assert!(
        b.exists(),
        "{} is missing: cargo build --workspace",
        b.display()
    );
    b
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Pdp {
    child: Child,
    addr: String,
    revocations: String,
    config: PathBuf,
}

/// `tnc-server run` with a config in `dir` on the shared store and CA.
fn start_pdp(dir: &Path, shared: &Path, store: &str) -> Pdp {
    std::fs::create_dir_all(dir).unwrap();
    let revocations = format!("127.0.0.1:{}", free_port());
    let config = dir.join("server.toml");
    let s = |f: &str| shared.join(f).display().to_string();
    std::fs::write(
        &config,
        format!(
            r#"[listen]
tcp = "127.0.0.1:0"
[tls]
certificate = "{cert}"
private_key = "{key}"
[attestation]
vendor_ek_roots = false
ek_roots = ["{ek_root}"]
ek_intermediates = ["{ek_issuer}"]
reference_values = {{ terminal = "{reference}" }}
[store]
url = "{store}"
[auth]
sasl = "none"
[ca]
certificate = "{ca}"
private_key = "{ca_key}"
vms = {{ terminal = ["vm-1"] }}
[reassessment]
interval_secs = 2
poll_ms = 100
[revocations]
listen = "{revocations}"
"#,
            cert = s("server.pem"),
            key = s("server.key"),
            ek_root = s("ek-root.pem"),
            ek_issuer = s("ek-issuer.pem"),
            reference = s("reference-terminal.toml"),
            ca = s("sm2-ca.pem"),
            ca_key = s("sm2-ca.key"),
        ),
    )
    .unwrap();
    let mut child = Command::new(bin("tnc-server"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("tnc-server run said {line:?}"))
        .to_string();
    Pdp {
        child,
        addr,
        revocations,
        config,
    }
}

/// A client.toml for `e` on PDP `server` with failover to `more`, asking
/// for credentials.
fn client_config(e: &Endpoint, server: &str, more: &[&str], ca: &Path) -> PathBuf {
    let path = e.write_client_config(server.parse().unwrap(), ca).unwrap();
    let servers: Vec<String> = more.iter().map(|s| format!("{s:?}")).collect();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "state_dir = \"state\"",
        &format!(
            "state_dir = \"state\"\ncredentials = true\nservers = [{}]",
            servers.join(", ")
        ),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn login(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["login", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_cross_pdps_and_a_killed_pdps_terminal_goes_on_with_the_other() {
    let pg = Postgres::start().unwrap();
    let ek = LocalCa::create().unwrap();
    let mut t1 = Endpoint::boot("good-terminal", Role::Terminal, &ek).unwrap();
    let mut t2 = Endpoint::boot("good-terminal", Role::Terminal, &ek).unwrap();
    // What both PDPs share: TLS identity, EK CA, reference values, the
    // session CA (so either PDP's tickets are good at the gateway).
    let shared = scratch_dir("two-pdps").unwrap();
    let tls = make_tls_files(&shared).unwrap();
    std::fs::copy(ek.root_cert(), shared.join("ek-root.pem")).unwrap();
    std::fs::copy(ek.issuer_cert(), shared.join("ek-issuer.pem")).unwrap();
    std::fs::write(
        shared.join("reference-terminal.toml"),
        profile("good-terminal")
            .unwrap()
            .reference_values()
            .unwrap()
            .to_toml(),
    )
    .unwrap();
    let ca = pki::ca::Sm2Ca::create(
        "two PDPs' session CA",
        Duration::from_secs(86_400),
        std::time::SystemTime::now(),
    )
    .unwrap();
    std::fs::write(shared.join("sm2-ca.pem"), ca.certificate_pem()).unwrap();
    ca.key().write_new(&shared.join("sm2-ca.key")).unwrap();
    let mut a = start_pdp(&shared.join("a"), &shared, &pg.url());
    let mut b = start_pdp(&shared.join("b"), &shared, &pg.url());

    // The gateway, enrolled with a token made on A, subscribed to B only.
    let token = Command::new(bin("tnc-server"))
        .args(["gateway", "token", "gw-1", "--config"])
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let gw_dir = shared.join("gateway");
    std::fs::create_dir_all(&gw_dir).unwrap();
    std::fs::copy(shared.join("sm2-ca.pem"), gw_dir.join("session-ca.pem")).unwrap();
    std::fs::write(
        gw_dir.join("gateway.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n[pdp]\nrevocations = [\"{}\"]\n\
             [identity]\nname = \"gw-1\"\nca = \"session-ca.pem\"\n",
            b.revocations
        ),
    )
    .unwrap();
    let gw_config = tnc_gateway::config::GatewayConfig::load(&gw_dir.join("gateway.toml")).unwrap();
    tnc_gateway::enrol::enrol(&gw_config, &token).await.unwrap();
    let gw = tnc_gateway::gate::start(&gw_config).await.unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !gw.gateway.available() {
        assert!(Instant::now() < until, "the gateway never heard PDP B");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A revocation decided on A reaches the gateway through B: terminal-2
    // gets a ticket from A, runs an unapproved program, logs in to A again
    // and is isolated there.
    let c2 = client_config(&t2, &a.addr, &[], &tls.ca);
    assert!(login(&c2).status.success());
    t2.measure_more(&[("/home/user/.local/bin/cryptominer", b"x")])
        .unwrap();
    let isolated = login(&c2);
    assert_eq!(isolated.status.code(), Some(3));
    let decided = Instant::now();
    let until = Instant::now() + Duration::from_secs(5);
    while gw.revoked.last_seq() < 1 {
        assert!(
            Instant::now() < until,
            "A's revocation never reached the gateway via B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a_to_gateway_via_b = decided.elapsed();

    // terminal-1 stays on A with B as failover; A dies.
    let c1 = client_config(&t1, &a.addr, &[&b.addr], &tls.ca);
    let mut stay = Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["login", "--stay", "--config"])
        .arg(&c1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child_lines(stay.stdout.take().unwrap());
    let err = child_lines(stay.stderr.take().unwrap());
    wait_for_line(&out, "staying:", Duration::from_secs(60));
    wait_for_line(&out, "re-assessed at", Duration::from_secs(15));
    let killed = Instant::now();
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let line = wait_for_line(&out, "re-assessed at", Duration::from_secs(15));
    let taken_over = killed.elapsed();
    assert!(line.ends_with(": allow"), "{line}");
    wait_for_line(&err, "going on with the next PDP", Duration::from_secs(1));
    // B re-assesses it on its interval from then on, and isolates it when
    // it runs the program; that revocation reaches the gateway too.
    wait_for_line(&out, "re-assessed at", Duration::from_secs(15));
    t1.measure_more(&[("/home/user/.local/bin/cryptominer", b"x")])
        .unwrap();
    let line = wait_for_line(&out, ": isolate", Duration::from_secs(15));
    assert!(line.contains("cryptominer"), "{line}");
    let store = tnc_server::store::Store::open(&pg.url()).await.unwrap();
    let newest = store.last_revocation_seq().await.unwrap();
    assert_eq!(newest, 2, "one revocation per isolated terminal");
    let until = Instant::now() + Duration::from_secs(5);
    while gw.revoked.last_seq() < newest {
        assert!(
            Instant::now() < until,
            "a revocation was lost on the way to the gateway"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = tokio::task::spawn_blocking(move || stay.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let subscribers = store.subscribers().await.unwrap();
    assert!(
        subscribers
            .iter()
            .any(|(n, _, s, _)| n == "gw-1" && *s == newest),
        "{subscribers:?}"
    );
    eprintln!(
        "A's revocation at the gateway via B: {a_to_gateway_via_b:?}; A killed -> terminal-1 re-assessed by B: {taken_over:?} (interval 2 s)"
    );
    gw.stop().await;
    let _ = b.child.kill();
    let _ = b.child.wait();
    store.close().await;
    drop(pg);
}
