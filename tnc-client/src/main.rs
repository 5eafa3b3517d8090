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
        /// Keep the session open after an allow: the PDP re-assesses this
        /// endpoint on it (on its interval, when the policy changes, when
        /// the operator asks), a line each. Ends at the first decision that
        /// is not allow (its exit status) or when the session ends (1).
        /// Over TCP or, with --quic, QUIC.
        #[arg(long)]
        stay: bool,
    },
    /// On a VM: attest, get this VM's channel certificate, keep the control
    /// session to the PDP open for pairings, and accept ShangMi channels
    /// from the terminals the PDP pairs with this VM, each relayed to a
    /// local service. Stops when the PDP ends the control session.
    ///
    /// Exit status: 0 on Ctrl-C, 3 isolate, 4 no access (at login or a
    /// later re-assessment), 1 when the control session ends, 2 usage or
    /// configuration errors.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// The service channels are relayed to.
        #[arg(long)]
        forward: std::net::SocketAddr,
        /// Where channels are accepted.
        #[arg(long, default_value = "[::]:2710")]
        listen: std::net::SocketAddr,
        /// The address terminals reach the listener at (the PDP hands it to
        /// them); default: the listening address, when it is not a wildcard.
        #[arg(long)]
        advertise: Option<String>,
        /// Also accept channels over QUIC (UDP) here; advertised with the
        /// host of the TCP address.
        #[arg(long)]
        quic_listen: Option<std::net::SocketAddr>,
        /// This VM's name; default: the one the PDP put in its certificate
        /// (`[ca] vm_names`). Given, it must be that one.
        #[arg(long)]
        name: Option<String>,
        /// Authenticate as this user (SASL PLAIN), if the PDP asks; the
        /// password from --password-file or TNC_PASSWORD.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, requires = "user")]
        password_file: Option<PathBuf>,
    },
    /// On a terminal: attest, ask the PDP for a pairing with VM, open the
    /// ShangMi channel to it and forward standard input and output (`-`, an
    /// ssh ProxyCommand) or a local port (as ssh -L; each connection gets
    /// its own pairing). Asks for credentials when it holds none valid.
    ///
    /// Exit status: 0 the channel ran, 3 isolate, 4 no access (at the
    /// handshake or a later re-assessment), 1 no pairing, no channel, or the
    /// channel cut, 2 usage or configuration errors.
    Connect {
        #[arg(long)]
        config: PathBuf,
        /// The VM's name.
        vm: String,
        /// Where the VM serves channels, instead of the address the PDP
        /// gives with the pairing.
        #[arg(long)]
        to: Option<std::net::SocketAddr>,
        /// Through the network access gateway at this address (TCP, or QUIC
        /// with --quic and --via-name): it admits the connection on the
        /// access ticket and relays it to the VM; the channel stays end to
        /// end.
        #[arg(long, conflicts_with = "to")]
        via: Option<std::net::SocketAddr>,
        /// With --via and --quic: the gateway's name (as it enrolled), which
        /// its certificate carries.
        #[arg(long, requires = "via")]
        via_name: Option<String>,
        /// A local port to forward (on 127.0.0.1), or `-` for stdin/stdout.
        #[arg(long = "local-port", alias = "local", default_value = "-")]
        local: String,
        /// Open the channel over QUIC (the VM's QUIC address) instead of TCP.
        #[arg(long)]
        quic: bool,
        /// Authenticate as this user (SASL PLAIN); the password from
        /// --password-file or TNC_PASSWORD (standard input may be the
        /// channel).
        #[arg(long)]
        user: Option<String>,
        #[arg(long, requires = "user")]
        password_file: Option<PathBuf>,
    },
    /// Show the last verdict this endpoint received.
    Status {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings of the library (a kept session failing over to another PDP)
    // on standard error; RUST_LOG for more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Login {
            config,
            server,
            server_name,
            ca,
            user,
            password_file,
            quic,
            stay,
        } => user
            .map(|u| credentials(u, password_file.as_deref()))
            .transpose()
            .and_then(|creds| {
                let link = PdpLink::new(&config, server, server_name, ca, quic)?;
                match stay {
                    true => stay_logged_in(&link, creds),
                    false => run_login(&link, creds),
                }
            }),
        Command::Status { config } => status(&config),
        Command::Serve {
            config,
            forward,
            listen,
            advertise,
            quic_listen,
            name,
            user,
            password_file,
        } => user
            .map(|u| channel_password(u, password_file.as_deref()))
            .transpose()
            .and_then(|creds| {
                let listen = Listen {
                    tcp: listen,
                    advertise,
                    quic: quic_listen,
                };
                serve(&config, forward, listen, name.as_deref(), creds)
            }),
        Command::Connect {
            config,
            vm,
            to,
            via,
            via_name,
            local,
            quic,
            user,
            password_file,
        } => user
            .map(|u| channel_password(u, password_file.as_deref()))
            .transpose()
            .and_then(|creds| {
                let route = Route {
                    to,
                    via,
                    via_name,
                    transport: match quic {
                        true => tnc_client::pairing::Transport::Quic,
                        false => tnc_client::pairing::Transport::Tcp,
                    },
                };
                connect(&config, &vm, route, &local, creds)
            }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tnc-client: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What every command that talks to the PDP needs: the configuration, with
/// login's overrides applied, and the TLS configuration to reach the PDP.
struct PdpLink {
    config: ClientConfig,
    tls: std::sync::Arc<rustls::ClientConfig>,
    quic: bool,
}

impl PdpLink {
    fn new(
        path: &std::path::Path,
        server: Option<String>,
        server_name: Option<String>,
        ca: Option<PathBuf>,
        quic: bool,
    ) -> anyhow::Result<Self> {
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
        Ok(Self { config, tls, quic })
    }

    fn state_dir(&self) -> PathBuf {
        self.config.path(&self.config.state_dir)
    }

    /// The agent with its collectors.
    fn agent(&self) -> anyhow::Result<Agent> {
        let os = OsFacts::collect(&self.config.os_paths(), self.config.os.default_password)
            .context("reading the operating system's facts (os.os_release)")?;
        Ok(Agent::new(
            os,
            AttestationCollector::new(self.config.attestation()),
        ))
    }

    /// The channel key (made on first use), said on standard error: where
    /// it lives, and why not in the TPM when it could have been.
    fn channel_key(&self) -> anyhow::Result<tnc_client::channel::ChannelKey> {
        let key = self
            .config
            .channel_key()
            .context("the channel key (channel_key, state_dir)")?;
        match (&key.fallback, key.storage()) {
            (Some(why), _) => eprintln!("channel key: software ({why})"),
            (None, "tpm") => eprintln!("channel key: in the TPM"),
            (None, _) => eprintln!("channel key: software, in {}", self.state_dir().display()),
        }
        Ok(key)
    }

    /// A request for a certificate for the channel key.
    fn key_request(&self) -> anyhow::Result<tnc_proto::credential::KeyRequest> {
        Ok(self.channel_key()?.request("tnc channel key")?)
    }

    async fn address(&self) -> anyhow::Result<std::net::SocketAddr> {
        let server = &self.config.server;
        tokio::net::lookup_host(server)
            .await
            .with_context(|| format!("resolving server {server:?}"))?
            .next()
            .ok_or_else(|| anyhow!("server {server:?} resolves to no address"))
    }

    /// The PDP as the pairing flows reach it.
    async fn pdp(&self) -> anyhow::Result<tnc_client::pairing::Pdp> {
        Ok(tnc_client::pairing::Pdp {
            addr: self.address().await?,
            server_name: self.config.server_name(),
            tls: self.tls.clone(),
            quic: self.quic,
        })
    }

    /// The PDPs a kept session fails over to (`servers`), in order; those
    /// that do not resolve are left out with a line on standard error.
    async fn failover(&self) -> Vec<tnc_client::pairing::Pdp> {
        let mut out = Vec::new();
        for server in &self.config.servers {
            match tokio::net::lookup_host(server).await.map(|mut a| a.next()) {
                Ok(Some(addr)) => out.push(tnc_client::pairing::Pdp {
                    addr,
                    server_name: self.config.server_name_for(server),
                    tls: self.tls.clone(),
                    quic: self.quic,
                }),
                _ => eprintln!("tnc-client: servers: {server:?} does not resolve: left out"),
            }
        }
        out
    }

    /// The integrity handshake, within [`LOGIN_DEADLINE`].
    async fn handshake(
        &self,
        agent: &mut Agent,
        credentials: Option<PlainCredentials>,
    ) -> anyhow::Result<Outcome> {
        let addr = self.address().await?;
        let name = self.config.server_name();
        let tls = self.tls.clone();
        let handshake = async {
            if self.quic {
                login_quic(addr, &name, tls, agent, credentials).await
            } else {
                login(addr, &name, tls, agent, credentials).await
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
    }
}

/// `login --stay`: the first decision as `login` prints it, then one line
/// per re-assessment while the PDP keeps allowing this endpoint.
fn stay_logged_in(
    link: &PdpLink,
    credentials: Option<PlainCredentials>,
) -> anyhow::Result<ExitCode> {
    let mut agent = link.agent()?;
    if link.config.credentials {
        agent.key_request = Some(link.key_request()?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut pdps = vec![link.pdp().await?];
        pdps.extend(link.failover().await);
        let (outcome, mut session) = match tnc_client::pairing::KeptSession::open(
            &pdps,
            agent,
            credentials,
            LOGIN_DEADLINE,
            None,
            true,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("tnc-client: {e}");
                return Ok(ExitCode::from(e.exit_code()));
            }
        };
        let code = report_login(link, &outcome);
        if code != 0 {
            return Ok(ExitCode::from(code));
        }
        println!("staying: the PDP re-assesses this endpoint on this session");
        loop {
            tokio::select! {
                o = session.reassessed() => match o {
                    Some(o) => {
                        save_verdict(&link.config, &o, o.device.as_deref());
                        println!(
                            "re-assessed at {}: {}{}",
                            unix_now(),
                            o.verdict_name(),
                            o.reason.as_deref().filter(|_| !o.allowed()).map(|r| format!(" ({r})")).unwrap_or_default()
                        );
                        if !o.allowed() {
                            return Ok(ExitCode::from(exit_code(&o)));
                        }
                    }
                    None => {
                        let why = session.ended().await;
                        eprintln!("tnc-client: the session with the PDP ended ({why})");
                        return Ok(ExitCode::from(1));
                    }
                },
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

/// Prints a login's decision, keeps its credentials and verdict; its exit
/// status.
fn report_login(link: &PdpLink, outcome: &Outcome) -> u8 {
    print!("{outcome}");
    if let Some(tnc_client::agent::Credential::Granted(grant)) = &outcome.credential {
        let state_dir = link.state_dir();
        match tnc_client::channel::save(&state_dir, grant) {
            Ok(()) => println!("credentials kept in {}", state_dir.display()),
            Err(e) => eprintln!("tnc-client: the credentials could not be kept: {e}"),
        }
    }
    if let Some(d) = &outcome.device {
        println!("device: {d}");
    }
    save_verdict(&link.config, outcome, outcome.device.as_deref());
    exit_code(outcome)
}

fn run_login(link: &PdpLink, credentials: Option<PlainCredentials>) -> anyhow::Result<ExitCode> {
    let mut agent = link.agent()?;
    if link.config.credentials {
        agent.key_request = Some(link.key_request()?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = match runtime.block_on(link.handshake(&mut agent, credentials)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tnc-client: no decision: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    Ok(ExitCode::from(report_login(link, &outcome)))
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

/// The password of serve and connect: from a file or TNC_PASSWORD, never
/// standard input (connect relays it; serve runs unattended).
fn channel_password(
    user: String,
    file: Option<&std::path::Path>,
) -> anyhow::Result<PlainCredentials> {
    if file.is_none() && std::env::var_os("TNC_PASSWORD").is_none() {
        anyhow::bail!("--user {user} needs --password-file or TNC_PASSWORD");
    }
    credentials(user, file)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where serve accepts channels.
struct Listen {
    tcp: std::net::SocketAddr,
    advertise: Option<String>,
    quic: Option<std::net::SocketAddr>,
}

fn serve(
    path: &std::path::Path,
    forward: std::net::SocketAddr,
    listen: Listen,
    name: Option<&str>,
    credentials: Option<PlainCredentials>,
) -> anyhow::Result<ExitCode> {
    let link = PdpLink::new(path, None, None, None, false)?;
    let agent = link.agent()?;
    let key = link.channel_key()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen.tcp)
            .await
            .with_context(|| format!("listening on {} (--listen)", listen.tcp))?;
        let bound = listener.local_addr()?;
        let advertise = match listen.advertise {
            Some(a) => a,
            None if bound.ip().is_unspecified() => anyhow::bail!(
                "--listen {} is a wildcard: give --advertise HOST:PORT, the address terminals reach",
                listen.tcp
            ),
            None => bound.to_string(),
        };
        // The QUIC endpoint is bound now (its address goes to the PDP) and
        // gets its server configuration once the certificate is granted.
        let quic = match listen.quic {
            None => None,
            Some(at) => {
                let socket = std::net::UdpSocket::bind(at)
                    .with_context(|| format!("listening on {at} (--quic-listen)"))?;
                let endpoint = quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    None,
                    socket,
                    std::sync::Arc::new(quinn::TokioRuntime),
                )?;
                let port = endpoint.local_addr()?.port();
                let host: std::net::SocketAddr = advertise
                    .parse()
                    .context("--advertise must be IP:PORT with --quic-listen")?;
                Some((endpoint, std::net::SocketAddr::new(host.ip(), port).to_string()))
            }
        };
        let pdp = link.pdp().await?;
        let revocations = match &link.config.revocations {
            None => {
                eprintln!(
                    "tnc-client serve: no `revocations` in {}: revoked tickets are refused \
                     only once they expire",
                    path.display()
                );
                None
            }
            Some(at) => Some(tnc_client::pairing::RevocationsAt {
                addr: tokio::net::lookup_host(at)
                    .await
                    .with_context(|| format!("revocations = {at:?}"))?
                    .next()
                    .with_context(|| format!("revocations = {at:?}: no address"))?,
                server_name: link.config.revocations_name.clone(),
            }),
        };
        let serving = tnc_client::pairing::serve(
            &pdp,
            agent,
            key,
            tnc_client::pairing::ServeOptions {
                name: name.map(str::to_string),
                credentials,
                deadline: LOGIN_DEADLINE,
                revocations,
                ..tnc_client::pairing::ServeOptions::new(tnc_client::pairing::Advertise {
                    tcp: advertise.clone(),
                    quic: quic.as_ref().map(|(_, a)| a.clone()),
                })
            },
        )
        .await;
        let mut serving = match serving {
            Ok(s) => s,
            Err(e) => {
                if let tnc_client::pairing::Failure::NotAllowed(o) = &e {
                    eprint!("{o}");
                }
                eprintln!("tnc-client serve: {e}: no channels");
                return Ok(ExitCode::from(e.exit_code()));
            }
        };
        if let Err(e) = tnc_client::channel::save(&link.state_dir(), &serving.grant) {
            eprintln!("tnc-client serve: the credentials could not be kept: {e}");
        }
        if let Some((endpoint, at)) = quic {
            endpoint.set_server_config(Some(serving.server.quic_server_config()?));
            tokio::spawn(serving.server.clone().run_quic(endpoint, forward));
            eprintln!("serving {} over QUIC on {at}", serving.name);
        }
        // The address line first: scripts and tests read it.
        println!(
            "serving {} on {bound} (advertised as {advertise})",
            serving.name
        );
        if let Some(mut notices) = serving.notices.take() {
            tokio::spawn(async move {
                use tnc_gateway::revocation::Notice;
                while let Some(n) = notices.recv().await {
                    match n {
                        Notice::Connected { after } => eprintln!(
                            "tnc-client serve: subscribed to revocations (after {after})"
                        ),
                        Notice::Revoked { ticket, cut } => eprintln!(
                            "tnc-client serve: revocation {}: a ticket of device {} ({}): {cut} channel(s) cut",
                            ticket.seq, ticket.device, ticket.reason
                        ),
                        // The subscriber's own warning says it.
                        Notice::Lost(_) => {}
                    }
                }
            });
        }
        tokio::select! {
            r = serving.server.clone().run(listener, forward) => r.context("accepting channels")?,
            code = follow(&mut serving.control, "serve") => {
                eprintln!("tnc-client serve: no more channels, stopping");
                return Ok(ExitCode::from(code));
            }
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// Follows a kept-open session's re-assessments (a line on standard error
/// each) until one is not allow or the session ends: the exit status then,
/// the verdict's (3, 4) or 1.
async fn follow(session: &mut tnc_client::pairing::KeptSession, who: &str) -> u8 {
    while let Some(o) = session.reassessed().await {
        if o.allowed() {
            eprintln!("tnc-client {who}: re-assessed: allow");
            continue;
        }
        eprintln!(
            "tnc-client {who}: re-assessed: {}{}",
            o.verdict_name(),
            o.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        return exit_code(&o);
    }
    let why = session.ended().await;
    eprintln!("tnc-client {who}: the session with the PDP ended ({why})");
    1
}

/// One pairing with `vm` and its channel; said on standard error.
/// How connect reaches the VM.
#[derive(Clone, Debug)]
struct Route {
    to: Option<std::net::SocketAddr>,
    via: Option<std::net::SocketAddr>,
    via_name: Option<String>,
    transport: tnc_client::pairing::Transport,
}

async fn pair_and_open(
    link: &PdpLink,
    vm: &str,
    route: Route,
    credentials: Option<PlainCredentials>,
) -> Result<
    (
        tnc_client::pairing::Channel,
        tnc_client::pairing::KeptSession,
    ),
    (u8, String),
> {
    let state_dir = link.state_dir();
    let local = |e: anyhow::Error| (2, format!("{e:#}"));
    let pdp = link.pdp().await.map_err(|e| (1, format!("{e:#}")))?;
    let failover = link.failover().await;
    // Credentials that outlive the pairing's use are used as they are.
    let mut held = tnc_client::channel::load(&state_dir).filter(|g| g.expires > unix_now() + 120);
    let opened = loop {
        let options = tnc_client::pairing::ConnectOptions {
            held: held.clone(),
            to: route.to,
            via: route.via,
            via_name: route.via_name.clone(),
            transport: route.transport,
            credentials: credentials.clone(),
            deadline: LOGIN_DEADLINE,
            failover: failover.clone(),
            ..tnc_client::pairing::ConnectOptions::new(vm)
        };
        let agent = link.agent().map_err(local)?;
        let key = link.channel_key().map_err(local)?;
        match tnc_client::pairing::connect(&pdp, agent, key, options).await {
            // The ticket kept was revoked (this endpoint was isolated, or
            // the operator revoked it): once more, asking for new ones.
            Err(tnc_client::pairing::Failure::NoPairing { why, .. })
                if held.is_some() && why.starts_with("the ticket is revoked") =>
            {
                eprintln!("tnc-client connect: the credentials kept were revoked ({why}): asking for new ones");
                held = None;
            }
            other => break other,
        }
    };
    let opened = opened.map_err(|e| {
        let why = match &e {
            tnc_client::pairing::Failure::NotAllowed(_) => {
                format!("no access to {vm}: {e}")
            }
            _ => e.to_string(),
        };
        (e.exit_code(), why)
    })?;
    if let Some(grant) = &opened.fresh {
        match tnc_client::channel::save(&state_dir, grant) {
            Ok(()) => eprintln!("credentials kept in {}", state_dir.display()),
            Err(e) => eprintln!("tnc-client connect: the credentials could not be kept: {e}"),
        }
    }
    eprintln!(
        "channel to {vm} {} {}{}: TLS 1.3, TLS_SM4_GCM_SM3, pairing {} (integrity handshake {} ms, channel {} ms)",
        if route.via.is_some() { "through the gateway at" } else { "at" },
        opened.address,
        match route.transport {
            tnc_client::pairing::Transport::Quic => " over QUIC",
            tnc_client::pairing::Transport::Tcp => "",
        },
        policy::digest::hex(&opened.pairing.id[..4]),
        opened.handshake.as_millis(),
        opened.channel.as_millis()
    );
    Ok((opened.stream, opened.session))
}

fn connect(
    path: &std::path::Path,
    vm: &str,
    route: Route,
    local: &str,
    credentials: Option<PlainCredentials>,
) -> anyhow::Result<ExitCode> {
    let link = PdpLink::new(path, None, None, None, false)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        if local == "-" {
            let (mut channel, mut session) =
                match pair_and_open(&link, vm, route.clone(), credentials).await {
                    Ok(c) => c,
                    Err((code, why)) => {
                        eprintln!("tnc-client connect: {why}");
                        return Ok(ExitCode::from(code));
                    }
                };
            let mut stdio = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
            // The channel lives while the terminal stays allowed.
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut channel, &mut stdio) => match r {
                    Ok(_) => {}
                    // Closed without TLS close_notify: the VM or the
                    // gateway cut it.
                    Err(e) if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) => {
                        eprintln!(
                            "tnc-client connect: the channel to {vm} was cut by the other end \
                             (its ticket revoked, or the VM or the gateway stopped)"
                        );
                        return Ok(ExitCode::from(1));
                    }
                    Err(e) => return Err(e.into()),
                },
                code = follow(&mut session, "connect") => {
                    eprintln!("tnc-client connect: channel to {vm} closed");
                    return Ok(ExitCode::from(code));
                }
            }
            return Ok::<_, anyhow::Error>(ExitCode::SUCCESS);
        }
        let port: u16 = local
            .parse()
            .with_context(|| format!("--local {local:?}: a port number or -"))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("listening on 127.0.0.1:{port} (--local)"))?;
        println!("forwarding {} to {vm}", listener.local_addr()?);
        let link = std::sync::Arc::new(link);
        loop {
            let (mut client, _) = listener.accept().await?;
            let (link, vm, credentials) = (link.clone(), vm.to_string(), credentials.clone());
            let route = route.clone();
            tokio::spawn(async move {
                match pair_and_open(&link, &vm, route, credentials).await {
                    Ok((mut channel, mut session)) => {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut channel) => {}
                            _ = follow(&mut session, "connect") => {
                                eprintln!("tnc-client connect: channel to {vm} closed");
                            }
                        }
                    }
                    Err((_, why)) => eprintln!("tnc-client connect: {why}"),
                }
            });
        }
    })
}
