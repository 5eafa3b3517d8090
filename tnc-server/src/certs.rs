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
