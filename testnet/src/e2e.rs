//! End-to-end parts: a PDP serving PT-TLS on loopback with a fresh TLS CA, and
//! endpoints whose swtpm was booted with a simulator profile. Tests, the demo
//! and the handshake benchmark build on these.

use crate::simulator::{Measurements, Profile};
use crate::swtpm::{scratch_dir, LocalCa, Swtpm, SwtpmOptions};
use anyhow::{anyhow, Context};
use pki::tls::Suites;
use policy::digest::hex;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tnc_client::agent::{login, login_quic, tls_client_config_for, Agent, Outcome};
use tnc_client::attest::{AttestationCollector, AttestationConfig};
use tnc_client::collect::EvidencePaths;
use tnc_client::os::{OsFacts, OsPaths};
use tnc_client::tpm::{AkKind, TpmConfig};
use tnc_proto::attestation::Role;
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_server::certs;
use tnc_server::config::{Limits, OsPolicy, Sasl};
use tnc_server::daemon::Pdp;
use tnc_server::net::SessionReport;
use tnc_server::pdp::PdpContext;
use tnc_server::store::Store;
use tokio::sync::mpsc;

/// The simulator's profiles shipped in `testnet/profiles`.
pub fn profile(name: &str) -> anyhow::Result<Profile> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{name}.toml"));
    Profile::load(&path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// A TLS CA and a server certificate for `localhost` and 127.0.0.1, as PEM
/// files in `dir` (the key at mode 0600).
pub struct TlsFiles {
    /// Both CAs, as `tnc-server init` writes them.
    pub ca: PathBuf,
    /// The standard CA's key (0600), which issues admin certificates.
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The PDP's SM2 certificate and key, for the ShangMi suites.
    pub sm2_cert: PathBuf,
    pub sm2_key: PathBuf,
}

pub fn make_tls_files(dir: &Path) -> anyhow::Result<TlsFiles> {
    let ca = certs::new_ca("testnet PDP CA")?;
    let names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let (cert, key) = certs::issue("testnet PDP", names.clone(), &ca)?;
    let (sm2_ca, sm2_cert, sm2_key) =
        certs::sm2_server("testnet PDP SM2 CA", "testnet PDP", &names)?;
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        sm2_cert: dir.join("server-sm2.pem"),
        sm2_key: dir.join("server-sm2.key"),
    };
    std::fs::write(&files.ca, ca.0.pem() + &sm2_ca.certificate_pem())?;
    certs::write_private(&files.ca_key, ca.1.serialize_pem().as_bytes(), true)?;
    std::fs::write(&files.cert, cert.pem())?;
    certs::write_private(&files.key, key.serialize_pem().as_bytes(), true)?;
    std::fs::write(&files.sm2_cert, pki::ca::pem_certificate(&sm2_cert))?;
    certs::write_private(&files.sm2_key, sm2_key.to_pem()?.as_bytes(), true)?;
    Ok(files)
}

/// `GET /metrics` over plain HTTP/1.0 from a PDP's or a gateway's metrics
/// listener: the status line and headers, and the body.
pub async fn scrape_metrics(addr: SocketAddr) -> anyhow::Result<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("no end of the HTTP head")?;
    Ok((head.to_string(), body.to_string()))
}

/// Whether the metrics text has this exact line.
pub fn has_line(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

/// A CA for client certificates and `n` client certificates it issued
/// (`device-0` …), as PEM files in `dir`: the CA's path and each client's
/// (certificate, key) paths.
pub fn make_client_certs(
    dir: &Path,
    n: usize,
) -> anyhow::Result<(PathBuf, Vec<(PathBuf, PathBuf)>)> {
    let ca = certs::new_ca("testnet device CA")?;
    let ca_path = dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca.0.pem())?;
    let mut out = Vec::new();
    for i in 0..n {
        let (cert, key) = certs::issue(
            &format!("device-{i}"),
            vec![format!("device-{i}.testnet")],
            &ca,
        )?;
        let (c, k) = (
            dir.join(format!("client-{i}.pem")),
            dir.join(format!("client-{i}.key")),
        );
        std::fs::write(&c, cert.pem())?;
        certs::write_private(&k, key.serialize_pem().as_bytes(), true)?;
        out.push((c, k));
    }
    Ok((ca_path, out))
}

/// How a [`TestPdp`] is set up.
#[derive(Debug)]
pub struct PdpOptions {
    pub limits: Limits,
    pub sasl: Sasl,
    /// Where the SQLite store lives (kept across restarts); None: the PDP's
    /// own directory.
    pub store_dir: Option<PathBuf>,
    /// Whether each finished session is reported on [`TestPdp::reports`] (a
    /// benchmark's thousands of sessions are not).
    pub report: bool,
    /// CAs whose client certificates authenticate sessions.
    pub client_ca: Option<PathBuf>,
    pub os_policy: OsPolicy,
    /// Wrong passwords allowed per user name and address.
    pub guesses: tnc_server::guard::GuessLimits,
    /// The TLS 1.3 suites the PDP speaks.
    pub suites: pki::tls::Suites,
    /// Issue channel credentials on allow (an SM2 session CA of its own;
    /// terminals' tickets name vm-1).
    pub issue_credentials: bool,
    /// VM names by device ID (hex), as `[ca] vm_names` gives them.
    pub vm_names: std::collections::BTreeMap<String, String>,
    /// Continuous trust: intervals, stale devices, the store's poll.
    pub reassessment: tnc_server::config::Reassessment,
    /// The revocation stream and gateway enrolment here (with
    /// `issue_credentials`; its certificate names "tnc-pdp").
    pub revocations: Option<SocketAddr>,
    /// The session CA (certificate and key PEM) instead of a new one: a
    /// PDP restarted with the same CA.
    pub session_ca: Option<(String, String)>,
    /// Serve the admin API on a loopback port ([`TestPdp::admin_client`]).
    pub admin: bool,
    /// Serve Prometheus metrics on a loopback port ([`TestPdp::metrics_addr`]).
    pub metrics: bool,
}

impl Default for PdpOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            sasl: Sasl::None,
            store_dir: None,
            report: true,
            client_ca: None,
            os_policy: OsPolicy::default(),
            guesses: Default::default(),
            suites: Suites::Standard,
            issue_credentials: false,
            vm_names: Default::default(),
            reassessment: Default::default(),
            revocations: None,
            session_ca: None,
            admin: false,
            metrics: false,
        }
    }
}

/// A PDP listening on a loopback port, in this process.
pub struct TestPdp {
    /// PT-TLS over TCP.
    pub addr: SocketAddr,
    /// PT-TLS over QUIC (UDP).
    pub quic_addr: SocketAddr,
    /// The revocation stream, if it runs.
    pub revocations_addr: Option<SocketAddr>,
    /// The admin API, if it runs.
    pub admin_addr: Option<SocketAddr>,
    /// The metrics listener, if it runs.
    pub metrics_addr: Option<SocketAddr>,
    pub tls: TlsFiles,
    pub ctx: Arc<PdpContext>,
    /// The PDP's store (the context sees it only as a `PdpStore`).
    pub store: Arc<Store>,
    pub reports: mpsc::UnboundedReceiver<SessionReport>,
    pdp: Pdp,
    pub dir: PathBuf,
}

impl TestPdp {
    /// Starts a PDP trusting the EK certificates of `ek_ca`, without user
    /// authentication, with a new store.
    pub async fn start(
        references: &[(Role, &Profile)],
        ek_ca: &LocalCa,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let options = PdpOptions {
            limits,
            ..PdpOptions::default()
        };
        Self::start_raw(references, ek_ca.roots()?, options).await
    }

    /// The general form: EK roots and intermediates as DER, and the options.
    pub async fn start_raw(
        references: &[(Role, &Profile)],
        (ek_roots, ek_intermediates): (Vec<Vec<u8>>, Vec<Vec<u8>>),
        options: PdpOptions,
    ) -> anyhow::Result<Self> {
        let PdpOptions {
            limits,
            sasl,
            store_dir,
            report,
            client_ca,
            os_policy,
            guesses,
            suites,
            issue_credentials,
            vm_names,
            reassessment,
            revocations,
            session_ca,
            admin,
            metrics,
        } = options;
        let dir = scratch_dir("pdp")?;
        let store_path = store_dir.as_deref().unwrap_or(&dir).join("tnc.db");
        // For the operator's commands (`tnc-server device … --config`):
        // the same store.
        std::fs::write(
            dir.join("server.toml"),
            format!(
                "[tls]\ncertificate = \"server.pem\"\nprivate_key = \"server.key\"\n\
                 [attestation]\nreference_values = {{}}\n\
                 [store]\nurl = \"sqlite://{}\"\n",
                store_path.display()
            ),
        )?;
        let store = Arc::new(Store::open(&format!("sqlite://{}", store_path.display())).await?);
        for (role, p) in references {
            let body = p.reference_values().map_err(|e| anyhow!(e))?.to_toml();
            store
                .seed_policy(*role, &body, tnc_server::pdp::system_clock())
                .await?;
        }
        let tls = make_tls_files(&dir)?;
        let issuer = if issue_credentials {
            let ca = match &session_ca {
                Some((cert, key)) => pki::ca::Sm2Ca::from_pem(cert, key)?,
                None => pki::ca::Sm2Ca::create(
                    "testnet session CA",
                    std::time::Duration::from_secs(86_400),
                    std::time::SystemTime::now(),
                )?,
            };
            let vms = [(Role::Terminal, vec!["vm-1".to_string()])].into();
            Some(Arc::new(
                tnc_server::issue::Issuer::new(ca, std::time::Duration::from_secs(3600), vms)
                    .with_vm_names(vm_names),
            ))
        } else {
            None
        };
        let ctx = Arc::new(PdpContext {
            issuer,
            ek_roots,
            ek_intermediates,
            os_policy,
            sasl,
            guesses: tnc_server::guard::GuessGuard::new(guesses),
            message_budget: tnc_server::budget::MessageBudget::new(limits.message_budget_mib),
            reassessment,
            ..PdpContext::new(store.clone())
        });
        let config = tnc_server::net::tls_server_config_for(
            suites,
            Some((&tls.cert, &tls.key)),
            Some((&tls.sm2_cert, &tls.sm2_key)),
            client_ca.as_deref(),
        )?;
        let (tx, reports) = mpsc::unbounded_channel();
        let mut builder = Pdp::builder(ctx.clone(), config, limits)
            .tcp("127.0.0.1:0".parse()?)
            .quic(Some("127.0.0.1:0".parse()?))
            .revocations(revocations.map(|at| (at, Default::default())))
            .admin(if admin {
                Some(tnc_server::daemon::AdminListen {
                    addr: "127.0.0.1:0".parse()?,
                    tls: tnc_server::admin::tls_config_from(&tls.cert, &tls.key, &tls.ca)?,
                    store: store.clone(),
                })
            } else {
                None
            })
            .metrics(metrics.then(|| ("127.0.0.1:0".parse().expect("an address"), store.clone())));
        if report {
            builder = builder.reports(tx);
        }
        let pdp = builder.start().await?;
        Ok(Self {
            addr: pdp.tcp_addr,
            quic_addr: pdp.quic_addr.context("the QUIC listener")?,
            revocations_addr: pdp.revocations_addr,
            admin_addr: pdp.admin_addr,
            metrics_addr: pdp.metrics_addr,
            pdp,
            tls,
            ctx,
            store,
            reports,
            dir,
        })
    }

    /// An admin certificate for `name` from the PDP's CA (in its directory)
    /// and a client of its admin API with it.
    pub fn admin_client(
        &self,
        name: &str,
        role: tnc_proto::admin::AdminRole,
    ) -> anyhow::Result<tnc_server::admin::client::AdminClient> {
        let (cert, key) = tnc_server::certs::issue_admin(
            &std::fs::read_to_string(&self.tls.ca)?,
            &std::fs::read_to_string(&self.tls.ca_key)?,
            name,
            role,
            std::time::Duration::from_secs(3600),
        )?;
        let (c, k) = (
            self.dir.join(format!("admin-{name}.pem")),
            self.dir.join(format!("admin-{name}.key")),
        );
        std::fs::write(&c, cert)?;
        certs::write_private(&k, key.as_bytes(), true)?;
        Ok(tnc_server::admin::client::AdminClient::new(
            &self.admin_url()?,
            &self.tls.ca,
            Some((&c, &k)),
        )?)
    }

    /// `https://127.0.0.1:PORT` of the admin API.
    pub fn admin_url(&self) -> anyhow::Result<String> {
        Ok(format!(
            "https://{}",
            self.admin_addr
                .context("the admin API is off (PdpOptions.admin)")?
        ))
    }

    /// The PDP as the pairing flows reach it (its TLS CA trusted, the name
    /// "localhost"), speaking `suites`.
    pub fn target(&self, suites: pki::tls::Suites) -> anyhow::Result<tnc_client::pairing::Pdp> {
        Ok(tnc_client::pairing::Pdp {
            addr: self.addr,
            server_name: "localhost".into(),
            tls: tls_client_config_for(&self.tls.ca, None, suites)?,
            quic: false,
        })
    }

    /// The session CA's certificate and key (PEM), to start another PDP
    /// with the same CA; None when it issues no credentials.
    pub fn session_ca(&self) -> Option<(String, String)> {
        let ca = self.ctx.issuer.as_ref()?.ca();
        Some((ca.certificate_pem(), ca.key().to_pem().ok()?))
    }

    /// Logs `endpoint` in with a fresh agent, as `tnc-client login` does. The
    /// TPM is blocking I/O, so the agent runs on a thread of its own.
    pub async fn log_in(&self, endpoint: &Endpoint) -> anyhow::Result<Outcome> {
        self.log_in_as(endpoint, None).await
    }

    /// As [`TestPdp::log_in`], authenticating as a user with SASL PLAIN.
    pub async fn log_in_as(
        &self,
        endpoint: &Endpoint,
        credentials: Option<PlainCredentials>,
    ) -> anyhow::Result<Outcome> {
        self.log_in_over(endpoint, credentials, false).await
    }

    /// As [`TestPdp::log_in_as`], over QUIC when `quic`.
    pub async fn log_in_over(
        &self,
        endpoint: &Endpoint,
        credentials: Option<PlainCredentials>,
        quic: bool,
    ) -> anyhow::Result<Outcome> {
        self.log_in_agent(endpoint.agent()?, Suites::Standard, credentials, quic)
            .await
    }

    /// Logs `agent` in, offering `suites`, over QUIC when `quic`.
    pub async fn log_in_agent(
        &self,
        mut agent: Agent,
        suites: Suites,
        credentials: Option<PlainCredentials>,
        quic: bool,
    ) -> anyhow::Result<Outcome> {
        let tls = tls_client_config_for(&self.tls.ca, None, suites)?;
        let (addr, quic_addr) = (self.addr, self.quic_addr);
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            if quic {
                rt.block_on(login_quic(
                    quic_addr,
                    "localhost",
                    tls,
                    &mut agent,
                    credentials,
                ))
            } else {
                rt.block_on(login(addr, "localhost", tls, &mut agent, credentials))
            }
            .map_err(anyhow::Error::from)
        })
        .await?
    }

    /// A SASL PLAIN user in the PDP's store (argon2id, as `user add` does).
    pub async fn add_user(&self, name: &str, password: &str) -> anyhow::Result<()> {
        let hash = tnc_server::auth::hash_password(password, &pki::rand::SystemRandom::new())
            .map_err(|e| anyhow!(e))?;
        if !self.store.add_user(name, &hash, 0).await? {
            anyhow::bail!("user {name:?} exists already");
        }
        Ok(())
    }

    /// The PDP's session events from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<tnc_server::events::SessionEvent> {
        self.pdp.subscribe()
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.pdp.stop().await?;
        self.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// The PT-TLS messages of one direction of a captured strongSwan 6.0.6
/// session (`../shared/testdata/nea/strongswan-6.0.6/NAME`, or under
/// `$TNC_TESTDATA`), one message each.
pub fn strongswan_messages(name: &str) -> Vec<Vec<u8>> {
    let dir = std::env::var_os("TNC_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
        Into::into,
    );
    let path = dir.join("nea/strongswan-6.0.6").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut framer = tnc_proto::pt_tls::Framer::new(1 << 20);
    framer.push(&bytes);
    std::iter::from_fn(|| framer.next_frame().ok().flatten()).collect()
}

/// Where [`write_host_files`] puts the OS facts in `dir`.
pub fn host_paths(dir: &Path) -> OsPaths {
    OsPaths {
        os_release: dir.join("os-release"),
        ip_forward: dir.join("ip_forward"),
        dpkg_status: dir.join("dpkg-status"),
        proc_stat: dir.join("stat"),
    }
}

/// The OS facts of a well-kept host, as files in `dir` (not this machine's):
/// Debian 12, IP forwarding off, one package (`tnc-client 0.1.0`), a fixed
/// boot time.
pub fn write_host_files(dir: &Path) -> std::io::Result<OsPaths> {
    let paths = host_paths(dir);
    std::fs::write(
        &paths.os_release,
        "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n",
    )?;
    std::fs::write(&paths.ip_forward, "0\n")?;
    std::fs::write(
        &paths.dpkg_status,
        "Package: tnc-client\nStatus: install ok installed\nVersion: 0.1.0\n\n",
    )?;
    std::fs::write(&paths.proc_stat, "btime 1800000000\n")?;
    Ok(paths)
}

/// The agent of an endpoint without a TPM (it says so; no TPM is opened),
/// with the OS facts of [`write_host_files`] in `dir`.
pub fn agent_without_tpm(dir: &Path) -> anyhow::Result<Agent> {
    let os = OsFacts::collect(&write_host_files(dir)?, false)?;
    Ok(Agent::new(
        os,
        AttestationCollector::new(AttestationConfig {
            role: Role::Terminal,
            tpm: None,
            evidence: EvidencePaths::default(),
            ak_path: dir.join("ak.bin"),
            ak_kind: AkKind::EcdsaP256Sha256,
            host: None,
        }),
    ))
}

/// An endpoint: a swtpm booted with a profile, its logs on disk, and the OS
/// facts of a well-kept machine (files in its directory, not this host's).
pub struct Endpoint {
    pub profile: Profile,
    pub measurements: Measurements,
    pub dir: PathBuf,
    pub role: Role,
    /// The host its Hello names (None: none).
    pub host: Option<tnc_proto::attestation::HostLabel>,
    /// Declared last: the TPM connection (inside an agent) must close first.
    pub swtpm: Swtpm,
}

impl Endpoint {
    pub fn boot(profile_name: &str, role: Role, ek_ca: &LocalCa) -> anyhow::Result<Self> {
        let swtpm = Swtpm::start(&SwtpmOptions {
            pcr_banks: vec!["sha1".into(), "sha256".into()],
            ek_certs_from: Some(ek_ca.dir().to_path_buf()),
        })?;
        let dir = scratch_dir("endpoint")?;
        let profile = profile(profile_name)?;
        let m = profile.measure().map_err(|e| anyhow!(e))?;
        m.apply(&swtpm, &dir).map_err(|e| anyhow!(e))?;
        std::fs::write(dir.join("binary_bios_measurements"), &m.event_log)?;
        std::fs::write(dir.join("binary_runtime_measurements"), &m.ima)?;
        write_host_files(&dir)?;
        Ok(Self {
            profile,
            measurements: m,
            dir,
            role,
            host: None,
            swtpm,
        })
    }

    pub fn os_paths(&self) -> OsPaths {
        host_paths(&self.dir)
    }

    pub fn attestation_config(&self) -> AttestationConfig {
        AttestationConfig {
            role: self.role,
            tpm: Some(TpmConfig::parse(&self.swtpm.tcti()).expect("swtpm TCTI parses")),
            evidence: EvidencePaths {
                event_log: self.dir.join("binary_bios_measurements"),
                ima: self.dir.join("binary_runtime_measurements"),
            },
            ak_path: self.dir.join("ak.bin"),
            ak_kind: AkKind::EcdsaP256Sha256,
            host: self.host.clone(),
        }
    }

    /// The ID the PDP knows this endpoint by: SHA-256 of its EK
    /// certificate, hex (read from the TPM; the connection is closed after).
    pub fn device_id(&self) -> anyhow::Result<String> {
        let mut tpm = tnc_client::tpm::Tpm::open(&TpmConfig::parse(&self.swtpm.tcti())?)?;
        let (_, cert) = tpm
            .certified_ek()?
            .context("the swtpm holds no EK certificate")?;
        Ok(hex(&policy::HashAlg::Sha256.digest(&cert)))
    }

    /// A `client.toml` for this endpoint in its directory, reaching the PDP
    /// at `server` whose TLS CA is `ca`; its path.
    pub fn write_client_config(&self, server: SocketAddr, ca: &Path) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("client.toml");
        std::fs::write(
            &path,
            format!(
                r#"role = "{role}"
server = "{server}"
server_name = "localhost"
ca = "{ca}"
state_dir = "state"
{host}
[tpm]
tcti = "{tcti}"

[evidence]
event_log = "binary_bios_measurements"
ima = "binary_runtime_measurements"

[os]
os_release = "os-release"
ip_forward = "ip_forward"
dpkg_status = "dpkg-status"
proc_stat = "stat"
"#,
                role = self.role.name(),
                ca = ca.display(),
                tcti = self.swtpm.tcti(),
                host = self
                    .host
                    .as_ref()
                    .map_or(String::new(), |h| format!("host = \"{h}\"\n")),
            ),
        )?;
        Ok(path)
    }

    /// This endpoint's channel key: in its swtpm (which makes SM2 keys), the
    /// unique value in its state directory.
    pub fn channel_key(&self) -> anyhow::Result<tnc_client::channel::ChannelKey> {
        let tpm = TpmConfig::parse(&self.swtpm.tcti())?;
        Ok(tnc_client::channel::ChannelKey::open(
            &self.dir.join("state"),
            Some(&tpm),
            tnc_client::channel::KeyPlace::Tpm,
        )?)
    }

    /// A fresh agent (one per login, as the CLI makes one).
    pub fn agent(&self) -> anyhow::Result<Agent> {
        let os = OsFacts::collect(&self.os_paths(), false)?;
        Ok(Agent::new(
            os,
            AttestationCollector::new(self.attestation_config()),
        ))
    }

    /// Reboots the endpoint: a power cycle of its swtpm (`swtpm_ioctl -i`,
    /// then TPM2_Startup(CLEAR)), the same boot measured again, and the same
    /// IMA list as after the first boot.
    pub fn reboot(&mut self) -> anyhow::Result<()> {
        let ctrl = format!("127.0.0.1:{}", self.swtpm.port() + 1);
        let out = std::process::Command::new("swtpm_ioctl")
            .args(["--tcp", &ctrl, "-i"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "swtpm_ioctl -i: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.swtpm.tpm2(&self.dir, "tpm2_startup", &["-c"])?;
        anyhow::ensure!(
            out.status.success(),
            "tpm2_startup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.measurements
            .apply(&self.swtpm, &self.dir)
            .map_err(|e| anyhow!(e))?;
        std::fs::write(
            self.dir.join("binary_runtime_measurements"),
            &self.measurements.ima,
        )?;
        Ok(())
    }

    /// Appends IMA entries to the list (files measured after boot) and
    /// extends PCR 10 on the TPM accordingly.
    pub fn measure_more(&mut self, files: &[(&str, &[u8])]) -> anyhow::Result<()> {
        let mut list = std::fs::read(self.dir.join("binary_runtime_measurements"))?;
        for (path, content) in files {
            let digest = policy::HashAlg::Sha256.digest(content);
            let (record, data) =
                crate::simulator::ima_ng_record(policy::HashAlg::Sha256, &digest, path);
            list.extend_from_slice(&record);
            // As the kernel extends every bank: each with its own hash of the
            // template data.
            let spec = format!(
                "10:sha1={},sha256={}",
                hex(&policy::HashAlg::Sha1.digest(&data)),
                hex(&policy::HashAlg::Sha256.digest(&data))
            );
            let out = self.swtpm.tpm2(&self.dir, "tpm2_pcrextend", &[&spec])?;
            anyhow::ensure!(
                out.status.success(),
                "tpm2_pcrextend: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(self.dir.join("binary_runtime_measurements"), list)?;
        Ok(())
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What an allow gives a device of `role` that asked for channel
/// credentials (a new SM2 channel key and the grant for it), issued by
/// `issuer` as the PDP issues them, without a PB-TNC session.
pub fn channel_credentials(
    issuer: &tnc_server::issue::Issuer,
    role: Role,
    device_id: [u8; 32],
) -> anyhow::Result<(pki::ca::Sm2Key, tnc_proto::credential::Grant)> {
    let key = pki::ca::Sm2Key::generate()?;
    let request = pki::ca::verify_request(&pki::ca::make_request(&key, "channel")?)?;
    let issued = issuer.issue(
        &request,
        &tnc_server::issue::Subject {
            device_id,
            role,
            user: Some("alice".into()),
            policy_version: 1,
            decided_at: tnc_server::pdp::system_clock(),
        },
    )?;
    Ok((key, issued.grant))
}

/// A VM serving channels (`tnc-client serve`'s flow) on a thread of its
/// own: its agent's TPM is blocking I/O.
pub struct ServingVm {
    /// Where it accepts channels.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ServingVm {
    /// Stops serving and ends the control session.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Runs [`tnc_client::pairing::serve`] for `agent` as the VM `name` with
/// channel key `key`, relaying to `service`; returns once it serves, with
/// the decision that let it.
/// With `revocations`, it subscribes there and cuts revoked channels.
pub async fn serve_in_thread(
    pdp: &tnc_client::pairing::Pdp,
    agent: Agent,
    key: tnc_client::channel::ChannelKey,
    name: &str,
    service: SocketAddr,
    revocations: Option<tnc_client::pairing::RevocationsAt>,
) -> anyhow::Result<(ServingVm, Outcome)> {
    let (pdp, name) = (pdp.clone(), name.to_string());
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let bound = async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                Ok::<_, std::io::Error>((listener, addr))
            };
            let (listener, addr) = match bound.await {
                Ok(b) => b,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let deadline = std::time::Duration::from_secs(60);
            let advertise = tnc_client::pairing::Advertise {
                tcp: addr.to_string(),
                quic: None,
            };
            let serving = tnc_client::pairing::serve(
                &pdp,
                agent,
                key,
                tnc_client::pairing::ServeOptions {
                    name: Some(name),
                    deadline,
                    revocations,
                    ..tnc_client::pairing::ServeOptions::new(advertise)
                },
            );
            match serving.await {
                Ok(s) => {
                    let _ = ready_tx.send(Ok((addr, s.outcome.clone())));
                    tokio::select! {
                        _ = s.server.clone().run(listener, service) => {}
                        _ = stopped => {}
                    }
                    s.control.abort();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let (addr, outcome) = ready
        .await
        .map_err(|_| anyhow!("the serving thread ended"))?
        .map_err(|e| anyhow!("serve: {e}"))?;
    Ok((ServingVm { addr, stop, thread }, outcome))
}

/// A software device enrolled in `pdp`'s store as `role`: a collector for
/// each session (quoting `measurements` with the device's AK).
pub async fn soft_device(
    pdp: &TestPdp,
    role: tnc_proto::attestation::Role,
    name: &str,
    measurements: &Arc<crate::simulator::Measurements>,
) -> anyhow::Result<impl Fn() -> crate::soft_ak::SoftCollector> {
    let ak = crate::soft_ak::SoftAk::generate();
    // Its device ID is SHA-256 of this: [`soft_device_id`].
    let identity =
        enrol_software_ak(&pdp.store, role, &ak, &format!("software {name} (bench)")).await?;
    let values = Arc::new(measurements.pcr_values_after(measurements.ima_entries()));
    let measurements = measurements.clone();
    Ok(move || {
        crate::soft_ak::SoftCollector::new(
            role,
            ak.clone(),
            identity.clone(),
            measurements.clone(),
            values.clone(),
        )
    })
}

/// Registers `ak` in `store` as the enrolled AK of a device of `role` whose
/// "EK certificate" is the bytes of `label` (no TPM to activate a credential
/// with); the identity its collector sends.
pub async fn enrol_software_ak(
    store: &Store,
    role: tnc_proto::attestation::Role,
    ak: &crate::soft_ak::SoftAk,
    label: &str,
) -> anyhow::Result<tnc_proto::attestation::Identity> {
    let ek_certificate = label.as_bytes().to_vec();
    let mut device_id = [0u8; 32];
    device_id.copy_from_slice(&policy::HashAlg::Sha256.digest(&ek_certificate));
    store
        .put_device(&tnc_server::devices::DeviceRecord {
            device_id,
            role,
            ek_certificate: ek_certificate.clone(),
            ak_name: ak.public().name(),
            ak_public: ak.public_area().to_vec(),
            state: None,
            last_verdict: None,
            last_seen: 0,
            enrolled_at: 0,
            user: None,
            host: None,
            drift: 0,
        })
        .await?;
    Ok(tnc_proto::attestation::Identity {
        ek_public: ak.public_area().to_vec(),
        ek_certificate,
        ak_public: ak.public_area().to_vec(),
    })
}

/// The device ID of the software device [`soft_device`] enrolls as `name`.
pub fn soft_device_id(name: &str) -> String {
    hex(&policy::HashAlg::Sha256.digest(format!("software {name} (bench)").as_bytes()))
}

/// A peer on loopback that accepts TCP connections, holds them and never
/// sends a byte (a hung PDP, VM or gateway); its address, and the task to
/// abort when done.
pub async fn silent_listener() -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    Ok((addr, holder))
}

/// A service on loopback that sends every byte back; its address.
pub async fn echo_service() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// A web service on loopback answering every request with HTTP/1.0 200
/// and `body` (text/plain); its address.
pub async fn web_service(body: &'static str) -> std::io::Result<SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

/// The lines a child process prints on `out`, as they come.
pub fn child_lines(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line from `rx` containing `text` within `within`; panics with
/// the lines seen on the way otherwise (for tests).
pub fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    text: &str,
    within: std::time::Duration,
) -> String {
    let until = std::time::Instant::now() + within;
    let mut seen = String::new();
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(text) {
                    return line;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {text:?} within {within:?}; saw:\n{seen}");
}

/// Records in `store`, as an allow's commit does, a ticket `[n; 16]` of
/// device `[n; 32]` bound to a certificate whose SHA-256 is `[n; 32]`,
/// valid for an hour: something to revoke. The device.
pub async fn held_ticket(store: &Store, n: u8) -> anyhow::Result<[u8; 32]> {
    let now = tnc_server::pdp::system_clock();
    store
        .commit_decision(&tnc_server::store::DecisionWrite {
            at: now,
            device: None,
            attestation: None,
            audit: &[],
            evidence: None,
            credential: Some(&tnc_server::store::CredentialWrite {
                ticket_id: vec![n; 16],
                device_id: [n; 32],
                user: None,
                role: "terminal".into(),
                serial: "01".into(),
                certificate_sha256: format!("{n:02x}").repeat(32),
                not_after: now as i64 + 3600,
            }),
            revoke: None,
        })
        .await?;
    Ok([n; 32])
}
