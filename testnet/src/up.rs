//! `testnet up --dir D`: the demo's topology, left running for people to try
//! by hand. A PDP started from a `server.toml` as `tnc-server run` starts it
//! (so `tnc-server` admin commands work on `D/pdp/server.toml` alongside),
//! three swtpm endpoints booted from profiles (terminal-1 good, terminal-2
//! with a tampered kernel, vm-1), the two terminals logged in once (enrolled),
//! and vm-1 serving a small web service through the ShangMi channel. It
//! writes `D/topology.json` and stays until SIGTERM or Ctrl-C, then stops
//! everything and removes what it made.

use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use testnet::e2e::{profile, serve_in_thread, Endpoint};
use testnet::swtpm::LocalCa;
use tnc_proto::attestation::Role;
use tnc_server::config::ServerConfig;
use tnc_server::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the PDP's files and topology.json go (created; must be empty
    /// if it exists).
    #[arg(long)]
    dir: PathBuf,
}

/// Name, profile, role and the host each runs on.
const ENDPOINTS: [(&str, &str, Role, &str); 3] = [
    ("terminal-1", "good-terminal", Role::Terminal, "terminal-1"),
    (
        "terminal-2",
        "tampered-kernel",
        Role::Terminal,
        "terminal-2",
    ),
    ("vm-1", "good-vm", Role::Vm, "hv-1"),
];

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.dir.exists()
        && std::fs::read_dir(&args.dir)
            .with_context(|| args.dir.display().to_string())?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "--dir {}: not empty; give a new or empty directory",
            args.dir.display()
        );
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(up(&dir));
    for made in ["pdp", "gateway", "topology.json"] {
        let p = dir.join(made);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    result
}

/// The PDP's directory: TLS files, the SM2 session CA, the EK CA of the
/// swtpm endpoints, reference values, and server.toml naming them.
fn write_pdp_files(pdp: &Path, ek_ca: &LocalCa, vm_device: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(pdp)?;
    let tls = testnet::e2e::make_tls_files(pdp)?;
    let ca = pki::ca::Sm2Ca::create(
        "testnet up session CA",
        std::time::Duration::from_secs(30 * 86_400),
        std::time::SystemTime::now(),
    )?;
    std::fs::write(pdp.join("sm2-ca.pem"), ca.certificate_pem())?;
    ca.key().write_new(&pdp.join("sm2-ca.key"))?;
    for (role, name) in [("terminal", "good-terminal"), ("vm", "good-vm")] {
        let body = profile(name)?
            .reference_values()
            .map_err(|e| anyhow!(e))?
            .to_toml();
        std::fs::write(pdp.join(format!("reference-{role}.toml")), body)?;
    }
    let config = pdp.join("server.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Written by `testnet up`: the PDP of the lab topology.
[listen]
tcp = "127.0.0.1:0"
quic = "127.0.0.1:0"

[tls]
certificate = "{cert}"
private_key = "{key}"
suites = "both"
sm2_certificate = "{sm2_cert}"
sm2_private_key = "{sm2_key}"

[attestation]
vendor_ek_roots = false
ek_roots = ["{ek_root}"]
ek_intermediates = ["{ek_issuer}"]
reference_values = {{ terminal = "reference-terminal.toml", vm = "reference-vm.toml" }}

[store]
url = "sqlite://tnc.db"

# A lab: the endpoints' evidence alone decides (no user passwords).
[auth]
sasl = "none"

[ca]
certificate = "sm2-ca.pem"
private_key = "sm2-ca.key"
vms = {{ terminal = ["vm-1"] }}
vm_names = {{ "{vm_device}" = "vm-1" }}

# Revocations pushed to the gateway and vm-1; the gateway enrols here too.
[revocations]
listen = "127.0.0.1:0"

# The admin API (tnc-monitor, curl): admin.pem / admin.key, read-write.
[admin]
listen = "127.0.0.1:0"
ca_certificate = "{ca}"
ca_private_key = "{ca_key}"

[metrics]
listen = "127.0.0.1:0"
"#,
            ca = tls.ca.display(),
            ca_key = tls.ca_key.display(),
            cert = tls.cert.display(),
            key = tls.key.display(),
            sm2_cert = tls.sm2_cert.display(),
            sm2_key = tls.sm2_key.display(),
            ek_root = ek_ca.root_cert().display(),
            ek_issuer = ek_ca.issuer_cert().display(),
        ),
    )?;
    Ok(config)
}

async fn up(dir: &Path) -> anyhow::Result<()> {
    let ek_ca = LocalCa::create()?;
    let mut endpoints = Vec::new();
    for (name, prof, role, host) in ENDPOINTS {
        let mut e =
            Endpoint::boot(prof, role, &ek_ca).with_context(|| format!("booting {name}"))?;
        // Where each says it runs: the terminals their own names, vm-1 its
        // hypervisor host (the monitor's `h` view groups VMs by it).
        e.host = Some(host.parse().map_err(anyhow::Error::msg)?);
        endpoints.push((name, prof, e));
    }
    let vm_device = endpoints[2].2.device_id()?;
    let config_path = write_pdp_files(&dir.join("pdp"), &ek_ca, &vm_device)?;

    // As `tnc-server run` starts it.
    let config = ServerConfig::load(&config_path)?;
    let tls = tnc_server::net::server_tls(&config)?;
    let store = Arc::new(Store::open(&config.store_url()).await?);
    let ctx = Arc::new(tnc_server::pdp::PdpContext::from_config(
        &config,
        store.clone(),
    )?);
    for (role, text) in config.reference_files()? {
        store
            .seed_policy(role, &text, tnc_server::pdp::system_clock())
            .await?;
    }
    let pdp = tnc_server::daemon::Pdp::builder(ctx, tls, config.limits.clone())
        .tcp(config.listen.tcp)
        .quic(config.listen.quic)
        .revocations(
            config
                .revocations
                .listen
                .map(|at| (at, config.revocations.clone())),
        )
        .admin(tnc_server::daemon::AdminListen::from_config(
            &config, &store,
        )?)
        .metrics(config.metrics.listen.map(|at| (at, store.clone())))
        .start()
        .await?;
    let admin = admin_identity(&config, &dir.join("pdp"))?;
    let admin_url = format!(
        "https://{}",
        pdp.admin_addr.context("the admin API did not start")?
    );
    let metrics = pdp.metrics_addr.context("the metrics did not start")?;
    let revocations = pdp
        .revocations_addr
        .context("the revocation stream did not start")?;
    let ca_pem = dir.join("pdp/ca.pem");
    println!("PDP: PT-TLS on {} (TCP), {} (QUIC)", pdp.tcp_addr, {
        pdp.quic_addr.map_or("-".into(), |a| a.to_string())
    });

    let mut configs = Vec::new();
    for (name, prof, e) in &endpoints {
        let path = e.write_client_config(pdp.tcp_addr, &ca_pem)?;
        println!("{name}: swtpm on port {} booted as {prof}", e.swtpm.port());
        configs.push(path);
    }
    // The terminals log in once: enrolled, with their verdicts.
    for (name, path) in ENDPOINTS.iter().map(|e| e.0).zip(&configs).take(2) {
        let path = path.clone();
        let outcome = tokio::task::spawn_blocking(move || login_once(&path)).await??;
        println!("{name}: logged in once: {outcome}");
    }
    let service = testnet::e2e::web_service("hello from the web service behind vm-1\n").await?;
    let target = tnc_client::pairing::Pdp {
        addr: pdp.tcp_addr,
        server_name: "localhost".into(),
        tls: tnc_client::agent::tls_client_config_for(&ca_pem, None, pki::tls::Suites::Shangmi)?,
        quic: false,
    };
    let vm = &endpoints[2].2;
    let (serving, _) = serve_in_thread(
        &target,
        vm.agent()?,
        vm.channel_key()?,
        "vm-1",
        service,
        Some(tnc_client::pairing::RevocationsAt {
            addr: revocations,
            server_name: config.revocations.name.clone(),
        }),
    )
    .await?;
    println!(
        "vm-1: serving ShangMi channels on {} for the web service on {service}",
        serving.addr
    );
    let (gateway, gateway_config) =
        start_gateway(&dir.join("gateway"), &store, revocations, serving.addr).await?;
    println!(
        "gw-1: the network access gateway on {}, enrolled, subscribed to revocations on {revocations}",
        gateway.addr
    );

    let devices: std::collections::BTreeSet<String> = store
        .devices()
        .await?
        .iter()
        .map(|d| policy::digest::hex(&d.device_id))
        .collect();
    let mut list = serde_json::Map::new();
    for (i, (name, prof, e)) in endpoints.iter().enumerate() {
        let id = e.device_id()?;
        let mut entry = serde_json::json!({
            "role": e.role.name(),
            "config": configs[i],
            "profile": prof,
            "device": devices.contains(&id).then_some(id),
        });
        if e.role == Role::Vm {
            entry["serve"] = serving.addr.to_string().into();
            entry["service"] = service.to_string().into();
        }
        list.insert(name.to_string(), entry);
    }
    let topology = serde_json::json!({
        "pdp": {
            "address": pdp.tcp_addr.to_string(),
            "quic": pdp.quic_addr.map(|a| a.to_string()),
            "revocations": revocations.to_string(),
            "config": config_path,
        },
        "admin": {
            "url": admin_url,
            "certificate": admin.0,
            "key": admin.1,
            "ca": ca_pem,
        },
        "metrics": metrics.to_string(),
        "gateway": {
            "address": gateway.addr.to_string(),
            "quic": gateway.quic_addr.map(|a| a.to_string()),
            "name": "gw-1",
            "config": gateway_config,
        },
        "endpoints": list,
    });
    let path = dir.join("topology.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&topology)?)?;
    println!("\ntopology: {}", path.display());
    println!(
        "try:  tnc-client connect --config {} vm-1 --local-port 8080   (then: curl http://127.0.0.1:8080/)",
        configs[0].display()
    );
    println!(
        "      tnc-client connect --config {} vm-1 --via {} --local-port 8081   (through the gateway)",
        configs[0].display(),
        gateway.addr
    );
    println!(
        "      curl --cacert {} --cert {} --key {} {admin_url}/v1/devices",
        ca_pem.display(),
        admin.0.display(),
        admin.1.display()
    );
    println!("      curl http://{metrics}/metrics");
    println!("up: SIGTERM or Ctrl-C stops it all");
    tnc_server::daemon::wait_for_signal().await;
    println!("stopping");
    gateway.stop().await;
    serving.stop();
    pdp.stop().await?;
    store.close().await;
    for (_, _, e) in endpoints {
        let dir = e.dir.clone();
        drop(e);
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir_all(ek_ca.dir());
    Ok(())
}

/// A read-write admin certificate for the lab (`lab-admin`, 30 days) from
/// the PDP's CA, in `dir`: its certificate and key paths.
fn admin_identity(config: &ServerConfig, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = tnc_server::certs::issue_admin(
        &std::fs::read_to_string(config.path(&config.admin.ca_certificate))?,
        &std::fs::read_to_string(config.path(&config.admin.ca_private_key))?,
        "lab-admin",
        tnc_proto::admin::AdminRole::ReadWrite,
        std::time::Duration::from_secs(30 * 86_400),
    )?;
    let paths = (dir.join("admin.pem"), dir.join("admin.key"));
    std::fs::write(&paths.0, cert)?;
    tnc_server::certs::write_private(&paths.1, key.as_bytes(), true)?;
    Ok(paths)
}

/// gw-1 in `dir`: its gateway.toml, a one-time token from the store, its
/// enrolment on the PDP's revocation port, and the gateway running.
async fn start_gateway(
    dir: &Path,
    store: &Store,
    revocations: std::net::SocketAddr,
    vm: std::net::SocketAddr,
) -> anyhow::Result<(tnc_gateway::gate::Running, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(dir.join("../pdp/sm2-ca.pem"), dir.join("session-ca.pem"))?;
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            r#"# Written by `testnet up`: the lab's network access gateway.
listen = "127.0.0.1:0"
listen_quic = "127.0.0.1:0"

[pdp]
revocations = "{revocations}"

[identity]
name = "gw-1"
ca = "session-ca.pem"

[vms]
vm-1 = "{vm}"
"#
        ),
    )?;
    let config = tnc_gateway::config::GatewayConfig::load(&path)?;
    let token = store
        .new_enrolment_token("gw-1", 600, tnc_server::pdp::system_clock())
        .await?;
    tnc_gateway::enrol::enrol(&config, &token)
        .await
        .map_err(|e| anyhow!("enrolling gw-1: {e}"))?;
    let running = tnc_gateway::gate::start(&config)
        .await
        .map_err(|e| anyhow!("starting gw-1: {e}"))?;
    Ok((running, path))
}

/// `tnc-client login`'s flow for the endpoint configured in `config`.
fn login_once(config: &Path) -> anyhow::Result<String> {
    let config = tnc_client::config::ClientConfig::load(config)?;
    let os = tnc_client::os::OsFacts::collect(&config.os_paths(), false)?;
    let mut agent = tnc_client::agent::Agent::new(
        os,
        tnc_client::attest::AttestationCollector::new(config.attestation()),
    );
    let tls =
        tnc_client::agent::tls_client_config_for(&config.path(&config.ca), None, config.suites)?;
    let addr: std::net::SocketAddr = config.server.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(tnc_client::agent::login(
        addr,
        &config.server_name(),
        tls,
        &mut agent,
        None,
    ))?;
    Ok(outcome.verdict_name().to_string())
}
