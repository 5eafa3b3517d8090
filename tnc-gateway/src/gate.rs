//! The gateway proper: admissions checked offline, connections relayed, cut
//! when their ticket is revoked.
//!
//! A connection's first frame is a [`tnc_proto::gateway::Admission`] (the VM
//! and the terminal's access ticket), within `first_frame_secs`. It is
//! admitted when the gateway has heard from its PDP within the grace period
//! (or is configured to fail open), the ticket verifies with the session
//! CA's key and is valid now, names the VM, the VM is one the gateway knows,
//! the ticket and its certificate are not revoked, and no limit is reached
//! (per ticket, per source address, in total); then the gateway connects to
//! the VM, answers 0, and relays bytes both ways until either side closes,
//! the connection is silent both ways for `idle_secs`, or a revocation of
//! its ticket or certificate cuts it. Each refusal is a log line and the
//! answer byte of its [`Refusal`].

use crate::config::Limits;
use crate::revocation::{Revoked, Tracked};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tnc_proto::gateway::{Admission, Refusal, MAX_ADMISSION};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the gateway waits to connect to a VM.
const VM_CONNECT: Duration = Duration::from_secs(5);

/// The gateway's state: what it checks tickets with, where VMs are, what is
/// revoked, and the connections it carries.
pub struct Gateway {
    ca_key: pki::ca::Sm2PublicKey,
    vms: BTreeMap<String, SocketAddr>,
    limits: Limits,
    revoked: Arc<Revoked>,
    counts: Mutex<Counts>,
    /// What `[metrics] listen` serves.
    pub metrics: crate::metrics::GatewayMetrics,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ticket: HashMap<Vec<u8>, usize>,
    per_source: HashMap<IpAddr, usize>,
}

/// One connection's place in the limits, from its accept (in the total and
/// its source's share, so that connections that never send an admission
/// cannot pile up) and, once admitted, in its ticket's share; given back
/// on drop.
struct Slot<'g> {
    gateway: &'g Gateway,
    source: IpAddr,
    ticket: Option<Vec<u8>>,
}

impl Slot<'_> {
    /// Counts the connection in `ticket`'s share too, or says why not.
    fn for_ticket(&mut self, ticket: &[u8]) -> Result<(), &'static str> {
        let mut c = self.gateway.lock();
        if c.per_ticket.get(ticket).copied().unwrap_or(0) >= self.gateway.limits.per_ticket {
            return Err("connections per ticket");
        }
        *c.per_ticket.entry(ticket.to_vec()).or_default() += 1;
        self.ticket = Some(ticket.to_vec());
        Ok(())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut c = self.gateway.lock();
        c.total -= 1;
        release(&mut c.per_source, &self.source);
        if let Some(t) = &self.ticket {
            release(&mut c.per_ticket, t);
        }
    }
}

/// One connection less for `key`; the entry goes with the last.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// What an admission checked out to.
pub struct Admitted {
    pub vm: SocketAddr,
    pub device: String,
    pub ticket: Vec<u8>,
    tracked: Tracked,
}

impl Gateway {
    /// A gateway checking tickets against the session CA certificate `ca`
    /// (DER), reaching `vms`, within `limits`, with what `revoked` knows.
    pub fn new(
        ca: &[u8],
        vms: BTreeMap<String, SocketAddr>,
        limits: Limits,
        revoked: Arc<Revoked>,
    ) -> Result<Self, String> {
        let ca_key = pki::ca::certificate_public_key(ca)
            .map_err(|e| format!("the session CA certificate: {e}"))?;
        Ok(Self {
            ca_key,
            vms,
            limits,
            revoked,
            counts: Mutex::default(),
            metrics: Default::default(),
        })
    }

    /// The metrics' text, with what the gateway knows now.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(
            self.available(),
            self.revoked.revoked_tickets(),
            self.revoked.last_seq(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections carried now.
    pub fn carried(&self) -> usize {
        self.lock().total
    }

    /// Whether the gateway admits anyone now: it heard from its PDP within
    /// the grace period, or fails open.
    pub fn available(&self) -> bool {
        self.limits.fail_open
            || self
                .revoked
                .silence()
                .is_some_and(|s| s <= self.limits.pdp_grace())
    }

    /// The checks of an admission that need no I/O, at `now` (Unix s).
    pub fn admit(&self, a: &Admission, now: i64) -> Result<Admitted, Refusal> {
        if !self.available() {
            return Err(Refusal::Unavailable);
        }
        let claims = match pki::ticket::verify(&a.ticket, &self.ca_key, now) {
            Ok(c) => c,
            Err(pki::ticket::TicketError::Expired { .. }) => return Err(Refusal::Expired),
            Err(_) => return Err(Refusal::BadTicket),
        };
        if !claims.vms.iter().any(|v| v == &a.vm) {
            return Err(Refusal::NotForVm);
        }
        let vm = *self.vms.get(&a.vm).ok_or(Refusal::UnknownVm)?;
        let tracked = self
            .revoked
            .track(&claims.id, &claims.certificate_sha256)
            .map_err(|_| Refusal::Revoked)?;
        Ok(Admitted {
            vm,
            device: claims.device,
            ticket: claims.id,
            tracked,
        })
    }

    /// A place within the limits for a connection from `source`, or why
    /// not.
    fn slot(&self, source: IpAddr) -> Result<Slot<'_>, &'static str> {
        let mut c = self.lock();
        if c.total >= self.limits.total {
            return Err("the gateway's total");
        }
        if c.per_source.get(&source).copied().unwrap_or(0) >= self.limits.per_source {
            return Err("connections per source address");
        }
        c.total += 1;
        *c.per_source.entry(source).or_default() += 1;
        Ok(Slot {
            gateway: self,
            source,
            ticket: None,
        })
    }

    /// Serves terminals on `listener` until `shutdown` turns true.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let (tcp, peer) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let me = self.clone();
            tokio::spawn(async move { me.connection(tcp, peer).await });
        }
    }

    /// Serves terminals' QUIC connections on `endpoint` until `shutdown`:
    /// each one's first bidirectional stream carries the framing and then
    /// the channel, as a TCP connection does.
    pub async fn run_quic(
        self: Arc<Self>,
        endpoint: quinn::Endpoint,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let incoming = tokio::select! {
                i = endpoint.accept() => match i {
                    Some(i) => i,
                    None => return,
                },
                _ = shutdown.changed() => return,
            };
            let me = self.clone();
            tokio::spawn(async move {
                let peer = incoming.remote_address();
                let first_frame = me.limits.first_frame();
                let opened = tokio::time::timeout(first_frame, async {
                    let conn = incoming.await.map_err(|e| e.to_string())?;
                    let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                    Ok::<_, String>((conn, send, recv))
                })
                .await;
                let (conn, send, recv) = match opened {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "QUIC connection ended before its stream");
                        return;
                    }
                    Err(_) => {
                        me.metrics.silent();
                        tracing::info!(%peer, "no QUIC stream within {} s: cut off", me.limits.first_frame_secs);
                        return;
                    }
                };
                me.handle(tokio::io::join(recv, send), peer).await;
                // The terminal closes once it read the last bytes (a
                // refusal code, say); closing first could drop them.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            });
        }
    }

    /// One terminal's connection, start to end.
    pub async fn connection(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        self.handle(tcp, peer).await
    }

    /// A terminal's stream (TCP, or a QUIC stream), start to end.
    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(&self, mut tcp: S, peer: SocketAddr) {
        // Connections still sending their admission count in the total and
        // their source's share too, so that a flood of silent ones cannot
        // pile up.
        let mut slot = match self.slot(peer.ip()) {
            Ok(s) => s,
            Err(which) => return refuse_at_once(&self.metrics, tcp, peer, which).await,
        };
        let mut buf = Vec::with_capacity(1024);
        let admission = tokio::time::timeout(
            self.limits.first_frame(),
            read_admission(&mut tcp, &mut buf),
        )
        .await;
        let (admission, used) = match admission {
            Err(_) => {
                self.metrics.silent();
                tracing::info!(%peer, "no admission within {} s: cut off", self.limits.first_frame_secs);
                return;
            }
            Ok(Err(None)) => return,
            Ok(Err(Some(refusal))) => {
                return refuse(&self.metrics, tcp, peer, None, refusal, "").await
            }
            Ok(Ok(a)) => a,
        };
        let now = unix_now();
        let admitted = match self.admit(&admission, now) {
            Ok(a) => a,
            Err(refusal) => {
                return refuse(&self.metrics, tcp, peer, Some(&admission.vm), refusal, "").await
            }
        };
        if let Err(which) = slot.for_ticket(&admitted.ticket) {
            return refuse(
                &self.metrics,
                tcp,
                peer,
                Some(&admission.vm),
                Refusal::Busy,
                which,
            )
            .await;
        }
        let vm = match tokio::time::timeout(VM_CONNECT, TcpStream::connect(admitted.vm)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let why = e.to_string();
                return refuse(
                    &self.metrics,
                    tcp,
                    peer,
                    Some(&admission.vm),
                    Refusal::Unreachable,
                    &why,
                )
                .await;
            }
            Err(_) => {
                return refuse(
                    &self.metrics,
                    tcp,
                    peer,
                    Some(&admission.vm),
                    Refusal::Unreachable,
                    "timed out",
                )
                .await;
            }
        };
        let _ = vm.set_nodelay(true);
        if tcp.write_all(&[0]).await.is_err() {
            return;
        }
        let ticket = short(&admitted.ticket);
        tracing::info!(%peer, vm = %admission.vm, device = %admitted.device, %ticket, "admitted");
        let _relayed = self.metrics.admitted();
        let Admitted {
            device,
            mut tracked,
            ..
        } = admitted;
        let rest = buf[used..].to_vec();
        let ended = relay(tcp, vm, &rest, self.limits.idle(), &mut tracked).await;
        self.metrics.ended(ended.label());
        match ended {
            Ended::Closed { up, down } => {
                tracing::info!(%peer, vm = %admission.vm, %device, %ticket, up, down, "closed")
            }
            Ended::Idle => tracing::info!(
                %peer, vm = %admission.vm, %device, %ticket,
                "silent for {} s both ways: cut", self.limits.idle_secs
            ),
            Ended::Stalled => tracing::info!(
                %peer, vm = %admission.vm, %device, %ticket,
                "a side took no bytes for {} s: cut", self.limits.idle_secs
            ),
            Ended::Cut(why) => {
                tracing::warn!(%peer, vm = %admission.vm, %device, %ticket, %why, "cut")
            }
            Ended::Failed(e) => {
                tracing::info!(%peer, vm = %admission.vm, %device, %ticket, error = %e, "ended")
            }
        }
    }
}

/// The admission at the start of the stream, and the bytes it took of
/// `buf` (what follows belongs to the channel). Err(None): the peer left.
async fn read_admission<S: AsyncRead + Unpin>(
    tcp: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(Admission, usize), Option<Refusal>> {
    let mut chunk = [0u8; 4096];
    loop {
        match Admission::parse(buf) {
            Ok(Some(a)) => return Ok(a),
            Ok(None) => {}
            Err(r) => return Err(Some(r)),
        }
        if buf.len() >= MAX_ADMISSION {
            return Err(Some(Refusal::Malformed));
        }
        let want = (MAX_ADMISSION - buf.len()).min(chunk.len());
        let n = tcp.read(&mut chunk[..want]).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn refuse<S: AsyncWrite + Unpin>(
    metrics: &crate::metrics::GatewayMetrics,
    mut tcp: S,
    peer: SocketAddr,
    vm: Option<&str>,
    refusal: Refusal,
    detail: &str,
) {
    metrics.refused(refusal);
    tracing::info!(
        %peer,
        vm = vm.unwrap_or("-"),
        code = refusal as u8,
        detail,
        "refused: {refusal}"
    );
    let _ = tcp.write_all(&[refusal as u8]).await;
    let _ = tcp.shutdown().await;
}

/// [`refuse`] with Busy before the admission was read: the terminal's
/// admission is read and dropped for a moment after, so that closing on
/// unread bytes (a TCP reset) does not destroy the answer before the
/// terminal reads it.
async fn refuse_at_once<S: AsyncRead + AsyncWrite + Unpin>(
    metrics: &crate::metrics::GatewayMetrics,
    mut tcp: S,
    peer: SocketAddr,
    which: &str,
) {
    metrics.refused(Refusal::Busy);
    tracing::info!(
        %peer,
        code = Refusal::Busy as u8,
        detail = which,
        "refused before its admission: {}",
        Refusal::Busy
    );
    let _ = tcp.write_all(&[Refusal::Busy as u8]).await;
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// How a relay ended.
#[derive(Debug)]
enum Ended {
    /// Both sides closed; bytes terminal -> VM and back.
    Closed {
        up: u64,
        down: u64,
    },
    Idle,
    /// A peer took no bytes for the idle time (a write waited for it).
    Stalled,
    Cut(String),
    Failed(std::io::Error),
}

impl Ended {
    /// Its `how` in the metrics; `revoked`: cut on a revocation.
    fn label(&self) -> &'static str {
        match self {
            Ended::Closed { .. } => "closed",
            Ended::Idle => "idle",
            Ended::Stalled => "stalled",
            Ended::Cut(_) => "revoked",
            Ended::Failed(_) => "failed",
        }
    }
}

/// Relays `a` (the terminal; `early` already read from it) and `b` (the
/// VM) until both closed, they were silent for `idle`, or `tracked` is cut.
/// The cut races everything, writes included: a peer that stops reading
/// (its side's buffers full, a write waiting) is cut on time all the same,
/// and a write that waits `idle` for its peer counts as silence.
async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    a: S,
    b: TcpStream,
    early: &[u8],
    idle: Duration,
    tracked: &mut Tracked,
) -> Ended {
    let pump = async {
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = b.into_split();
        if let Err(ended) = pass(&mut bw, early, idle).await {
            return ended;
        }
        let (mut up, mut down) = (early.len() as u64, 0u64);
        let (mut a_open, mut b_open) = (true, true);
        let mut abuf = vec![0u8; 16 * 1024];
        let mut bbuf = vec![0u8; 16 * 1024];
        let mut last = tokio::time::Instant::now();
        while a_open || b_open {
            tokio::select! {
                r = ar.read(&mut abuf), if a_open => match r {
                    Ok(0) => {
                        a_open = false;
                        let _ = tokio::time::timeout(idle, bw.shutdown()).await;
                    }
                    Ok(n) => {
                        if let Err(ended) = pass(&mut bw, &abuf[..n], idle).await {
                            return ended;
                        }
                        up += n as u64;
                        last = tokio::time::Instant::now();
                    }
                    Err(e) => return Ended::Failed(e),
                },
                r = br.read(&mut bbuf), if b_open => match r {
                    Ok(0) => {
                        b_open = false;
                        let _ = tokio::time::timeout(idle, aw.shutdown()).await;
                    }
                    Ok(n) => {
                        if let Err(ended) = pass(&mut aw, &bbuf[..n], idle).await {
                            return ended;
                        }
                        down += n as u64;
                        last = tokio::time::Instant::now();
                    }
                    Err(e) => return Ended::Failed(e),
                },
                () = tokio::time::sleep_until(last + idle) => return Ended::Idle,
            }
        }
        Ended::Closed { up, down }
    };
    tokio::select! {
        ended = pump => ended,
        why = tracked.cut() => Ended::Cut(why),
    }
}

/// Writes `bytes` to a relay's side, which has `idle` to take them.
async fn pass<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8], idle: Duration) -> Result<(), Ended> {
    match tokio::time::timeout(idle, w.write_all(bytes)).await {
        Err(_) => Err(Ended::Stalled),
        Ok(Err(e)) => Err(Ended::Failed(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// The first bytes of a ticket id, for log lines.
fn short(id: &[u8]) -> String {
    pki::alg::hex(&id[..id.len().min(4)])
}

/// Warn this long before the gateway's certificate expires.
const EXPIRY_WARNING_SECS: i64 = 7 * 24 * 3600;

/// What the log should say of a certificate valid until `not_after`, at
/// `now`: a warning within [`EXPIRY_WARNING_SECS`] of expiry, an error once
/// expired (the PDP refuses it: no revocations, so the gateway fails
/// closed), nothing before.
fn expiry_notice(now: i64, not_after: i64) -> Option<(tracing::Level, String)> {
    const RENEW: &str =
        "enrol again: `tnc-server gateway token NAME` on the PDP, then `tnc-gateway enrol`";
    let left = not_after - now;
    if left <= 0 {
        Some((
            tracing::Level::ERROR,
            format!(
                "the gateway's certificate expired {} h ago: {RENEW}",
                -left / 3600
            ),
        ))
    } else if left <= EXPIRY_WARNING_SECS {
        Some((
            tracing::Level::WARN,
            format!(
                "the gateway's certificate expires in {} h: {RENEW}",
                left / 3600
            ),
        ))
    } else {
        None
    }
}

/// Says at start when the certificate expires, then looks again hourly.
async fn watch_expiry(not_after: i64) {
    tracing::info!(not_after, "gateway certificate valid until (unix seconds)");
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match expiry_notice(unix_now(), not_after) {
            Some((tracing::Level::ERROR, m)) => tracing::error!("{m}"),
            Some((_, m)) => tracing::warn!("{m}"),
            None => {}
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A gateway started from its configuration.
pub struct Running {
    /// Where terminals connect.
    pub addr: SocketAddr,
    /// And over QUIC, if configured.
    pub quic_addr: Option<SocketAddr>,
    /// Where Prometheus scrapes, if configured.
    pub metrics_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    /// What it knows of revocations (and when it last heard the PDP).
    pub revoked: Arc<Revoked>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and subscribing (carried connections end with the
    /// process, or when their peers close).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Starts the gateway `config` describes: its enrolled identity, the
/// subscription to the PDP's revocations, the listener.
pub async fn start(config: &crate::config::GatewayConfig) -> Result<Running, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let read = |key: &str, p: &std::path::Path| -> Result<Vec<u8>, String> {
        let path = config.path(p);
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "identity.{key} {}: {e} (tnc-gateway enrol writes the certificate and key)",
                path.display()
            )
        })?;
        pki::ca::pem_or_der(&bytes).map_err(|e| format!("identity.{key} {}: {e}", path.display()))
    };
    let ca = read("ca", &config.identity.ca)?;
    let certificate = read("certificate", &config.identity.certificate)?;
    let key_path = config.path(&config.identity.private_key);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .map_err(|e| format!("identity.private_key {}: {e}", key_path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "identity.private_key {} is readable by others (mode {:o}): chmod 600 it",
                key_path.display(),
                mode & 0o777
            ));
        }
    }
    let key = read("private_key", &config.identity.private_key)?;
    pki::ca::verify_issued_by(&certificate, &ca, unix_now())
        .map_err(|e| format!("identity.certificate: {e} (enrol again)"))?;
    let not_after = pki::ca::describe(&certificate)
        .map_err(|e| format!("identity.certificate: {e}"))?
        .not_after;
    let signing = pki::tls::OneKey::load(
        &pki::tls::shangmi::strict_provider(),
        vec![CertificateDer::from(certificate)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    )
    .map_err(|e| format!("identity: {e}"))?;
    let mut pdps = Vec::new();
    for at in config.pdp.revocations.all() {
        pdps.push(
            tokio::net::lookup_host(&at)
                .await
                .map_err(|e| format!("pdp.revocations {at:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("pdp.revocations {at:?}: no address"))?,
        );
    }
    let signing = Arc::new(signing);
    let mut sub =
        crate::revocation::Subscription::new(pdps[0], &config.pdp.name, &ca, signing.clone())?;
    sub.fallbacks = pdps[1..].to_vec();
    let revoked = Revoked::new();
    let gateway = Arc::new(Gateway::new(
        &ca,
        config.vms.clone(),
        config.limits.clone(),
        revoked.clone(),
    )?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(crate::revocation::subscribe(sub, revoked.clone(), None)),
        tokio::spawn(gateway.clone().run(listener, stopped.clone())),
        tokio::spawn(watch_expiry(not_after)),
    ];
    let mut metrics_addr = None;
    if let Some(at) = config.metrics.listen {
        let listener = TcpListener::bind(at)
            .await
            .map_err(|e| format!("metrics.listen {at}: {e}"))?;
        metrics_addr = Some(listener.local_addr().map_err(|e| e.to_string())?);
        tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            gateway.clone(),
            stopped.clone(),
        )));
    }
    let mut quic_addr = None;
    if let Some(at) = config.listen_quic {
        // The terminal checks the gateway's enrolled certificate (its name
        // as a DNS name, from the session CA); its own identity runs end to
        // end to the VM inside.
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            pki::tls::shangmi::strict_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(signing.clone());
        pki::tls::full_handshakes_only(&mut tls);
        let server = pki::tls::quic_server_config(&tls, tnc_proto::gateway::QUIC_ALPN)
            .map_err(|e| format!("listen_quic: {e}"))?;
        let endpoint =
            quinn::Endpoint::server(server, at).map_err(|e| format!("listen_quic {at}: {e}"))?;
        quic_addr = Some(endpoint.local_addr().map_err(|e| e.to_string())?);
        tasks.push(tokio::spawn(gateway.clone().run_quic(endpoint, stopped)));
    }
    Ok(Running {
        addr,
        quic_addr,
        metrics_addr,
        gateway,
        revoked,
        stop,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_expiry_is_said_within_a_week_and_once_past() {
        let day = 24 * 3600;
        assert_eq!(expiry_notice(0, 8 * day), None);
        let (level, said) = expiry_notice(0, 7 * day).unwrap();
        assert_eq!(level, tracing::Level::WARN);
        assert!(said.contains("expires in 168 h"), "{said}");
        assert!(said.contains("tnc-gateway enrol"), "{said}");
        let (level, said) = expiry_notice(2 * day, day).unwrap();
        assert_eq!(level, tracing::Level::ERROR);
        assert!(said.contains("expired 24 h ago"), "{said}");
        assert_eq!(expiry_notice(day, day).unwrap().0, tracing::Level::ERROR);
    }
}
