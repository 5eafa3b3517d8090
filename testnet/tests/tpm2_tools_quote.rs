//! `policy::quote` against quotes made by tpm2-tools 5.4 on a real swtpm.
//!
//! Each test starts its own `swtpm socket --tpm2` on free loopback ports with its own
//! state directory, so tests run in parallel; a [`Swtpm`] guard kills it and removes
//! the directory on drop, panics included. Needs `swtpm` and `tpm2-tools` installed
//! (Debian: `apt-get install swtpm swtpm-tools tpm2-tools`); a missing tool fails the
//! test rather than skipping it.
//!
//! What is independent of our code here: the TPM (libtpms), tpm2-tools writing the
//! files, `tpm2_checkquote` (ECDSA and RSASSA) and OpenSSL (RSA-PSS and SM2, which
//! `tpm2_checkquote` 5.4 cannot check) judging the same quote. PCR values come from
//! the *text* output of `tpm2_pcrread sha256:...` (lines `  10: 0x<HEX>` under a
//! `  sha256:` bank line), not from its host-endian `-F serialized` dump.

use policy::digest::hex;
use policy::quote::{verify_quote, QuoteError, QuoteExpectation};
use policy::tpm::{
    self, hierarchy_qualified_name, qualified_name, PcrValues, Public, Signature,
    TPM_GENERATED_VALUE, TPM_RH_ENDORSEMENT,
};
use policy::HashAlg;
use std::path::PathBuf;
use std::process::{Command, Output};

const PCRS: &str = "sha256:0,1,2,3,10";

/// A swtpm with a work directory for tpm2-tools' files, both removed on drop.
struct Swtpm {
    tpm: testnet::swtpm::Swtpm,
    dir: PathBuf,
}

impl Swtpm {
    fn start(test: &str) -> Swtpm {
        let tpm = testnet::swtpm::Swtpm::start(&Default::default())
            .unwrap_or_else(|e| panic!("swtpm for {test}: {e}"));
        let dir = testnet::swtpm::scratch_dir(&format!("tpm2tools-{test}")).expect("temp dir");
        Swtpm { tpm, dir }
    }

    /// A command run in the work directory (openssl, as the independent checker).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&self.dir);
        cmd
    }

    fn try_tool(&self, program: &str, args: &[&str]) -> Output {
        self.tpm
            .tpm2(&self.dir, program, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn tool(&self, program: &str, args: &[&str]) -> String {
        let out = self.try_tool(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    }

    fn write(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(file), bytes).unwrap_or_else(|e| panic!("write {file}: {e}"))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn parse_pcrread(text: &str) -> PcrValues {
    PcrValues::parse_text(text).unwrap_or_else(|e| panic!("tpm2_pcrread output: {e}"))
}

/// Creates the EK and the AK (`ak_args` after `-C ek.ctx -c ak.ctx`), checks the AK's
/// Name and qualified Name against tpm2-tools' files, returns the AK and its QN.
fn create_ek_and_ak(tpm: &Swtpm, ek_alg: &str, ak_args: &[&str]) -> (Public, Vec<u8>) {
    tpm.tool(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", ek_alg, "-u", "ek.pub"],
    );
    let mut args = vec!["-C", "ek.ctx", "-c", "ak.ctx"];
    args.extend_from_slice(ak_args);
    args.extend_from_slice(&["-u", "ak.pub", "-n", "ak.name", "-q", "ak.qname"]);
    tpm.tool("tpm2_createak", &args);

    let ek = Public::from_tpm2b(&tpm.read("ek.pub")).expect("ek.pub parses");
    let ak = Public::from_tpm2b(&tpm.read("ak.pub")).expect("ak.pub parses");
    assert_eq!(hex(&ak.name()), hex(&tpm.read("ak.name")), "AK Name");
    let ek_qn = qualified_name(&hierarchy_qualified_name(TPM_RH_ENDORSEMENT), &ek.name()).unwrap();
    let ak_qn = qualified_name(&ek_qn, &ak.name()).unwrap();
    assert_eq!(hex(&ak_qn), hex(&tpm.read("ak.qname")), "AK qualified Name");
    let attrs = ak.object_attributes;
    assert!(attrs.restricted() && attrs.sign() && attrs.fixed_tpm() && !attrs.decrypt());
    (ak, ak_qn)
}

/// A quote made by the TPM, with what the verifier knows about it.
struct TpmQuote {
    msg: Vec<u8>,
    sig: Signature,
    nonce: Vec<u8>,
    values: PcrValues,
}

/// Extends PCR 3 and 10, quotes `PCRS` with `quote_args` added, reads the PCRs.
fn extend_and_quote(tpm: &Swtpm, test: &str, quote_args: &[&str]) -> TpmQuote {
    let ev3 = HashAlg::Sha256.digest(format!("{test} pcr3").as_bytes());
    let ev10 = HashAlg::Sha256.digest(format!("{test} pcr10").as_bytes());
    tpm.tool("tpm2_pcrextend", &[&format!("3:sha256={}", hex(&ev3))]);
    tpm.tool("tpm2_pcrextend", &[&format!("10:sha256={}", hex(&ev10))]);

    let nonce = HashAlg::Sha256.digest(test.as_bytes())[..20].to_vec();
    let nonce_hex = hex(&nonce);
    let mut args = vec![
        "-c",
        "ak.ctx",
        "-l",
        PCRS,
        "-q",
        &nonce_hex,
        "-m",
        "quote.msg",
        "-s",
        "quote.sig",
        "-o",
        "quote.pcrs",
        "-F",
        "serialized",
    ];
    args.extend_from_slice(quote_args);
    tpm.tool("tpm2_quote", &args);
    let values = parse_pcrread(&tpm.tool("tpm2_pcrread", &[PCRS]));

    // The values tpm2_pcrread reports are the extends we made, from zero.
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
    TpmQuote {
        msg: tpm.read("quote.msg"),
        sig: Signature::parse(&tpm.read("quote.sig")).expect("quote.sig parses"),
        nonce,
        values,
    }
}

/// Our verifier accepts the quote and rejects every variation of it.
fn check_quote(ak: &Public, ak_qn: &[u8], q: &TpmQuote, sig_hash: HashAlg) {
    let selection = tpm::parse_selection(PCRS).unwrap();
    let expected = QuoteExpectation {
        nonce: &q.nonce,
        selection: Some(&selection),
        pcr_values: Some(&q.values),
        allow_sha1: false,
    };
    let verified = verify_quote(ak, &q.msg, &q.sig, &expected).expect("tpm2-tools quote verifies");
    assert_eq!(verified.sig_hash, sig_hash);
    assert_eq!(verified.attest.magic, TPM_GENERATED_VALUE);
    assert_eq!(verified.attest.extra_data, q.nonce);
    assert_eq!(
        verified.attest.qualified_signer, ak_qn,
        "qualifiedSigner is the AK's QN"
    );
    assert_eq!(verified.quote.pcr_select, selection);
    assert_eq!(
        verified.quote.pcr_digest,
        tpm::pcr_digest(sig_hash, &selection, &q.values).unwrap()
    );
    assert!(verified.attest.clock_info.safe);

    let mut other_nonce = q.nonce.clone();
    other_nonce[0] ^= 1;
    let stale = QuoteExpectation {
        nonce: &other_nonce,
        ..expected
    };
    assert!(matches!(
        verify_quote(ak, &q.msg, &q.sig, &stale),
        Err(QuoteError::NonceMismatch { .. })
    ));

    for i in 0..q.msg.len() {
        let mut bad = q.msg.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            verify_quote(ak, &bad, &q.sig, &expected),
            Err(QuoteError::BadSignature),
            "flipped byte {i} of quote.msg"
        );
    }

    let fewer = tpm::parse_selection("sha256:0,1,2,3").unwrap();
    let asked_fewer = QuoteExpectation {
        selection: Some(&fewer),
        ..expected
    };
    assert!(matches!(
        verify_quote(ak, &q.msg, &q.sig, &asked_fewer),
        Err(QuoteError::SelectionMismatch { .. })
    ));
    let mut changed = q.values.clone();
    changed.insert(HashAlg::Sha256, 0, vec![1; 32]);
    let other_values = QuoteExpectation {
        pcr_values: Some(&changed),
        allow_sha1: false,
        ..expected
    };
    assert!(matches!(
        verify_quote(ak, &q.msg, &q.sig, &other_values),
        Err(QuoteError::PcrDigestMismatch { .. })
    ));
}

/// tpm2-tools' own verifier agrees the quote is good, and spots the flipped byte.
fn tpm2_checkquote_agrees(tpm: &Swtpm, q: &TpmQuote, hash: &str) {
    let nonce = hex(&q.nonce);
    let args = [
        "-u",
        "ak.pub",
        "-m",
        "quote.msg",
        "-s",
        "quote.sig",
        "-g",
        hash,
        "-q",
        &nonce,
        "-f",
        "quote.pcrs",
    ];
    tpm.tool("tpm2_checkquote", &args);
    let mut bad = q.msg.clone();
    bad[10] ^= 1;
    tpm.write("quote.msg", &bad);
    assert!(!tpm.try_tool("tpm2_checkquote", &args).status.success());
    tpm.write("quote.msg", &q.msg);
}

#[test]
fn ecdsa_p256_ak_quote() {
    let tpm = Swtpm::start("p256");
    let (ak, qn) = create_ek_and_ak(&tpm, "ecc", &["-G", "ecc", "-g", "sha256", "-s", "ecdsa"]);
    assert!(matches!(&ak.key, tpm::PublicKey::Ecc(k) if k.curve == tpm::EccCurve::NistP256));
    let q = extend_and_quote(&tpm, "p256", &["-g", "sha256"]);
    assert!(matches!(q.sig, Signature::Ecdsa(_)));
    check_quote(&ak, &qn, &q, HashAlg::Sha256);
    tpm2_checkquote_agrees(&tpm, &q, "sha256");
}

#[test]
fn ecdsa_p384_ak_quote() {
    let tpm = Swtpm::start("p384");
    let (ak, qn) = create_ek_and_ak(
        &tpm,
        "ecc",
        &["-G", "ecc384", "-g", "sha384", "-s", "ecdsa"],
    );
    assert!(matches!(&ak.key, tpm::PublicKey::Ecc(k) if k.curve == tpm::EccCurve::NistP384));
    let q = extend_and_quote(&tpm, "p384", &["-g", "sha384"]);
    check_quote(&ak, &qn, &q, HashAlg::Sha384);
    tpm2_checkquote_agrees(&tpm, &q, "sha384");
}

#[test]
fn rsassa_ak_quote_under_rsa_ek() {
    let tpm = Swtpm::start("rsassa");
    let (ak, qn) = create_ek_and_ak(&tpm, "rsa", &["-G", "rsa", "-g", "sha256", "-s", "rsassa"]);
    let q = extend_and_quote(&tpm, "rsassa", &["-g", "sha256"]);
    assert!(matches!(q.sig, Signature::RsaSsa(_)));
    check_quote(&ak, &qn, &q, HashAlg::Sha256);
    tpm2_checkquote_agrees(&tpm, &q, "sha256");
}

#[test]
fn rsapss_ak_quote() {
    let tpm = Swtpm::start("rsapss");
    let (ak, qn) = create_ek_and_ak(&tpm, "ecc", &["-G", "rsa", "-g", "sha256", "-s", "rsapss"]);
    // tpm2_quote picks RSASSA for an RSA key unless told; the AK's fixed scheme then
    // makes the TPM refuse with 0x2D2.
    let refused = tpm.try_tool(
        "tpm2_quote",
        &[
            "-c", "ak.ctx", "-l", PCRS, "-q", "00", "-m", "x.msg", "-s", "x.sig", "-g", "sha256",
        ],
    );
    assert!(!refused.status.success());
    let q = extend_and_quote(&tpm, "rsapss", &["-g", "sha256", "--scheme", "rsapss"]);
    let Signature::RsaPss(pss) = &q.sig else {
        panic!("not an RSA-PSS signature: {:?}", q.sig)
    };
    check_quote(&ak, &qn, &q, HashAlg::Sha256);

    // OpenSSL: swtpm's PSS salt is the hash length (32), not the maximum (222).
    tpm.tool(
        "tpm2_readpublic",
        &["-c", "ak.ctx", "-f", "pem", "-o", "ak.pem"],
    );
    tpm.write("pss.sig", &pss.sig);
    let openssl = |salt: &str| {
        tpm.command(
            "openssl",
            &["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss"],
        )
        .args([
            "-sigopt",
            &format!("rsa_pss_saltlen:{salt}"),
            "-verify",
            "ak.pem",
        ])
        .args(["-signature", "pss.sig", "quote.msg"])
        .output()
        .expect("run openssl")
        .status
        .success()
    };
    assert!(openssl("digest") && openssl("32"));
    assert!(!openssl("max"));
}

#[test]
fn sm2_ak_quote() {
    let tpm = Swtpm::start("sm2");
    // `-G ecc_sm2`: plain `-G ecc -s sm2` makes a P-256 key (IMPLEMENTATION-NOTES).
    let (ak, qn) = create_ek_and_ak(&tpm, "ecc", &["-G", "ecc_sm2", "-g", "sha256", "-s", "sm2"]);
    assert!(matches!(&ak.key, tpm::PublicKey::Ecc(k) if k.curve == tpm::EccCurve::Sm2P256));
    let q = extend_and_quote(&tpm, "sm2", &["-g", "sha256", "--scheme", "sm2"]);
    let Signature::Sm2(sig) = &q.sig else {
        panic!("not an SM2 signature: {:?}", q.sig)
    };
    check_quote(&ak, &qn, &q, HashAlg::Sha256);

    // OpenSSL, on e = sha256(TPMS_ATTEST) with no Z_A, agrees; and rejects another digest.
    tpm.write(
        "sm2.spki",
        &testnet::openssl::sm2_spki(&ak).expect("an ECC AK"),
    );
    tpm.write("sm2.der", &testnet::openssl::der_signature(&sig.r, &sig.s));
    let verify = |digest: &[u8]| {
        tpm.write("digest.bin", digest);
        let out = tpm
            .command(
                "openssl",
                &["pkeyutl", "-verify", "-pubin", "-keyform", "DER"],
            )
            .args([
                "-inkey",
                "sm2.spki",
                "-in",
                "digest.bin",
                "-sigfile",
                "sm2.der",
            ])
            .output()
            .expect("run openssl");
        out.status.success()
    };
    assert!(verify(&HashAlg::Sha256.digest(&q.msg)));
    assert!(!verify(&HashAlg::Sha256.digest(&q.msg[1..])));
}

/// swtpm 0.7.1 has no SM3: an SM2 AK with the SM3 scheme hash is refused with
/// TPM_RC_HASH (0x2C3), so SM2 quotes here use sha256. If this starts failing, swtpm
/// gained SM3 and an sm3_256 SM2 quote test belongs beside `sm2_ak_quote`.
#[test]
fn sm2_ak_with_sm3_is_refused_by_swtpm() {
    let tpm = Swtpm::start("sm3");
    tpm.tool(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub"],
    );
    let out = tpm.try_tool(
        "tpm2_createak",
        &[
            "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc_sm2", "-g", "sm3_256", "-s", "sm2", "-u",
            "ak.pub",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "swtpm made an SM3 SM2 AK: {stderr}");
    assert!(stderr.to_ascii_lowercase().contains("0x2c3"), "{stderr}");
    assert!(!tpm.path("ak.pub").exists());
}
