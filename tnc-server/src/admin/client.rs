//! A client of the admin API, for `tnc-monitor`, `--server` and tests: one
//! HTTP/1.1 request per TLS connection (the callers poll seconds apart; an
//! event stream keeps its own).

use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tnc_proto::admin::ApiError;

/// The methods [`AdminClient::call`] takes.
pub use hyper::Method;

/// A request must be answered within this (an event stream's first bytes).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a list of 10,000 devices is about 3 MB).
const MAX_ANSWER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach the admin API at {addr}: {error}")]
    Connect {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("the admin API at {addr} refused TLS: {error}")]
    Tls {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within {TIMEOUT:?}")]
    Timeout,
    #[error("the admin API answered {status}: {error}")]
    Refused { status: u16, error: String },
    #[error("the answer is not what was expected: {0}")]
    Answer(String),
}

/// Where the admin API is and who calls it.
#[derive(Clone, Debug)]
pub struct AdminClient {
    /// Every address the host resolved to, tried in turn.
    addrs: Vec<SocketAddr>,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

impl AdminClient {
    /// `url`: `https://HOST:PORT` (HOST an address, or a name resolved
    /// now); `ca`: the CAs of the PDP's certificate (its `ca.pem`);
    /// `identity`: the admin certificate and key (None only to see the
    /// refusal).
    pub fn new(
        url: &str,
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, ClientError> {
        let setup = |m: String| ClientError::Setup(m);
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| setup(format!("{url:?}: the admin API's URL starts with https://")))?;
        let authority = rest.trim_end_matches('/');
        let (host, addrs) = resolve(authority).ok_or_else(|| {
            setup(format!(
                "{url:?}: not https://HOST:PORT (a resolvable HOST)"
            ))
        })?;
        let server_name = ServerName::try_from(host)
            .map_err(|_| setup(format!("{url:?}: not a DNS name or IP address")))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca)
            .map_err(|e| setup(format!("--ca {}: {e}", ca.display())))?
        {
            let c = c.map_err(|e| setup(format!("--ca {}: {e}", ca.display())))?;
            // The SM2 CA in ca.pem is of no use to this client; skip what
            // cannot be a root here.
            let _ = roots.add(c);
        }
        if roots.is_empty() {
            return Err(setup(format!("--ca {}: no CA certificate", ca.display())));
        }
        let identity = match identity {
            None => None,
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| setup(format!("--certificate {}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| setup(format!("--key {}: {e}", key.display())))?;
                Some(pki::tls::Identity { chain, key })
            }
        };
        let mut tls = pki::tls::client_config(pki::tls::default_provider(), roots, identity)
            .map_err(|e| setup(format!("TLS: {e}")))?;
        Arc::make_mut(&mut tls).alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addrs,
            server_name,
            tls,
        })
    }

    /// The first address the host resolved to.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Sends one request; the answer's status and head, its body unread.
    pub async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let work = async {
            let (tcp, addr) = self.connect().await?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|error| ClientError::Tls { addr, error })?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, addr.to_string());
            if body.is_some() {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            let request = request
                .body(http_body_util::Full::new(hyper::body::Bytes::from(
                    body.unwrap_or_default(),
                )))
                .map_err(|e| ClientError::Setup(format!("request: {e}")))?;
            Ok(sender.send_request(request).await?)
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// A TCP connection to the first address that takes one.
    async fn connect(&self) -> Result<(tokio::net::TcpStream, SocketAddr), ClientError> {
        let mut last = None;
        for &addr in &self.addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(tcp) => {
                    // The request's head and body go out at once (no wait
                    // on the server's delayed ACK).
                    let _ = tcp.set_nodelay(true);
                    return Ok((tcp, addr));
                }
                Err(error) => last = Some(ClientError::Connect { addr, error }),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Setup("no address".into())))
    }

    /// One request; the status and the whole body.
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let answer = self.send(method, path, body).await?;
        let status = answer.status().as_u16();
        let body = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER);
        let bytes = tokio::time::timeout(TIMEOUT, body.collect())
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Answer(format!("reading the body: {e}")))?
            .to_bytes();
        Ok((status, bytes.to_vec()))
    }

    /// `GET path` as `T`; an error status as [`ClientError::Refused`].
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, body) = self.call(hyper::Method::GET, path, None).await?;
        decode(status, &body)
    }

    /// `POST path` with `body` as JSON, the answer as `T`.
    pub async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Setup(e.to_string()))?;
        let (status, answer) = self.call(hyper::Method::POST, path, Some(body)).await?;
        decode(status, &answer)
    }
}

fn decode<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, ClientError> {
    if !(200..300).contains(&status) {
        let error = serde_json::from_slice::<ApiError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        return Err(ClientError::Refused { status, error });
    }
    serde_json::from_slice(body).map_err(|e| ClientError::Answer(e.to_string()))
}

/// HOST:PORT (or [V6]:PORT) to the name to check and its addresses (a
/// name is resolved once, here: `localhost` may give ::1 before 127.0.0.1).
fn resolve(authority: &str) -> Option<(String, Vec<SocketAddr>)> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), vec![addr]));
    }
    let (host, _) = authority.rsplit_once(':')?;
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = authority.to_socket_addrs().ok()?.collect();
    (!addrs.is_empty()).then(|| (host.to_string(), addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_host_the_certificate_must_carry() {
        assert_eq!(
            resolve("127.0.0.1:9271"),
            Some(("127.0.0.1".into(), vec!["127.0.0.1:9271".parse().unwrap()]))
        );
        assert_eq!(
            resolve("[::1]:9271"),
            Some(("::1".into(), vec!["[::1]:9271".parse().unwrap()]))
        );
        assert_eq!(
            resolve("localhost:9271").map(|r| r.0),
            Some("localhost".into())
        );
        assert_eq!(resolve("no-port"), None);
        let ca = Path::new("/nonexistent/ca.pem");
        assert!(matches!(
            AdminClient::new("http://127.0.0.1:1", ca, None),
            Err(ClientError::Setup(m)) if m.contains("https://")
        ));
    }
}
