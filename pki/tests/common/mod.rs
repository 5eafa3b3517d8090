//! What the ShangMi TLS tests share: SM2 (and ECDSA) certificates made by
//! an independent implementation, Debian's OpenSSL 3.0, and reading them.

#![allow(dead_code)]

use pki::tls::Identity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch folder for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pki-shangmi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An SM2 CA, self-signed under `id` (the default SM2 ID unless a test
/// says otherwise).
pub fn sm2_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "SM2",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-sm3",
            "-sigopt",
            "distid:1234567812345678",
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A leaf for `localhost` from `ca`, signed under the SM2 ID `id`.
pub fn sm2_leaf(dir: &Path, ca: &str, name: &str, id: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "SM2",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-sm3",
            "-sigopt",
            "distid:1234567812345678",
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-sm3",
            "-sigopt",
            &format!("distid:{id}"),
            "-vfyopt",
            "distid:1234567812345678",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// An ECDSA P-256 leaf for `localhost`, self-signed.
pub fn ecdsa_leaf(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

pub fn identity(dir: &Path, name: &str) -> Identity {
    Identity {
        chain: CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap(),
        key: PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap(),
    }
}

pub fn roots(dir: &Path, name: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join(format!("{name}.pem"))).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// The PKI most tests use: a CA, a server and a client leaf.
pub fn pki(name: &str) -> PathBuf {
    let dir = scratch(name);
    sm2_ca(&dir, "ca");
    sm2_leaf(&dir, "ca", "server", "1234567812345678");
    sm2_leaf(&dir, "ca", "client", "1234567812345678");
    dir
}
