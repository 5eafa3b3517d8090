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
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok((params.self_signed(&key)?, key))
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
