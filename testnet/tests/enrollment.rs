//! AK enrollment, server side, against a real swtpm: the EK certificates swtpm_setup
//! writes (RSA-2048 at NV 0x01c00002, ECC P-384 at 0x01c00016) verify against the
//! test's own local CA and no other, and `pki::credential::make_credential` produces
//! credentials that the TPM's TPM2_ActivateCredential (through tpm2-tools) releases
//! to the right AK only.
//!
//! What is independent of our code here: libtpms decrypting the seed and checking the
//! integrity HMAC, tpm2-tools reading our blob in its own file format, swtpm_localca
//! (OpenSSL/GnuTLS) having made the certificates. Needs `swtpm`, `swtpm-tools` and
//! `tpm2-tools`; a missing tool fails the test.

use pki::credential::{make_credential, MadeCredential};
use pki::ek::certificates_from_pem;
use pki::rand::{SecureRandom, SystemRandom};
use pki::{
    ek_matches_certificate, verify_ek_certificate, EccCurve, EkCertError, EkKey, EkPublic,
    EkSymmetric, HashAlg,
};
use policy::tpm::Public;
use std::path::PathBuf;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};
use testnet::swtpm::{scratch_dir, LocalCa, Swtpm, SwtpmOptions};

const NV_EK_CERT_RSA2048: &str = "0x01c00002";
const NV_EK_CERT_ECC_P384: &str = "0x01c00016";

/// A provisioned swtpm with its own CA and a work directory, all removed on drop.
struct Tpm {
    tpm: Swtpm,
    dir: PathBuf,
    ca: LocalCa,
}

impl Tpm {
    fn start(test: &str) -> Tpm {
        let ca = LocalCa::create().expect("local CA directory");
        let tpm = Swtpm::start(&SwtpmOptions {
            pcr_banks: vec![],
            ek_certs_from: Some(ca.dir().into()),
        })
        .unwrap_or_else(|e| panic!("swtpm for {test}: {e}"));
        let dir = scratch_dir(&format!("enroll-{test}")).expect("work dir");
        Tpm { tpm, dir, ca }
    }

    fn try_tool(&self, program: &str, args: &[&str]) -> Output {
        self.tpm
            .tpm2(&self.dir, program, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn tool(&self, program: &str, args: &[&str]) {
        let out = self.try_tool(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a tpm2-tools command without the flush `Swtpm::tpm2` does afterwards:
    /// that flush would also end a policy session saved in a file.
    fn tool_keeping_sessions(&self, program: &str, args: &[&str]) {
        let out = self
            .tpm
            .tpm2_command(program, &self.dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    }

    fn write(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(file), bytes).unwrap_or_else(|e| panic!("write {file}: {e}"))
    }

    fn remove(&self, file: &str) {
        let _ = std::fs::remove_file(self.dir.join(file));
    }

    fn ek_certificate(&self, index: &str) -> Vec<u8> {
        let file = format!("ek-{index}.der");
        self.tool("tpm2_nvread", &["-C", "o", index, "-o", &file]);
        self.read(&file)
    }

    /// The root (trust anchor) and issuer (intermediate) of this TPM's local CA, DER.
    fn ca_certificates(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        ca_certificates(&self.ca)
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca_certificates(ca: &LocalCa) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let pem = |path: PathBuf| {
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        certificates_from_pem(&text).expect("PEM certificate")
    };
    (pem(ca.root_cert()), pem(ca.issuer_cert()))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// What the server does with the TPM2B_PUBLIC a client sends: parse it (`policy`)
/// and keep what MakeCredential needs.
/// The EK as `pki` takes it, converted the way the PDP converts it.
fn ek_public(tpm2b_public: &[u8]) -> EkPublic {
    let public = Public::from_tpm2b(tpm2b_public).expect("EK TPM2B_PUBLIC parses");
    policy::enrollment::ek_for_credential(&public).expect("a usable EK")
}

#[test]
fn swtpm_ek_certificates_verify_against_their_local_ca_only() {
    let tpm = Tpm::start("chain");
    let (roots, intermediates) = tpm.ca_certificates();
    let now = now();

    let rsa = verify_ek_certificate(
        &tpm.ek_certificate(NV_EK_CERT_RSA2048),
        &roots,
        &intermediates,
        now,
    )
    .expect("RSA EK certificate verifies");
    let ecc = verify_ek_certificate(
        &tpm.ek_certificate(NV_EK_CERT_ECC_P384),
        &roots,
        &intermediates,
        now,
    )
    .expect("P-384 EK certificate verifies");
    for cert in [&rsa, &ecc] {
        assert_eq!(cert.issuer, "CN=swtpm-localca");
        assert_eq!(cert.chain, ["CN=swtpm-localca", "CN=swtpm-localca-rootca"]);
        // swtpm names IBM's vendor ID and itself in the TCG subjectAltName.
        assert_eq!(cert.tpm_manufacturer.as_deref(), Some("id:00001014"));
        assert_eq!(cert.tpm_model.as_deref(), Some("swtpm"));
    }
    assert!(matches!(&rsa.public_key, EkKey::Rsa { modulus, .. } if modulus.len() == 256));
    assert!(matches!(
        &ecc.public_key,
        EkKey::Ecc {
            curve: EccCurve::NistP384,
            ..
        }
    ));

    // Another TPM's CA: same names (CN=swtpm-localca, CN=swtpm-localca-rootca),
    // other keys. Its root is not ours, with our issuer or with its own.
    let other = Tpm::start("chain-other");
    let (other_roots, other_intermediates) = other.ca_certificates();
    assert_ne!(other_roots, roots);
    for cert in [NV_EK_CERT_RSA2048, NV_EK_CERT_ECC_P384] {
        let der = tpm.ek_certificate(cert);
        assert!(
            matches!(
                verify_ek_certificate(&der, &other_roots, &intermediates, now),
                Err(EkCertError::UnknownCa { ref issuer, .. }) if issuer == "CN=swtpm-localca-rootca"
            ),
            "{cert} with our issuer under the other root"
        );
        assert!(
            matches!(
                verify_ek_certificate(&der, &other_roots, &other_intermediates, now),
                Err(EkCertError::UnknownCa { ref issuer, .. }) if issuer == "CN=swtpm-localca"
            ),
            "{cert} under the other CA"
        );
        // The other TPM's own certificate is fine under its own CA. Not at `now`:
        // its notBefore is the second it was issued, after `now` was taken.
        verify_ek_certificate(
            &other.ek_certificate(cert),
            &other_roots,
            &other_intermediates,
            self::now(),
        )
        .expect("the other TPM's EK certificate under its CA");
    }

    // swtpm certificates run to 9999-12-31T23:59:59Z: one second later they expired.
    assert_eq!(rsa.not_after, 253_402_300_799);
    let later = rsa.not_after + 1;
    assert!(matches!(
        verify_ek_certificate(
            &tpm.ek_certificate(NV_EK_CERT_RSA2048),
            &roots,
            &intermediates,
            later
        ),
        Err(EkCertError::Expired {
            not_after: 253_402_300_799,
            ..
        })
    ));
    assert!(matches!(
        verify_ek_certificate(
            &tpm.ek_certificate(NV_EK_CERT_ECC_P384),
            &roots,
            &intermediates,
            rsa.not_before - 1
        ),
        Err(EkCertError::NotYetValid { .. })
    ));
}

/// How tpm2_activatecredential is authorised to use the EK.
#[derive(Clone, Copy)]
enum EkAuth {
    /// PolicySecret(TPM_RH_ENDORSEMENT): the low-range templates' authPolicy, and
    /// they clear userWithAuth.
    PolicySecret,
    /// The high-range templates (swtpm's P-384 EK) set userWithAuth with an empty
    /// authValue, and their authPolicy is a PolicyOR that PolicySecret alone does
    /// not satisfy.
    EmptyPassword,
}

/// Runs TPM2_ActivateCredential on `blob` with the AK in ak.ctx and the EK in
/// `ek_ctx`; the recovered credential, or the tool's stderr.
fn activate(
    tpm: &Tpm,
    ek_ctx: &str,
    auth: EkAuth,
    blob: &MadeCredential,
) -> Result<Vec<u8>, String> {
    tpm.write("cred.out", &blob.to_tpm2_tools_file());
    tpm.remove("out.bin");
    let mut args = vec![
        "-c", "ak.ctx", "-C", ek_ctx, "-i", "cred.out", "-o", "out.bin",
    ];
    if let EkAuth::PolicySecret = auth {
        tpm.tool_keeping_sessions(
            "tpm2_startauthsession",
            &["--policy-session", "-S", "session.ctx"],
        );
        tpm.tool_keeping_sessions("tpm2_policysecret", &["-S", "session.ctx", "-c", "e"]);
        args.extend_from_slice(&["-P", "session:session.ctx"]);
    }
    let out = tpm.try_tool("tpm2_activatecredential", &args);
    if let EkAuth::PolicySecret = auth {
        // Already gone when the command succeeded; the flush is for the failure path.
        let _ = tpm.try_tool("tpm2_flushcontext", &["session.ctx"]);
        tpm.remove("session.ctx");
    }
    if out.status.success() {
        Ok(tpm.read("out.bin"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Creates the EK (`tpm2_createek -G ek_alg`) and an ECDSA P-256 AK under it, makes a
/// credential for the AK with our code, and has the TPM activate it; then the same
/// for another AK's Name, which the TPM must refuse. Returns the EK public.
fn enroll(tpm: &Tpm, ek_alg: &str, auth: EkAuth) -> EkPublic {
    tpm.tool(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", ek_alg, "-u", "ek.pub"],
    );
    let create_ak = |ctx: &str, public: &str, name: &str| {
        tpm.tool(
            "tpm2_createak",
            &[
                "-C", "ek.ctx", "-c", ctx, "-G", "ecc", "-g", "sha256", "-s", "ecdsa", "-u",
                public, "-n", name,
            ],
        );
    };
    create_ak("ak.ctx", "ak.pub", "ak.name");
    create_ak("ak2.ctx", "ak2.pub", "ak2.name");

    let ek = ek_public(&tpm.read("ek.pub"));
    let ak_name = tpm.read("ak.name");
    let ak = Public::from_tpm2b(&tpm.read("ak.pub")).expect("AK public parses");
    assert_eq!(ak.name(), ak_name, "tpm2-tools' ak.name is the AK's Name");
    let other_name = tpm.read("ak2.name");
    assert_ne!(ak_name, other_name);

    let rng = SystemRandom::new();
    let mut secret = vec![0u8; ek.name_alg.size()];
    rng.fill(&mut secret).expect("random secret");

    let blob = make_credential(&ek, &ak_name, &secret, &rng).expect("make_credential");
    let recovered = activate(tpm, "ek.ctx", auth, &blob)
        .unwrap_or_else(|e| panic!("ActivateCredential ({ek_alg} EK): {e}"));
    assert_eq!(recovered, secret, "the TPM returns our credential");

    // A shorter credential (16 bytes, as an AES key would be) works too.
    let blob = make_credential(&ek, &ak_name, &secret[..16], &rng).unwrap();
    assert_eq!(activate(tpm, "ek.ctx", auth, &blob).unwrap(), secret[..16]);

    // Made for the other AK: the TPM's integrity check fails with this AK loaded.
    let blob = make_credential(&ek, &other_name, &secret, &rng).unwrap();
    let refused = activate(tpm, "ek.ctx", auth, &blob).expect_err("wrong AK must fail");
    assert!(
        refused.contains("0x1DF") || refused.contains("integrity"),
        "{refused}"
    );

    // A blob whose integrity HMAC was tampered with is refused as well.
    let mut blob = make_credential(&ek, &ak_name, &secret, &rng).unwrap();
    blob.id_object[10] ^= 1;
    assert!(activate(tpm, "ek.ctx", auth, &blob).is_err());
    ek
}

#[test]
fn rsa_ek_activates_our_credential() {
    let tpm = Tpm::start("rsa");
    let ek = enroll(&tpm, "rsa", EkAuth::PolicySecret);
    assert_eq!(ek.name_alg, HashAlg::Sha256);
    assert_eq!(ek.symmetric, EkSymmetric::AES_128_CFB);

    // (c) The EK tpm2_createek made is the key the RSA EK certificate certifies.
    let (roots, intermediates) = tpm.ca_certificates();
    let now = now();
    let rsa_cert = verify_ek_certificate(
        &tpm.ek_certificate(NV_EK_CERT_RSA2048),
        &roots,
        &intermediates,
        now,
    )
    .unwrap();
    let ecc_cert = verify_ek_certificate(
        &tpm.ek_certificate(NV_EK_CERT_ECC_P384),
        &roots,
        &intermediates,
        now,
    )
    .unwrap();
    assert!(ek_matches_certificate(&ek, &rsa_cert));
    assert!(!ek_matches_certificate(&ek, &ecc_cert));
}

#[test]
fn p384_ek_with_sha384_and_aes256_activates_our_credential() {
    let tpm = Tpm::start("p384");
    // tpm2_createek -G ecc384 recreates the EK swtpm_setup certified (template H-3).
    let ek = enroll(&tpm, "ecc384", EkAuth::EmptyPassword);
    assert_eq!(ek.name_alg, HashAlg::Sha384);
    assert_eq!(ek.symmetric, EkSymmetric::AES_256_CFB);

    let (roots, intermediates) = tpm.ca_certificates();
    let now = now();
    let ecc_cert = verify_ek_certificate(
        &tpm.ek_certificate(NV_EK_CERT_ECC_P384),
        &roots,
        &intermediates,
        now,
    )
    .unwrap();
    let rsa_cert = verify_ek_certificate(
        &tpm.ek_certificate(NV_EK_CERT_RSA2048),
        &roots,
        &intermediates,
        now,
    )
    .unwrap();
    assert!(ek_matches_certificate(&ek, &ecc_cert));
    assert!(!ek_matches_certificate(&ek, &rsa_cert));
}

#[test]
fn p256_ek_activates_our_credential() {
    // The low-range ECC template (L-2); swtpm has no certificate for it.
    let tpm = Tpm::start("p256");
    let ek = enroll(&tpm, "ecc", EkAuth::PolicySecret);
    assert_eq!(ek.name_alg, HashAlg::Sha256);
    assert_eq!(ek.symmetric, EkSymmetric::AES_128_CFB);
    assert!(matches!(
        ek.key,
        EkKey::Ecc {
            curve: EccCurve::NistP256,
            ..
        }
    ));
}
