//! `server.toml`: what the PDP listens on, its TLS identity, the trust roots
//! for EK certificates, the reference values and the limits. Relative paths
//! are relative to the file's own directory. Every error names the key.

use crate::error::ConfigError;
use policy::Verdict;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tnc_proto::attestation::Role;

/// PT-TLS's IANA port (RFC 6876 §6.1).
pub const PT_TLS_PORT: u16 = 271;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default)]
    pub listen: Listen,
    pub tls: Tls,
    pub attestation: Attestation,
    #[serde(default)]
    pub os: OsPolicy,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub auth: Auth,
    /// The SM2 certificate authority (`tnc-server ca`).
    #[serde(default)]
    pub ca: Option<CaSection>,
    /// Continuous trust: re-assessment of open sessions, stale devices.
    #[serde(default)]
    pub reassessment: Reassessment,
    /// The revocation stream to gateways and VMs, and gateway enrolment.
    #[serde(default)]
    pub revocations: Revocations,
    /// The admin API (docs/admin-api.md).
    #[serde(default)]
    pub admin: AdminSection,
    /// Prometheus metrics (docs/metrics.md).
    #[serde(default)]
    pub metrics: MetricsSection,
    /// The directory relative paths start from (the config file's).
    #[serde(skip)]
    pub base: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// PT-TLS over TCP + TLS 1.3.
    #[serde(default = "default_tcp")]
    pub tcp: SocketAddr,
    /// The same PT-TLS messages over QUIC (UDP, ALPN `pt-tls`); off unless set.
    #[serde(default)]
    pub quic: Option<SocketAddr>,
}

fn default_tcp() -> SocketAddr {
    SocketAddr::from(([0u16; 8], PT_TLS_PORT))
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            tcp: default_tcp(),
            quic: None,
        }
    }
}

/// `[ca]`: the PDP's SM2 certificate authority.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// The SM2 CA's certificate (PEM).
    pub certificate: PathBuf,
    /// Its private key (PKCS#8 PEM); must not be readable by others.
    pub private_key: PathBuf,
    /// How long the certificates it issues are valid, in seconds (default
    /// 3600: short-lived, renewed with each attestation).
    #[serde(default = "default_leaf_lifetime")]
    pub lifetime_secs: u64,
    /// Per role, over `lifetime_secs`: `role_lifetime_secs = { vm = 28800 }`.
    #[serde(default)]
    pub role_lifetime_secs: BTreeMap<Role, u64>,
    /// The VMs a device of each role may reach, named in its tickets:
    /// `vms = { terminal = ["vm-1"] }`.
    #[serde(default)]
    pub vms: BTreeMap<Role, Vec<String>>,
    /// The name each VM serves channels under, by device ID (hex, as
    /// `device list` shows it): its certificate carries the name, which
    /// terminals check. `vm_names = { "0a1b…" = "vm-1" }`.
    #[serde(default)]
    pub vm_names: BTreeMap<String, String>,
}

fn default_leaf_lifetime() -> u64 {
    3600
}

/// `[reassessment]`: continuous trust. Sessions our clients keep open after
/// RESULT are re-assessed (SRETRY, RFC 5793 §3.2) every interval, give or take
/// the jitter, when the policy changes and on `device reassess`; a device
/// allowed but not attested for `stale_intervals` intervals is isolated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reassessment {
    /// Seconds between re-assessments (default 300).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Per role, over `interval_secs`: `role_interval_secs = { vm = 60 }`.
    #[serde(default)]
    pub role_interval_secs: BTreeMap<Role, u64>,
    /// Each interval is drawn from ±this share of it (default 10 %), so that
    /// endpoints that logged in together do not re-attest together.
    #[serde(default = "default_jitter")]
    pub jitter_percent: u8,
    /// A device allowed but not attested for this many intervals is stale
    /// and isolated (default 3; 0: never).
    #[serde(default = "default_stale")]
    pub stale_intervals: u32,
    /// How often the PDP looks in the store for operator commands
    /// (`device reassess`, `device revoke`), policy changes, revocations
    /// decided elsewhere, and stale devices, in milliseconds (default 500).
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
}

/// `[revocations]`: where gateways and serving VMs subscribe to
/// revocations (docs/revocations.md), and gateways enrol. Needs `[ca]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    /// TLS 1.3 (RFC 8998 suites) over TCP; off unless set.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The DNS name on the listener's certificate, which `[ca]` issues
    /// afresh at each start; subscribers check it (default "tnc-pdp").
    #[serde(default = "default_revocations_name")]
    pub name: String,
    /// Lifetime of a gateway's certificate from enrolment (default 30 days).
    #[serde(default = "default_gateway_lifetime")]
    pub gateway_lifetime_secs: u64,
}

/// `[admin]`: the admin API, HTTPS with mutual TLS (docs/admin-api.md).
/// The listener presents the PDP's `[tls]` certificate; callers present an
/// admin certificate (subject OU `tnc-admin-read` or `tnc-admin-write`)
/// from `ca_certificate`, which `tnc-server admin issue` makes with
/// `ca_private_key`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Off unless set. Keep it on loopback or a management network.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The CA of admin certificates (PEM; the first certificate whose key
    /// is `ca_private_key` when it holds several), default "ca.pem".
    #[serde(default = "default_admin_ca")]
    pub ca_certificate: PathBuf,
    /// Its key, for `tnc-server admin issue` only, default "ca.key".
    #[serde(default = "default_admin_ca_key")]
    pub ca_private_key: PathBuf,
}

/// `[metrics]`: Prometheus metrics over plain HTTP, `GET /metrics`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Off unless set; loopback or a monitoring network.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

fn default_admin_ca() -> PathBuf {
    "ca.pem".into()
}
fn default_admin_ca_key() -> PathBuf {
    "ca.key".into()
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: None,
            ca_certificate: default_admin_ca(),
            ca_private_key: default_admin_ca_key(),
        }
    }
}

fn default_revocations_name() -> String {
    "tnc-pdp".into()
}
fn default_gateway_lifetime() -> u64 {
    30 * 86_400
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            listen: None,
            name: default_revocations_name(),
            gateway_lifetime_secs: default_gateway_lifetime(),
        }
    }
}

fn default_interval() -> u64 {
    300
}
fn default_jitter() -> u8 {
    10
}
fn default_stale() -> u32 {
    3
}
fn default_poll() -> u64 {
    500
}

impl Default for Reassessment {
    fn default() -> Self {
        Self {
            interval_secs: default_interval(),
            role_interval_secs: BTreeMap::new(),
            jitter_percent: default_jitter(),
            stale_intervals: default_stale(),
            poll_ms: default_poll(),
        }
    }
}

impl Reassessment {
    /// The interval for `role`.
    pub fn interval(&self, role: Option<Role>) -> Duration {
        let secs = role
            .and_then(|r| self.role_interval_secs.get(&r).copied())
            .unwrap_or(self.interval_secs);
        Duration::from_secs(secs)
    }

    /// The interval for `role` with jitter, `unit` in [0, 1) drawn by the
    /// caller.
    pub fn jittered(&self, role: Option<Role>, unit: f64) -> Duration {
        let base = self.interval(role).as_secs_f64();
        let spread = base * f64::from(self.jitter_percent.min(100)) / 100.0;
        Duration::from_secs_f64((base - spread + 2.0 * spread * unit).max(0.001))
    }

    /// Seconds after its last attestation at which an allowed device of
    /// `role` is stale; None: never.
    pub fn stale_after(&self, role: Role) -> Option<u64> {
        (self.stale_intervals > 0)
            .then(|| self.interval(Some(role)).as_secs() * u64::from(self.stale_intervals))
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `sqlite://PATH` (relative to this file; created on first start) or
    /// `postgres://user@host/db`.
    #[serde(default = "default_store")]
    pub url: String,
    /// The audit chain's key file (HMAC-SM3; `tnc-server audit key` makes
    /// one, `init` does from the start). Unset: the chain is plain SM3,
    /// which anyone who can write the database can rewrite consistently.
    #[serde(default)]
    pub audit_key: Option<PathBuf>,
}

fn default_store() -> String {
    "sqlite://tnc.db".into()
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: default_store(),
            audit_key: None,
        }
    }
}

/// How users authenticate inside PT-TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sasl {
    /// SASL PLAIN (RFC 4616) against the users in the store (argon2id).
    #[default]
    Plain,
    /// No user authentication: the endpoint's evidence alone decides.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub sasl: Sasl,
    /// PEM file with the CAs whose client certificates authenticate a
    /// session in place of SASL (optional; a presented certificate must
    /// verify).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Wrong SASL passwords a user name, and an address, may try per minute
    /// once `guess_burst` is spent; then its attempts fail unchecked until a
    /// guess drips back. 0 turns the guard off.
    #[serde(default = "default_guesses")]
    pub guesses_per_minute: u32,
    #[serde(default = "default_burst")]
    pub guess_burst: u32,
}

fn default_guesses() -> u32 {
    crate::guard::GuessLimits::default().per_minute
}

fn default_burst() -> u32 {
    crate::guard::GuessLimits::default().burst
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            sasl: Sasl::default(),
            client_ca: None,
            guesses_per_minute: default_guesses(),
            guess_burst: default_burst(),
        }
    }
}

impl Auth {
    pub fn guess_limits(&self) -> crate::guard::GuessLimits {
        crate::guard::GuessLimits {
            per_minute: self.guesses_per_minute,
            burst: self.guess_burst,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM: the server certificate, then its chain.
    pub certificate: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1); must not be readable by others.
    pub private_key: PathBuf,
    /// `standard` (default: AES-GCM and ChaCha20 with the certificate
    /// above), `shangmi` (RFC 8998 only: SM4, curveSM2, the SM2 certificate
    /// below) or `both` (the SM2 certificate to clients that offer
    /// sm2sig_sm3, the other one to the rest).
    #[serde(default)]
    pub suites: pki::tls::Suites,
    /// The SM2 certificate (PEM chain) and its key, for the ShangMi suites
    /// (`tnc-server init` writes them).
    #[serde(default)]
    pub sm2_certificate: Option<PathBuf>,
    #[serde(default)]
    pub sm2_private_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// Trust the TPM manufacturers' and cloud vTPMs' EK CAs shipped with
    /// tnc-server (`tnc-server ek-roots list`; `pki/ek-roots/README.md` says
    /// where each came from). Default true.
    #[serde(default = "yes")]
    pub vendor_ek_roots: bool,
    /// The operator's own EK CA certificates (PEM files): a private CA, a
    /// vendor not shipped, the swtpm local CA of a lab. A file that holds no
    /// certificate yet is allowed; a missing file is an error.
    #[serde(default)]
    pub ek_roots: Vec<PathBuf>,
    /// SHA-256 fingerprints (hex) of CA certificates not to trust, shipped or
    /// not; distrusting a shipped root distrusts the shipped CAs below it.
    #[serde(default)]
    pub distrusted_ek_roots: Vec<String>,
    /// PEM files with intermediate EK CA certificates.
    #[serde(default)]
    pub ek_intermediates: Vec<PathBuf>,
    /// Reference values (TOML, see `policy::reference`) per role:
    /// `reference_values = { terminal = "terminal.toml", vm = "vm.toml" }`.
    /// A role without them is never allowed.
    pub reference_values: BTreeMap<Role, PathBuf>,
    /// The PCRs every quote covers, `bank:pcr,pcr…[+bank:…]`.
    #[serde(default = "default_pcrs")]
    pub pcrs: String,
    /// The verdict for an endpoint without TPM evidence.
    #[serde(default = "isolate", deserialize_with = "verdict")]
    pub no_evidence: Verdict,
    /// Accept quotes signed with SHA-1 (RSASSA-SHA1, as cloud vTPMs of a few
    /// years ago make them). SHA-1 signatures can be forged with a chosen
    /// prefix; default false. Each accepted one is logged.
    #[serde(default)]
    pub allow_sha1_quotes: bool,
}

fn default_pcrs() -> String {
    "sha256:0,1,2,3,4,5,6,7,8,9,10".into()
}

fn isolate() -> Verdict {
    Verdict::Isolate
}

fn verdict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
    let s = String::deserialize(d)?;
    Verdict::from_name(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{s:?} is not a verdict: use \"allow\", \"isolate\" or \"no access\""
        ))
    })
}

/// The OS validator's policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsPolicy {
    /// Allowed product names as the endpoint reports them ("Debian GNU/Linux");
    /// empty: any.
    #[serde(default)]
    pub products: Vec<String>,
    /// Allowed versions as the endpoint reports them in String Version
    /// ("12 x86_64"); empty: any.
    #[serde(default)]
    pub versions: Vec<String>,
    /// IP forwarding must be reported disabled.
    #[serde(default = "yes")]
    pub forbid_forwarding: bool,
    /// A factory default password must not be enabled.
    #[serde(default = "yes")]
    pub forbid_default_password: bool,
    /// The verdict when the endpoint reports no OS attributes at all.
    #[serde(default = "isolate", deserialize_with = "verdict")]
    pub no_report: Verdict,
    /// Packages that must not be installed (names as the package manager
    /// reports them); when set, the validator asks for the inventory.
    #[serde(default)]
    pub forbidden_packages: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for OsPolicy {
    fn default() -> Self {
        Self {
            products: Vec::new(),
            versions: Vec::new(),
            forbid_forwarding: true,
            forbid_default_password: true,
            no_report: Verdict::Isolate,
            forbidden_packages: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Sessions in an exchange at once (authenticated, not yet decided, or
    /// in a re-assessment round); further ones wait for a slot. A session
    /// kept open between rounds holds none.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Largest PT-TLS message, header included (an IMA list of a busy host
    /// is several MiB on first contact).
    #[serde(default = "default_max_message")]
    pub max_message_len: u32,
    /// The whole handshake, TLS included, must finish within this many seconds.
    #[serde(default = "default_deadline")]
    pub handshake_timeout_secs: u64,
    /// New sessions one peer address may open per minute (a burst of that
    /// many, refilled evenly); 0: no limit. Terminals behind one NAT share
    /// an address, so the default is generous.
    #[serde(default = "default_per_peer")]
    pub sessions_per_peer_per_minute: u32,
    /// Networks the per-address limit does not apply to (`["10.1.0.0/16"]`):
    /// a NAT of many terminals where one noisy host must not lock out the
    /// others. Sessions that authenticate (SASL or a client certificate)
    /// give their token back anywhere.
    #[serde(default)]
    pub rate_exempt: Vec<ipnet::IpNet>,
    /// Connections that have not finished TLS and authentication are held
    /// apart from the sessions: at most this many at once (the oldest is
    /// cut to make room)...
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// ...and this many from one address (IPv6 /64); more are closed.
    #[serde(default = "default_pending_per_address")]
    pub pending_per_address: usize,
    /// Seconds a new connection has to finish TLS (or the QUIC handshake).
    #[serde(default = "default_tls_timeout")]
    pub tls_timeout_secs: u64,
    /// Seconds after TLS to finish PT-TLS negotiation and authentication;
    /// only then does a connection take a session slot.
    #[serde(default = "default_auth_timeout")]
    pub auth_timeout_secs: u64,
    /// MiB all sessions together may buffer of unfinished large messages
    /// (beyond 64 KiB each); when spent, sessions wait before reading more.
    /// At least max_message_len.
    #[serde(default = "default_message_budget")]
    pub message_budget_mib: usize,
}

fn default_message_budget() -> usize {
    256
}

fn default_max_pending() -> usize {
    4096
}
fn default_pending_per_address() -> usize {
    64
}
fn default_tls_timeout() -> u64 {
    5
}
fn default_auth_timeout() -> u64 {
    10
}

fn default_per_peer() -> u32 {
    600
}

fn default_max_sessions() -> usize {
    1024
}
fn default_max_message() -> u32 {
    16 << 20
}
fn default_deadline() -> u64 {
    30
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: default_max_sessions(),
            max_message_len: default_max_message(),
            handshake_timeout_secs: default_deadline(),
            sessions_per_peer_per_minute: default_per_peer(),
            rate_exempt: Vec::new(),
            max_pending: default_max_pending(),
            pending_per_address: default_pending_per_address(),
            tls_timeout_secs: default_tls_timeout(),
            auth_timeout_secs: default_auth_timeout(),
            message_budget_mib: default_message_budget(),
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("reading the server config {}", path.display()), e)
        })?;
        let mut config: Self =
            toml::from_str(&text).map_err(|e| ConfigError::new(path.display().to_string(), e))?;
        let invalid = |problem: String| Err(ConfigError::new(path.display().to_string(), problem));
        config.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if config.limits.max_sessions == 0 {
            return invalid("limits.max_sessions must be at least 1".into());
        }
        for (key, v) in [
            ("limits.tls_timeout_secs", config.limits.tls_timeout_secs),
            ("limits.auth_timeout_secs", config.limits.auth_timeout_secs),
            ("limits.max_pending", config.limits.max_pending as u64),
            (
                "limits.pending_per_address",
                config.limits.pending_per_address as u64,
            ),
        ] {
            if v == 0 {
                return invalid(format!("{key} must be at least 1"));
            }
        }
        if (config.limits.message_budget_mib as u64) << 20
            < u64::from(config.limits.max_message_len)
        {
            return invalid(format!(
                "limits.message_budget_mib ({} MiB) must hold one message of \
                 limits.max_message_len ({} bytes)",
                config.limits.message_budget_mib, config.limits.max_message_len
            ));
        }
        if config.tls.suites.needs_sm2_identity()
            && (config.tls.sm2_certificate.is_none() || config.tls.sm2_private_key.is_none())
        {
            return invalid(format!(
                "tls.suites = \"{}\" needs tls.sm2_certificate and tls.sm2_private_key \
                 (tnc-server init writes server-sm2.pem and server-sm2.key)",
                config.tls.suites.name()
            ));
        }
        let r = &config.reassessment;
        if r.interval_secs == 0 || r.role_interval_secs.values().any(|&v| v == 0) {
            return invalid(
                "reassessment.interval_secs and role_interval_secs must be at least 1".into(),
            );
        }
        if r.stale_intervals == 1 {
            return invalid(
                "reassessment.stale_intervals must be 0 (never) or at least 2: with jitter a \
                 round may come later than one interval"
                    .into(),
            );
        }
        if r.jitter_percent > 50 {
            return invalid("reassessment.jitter_percent must be at most 50".into());
        }
        if r.poll_ms == 0 {
            return invalid("reassessment.poll_ms must be at least 1".into());
        }
        if config.revocations.listen.is_some() && config.ca.is_none() {
            return invalid(
                "revocations.listen needs [ca]: subscribers authenticate with its certificates"
                    .into(),
            );
        }
        if config.limits.handshake_timeout_secs == 0 {
            return invalid("limits.handshake_timeout_secs must be at least 1".into());
        }
        Ok(config)
    }

    /// The audit chain's key, if the config names one; its file must exist
    /// and be private.
    pub fn audit_key(&self) -> Result<Option<crate::store::AuditKey>, ConfigError> {
        self.store
            .audit_key
            .as_ref()
            .map(|p| {
                crate::store::AuditKey::load(&self.path(p))
                    .map_err(|e| ConfigError::new("store.audit_key", e))
            })
            .transpose()
    }

    /// `p` relative to the config file's directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

impl ServerConfig {
    /// The store URL with a relative SQLite path made relative to this file.
    pub fn store_url(&self) -> String {
        match self.store.url.strip_prefix("sqlite://") {
            Some(p) if !p.starts_with('/') && !p.starts_with(":memory:") => {
                format!("sqlite://{}", self.base.join(p).display())
            }
            _ => self.store.url.clone(),
        }
    }

    /// The reference values files, checked, as (role, TOML text): what the
    /// daemon records in the store at start when they changed.
    pub fn reference_files(&self) -> Result<Vec<(Role, String)>, ConfigError> {
        let mut out = Vec::new();
        for (role, p) in &self.attestation.reference_values {
            let key = format!("attestation.reference_values.{}", role.name());
            let path = self.path(p);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(format!("{key}: reading {}", path.display()), e))?;
            policy::reference::ReferenceValues::from_toml(&text)
                .and_then(|r| r.compile())
                .map_err(|e| ConfigError::new(format!("{key}: {}", path.display()), e))?;
            out.push((*role, text));
        }
        Ok(out)
    }
}
