//! SM2 keys, certificates and certificate requests: the PDP as an SM2
//! certificate authority for the ShangMi channel.
//!
//! Certificates are X.509 v3 signed with SM2-with-SM3 (1.2.156.10197.1.501,
//! parameters absent) under the default SM2 ID "1234567812345678", as
//! OpenSSL (`-sigopt distid:…`), Tongsuo and the TLS provider's chain
//! verifier expect. `x509-cert`'s builder lays out the TBS; the signature is
//! made over exactly those bytes and DER-encoded here (its generic path
//! would embed the raw r||s). rcgen cannot do this: its algorithm set is
//! closed. Verification reads certificates with `x509-parser` (the raw TBS
//! bytes as signed) and checks SM2 with the `sm2` crate, since x509-parser's
//! own `verify` knows no SM2.

use crate::alg::HashAlg;
use ring::rand::{SecureRandom, SystemRandom};
use sm2::dsa::signature::Signer as _;
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, RequestBuilder};
use x509_cert::der::asn1::{BitString, Ia5String, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

/// An SM2 public key (the `sm2` crate's), for callers without that crate.
pub use sm2::PublicKey as Sm2PublicKey;

/// The SM2 ID certificates and requests are signed under (GM/T 0009).
pub const CERT_SM2_ID: &str = "1234567812345678";

/// SM2-with-SM3 (1.2.156.10197.1.501).
const SM2_WITH_SM3: &str = "1.2.156.10197.1.501";
/// The SM2 curve (1.2.156.10197.1.301), as a public key's parameters.
const SM2_CURVE: &str = "1.2.156.10197.1.301";

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{0}")]
    Der(String),
    #[error("not an SM2 key: {0}")]
    NotSm2(String),
    #[error("the signature does not verify with the SM2 key under the default SM2 ID")]
    BadSignature,
    #[error("{0}")]
    Invalid(String),
    #[error("the random number generator failed")]
    Rng,
    #[error("the signer failed: {0}")]
    Signer(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

fn der_err(e: impl std::fmt::Display) -> CaError {
    CaError::Der(e.to_string())
}

/// An SM2 private key.
pub struct Sm2Key {
    secret: sm2::SecretKey,
}

impl std::fmt::Debug for Sm2Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sm2Key")
            .field("public", &crate::digest_hex(&self.public_sec1()))
            .finish_non_exhaustive()
    }
}

impl Sm2Key {
    /// A new key from the system's CSPRNG (32 random bytes, drawn again in
    /// the rare case they are 0 or not below the group order).
    pub fn generate() -> Result<Self, CaError> {
        let rng = SystemRandom::new();
        for _ in 0..64 {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes).map_err(|_| CaError::Rng)?;
            if let Ok(secret) = sm2::SecretKey::from_slice(&bytes) {
                return Ok(Self { secret });
            }
        }
        Err(CaError::Rng)
    }

    /// From PKCS#8 PEM ("PRIVATE KEY"), as OpenSSL and this module write it.
    pub fn from_pem(pem: &str) -> Result<Self, CaError> {
        sm2::SecretKey::from_pkcs8_pem(pem)
            .map(|secret| Self { secret })
            .map_err(|e| CaError::NotSm2(e.to_string()))
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, CaError> {
        Ok(self
            .secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(der_err)?
            .to_string())
    }

    /// Writes the key as PKCS#8 PEM, readable by its owner only (0600 from
    /// the moment the file exists), refusing to replace an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), CaError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |error| CaError::Io {
            path: path.display().to_string(),
            error,
        };
        let pem = self.to_pem()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(pem.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    pub fn public_key(&self) -> sm2::PublicKey {
        self.secret.public_key()
    }

    /// SEC1 uncompressed point.
    pub fn public_sec1(&self) -> Vec<u8> {
        self.public_key().to_sec1_bytes().to_vec()
    }

    pub fn secret(&self) -> &sm2::SecretKey {
        &self.secret
    }

    fn signer(&self) -> Result<sm2::dsa::SigningKey, CaError> {
        sm2::dsa::SigningKey::new(CERT_SM2_ID, &self.secret).map_err(der_err)
    }
}

/// What a leaf certificate may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    ServerAndClient,
}

/// A name attribute beside the common name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameAttr {
    /// organizationalUnitName (2.5.4.11): the device's role here.
    OrganizationalUnit,
    /// userId (0.9.2342.19200300.100.1.1, RFC 4519): the user's name.
    UserId,
}

impl NameAttr {
    /// The OID's DER content octets.
    fn oid(self) -> &'static [u8] {
        match self {
            NameAttr::OrganizationalUnit => &[0x55, 0x04, 0x0B],
            NameAttr::UserId => &[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01],
        }
    }
}

/// A leaf to issue.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    pub common_name: String,
    /// Further attributes of the subject name, each its own RDN after the
    /// common name.
    pub subject_extra: Vec<(NameAttr, String)>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub usage: Usage,
    pub lifetime: Duration,
}

/// A name with one common name, DER-built so that any text is carried as it
/// is (no RFC 4514 escaping to get wrong).
pub fn common_name(cn: &str) -> Result<Name, CaError> {
    name(cn, &[])
}

/// A name: the common name, then `extra`, one RDN each, UTF8String values.
pub fn name(cn: &str, extra: &[(NameAttr, String)]) -> Result<Name, CaError> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend_from_slice(&[0x81, n as u8]);
        } else {
            out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }
    if cn.is_empty() || cn.len() > 64 {
        return Err(CaError::Invalid(format!(
            "common name {cn:?}: 1 to 64 bytes (RFC 5280 ub-common-name)"
        )));
    }
    let rdn = |oid: &[u8], value: &str| {
        tlv(
            0x31,
            &tlv(
                0x30,
                &[tlv(0x06, oid), tlv(0x0C, value.as_bytes())].concat(),
            ),
        )
    };
    // id-at-commonName 2.5.4.3.
    let mut rdns = rdn(&[0x55, 0x04, 0x03], cn);
    for (attr, value) in extra {
        if value.is_empty() || value.len() > 128 {
            return Err(CaError::Invalid(format!(
                "name attribute {attr:?} {value:?}: 1 to 128 bytes"
            )));
        }
        rdns.extend(rdn(attr.oid(), value));
    }
    Name::from_der(&tlv(0x30, &rdns)).map_err(der_err)
}

/// The profile: the issuer and subject this module sets, no extensions of
/// its own (they are added explicitly).
struct Profile {
    issuer: Name,
    subject: Name,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        Ok(Vec::new())
    }
}

/// The key identifier of a public key: the leftmost 160 bits of SHA-256
/// of its subjectPublicKey (RFC 7093 §2, method 1).
fn key_id(public_sec1: &[u8]) -> Result<OctetString, CaError> {
    OctetString::new(&HashAlg::Sha256.digest(public_sec1)[..20]).map_err(der_err)
}

fn spki(public: &sm2::PublicKey) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    let der = public.to_public_key_der().map_err(der_err)?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(der_err)
}

fn serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Rng)?;
    // Positive and 16 bytes: clear the top bit, keep the first byte nonzero.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::new(&bytes).map_err(der_err)
}

fn validity(now: SystemTime, lifetime: Duration) -> Result<Validity, CaError> {
    // Five minutes back for peers whose clocks run a little behind.
    let from = now
        .checked_sub(Duration::from_secs(300))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Validity::new(
        Time::try_from(from).map_err(der_err)?,
        Time::try_from(now + lifetime).map_err(der_err)?,
    ))
}

/// Signs what a builder laid out (a certificate's TBS, a request's info)
/// with `key` (SM2-with-SM3, default ID), the signature DER-encoded, and
/// returns the whole object's DER.
fn sign_built<B>(mut builder: B, key: &Sm2Key) -> Result<Vec<u8>, CaError>
where
    B: Builder,
    B::Output: Encode,
{
    let signer = key.signer()?;
    let tbs = builder.finalize(&signer).map_err(der_err)?;
    let signature: sm2::dsa::Signature = signer.try_sign(&tbs).map_err(der_err)?;
    let signature = BitString::from_bytes(signature.to_der().as_bytes()).map_err(der_err)?;
    builder
        .assemble(signature, &signer)
        .map_err(der_err)?
        .to_der()
        .map_err(der_err)
}

/// An SM2 certificate authority: its key and self-signed certificate.
pub struct Sm2Ca {
    key: Sm2Key,
    certificate: Vec<u8>,
    name: Name,
}

impl std::fmt::Debug for Sm2Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sm2Ca").finish_non_exhaustive()
    }
}

impl Sm2Ca {
    /// A new CA: a new key and a self-signed certificate valid for `lifetime`.
    pub fn create(cn: &str, lifetime: Duration, now: SystemTime) -> Result<Self, CaError> {
        let key = Sm2Key::generate()?;
        let name = common_name(cn)?;
        let public = key.public_key();
        let mut builder = CertificateBuilder::new(
            Profile {
                issuer: name.clone(),
                subject: name.clone(),
            },
            serial()?,
            validity(now, lifetime)?,
            spki(&public)?,
        )
        .map_err(der_err)?;
        let ski = key_id(&key.public_sec1())?;
        builder
            .add_extension((
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
            ))
            .map_err(der_err)?;
        builder
            .add_extension((true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)))
            .map_err(der_err)?;
        builder
            .add_extension((false, &SubjectKeyIdentifier(ski)))
            .map_err(der_err)?;
        let certificate = sign_built(builder, &key)?;
        Ok(Self {
            key,
            certificate,
            name,
        })
    }

    /// From the CA's certificate (PEM) and key (PKCS#8 PEM); the key must be
    /// the certificate's.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = Sm2Key::from_pem(key_pem)?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
            .map_err(|e| CaError::Der(format!("the CA certificate is not PEM: {e}")))?;
        let certificate = pem.contents;
        let parsed = parse(&certificate)?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_sec1().as_slice() {
            return Err(CaError::Invalid(
                "the CA key is not the key of the CA certificate".into(),
            ));
        }
        let name = x509_cert::Certificate::from_der(&certificate)
            .map_err(der_err)?
            .tbs_certificate()
            .subject()
            .clone();
        Ok(Self {
            key,
            certificate,
            name,
        })
    }

    pub fn key(&self) -> &Sm2Key {
        &self.key
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    pub fn certificate_pem(&self) -> String {
        pem_certificate(&self.certificate)
    }

    /// A leaf for `public`, valid for `spec.lifetime` from `now`.
    pub fn issue(
        &self,
        public: &sm2::PublicKey,
        spec: &LeafSpec,
        now: SystemTime,
    ) -> Result<Vec<u8>, CaError> {
        let mut builder = CertificateBuilder::new(
            Profile {
                issuer: self.name.clone(),
                subject: name(&spec.common_name, &spec.subject_extra)?,
            },
            serial()?,
            validity(now, spec.lifetime)?,
            spki(public)?,
        )
        .map_err(der_err)?;
        builder
            .add_extension((
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            ))
            .map_err(der_err)?;
        builder
            .add_extension((true, &KeyUsage(KeyUsages::DigitalSignature.into())))
            .map_err(der_err)?;
        let eku = match spec.usage {
            Usage::Server => vec![x509_cert::der::oid::db::rfc5280::ID_KP_SERVER_AUTH],
            Usage::Client => vec![x509_cert::der::oid::db::rfc5280::ID_KP_CLIENT_AUTH],
            Usage::ServerAndClient => vec![
                x509_cert::der::oid::db::rfc5280::ID_KP_SERVER_AUTH,
                x509_cert::der::oid::db::rfc5280::ID_KP_CLIENT_AUTH,
            ],
        };
        builder
            .add_extension((false, &ExtendedKeyUsage(eku)))
            .map_err(der_err)?;
        let mut names = Vec::new();
        for d in &spec.dns_names {
            names.push(GeneralName::DnsName(
                Ia5String::new(d).map_err(|e| CaError::Invalid(format!("DNS name {d:?}: {e}")))?,
            ));
        }
        names.extend(spec.ips.iter().map(|ip| GeneralName::from(*ip)));
        if !names.is_empty() {
            builder
                .add_extension((false, &SubjectAltName(names)))
                .map_err(der_err)?;
        }
        builder
            .add_extension((
                false,
                &SubjectKeyIdentifier(key_id(&public.to_sec1_bytes())?),
            ))
            .map_err(der_err)?;
        builder
            .add_extension((
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(key_id(&self.key.public_sec1())?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            ))
            .map_err(der_err)?;
        sign_built(builder, &self.key)
    }

    /// A leaf for the key of a verified certificate request, named as the
    /// request names itself (its common name; DNS names and addresses
    /// come from the CA's caller, not the request).
    pub fn issue_for_request(
        &self,
        request: &VerifiedRequest,
        spec: &LeafSpec,
        now: SystemTime,
    ) -> Result<Vec<u8>, CaError> {
        self.issue(&request.public_key, spec, now)
    }
}

/// A PKCS#10 certificate request for `key`, named `cn`, signed with it
/// (SM2-with-SM3, default ID): what an endpoint sends for its channel key.
pub fn make_request(key: &Sm2Key, cn: &str) -> Result<Vec<u8>, CaError> {
    sign_built(RequestBuilder::new(common_name(cn)?).map_err(der_err)?, key)
}

/// A PKCS#10 request for `public` named `cn`, signed by `sign`: it is
/// handed e = SM3(Z_A || CertificationRequestInfo) under [`CERT_SM2_ID`]
/// and returns (r, s). For a key whose private half never leaves a TPM
/// (`tnc_client::tpm::Tpm::sm2_sign_digest`).
pub fn make_request_with(
    public: &sm2::PublicKey,
    cn: &str,
    sign: impl FnOnce(&[u8; 32]) -> Result<([u8; 32], [u8; 32]), String>,
) -> Result<Vec<u8>, CaError> {
    let signer = ExternalSm2(sm2::dsa::VerifyingKey::new(CERT_SM2_ID, *public).map_err(der_err)?);
    let mut builder = RequestBuilder::new(common_name(cn)?).map_err(der_err)?;
    let info = builder.finalize(&signer).map_err(der_err)?;
    let e = sm2_digest(public, CERT_SM2_ID, &info)?;
    let (r, s) = sign(&e).map_err(CaError::Signer)?;
    let signature = sm2_signature_der(&r, &s)?;
    // What the signer returned must be a signature of this request by this
    // key: checked before it goes anywhere.
    verify_sm2(public, &info, &signature, false)?;
    let signature = BitString::from_bytes(&signature).map_err(der_err)?;
    builder
        .assemble(signature, &signer)
        .map_err(der_err)?
        .to_der()
        .map_err(der_err)
}

/// The public half of an SM2 key whose private half signs elsewhere, as
/// x509-cert's builders want a signer: they take the public key and the
/// algorithm from it; the signature comes from outside.
struct ExternalSm2(sm2::dsa::VerifyingKey);

impl sm2::dsa::signature::Keypair for ExternalSm2 {
    type VerifyingKey = sm2::dsa::VerifyingKey;

    fn verifying_key(&self) -> Self::VerifyingKey {
        self.0.clone()
    }
}

impl x509_cert::spki::DynSignatureAlgorithmIdentifier for ExternalSm2 {
    fn signature_algorithm_identifier(
        &self,
    ) -> x509_cert::spki::Result<x509_cert::spki::AlgorithmIdentifierOwned> {
        self.0.signature_algorithm_identifier()
    }
}

/// A request whose SM2 signature verified with its own key.
#[derive(Clone, Debug)]
pub struct VerifiedRequest {
    pub subject: String,
    pub public_key: sm2::PublicKey,
}

/// Checks a PKCS#10 request: an SM2 key on the SM2 curve, signed with
/// SM2-with-SM3 by that key under the default ID.
pub fn verify_request(der: &[u8]) -> Result<VerifiedRequest, CaError> {
    use x509_parser::prelude::FromDer;
    let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map_err(|e| CaError::Der(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::Der("bytes after the request".into()));
    }
    let info = &csr.certification_request_info;
    let public = sm2_public_key(&info.subject_pki)?;
    if csr.signature_algorithm.algorithm.to_id_string() != SM2_WITH_SM3 {
        return Err(CaError::NotSm2(format!(
            "request signed with {}, not SM2-with-SM3",
            csr.signature_algorithm.algorithm
        )));
    }
    verify_sm2(&public, info.raw, csr.signature_value.data.as_ref(), false)?;
    Ok(VerifiedRequest {
        subject: info.subject.to_string(),
        public_key: public,
    })
}

/// The SM2 public key of a SubjectPublicKeyInfo (id-ecPublicKey on the SM2
/// curve).
pub(crate) fn sm2_public_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<sm2::PublicKey, CaError> {
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    if spki.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1"
        || curve.as_deref() != Some(SM2_CURVE)
    {
        return Err(CaError::NotSm2(format!(
            "key algorithm {} {}",
            spki.algorithm.algorithm,
            curve.unwrap_or_default()
        )));
    }
    sm2::PublicKey::from_sec1_bytes(spki.subject_public_key.data.as_ref())
        .map_err(|_| CaError::NotSm2("not a point on the SM2 curve".into()))
}

/// An SM2 signature by `public`: `cached` for the CA keys certificates are
/// checked against (a gateway's and an agent's chain checks; the comb is
/// kept for a key verified twice), not for a key a peer chose (a CSR's).
fn verify_sm2(
    public: &sm2::PublicKey,
    message: &[u8],
    der_signature: &[u8],
    cached: bool,
) -> Result<(), CaError> {
    let signature =
        sm2::dsa::Signature::from_der(der_signature).map_err(|_| CaError::BadSignature)?;
    let verify = if cached {
        crate::sm2_verify::verify
    } else {
        crate::sm2_verify::verify_uncached
    };
    verify(CERT_SM2_ID, public, message, &signature).map_err(|_| CaError::BadSignature)
}

pub(crate) fn parse(der: &[u8]) -> Result<x509_parser::certificate::X509Certificate<'_>, CaError> {
    use x509_parser::prelude::FromDer;
    let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| CaError::Der(format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::Der("bytes after the certificate".into()));
    }
    Ok(cert)
}

/// Checks that `cert` was issued by the CA `issuer` (names, the issuer is a
/// CA, SM2-with-SM3 under the default ID over the TBS as signed) and is
/// valid at `now` (Unix seconds).
pub fn verify_issued_by(cert: &[u8], issuer: &[u8], now: i64) -> Result<(), CaError> {
    let leaf = parse(cert)?;
    let ca = parse(issuer)?;
    if leaf.issuer() != ca.subject() {
        return Err(CaError::Invalid(format!(
            "issued by {:?}, not by {:?}",
            leaf.issuer().to_string(),
            ca.subject().to_string()
        )));
    }
    if !ca.is_ca() {
        return Err(CaError::Invalid(
            "the issuer is not a CA certificate".into(),
        ));
    }
    if leaf.signature_algorithm.algorithm.to_id_string() != SM2_WITH_SM3 {
        return Err(CaError::NotSm2(format!(
            "signed with {}, not SM2-with-SM3",
            leaf.signature_algorithm.algorithm
        )));
    }
    let public = sm2_public_key(ca.public_key())?;
    verify_sm2(
        &public,
        leaf.tbs_certificate.as_ref(),
        leaf.signature_value.data.as_ref(),
        true,
    )?;
    let validity = leaf.validity();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return Err(CaError::Invalid(format!(
            "not valid at {now}: valid from {} to {}",
            validity.not_before, validity.not_after
        )));
    }
    Ok(())
}

/// The SM2 public key of a DER certificate (the CA whose key signs tickets).
pub fn certificate_public_key(der: &[u8]) -> Result<sm2::PublicKey, CaError> {
    sm2_public_key(parse(der)?.public_key())
}

/// What an operator reads of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// Hex.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    pub is_ca: bool,
    /// The signature algorithm's OID, dotted.
    pub signature_algorithm: String,
    /// The DNS names of its subjectAltName.
    pub dns_names: Vec<String>,
}

/// Reads `der` for display.
pub fn describe(der: &[u8]) -> Result<CertificateInfo, CaError> {
    let c = parse(der)?;
    Ok(CertificateInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: crate::digest_hex(c.raw_serial()),
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        sha256: crate::digest_hex(&HashAlg::Sha256.digest(der)),
        is_ca: c.is_ca(),
        signature_algorithm: c.signature_algorithm.algorithm.to_id_string(),
        dns_names: c
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The common name and the organizational unit (the role, in the
/// certificates this CA issues) of `der`'s subject.
pub fn subject_cn_ou(der: &[u8]) -> Result<(Option<String>, Option<String>), CaError> {
    let c = parse(der)?;
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    let ou = c
        .subject()
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    Ok((cn, ou))
}

/// The DER of a file that holds PEM (the first block) or DER.
pub fn pem_or_der(bytes: &[u8]) -> Result<Vec<u8>, CaError> {
    match std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.find("-----BEGIN ").map(|i| &t[i..]))
    {
        Some(text) => pem::parse(text)
            .map(|p| p.contents().to_vec())
            .map_err(|e| CaError::Der(format!("not PEM: {e}"))),
        None => Ok(bytes.to_vec()),
    }
}

/// A DER certificate as PEM.
pub fn pem_certificate(der: &[u8]) -> String {
    pem_encode("CERTIFICATE", der)
}

/// DER as PEM under `label` ("CERTIFICATE REQUEST", ...), LF line ends.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The SM2 curve's a, b, xG and yG (GB/T 32918.5-2017), as Z_A hashes them.
/// The SM2 curve's a, b and generator (x, y), big-endian (GB/T 32918.5).
pub(crate) const SM2_CURVE_PARAMS: [[u8; 32]; 4] = [
    hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"),
    hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"),
    hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"),
    hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"),
];

pub(crate) const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not an upper-case hex digit"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// e = SM3(Z_A || msg), the digest an SM2 signature with SM3 signs
/// (GB/T 32918.2 §6.1): what a signer that takes a digest (a TPM; the
/// RustCrypto signer keeps this step private) is handed. `id` is the SM2
/// distinguishing ID ([`CERT_SM2_ID`] for certificates and requests).
pub fn sm2_digest(public: &sm2::PublicKey, id: &str, msg: &[u8]) -> Result<[u8; 32], CaError> {
    let entl = u16::try_from(id.len() * 8)
        .map_err(|_| CaError::NotSm2(format!("an SM2 ID of {} bytes", id.len())))?;
    let point = public.to_sec1_bytes();
    // Uncompressed: 04 || x || y.
    let (x, y) = point[1..].split_at(32);
    let mut z = Vec::with_capacity(2 + id.len() + 6 * 32);
    z.extend_from_slice(&entl.to_be_bytes());
    z.extend_from_slice(id.as_bytes());
    for c in &SM2_CURVE_PARAMS {
        z.extend_from_slice(c);
    }
    z.extend_from_slice(x);
    z.extend_from_slice(y);
    let z = HashAlg::Sm3.digest(&z);
    let mut e = z;
    e.extend_from_slice(msg);
    let e = HashAlg::Sm3.digest(&e);
    let mut out = [0u8; 32];
    out.copy_from_slice(&e);
    Ok(out)
}

/// An SM2 signature (r, s, 32 bytes each, big-endian) DER-encoded as
/// certificates, requests and TLS carry it; refuses values out of range.
pub fn sm2_signature_der(r: &[u8; 32], s: &[u8; 32]) -> Result<Vec<u8>, CaError> {
    let sig = sm2::dsa::Signature::from_scalars(*r, *s)
        .map_err(|_| CaError::NotSm2("an SM2 signature out of range".into()))?;
    Ok(sig.to_der().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm2_digest_is_what_rustcrypto_signs_under_the_id() {
        use sm2::dsa::signature::hazmat::PrehashVerifier as _;
        for (i, msg) in [&b""[..], b"abc", &[7u8; 1000]].iter().enumerate() {
            let key = Sm2Key::generate().unwrap();
            for id in [CERT_SM2_ID, "TLSv1.3+GM+Cipher+Suite"] {
                let signer = sm2::dsa::SigningKey::new(id, key.secret()).unwrap();
                let sig: sm2::dsa::Signature = signer.sign(msg);
                let e = sm2_digest(&key.public_key(), id, msg).unwrap();
                // The same key's prehash verifier, e as computed here.
                signer
                    .verifying_key()
                    .verify_prehash(&e, &sig)
                    .unwrap_or_else(|_| panic!("message {i}, ID {id}"));
                // Another ID gives another digest.
                let other = sm2_digest(&key.public_key(), "another ID", msg).unwrap();
                assert!(signer.verifying_key().verify_prehash(&other, &sig).is_err());
                // DER of (r, s) is the signature's own DER.
                let (r, s) = (sig.r_bytes(), sig.s_bytes());
                assert_eq!(
                    sm2_signature_der(&r.into(), &s.into()).unwrap(),
                    sig.to_der().as_bytes()
                );
            }
        }
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    fn unix(t: SystemTime) -> i64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn a_ca_issues_leaves_that_verify_and_refuses_what_it_did_not_sign() {
        let ca = Sm2Ca::create("Test SM2 CA", Duration::from_secs(86_400), now()).unwrap();
        let key = Sm2Key::generate().unwrap();
        let spec = LeafSpec {
            common_name: "device 0a1b".into(),
            subject_extra: vec![
                (NameAttr::OrganizationalUnit, "terminal".into()),
                (NameAttr::UserId, "alice".into()),
            ],
            dns_names: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            usage: Usage::ServerAndClient,
            lifetime: Duration::from_secs(3600),
        };
        let leaf = ca.issue(&key.public_key(), &spec, now()).unwrap();
        verify_issued_by(&leaf, ca.certificate_der(), unix(now())).unwrap();
        verify_issued_by(ca.certificate_der(), ca.certificate_der(), unix(now())).unwrap();
        let info = describe(&leaf).unwrap();
        assert!(
            info.subject.starts_with("CN=device 0a1b"),
            "{}",
            info.subject
        );
        assert!(info.subject.contains("OU=terminal"), "{}", info.subject);
        assert!(info.subject.contains("alice"), "{}", info.subject);
        assert_eq!(info.issuer, "CN=Test SM2 CA");
        assert_eq!(info.not_after - info.not_before, 3600 + 300);
        assert_eq!(info.signature_algorithm, SM2_WITH_SM3);
        assert!(!info.is_ca && describe(ca.certificate_der()).unwrap().is_ca);
        // Expired an hour and a bit later; not yet valid before it was made.
        let later = unix(now()) + 3600 + 600;
        assert!(verify_issued_by(&leaf, ca.certificate_der(), later).is_err());
        assert!(verify_issued_by(&leaf, ca.certificate_der(), unix(now()) - 3600).is_err());
        // Another CA's leaf, and a bit flipped in the signed part.
        let other = Sm2Ca::create("Test SM2 CA", Duration::from_secs(86_400), now()).unwrap();
        assert!(matches!(
            verify_issued_by(&leaf, other.certificate_der(), unix(now())),
            Err(CaError::BadSignature)
        ));
        let mut tampered = leaf.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 0x01;
        assert!(verify_issued_by(&tampered, ca.certificate_der(), unix(now())).is_err());
        // The CA reloads from its PEM files, and only with its own key.
        let again = Sm2Ca::from_pem(&ca.certificate_pem(), &ca.key().to_pem().unwrap()).unwrap();
        assert_eq!(again.certificate_der(), ca.certificate_der());
        assert!(Sm2Ca::from_pem(&ca.certificate_pem(), &key.to_pem().unwrap()).is_err());
    }

    #[test]
    fn requests_verify_with_their_own_key_only() {
        let key = Sm2Key::generate().unwrap();
        let csr = make_request(&key, "terminal 7").unwrap();
        let verified = verify_request(&csr).unwrap();
        assert_eq!(verified.public_key, key.public_key());
        assert!(
            verified.subject.contains("terminal 7"),
            "{}",
            verified.subject
        );
        // A flipped bit in the signed info: refused.
        let mut bad = csr.clone();
        let at = bad.len() / 3;
        bad[at] ^= 0x01;
        assert!(verify_request(&bad).is_err());
        assert!(verify_request(b"not a request").is_err());
    }

    #[test]
    fn common_names_carry_any_text_and_refuse_empty_or_long_ones() {
        let n = common_name("a, b + \"c\" <d>").unwrap();
        assert!(n.to_string().contains('a'));
        assert!(common_name("").is_err());
        assert!(common_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn keys_round_trip_through_pem_and_are_written_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let key = Sm2Key::generate().unwrap();
        let back = Sm2Key::from_pem(&key.to_pem().unwrap()).unwrap();
        assert_eq!(back.public_sec1(), key.public_sec1());
        let dir = std::env::temp_dir().join(format!("pki-ca-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.pem");
        key.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            key.write_new(&path).is_err(),
            "an existing key is not replaced"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
