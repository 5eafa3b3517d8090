//! AK enrollment end to end on real swtpm: the PDP side (policy::enrollment,
//! with pki's chain check and MakeCredential) against the client's TPM layer
//! (tnc_client::tpm's ActivateCredential).

use policy::enrollment::{begin, EnrollError};
use policy::tpm::Public;
use testnet::swtpm::{LocalCa, Swtpm, SwtpmOptions};
use tnc_client::tpm::{AkKind, EkKind, Tpm, TpmConfig};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        // swtpm stamps notBefore with the second of provisioning.
        + 1
}

fn der(pem_path: &std::path::Path) -> Vec<Vec<u8>> {
    pki::ek::certificates_from_pem(&std::fs::read(pem_path).unwrap()).unwrap()
}

/// Fields drop in order: the TPM connection (which flushes its handles) before
/// the swtpm process.
struct Device {
    tpm: Tpm,
    _swtpm: Swtpm,
}

fn device(ca: &LocalCa) -> Device {
    let swtpm = Swtpm::start(&SwtpmOptions {
        pcr_banks: vec![],
        ek_certs_from: Some(ca.dir().to_path_buf()),
    })
    .unwrap();
    let tpm = Tpm::open(&TpmConfig::parse(&swtpm.tcti()).unwrap()).unwrap();
    Device { tpm, _swtpm: swtpm }
}

#[test]
fn certified_ek_and_resident_ak_enroll_for_rsa_and_p384() {
    let ca = LocalCa::create().unwrap();
    let mut d = device(&ca);
    let (roots, intermediates) = (der(&ca.root_cert()), der(&ca.issuer_cert()));
    let rng = pki::rand::SystemRandom::new();
    for kind in [EkKind::Rsa2048, EkKind::EccP384] {
        let cert = d
            .tpm
            .ek_certificate(kind)
            .unwrap()
            .expect("swtpm certified this EK");
        let ek = d.tpm.endorsement_key(kind).unwrap();
        let ak = d.tpm.create_ak(kind, AkKind::EcdsaP256Sha256).unwrap();
        let ek_pub = ek;
        let ak_pub = Public::parse(ak.public_area()).unwrap();
        let pending = begin(&ek_pub, &cert, &roots, &intermediates, &ak_pub, now(), &rng).unwrap();
        let secret = d
            .tpm
            .activate_credential(&ak, kind, &pending.id_object, &pending.encrypted_secret)
            .unwrap();
        pending
            .finish(&secret)
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(matches!(
            pending.finish(&[0; 32]),
            Err(EnrollError::ActivationFailed)
        ));
    }
}

#[test]
fn foreign_ak_unknown_ca_and_wrong_attributes_are_refused() {
    let ca = LocalCa::create().unwrap();
    let mut d = device(&ca);
    let (roots, intermediates) = (der(&ca.root_cert()), der(&ca.issuer_cert()));
    let rng = pki::rand::SystemRandom::new();
    let kind = EkKind::Rsa2048;
    let cert = d.tpm.ek_certificate(kind).unwrap().unwrap();
    let ek = d.tpm.endorsement_key(kind).unwrap();
    let ak = d.tpm.create_ak(kind, AkKind::EcdsaP256Sha256).unwrap();

    // An AK that is not in this TPM (a software key with AK attributes): the
    // credential is bound to its Name, so the TPM cannot release the secret.
    let foreign = testnet::soft_ak::SoftAk::generate().public();
    let pending = begin(&ek, &cert, &roots, &intermediates, &foreign, now(), &rng).unwrap();
    let r = d
        .tpm
        .activate_credential(&ak, kind, &pending.id_object, &pending.encrypted_secret);
    assert!(r.is_err(), "activation must fail for another AK's Name");

    // An EK certificate from a CA the PDP does not trust.
    let other = LocalCa::create().unwrap();
    let _other_tpm = device(&other);
    let e = begin(
        &ek,
        &cert,
        &der(&other.root_cert()),
        &der(&other.issuer_cert()),
        &foreign,
        now(),
        &rng,
    )
    .unwrap_err();
    assert!(matches!(e, EnrollError::EkCertificate(_)), "{e}");

    // An EK public area other than the certified one.
    let other_ek = d.tpm.endorsement_key(EkKind::EccP256).unwrap();
    let e = begin(
        &other_ek,
        &cert,
        &roots,
        &intermediates,
        &foreign,
        now(),
        &rng,
    )
    .unwrap_err();
    assert!(matches!(e, EnrollError::EkMismatch), "{e}");

    // A key that can decrypt is no attestation key.
    let mut bytes = testnet::soft_ak::SoftAk::generate().public_area().to_vec();
    bytes[5] |= 0x02; // decrypt (0x00020000)
    let e = begin(
        &ek,
        &cert,
        &roots,
        &intermediates,
        &Public::parse(&bytes).unwrap(),
        now(),
        &rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("decryption"), "{e}");
    let mut bytes = testnet::soft_ak::SoftAk::generate().public_area().to_vec();
    bytes[7] &= !0x02; // fixedTPM
    let e = begin(
        &ek,
        &cert,
        &roots,
        &intermediates,
        &Public::parse(&bytes).unwrap(),
        now(),
        &rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("fixedTPM"), "{e}");
}
