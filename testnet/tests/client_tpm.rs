//! `tnc_client::tpm` against real swtpm processes, checked by independent code:
//! `policy`'s pure-Rust verifier, tpm2-tools (`tpm2_checkquote`, `tpm2_pcrread`,
//! `tpm2_makecredential`, `tpm2_getcap`) and OpenSSL.
//!
//! Each test starts its own swtpm (and, for EK certificates, its own local CA). A
//! swtpm serves one connection at a time, so every tpm2-tools call that needs the
//! TPM runs after the test's `Tpm` is dropped; `tpm2_makecredential -T none` works
//! without a TPM and runs while it is open.

use policy::digest::hex;
use policy::quote::{verify_quote, QuoteError, QuoteExpectation, VerifiedQuote};
use policy::tpm::{
    self, hierarchy_qualified_name, qualified_name, EccCurve, PcrValues, Public, PublicKey,
    Signature, TPM_RH_ENDORSEMENT,
};
use policy::HashAlg;
use std::path::PathBuf;
use std::process::{Command, Output};
use testnet::swtpm::{scratch_dir, LocalCa, Swtpm, SwtpmOptions};
use tnc_client::tpm::{AkHandle, AkKind, EkKind, Quote, Tpm, TpmConfig, TpmError};

const PCRS: &str = "sha256:0,1,2,3,10";

fn selection() -> Vec<(HashAlg, Vec<u32>)> {
    vec![(HashAlg::Sha256, vec![0, 1, 2, 3, 10])]
}

/// A swtpm and a work directory for files, both removed on drop.
struct Bed {
    swtpm: Swtpm,
    dir: PathBuf,
}

impl Bed {
    fn start(test: &str) -> Bed {
        Self::with(test, &SwtpmOptions::default())
    }

    fn with(test: &str, options: &SwtpmOptions) -> Bed {
        let swtpm = Swtpm::start(options).unwrap_or_else(|e| panic!("swtpm for {test}: {e}"));
        let dir = scratch_dir(&format!("client-tpm-{test}")).expect("temp dir");
        Bed { swtpm, dir }
    }

    fn config(&self) -> TpmConfig {
        TpmConfig::parse(&self.swtpm.tcti()).expect("swtpm TCTI parses")
    }

    fn open(&self) -> Tpm {
        Tpm::open(&self.config()).unwrap_or_else(|e| panic!("open {}: {e}", self.swtpm.tcti()))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn write(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.path(file), bytes).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }

    /// A tpm2-tools call on this TPM (the caller's `Tpm` must be dropped).
    fn try_tool(&self, program: &str, args: &[&str]) -> Output {
        self.swtpm
            .tpm2(&self.dir, program, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn tool(&self, program: &str, args: &[&str]) -> String {
        success(program, args, self.try_tool(program, args))
    }

    /// A program that needs no TPM (openssl, `tpm2_* -T none`), run in the work dir.
    fn offline(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("TPM2TOOLS_TCTI")
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"))
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn success(program: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    HashAlg::Sha256.digest(data)
}

fn pcr_values(quote: &Quote) -> PcrValues {
    let mut values = PcrValues::new();
    for v in &quote.pcr_values {
        let bank = HashAlg::from_tpm_alg(v.bank.tpm_alg()).expect("known bank");
        values.insert(bank, v.index, v.digest.clone());
    }
    values
}

/// The qualified Name of an AK under an EK of the endorsement hierarchy.
fn ak_qualified_name(ek: &Public, ak: &Public) -> Vec<u8> {
    let ek_qn = qualified_name(&hierarchy_qualified_name(TPM_RH_ENDORSEMENT), &ek.name()).unwrap();
    qualified_name(&ek_qn, &ak.name()).unwrap()
}

/// Creates the EK and an AK, checks the AK against policy's reading of it.
fn ek_and_ak(tpm: &mut Tpm, ek_kind: EkKind, ak_kind: AkKind) -> (Public, AkHandle, Public) {
    let ek_public = tpm.endorsement_key(ek_kind).expect("EK TPMT_PUBLIC parses");
    let ek_name = tpm.ek_name(ek_kind).expect("EK Name");
    assert_eq!(hex(&ek_public.name()), hex(&ek_name), "EK Name");
    let ak = tpm.create_ak(ek_kind, ak_kind).expect("AK");
    let ak_public = Public::parse(ak.public_area()).expect("AK TPMT_PUBLIC parses");
    assert_eq!(
        Public::from_tpm2b(&ak.tpm2b_public()).unwrap(),
        ak_public,
        "TPM2B_PUBLIC = size || TPMT_PUBLIC"
    );
    assert_eq!(
        hex(&ak_public.name()),
        hex(ak.name()),
        "AK Name from the TPM = policy's computation"
    );
    let attrs = ak_public.object_attributes;
    assert!(attrs.restricted() && attrs.sign() && !attrs.decrypt());
    assert!(attrs.fixed_tpm() && attrs.fixed_parent() && attrs.sensitive_data_origin());
    (ek_public, ak, ak_public)
}

/// Extends PCR 3 and 10 (sha256) with digests named after `test`, quotes `PCRS`,
/// and checks the PCR values read after the quote are those extends.
fn extend_and_quote(tpm: &mut Tpm, ak: &AkHandle, test: &str) -> (Quote, Vec<u8>) {
    let ev3 = sha256(format!("{test} pcr3").as_bytes());
    let ev10 = sha256(format!("{test} pcr10").as_bytes());
    tpm.pcr_extend(3, HashAlg::Sha256, &ev3).expect("extend 3");
    tpm.pcr_extend(10, HashAlg::Sha256, &ev10)
        .expect("extend 10");
    let nonce = sha256(format!("{test} nonce").as_bytes());
    let quote = tpm.quote(ak, &nonce, &selection()).expect("quote");

    let values = pcr_values(&quote);
    assert_eq!(quote.pcr_values.len(), 5);
    for (index, ev) in [(3u32, &ev3), (10, &ev10)] {
        let mut pcr = vec![0u8; 32];
        HashAlg::Sha256.extend(&mut pcr, ev);
        assert_eq!(
            values.get(HashAlg::Sha256, index),
            Some(&pcr[..]),
            "PCR {index}"
        );
    }
    for index in [0u32, 1, 2] {
        assert_eq!(values.get(HashAlg::Sha256, index), Some(&[0u8; 32][..]));
    }
    (quote, nonce)
}

/// `policy` accepts the quote with its nonce, selection and values, and refuses
/// another nonce and a flipped byte.
fn policy_verifies(ak: &Public, qn: &[u8], quote: &Quote, nonce: &[u8]) -> VerifiedQuote {
    let sig = Signature::parse(&quote.signature).expect("TPMT_SIGNATURE parses");
    let selection = tpm::parse_selection(PCRS).unwrap();
    let values = pcr_values(quote);
    let expected = QuoteExpectation {
        nonce,
        selection: Some(&selection),
        pcr_values: Some(&values),
        allow_sha1: false,
    };
    let verified = verify_quote(ak, &quote.attest, &sig, &expected).expect("quote verifies");
    assert_eq!(verified.attest.extra_data, nonce);
    assert_eq!(
        hex(&verified.attest.qualified_signer),
        hex(qn),
        "qualifiedSigner is the AK's qualified Name"
    );
    assert_eq!(verified.quote.pcr_select, selection);

    let mut other = nonce.to_vec();
    other[0] ^= 1;
    let stale = QuoteExpectation {
        nonce: &other,
        ..expected
    };
    assert!(matches!(
        verify_quote(ak, &quote.attest, &sig, &stale),
        Err(QuoteError::NonceMismatch { .. })
    ));
    let mut bad = quote.attest.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        verify_quote(ak, &bad, &sig, &expected),
        Err(QuoteError::BadSignature)
    );
    verified
}

/// `tpm2_checkquote` accepts the quote (PCRs from `tpm2_pcrread -F serialized`) and
/// refuses it with another nonce; `tpm2_pcrread`'s text agrees with our values.
fn tpm2_checkquote_agrees(bed: &Bed, ak: &AkHandle, quote: &Quote, nonce: &[u8]) {
    bed.write("ak.pub", &ak.tpm2b_public());
    bed.write("quote.msg", &quote.attest);
    bed.write("quote.sig", &quote.signature);
    bed.tool(
        "tpm2_pcrread",
        &["-F", "serialized", "-o", "pcrs.bin", PCRS],
    );
    let text = PcrValues::parse_text(&bed.tool("tpm2_pcrread", &[PCRS])).expect("pcrread text");
    assert_eq!(
        text,
        pcr_values(quote),
        "tpm2_pcrread agrees with Quote::pcr_values"
    );

    let nonce_hex = hex(nonce);
    let mut args = vec![
        "-u",
        "ak.pub",
        "-m",
        "quote.msg",
        "-s",
        "quote.sig",
        "-g",
        "sha256",
        "-f",
        "pcrs.bin",
        "-q",
    ];
    args.push(&nonce_hex);
    bed.tool("tpm2_checkquote", &args);
    let mut other = nonce.to_vec();
    other[0] ^= 1;
    let other_hex = hex(&other);
    *args.last_mut().unwrap() = &other_hex;
    assert!(
        !bed.try_tool("tpm2_checkquote", &args).status.success(),
        "tpm2_checkquote accepted another nonce"
    );
}

/// The DER length of a certificate's outer SEQUENCE, which must fill `der`.
fn assert_der_certificate(der: &[u8]) {
    assert_eq!(der[0], 0x30, "DER SEQUENCE");
    let (len, header) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(der[2]), 3),
        0x82 => (usize::from(u16::from_be_bytes([der[2], der[3]])), 4),
        other => panic!("unexpected DER length byte {other:#x}"),
    };
    assert_eq!(header + len, der.len(), "the SEQUENCE fills the NV index");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn ek_certificates_are_read_and_match_the_eks() {
    let ca = LocalCa::create().expect("local CA");
    let bed = Bed::with(
        "ekcert",
        &SwtpmOptions {
            pcr_banks: vec!["sha256".into()],
            ek_certs_from: Some(ca.dir().into()),
        },
    );
    let mut tpm = bed.open();
    // swtpm 0.7 provisions RSA 2048 and P-384, not P-256.
    assert_eq!(
        tpm.certified_ek_kinds().unwrap(),
        vec![EkKind::Rsa2048, EkKind::EccP384]
    );
    assert_eq!(tpm.ek_certificate(EkKind::EccP256).unwrap(), None);
    let (kind, preferred) = tpm.certified_ek().unwrap().expect("a certified EK");
    assert_eq!(kind, EkKind::Rsa2048);

    let mut certs = Vec::new();
    for kind in [EkKind::Rsa2048, EkKind::EccP384] {
        let cert = tpm.ek_certificate(kind).unwrap().expect("certificate");
        assert!(cert.len() > 512, "{kind:?}: {} bytes", cert.len());
        assert_der_certificate(&cert);
        let public = tpm.endorsement_key(kind).unwrap();
        let ek_name = tpm.ek_name(kind).unwrap();
        assert_eq!(hex(&public.name()), hex(&ek_name));
        assert_eq!(public.auth_policy.len(), public.name_alg.size());
        match (&public.key, kind) {
            (PublicKey::Rsa(rsa), EkKind::Rsa2048) => {
                assert_eq!(public.object_attributes.0, 0x0003_00B2, "template L-1");
                assert_eq!(rsa.modulus.len(), 256);
                assert!(contains(&cert, &rsa.modulus), "modulus in the certificate");
            }
            (PublicKey::Ecc(ecc), EkKind::EccP384) => {
                assert_eq!(ecc.curve, EccCurve::NistP384);
                assert_eq!(public.name_alg, HashAlg::Sha384, "high-range template");
                let point = [&[0x04][..], &ecc.x, &ecc.y].concat();
                assert_eq!(point.len(), 97);
                assert!(contains(&cert, &point), "EC point in the certificate");
            }
            other => panic!("unexpected EK {other:?}"),
        }
        certs.push((kind, cert, public));
    }
    assert_eq!(preferred, certs[0].1);
    drop(tpm);

    // OpenSSL reads the same keys and chains each certificate to the test's CA.
    let (root, issuer) = (ca.root_cert(), ca.issuer_cert());
    let (root, issuer) = (root.to_str().unwrap(), issuer.to_str().unwrap());
    for (kind, cert, public) in &certs {
        let der = format!("ek-{kind:?}.der");
        let pem = format!("ek-{kind:?}.pem");
        bed.write(&der, cert);
        let to_pem = ["x509", "-inform", "DER", "-in", &der, "-out", &pem];
        success("openssl", &to_pem, bed.offline("openssl", &to_pem));
        let verify = ["verify", "-CAfile", root, "-untrusted", issuer, &pem];
        success("openssl", &verify, bed.offline("openssl", &verify));
        if let PublicKey::Rsa(rsa) = &public.key {
            let args = ["x509", "-in", &pem, "-noout", "-modulus"];
            let out = success("openssl", &args, bed.offline("openssl", &args));
            assert_eq!(
                out.trim(),
                format!("Modulus={}", hex(&rsa.modulus).to_uppercase())
            );
        }
    }
}

#[test]
fn ecdsa_p256_quote_verifies_with_policy_and_tpm2_checkquote() {
    let bed = Bed::start("p256");
    let mut tpm = bed.open();
    let (ek, ak, ak_public) = ek_and_ak(&mut tpm, EkKind::EccP256, AkKind::EcdsaP256Sha256);
    assert!(matches!(&ak_public.key, PublicKey::Ecc(k) if k.curve == EccCurve::NistP256));
    let (quote, nonce) = extend_and_quote(&mut tpm, &ak, "p256");
    let verified = policy_verifies(
        &ak_public,
        &ak_qualified_name(&ek, &ak_public),
        &quote,
        &nonce,
    );
    assert_eq!(verified.sig_hash, HashAlg::Sha256);
    assert!(matches!(
        Signature::parse(&quote.signature).unwrap(),
        Signature::Ecdsa(_)
    ));
    // A nonce over TPM2B_DATA's 64 bytes is refused before the TPM sees it.
    assert!(matches!(
        tpm.quote(&ak, &[0; 65], &selection()),
        Err(TpmError::Invalid { .. })
    ));
    drop(tpm);
    tpm2_checkquote_agrees(&bed, &ak, &quote, &nonce);
}

#[test]
fn rsassa_quote_under_rsa_ek_verifies() {
    let bed = Bed::start("rsassa");
    let mut tpm = bed.open();
    let (ek, ak, ak_public) = ek_and_ak(&mut tpm, EkKind::Rsa2048, AkKind::RsaSsa2048Sha256);
    assert!(matches!(&ak_public.key, PublicKey::Rsa(k) if k.modulus.len() == 256));
    let (quote, nonce) = extend_and_quote(&mut tpm, &ak, "rsassa");
    policy_verifies(
        &ak_public,
        &ak_qualified_name(&ek, &ak_public),
        &quote,
        &nonce,
    );
    assert!(matches!(
        Signature::parse(&quote.signature).unwrap(),
        Signature::RsaSsa(_)
    ));
    drop(tpm);
    tpm2_checkquote_agrees(&bed, &ak, &quote, &nonce);
}

#[test]
fn sm2_quote_verifies_with_policy_and_openssl() {
    let bed = Bed::start("sm2");
    let mut tpm = bed.open();
    // Under the P-384 (high-range, PolicyOR) EK, so that template's session is used too.
    let (ek, ak, ak_public) = ek_and_ak(&mut tpm, EkKind::EccP384, AkKind::Sm2P256Sha256);
    assert!(matches!(&ak_public.key, PublicKey::Ecc(k) if k.curve == EccCurve::Sm2P256));
    let (quote, nonce) = extend_and_quote(&mut tpm, &ak, "sm2");
    drop(tpm);
    policy_verifies(
        &ak_public,
        &ak_qualified_name(&ek, &ak_public),
        &quote,
        &nonce,
    );
    let Signature::Sm2(sig) = Signature::parse(&quote.signature).unwrap() else {
        panic!("not an SM2 signature")
    };

    // OpenSSL, on e = sha256(TPMS_ATTEST) with no Z_A: accepts it, refuses another digest.
    bed.write(
        "sm2.spki",
        &testnet::openssl::sm2_spki(&ak_public).expect("an ECC AK"),
    );
    bed.write("sm2.der", &testnet::openssl::der_signature(&sig.r, &sig.s));
    let verify = |digest: &[u8]| {
        bed.write("digest.bin", digest);
        let args = [
            "pkeyutl",
            "-verify",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            "sm2.spki",
            "-in",
            "digest.bin",
            "-sigfile",
            "sm2.der",
        ];
        bed.offline("openssl", &args).status.success()
    };
    assert!(verify(&sha256(&quote.attest)));
    assert!(!verify(&sha256(&quote.attest[1..])));
}

#[test]
fn ak_survives_a_restart_of_the_agent() {
    let bed = Bed::start("persist");
    let file = bed.path("ak.bin");
    let (ek, ak_public, name) = {
        let mut tpm = bed.open();
        let (ek, ak, ak_public) = ek_and_ak(&mut tpm, EkKind::EccP256, AkKind::EcdsaP256Sha256);
        ak.save(&file).expect("save AK");
        (ek, ak_public, ak.name().to_vec())
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "AK file mode {mode:o}");
    }

    let mut tpm = bed.open();
    let ak = tpm.load_ak_file(&file).expect("AK loads after reopening");
    assert_eq!(ak.name(), &name[..]);
    assert_eq!(ak.kind(), AkKind::EcdsaP256Sha256);
    assert_eq!(ak.ek_kind(), EkKind::EccP256);
    let (quote, nonce) = extend_and_quote(&mut tpm, &ak, "persist");
    policy_verifies(
        &ak_public,
        &ak_qualified_name(&ek, &ak_public),
        &quote,
        &nonce,
    );

    // A damaged blob: the TPM's integrity check refuses it.
    let mut bytes = std::fs::read(&file).unwrap();
    let private_byte = 8 + 4 + 2 + 10;
    bytes[private_byte] ^= 1;
    let err = tpm.load_ak(&bytes).expect_err("altered AK private blob");
    eprintln!("altered AK blob: {err}");
    assert!(err.response_code().is_some(), "{err}");
    // Not an AK file at all.
    bed.write("junk.bin", b"hello");
    assert!(matches!(
        tpm.load_ak_file(&bed.path("junk.bin")),
        Err(TpmError::BadAkFile { .. })
    ));
    drop(tpm);

    // Another TPM cannot load it: the blob is bound to this TPM's endorsement seed.
    let other = Bed::start("persist-other");
    let mut other_tpm = other.open();
    let err = other_tpm
        .load_ak_file(&file)
        .expect_err("AK loads in another TPM");
    eprintln!("AK in another TPM: {err}");
    assert!(err.to_string().contains("TPM2_Load"), "{err}");
}

/// Reads tpm2-tools' credential file: u32 0xBADCC0DE, u32 version 1,
/// TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
fn parse_tpm2_tools_credential(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(&bytes[..4], &[0xBA, 0xDC, 0xC0, 0xDE], "magic");
    assert_eq!(&bytes[4..8], &[0, 0, 0, 1], "version");
    let take = |at: usize| {
        let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        (bytes[at..at + 2 + len].to_vec(), at + 2 + len)
    };
    let (id_object, at) = take(8);
    let (secret, end) = take(at);
    assert_eq!(end, bytes.len(), "nothing after the encrypted secret");
    (id_object, secret)
}

/// `tpm2_makecredential -T none`: MakeCredential in software, for the EK public
/// area (TPM2B_PUBLIC file) and an object Name (given as hex: 5.4 reads `-n` as hex).
fn make_credential(bed: &Bed, ek_pub: &[u8], name: &[u8], secret: &[u8], out: &str) -> Vec<u8> {
    bed.write("ek.pub", ek_pub);
    bed.write("secret.bin", secret);
    let name = hex(name);
    let args = [
        "-T",
        "none",
        "-u",
        "ek.pub",
        "-s",
        "secret.bin",
        "-n",
        &name,
        "-o",
        out,
    ];
    success(
        "tpm2_makecredential",
        &args,
        bed.offline("tpm2_makecredential", &args),
    );
    std::fs::read(bed.path(out)).unwrap()
}

fn activate_credential_for(ek_kind: EkKind) {
    let test = format!("activate-{ek_kind:?}");
    let bed = Bed::start(&test);
    let mut tpm = bed.open();
    let ek = tpm.endorsement_key(ek_kind).unwrap();
    let ak = tpm.create_ak(ek_kind, AkKind::EcdsaP256Sha256).unwrap();
    let other = tpm.create_ak(ek_kind, AkKind::Sm2P256Sha256).unwrap();
    assert_ne!(ak.name(), other.name());

    let secret = sha256(test.as_bytes());
    let cred = make_credential(&bed, &ek.tpm2b(), ak.name(), &secret, "ak.cred");
    let (blob, encrypted) = parse_tpm2_tools_credential(&cred);
    let got = tpm
        .activate_credential(&ak, ek_kind, &blob, &encrypted)
        .unwrap_or_else(|e| panic!("{ek_kind:?}: {e}"));
    assert_eq!(hex(&got), hex(&secret));

    // A credential for the other AK's Name: the TPM's HMAC over the AK's Name fails.
    let cred = make_credential(&bed, &ek.tpm2b(), other.name(), &secret, "other.cred");
    let (blob, encrypted) = parse_tpm2_tools_credential(&cred);
    let err = tpm
        .activate_credential(&ak, ek_kind, &blob, &encrypted)
        .expect_err("activated a credential made for another AK");
    eprintln!("{ek_kind:?}, credential for another AK: {err}");
    assert!(err.to_string().contains("TPM2_ActivateCredential"), "{err}");
    assert!(err.response_code().is_some(), "{err}");
    // ... which its own AK does activate (the loaded AK is swapped, not leaked).
    let got = tpm
        .activate_credential(&other, ek_kind, &blob, &encrypted)
        .unwrap();
    assert_eq!(got, secret);
    // Garbage is refused before the TPM sees it.
    assert!(matches!(
        tpm.activate_credential(&ak, ek_kind, &blob[..blob.len() - 1], &encrypted),
        Err(TpmError::Invalid { .. })
    ));
}

#[test]
fn activate_credential_rsa_ek() {
    activate_credential_for(EkKind::Rsa2048);
}

#[test]
fn activate_credential_ecc_p256_ek() {
    activate_credential_for(EkKind::EccP256);
}

#[test]
fn activate_credential_ecc_p384_ek() {
    activate_credential_for(EkKind::EccP384);
}

/// Many keys across EK kinds on a TPM with 3 object slots and no resource manager:
/// nothing runs out (0x902) and nothing stays loaded once the `Tpm` is dropped.
#[test]
fn transient_objects_are_flushed() {
    let bed = Bed::start("flush");
    let mut tpm = bed.open();
    let plan = [
        (EkKind::EccP256, AkKind::EcdsaP256Sha256),
        (EkKind::Rsa2048, AkKind::RsaSsa2048Sha256),
        (EkKind::EccP384, AkKind::Sm2P256Sha256),
        (EkKind::EccP256, AkKind::Sm2P256Sha256),
    ];
    let mut aks = Vec::new();
    for (ek, kind) in plan {
        aks.push(tpm.create_ak(ek, kind).unwrap());
    }
    for round in 0..2 {
        for ak in &aks {
            let nonce = [round as u8; 20];
            let quote = tpm.quote(ak, &nonce, &selection()).unwrap();
            let public = Public::parse(ak.public_area()).unwrap();
            let sig = Signature::parse(&quote.signature).unwrap();
            let expected = QuoteExpectation {
                nonce: &nonce,
                selection: None,
                pcr_values: None,
                allow_sha1: false,
            };
            verify_quote(&public, &quote.attest, &sig, &expected).unwrap();
        }
    }
    // Bad input does not leak either.
    assert!(tpm.pcr_extend(10, HashAlg::Sha256, &[0; 20]).is_err());
    assert!(tpm.pcr_extend(32, HashAlg::Sha256, &[0; 32]).is_err());
    assert!(tpm
        .quote(&aks[0], b"n", &[(HashAlg::Sha256, vec![40])])
        .is_err());
    tpm.release().unwrap();
    let ak = tpm
        .create_ak(EkKind::EccP256, AkKind::EcdsaP256Sha256)
        .unwrap();
    tpm.quote(&ak, b"after release", &selection()).unwrap();
    drop(tpm);

    for what in ["handles-transient", "handles-loaded-session"] {
        let out = bed.tool("tpm2_getcap", &[what]);
        assert!(out.trim().is_empty(), "{what} left: {out}");
    }
}

#[test]
fn unreachable_tpm_is_reported_with_its_tcti() {
    // A port nobody listens on (taken and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TpmConfig::parse(&format!("swtpm:host=127.0.0.1,port={port}")).unwrap();
    let err = Tpm::open(&config).expect_err("no TPM there");
    eprintln!("unreachable TPM: {err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}
