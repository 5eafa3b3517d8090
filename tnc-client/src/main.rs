//! `tnc-client`: the login agent of a terminal or VM.

#![forbid(unsafe_code)]

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tnc_client::agent::{login, login_quic, tls_client_config_for, Agent, Outcome};
use tnc_client::attest::AttestationCollector;
use tnc_client::config::ClientConfig;
use tnc_client::os::OsFacts;
use tnc_proto::pt_tls::sasl::PlainCredentials;

#[derive(Parser, Debug)]
#[command(
    name = "tnc-client",
    version,
    about = "Trusted Network Connect login agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the integrity handshake with the PDP and print its verdict.
    ///
    /// Exit status: 0 allow, 3 isolate, 4 no access, 1 no decision (the
    /// handshake failed), 2 usage or configuration errors.
    Login {
        /// The client configuration (TOML; `tnc-server init` writes one).
        #[arg(long)]
        config: PathBuf,
        /// The PDP, `host:port`, instead of `server` in the config. Its host
        /// is also the name the PDP's certificate is checked against, unless
        /// --server-name or the config's `server_name` says otherwise.
        #[arg(long)]
        server: Option<String>,
        /// The name the PDP's certificate must carry (DNS name or IP address).
        #[arg(long)]
        server_name: Option<String>,
        /// The CA that signs the PDP's certificate, instead of `ca`.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Authenticate as this user (SASL PLAIN inside PT-TLS). The password
        /// comes from --password-file, else TNC_PASSWORD, else a line on
        /// standard input.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, requires = "user")]
        password_file: Option<PathBuf>,
        /// Use PT-TLS over QUIC (the PDP's QUIC port) instead of TCP.
        #[arg(long)]
        quic: bool,
    },
    /// On a VM: accept ShangMi channels from terminals that hold a ticket
    /// naming this VM, and relay each to a local service. Uses the
    /// credentials the last `login` kept in state_dir.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// The service channels are relayed to.
        #[arg(long)]
        forward: std::net::SocketAddr,
        /// Where channels are accepted.
        #[arg(long, default_value = "[::]:2710")]
        listen: std::net::SocketAddr,
        /// This VM's name, as the PDP's `[ca] vm_names` gives it.
        #[arg(long)]
        name: String,
    },
    /// On a terminal: open a ShangMi channel to a VM and forward a local
    /// port to it (as ssh -L), or standard input and output with `-` (an
    /// ssh ProxyCommand). Uses the credentials the last `login` kept.
    Connect {
        #[arg(long)]
        config: PathBuf,
        /// The VM's name.
        vm: String,
        /// Where the VM serves channels.
        #[arg(long)]
        to: std::net::SocketAddr,
        /// A local port to forward (on 127.0.0.1), or `-` for stdin/stdout.
        #[arg(long, default_value = "-")]
        local: String,
    },
    /// Show the last verdict this endpoint received.
    Status {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Login {
            config,
            server,
            server_name,
            ca,
            user,
            password_file,
            quic,
        } => user
            .map(|u| credentials(u, password_file.as_deref()))
            .transpose()
            .and_then(|creds| run_login(&config, server, server_name, ca, creds, quic)),
        Command::Status { config } => status(&config),
        Command::Serve {
            config,
            forward,
            listen,
            name,
        } => serve(&config, forward, listen, &name),
        Command::Connect {
            config,
            vm,
            to,
            local,
        } => connect(&config, &vm, to, &local),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tnc-client: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_login(
    path: &std::path::Path,
    server: Option<String>,
    server_name: Option<String>,
    ca: Option<PathBuf>,
    credentials: Option<PlainCredentials>,
    quic: bool,
) -> anyhow::Result<ExitCode> {
    let mut config = ClientConfig::load(path)?;
    let quic = quic || config.transport.as_deref() == Some("quic");
    if let Some(s) = server {
        config.server = s;
    }
    if let Some(n) = server_name {
        config.server_name = Some(n);
    }
    let ca = ca.unwrap_or_else(|| config.path(&config.ca));
    let identity = config
        .certificate
        .as_ref()
        .zip(config.private_key.as_ref())
        .map(|(c, k)| (config.path(c), config.path(k)));
    let tls = tls_client_config_for(
        &ca,
        identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        config.suites,
    )
    .context("the CA file (ca or --ca) or the client certificate")?;
    let os = OsFacts::collect(&config.os_paths(), config.os.default_password)
        .context("reading the operating system's facts (os.os_release)")?;
    let mut agent = Agent::new(os, AttestationCollector::new(config.attestation()));
    let state_dir = config.path(&config.state_dir);
    if config.credentials {
        let key = tnc_client::channel::ChannelKey::load_or_create(&state_dir)
            .context("the channel key in state_dir")?;
        agent.key_request = Some(key.request("tnc channel key")?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let name = config.server_name();
    let outcome = runtime.block_on(async {
        let addr = tokio::net::lookup_host(&config.server)
            .await
            .with_context(|| format!("resolving server {:?}", config.server))?
            .next()
            .ok_or_else(|| anyhow!("server {:?} resolves to no address", config.server))?;
        let handshake = async {
            if quic {
                login_quic(addr, &name, tls, &mut agent, credentials).await
            } else {
                login(addr, &name, tls, &mut agent, credentials).await
            }
        };
        // A PDP that stops answering must not hang the login.
        tokio::time::timeout(LOGIN_DEADLINE, handshake)
            .await
            .map_err(|_| {
                anyhow!(
                    "the PDP did not finish the handshake within {} s",
                    LOGIN_DEADLINE.as_secs()
                )
            })?
            .map_err(anyhow::Error::from)
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tnc-client: no decision: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    print!("{outcome}");
    if let Some(tnc_client::agent::Credential::Granted(grant)) = &outcome.credential {
        match tnc_client::channel::save(&state_dir, grant) {
            Ok(()) => println!("credentials kept in {}", state_dir.display()),
            Err(e) => eprintln!("tnc-client: the credentials could not be kept: {e}"),
        }
    }
    let device = agent.attestation.device_id();
    if let Some(d) = &device {
        println!("device: {d}");
    }
    save_verdict(&config, &outcome, device.as_deref());
    Ok(ExitCode::from(exit_code(&outcome)))
}

fn credentials(user: String, file: Option<&std::path::Path>) -> anyhow::Result<PlainCredentials> {
    use std::io::{BufRead, IsTerminal};
    let password = if let Some(f) = file {
        std::fs::read_to_string(f).with_context(|| format!("--password-file {}", f.display()))?
    } else if let Ok(p) = std::env::var("TNC_PASSWORD") {
        p
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for {user}: "))?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("the password for {user} is empty");
    }
    Ok(PlainCredentials::new(&user, password))
}

/// The whole login, TPM operations included.
const LOGIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

fn exit_code(o: &Outcome) -> u8 {
    match o.verdict_name() {
        "allow" => 0,
        "isolate" => 3,
        "no access" => 4,
        _ => 1,
    }
}

fn save_verdict(config: &ClientConfig, o: &Outcome, device: Option<&str>) {
    let path = config.last_verdict_path();
    let record = serde_json::json!({
        "verdict": o.verdict_name(),
        "reason": o.reason,
        "attestation": o.attestation.as_ref().map(|a| serde_json::json!({
            "verdict": a.verdict, "findings": a.findings })),
        "remediation": o.remediation,
        "device": device,
        "at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&record)?)
    };
    if let Err(e) = write() {
        eprintln!(
            "tnc-client: could not record the verdict in {}: {e}",
            path.display()
        );
    }
}

fn status(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = ClientConfig::load(path)?;
    let p = config.last_verdict_path();
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no login yet (no {})", p.display());
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(anyhow!("{}: {e}", p.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| p.display().to_string())?;
    println!("verdict: {}", v["verdict"].as_str().unwrap_or("unknown"));
    if let Some(at) = v["at"].as_u64() {
        println!("at: {at} (unix seconds)");
    }
    if let Some(d) = v["device"].as_str() {
        println!("device: {d}");
    }
    if let Some(r) = v["reason"].as_str() {
        println!("reason: {r}");
    }
    if let Some(f) = v["attestation"]["findings"].as_array() {
        for f in f.iter().filter_map(|f| f.as_str()) {
            println!("  - {f}");
        }
    }
    Ok(ExitCode::from(if v["verdict"] == "allow" { 0 } else { 3 }))
}

/// The channel credentials the last login kept in state_dir.
fn channel_identity(config: &ClientConfig) -> anyhow::Result<tnc_client::tunnel::ChannelIdentity> {
    let state_dir = config.path(&config.state_dir);
    let grant = tnc_client::channel::load(&state_dir).ok_or_else(|| {
        anyhow!(
            "no channel credentials in {}: log in first (tnc-client login; the PDP grants them on allow)",
            state_dir.display()
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if grant.expires < now {
        anyhow::bail!(
            "the channel credentials in {} expired at {} (Unix time): log in again",
            state_dir.display(),
            grant.expires
        );
    }
    let key = tnc_client::channel::ChannelKey::load_or_create(&state_dir)?;
    Ok(tnc_client::tunnel::ChannelIdentity {
        grant,
        key: key.into_key(),
    })
}

fn serve(
    path: &std::path::Path,
    forward: std::net::SocketAddr,
    listen: std::net::SocketAddr,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let config = ClientConfig::load(path)?;
    let me = channel_identity(&config)?;
    let server = std::sync::Arc::new(tnc_client::tunnel::Server::new(&me, name)?);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen} (--listen)"))?;
        // The address line first: scripts and tests read it.
        println!("serving {name} on {}", listener.local_addr()?);
        tokio::select! {
            r = server.run(listener, forward) => r.context("accepting channels")?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn connect(
    path: &std::path::Path,
    vm: &str,
    to: std::net::SocketAddr,
    local: &str,
) -> anyhow::Result<ExitCode> {
    let config = ClientConfig::load(path)?;
    let me = channel_identity(&config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        if local == "-" {
            let mut channel = tnc_client::tunnel::connect(&me, to, vm).await?;
            let mut stdio = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
            tokio::io::copy_bidirectional(&mut channel, &mut stdio).await?;
            return Ok::<_, anyhow::Error>(());
        }
        let port: u16 = local
            .parse()
            .with_context(|| format!("--local {local:?}: a port number or -"))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("listening on 127.0.0.1:{port} (--local)"))?;
        println!("forwarding {} to {vm} at {to}", listener.local_addr()?);
        let me = std::sync::Arc::new(me);
        loop {
            let (mut client, _) = listener.accept().await?;
            let me = me.clone();
            let vm = vm.to_string();
            tokio::spawn(async move {
                match tnc_client::tunnel::connect(&me, to, &vm).await {
                    Ok(mut channel) => {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut channel).await;
                    }
                    Err(e) => eprintln!("tnc-client connect: {e}"),
                }
            });
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
