//! The revocation stream on the PDP (docs/revocations.md).
//!
//! Gateways and serving VMs subscribe over TLS 1.3 with the RFC 8998 suites,
//! presenting a certificate from the PDP's session CA (`[ca]`) whose OU is
//! `gateway` or `vm`. Each gets every unexpired revocation numbered after the
//! one it names, then each new one as soon as the store holds it (the
//! watcher reads the store and moves [`PdpContext::newest_revocation`];
//! a decision of this PDP wakes it at once), and a heartbeat every second.
//! It acknowledges what it applied; the store records the number per
//! subscriber. An acknowledgement of a number not sent is a protocol error
//! that ends the stream; one at or below the last is a replay, ignored.
//!
//! On the same port a gateway without a certificate yet enrols: its name, a
//! one-time token (`tnc-server gateway token`) and a PKCS#10 request for its
//! SM2 key; it gets a certificate (OU=gateway) and the CA's.
//!
//! The listener's own certificate is issued by `[ca]` at each start for a
//! new key, naming `[revocations] name`: subscribers trust the session CA
//! they already hold and check that name.

use crate::config::Revocations;
use crate::error::{ConfigError, DaemonError};
use crate::pdp::PdpContext;
use pki::ca::{LeafSpec, NameAttr, Usage};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tnc_proto::revocation::{Frame, FrameReader, RevokedTicket, ALPN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How often a subscriber hears from the PDP when nothing is revoked.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// TLS and the first frame must come within this.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed.
const MAX_CONNECTIONS: usize = 4096;
/// Pushed revocations whose acknowledgement is timed, per subscriber.
const PUSHED_TRACKED: usize = 1024;
/// Revocations read from the store at a time.
const BATCH: i64 = 256;
/// The lifetime of the listener's own certificate (issued at each start).
const LISTENER_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// The bound revocation listener.
pub struct Publisher {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: Arc<PdpContext>,
    gateway_lifetime: Duration,
}

impl Publisher {
    /// Binds `addr` with a certificate `[ca]` issues now.
    pub async fn bind(
        addr: SocketAddr,
        ctx: Arc<PdpContext>,
        settings: &Revocations,
    ) -> Result<Self, DaemonError> {
        let issuer = ctx.issuer.clone().ok_or_else(|| {
            ConfigError::new(
                "revocations.listen",
                "needs [ca]: subscribers authenticate with its certificates",
            )
        })?;
        let ca_error = |e: pki::ca::CaError| ConfigError::new("[ca] for [revocations]", e);
        let key = pki::ca::Sm2Key::generate().map_err(ca_error)?;
        let certificate = issuer
            .ca()
            .issue(
                &key.public_key(),
                &LeafSpec {
                    common_name: settings.name.clone(),
                    subject_extra: Vec::new(),
                    dns_names: vec![settings.name.clone()],
                    ips: Vec::new(),
                    usage: Usage::Server,
                    lifetime: LISTENER_LIFETIME,
                },
                std::time::SystemTime::now(),
            )
            .map_err(ca_error)?;
        let pem = key.to_pem().map_err(ca_error)?;
        let der = pki::ca::pem_or_der(pem.as_bytes()).map_err(ca_error)?;
        let provider = Arc::new(pki::tls::shangmi::strict_provider());
        let tls_error = |e: String| ConfigError::new("[revocations] TLS", e);
        let signing = pki::tls::OneKey::load(
            &provider,
            vec![CertificateDer::from(certificate)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        )
        .map_err(|e| tls_error(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(issuer.ca_certificate().to_vec()))
            .map_err(|e| tls_error(e.to_string()))?;
        // The CA signs every subscriber's certificate: its comb is kept.
        pki::tls::remember_sm2_anchors(&roots);
        // Gateways enrol before they hold a certificate.
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_error(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(signing));
        tls.alpn_protocols = vec![ALPN.to_vec()];
        pki::tls::full_handshakes_only(&mut tls);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| DaemonError::Listen {
                what: format!("{addr} (revocations.listen)"),
                error,
            })?;
        Ok(Self {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            ctx,
            gateway_lifetime: Duration::from_secs(settings.gateway_lifetime_secs),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves subscribers and enrolments until `shutdown`.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let me = Arc::new(self);
        loop {
            let (tcp, peer) = tokio::select! {
                a = me.listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocations: accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "revocations: {MAX_CONNECTIONS} connections open: closed");
                continue;
            };
            let (me, shutdown) = (me.clone(), shutdown.clone());
            tokio::spawn(async move {
                if let Err(why) = me.connection(tcp, peer, shutdown).await {
                    tracing::warn!(%peer, %why, "revocations: connection ended");
                }
                drop(slot);
            });
        }
    }

    async fn connection(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(FIRST_FRAME, self.acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS not finished in time: cut off".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
        let certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        let mut stream = Stream::new(tls);
        let first = tokio::time::timeout(FIRST_FRAME, stream.next())
            .await
            .map_err(|_| "no first frame in time: cut off".to_string())??;
        match (certificate, first) {
            (Some(cert), Some(Frame::Subscribe { after })) => {
                let (name, role) = match pki::ca::subject_cn_ou(&cert) {
                    Ok((Some(cn), Some(ou))) if ou == "vm" || ou == "gateway" => (cn, ou),
                    _ => {
                        return stream
                            .refuse("only gateways and VMs subscribe (a certificate with OU=gateway or OU=vm)")
                            .await
                    }
                };
                self.subscriber(stream, peer, &name, &role, after, shutdown)
                    .await
            }
            (None, Some(Frame::Enrol { name, token, csr })) => {
                self.enrol(stream, peer, &name, &token, &csr).await
            }
            (None, Some(Frame::Subscribe { .. })) => stream
                .refuse(
                    "subscribing needs a certificate from the PDP's CA (a gateway enrols first)",
                )
                .await,
            (Some(_), Some(Frame::Enrol { .. })) => {
                stream.refuse("enrol without a client certificate").await
            }
            (_, Some(other)) => {
                stream
                    .refuse(&format!(
                        "a {} frame first: subscribe or enrol",
                        other.name()
                    ))
                    .await
            }
            (_, None) => Ok(()),
        }
    }

    /// The stream to one subscriber.
    async fn subscriber<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: Stream<S>,
        peer: SocketAddr,
        name: &str,
        role: &str,
        after: i64,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let ctx = &self.ctx;
        tracing::info!(%peer, subscriber = name, role, after, "revocations: subscribed");
        let mut sent = after.max(0);
        let mut acked = after;
        // When each revocation not yet acknowledged was pushed, for the
        // metrics (bounded: a subscriber that never acknowledges is cut by
        // its own silence, but must not grow this meanwhile).
        let mut pushed: std::collections::VecDeque<(i64, std::time::Instant)> =
            std::collections::VecDeque::new();
        let mut newest = ctx.newest_revocation.subscribe();
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Read the store at the start and whenever the newest number moved,
        // not at each heartbeat or acknowledgement.
        let mut look = true;
        loop {
            // What the store holds beyond what was sent; expired tickets
            // need no refusing.
            while std::mem::take(&mut look) {
                let list = ctx
                    .store
                    .revocations_after(sent, BATCH)
                    .await
                    .map_err(|e| format!("reading revocations: {e}"))?;
                let now = ctx.now() as i64;
                for r in &list {
                    sent = r.seq;
                    if r.not_after <= now {
                        continue;
                    }
                    stream
                        .send(&Frame::Revoked(RevokedTicket {
                            seq: r.seq,
                            at: r.at,
                            device: r.device.clone(),
                            ticket: policy::digest::from_hex(&r.ticket).unwrap_or_default(),
                            certificate_sha256: policy::digest::from_hex(&r.certificate_sha256)
                                .unwrap_or_default(),
                            not_after: r.not_after,
                            reason: r.reason.clone(),
                        }))
                        .await?;
                    if pushed.len() == PUSHED_TRACKED {
                        pushed.pop_front();
                    }
                    pushed.push_back((r.seq, std::time::Instant::now()));
                }
                look = list.len() as i64 == BATCH;
            }
            tokio::select! {
                _ = newest.changed() => look = true,
                _ = beat.tick() => {
                    let newest = *newest.borrow();
                    stream.send(&Frame::Heartbeat { newest, at: ctx.now() as i64 }).await?;
                }
                frame = stream.next() => match frame? {
                    Some(Frame::Ack { seq }) if seq > sent => {
                        return stream
                            .refuse(&format!("acknowledges revocation {seq}, but only up to {sent} was sent"))
                            .await;
                    }
                    Some(Frame::Ack { seq }) if seq <= acked => {
                        tracing::warn!(%peer, subscriber = name, seq, acked, "revocations: a replayed acknowledgement, ignored");
                    }
                    Some(Frame::Ack { seq }) => {
                        acked = seq;
                        while pushed.front().is_some_and(|(s, _)| *s <= seq) {
                            if let Some((_, at)) = pushed.pop_front() {
                                ctx.metrics.revocation_acknowledged(at.elapsed());
                            }
                        }
                        if let Err(e) = ctx.store.record_ack(name, role, seq, ctx.now()).await {
                            tracing::warn!(error = %e, subscriber = name, "revocations: the acknowledgement is not recorded");
                        }
                        tracing::debug!(subscriber = name, seq, "revocations: acknowledged");
                    }
                    Some(other) => {
                        return stream.refuse(&format!("a {} frame from a subscriber", other.name())).await;
                    }
                    None => {
                        tracing::info!(%peer, subscriber = name, acked, "revocations: unsubscribed");
                        return Ok(());
                    }
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// A gateway's enrolment: the request checked, then the token used up,
    /// then its certificate.
    async fn enrol<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: Stream<S>,
        peer: SocketAddr,
        name: &str,
        token: &str,
        csr: &[u8],
    ) -> Result<(), String> {
        let ctx = &self.ctx;
        if !valid_gateway_name(name) {
            return stream
                .refuse("a gateway name is 1 to 64 letters, digits, '.', '-' or '_'")
                .await;
        }
        let request = match pki::ca::verify_request(csr) {
            Ok(r) => r,
            Err(e) => return stream.refuse(&format!("the request is refused: {e}")).await,
        };
        let Some(issuer) = &ctx.issuer else {
            return stream.refuse("this PDP has no CA").await;
        };
        let hash: [u8; 32] = policy::HashAlg::Sha256
            .digest(token.as_bytes())
            .try_into()
            .map_err(|_| "SHA-256 is 32 bytes".to_string())?;
        match ctx.store.take_enrolment_token(name, &hash, ctx.now()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%peer, gateway = name, "revocations: an enrolment with a wrong, used or expired token");
                return stream
                    .refuse(&format!(
                        "no such token for gateway {name}: wrong, used or expired (tnc-server gateway token makes one)"
                    ))
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "revocations: reading enrolment tokens");
                return stream
                    .refuse("the PDP could not check the token; try again")
                    .await;
            }
        }
        let certificate = issuer
            .ca()
            .issue_for_request(
                &request,
                &LeafSpec {
                    common_name: name.to_string(),
                    subject_extra: vec![(NameAttr::OrganizationalUnit, "gateway".into())],
                    // Its name as a DNS name: terminals reaching it over
                    // QUIC check it (serverAuth); it subscribes with it
                    // (clientAuth).
                    dns_names: vec![name.to_string()],
                    ips: Vec::new(),
                    usage: Usage::ServerAndClient,
                    lifetime: self.gateway_lifetime,
                },
                std::time::SystemTime::now(),
            )
            .map_err(|e| format!("issuing a gateway certificate: {e}"))?;
        tracing::info!(%peer, gateway = name, "revocations: gateway enrolled");
        stream
            .send(&Frame::Enrolled {
                certificate,
                ca: issuer.ca_certificate().to_vec(),
            })
            .await?;
        stream.close().await;
        Ok(())
    }
}

/// What `tnc-server gateway token` and enrolment accept as a gateway's name.
pub fn valid_gateway_name(name: &str) -> bool {
    crate::certs::valid_name(name)
}

/// Frames over one TLS stream.
struct Stream<S> {
    io: S,
    reader: FrameReader,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            reader: FrameReader::default(),
            buf: vec![0; 8192],
        }
    }

    /// The next frame; None when the peer closed. Cancel-safe: bytes are
    /// kept in the reader between calls.
    async fn next(&mut self) -> Result<Option<Frame>, String> {
        loop {
            if let Some(f) = self.reader.next_frame().map_err(|e| e.to_string())? {
                return Ok(Some(f));
            }
            let n = self
                .io
                .read(&mut self.buf)
                .await
                .map_err(|e| format!("reading: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
            self.reader.push(&self.buf[..n]);
        }
    }

    async fn send(&mut self, f: &Frame) -> Result<(), String> {
        self.io
            .write_all(&f.encode())
            .await
            .map_err(|e| format!("writing: {e}"))?;
        self.io.flush().await.map_err(|e| format!("writing: {e}"))
    }

    /// An Error frame saying `why`, then the end of the stream.
    async fn refuse(&mut self, why: &str) -> Result<(), String> {
        let _ = self
            .send(&Frame::Error {
                message: why.to_string(),
            })
            .await;
        self.close().await;
        Err(why.to_string())
    }

    async fn close(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gateway_names_are_plain() {
        assert!(super::valid_gateway_name("gw-1.example_a"));
        for bad in ["", "a b", "gw/1", "gw\n", &"g".repeat(65), "ü"] {
            assert!(!super::valid_gateway_name(bad), "{bad:?}");
        }
    }
}
