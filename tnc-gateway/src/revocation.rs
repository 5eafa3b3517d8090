//! The subscriber's side of the revocation stream (docs/revocations.md), as
//! a serving VM (with its channel certificate) and the network access
//! gateway (with its enrolled one) run it.
//!
//! [`Revoked`] is what a subscriber knows: the revoked tickets and
//! certificates (until they expire), the connections it carries for each
//! ticket, and when it last heard from the PDP. [`subscribe`] keeps it up to
//! date: connects, asks for everything after the last number applied,
//! applies each revocation (recording it and cutting every live connection
//! of that ticket or certificate) before acknowledging it, and reconnects
//! after any failure.

use pki::tls::OneKey;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tnc_proto::revocation::{Frame, FrameReader, RevokedTicket, ALPN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stream that brings nothing (not even a heartbeat) for this long is
/// given up.
pub const SILENCE: Duration = Duration::from_secs(5);

/// What a subscriber knows of revocations, and the connections it carries.
#[derive(Debug, Default)]
pub struct Revoked {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Revoked ticket ids -> (expiry, reason).
    tickets: HashMap<Vec<u8>, (i64, String)>,
    /// SHA-256 of revoked certificates -> (expiry, reason).
    certificates: HashMap<Vec<u8>, (i64, String)>,
    /// The last revocation applied.
    last_seq: i64,
    /// When the PDP was last heard (a frame of any kind).
    heard: Option<Instant>,
    live: HashMap<u64, Live>,
    next_id: u64,
}

#[derive(Debug)]
struct Live {
    ticket: Vec<u8>,
    certificate: Vec<u8>,
    cut: Option<tokio::sync::oneshot::Sender<String>>,
}

/// A connection carried for a ticket: cut when the ticket or its
/// certificate is revoked; forgotten when dropped.
#[derive(Debug)]
pub struct Tracked {
    set: Arc<Revoked>,
    id: u64,
    cut: tokio::sync::oneshot::Receiver<String>,
}

impl Tracked {
    /// Resolves with the reason when the connection must be cut.
    pub async fn cut(&mut self) -> String {
        match (&mut self.cut).await {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.set.lock().live.remove(&self.id);
    }
}

impl Revoked {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why `ticket` (its id) or the certificate it is bound to (SHA-256)
    /// is refused, if it is revoked.
    pub fn check(&self, ticket: &[u8], certificate_sha256: &[u8]) -> Result<(), String> {
        let inner = self.lock();
        inner.refusal(ticket, certificate_sha256)
    }

    /// Carries a connection for `ticket`, unless it is revoked: checked
    /// and registered at once, so a revocation cannot slip in between.
    pub fn track(
        self: &Arc<Self>,
        ticket: &[u8],
        certificate_sha256: &[u8],
    ) -> Result<Tracked, String> {
        let mut inner = self.lock();
        inner.refusal(ticket, certificate_sha256)?;
        let id = inner.next_id;
        inner.next_id += 1;
        let (tx, rx) = tokio::sync::oneshot::channel();
        inner.live.insert(
            id,
            Live {
                ticket: ticket.to_vec(),
                certificate: certificate_sha256.to_vec(),
                cut: Some(tx),
            },
        );
        Ok(Tracked {
            set: self.clone(),
            id,
            cut: rx,
        })
    }

    /// Records `r` and cuts every live connection of its ticket or
    /// certificate; how many were cut. Entries expired at `now` are
    /// forgotten.
    pub fn apply(&self, r: &RevokedTicket, now: i64) -> usize {
        let mut inner = self.lock();
        inner.tickets.retain(|_, (exp, _)| *exp > now);
        inner.certificates.retain(|_, (exp, _)| *exp > now);
        inner
            .tickets
            .insert(r.ticket.clone(), (r.not_after, r.reason.clone()));
        inner.certificates.insert(
            r.certificate_sha256.clone(),
            (r.not_after, r.reason.clone()),
        );
        inner.last_seq = inner.last_seq.max(r.seq);
        let mut cut = 0;
        for live in inner.live.values_mut() {
            if live.ticket == r.ticket || live.certificate == r.certificate_sha256 {
                if let Some(tx) = live.cut.take() {
                    let _ = tx.send(format!("ticket revoked: {}", r.reason));
                    cut += 1;
                }
            }
        }
        cut
    }

    /// The last revocation number applied (0: none).
    pub fn last_seq(&self) -> i64 {
        self.lock().last_seq
    }

    /// The next subscription asks for every revocation again (what is known
    /// stays refused).
    pub fn start_over(&self) {
        self.lock().last_seq = 0;
    }

    /// The PDP was heard from now.
    fn heard(&self) {
        self.lock().heard = Some(Instant::now());
    }

    /// How long since the PDP was last heard from; None: never.
    pub fn silence(&self) -> Option<Duration> {
        self.lock().heard.map(|h| h.elapsed())
    }

    /// Connections carried now.
    pub fn live(&self) -> usize {
        self.lock().live.len()
    }

    /// Tickets known to be revoked (and not expired when last pruned).
    pub fn revoked_tickets(&self) -> usize {
        self.lock().tickets.len()
    }
}

impl Inner {
    fn refusal(&self, ticket: &[u8], certificate_sha256: &[u8]) -> Result<(), String> {
        if let Some((_, why)) = self
            .tickets
            .get(ticket)
            .or_else(|| self.certificates.get(certificate_sha256))
        {
            return Err(format!("revoked: {why}"));
        }
        Ok(())
    }
}

/// Where and how a subscriber reaches the PDP's revocation stream.
#[derive(Clone)]
pub struct Subscription {
    pub addr: SocketAddr,
    /// Further PDPs on the same store, tried in turn when the stream is
    /// lost (each pushes every revocation of the store).
    pub fallbacks: Vec<SocketAddr>,
    /// A stream silent this long is given up ([`SILENCE`]).
    pub silence: Duration,
    /// The name on the listener's certificate (`[revocations] name`).
    pub server_name: String,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Subscription {
    /// Strict ShangMi TLS trusting the session CA `ca` (DER), presenting
    /// `key` (a certificate the CA issued, OU=vm or gateway).
    pub fn new(
        addr: SocketAddr,
        server_name: &str,
        ca: &[u8],
        key: Arc<OneKey>,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.to_vec()))
            .map_err(|e| format!("the session CA: {e}"))?;
        let config = pki::tls::client_config_with_key(
            Arc::new(pki::tls::shangmi::strict_provider()),
            roots,
            key,
        )
        .map_err(|e| e.to_string())?;
        let mut config = Arc::unwrap_or_clone(config);
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Self {
            addr,
            fallbacks: Vec::new(),
            silence: SILENCE,
            server_name: server_name.to_string(),
            tls: Arc::new(config),
        })
    }

    /// The PDP to try after `tries` failures: the first, then the
    /// fallbacks, round and round.
    fn target(&self, tries: usize) -> SocketAddr {
        match tries % (1 + self.fallbacks.len()) {
            0 => self.addr,
            i => self.fallbacks[i - 1],
        }
    }
}

/// What a subscriber tells its owner (for its log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Subscribed, asking for everything after this number.
    Connected { after: i64 },
    /// A revocation applied and acknowledged; the connections it cut.
    Revoked { ticket: RevokedTicket, cut: usize },
    /// The stream ended (or never began); reconnecting.
    Lost(String),
}

/// Keeps `set` up to date from the PDP, forever: reconnects after each
/// failure (0.5 s, doubling to 5 s). Each revocation is applied before it
/// is acknowledged.
pub async fn subscribe(
    sub: Subscription,
    set: Arc<Revoked>,
    notices: Option<tokio::sync::mpsc::UnboundedSender<Notice>>,
) {
    let mut backoff = Duration::from_millis(500);
    let tell = |n: Notice| {
        if let Some(tx) = &notices {
            let _ = tx.send(n);
        }
    };
    let mut tries = 0usize;
    loop {
        let started = Instant::now();
        let pdp = sub.target(tries);
        let why = match run_once_at(&sub, pdp, &set, &tell).await {
            Ok(()) => "the PDP closed the stream".to_string(),
            Err(e) => e,
        };
        tries += 1;
        tracing::warn!(%pdp, %why, next = %sub.target(tries), "revocation stream lost: reconnecting");
        tell(Notice::Lost(why));
        // A stream that ran a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(500);
        }
        // Each PDP once at once; a whole turn that failed waits.
        if tries.is_multiple_of(1 + sub.fallbacks.len()) {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// One connection of [`subscribe`] to its first PDP: until the stream ends
/// (Ok: the PDP closed it) or fails (why).
pub async fn run_once(
    sub: &Subscription,
    set: &Revoked,
    tell: &impl Fn(Notice),
) -> Result<(), String> {
    run_once_at(sub, sub.addr, set, tell).await
}

async fn run_once_at(
    sub: &Subscription,
    pdp: SocketAddr,
    set: &Revoked,
    tell: &impl Fn(Notice),
) -> Result<(), String> {
    let name = ServerName::try_from(sub.server_name.clone())
        .map_err(|e| format!("server name {:?}: {e}", sub.server_name))?;
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(pdp))
        .await
        .map_err(|_| format!("connecting to {pdp}: timed out"))?
        .map_err(|e| format!("connecting to {pdp}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(sub.tls.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS: timed out".to_string())?
    .map_err(|e| format!("TLS: {e}"))?;
    let after = set.last_seq();
    tls.write_all(&Frame::Subscribe { after }.encode())
        .await
        .map_err(|e| e.to_string())?;
    tell(Notice::Connected { after });
    let mut reader = FrameReader::default();
    let mut buf = vec![0u8; 8192];
    loop {
        // The PDP sends a heartbeat every second: a stream silent for
        // longer than SILENCE is given up (a PDP gone without closing it),
        // and the next PDP tried.
        let n = tokio::time::timeout(sub.silence, tls.read(&mut buf))
            .await
            .map_err(|_| format!("nothing from the PDP for {:?}", sub.silence))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        reader.push(&buf[..n]);
        while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
            set.heard();
            match frame {
                Frame::Revoked(r) => {
                    let cut = set.apply(&r, unix_now());
                    tls.write_all(&Frame::Ack { seq: r.seq }.encode())
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::info!(
                        seq = r.seq,
                        device = %r.device,
                        cut,
                        reason = %r.reason,
                        "ticket revoked"
                    );
                    tell(Notice::Revoked { ticket: r, cut });
                }
                // A store behind what was applied (restored from a backup):
                // start over from 0 rather than wait for numbers already seen.
                Frame::Heartbeat { newest, .. } if newest < set.last_seq() => {
                    let had = set.last_seq();
                    set.start_over();
                    return Err(format!(
                        "the PDP's newest revocation is {newest}, below the {had} applied here: subscribing again from the start"
                    ));
                }
                Frame::Heartbeat { .. } => {}
                Frame::Error { message } => return Err(format!("the PDP refused: {message}")),
                other => {
                    return Err(format!("the PDP sent a {} frame", other.name()));
                }
            }
        }
        tls.flush().await.map_err(|e| e.to_string())?;
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(seq: i64, ticket: u8, cert: u8, not_after: i64) -> RevokedTicket {
        RevokedTicket {
            seq,
            at: 100,
            device: "dev".into(),
            ticket: vec![ticket; 16],
            certificate_sha256: vec![cert; 32],
            not_after,
            reason: "isolate: x".into(),
        }
    }

    #[tokio::test]
    async fn a_revocation_cuts_the_connections_of_its_ticket_or_certificate_only() {
        let set = Revoked::new();
        let mut a = set.track(&[1; 16], &[10; 32]).unwrap();
        let mut same_cert = set.track(&[2; 16], &[10; 32]).unwrap();
        let mut other = set.track(&[3; 16], &[30; 32]).unwrap();
        assert_eq!(set.live(), 3);
        assert_eq!(set.apply(&revoked(5, 1, 10, 1000), 100), 2);
        assert_eq!(a.cut().await, "ticket revoked: isolate: x");
        assert_eq!(same_cert.cut().await, "ticket revoked: isolate: x");
        let still = tokio::time::timeout(Duration::from_millis(50), other.cut()).await;
        assert!(still.is_err(), "another ticket's connection stays");
        assert_eq!(set.last_seq(), 5);
        // New connections with the revoked ticket or certificate: refused.
        assert!(set.track(&[1; 16], &[99; 32]).is_err());
        assert!(set.check(&[9; 16], &[10; 32]).is_err());
        assert!(set.check(&[3; 16], &[30; 32]).is_ok());
        drop((a, same_cert));
        assert_eq!(set.live(), 1);
        // Expired entries are forgotten at the next revocation.
        set.apply(&revoked(6, 4, 40, 2000), 1500);
        assert_eq!(set.revoked_tickets(), 1);
        assert!(set.check(&[1; 16], &[10; 32]).is_ok());
    }
}
