//! EK certificate chains made by `pki/tests/data/make_certs.py` (Python
//! `cryptography`): root (P-256) -> intermediate (P-256, pathlen 0) -> EK certificates
//! shaped like the TCG EK Credential Profile (empty subject, critical subjectAltName
//! with the TPM's identity). The same checks against swtpm's real EK certificates are
//! in `testnet/tests/enrollment.rs`.

use pki::ek::certificates_from_pem;
use pki::{
    ek_matches_certificate, verify_ek_certificate, EccCurve, EkCertError, EkKey, EkPublic,
    EkSymmetric, HashAlg,
};

/// 2030-01-01T00:00:00Z: inside every fixture's validity (2020..2040).
const NOW: i64 = 1_893_456_000;
/// 2040-01-01T00:00:00Z, the fixtures' notAfter.
const NOT_AFTER: i64 = 2_208_988_800;
/// 2020-01-01T00:00:00Z, the fixtures' notBefore.
const NOT_BEFORE: i64 = 1_577_836_800;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn roots() -> Vec<Vec<u8>> {
    vec![data("root.der")]
}

fn intermediates() -> Vec<Vec<u8>> {
    vec![data("intermediate.der")]
}

fn ek_public() -> EkPublic {
    let point = data("ek-p384-point.bin");
    EkPublic {
        name_alg: HashAlg::Sha384,
        symmetric: EkSymmetric::AES_256_CFB,
        key: EkKey::Ecc {
            curve: EccCurve::NistP384,
            x: point[1..49].to_vec(),
            y: point[49..].to_vec(),
        },
    }
}

#[test]
fn tcg_shaped_ek_certificate_verifies() {
    let cert = verify_ek_certificate(&data("ek-p384.der"), &roots(), &intermediates(), NOW)
        .expect("chain verifies");
    assert_eq!(
        cert.subject, "",
        "TCG EK certificates may have an empty subject"
    );
    assert_eq!(cert.issuer, "CN=Test EK Issuer");
    assert_eq!(cert.serial, [1, 2, 3, 4, 5]);
    assert_eq!((cert.not_before, cert.not_after), (NOT_BEFORE, NOT_AFTER));
    assert_eq!(cert.tpm_manufacturer.as_deref(), Some("id:54455354"));
    assert_eq!(cert.tpm_model.as_deref(), Some("testmodel"));
    assert_eq!(cert.tpm_version.as_deref(), Some("id:00010002"));
    assert_eq!(cert.chain, ["CN=Test EK Issuer", "CN=Test EK Root"]);
    assert_eq!(cert.public_key, ek_public().key);

    // The boundaries of the validity period are inside it.
    for now in [NOT_BEFORE, NOT_AFTER] {
        verify_ek_certificate(&data("ek-p384.der"), &roots(), &intermediates(), now).unwrap();
    }
    // Roots given among the intermediates, and extra certificates, change nothing.
    let mut pool = intermediates();
    pool.extend(roots());
    pool.push(data("not-ca.der"));
    verify_ek_certificate(&data("ek-p384.der"), &roots(), &pool, NOW).unwrap();
    // An intermediate configured as the trust anchor anchors the chain.
    let short = verify_ek_certificate(&data("ek-p384.der"), &intermediates(), &[], NOW).unwrap();
    assert_eq!(short.chain, ["CN=Test EK Issuer"]);
}

#[test]
fn ek_public_key_matches_its_certificate_only() {
    let cert =
        verify_ek_certificate(&data("ek-p384.der"), &roots(), &intermediates(), NOW).unwrap();
    let ek = ek_public();
    assert!(ek_matches_certificate(&ek, &cert));
    let EkKey::Ecc { curve, x, y } = ek.key.clone() else {
        unreachable!()
    };
    let mut other_y = y.clone();
    other_y[47] ^= 1;
    let changed = EkPublic {
        key: EkKey::Ecc {
            curve,
            x: x.clone(),
            y: other_y,
        },
        ..ek.clone()
    };
    assert!(!ek_matches_certificate(&changed, &cert));
    let other_curve = EkPublic {
        key: EkKey::Ecc {
            curve: EccCurve::Sm2P256,
            x,
            y,
        },
        ..ek.clone()
    };
    assert!(!ek_matches_certificate(&other_curve, &cert));
    let rsa = EkPublic {
        key: EkKey::Rsa {
            modulus: vec![0xC1; 256],
            exponent: 0,
        },
        ..ek
    };
    assert!(!ek_matches_certificate(&rsa, &cert));
}

#[test]
fn nv_padding_after_the_certificate_is_ignored_other_bytes_are_not() {
    for pad in [0x00u8, 0xFF] {
        let mut der = data("ek-p384.der");
        der.extend_from_slice(&[pad; 30]);
        verify_ek_certificate(&der, &roots(), &intermediates(), NOW).unwrap();
    }
    let mut der = data("ek-p384.der");
    der.push(0x30);
    assert!(matches!(
        verify_ek_certificate(&der, &roots(), &intermediates(), NOW),
        Err(EkCertError::Malformed { .. })
    ));
}

#[test]
fn unknown_ca_is_refused() {
    // No intermediate: nobody configured issued the EK certificate.
    assert_eq!(
        verify_ek_certificate(&data("ek-p384.der"), &roots(), &[], NOW),
        Err(EkCertError::UnknownCa {
            subject: String::new(),
            issuer: "CN=Test EK Issuer".into(),
        })
    );
    // The intermediate, but another root.
    assert_eq!(
        verify_ek_certificate(
            &data("ek-p384.der"),
            &[data("not-ca.der")],
            &intermediates(),
            NOW
        ),
        Err(EkCertError::UnknownCa {
            subject: "CN=Test EK Issuer".into(),
            issuer: "CN=Test EK Root".into(),
        })
    );
    // No roots at all.
    assert!(matches!(
        verify_ek_certificate(&data("ek-p384.der"), &[], &intermediates(), NOW),
        Err(EkCertError::UnknownCa { .. })
    ));
}

#[test]
fn bad_signature_is_refused() {
    let mut der = data("ek-p384.der");
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert_eq!(
        verify_ek_certificate(&der, &roots(), &intermediates(), NOW),
        Err(EkCertError::BadSignature {
            subject: String::new(),
            issuer: "CN=Test EK Issuer".into(),
        })
    );
    // A changed byte in the signed part (the serial) breaks the signature too.
    let mut der = data("ek-p384.der");
    let serial = der
        .windows(5)
        .position(|w| w == [1, 2, 3, 4, 5])
        .expect("serial in DER");
    der[serial + 4] = 6;
    assert!(matches!(
        verify_ek_certificate(&der, &roots(), &intermediates(), NOW),
        Err(EkCertError::BadSignature { .. })
    ));
}

#[test]
fn validity_is_checked_at_the_given_time() {
    assert_eq!(
        verify_ek_certificate(
            &data("ek-p384-expired.der"),
            &roots(),
            &intermediates(),
            NOW
        ),
        Err(EkCertError::Expired {
            subject: String::new(),
            not_after: 1_609_459_200,
            now: NOW,
        })
    );
    assert!(matches!(
        verify_ek_certificate(
            &data("ek-p384.der"),
            &roots(),
            &intermediates(),
            NOT_AFTER + 1
        ),
        Err(EkCertError::Expired { .. })
    ));
    assert!(matches!(
        verify_ek_certificate(
            &data("ek-p384.der"),
            &roots(),
            &intermediates(),
            NOT_BEFORE - 1
        ),
        Err(EkCertError::NotYetValid { .. })
    ));
}

#[test]
fn unknown_critical_extension_is_refused() {
    assert_eq!(
        verify_ek_certificate(
            &data("ek-p384-unknown-critical.der"),
            &roots(),
            &intermediates(),
            NOW
        ),
        Err(EkCertError::UnsupportedCriticalExtension {
            subject: String::new(),
            oid: "1.3.6.1.4.1.32473.1".into(),
        })
    );
}

#[test]
fn issuers_must_be_cas_within_their_path_length() {
    let mut pool = intermediates();
    pool.push(data("not-ca.der"));
    assert_eq!(
        verify_ek_certificate(&data("ek-under-not-ca.der"), &roots(), &pool, NOW),
        Err(EkCertError::NotCa {
            subject: "CN=Test Not A CA".into()
        })
    );
    pool.push(data("deep-intermediate.der"));
    assert_eq!(
        verify_ek_certificate(&data("ek-under-deep.der"), &roots(), &pool, NOW),
        Err(EkCertError::PathLenExceeded {
            subject: "CN=Test EK Issuer".into(),
            allowed: 0,
            found: 1,
        })
    );
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let der = data("ek-p384.der");
    for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
        assert!(matches!(
            verify_ek_certificate(&der[..cut], &roots(), &intermediates(), NOW),
            Err(EkCertError::Malformed { .. })
        ));
    }
    assert!(matches!(
        verify_ek_certificate(&der, &[b"not a cert".to_vec()], &intermediates(), NOW),
        Err(EkCertError::Malformed { what, .. }) if what == "root certificate 0"
    ));
}

#[test]
fn pem_roots() {
    let pem = data("root.pem");
    assert_eq!(certificates_from_pem(&pem).unwrap(), roots());
    assert!(matches!(
        certificates_from_pem(b"nothing here"),
        Err(EkCertError::Pem(_))
    ));
}
