//! MakeCredential against known answers computed independently (Python's hashlib,
//! hmac and `cryptography`: `python3 pki/tests/data/vectors.py` prints the constants
//! below), and its refusals. The end-to-end check against a real TPM's
//! ActivateCredential is `testnet/tests/enrollment.rs`.

use pki::credential::{
    make_credential, make_credential_with_seed, CredentialError, CredentialSeed,
    TPM2_TOOLS_CREDENTIAL_MAGIC,
};
use pki::{EccCurve, EkKey, EkPublic, EkSymmetric, HashAlg};
use ring::rand::SystemRandom;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn name256() -> Vec<u8> {
    hex(&format!("000b{}", "ab".repeat(32)))
}

fn name384() -> Vec<u8> {
    hex(&format!("000c{}", "cd".repeat(48)))
}

fn credential() -> Vec<u8> {
    (1..=32).collect()
}

/// A throwaway RSA-2048 key (openssl genpkey), standing in for a TPM's EK.
fn rsa_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_der(include_bytes!("data/rsa2048-key.pk8.der")).unwrap()
}

fn rsa_ek(key: &rsa::RsaPrivateKey, name_alg: HashAlg, symmetric: EkSymmetric) -> EkPublic {
    EkPublic {
        name_alg,
        symmetric,
        key: EkKey::Rsa {
            modulus: key.n().to_bytes_be(),
            // As in TPMS_RSA_PARMS: 0 means 65537.
            exponent: 0,
        },
    }
}

fn ecc_ek(
    curve: EccCurve,
    name_alg: HashAlg,
    symmetric: EkSymmetric,
    x: &str,
    y: &str,
) -> EkPublic {
    EkPublic {
        name_alg,
        symmetric,
        key: EkKey::Ecc {
            curve,
            x: hex(x),
            y: hex(y),
        },
    }
}

/// The TPM2B_ENCRYPTED_SECRET of an RSA EK is OAEP(label "IDENTITY\0") of the seed.
fn rsa_decrypt_seed<D>(key: &rsa::RsaPrivateKey, secret: &[u8]) -> Vec<u8>
where
    D: 'static + sha2::Digest + sha2::digest::DynDigest + Send + Sync,
{
    assert_eq!(usize::from(u16::from_be_bytes([secret[0], secret[1]])), 256);
    assert_eq!(secret.len(), 2 + 256);
    key.decrypt(
        rsa::Oaep::new_with_label::<D, _>("IDENTITY\0"),
        &secret[2..],
    )
    .expect("OAEP with label IDENTITY\\0 decrypts")
}

#[test]
fn rsa_ek_with_fixed_seed_matches_known_answer() {
    let key = rsa_key();
    let ek = rsa_ek(&key, HashAlg::Sha256, EkSymmetric::AES_128_CFB);
    let rng = SystemRandom::new();
    let seed = CredentialSeed::rsa(&ek, hex(RSA_SEED), &rng).unwrap();
    let made = make_credential_with_seed(&ek, &name256(), &credential(), &seed).unwrap();
    assert_eq!(made.id_object, hex(RSA_ID_OBJECT));
    assert_eq!(made.encrypted_secret, seed.encrypted_secret());
    assert_eq!(
        rsa_decrypt_seed::<sha2::Sha256>(&key, &made.encrypted_secret),
        hex(RSA_SEED)
    );
    // Without the label, OAEP refuses: the label is part of the format.
    assert!(key
        .decrypt(
            rsa::Oaep::new::<sha2::Sha256>(),
            &made.encrypted_secret[2..]
        )
        .is_err());
}

#[test]
fn rsa_ek_with_sha384_name_alg_and_aes256() {
    let key = rsa_key();
    let ek = rsa_ek(&key, HashAlg::Sha384, EkSymmetric::AES_256_CFB);
    let seed = CredentialSeed::rsa(&ek, hex(SHA384_SEED), &SystemRandom::new()).unwrap();
    let made = make_credential_with_seed(&ek, &name384(), &credential()[..16], &seed).unwrap();
    assert_eq!(made.id_object, hex(SHA384_AES256_ID_OBJECT));
    assert_eq!(
        rsa_decrypt_seed::<sha2::Sha384>(&key, &made.encrypted_secret),
        hex(SHA384_SEED)
    );
}

#[test]
fn ecc_p256_ek_with_fixed_ecdh_matches_known_answer() {
    let ek = ecc_ek(
        EccCurve::NistP256,
        HashAlg::Sha256,
        EkSymmetric::AES_128_CFB,
        P256_EK_X,
        P256_EK_Y,
    );
    let seed = CredentialSeed::from_ecdh(
        &ek,
        &hex(P256_Z),
        &hex(P256_EPHEMERAL_X),
        &hex(P256_EPHEMERAL_Y),
    )
    .unwrap();
    let made = make_credential_with_seed(&ek, &name256(), &credential(), &seed).unwrap();
    assert_eq!(made.encrypted_secret, hex(P256_SECRET));
    assert_eq!(made.id_object, hex(P256_ID_OBJECT));
}

#[test]
fn ecc_p384_ek_with_sha384_and_aes256_matches_known_answer() {
    // The shape of swtpm's P-384 EK (TCG high-range template H-3).
    let ek = ecc_ek(
        EccCurve::NistP384,
        HashAlg::Sha384,
        EkSymmetric::AES_256_CFB,
        P384_EK_X,
        P384_EK_Y,
    );
    let seed = CredentialSeed::from_ecdh(
        &ek,
        &hex(P384_Z),
        &hex(P384_EPHEMERAL_X),
        &hex(P384_EPHEMERAL_Y),
    )
    .unwrap();
    let made = make_credential_with_seed(&ek, &name384(), &credential(), &seed).unwrap();
    assert_eq!(made.encrypted_secret, hex(P384_SECRET));
    assert_eq!(made.id_object, hex(P384_ID_OBJECT));
}

#[test]
fn random_make_credential_has_the_tpm_layout_and_a_fresh_seed() {
    let rng = SystemRandom::new();
    let p256 = ecc_ek(
        EccCurve::NistP256,
        HashAlg::Sha256,
        EkSymmetric::AES_128_CFB,
        P256_EK_X,
        P256_EK_Y,
    );
    let a = make_credential(&p256, &name256(), &credential(), &rng).unwrap();
    let b = make_credential(&p256, &name256(), &credential(), &rng).unwrap();
    assert_ne!(a, b);
    // u16 size | u16 32 | HMAC(32) | encIdentity(2 + 32)
    assert_eq!(a.id_object.len(), 2 + 2 + 32 + 34);
    assert_eq!(&a.id_object[..4], &[0x00, 0x44, 0x00, 0x20]);
    // u16 size | u16 32 | x(32) | u16 32 | y(32)
    assert_eq!(a.encrypted_secret.len(), 2 + 68);
    assert_eq!(&a.encrypted_secret[..4], &[0x00, 0x44, 0x00, 0x20]);

    let p384 = ecc_ek(
        EccCurve::NistP384,
        HashAlg::Sha384,
        EkSymmetric::AES_256_CFB,
        P384_EK_X,
        P384_EK_Y,
    );
    let c = make_credential(&p384, &name256(), &credential(), &rng).unwrap();
    assert_eq!(&c.id_object[..4], &[0x00, 0x54, 0x00, 0x30]);
    assert_eq!(&c.encrypted_secret[..4], &[0x00, 0x64, 0x00, 0x30]);

    let key = rsa_key();
    let ek = rsa_ek(&key, HashAlg::Sha256, EkSymmetric::AES_128_CFB);
    let d = make_credential(&ek, &name256(), b"sixteen byte key", &rng).unwrap();
    assert_eq!(d.id_object.len(), 2 + 2 + 32 + 18);
    assert_eq!(
        rsa_decrypt_seed::<sha2::Sha256>(&key, &d.encrypted_secret).len(),
        32
    );
}

#[test]
fn the_ak_name_is_bound_into_the_integrity_hmac_only() {
    let ek = ecc_ek(
        EccCurve::NistP256,
        HashAlg::Sha256,
        EkSymmetric::AES_128_CFB,
        P256_EK_X,
        P256_EK_Y,
    );
    let seed = CredentialSeed::from_ecdh(
        &ek,
        &hex(P256_Z),
        &hex(P256_EPHEMERAL_X),
        &hex(P256_EPHEMERAL_Y),
    )
    .unwrap();
    let mut other = name256();
    other[33] ^= 1;
    let a = make_credential_with_seed(&ek, &name256(), &credential(), &seed).unwrap();
    let b = make_credential_with_seed(&ek, &other, &credential(), &seed).unwrap();
    assert_ne!(a.id_object[4..36], b.id_object[4..36], "integrity");
    // The symmetric key is KDFa(seed, "STORAGE", name): encIdentity differs too.
    assert_ne!(a.id_object[36..], b.id_object[36..]);
    assert_eq!(a.encrypted_secret, b.encrypted_secret);
}

#[test]
fn tpm2_tools_file_layout() {
    let made = pki::MadeCredential {
        id_object: vec![0x00, 0x02, 0xAA, 0xBB],
        encrypted_secret: vec![0x00, 0x01, 0xCC],
    };
    assert_eq!(TPM2_TOOLS_CREDENTIAL_MAGIC, 0xBADC_C0DE);
    assert_eq!(
        made.to_tpm2_tools_file(),
        [0xBA, 0xDC, 0xC0, 0xDE, 0, 0, 0, 1, 0x00, 0x02, 0xAA, 0xBB, 0x00, 0x01, 0xCC]
    );
}

#[test]
fn refusals() {
    let rng = SystemRandom::new();
    let p256 = ecc_ek(
        EccCurve::NistP256,
        HashAlg::Sha256,
        EkSymmetric::AES_128_CFB,
        P256_EK_X,
        P256_EK_Y,
    );
    let make = |ek: &EkPublic, name: &[u8], cred: &[u8]| make_credential(ek, name, cred, &rng);

    assert_eq!(
        make(&p256, &name256(), &[7; 33]),
        Err(CredentialError::CredentialSize { len: 33, max: 32 })
    );
    assert_eq!(
        make(&p256, &name256(), &[]),
        Err(CredentialError::CredentialSize { len: 0, max: 32 })
    );
    for bad_name in [vec![], vec![0x00], name256()[..33].to_vec(), {
        let mut n = name256();
        n[1] = 0x99;
        n
    }] {
        assert_eq!(
            make(&p256, &bad_name, &credential()),
            Err(CredentialError::InvalidAkName {
                len: bad_name.len()
            })
        );
    }
    // A SHA-1 or SM3 AK Name is a well-formed Name.
    assert!(make(
        &p256,
        &hex(&format!("0004{}", "11".repeat(20))),
        &credential()
    )
    .is_ok());
    assert!(make(
        &p256,
        &hex(&format!("0012{}", "11".repeat(32))),
        &credential()
    )
    .is_ok());

    let sm4 = EkPublic {
        symmetric: EkSymmetric {
            algorithm: 0x0013,
            key_bits: 128,
            mode: EkSymmetric::CFB,
        },
        ..p256.clone()
    };
    assert!(matches!(
        make(&sm4, &name256(), &credential()),
        Err(CredentialError::UnsupportedSymmetric {
            algorithm: 0x0013,
            ..
        })
    ));
    let ctr = EkPublic {
        symmetric: EkSymmetric {
            mode: 0x0040,
            ..EkSymmetric::AES_128_CFB
        },
        ..p256.clone()
    };
    assert!(matches!(
        make(&ctr, &name256(), &credential()),
        Err(CredentialError::UnsupportedSymmetric { .. })
    ));

    let p521 = EkPublic {
        key: EkKey::Ecc {
            curve: EccCurve::NistP521,
            x: vec![1; 66],
            y: vec![2; 66],
        },
        ..p256.clone()
    };
    assert_eq!(
        make(&p521, &name256(), &credential()),
        Err(CredentialError::UnsupportedCurve(EccCurve::NistP521))
    );
    let off_curve = EkPublic {
        key: EkKey::Ecc {
            curve: EccCurve::NistP256,
            x: vec![1; 32],
            y: vec![2; 32],
        },
        ..p256.clone()
    };
    assert!(matches!(
        make(&off_curve, &name256(), &credential()),
        Err(CredentialError::InvalidEkKey(_))
    ));
    let too_long_coordinate = EkPublic {
        key: EkKey::Ecc {
            curve: EccCurve::NistP256,
            x: vec![1; 33],
            y: vec![2; 32],
        },
        ..p256.clone()
    };
    assert!(matches!(
        make(&too_long_coordinate, &name256(), &credential()),
        Err(CredentialError::InvalidEkKey(_))
    ));

    let rsa1024 = EkPublic {
        key: EkKey::Rsa {
            modulus: vec![0xC5; 128],
            exponent: 65537,
        },
        ..p256.clone()
    };
    assert!(matches!(
        make(&rsa1024, &name256(), &credential()),
        Err(CredentialError::InvalidEkKey(_))
    ));

    // A seed made for one kind of EK is refused for another, and a seed must have
    // the nameAlg's size.
    let key = rsa_key();
    let rsa_ek = rsa_ek(&key, HashAlg::Sha256, EkSymmetric::AES_128_CFB);
    let ecc_seed = CredentialSeed::from_ecdh(
        &p256,
        &hex(P256_Z),
        &hex(P256_EPHEMERAL_X),
        &hex(P256_EPHEMERAL_Y),
    )
    .unwrap();
    assert_eq!(
        make_credential_with_seed(&rsa_ek, &name256(), &credential(), &ecc_seed),
        Err(CredentialError::SeedKeyMismatch)
    );
    assert_eq!(
        CredentialSeed::from_ecdh(&rsa_ek, &[1; 32], &[2; 32], &[3; 32]),
        Err(CredentialError::SeedKeyMismatch)
    );
    assert_eq!(
        CredentialSeed::rsa(&rsa_ek, vec![0; 20], &rng),
        Err(CredentialError::SeedSize {
            len: 20,
            expected: 32
        })
    );
    // The seed never shows in Debug output.
    assert!(format!("{ecc_seed:?}").contains("<redacted>"));
}

const RSA_SEED: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
const RSA_ID_OBJECT: &str = "00440020ac362c057dbabc0026f1b1de386373e6de73e7cd0fcef8c1316f712e1891b664f09a3ffd134067c08f478b17c642a3f1ba96172808041326c2649f4d7defbdfbf57e";
const SHA384_SEED: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const SHA384_AES256_ID_OBJECT: &str = "00440030a4d0e25b84bd4b1827316de5fce78e61e4de51ad9bc9129d808d3a791dd280c70db705ade864c8c3a840c83b72974873835229d23bce4752c239e7ad051fc60b4d77";
const P256_EK_X: &str = "471c3e758c4904285bba7e53118ed0f524adeb0757d25bd2f8e7b0d76dfa714c";
const P256_EK_Y: &str = "dd520f7aca8a8b917acc37f51de8f0c9bbe3ad858382e702dc25a12d09f7a858";
const P256_Z: &str = "fb503d802a4fcc984fdd2cfa0474741a70f6f5b322b7532addc21b986d897ad9";
const P256_EPHEMERAL_X: &str = "a17d7a9c3692db94349d4c47e2eadff7336c26ff3d17cd3cb489aed9e35ba8be";
const P256_EPHEMERAL_Y: &str = "a19710b054f03944ad23c71a648fb96920f9bb1494ed74b5232f215a88ec2afa";
const P256_SECRET: &str = "00440020a17d7a9c3692db94349d4c47e2eadff7336c26ff3d17cd3cb489aed9e35ba8be0020a19710b054f03944ad23c71a648fb96920f9bb1494ed74b5232f215a88ec2afa";
const P256_ID_OBJECT: &str = "00440020d2870fe110048b42d951d69f9fb598230d8054a3906f031b26a37051f5a75d876a319aac36a5fbc9bf9183ae6ac0b00b5aa8b3fb8dfa66781596d981c1355a8f8787";
const P384_EK_X: &str = "d14d023e2d61d6f45b8112d8e12583523cb28a45a6ce3dc2002a70613c5bf368be183574cf8e0ed669674a414a469593";
const P384_EK_Y: &str = "61f70c34a0e9fafc29df08b675f60251210867433a516a51cb5a59098973d0a62059f458659eee384552af972ab5b7aa";
const P384_Z: &str = "3279de64044858f133ba84f561e4157f7144129f76f7b621cb0d490cb609b8b62726e2f20c91a834554b60e7182bdb36";
const P384_EPHEMERAL_X: &str = "52b91be63cb0b9df2609bd0c77c97310a6df109aa3e07571743f4db4f71960c0072abc4f9368b5aedbef6388ffb949ab";
const P384_EPHEMERAL_Y: &str = "ab49e31738023f347f4c2cdf0f7cf146d8e372cc0e13215d2e2aad367a8dac9d266d589e429a114e893aef18e9b71093";
const P384_SECRET: &str = "0064003052b91be63cb0b9df2609bd0c77c97310a6df109aa3e07571743f4db4f71960c0072abc4f9368b5aedbef6388ffb949ab0030ab49e31738023f347f4c2cdf0f7cf146d8e372cc0e13215d2e2aad367a8dac9d266d589e429a114e893aef18e9b71093";
const P384_ID_OBJECT: &str = "00540030037636501cd33d67ff7eff91e50cd649549e5650049e89572a0a9a21b61b4ed4174c4e412112fdc8073db62613dacdada8e781aa1bbb9b7696c67a70edee13917f2cb3f7effad6a42d7deab1af4ecdfe40ba";
