//! The ShangMi channel between a terminal and a VM, first slice: strict
//! RFC 8998 TLS 1.3 over TCP with mutual certificates from the PDP's
//! session CA, the terminal's access ticket as the first frame, then bytes
//! relayed both ways.
//!
//! - The terminal checks the VM's certificate chains to the session CA and
//!   carries the VM's name (`[ca] vm_names` on the PDP puts it there).
//! - The VM requires a client certificate from the session CA, then reads
//!   `u32 length (big-endian) || ticket` (at most [`MAX_TICKET`] bytes) and
//!   accepts a ticket that verifies with the session CA's key, is valid
//!   now, names this VM, and is bound to the certificate presented in this
//!   handshake (compared in constant time). It answers one byte: 0, or the
//!   [`Refused`] code before it closes.
//!
//! The pairing key (mutual user-VM proof over the TLS exporter) is the next
//! slice; until then a certificate, its key and its ticket are all needed.

use pki::tls::shangmi::strict_provider;
use pki::tls::{client_config, Identity};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tnc_proto::credential::Grant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest ticket frame read.
pub const MAX_TICKET: usize = 16 * 1024;

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
}

impl Refused {
    fn from_code(c: u8) -> Self {
        match c {
            2 => Refused::Expired,
            3 => Refused::OtherVm,
            4 => Refused::OtherCertificate,
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
}

/// One side's credentials: what the PDP granted and the channel key.
pub struct ChannelIdentity {
    pub grant: Grant,
    pub key: pki::ca::Sm2Key,
}

impl ChannelIdentity {
    fn tls_identity(&self) -> Result<Identity, TunnelError> {
        let pem = self
            .key
            .to_pem()
            .map_err(|e| TunnelError::Credentials(e.to_string()))?;
        let der = pki::ca::pem_or_der(pem.as_bytes())
            .map_err(|e| TunnelError::Credentials(e.to_string()))?;
        Ok(Identity {
            chain: vec![CertificateDer::from(self.grant.certificate.clone())],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        })
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
    ca_key: pki::ca::Sm2PublicKey,
    /// This VM's name in tickets.
    name: String,
}

impl Server {
    /// Strict ShangMi TLS presenting the VM's certificate, requiring a
    /// client certificate from the session CA.
    pub fn new(me: &ChannelIdentity, name: &str) -> Result<Self, TunnelError> {
        let provider = Arc::new(strict_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(me.roots()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let id = me.tls_identity()?;
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TunnelError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(id.chain, id.key)
            .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let ca_key = pki::ca::certificate_public_key(&me.grant.ca)
            .map_err(|e| TunnelError::Credentials(e.to_string()))?;
        Ok(Self {
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            ca_key,
            name: name.to_string(),
        })
    }

    /// One channel on `tcp`: the handshake and the ticket at `now` (Unix
    /// seconds); then relays it to `forward` until either side closes.
    pub async fn serve_one(
        &self,
        tcp: TcpStream,
        forward: SocketAddr,
        now: i64,
    ) -> Result<(), TunnelError> {
        let mut tls = self
            .tls
            .accept(tcp)
            .await
            .map_err(|e| TunnelError::Tls(e.to_string()))?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| TunnelError::Tls("no client certificate".into()))?;
        let ticket = read_frame(&mut tls).await?;
        if let Err(refused) = self.check(&ticket, &peer, now) {
            tls.write_all(&[refused as u8]).await?;
            let _ = tls.shutdown().await;
            return Err(TunnelError::Refused(refused));
        }
        tls.write_all(&[0]).await?;
        let mut service = TcpStream::connect(forward).await?;
        tokio::io::copy_bidirectional(&mut tls, &mut service).await?;
        Ok(())
    }

    /// The ticket against the certificate presented, at `now`.
    pub fn check(&self, ticket: &[u8], peer_certificate: &[u8], now: i64) -> Result<(), Refused> {
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
        Ok(())
    }

    /// Serves channels on `listener`, each relayed to `forward`.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        forward: SocketAddr,
    ) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                if let Err(e) = me.serve_one(tcp, forward, now).await {
                    eprintln!("tnc-client serve: channel from {peer}: {e}");
                }
            });
        }
    }
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
/// (strict ShangMi TLS, the VM's certificate from the session CA and naming
/// `vm`), presents its ticket, and returns the stream the VM accepted.
pub async fn connect(
    me: &ChannelIdentity,
    addr: SocketAddr,
    vm: &str,
) -> Result<impl AsyncRead + AsyncWrite + Unpin, TunnelError> {
    let tls = client_config(
        Arc::new(strict_provider()),
        me.roots()?,
        Some(me.tls_identity()?),
    )
    .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let name = ServerName::try_from(vm.to_string())
        .map_err(|_| TunnelError::Credentials(format!("{vm:?} is not a VM name (a DNS name)")))?;
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let len = u32::try_from(me.grant.ticket.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_TICKET)
        .ok_or_else(|| TunnelError::Credentials("the ticket is too long".into()))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(&me.grant.ticket).await?;
    stream.flush().await?;
    match stream.read_u8().await? {
        0 => Ok(stream),
        c => Err(TunnelError::Refused(Refused::from_code(c))),
    }
}
