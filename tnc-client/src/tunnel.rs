//! The ShangMi channel between a terminal and a VM, first slice: strict
//! RFC 8998 TLS 1.3 over TCP with mutual certificates from the PDP's
//! session CA, the terminal's access ticket as the first frame, then bytes
//! relayed both ways.
//!
//! - The terminal checks the VM's certificate chains to the session CA and
//!   carries the VM's name (`[ca] vm_names` on the PDP puts it there).
//! - The VM requires a client certificate from the session CA, then reads
//!   `u32 length (big-endian) || ticket` (at most [`MAX_TICKET`] bytes)
//!   and `pairing id (16) || proof (32)`. It accepts a ticket that verifies
//!   with the session CA's key, is valid now, names this VM, and is bound
//!   to the certificate presented in this handshake (compared in constant
//!   time); then a pairing the PDP delivered over the VM's control session,
//!   unexpired, for that same certificate, and the terminal's proof
//!   `HMAC-SM3(key, exporter || "terminal")` over this connection's
//!   exporter ([`pki::tls::pairing`]). A pairing is used once: it is gone
//!   after its first presentation, whatever the outcome. The VM answers 0
//!   and its own proof (`|| "vm"`), or the [`Refused`] code, and closes.
//! - The terminal checks the VM's certificate is the one the PDP paired it
//!   with, and the VM's proof: only the VM the PDP paired holds the key.
//!
//! So a certificate, its key, a ticket and a fresh pairing are all needed:
//! a stolen certificate or ticket alone opens nothing.
//!
//! Over QUIC (ALPN [`QUIC_ALPN`], the project's SM4 profile for QUIC,
//! docs/shangmi.md) the same frames run on the connection's first
//! bidirectional stream, and the exporter is the QUIC connection's.

use pki::tls::pairing::{self, Side, EXPORTER_LABEL, EXPORTER_LEN, KEY_LEN, PROOF_LEN};
use pki::tls::shangmi::strict_provider;
use pki::tls::{client_config_with_key, OneKey};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tnc_proto::credential::{Grant, Pairing};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest ticket frame read.
pub const MAX_TICKET: usize = 16 * 1024;

/// The ALPN protocol of the channel over QUIC.
pub const QUIC_ALPN: &[u8] = b"tnc-channel";

/// From the connection to the VM's answer: the handshake and the frames
/// (a peer that stalls is cut off; the relay afterwards has no deadline).
pub const ADMISSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a terminal gives a channel to open: the connection (through
/// the gateway, which gives the VM 5 s), the TLS handshake and both pairing
/// proofs (the VM gives them [`ADMISSION_TIMEOUT`] from its accept).
pub const CHANNEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Channels one VM serves at once, admitted or being admitted; more are
/// closed at once.
pub const MAX_CHANNELS: usize = 1024;

/// Why a VM refused a channel: the byte it answers with, and its log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the ticket does not verify with the session CA's key, or is malformed")]
    BadTicket = 1,
    #[error("the ticket has expired or is not yet valid")]
    Expired = 2,
    #[error("the ticket does not name this VM")]
    OtherVm = 3,
    #[error("the ticket is bound to another certificate than the one presented")]
    OtherCertificate = 4,
    #[error("no such pairing: never delivered to this VM, or already used")]
    NoPairing = 5,
    #[error("the pairing has expired")]
    PairingExpired = 6,
    #[error("the pairing proof does not verify (another key, or another connection's exporter)")]
    BadProof = 7,
    #[error("the pairing is for another terminal's certificate")]
    PairingCertificate = 8,
    #[error("the ticket (or its certificate) has been revoked")]
    Revoked = 9,
}

impl Refused {
    fn from_code(c: u8) -> Self {
        match c {
            2 => Refused::Expired,
            3 => Refused::OtherVm,
            4 => Refused::OtherCertificate,
            5 => Refused::NoPairing,
            6 => Refused::PairingExpired,
            7 => Refused::BadProof,
            8 => Refused::PairingCertificate,
            9 => Refused::Revoked,
            _ => Refused::BadTicket,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the VM refused the channel: {0}")]
    Refused(Refused),
    #[error("the channel credentials: {0}")]
    Credentials(String),
    #[error("the VM did not prove it holds the pairing key: it is not the VM the PDP paired")]
    VmProof,
    #[error("the VM presented another certificate than the one the PDP paired it with")]
    VmCertificate,
    #[error("the peer did not finish the handshake and frames in time")]
    Stalled,
    #[error(
        "the channel was not open within {0} s (connection, gateway, TLS handshake and pairing \
         proofs): the VM, or the gateway on the way, does not answer"
    )]
    Timeout(u64),
    #[error("the channel was cut: {0}")]
    Cut(String),
    #[error("the gateway refused the connection: {0}")]
    Gateway(tnc_proto::gateway::Refusal),
}

/// Asks the gateway on `tcp` for `vm` with `ticket` (docs/gateway.md);
/// Ok once it admitted the connection, which then reaches the VM.
pub async fn through_gateway<S: AsyncRead + AsyncWrite + Unpin>(
    tcp: &mut S,
    vm: &str,
    ticket: &[u8],
) -> Result<(), TunnelError> {
    let frame = tnc_proto::gateway::Admission {
        vm: vm.to_string(),
        ticket: ticket.to_vec(),
    }
    .encode()
    .ok_or_else(|| {
        TunnelError::Credentials(format!(
            "the VM name {vm:?} or a ticket of {} bytes cannot be sent to a gateway",
            ticket.len()
        ))
    })?;
    tcp.write_all(&frame).await?;
    let mut answer = [0u8; 1];
    tokio::time::timeout(ADMISSION_TIMEOUT, tcp.read_exact(&mut answer))
        .await
        .map_err(|_| TunnelError::Stalled)??;
    match answer[0] {
        0 => Ok(()),
        code => Err(TunnelError::Gateway(
            tnc_proto::gateway::Refusal::from_code(code),
        )),
    }
}

/// The channel key as TLS signs with it: in software, or through a
/// signer of SM2 digests (the TPM).
pub enum ChannelSigner {
    Software(pki::ca::Sm2Key),
    External {
        public: pki::ca::Sm2PublicKey,
        sign: pki::tls::shangmi::Sm2DigestSigner,
    },
}

impl From<pki::ca::Sm2Key> for ChannelSigner {
    fn from(key: pki::ca::Sm2Key) -> Self {
        ChannelSigner::Software(key)
    }
}

/// One side's credentials: what the PDP granted and the channel key.
pub struct ChannelIdentity {
    pub grant: Grant,
    pub key: ChannelSigner,
}

impl ChannelIdentity {
    /// The certificate and the key, as rustls presents them.
    pub fn tls_key(&self) -> Result<Arc<OneKey>, TunnelError> {
        let chain = vec![CertificateDer::from(self.grant.certificate.clone())];
        let credentials = |e: &dyn std::fmt::Display| TunnelError::Credentials(e.to_string());
        match &self.key {
            ChannelSigner::Software(key) => {
                let pem = key.to_pem().map_err(|e| credentials(&e))?;
                let der = pki::ca::pem_or_der(pem.as_bytes()).map_err(|e| credentials(&e))?;
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der));
                OneKey::load(&strict_provider(), chain, key)
                    .map(Arc::new)
                    .map_err(|e| credentials(&e))
            }
            ChannelSigner::External { public, sign } => Ok(Arc::new(OneKey::new(
                chain,
                Arc::new(pki::tls::shangmi::ExternalSm2SigningKey::new(
                    *public,
                    sign.clone(),
                )),
            ))),
        }
    }

    fn roots(&self) -> Result<rustls::RootCertStore, TunnelError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.grant.ca.clone()))
            .map_err(|e| TunnelError::Credentials(format!("the session CA: {e}")))?;
        Ok(roots)
    }
}

/// The VM's side of the channel.
pub struct Server {
    tls: tokio_rustls::TlsAcceptor,
    tls_config: Arc<rustls::ServerConfig>,
    ca_key: pki::ca::Sm2PublicKey,
    /// This VM's name in tickets.
    name: String,
    /// Pairings the PDP delivered, by pairing id, until used or expired.
    pairings: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Pairing>>,
    /// One permit per channel (see [`MAX_CHANNELS`]).
    channels: Arc<tokio::sync::Semaphore>,
    admission_timeout: std::time::Duration,
    /// The revocations this VM subscribes to, if it does: revoked tickets
    /// are refused and their channels cut.
    revoked: Option<Arc<tnc_gateway::revocation::Revoked>>,
}

/// The pairings one VM keeps at most (each is used within a minute).
pub const MAX_PAIRINGS: usize = 4096;

/// The exporter value (RFC 8446 §7.5) the pairing proofs cover.
fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; EXPORTER_LEN], TunnelError> {
    conn.export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
        .map_err(|e| TunnelError::Tls(format!("exporter: {e}")))
}

/// A QUIC connection's peer certificate (DER) and exporter value.
fn quic_peer(
    conn: &quinn::Connection,
    none: &str,
) -> Result<(Vec<u8>, [u8; EXPORTER_LEN]), TunnelError> {
    let certificate = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|c| c.first().map(|c| c.as_ref().to_vec()))
        .ok_or_else(|| TunnelError::Tls(none.into()))?;
    let mut exporter = [0u8; EXPORTER_LEN];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .map_err(|_| TunnelError::Tls("exporter".into()))?;
    Ok((certificate, exporter))
}

fn pairing_key(p: &Pairing) -> Result<[u8; KEY_LEN], TunnelError> {
    p.key
        .as_slice()
        .try_into()
        .map_err(|_| TunnelError::Credentials(format!("a pairing key of {} bytes", p.key.len())))
}

impl Server {
    /// Strict ShangMi TLS presenting the VM's certificate, requiring a
    /// client certificate from the session CA.
    pub fn new(me: &ChannelIdentity, name: &str) -> Result<Self, TunnelError> {
        let provider = Arc::new(strict_provider());
        let roots = me.roots()?;
        // The session CA signs every client's certificate: its comb is kept.
        pki::tls::remember_sm2_anchors(&roots);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let key = me.tls_key()?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TunnelError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(key);
        pki::tls::full_handshakes_only(&mut tls);
        let ca_key = pki::ca::certificate_public_key(&me.grant.ca)
            .map_err(|e| TunnelError::Credentials(e.to_string()))?;
        let tls = Arc::new(tls);
        Ok(Self {
            tls: tokio_rustls::TlsAcceptor::from(tls.clone()),
            tls_config: tls,
            ca_key,
            name: name.to_string(),
            pairings: Default::default(),
            channels: Arc::new(tokio::sync::Semaphore::new(MAX_CHANNELS)),
            admission_timeout: ADMISSION_TIMEOUT,
            revoked: None,
        })
    }

    /// Refuses tickets `set` knows to be revoked and cuts the channels of
    /// those revoked later ([`tnc_gateway::revocation::subscribe`] keeps it).
    pub fn with_revocations(mut self, set: Arc<tnc_gateway::revocation::Revoked>) -> Self {
        self.revoked = Some(set);
        self
    }

    /// Cuts off peers that have not finished the handshake and frames
    /// within `timeout` (default [`ADMISSION_TIMEOUT`]).
    pub fn with_admission_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.admission_timeout = timeout;
        self
    }

    /// A pairing the PDP delivered; expired ones are dropped first. False
    /// when the VM holds [`MAX_PAIRINGS`] unexpired pairings already.
    pub fn add_pairing(&self, pairing: Pairing, now: i64) -> bool {
        let mut held = self.pairings.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, p| p.expires >= now);
        if held.len() >= MAX_PAIRINGS {
            return false;
        }
        held.insert(pairing.id.clone(), pairing);
        true
    }

    /// The pairing `id` if it was made for the certificate whose SHA-256
    /// is `certificate`, taken out: it serves once. A pairing presented
    /// with another certificate stays (its id is no secret: the audit log
    /// names it; only its terminal can use it up).
    fn take_pairing(&self, id: &[u8], certificate: &[u8]) -> Result<Pairing, Refused> {
        let mut held = self.pairings.lock().unwrap_or_else(|p| p.into_inner());
        let pairing = held.get(id).ok_or(Refused::NoPairing)?;
        if !ct_eq(certificate, &pairing.peer_certificate_sha256) {
            return Err(Refused::PairingCertificate);
        }
        held.remove(id).ok_or(Refused::NoPairing)
    }

    /// One channel on `tcp`: the handshake, the ticket and the pairing
    /// (within [`ADMISSION_TIMEOUT`]); then relays it to `forward` until
    /// either side closes.
    pub async fn serve_one(&self, tcp: TcpStream, forward: SocketAddr) -> Result<(), TunnelError> {
        let deadline = tokio::time::Instant::now() + self.admission_timeout;
        let tls = tokio::time::timeout_at(deadline, self.tls.accept(tcp))
            .await
            .map_err(|_| TunnelError::Stalled)?
            .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| TunnelError::Tls("no client certificate".into()))?;
        let exporter = exporter(tls.get_ref().1)?;
        self.admit(tls, &peer, &exporter, forward, deadline).await
    }

    /// One channel over QUIC: the handshake, the first bidirectional
    /// stream, then as over TCP.
    pub async fn serve_quic_one(
        &self,
        incoming: quinn::Incoming,
        forward: SocketAddr,
    ) -> Result<(), TunnelError> {
        let deadline = tokio::time::Instant::now() + self.admission_timeout;
        let conn = tokio::time::timeout_at(deadline, incoming)
            .await
            .map_err(|_| TunnelError::Stalled)?
            .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let (peer, exporter) = quic_peer(&conn, "no client certificate")?;
        let (send, recv) = tokio::time::timeout_at(deadline, conn.accept_bi())
            .await
            .map_err(|_| TunnelError::Stalled)?
            .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let result = self
            .admit(
                tokio::io::join(recv, send),
                &peer,
                &exporter,
                forward,
                deadline,
            )
            .await;
        // The terminal closes once it has read the last bytes (a refusal
        // code, say); closing first could drop them in flight.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.closed()).await;
        result
    }

    /// The ticket and pairing frames on an established channel `io` (read
    /// by `deadline`, checked at the time they arrived); then the VM's
    /// proof and the relay to `forward`.
    async fn admit<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: S,
        peer: &[u8],
        exporter: &[u8],
        forward: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Result<(), TunnelError> {
        let frames = async {
            let ticket = read_frame(&mut io).await?;
            let mut presented = [0u8; 16 + PROOF_LEN];
            io.read_exact(&mut presented).await?;
            Ok::<_, TunnelError>((ticket, presented))
        };
        let (ticket, presented) = tokio::time::timeout_at(deadline, frames)
            .await
            .map_err(|_| TunnelError::Stalled)??;
        let now = unix_now();
        let verdict = self.admissible(&ticket, peer, now).and_then(|id| {
            let key = self.check_pairing(&presented, peer, exporter, now)?;
            // Carried from now on: a revocation cuts it.
            let tracked = match &self.revoked {
                Some(set) => Some(
                    set.track(&id, &policy::HashAlg::Sha256.digest(peer))
                        .map_err(|_| Refused::Revoked)?,
                ),
                None => None,
            };
            Ok((key, tracked))
        });
        let (key, mut tracked) = match verdict {
            Ok(v) => v,
            Err(refused) => {
                io.write_all(&[refused as u8]).await?;
                let _ = io.shutdown().await;
                return Err(TunnelError::Refused(refused));
            }
        };
        let mut answer = [0u8; 1 + PROOF_LEN];
        answer[1..].copy_from_slice(&pairing::proof(&key, exporter, Side::Vm));
        io.write_all(&answer).await?;
        io.flush().await?;
        let mut service = TcpStream::connect(forward).await?;
        let _ = service.set_nodelay(true);
        let relay = tokio::io::copy_bidirectional(&mut io, &mut service);
        let relayed = match tracked.as_mut() {
            Some(t) => tokio::select! {
                r = relay => r,
                why = t.cut() => return Err(TunnelError::Cut(why)),
            },
            None => relay.await,
        };
        match relayed {
            Ok(_) => Ok(()),
            // A terminal that leaves without close_notify (or closes its
            // QUIC connection) once it has the service's answer: the
            // channel is over all the same.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::NotConnected
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The QUIC server configuration for channels: strict ShangMi, ALPN
    /// [`QUIC_ALPN`], client certificates from the session CA.
    pub fn quic_server_config(&self) -> Result<quinn::ServerConfig, TunnelError> {
        pki::tls::quic_server_config(&self.tls_config, QUIC_ALPN)
            .map_err(|e| TunnelError::Tls(e.to_string()))
    }

    /// A QUIC endpoint on `bind` for channels, for [`Server::run_quic`].
    pub fn quic_endpoint(&self, bind: SocketAddr) -> Result<quinn::Endpoint, TunnelError> {
        Ok(quinn::Endpoint::server(self.quic_server_config()?, bind)?)
    }

    /// Serves channels arriving on `endpoint`, each relayed to `forward`.
    pub async fn run_quic(self: Arc<Self>, endpoint: quinn::Endpoint, forward: SocketAddr) {
        while let Some(incoming) = endpoint.accept().await {
            let peer = incoming.remote_address();
            let Ok(permit) = self.channels.clone().try_acquire_owned() else {
                incoming.refuse();
                eprintln!("tnc-client serve: {MAX_CHANNELS} channels open: QUIC channel from {peer} refused");
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.serve_quic_one(incoming, forward).await {
                    eprintln!("tnc-client serve: QUIC channel from {peer}: {e}");
                }
                drop(permit);
            });
        }
    }

    /// The ticket against the certificate presented, at `now`.
    pub fn check(&self, ticket: &[u8], peer_certificate: &[u8], now: i64) -> Result<(), Refused> {
        self.admissible(ticket, peer_certificate, now).map(|_| ())
    }

    /// [`Server::check`], and not revoked; the ticket's id.
    fn admissible(
        &self,
        ticket: &[u8],
        peer_certificate: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, Refused> {
        let claims = match pki::ticket::verify(ticket, &self.ca_key, now) {
            Ok(c) => c,
            Err(pki::ticket::TicketError::Expired { .. }) => return Err(Refused::Expired),
            Err(_) => return Err(Refused::BadTicket),
        };
        if !claims.vms.iter().any(|v| v == &self.name) {
            return Err(Refused::OtherVm);
        }
        let presented = policy::HashAlg::Sha256.digest(peer_certificate);
        if !ct_eq(&presented, &claims.certificate_sha256) {
            return Err(Refused::OtherCertificate);
        }
        if let Some(set) = &self.revoked {
            set.check(&claims.id, &presented)
                .map_err(|_| Refused::Revoked)?;
        }
        Ok(claims.id)
    }

    /// `id || proof` against the pairings held: the pairing is taken out
    /// (single use), must be unexpired, for `peer_certificate`, and the
    /// terminal's proof over `exporter` must verify. The key, to answer with.
    pub fn check_pairing(
        &self,
        presented: &[u8; 16 + PROOF_LEN],
        peer_certificate: &[u8],
        exporter: &[u8],
        now: i64,
    ) -> Result<[u8; KEY_LEN], Refused> {
        let (id, proof) = presented.split_at(16);
        let presented_hash = policy::HashAlg::Sha256.digest(peer_certificate);
        let pairing = self.take_pairing(id, &presented_hash)?;
        if pairing.expires < now {
            return Err(Refused::PairingExpired);
        }
        let key = pairing_key(&pairing).map_err(|_| Refused::NoPairing)?;
        if !pairing::verify(&key, exporter, Side::Terminal, proof) {
            return Err(Refused::BadProof);
        }
        Ok(key)
    }

    /// Serves channels on `listener`, each relayed to `forward`.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        forward: SocketAddr,
    ) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(a) => a,
                // Out of descriptors or a connection gone before accept:
                // the listener goes on.
                Err(e) => {
                    eprintln!("tnc-client serve: accepting a channel: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.channels.clone().try_acquire_owned() else {
                eprintln!(
                    "tnc-client serve: {MAX_CHANNELS} channels open: channel from {peer} refused"
                );
                continue;
            };
            // Small frames (ticket, proofs, one-line requests) go out at
            // once, not after a delayed ACK.
            let _ = tcp.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.serve_one(tcp, forward).await {
                    eprintln!("tnc-client serve: channel from {peer}: {e}");
                }
                drop(permit);
            });
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Equal-length comparison without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> Result<Vec<u8>, TunnelError> {
    let len = io.read_u32().await? as usize;
    if len > MAX_TICKET {
        return Err(TunnelError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a ticket frame of {len} bytes (at most {MAX_TICKET})"),
        )));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// The terminal's side: opens the channel to the VM named `vm` at `addr`
/// (strict ShangMi TLS, the VM's certificate from the session CA, naming
/// `vm`, the one `pairing` names), presents its ticket and its pairing
/// proof, checks the VM's, and returns the stream.
pub async fn connect(
    me: &ChannelIdentity,
    addr: SocketAddr,
    vm: &str,
    pairing: &Pairing,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TunnelError> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    connect_on(me, tcp, vm, pairing).await
}

/// [`connect`] over a TCP connection already made (through the gateway,
/// once it admitted it).
pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(
    me: &ChannelIdentity,
    tcp: S,
    vm: &str,
    pairing: &Pairing,
) -> Result<tokio_rustls::client::TlsStream<S>, TunnelError> {
    let key = pairing_key(pairing)?;
    let tls = client_config_with_key(Arc::new(strict_provider()), me.roots()?, me.tls_key()?)
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let name = server_name(vm)?;
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let vm_certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| TunnelError::Tls("the VM presented no certificate".into()))?;
    let exporter = exporter(stream.get_ref().1)?;
    prove(&mut stream, me, pairing, &key, &vm_certificate, &exporter).await?;
    Ok(stream)
}

/// [`connect`] over QUIC: the channel on the connection's first stream.
pub async fn connect_quic(
    me: &ChannelIdentity,
    addr: SocketAddr,
    vm: &str,
    pairing: &Pairing,
) -> Result<QuicChannel, TunnelError> {
    let key = pairing_key(pairing)?;
    let tls = client_config_with_key(Arc::new(strict_provider()), me.roots()?, me.tls_key()?)
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let config = pki::tls::quic_client_config(&tls, QUIC_ALPN)
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    server_name(vm)?;
    let bind = if addr.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let endpoint = quinn::Endpoint::client(bind)?;
    let conn = endpoint
        .connect_with(config, addr, vm)
        .map_err(|e| TunnelError::Tls(e.to_string()))?
        .await
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let (vm_certificate, exporter) = quic_peer(&conn, "the VM presented no certificate")?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let mut io = tokio::io::join(recv, send);
    prove(&mut io, me, pairing, &key, &vm_certificate, &exporter).await?;
    Ok(QuicChannel {
        io,
        _conn: conn,
        _endpoint: endpoint,
    })
}

/// The channel through the gateway over QUIC: QUIC to the gateway (which
/// presents its enrolled certificate, named `gateway_name`, from the session
/// CA), the admission on the first stream, then the channel's TLS to the
/// VM inside that stream, end to end.
pub async fn connect_quic_via(
    me: &ChannelIdentity,
    gateway: SocketAddr,
    gateway_name: &str,
    vm: &str,
    pairing: &Pairing,
) -> Result<ViaQuic, TunnelError> {
    let outer = pki::tls::client_config(Arc::new(strict_provider()), me.roots()?, None)
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let config = pki::tls::quic_client_config(&outer, tnc_proto::gateway::QUIC_ALPN)
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    server_name(gateway_name)?;
    let bind = if gateway.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let endpoint = quinn::Endpoint::client(bind)?;
    let conn = endpoint
        .connect_with(config, gateway, gateway_name)
        .map_err(|e| TunnelError::Tls(e.to_string()))?
        .await
        .map_err(|e| TunnelError::Tls(format!("QUIC to the gateway: {e}")))?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let mut stream = tokio::io::join(recv, send);
    through_gateway(&mut stream, vm, &me.grant.ticket).await?;
    let tls = connect_on(me, stream, vm, pairing).await?;
    Ok(ViaQuic {
        tls,
        _conn: conn,
        _endpoint: endpoint,
    })
}

/// The channel through the gateway over QUIC: the TLS stream to the VM,
/// holding the QUIC connection and endpoint.
pub struct ViaQuic {
    tls: tokio_rustls::client::TlsStream<tokio::io::Join<quinn::RecvStream, quinn::SendStream>>,
    _conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl AsyncRead for ViaQuic {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for ViaQuic {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }
}

/// A channel over QUIC: its stream, holding the connection and endpoint.
pub struct QuicChannel {
    io: tokio::io::Join<quinn::RecvStream, quinn::SendStream>,
    _conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl AsyncRead for QuicChannel {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicChannel {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn server_name(vm: &str) -> Result<ServerName<'static>, TunnelError> {
    ServerName::try_from(vm.to_string())
        .map_err(|_| TunnelError::Credentials(format!("{vm:?} is not a VM name (a DNS name)")))
}

/// The terminal's frames on an established channel: the VM's certificate
/// must be the paired one; ticket, pairing id and proof out; the VM's
/// answer and proof in.
async fn prove<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    me: &ChannelIdentity,
    pairing: &Pairing,
    key: &[u8; KEY_LEN],
    vm_certificate: &[u8],
    exporter: &[u8],
) -> Result<(), TunnelError> {
    if pairing.id.len() != 16 {
        return Err(TunnelError::Credentials(format!(
            "a pairing id of {} bytes",
            pairing.id.len()
        )));
    }
    let presented = policy::HashAlg::Sha256.digest(vm_certificate);
    if !ct_eq(&presented, &pairing.peer_certificate_sha256) {
        return Err(TunnelError::VmCertificate);
    }
    let len = u32::try_from(me.grant.ticket.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_TICKET)
        .ok_or_else(|| TunnelError::Credentials("the ticket is too long".into()))?;
    let mut first = Vec::with_capacity(4 + me.grant.ticket.len() + 16 + PROOF_LEN);
    first.extend_from_slice(&len.to_be_bytes());
    first.extend_from_slice(&me.grant.ticket);
    first.extend_from_slice(&pairing.id);
    first.extend_from_slice(&pairing::proof(key, exporter, Side::Terminal));
    io.write_all(&first).await?;
    io.flush().await?;
    match io.read_u8().await? {
        0 => {}
        c => return Err(TunnelError::Refused(Refused::from_code(c))),
    }
    let mut proof = [0u8; PROOF_LEN];
    io.read_exact(&mut proof).await?;
    if !pairing::verify(key, exporter, Side::Vm, &proof) {
        return Err(TunnelError::VmProof);
    }
    Ok(())
}
