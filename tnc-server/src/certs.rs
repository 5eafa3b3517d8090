//! Certificates the PDP makes for itself and its tests: a CA and the
//! certificates it issues (the server's, clients'), and private files.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A self-signed CA that issues end-entity certificates only.
pub fn new_ca(common_name: &str) -> Result<(Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    Ok((new_ca_with_key(common_name, &key)?, key))
}

/// A certificate for `names` (DNS names or IP addresses, as rcgen reads
/// them) with a fresh key, issued by `ca`.
pub fn issue(
    common_name: &str,
    names: Vec<String>,
    (ca, ca_key): &(Certificate, KeyPair),
) -> Result<(Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    Ok((params.signed_by(&key, ca, ca_key)?, key))
}

/// An SM2 CA (valid ten years) and a server certificate it issues for
/// `names` (DNS names or IP addresses; valid 825 days), with the server's
/// new SM2 key: the PDP's identity for the ShangMi suites.
pub fn sm2_server(
    ca_name: &str,
    server_name: &str,
    names: &[String],
) -> Result<(pki::ca::Sm2Ca, Vec<u8>, pki::ca::Sm2Key), pki::ca::CaError> {
    use std::time::{Duration, SystemTime};
    let now = SystemTime::now();
    let ca = pki::ca::Sm2Ca::create(ca_name, Duration::from_secs(10 * 365 * 86_400), now)?;
    let key = pki::ca::Sm2Key::generate()?;
    let (ips, dns_names): (Vec<_>, Vec<_>) = names
        .iter()
        .partition(|n| n.parse::<std::net::IpAddr>().is_ok());
    let spec = pki::ca::LeafSpec {
        common_name: server_name.to_string(),
        subject_extra: Vec::new(),
        dns_names: dns_names.into_iter().cloned().collect(),
        ips: ips.iter().filter_map(|n| n.parse().ok()).collect(),
        usage: pki::ca::Usage::Server,
        lifetime: Duration::from_secs(825 * 86_400),
    };
    let cert = ca.issue(&key.public_key(), &spec, now)?;
    Ok((ca, cert, key))
}

/// A name for a gateway or an admin (a certificate's CN, a file name): 1
/// to 64 letters, digits, '.', '-' or '_'.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Why an admin certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum AdminIssueError {
    #[error("the name {0:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    Name(String),
    #[error("no certificate in the CA file has the CA key's public key")]
    NoMatchingCa,
    #[error(
        "the CA's subject is not a lone common name, which this command cannot reproduce: \
         issue admin certificates with your own tools (subject CN=NAME, OU={} or {}, \
         extended key usage clientAuth)",
        tnc_proto::admin::OU_READ,
        tnc_proto::admin::OU_WRITE
    )]
    CaSubject,
    #[error("the lifetime ends past the year 9999")]
    Lifetime,
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
}

/// An admin certificate (subject CN=`name`, OU = the role's; clientAuth;
/// valid from an hour ago for `lifetime`) with a new P-256 key, issued by
/// the CA among `ca_pem`'s certificates whose key is `ca_key_pem` (the CA
/// `tnc-server init` makes). Returns the certificate and key, PEM.
pub fn issue_admin(
    ca_pem: &str,
    ca_key_pem: &str,
    name: &str,
    role: tnc_proto::admin::AdminRole,
    lifetime: std::time::Duration,
) -> Result<(String, String), AdminIssueError> {
    if !valid_name(name) {
        return Err(AdminIssueError::Name(name.into()));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    use rustls::pki_types::pem::PemObject;
    let names = rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .filter_map(Result::ok)
        .filter_map(|c| pki::subject_names(c.as_ref()))
        .find(|n| n.public_key_info == ca_key.public_key_der())
        .ok_or(AdminIssueError::NoMatchingCa)?;
    // rcgen signs with an issuer Certificate: the CA's own, made again from
    // its name and key. Its subject must come out byte for byte the same,
    // or verifiers would not chain the new certificate to the real CA.
    let ca_name = names
        .common_name
        .filter(|_| names.units.is_empty())
        .ok_or(AdminIssueError::CaSubject)?;
    let ca = new_ca_with_key(&ca_name, &ca_key)?;
    if pki::subject_names(ca.der()).map(|n| n.subject_der) != Some(names.subject_der) {
        return Err(AdminIssueError::CaSubject);
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.ou());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = time::Duration::try_from(lifetime)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or(AdminIssueError::Lifetime)?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// [`new_ca`]'s certificate for an existing key.
fn new_ca_with_key(common_name: &str, key: &KeyPair) -> Result<Certificate, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.self_signed(key)
}

/// Writes a file only its owner may read (private keys, the store). With
/// `overwrite` false an existing file is an error.
pub fn write_private(path: &Path, bytes: &[u8], overwrite: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod admin_tests {
    use super::*;
    use tnc_proto::admin::AdminRole;

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    #[test]
    fn admin_certificates_are_refused_what_cannot_be_issued_right() {
        let (ca, key) = new_ca("TNC PDP CA (test)").unwrap();
        let (ca_pem, key_pem) = (ca.pem(), key.serialize_pem());
        let (cert, _) = issue_admin(&ca_pem, &key_pem, "alice", AdminRole::ReadWrite, DAY).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer<'_>| c.to_vec())
            .unwrap();
        let names = pki::subject_names(&der).unwrap();
        assert_eq!(names.common_name.as_deref(), Some("alice"));
        assert_eq!(names.units, [tnc_proto::admin::OU_WRITE]);
        for bad in ["", "a/b", "white space", &"x".repeat(65)] {
            assert!(
                matches!(
                    issue_admin(&ca_pem, &key_pem, bad, AdminRole::ReadOnly, DAY),
                    Err(AdminIssueError::Name(_))
                ),
                "{bad:?}"
            );
        }
        // The key of another CA.
        let other = KeyPair::generate().unwrap().serialize_pem();
        assert!(matches!(
            issue_admin(&ca_pem, &other, "alice", AdminRole::ReadOnly, DAY),
            Err(AdminIssueError::NoMatchingCa)
        ));
        // A CA whose subject is more than a CN cannot be made again.
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "ops CA");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "ops");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ou_key = KeyPair::generate().unwrap();
        let ou_ca = params.self_signed(&ou_key).unwrap();
        assert!(matches!(
            issue_admin(
                &ou_ca.pem(),
                &ou_key.serialize_pem(),
                "alice",
                AdminRole::ReadOnly,
                DAY
            ),
            Err(AdminIssueError::CaSubject)
        ));
        assert!(matches!(
            issue_admin(
                &ca_pem,
                &key_pem,
                "alice",
                AdminRole::ReadOnly,
                std::time::Duration::MAX
            ),
            Err(AdminIssueError::Lifetime)
        ));
    }
}
