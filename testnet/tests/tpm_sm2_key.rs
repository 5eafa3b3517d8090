//! The channel key in the TPM (issue 12, item 1, first slice): swtpm makes
//! an SM2 signing key (an owner-hierarchy primary from a unique value the
//! endpoint keeps) and signs the SM3(Z_A || M) digest it is handed; the
//! result verifies as an ordinary SM2-with-SM3 signature under the ID, with
//! RustCrypto's verifier and with OpenSSL's (Debian 3.0), for the
//! certificate ID and the TLS CertificateVerify ID.

use pki::ca::{sm2_digest, sm2_signature_der, CERT_SM2_ID};
use sm2::dsa::signature::Verifier as _;
use sm2::pkcs8::EncodePublicKey as _;
use testnet::swtpm::{scratch_dir, Swtpm};
use tnc_client::tpm::{Tpm, TpmConfig};

#[test]
fn the_tpm_signs_sm2_with_sm3_through_the_digest_it_is_handed() {
    let swtpm = Swtpm::start(&Default::default()).unwrap();
    let mut tpm = Tpm::open(&TpmConfig::parse(&swtpm.tcti()).unwrap()).unwrap();
    let unique = [0x5au8; 32];
    let public = tpm.sm2_public_key(&unique).unwrap();
    // The same unique value, the same key; another, another key.
    assert_eq!(tpm.sm2_public_key(&unique).unwrap(), public);
    assert_ne!(tpm.sm2_public_key(&[0xa5; 32]).unwrap(), public);
    let key = sm2::PublicKey::from_sec1_bytes(&public).unwrap();

    let dir = scratch_dir("tpm-sm2").unwrap();
    std::fs::write(
        dir.join("key.pem"),
        key.to_public_key_pem(sm2::pkcs8::LineEnding::LF).unwrap(),
    )
    .unwrap();
    for (i, msg) in [&b"a CSR's CertificationRequestInfo"[..], &[0u8; 300], b""]
        .iter()
        .enumerate()
    {
        for id in [CERT_SM2_ID, "TLSv1.3+GM+Cipher+Suite"] {
            let e = sm2_digest(&key, id, msg).unwrap();
            let (r, s) = tpm.sm2_sign_digest(&unique, &e).unwrap();
            let sig = sm2::dsa::Signature::from_scalars(r, s).unwrap();
            // RustCrypto: a standard SM2-with-SM3 verification of `msg`.
            sm2::dsa::VerifyingKey::new(id, key)
                .unwrap()
                .verify(msg, &sig)
                .unwrap_or_else(|_| panic!("message {i}, ID {id}"));
            // And not under another ID.
            assert!(sm2::dsa::VerifyingKey::new("1234567812345679", key)
                .unwrap()
                .verify(msg, &sig)
                .is_err());
            // OpenSSL: pkeyutl over the raw message with SM3 and the ID.
            std::fs::write(dir.join("msg"), msg).unwrap();
            std::fs::write(dir.join("sig.der"), sm2_signature_der(&r, &s).unwrap()).unwrap();
            let out = std::process::Command::new("openssl")
                .current_dir(&dir)
                .args([
                    "pkeyutl", "-verify", "-pubin", "-inkey", "key.pem", "-rawin", "-in", "msg",
                    "-digest", "sm3", "-sigfile", "sig.der", "-pkeyopt",
                ])
                .arg(format!("distid:{id}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl, message {i}, ID {id}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // A digest of the wrong length never reaches the TPM as a signature of
    // something else: the API takes 32 bytes only (checked by the type).
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_request_signed_in_the_tpm_verifies_here_and_with_openssl() {
    let swtpm = Swtpm::start(&Default::default()).unwrap();
    let mut tpm = Tpm::open(&TpmConfig::parse(&swtpm.tcti()).unwrap()).unwrap();
    let unique = [0x11u8; 32];
    let key = sm2::PublicKey::from_sec1_bytes(&tpm.sm2_public_key(&unique).unwrap()).unwrap();
    let csr = pki::ca::make_request_with(&key, "tnc channel key", |e| {
        tpm.sm2_sign_digest(&unique, e).map_err(|e| e.to_string())
    })
    .unwrap();
    let verified = pki::ca::verify_request(&csr).unwrap();
    assert_eq!(verified.public_key, key);
    assert!(verified.subject.contains("tnc channel key"));

    let dir = scratch_dir("tpm-sm2-csr").unwrap();
    std::fs::write(dir.join("req.der"), &csr).unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(&dir)
        .args([
            "req", "-verify", "-noout", "-inform", "DER", "-in", "req.der", "-vfyopt",
        ])
        .arg(format!("distid:{CERT_SM2_ID}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl req -verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A signer that answers for another digest (or another key): refused
    // before a request is made of it.
    let other = tpm.sm2_public_key(&[0x22; 32]).unwrap();
    let wrong = pki::ca::make_request_with(
        &sm2::PublicKey::from_sec1_bytes(&other).unwrap(),
        "tnc channel key",
        |e| tpm.sm2_sign_digest(&unique, e).map_err(|e| e.to_string()),
    );
    assert!(
        matches!(wrong, Err(pki::ca::CaError::BadSignature)),
        "{wrong:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
