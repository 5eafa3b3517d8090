//! The one place TLS and QUIC configurations are built (feature `tls`), for
//! the PDP, the agent and the tests alike, over a rustls `CryptoProvider`
//! given by the caller: ring's standard suites today ([`default_provider`]);
//! the ShangMi provider plugs in here and nowhere else. TLS 1.3 only. QUIC
//! through quinn-proto's types, so nothing here needs an async runtime.
//! Reading the PEM files stays with the callers, which know which config key
//! named them.

pub mod shangmi;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the crypto provider cannot do TLS 1.3: {0}")]
    Provider(rustls::Error),
    #[error("no CA certificate to trust")]
    NoRoots,
    #[error("the client CA certificates cannot verify clients: {0}")]
    ClientVerifier(String),
    #[error("the certificate chain and private key do not form a usable TLS identity: {0}")]
    Identity(rustls::Error),
    #[error("the TLS configuration cannot serve QUIC: {0}")]
    Quic(String),
}

/// A certificate chain (end entity first) and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// ring's provider: the standard TLS 1.3 suites.
pub fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 server presenting `identity`. With `client_roots`, a client may
/// present a certificate issued by one of them, and a presented one must
/// verify (clients without one are still let in: they authenticate with
/// SASL instead).
pub fn server_config(
    provider: Arc<CryptoProvider>,
    identity: Identity,
    client_roots: Option<RootCertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Provider)?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) if roots.is_empty() => return Err(TlsError::NoRoots),
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::ClientVerifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(TlsError::Identity)?;
    Ok(Arc::new(config))
}

/// A TLS 1.3 client trusting `roots` (always checked), presenting
/// `identity` when the server asks for a client certificate.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    roots: RootCertStore,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .map_err(TlsError::Identity)?,
    };
    Ok(Arc::new(config))
}

/// `tls` for QUIC with the ALPN protocol `alpn`.
pub fn quic_server_config(
    tls: &ServerConfig,
    alpn: &[u8],
) -> Result<quinn_proto::ServerConfig, TlsError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn_proto::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(quinn_proto::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// `tls` for QUIC with the ALPN protocol `alpn`.
pub fn quic_client_config(
    tls: &ClientConfig,
    alpn: &[u8],
) -> Result<quinn_proto::ClientConfig, TlsError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn_proto::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(quinn_proto::ClientConfig::new(Arc::new(crypto)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_is_missing() {
        let e = client_config(default_provider(), RootCertStore::empty(), None).unwrap_err();
        assert!(matches!(e, TlsError::NoRoots), "{e}");
    }
}
