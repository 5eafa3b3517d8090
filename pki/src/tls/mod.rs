//! The one place TLS and QUIC configurations are built (feature `tls`), for
//! the PDP, the agent and the tests alike, over a rustls `CryptoProvider`
//! given by the caller: ring's standard suites today ([`default_provider`]);
//! the ShangMi provider plugs in here and nowhere else. TLS 1.3 only. QUIC
//! through quinn-proto's types, so nothing here needs an async runtime.
//! Reading the PEM files stays with the callers, which know which config key
//! named them.

pub mod pairing;
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
    #[error("suites \"{suites}\" need {what}")]
    MissingIdentity {
        suites: &'static str,
        what: &'static str,
    },
}

/// A certificate chain (end entity first) and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// ring's provider: the standard TLS 1.3 suites, in [`standard_suites`]'
/// order.
pub fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: standard_suites(),
        ..rustls::crypto::ring::default_provider()
    })
}

/// ring's TLS 1.3 suites, TLS_AES_128_GCM_SHA256 first (rustls puts
/// TLS_AES_256_GCM_SHA384 first). It is the suite RFC 8446 §9.1 makes
/// mandatory; its 128-bit strength is that of the X25519 / P-256 key
/// exchange and signatures it runs with, so AES-256 adds nothing to a
/// handshake's weakest link; and its transcript hash and key schedule run
/// on SHA-256, which ring computes with the CPU's SHA extensions where
/// SHA-384 stays in software: SHA-512 blocks were 4 % of the PDP's CPU at
/// 100 concurrent logins (`testnet bench handshake`, perf), SHA-256 0.5 %.
/// Clients choose (rustls servers follow the client's order), and ours ask
/// for this order.
pub fn standard_suites() -> Vec<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as ring;
    let preferred = [
        ring::TLS13_AES_128_GCM_SHA256,
        ring::TLS13_AES_256_GCM_SHA384,
        ring::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let rest = rustls::crypto::ring::default_provider()
        .cipher_suites
        .into_iter()
        .filter(|s| !preferred.iter().any(|p| p.suite() == s.suite()));
    preferred.into_iter().chain(rest).collect()
}

/// Which TLS 1.3 cipher suites a PDP or an agent speaks (`suites =
/// "standard"`, `"shangmi"` or `"both"` in their TOML).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suites {
    /// The standard suites (AES-GCM, ChaCha20-Poly1305) with ECDSA/RSA
    /// certificates, through ring.
    #[default]
    Standard,
    /// RFC 8998 only: SM4-GCM/CCM, curveSM2, SM2 certificates.
    Shangmi,
    /// The ShangMi suites preferred, the standard ones too.
    Both,
}

impl Suites {
    /// From a configuration's word: `standard`, `shangmi` or `both`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "standard" => Some(Self::Standard),
            "shangmi" => Some(Self::Shangmi),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Shangmi => "shangmi",
            Self::Both => "both",
        }
    }

    pub fn provider(self) -> Arc<CryptoProvider> {
        match self {
            Self::Standard => default_provider(),
            Self::Shangmi => Arc::new(shangmi::strict_provider()),
            Self::Both => Arc::new(shangmi::mixed_provider()),
        }
    }

    /// Whether a server with these suites presents an SM2 certificate.
    pub fn needs_sm2_identity(self) -> bool {
        self != Self::Standard
    }

    /// Whether it presents a standard (ECDSA/RSA) one.
    pub fn needs_standard_identity(self) -> bool {
        self != Self::Shangmi
    }
}

/// The name of a negotiated suite: IANA's, or RFC 8998's for the ShangMi
/// ones (rustls knows them only as numbers).
pub fn suite_name(suite: rustls::CipherSuite) -> String {
    if suite == shangmi::TLS_SM4_GCM_SM3 {
        "TLS_SM4_GCM_SM3".into()
    } else if suite == shangmi::TLS_SM4_CCM_SM3 {
        "TLS_SM4_CCM_SM3".into()
    } else {
        suite
            .as_str()
            .map_or_else(|| format!("{suite:?}"), str::to_string)
    }
}

/// A server's identities: the standard one, the SM2 one, or both.
pub struct Identities {
    pub standard: Option<Identity>,
    pub sm2: Option<Identity>,
}

/// A TLS 1.3 server speaking `suites`: with `Standard` it presents
/// `identities.standard`, with `Shangmi` `identities.sm2`, with `Both` the
/// SM2 one to a client that offers sm2sig_sm3 and the standard one to the
/// others. Client certificates as in [`server_config`].
pub fn server_config_for(
    suites: Suites,
    identities: Identities,
    client_roots: Option<RootCertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let missing = |what: &'static str| TlsError::MissingIdentity {
        suites: suites.name(),
        what,
    };
    match suites {
        Suites::Standard => server_config(
            suites.provider(),
            identities
                .standard
                .ok_or(missing("a standard (ECDSA or RSA) certificate"))?,
            client_roots,
        ),
        Suites::Shangmi => server_config(
            suites.provider(),
            identities.sm2.ok_or(missing("an SM2 certificate"))?,
            client_roots,
        ),
        Suites::Both => {
            let provider = suites.provider();
            let load = |id: Identity| -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
                let key = provider
                    .key_provider
                    .load_private_key(id.key)
                    .map_err(TlsError::Identity)?;
                Ok(Arc::new(rustls::sign::CertifiedKey::new(id.chain, key)))
            };
            let resolver = BySignatureScheme {
                sm2: load(identities.sm2.ok_or(missing("an SM2 certificate"))?)?,
                standard: load(
                    identities
                        .standard
                        .ok_or(missing("a standard (ECDSA or RSA) certificate"))?,
                )?,
            };
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(TlsError::Provider)?;
            let builder = match client_verifier(client_roots, provider)? {
                None => builder.with_no_client_auth(),
                Some(v) => builder.with_client_cert_verifier(v),
            };
            let mut config = builder.with_cert_resolver(Arc::new(resolver));
            full_handshakes_only(&mut config);
            Ok(Arc::new(config))
        }
    }
}

/// The SM2 identity for clients that can verify it, the standard one for
/// the rest.
#[derive(Debug)]
struct BySignatureScheme {
    sm2: Arc<rustls::sign::CertifiedKey>,
    standard: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for BySignatureScheme {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        if hello.signature_schemes().contains(&shangmi::SM2SIG_SM3) {
            Some(self.sm2.clone())
        } else {
            Some(self.standard.clone())
        }
    }
}

pub use shangmi::remember_sm2_anchors;

/// Verifies client certificates from `roots`, letting clients without one
/// in (they authenticate with SASL instead).
fn client_verifier(
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
    match roots {
        None => Ok(None),
        Some(roots) if roots.is_empty() => Err(TlsError::NoRoots),
        Some(roots) => {
            remember_sm2_anchors(&roots);
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map(Some)
                .map_err(|e| TlsError::ClientVerifier(e.to_string()))
        }
    }
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
    let builder = match client_verifier(client_roots, provider)? {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut config = builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(TlsError::Identity)?;
    full_handshakes_only(&mut config);
    Ok(Arc::new(config))
}

/// No TLS session resumption on our servers: every connection is a full
/// handshake, so a client certificate is checked (chain, validity) on each
/// one rather than carried over from a cached session, and the server
/// keeps no session cache and sends no tickets (two NewSessionTicket
/// messages per handshake by default, which none of our clients use: an
/// integrity handshake needs fresh evidence anyway).
pub fn full_handshakes_only(config: &mut ServerConfig) {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
}

/// The client side of [`full_handshakes_only`]: no session cache, no
/// resumption attempts.
pub fn no_client_resumption(config: &mut ClientConfig) {
    config.resumption = rustls::client::Resumption::disabled();
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
    remember_sm2_anchors(&roots);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .map_err(TlsError::Identity)?,
    };
    no_client_resumption(&mut config);
    Ok(Arc::new(config))
}

/// One certificate and key for every handshake, whatever the key is (one
/// loaded from a file, or [`shangmi::ExternalSm2SigningKey`]): a client's
/// or a server's certificate resolver.
#[derive(Debug)]
pub struct OneKey(pub Arc<rustls::sign::CertifiedKey>);

impl OneKey {
    /// `chain` with `key`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn rustls::sign::SigningKey>,
    ) -> Self {
        Self(Arc::new(rustls::sign::CertifiedKey::new(chain, key)))
    }

    /// `chain` with `key` as `provider` loads it.
    pub fn load(
        provider: &CryptoProvider,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(TlsError::Identity)?;
        Ok(Self::new(chain, key))
    }
}

impl rustls::client::ResolvesClientCert for OneKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for OneKey {
    fn resolve(
        &self,
        _client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// [`client_config`] presenting `key` (a [`OneKey`]).
pub fn client_config_with_key(
    provider: Arc<CryptoProvider>,
    roots: RootCertStore,
    key: Arc<OneKey>,
) -> Result<Arc<ClientConfig>, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    remember_sm2_anchors(&roots);
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots)
        .with_client_cert_resolver(key);
    no_client_resumption(&mut config);
    Ok(Arc::new(config))
}

/// `tls` for QUIC with the ALPN protocol `alpn`.
pub fn quic_server_config(
    tls: &ServerConfig,
    alpn: &[u8],
) -> Result<quinn_proto::ServerConfig, TlsError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto =
        quinn_proto::crypto::rustls::QuicServerConfig::with_initial(Arc::new(tls), initial_suite())
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
    let crypto =
        quinn_proto::crypto::rustls::QuicClientConfig::with_initial(Arc::new(tls), initial_suite())
            .map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(quinn_proto::ClientConfig::new(Arc::new(crypto)))
}

/// The suite of QUIC Initial packets: AES-128-GCM whatever the connection
/// negotiates (RFC 9001 §5.2), ring's, so that a provider without it (the
/// strict ShangMi one) still speaks QUIC.
fn initial_suite() -> rustls::quic::Suite {
    #[allow(clippy::expect_used)]
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .expect("ring's TLS13_AES_128_GCM_SHA256 has a QUIC suite")
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
