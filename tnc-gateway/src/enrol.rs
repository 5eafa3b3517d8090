//! A gateway's enrolment (docs/revocations.md): it makes its SM2 key (0600),
//! connects to the PDP's revocation port trusting the session CA it was
//! given, sends its name, the one-time token the operator made (`tnc-server
//! gateway token NAME`) and a PKCS#10 request for the key, and keeps the
//! certificate it gets (OU=gateway), checked against that CA.

use crate::config::GatewayConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tnc_proto::revocation::{Frame, FrameReader, ALPN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why an enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("{0}")]
    Local(String),
    #[error("reaching the PDP at {at}: {why}")]
    Pdp { at: String, why: String },
    #[error("the PDP refused the enrolment: {0}")]
    Refused(String),
}

/// What an enrolment wrote.
#[derive(Debug)]
pub struct Enrolled {
    pub certificate: std::path::PathBuf,
    pub not_after: i64,
    /// Whether the private key was made now (else the existing one was used).
    pub new_key: bool,
}

/// Enrols the gateway `config` describes with `token`.
pub async fn enrol(config: &GatewayConfig, token: &str) -> Result<Enrolled, EnrolError> {
    let local = |e: &dyn std::fmt::Display| EnrolError::Local(e.to_string());
    let ca_path = config.path(&config.identity.ca);
    let ca = std::fs::read(&ca_path)
        .map_err(|e| EnrolError::Local(format!("identity.ca {}: {e}", ca_path.display())))
        .and_then(|b| pki::ca::pem_or_der(&b).map_err(|e| local(&e)))?;
    let key_path = config.path(&config.identity.private_key);
    let (key, new_key) = if key_path.exists() {
        let pem = std::fs::read_to_string(&key_path)
            .map_err(|e| EnrolError::Local(format!("{}: {e}", key_path.display())))?;
        (
            pki::ca::Sm2Key::from_pem(&pem).map_err(|e| local(&e))?,
            false,
        )
    } else {
        let key = pki::ca::Sm2Key::generate().map_err(|e| local(&e))?;
        key.write_new(&key_path)
            .map_err(|e| EnrolError::Local(format!("{}: {e}", key_path.display())))?;
        (key, true)
    };
    let csr = pki::ca::make_request(&key, &config.identity.name).map_err(|e| local(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.clone()))
        .map_err(|e| EnrolError::Local(format!("identity.ca: {e}")))?;
    let tls = pki::tls::client_config(Arc::new(pki::tls::shangmi::strict_provider()), roots, None)
        .map_err(|e| local(&e))?;
    let mut tls = Arc::unwrap_or_clone(tls);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // Enrolment is one exchange with the first PDP named.
    let at = config
        .pdp
        .revocations
        .all()
        .into_iter()
        .next()
        .ok_or_else(|| EnrolError::Local("pdp.revocations names no PDP".into()))?;
    let pdp = |why: String| EnrolError::Pdp {
        at: at.clone(),
        why,
    };
    let name = ServerName::try_from(config.pdp.name.clone())
        .map_err(|e| EnrolError::Local(format!("pdp.name: {e}")))?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&at))
        .await
        .map_err(|_| pdp("timed out".into()))?
        .map_err(|e| pdp(e.to_string()))?;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| pdp(format!("TLS: {e}")))?;
    let frame = Frame::Enrol {
        name: config.identity.name.clone(),
        token: token.trim().to_string(),
        csr,
    };
    stream
        .write_all(&frame.encode())
        .await
        .map_err(|e| pdp(e.to_string()))?;
    let mut reader = FrameReader::default();
    let mut buf = vec![0u8; 8192];
    let answer = loop {
        if let Some(f) = reader.next_frame().map_err(|e| pdp(e.to_string()))? {
            break f;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .map_err(|_| pdp("no answer in time".into()))?
            .map_err(|e| pdp(e.to_string()))?;
        if n == 0 {
            return Err(pdp("the PDP closed the connection".into()));
        }
        reader.push(&buf[..n]);
    };
    let certificate = match answer {
        Frame::Enrolled { certificate, .. } => certificate,
        Frame::Error { message } => return Err(EnrolError::Refused(message)),
        other => return Err(pdp(format!("a {} frame", other.name()))),
    };
    pki::ca::verify_issued_by(&certificate, &ca, unix_now())
        .map_err(|e| pdp(format!("the certificate it sent: {e}")))?;
    let info = pki::ca::describe(&certificate).map_err(|e| local(&e))?;
    let cert_path = config.path(&config.identity.certificate);
    std::fs::write(&cert_path, pki::ca::pem_certificate(&certificate))
        .map_err(|e| EnrolError::Local(format!("{}: {e}", cert_path.display())))?;
    Ok(Enrolled {
        certificate: cert_path,
        not_after: info.not_after,
        new_key,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
