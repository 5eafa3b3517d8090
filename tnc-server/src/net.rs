//! The PT-TLS listener (RFC 6876 over TCP + TLS 1.3) and the task that runs
//! one session: TLS handshake, then `tnc-proto`'s PT-TLS server connection
//! and the PB-TNC session over it, all under one deadline.
//!
//! Shaped like tokio's mini-redis: a [`Listener`] takes a permit from a
//! semaphore (the bound on concurrent sessions) before each accept and spawns
//! one task per connection; a watch channel tells every task to wind down on
//! shutdown.

use crate::error::ConfigError;
use crate::pdp::session::{Decision, PdpSession};
use crate::pdp::PdpContext;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tnc_proto::attestation::Role;
use tnc_proto::pt_tls::{self, Event, SaslPolicy, ServerConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// How a session ended, for the log and for tests.
#[derive(Debug)]
pub struct SessionReport {
    pub peer: SocketAddr,
    pub decision: Option<Decision>,
    pub error: Option<String>,
    pub elapsed: Duration,
    /// Who the session turned out to be, as far as it got.
    pub identity: SessionIdentity,
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// A verdict was recorded and sent; `trouble` is what went wrong after
    /// it, if anything (the peer left without CLOSE, say).
    Decided {
        decision: Decision,
        trouble: Option<String>,
    },
    /// No verdict, and why.
    Failed(String),
    /// No verdict and no error: the client left before one was due.
    Closed,
}

impl SessionEnd {
    /// The report's two fields (kept as they are for its readers).
    fn into_parts(self) -> (Option<Decision>, Option<String>) {
        match self {
            SessionEnd::Decided { decision, trouble } => (Some(decision), trouble),
            SessionEnd::Failed(why) => (None, Some(why)),
            SessionEnd::Closed => (None, None),
        }
    }
}

/// The user (SASL name or client certificate), the device and its role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionIdentity {
    pub user: Option<String>,
    pub device: Option<String>,
    pub role: Option<&'static str>,
}

/// TLS 1.3 with the standard suites and one identity (see
/// [`tls_server_config_for`]).
pub fn tls_server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    tls_server_config_for(
        pki::tls::Suites::Standard,
        Some((cert, key)),
        None,
        client_ca,
    )
}

/// The PDP's TLS configuration from `server.toml`'s `[tls]` (and
/// `auth.client_ca`).
pub fn server_tls(
    config: &crate::config::ServerConfig,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let tls = &config.tls;
    let (cert, key) = (config.path(&tls.certificate), config.path(&tls.private_key));
    let sm2 = tls
        .sm2_certificate
        .as_ref()
        .zip(tls.sm2_private_key.as_ref())
        .map(|(c, k)| (config.path(c), config.path(k)));
    let client_ca = config.auth.client_ca.as_ref().map(|p| config.path(p));
    tls_server_config_for(
        tls.suites,
        tls.suites
            .needs_standard_identity()
            .then_some((cert.as_path(), key.as_path())),
        sm2.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        client_ca.as_deref(),
    )
}

/// TLS 1.3 for PT-TLS (RFC 6876 §3.2) with `suites`: the standard identity
/// (`tls.certificate`, `tls.private_key`), the SM2 one
/// (`tls.sm2_certificate`, `tls.sm2_private_key`), as the suites need.
///
/// With `client_ca`, a client may present a certificate issued by one of its
/// CAs; a presented certificate must verify, and it then authenticates the
/// session in place of SASL.
pub fn tls_server_config_for(
    suites: pki::tls::Suites,
    standard: Option<(&Path, &Path)>,
    sm2: Option<(&Path, &Path)>,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let standard = standard
        .map(|(c, k)| read_identity(c, k, "tls.certificate", "tls.private_key"))
        .transpose()?;
    let sm2 = sm2
        .map(|(c, k)| read_identity(c, k, "tls.sm2_certificate", "tls.sm2_private_key"))
        .transpose()?;
    let client_roots = client_ca.map(read_client_roots).transpose()?;
    pki::tls::server_config_for(suites, pki::tls::Identities { standard, sm2 }, client_roots)
        .map_err(|e| {
            ConfigError::new(
                "tls.suites, the certificates and private keys, and auth.client_ca",
                e,
            )
        })
}

/// A certificate chain and its private key, named by the settings they
/// came from; the key must not be readable by others.
fn read_identity(
    cert: &Path,
    key: &Path,
    cert_setting: &str,
    key_setting: &str,
) -> Result<pki::tls::Identity, ConfigError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ConfigError::new(format!("reading {cert_setting} {}", cert.display()), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ConfigError::new(
                format!("{cert_setting} {}: not PEM certificates", cert.display()),
                e,
            )
        })?;
    if chain.is_empty() {
        return Err(ConfigError::new(
            format!("{cert_setting} {}", cert.display()),
            "no certificate in the file",
        ));
    }
    check_private(key, key_setting)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ConfigError::new(
            format!("{key_setting} {}: no PEM private key", key.display()),
            e,
        )
    })?;
    Ok(pki::tls::Identity { chain, key })
}

/// The CAs of `auth.client_ca`.
fn read_client_roots(path: &Path) -> Result<rustls::RootCertStore, ConfigError> {
    let setting = || format!("auth.client_ca {}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(path).map_err(|e| ConfigError::new(setting(), e))? {
        let c = c.map_err(|e| ConfigError::new(format!("{}: not PEM", setting()), e))?;
        roots.add(c).map_err(|e| ConfigError::new(setting(), e))?;
    }
    if roots.is_empty() {
        return Err(ConfigError::new(setting(), "no CA certificate in the file"));
    }
    Ok(roots)
}

/// Password checks running at once, process-wide: one per core.
fn password_checks() -> &'static Semaphore {
    static CHECKS: std::sync::OnceLock<Semaphore> = std::sync::OnceLock::new();
    CHECKS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// How a client certificate is named in logs and the audit log.
fn client_identity(cert: &CertificateDer<'_>) -> String {
    pki::certificate_subject(cert.as_ref()).unwrap_or_else(|| "(unparsable subject)".into())
}

/// A private key readable by group or others is refused: fix with chmod 600.
fn check_private(path: &Path, setting: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(format!("{setting} {}", path.display()), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::new(
            format!("{setting} {} has mode {mode:03o}", path.display()),
            "it must not be readable by group or others (chmod 600 it)",
        ));
    }
    Ok(())
}

/// The PT-TLS configuration for QUIC: the same TLS 1.3 identity, with the
/// ALPN protocol `pt-tls` (the PT-TLS messages run on one bidirectional stream).
pub fn quic_server_config(
    tls: &rustls::ServerConfig,
) -> Result<quinn::ServerConfig, pki::tls::TlsError> {
    pki::tls::quic_server_config(tls, pt_tls::QUIC_ALPN)
}

/// Why a session ended before it could: the step and what went wrong there.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading, writing, or the TLS handshake.
    #[error("{doing}: {error}")]
    Io {
        doing: &'static str,
        error: std::io::Error,
    },
    #[error("{doing}: {error}")]
    Quic {
        doing: &'static str,
        error: quinn::ConnectionError,
    },
    /// A deadline passed or the pool made room: the peer was cut off.
    #[error("{0}")]
    CutOff(String),
    #[error("reading the user store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("session semaphore closed")]
    SlotsClosed,
}

impl SessionError {
    fn io(doing: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |error| Self::Io { doing, error }
    }

    fn quic(doing: &'static str) -> impl FnOnce(quinn::ConnectionError) -> Self {
        move |error| Self::Quic { doing, error }
    }
}

/// Where sessions come from.
pub enum Transport {
    /// PT-TLS over TCP + TLS 1.3 (RFC 6876).
    Tcp {
        listener: TcpListener,
        acceptor: TlsAcceptor,
    },
    /// The same PT-TLS messages on one bidirectional QUIC stream.
    Quic(quinn::Endpoint),
}

/// A connection accepted, before its handshake.
enum Accepted {
    Tcp(TcpStream, TlsAcceptor),
    Quic(Box<quinn::Incoming>),
}

/// Addresses the rate table holds at most.
const MAX_BUCKETS: usize = 65_536;

/// New sessions per peer address: a token bucket per address, `per_minute`
/// tokens deep, refilled evenly. Buckets that are full again are dropped, so
/// the table holds only recently active peers.
///
/// A session that authenticates gives its token back ([`PeerRate::refund`]),
/// so genuine terminals behind one address do not use up its budget; only
/// failed and unauthenticated sessions count. Networks in `exempt` are not
/// limited at all.
#[derive(Debug)]
pub struct PeerRate {
    per_minute: u32,
    exempt: Vec<ipnet::IpNet>,
    buckets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (f64, Instant)>>,
}

impl PeerRate {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            exempt: Vec::new(),
            buckets: Default::default(),
        }
    }

    /// The limit from the config: `sessions_per_peer_per_minute`, and the
    /// `rate_exempt` networks.
    pub fn from_limits(limits: &crate::config::Limits) -> Self {
        Self {
            exempt: limits.rate_exempt.clone(),
            ..Self::new(limits.sessions_per_peer_per_minute)
        }
    }

    /// Gives back the token a session took: it authenticated.
    pub fn refund(&self, peer: std::net::IpAddr) {
        let key = crate::address::counted_as(peer);
        let cap = f64::from(self.per_minute);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((tokens, _)) = buckets.get_mut(&key) {
            *tokens = (*tokens + 1.0).min(cap);
        }
    }

    /// Whether `peer` may open a session at `now` (and takes a token if so).
    pub fn admit(&self, peer: std::net::IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mapped = match peer {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
            v4 => v4,
        };
        if self.exempt.iter().any(|n| n.contains(&mapped)) {
            return true;
        }
        let peer = crate::address::counted_as(peer);
        let cap = f64::from(self.per_minute);
        let refill = cap / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * refill < cap
            });
            // Still full: that many distinct addresses are busy right now.
            // New ones are refused rather than let the table grow.
            if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&peer) {
                return false;
            }
        }
        let (tokens, at) = buckets.entry(peer).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * refill).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Accepts PT-TLS connections until shutdown.
pub struct Listener {
    pub transport: Transport,
    pub ctx: Arc<PdpContext>,
    pub limits: crate::config::Limits,
    /// Bounds concurrent sessions: a permit per authenticated session.
    pub sessions: Arc<Semaphore>,
    /// Connections not yet authenticated (shared by the listeners of one
    /// PDP): they take no session slot.
    pub pending: Arc<crate::pending::PendingPool>,
    pub shutdown: watch::Receiver<bool>,
    /// Shared by the listeners of one PDP.
    pub rate: Arc<PeerRate>,
    /// Where finished sessions are reported (tests); None: log only.
    pub reports: Option<tokio::sync::mpsc::UnboundedSender<SessionReport>>,
    /// Session events for subscribers (shared by the listeners of one PDP).
    pub events: Arc<crate::events::EventBus>,
}

impl Listener {
    pub async fn run(mut self) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let (accepted, peer) = match &self.transport {
                Transport::Tcp { listener, acceptor } => tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, peer)) if !self.rate.admit(peer.ip(), self.ctx.clock.monotonic()) => {
                            tracing::warn!(%peer, "rate limit: too many new sessions from this address, connection closed");
                            drop(stream);
                            continue;
                        }
                        Ok((stream, peer)) => (Accepted::Tcp(stream, acceptor.clone()), peer),
                        Err(e) => {
                            // Out of file descriptors and the like: wait, then go on.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = self.shutdown.changed() => break,
                },
                Transport::Quic(endpoint) => tokio::select! {
                    r = endpoint.accept() => match r {
                        // Validate the source address first (a Retry round
                        // trip), so a spoofed address cannot spend a real
                        // peer's rate.
                        Some(incoming) if !incoming.remote_address_validated() => {
                            let _ = incoming.retry();
                            continue;
                        }
                        Some(incoming) if !self.rate.admit(incoming.remote_address().ip(), self.ctx.clock.monotonic()) => {
                            tracing::warn!(peer = %incoming.remote_address(), "rate limit: too many new sessions from this address, connection refused");
                            incoming.refuse();
                            continue;
                        }
                        Some(incoming) => {
                            let peer = incoming.remote_address();
                            (Accepted::Quic(Box::new(incoming)), peer)
                        }
                        None => break,
                    },
                    _ = self.shutdown.changed() => break,
                },
            };
            // An address that holds its share of unauthenticated
            // connections gets no more (an idle flood); a full pool cuts its
            // oldest.
            let Ok(ticket) = self.pending.enter(peer.ip()) else {
                tracing::debug!(%peer, "too many unauthenticated connections from this address: closed");
                continue;
            };
            let events = self.events.clone();
            let session = events.session_id();
            let gate = Gate {
                ticket: Some(ticket),
                sessions: self.sessions.clone(),
                max_sessions: self.limits.max_sessions,
                tls_timeout: Duration::from_secs(self.limits.tls_timeout_secs),
                auth_timeout: Duration::from_secs(self.limits.auth_timeout_secs),
                kept_open: Arc::default(),
                shutdown: self.shutdown.clone(),
                events: (events.clone(), session),
            };
            let ctx = self.ctx.clone();
            let rate = self.rate.clone();
            let limits = self.limits.clone();
            let reports = self.reports.clone();
            let mut shutdown = self.shutdown.clone();
            events.publish(crate::events::SessionEvent::Opened {
                session,
                peer: peer.to_string(),
                transport: match self.transport {
                    Transport::Tcp { .. } => "tcp",
                    Transport::Quic(_) => "quic",
                },
                at: ctx.now(),
            });
            let kept_open = gate.kept_open.clone();
            // Boxed, and made here rather than in the task: what the task
            // moved into it would keep a slot in the task's future too
            // (see `serve`).
            let serving = Box::pin(serve(accepted, peer, ctx.clone(), limits, rate, gate));
            let task = async move {
                let _open = ctx.metrics.session();
                // Ends before the gauge's guard, as a local declared after it.
                let mut serving = serving;
                let report = tokio::select! {
                    r = &mut serving => r,
                    _ = shutdown.changed() => {
                        // A kept session closes itself (on the same
                        // signal) and reports the decision it stands on;
                        // one still deciding is cut off.
                        let kept = kept_open.load(std::sync::atomic::Ordering::Acquire);
                        match kept {
                            true => tokio::time::timeout(SHUTDOWN_CLOSE, &mut serving).await.ok(),
                            false => None,
                        }
                        .unwrap_or_else(|| SessionReport {
                            peer,
                            decision: None,
                            error: Some("server shutting down".into()),
                            elapsed: Duration::ZERO,
                            identity: SessionIdentity::default(),
                        })
                    }
                };
                log_report(&report);
                events.publish(event_of(session, &report, ctx.now()));
                if let Some(tx) = reports {
                    let _ = tx.send(report);
                }
            };
            tasks.spawn(task);
            // Reap finished tasks so the set does not grow.
            while tasks.try_join_next().is_some() {}
        }
        tracing::info!(
            sessions = tasks.len(),
            "shutting down: ending open sessions"
        );
        while tasks.join_next().await.is_some() {}
        if let Transport::Quic(endpoint) = &self.transport {
            endpoint.close(0u32.into(), b"shutting down");
            endpoint.wait_idle().await;
        }
    }
}

fn event_of(session: u64, r: &SessionReport, at: u64) -> crate::events::SessionEvent {
    use crate::events::SessionEvent;
    let peer = r.peer.to_string();
    let ms = r.elapsed.as_secs_f64() * 1e3;
    match (&r.decision, &r.error) {
        (Some(d), _) => SessionEvent::Decided {
            session,
            peer,
            device: r.identity.device.clone(),
            role: r.identity.role.map(str::to_string),
            user: r.identity.user.clone(),
            verdict: d.verdict.label().to_string(),
            findings: d.reasons.iter().map(|x| x.text.clone()).collect(),
            ms,
            at,
        },
        (None, Some(e)) => SessionEvent::Failed {
            session,
            peer,
            user: r.identity.user.clone(),
            why: e.clone(),
            ms,
            at,
        },
        (None, None) => SessionEvent::Closed { session, peer, at },
    }
}

fn log_report(r: &SessionReport) {
    let ms = r.elapsed.as_secs_f64() * 1e3;
    match (&r.decision, &r.error) {
        (Some(d), _) => tracing::info!(
            peer = %r.peer,
            verdict = %d.verdict.name(),
            ms = format_args!("{ms:.1}"),
            reason = %d.reason_string(),
            "session decided"
        ),
        (None, Some(e)) => {
            tracing::warn!(peer = %r.peer, ms = format_args!("{ms:.1}"), error = %e, "session failed")
        }
        (None, None) => tracing::info!(peer = %r.peer, "session closed without a decision"),
    }
}

/// Resolves once `shutdown` says so.
async fn shut_down(shutdown: &watch::Receiver<bool>) {
    let _ = shutdown.clone().wait_for(|stop| *stop).await;
}

/// How long a kept session has, at shutdown, to send its CLOSE and end.
const SHUTDOWN_CLOSE: Duration = Duration::from_secs(2);

/// How an unauthenticated connection becomes a session: its place in the
/// pending pool, the deadlines it must meet, and the session slot it takes
/// once authenticated.
pub struct Gate {
    pub ticket: Option<crate::pending::Ticket>,
    pub sessions: Arc<Semaphore>,
    /// For the log line when the slots are all taken.
    pub max_sessions: usize,
    /// To finish TLS (or the QUIC handshake), from the accept.
    pub tls_timeout: Duration,
    /// To finish PT-TLS negotiation and authentication, after TLS.
    pub auth_timeout: Duration,
    /// Set once the session is decided and stays open (for re-assessments,
    /// and a serving VM's pairings): past the handshake deadline.
    pub kept_open: Arc<std::sync::atomic::AtomicBool>,
    /// The PDP's shutdown: a kept session ends with a CLOSE (its client
    /// goes on with its next PDP at once) and reports its decision.
    pub shutdown: watch::Receiver<bool>,
    /// Where this session's re-assessments are told, and its number there.
    pub events: (Arc<crate::events::EventBus>, u64),
}

impl Gate {
    /// Resolves when the pool cuts this connection; never once it left it.
    async fn evicted(&self) {
        match &self.ticket {
            Some(t) => t.evicted().await,
            None => std::future::pending().await,
        }
    }

    /// `phase` (TLS, or the QUIC handshake) within the TLS deadline, unless
    /// the pool cuts the connection first.
    async fn pending<T>(
        &self,
        what: &str,
        phase: impl std::future::Future<Output = Result<T, SessionError>>,
    ) -> Result<T, SessionError> {
        tokio::select! {
            r = tokio::time::timeout(self.tls_timeout, phase) => r.map_err(|_| {
                SessionError::CutOff(format!("{what} not finished within {} s: peer cut off", self.tls_timeout.as_secs()))
            })?,
            _ = self.evicted() => Err(SessionError::CutOff(format!("cut off during {what}: the oldest unauthenticated connection while the pool was full"))),
        }
    }

    /// Authenticated: leave the pool, take a session slot (waiting for one
    /// if all are taken).
    async fn enter(&mut self) -> Result<tokio::sync::OwnedSemaphorePermit, SessionError> {
        self.ticket = None;
        if self.sessions.available_permits() == 0 {
            tracing::warn!(
                max_sessions = self.max_sessions,
                "session limit reached: authenticated sessions wait until one ends"
            );
        }
        self.sessions
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SessionError::SlotsClosed)
    }
}

// `serve`, `handshake` and `run_session` are not `async fn`s: an async fn
// keeps each argument twice in its future (as passed, and moved into the
// body), and a kept session holds all three futures. An `async move` block
// keeps them once.
#[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
fn serve(
    accepted: Accepted,
    peer: SocketAddr,
    ctx: Arc<PdpContext>,
    limits: crate::config::Limits,
    rate: Arc<PeerRate>,
    gate: Gate,
) -> impl std::future::Future<Output = SessionReport> {
    async move {
        let (ctx, limits, rate) = (&*ctx, &limits, &*rate);
        let start = Instant::now();
        let kept_open = gate.kept_open.clone();
        // The handshake deadline, unless the session was decided and kept open.
        let deadline = async {
            tokio::time::sleep(limits.handshake_timeout()).await;
            if kept_open.load(std::sync::atomic::Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
        };
        // Each phase's future is boxed where it starts. A future is as large
        // as its largest state, and an async block keeps a slot for a value
        // it moved on (into a callee's future) beside that callee: unboxed,
        // a kept session's task held the TLS and QUIC handshakes' states and
        // both transports' sessions, 12.4 KB where the session then needed 3.5.
        let handshake = Box::pin(handshake(accepted, peer, ctx, limits, rate, gate));
        let outcome = tokio::select! {
            r = handshake => Ok(r),
            () = deadline => Err(()),
        };
        let (end, identity) = match outcome {
            Ok(Ok(end)) => end,
            Ok(Err(e)) => (
                SessionEnd::Failed(format!("{e:#}")),
                SessionIdentity::default(),
            ),
            Err(_) => (
                SessionEnd::Failed(format!(
                    "handshake deadline of {} s passed: peer cut off",
                    limits.handshake_timeout_secs
                )),
                SessionIdentity::default(),
            ),
        };
        let (decision, error) = end.into_parts();
        SessionReport {
            peer,
            decision,
            error,
            elapsed: start.elapsed(),
            identity,
        }
    }
}

/// A connection's handshake (TLS or QUIC), then its session. Each phase's
/// future is boxed where it starts (see `serve`).
#[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
fn handshake<'a>(
    accepted: Accepted,
    peer: SocketAddr,
    ctx: &'a PdpContext,
    limits: &'a crate::config::Limits,
    rate: &'a PeerRate,
    gate: Gate,
) -> impl std::future::Future<Output = Result<(SessionEnd, SessionIdentity), SessionError>> + 'a {
    async move {
        let (io, client, quic): (Box<dyn SessionIo>, _, _) = match accepted {
            Accepted::Tcp(stream, acceptor) => {
                let _ = stream.set_nodelay(true);
                keepalive(&stream);
                // The stream is boxed at once too: 1.2 KB the session
                // would otherwise hold a second slot for.
                let tls = Box::pin(gate.pending("TLS handshake", async {
                    acceptor
                        .accept(stream)
                        .await
                        .map(Box::new)
                        .map_err(SessionError::io("TLS handshake"))
                }))
                .await?;
                let client = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| client_identity(c));
                (tls, client, None)
            }
            Accepted::Quic(incoming) => {
                let (conn, send, recv) = Box::pin(gate.pending("QUIC handshake", async {
                    let conn = (*incoming)
                        .await
                        .map_err(SessionError::quic("QUIC handshake"))?;
                    let (send, recv) = conn
                        .accept_bi()
                        .await
                        .map_err(SessionError::quic("waiting for the PT-TLS stream"))?;
                    Ok((conn, send, recv))
                }))
                .await?;
                let client = conn
                    .peer_identity()
                    .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
                    .and_then(|c| c.first().map(|c| client_identity(c)));
                (Box::new(tokio::io::join(recv, send)), client, Some(conn))
            }
        };
        let result = Box::pin(run_session(io, peer, client, ctx, limits, Some(rate), gate)).await;
        if let Some(conn) = quic {
            // The client closes the connection once it read our last bytes.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        }
        result
    }
}

/// A session's byte stream, TLS over TCP or a QUIC stream: one
/// [`run_session`] for both.
trait SessionIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SessionIo for T {}

/// TCP keepalive on a session's socket: a kept-open session whose peer
/// vanished without a FIN (a VM powered off, a link down) is found after
/// [`KEEPALIVE_IDLE`] and three unanswered probes [`KEEPALIVE_INTERVAL`]
/// apart, rather than at its next round (its serving VM leaves the pairing
/// registry then too).
pub fn keepalive(stream: &TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
}

/// Idle time before the first keepalive probe.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// One TLS record's worth: larger reads gain nothing.
const READ: usize = 16 * 1024;
/// What an idle decided session reads into (it holds the buffer while it
/// waits, for as long as it stays open).
const IDLE_READ: usize = 128;

/// A round the PDP started on a decided session.
#[derive(Clone, Copy, Debug)]
enum Round {
    /// A pairing pushed to a serving VM, awaiting its acknowledgement.
    Pairing,
    /// A re-assessment, and why it was started.
    Reassess(&'static str),
}

/// What the session's timer is set for.
#[derive(Clone, Copy, Debug)]
enum Wake {
    /// Not authenticated by the deadline: cut off.
    Auth,
    /// A round the PDP started did not end in time.
    Round,
    /// The next periodic re-assessment.
    Reassess,
}

/// Sleeps until the deadline and says which it was; forever when None.
async fn wake_at(wake: Option<(tokio::time::Instant, Wake)>) -> Wake {
    match wake {
        Some((at, what)) => {
            tokio::time::sleep_until(at).await;
            what
        }
        None => std::future::pending().await,
    }
}

/// The next item of `rx`; never when None.
async fn recv_opt<T>(rx: Option<&mut tokio::sync::mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Whose turn a device's periodic re-assessment is.
enum Lease {
    Ours,
    /// Another PDP's: look again after this.
    Theirs(Duration),
}

/// Takes or renews the lease on the session's device for one interval and
/// the round's time. A store that cannot say is no reason to skip a round.
async fn periodic_lease(ctx: &PdpContext, session: &PdpSession<'_>) -> Lease {
    let Some((device, role)) = session.device() else {
        return Lease::Ours;
    };
    let Some(id) = policy::digest::from_hex(&device).and_then(|d| <[u8; 32]>::try_from(d).ok())
    else {
        return Lease::Ours;
    };
    let interval = ctx.reassessment.interval(role.and_then(Role::from_name));
    let now = ctx.now();
    // Until just after the owner's next round (the interval, at most
    // 50 % jitter): a dead owner's devices are taken over about an
    // interval after its last round.
    let until = now + (interval.as_secs() * 3).div_ceil(2) + 1;
    match ctx.store.take_lease(&id, &ctx.instance, now, until).await {
        Ok(true) => Lease::Ours,
        Ok(false) => {
            tracing::debug!(%device, "another PDP holds the re-assessment lease");
            Lease::Theirs((interval / 4).max(Duration::from_secs(1)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "the re-assessment lease could not be read: re-assessing");
            Lease::Ours
        }
    }
}

/// Sends what `reply` holds; closes the transport when it says so.
fn send(conn: &mut ServerConnection, reply: &crate::pdp::session::Reply) {
    for b in &reply.batches {
        if conn.send_batch(b).is_err() {
            break;
        }
    }
    if reply.close {
        conn.close();
    }
}

/// Starts a re-assessment (SRETRY, SDATA) with its deadline.
fn start_reassessment(
    session: &mut PdpSession<'_>,
    conn: &mut ServerConnection,
    round: &mut Option<(Round, tokio::time::Instant)>,
    why: &'static str,
    limits: &crate::config::Limits,
) {
    if let Some(reply) = session.reassess() {
        tracing::debug!(why, "re-assessing an open session");
        send(conn, &reply);
        if reply.close {
            return;
        }
        *round = Some((
            Round::Reassess(why),
            tokio::time::Instant::now() + limits.handshake_timeout(),
        ));
    }
}

/// The log line of a re-assessment's decision, and its event.
fn log_reassessment(
    peer: &SocketAddr,
    session: &PdpSession<'_>,
    why: &'static str,
    (bus, id): &(Arc<crate::events::EventBus>, u64),
    at: u64,
) {
    let Some(d) = session.decision() else {
        return;
    };
    let (device, role) = session.device().unzip();
    let round = session.reassessments();
    bus.publish(crate::events::SessionEvent::Reassessed {
        session: *id,
        peer: peer.to_string(),
        device: device.clone(),
        role: role.flatten().map(str::to_string),
        verdict: d.verdict.label().to_string(),
        findings: d.reasons.iter().map(|x| x.text.clone()).collect(),
        round,
        why: why.to_string(),
        at,
    });
    let device = device.unwrap_or_default();
    if d.verdict == policy::Verdict::Allow {
        tracing::info!(%peer, %device, round, why, verdict = "allow", "re-assessed");
    } else {
        tracing::warn!(
            %peer,
            %device,
            round,
            why,
            verdict = d.verdict.name(),
            reasons = %d.reason_string(),
            "re-assessed: no longer allowed, its tickets revoked"
        );
    }
}

/// SASL PLAIN: whether `creds` name a user with that password. A user name
/// or address that spent its guesses fails unchecked until one drips back;
/// a failure is logged, audited when the guard says so, and answered after
/// the guard's backoff (guessing gets slower the more it fails).
async fn check_password(
    ctx: &PdpContext,
    peer: SocketAddr,
    creds: pt_tls::sasl::PlainCredentials,
) -> Result<bool, SessionError> {
    let user = creds.authcid.as_str();
    let started = ctx.clock.monotonic();
    let admitted = ctx.guesses.check(user, peer.ip(), started) == crate::guard::Admission::Check;
    let ok = admitted && {
        let hash = ctx.store.password_hash(user).await?;
        let password = creds.password.expose().to_string();
        // argon2id takes tens of milliseconds: not on the async threads. At
        // most one check per core at a time: each takes ~20 MiB.
        let _slot = password_checks().acquire().await;
        tokio::task::spawn_blocking(move || {
            crate::auth::verify_password(hash.as_deref(), &password)
        })
        .await
        .unwrap_or(false)
    };
    if ok {
        ctx.guesses.succeeded(user);
        return Ok(true);
    }
    let (backoff, audit) = ctx.guesses.failed(user, peer.ip(), started, admitted);
    tracing::warn!(
        %peer,
        user = %user,
        locked = !admitted,
        backoff_ms = backoff.as_millis() as u64,
        "SASL PLAIN: wrong user name or password"
    );
    if let Some((subject, detail)) = audit {
        if let Err(e) = ctx
            .store
            .audit(ctx.now(), "sasl-failed", &subject, &detail)
            .await
        {
            tracing::warn!(error = %e, "failed logins not in the audit log");
        }
    }
    tokio::time::sleep(backoff).await;
    Ok(false)
}

/// Runs PT-TLS and PB-TNC over an established TLS stream until either side
/// closes. Returns how the session ended and who it was. A session that
/// authenticates (a client certificate, or SASL) gives its token back to
/// `rate`.
#[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
pub fn run_session<'a, S: AsyncRead + AsyncWrite + Unpin + 'a>(
    mut io: S,
    peer: SocketAddr,
    client_certificate: Option<String>,
    ctx: &'a PdpContext,
    limits: &'a crate::config::Limits,
    rate: Option<&'a PeerRate>,
    mut gate: Gate,
) -> impl std::future::Future<Output = Result<(SessionEnd, SessionIdentity), SessionError>> + 'a {
    async move {
        let mut identity = SessionIdentity {
            user: client_certificate.clone(),
            ..SessionIdentity::default()
        };
        // Authentication (PT-TLS negotiation, SASL) must be over by then.
        let auth_deadline = tokio::time::Instant::now() + gate.auth_timeout;
        // The session slot, once authenticated.
        let mut slot = None;
        // Past PT-TLS negotiation and authentication (the slot may be given
        // back later, while the session is kept open between rounds).
        let mut authenticated = false;
        // This session's share of the PDP's budget for unfinished messages.
        let mut reserved = ctx.message_budget.reservation();
        let refund = || {
            if let Some(r) = rate {
                r.refund(peer.ip());
            }
        };
        if client_certificate.is_some() {
            refund();
        }
        // A verified client certificate authenticates the session: no SASL.
        let policy = match (ctx.sasl, &client_certificate) {
            (crate::config::Sasl::Plain, None) => SaslPolicy::Plain { max_attempts: 3 },
            _ => SaslPolicy::None,
        };
        let who = match &client_certificate {
            Some(c) => format!("{peer}, client certificate {c}"),
            None => peer.to_string(),
        };
        let mut conn = ServerConnection::new(
            pt_tls::Limits {
                max_message_len: limits.max_message_len,
            },
            policy,
        );
        let mut session = PdpSession::new(ctx, who);
        session.set_user(client_certificate.clone());
        let mut error = None;
        // A serving VM's place in the pairing registry, the pairings pushed to
        // it, and those waiting for its acknowledgement.
        let mut registration = None;
        let mut pushes: Option<tokio::sync::mpsc::Receiver<crate::pairing::Push>> = None;
        let mut awaiting: std::collections::HashMap<Vec<u8>, tokio::sync::oneshot::Sender<()>> =
            std::collections::HashMap::new();
        // A round the PDP started (a pairing pushed, a re-assessment) must end
        // in RESULT by then, or the session ends.
        let mut round: Option<(Round, tokio::time::Instant)> = None;
        // Continuous trust: the next periodic re-assessment, once decided, and
        // what else asks for one.
        let mut next_reassess: Option<tokio::time::Instant> = None;
        let mut triggers = ctx.triggers.subscribe();
        let mut buf = vec![0u8; READ];
        let exchange: Result<(), SessionError> = async {
            loop {
                while let Some(event) = conn.poll_event() {
                    match event {
                        Event::Ready => {
                            slot = Some(gate.enter().await?);
                            authenticated = true;
                        }
                        Event::Batch(bytes) => {
                            // Boxed: the appraisal's future is large and lives
                            // only while a batch is handled, not in every idle
                            // session's task.
                            let reply = Box::pin(session.receive(&bytes)).await;
                            send(&mut conn, &reply);
                            // A pairing round's RESULT repeats the standing
                            // decision: nothing was appraised, the schedule and
                            // the triggers stand.
                            let pairing_round = matches!(round, Some((Round::Pairing, _)));
                            if session.is_decided() && !conn.is_closed() && !pairing_round {
                                if let Some((Round::Reassess(why), _)) = round {
                                    log_reassessment(&peer, &session, why, &gate.events, ctx.now());
                                } else if let Some(d) = session.decision() {
                                    let (bus, id) = &gate.events;
                                    bus.assessed(
                                        *id,
                                        session.device(),
                                        identity.user.clone(),
                                        d.verdict.name(),
                                        ctx.now(),
                                    );
                                }
                                round = None;
                                // Decided and still open: the session stays
                                // (past the handshake deadline), holds no
                                // session slot between rounds (`max_sessions`
                                // bounds the exchanges under way, not the
                                // endpoints kept), and is assessed again after
                                // an interval.
                                gate.kept_open
                                    .store(true, std::sync::atomic::Ordering::Release);
                                slot = None;
                                session.release_round();
                                let role = session
                                    .device()
                                    .and_then(|(_, r)| r)
                                    .and_then(Role::from_name);
                                let wait = ctx
                                    .reassessment
                                    .jittered(role, crate::continuous::unit(&ctx.rng));
                                next_reassess = Some(tokio::time::Instant::now() + wait);
                                // This appraisal read the store just now:
                                // triggers queued before it are answered.
                                triggers = triggers.resubscribe();
                            } else if pairing_round && session.is_decided() {
                                round = None;
                            }
                            for id in session.take_accepted() {
                                if let Some(done) = awaiting.remove(&id) {
                                    let _ = done.send(());
                                }
                            }
                            if let Some(serving) = session.take_serving() {
                                tracing::info!(
                                    %peer,
                                    vm = %serving.name,
                                    address = %serving.address,
                                    "VM serving channels: its control session stays open for pairings"
                                );
                                let (r, rx) = ctx.pairings.register(serving);
                                if let Some(old) = registration.replace(r) {
                                    ctx.pairings.leave(old);
                                }
                                pushes = Some(rx);
                            } else if registration.is_some()
                                && session.is_decided()
                                && !session.allowed()
                            {
                                // Re-assessed (CRETRY) to something other than
                                // allow: no more pairings, and the session ends.
                                if let Some(r) = registration.take() {
                                    ctx.pairings.leave(r);
                                }
                                pushes = None;
                                send(
                                    &mut conn,
                                    &session
                                        .close("a serving VM no longer allowed: control session ended"),
                                );
                            }
                        }
                        Event::Authenticate(creds) => {
                            // Boxed: the store's and the password check's
                            // futures would otherwise take room in every kept
                            // session's task.
                            let user = creds.authcid.clone();
                            let ok = Box::pin(check_password(ctx, peer, creds)).await?;
                            if ok {
                                error = None;
                                identity.user = Some(user.clone());
                                session.set_user(Some(user));
                                refund();
                            } else {
                                error = Some(format!("SASL PLAIN failed for user {user:?}"));
                            }
                            conn.authentication_result(ok);
                        }
                        Event::Closed(reason) if !matches!(reason, pt_tls::CloseReason::Local) => {
                            error = Some(format!("PT-TLS session closed: {reason:?}"));
                        }
                        Event::PeerError { code, .. } => {
                            error = Some(format!("client sent PT-TLS error {code:?}"));
                        }
                        _ => {}
                    }
                }
                let out = conn.take_output();
                if !out.is_empty() {
                    io.write_all(&out)
                        .await
                        .map_err(SessionError::io("writing to the client"))?;
                    io.flush()
                        .await
                        .map_err(SessionError::io("writing to the client"))?;
                }
                if conn.is_closed() {
                    break;
                }
                // An idle decided session reads into a small buffer (what comes
                // next is a short batch, or a round's answer that starts one);
                // during an exchange, a TLS record's worth.
                let want = match session.is_decided() && round.is_none() {
                    true => IDLE_READ,
                    false => READ,
                };
                if buf.len() != want {
                    buf = vec![0u8; want];
                }
                // What is held now, and what one more read may add, must fit
                // the budget: if it is spent, wait before reading more.
                reserved.shrink_to(conn.buffered());
                reserved.cover(conn.buffered() + buf.len()).await;
                // Between the client's batches: its next bytes; before
                // authentication, the deadlines; once decided, a pairing to push
                // (a control session; one round at a time, others wait in the
                // queue), the next periodic re-assessment or a trigger; during
                // a round the PDP started, its deadline.
                let decided = session.is_decided();
                // The earliest deadline: authentication's, a round's, the next
                // periodic re-assessment's (on a tie, in that order).
                let wake = [
                    (!authenticated).then_some((auth_deadline, Wake::Auth)),
                    round.as_ref().map(|r| (r.1, Wake::Round)),
                    next_reassess
                        .filter(|_| decided)
                        .map(|at| (at, Wake::Reassess)),
                ]
                .into_iter()
                .flatten()
                .min_by_key(|(at, _)| *at);
                let n = tokio::select! {
                    r = io.read(&mut buf) => r.map_err(SessionError::io("reading from the client"))?,
                    () = gate.evicted(), if !authenticated => return Err(SessionError::CutOff(
                        "cut off before authenticating: the oldest unauthenticated connection while the pool was full".into()
                    )),
                    push = recv_opt(pushes.as_mut()), if decided => {
                        match push {
                            // The terminal gave up waiting: not worth a round.
                            Some(push) if push.done.is_closed() => {}
                            Some(push) => {
                                awaiting.retain(|_, done| !done.is_closed());
                                let id = push.pairing.id.clone();
                                send(&mut conn, &session.push_pairing(push.pairing));
                                awaiting.insert(id, push.done);
                                round = Some((
                                    Round::Pairing,
                                    tokio::time::Instant::now() + ctx.pairings.ack_timeout(),
                                ));
                            }
                            // The same VM registered from a newer session:
                            // this one is superseded.
                            None => {
                                registration = None;
                                pushes = None;
                                send(
                                    &mut conn,
                                    &session.close("superseded by a newer control session of the same VM"),
                                );
                            }
                        }
                        continue;
                    }
                    // One timer for the three deadlines: a timer is 112 bytes
                    // that every kept session's future would hold three of.
                    what = wake_at(wake) => {
                        match what {
                            Wake::Auth => return Err(SessionError::CutOff(format!(
                                "not authenticated within {} s of TLS: peer cut off",
                                gate.auth_timeout.as_secs()
                            ))),
                            Wake::Round => {
                                let why = match round.take() {
                                    Some((Round::Pairing, _)) => {
                                        if let Some(r) = registration.take() {
                                            ctx.pairings.leave(r);
                                        }
                                        pushes = None;
                                        "the VM did not acknowledge a pairing in time: control session ended".to_string()
                                    }
                                    _ => format!(
                                        "the endpoint did not finish a re-assessment within {} s: session ended",
                                        limits.handshake_timeout_secs
                                    ),
                                };
                                send(&mut conn, &session.close(&why));
                            }
                            Wake::Reassess => {
                                next_reassess = None;
                                // Several PDPs may hold sessions of one device: the
                                // lease's owner re-assesses it on the interval, the
                                // others look again later.
                                match Box::pin(periodic_lease(ctx, &session)).await {
                                    Lease::Ours => start_reassessment(&mut session, &mut conn, &mut round, "interval", limits),
                                    Lease::Theirs(retry) => next_reassess = Some(tokio::time::Instant::now() + retry),
                                }
                            }
                        }
                        continue;
                    }
                    () = shut_down(&gate.shutdown), if decided => {
                        send(&mut conn, &session.close("the PDP is shutting down"));
                        continue;
                    }
                    t = triggers.recv(), if decided => {
                        let (device, role) = session
                            .device()
                            .map(|(d, r)| (d, r.and_then(Role::from_name)))
                            .unwrap_or_default();
                        let why = match t {
                            Ok(t) if t.applies(&device, role) => Some(t.why()),
                            Ok(_) => None,
                            // Triggers were missed: re-assess to be sure.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some("triggers were missed"),
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                        };
                        if let (Some(why), false) = (why, device.is_empty()) {
                            next_reassess = None;
                            start_reassessment(&mut session, &mut conn, &mut round, why, limits);
                        }
                        continue;
                    }
                };
                if n == 0 {
                    if session.decision().is_none() {
                        error.get_or_insert_with(|| {
                            "client closed the connection before a decision".into()
                        });
                    }
                    break;
                }
                conn.receive(&buf[..n]);
            }
            Ok(())
        }
        .await;
        // A peer may leave without CLOSE or TLS close_notify once it has its
        // verdict: the session is decided all the same (the verdict was
        // recorded before it was sent), and the log says so.
        // An earlier cause (a failed SASL attempt) says more than the I/O error
        // that followed it.
        if let Err(e) = exchange {
            let decided = session.decision().is_some();
            error.get_or_insert_with(|| match decided {
                true => format!("after the decision: {e:#}"),
                false => format!("{e:#}"),
            });
        }
        if let Some(r) = registration {
            ctx.pairings.leave(r);
        }
        let _ = io.shutdown().await;
        if let Some(f) = session.failure() {
            error.get_or_insert_with(|| f.to_string());
        }
        if let Some((device, role)) = session.device() {
            identity.device = Some(device);
            identity.role = role;
        }
        let end = match (session.decision().cloned(), error) {
            (Some(decision), trouble) => SessionEnd::Decided { decision, trouble },
            (None, Some(why)) => SessionEnd::Failed(why),
            (None, None) => SessionEnd::Closed,
        };
        Ok((end, identity))
    }
}

#[cfg(test)]
mod tests {
    use super::PeerRate;

    /// What a kept session's futures take, in bytes (never polled: the
    /// sizes are the types').
    #[test]
    fn kept_sessions_futures_stay_small() {
        use super::*;
        fn serve_size<A, B, C, D, E, G, F>(_: fn(A, B, C, D, E, G) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        type Session<'a, S, F> = fn(
            S,
            SocketAddr,
            Option<String>,
            &'a PdpContext,
            &'a crate::config::Limits,
            Option<&'a PeerRate>,
            Gate,
        ) -> F;
        fn session_size<'a, S, F>(_: Session<'a, S, F>) -> usize {
            std::mem::size_of::<F>()
        }
        let (serve, handshake, session) = (
            serve_size(serve),
            serve_size(handshake),
            session_size(run_session::<Box<dyn SessionIo>>),
        );
        // A kept session holds serve's, the handshake's and its session's
        // (and its task's): the TLS and QUIC handshake phases are boxed
        // apart and gone by then. serve's was 11.8 KB when it held them
        // all; as `async fn`s (which keep each argument twice), with the
        // SASL check inline and the session's occasional fields unboxed,
        // the three were 744, 800 and 3,464 bytes. Today (debug build) 496,
        // 584 and 2,456; the bounds leave about 8 % for a new field or
        // another compiler's layout.
        assert!(serve <= 536, "serve: {serve} bytes");
        assert!(handshake <= 632, "handshake: {handshake} bytes");
        assert!(session <= 2656, "a session: {session} bytes");
        // The session's state inside that future, with its rarely present
        // fields boxed (a pairing request, where a VM serves, kept evidence,
        // the record to commit): 576 and 192 bytes today. The bounds leave
        // 3 %, less than any one of those fields unboxed (40 bytes or more),
        // which the bound on the whole session's future would not notice.
        let pdp = std::mem::size_of::<crate::pdp::session::PdpSession<'static>>();
        let validator = std::mem::size_of::<crate::imv::attestation::AttestationValidator>();
        assert!(pdp <= 592, "PdpSession: {pdp} bytes");
        assert!(validator <= 200, "AttestationValidator: {validator} bytes");
    }

    #[tokio::test]
    async fn session_sockets_get_tcp_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&server);
        assert!(!sock.keepalive().unwrap());
        super::keepalive(&server);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), super::KEEPALIVE_IDLE);
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            super::KEEPALIVE_INTERVAL
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
    }

    #[test]
    fn peer_rate_admits_a_burst_then_refuses_per_address() {
        let t0 = std::time::Instant::now();
        let rate = PeerRate::new(3);
        let a = "192.0.2.1".parse().unwrap();
        let b = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| rate.admit(a, t0)));
        assert!(!rate.admit(a, t0), "the fourth within the minute");
        assert!(rate.admit(b, t0), "another address has its own bucket");
        // IPv6 per /64: another address of the same /64 shares the bucket.
        let v6a = "2001:db8:1:2::10".parse().unwrap();
        let v6b = "2001:db8:1:2:ffff::1".parse().unwrap();
        let v6c = "2001:db8:1:3::10".parse().unwrap();
        assert!((0..3).all(|_| rate.admit(v6a, t0)));
        assert!(!rate.admit(v6b, t0), "same /64");
        assert!(rate.admit(v6c, t0), "another /64");
        let unlimited = PeerRate::new(0);
        assert!((0..10_000).all(|_| unlimited.admit(a, t0)));
    }

    #[test]
    fn authenticated_sessions_give_their_token_back_and_exempt_networks_pass() {
        let t0 = std::time::Instant::now();
        let rate = PeerRate::new(2);
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        // Genuine sessions, each refunded: never refused.
        for _ in 0..100 {
            assert!(rate.admit(a, t0));
            rate.refund(a);
        }
        // Refunds never raise the bucket above its size.
        rate.refund(a);
        rate.refund(a);
        assert!(rate.admit(a, t0) && rate.admit(a, t0) && !rate.admit(a, t0));
        // A refund for a /64 neighbour is the /64's.
        let v6 = "2001:db8::1".parse().unwrap();
        assert!(rate.admit(v6, t0) && rate.admit(v6, t0) && !rate.admit(v6, t0));
        rate.refund("2001:db8::2".parse().unwrap());
        assert!(rate.admit(v6, t0));

        let limits = crate::config::Limits {
            sessions_per_peer_per_minute: 1,
            rate_exempt: vec![
                "10.1.0.0/16".parse().unwrap(),
                "2001:db8:5::/48".parse().unwrap(),
            ],
            ..Default::default()
        };
        let rate = PeerRate::from_limits(&limits);
        let nat: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert!((0..1000).all(|_| rate.admit(nat, t0)));
        let mapped: std::net::IpAddr = "::ffff:10.1.9.9".parse().unwrap();
        assert!((0..10).all(|_| rate.admit(mapped, t0)));
        assert!((0..10).all(|_| rate.admit("2001:db8:5:1::7".parse().unwrap(), t0)));
        let other: std::net::IpAddr = "10.2.0.1".parse().unwrap();
        assert!(rate.admit(other, t0) && !rate.admit(other, t0));
    }

    #[test]
    fn peer_rate_refills_as_the_clock_moves() {
        use crate::clock::{Clock, FakeClock};
        use std::time::Duration;
        let clock = FakeClock::at(1_800_000_000);
        let rate = PeerRate::new(3);
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| rate.admit(a, clock.monotonic())));
        assert!(!rate.admit(a, clock.monotonic()));
        // 3 a minute: a token drips back every 20 s, not sooner.
        clock.advance(Duration::from_secs(19));
        assert!(!rate.admit(a, clock.monotonic()), "19 s is not enough");
        clock.advance(Duration::from_secs(1));
        assert!(rate.admit(a, clock.monotonic()), "one token after 20 s");
        assert!(!rate.admit(a, clock.monotonic()));
        // A quiet minute fills the bucket again, to its size and no more.
        clock.advance(Duration::from_secs(600));
        assert!((0..3).all(|_| rate.admit(a, clock.monotonic())));
        assert!(!rate.admit(a, clock.monotonic()));
    }
}
