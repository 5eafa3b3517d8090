//! `tnc-server evidence` on real event logs and on IMA lists built here.

mod common;
use common::Temp;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tnc_server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tnc-server"))
        .args(args)
        .output()
        .unwrap()
}

fn eventlogs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/eventlogs")
}

fn temp(name: &str, bytes: &[u8]) -> Temp {
    common::temp_file("evidence", name, bytes)
}

#[test]
fn eventlog_prints_the_pcrs_tpm2_eventlog_computed() {
    let mut checked = 0;
    for dir in std::fs::read_dir(eventlogs()).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let log = f.unwrap().path();
            if log.extension().is_some_and(|e| e == "pcrs") {
                continue;
            }
            let out = tnc_server(&["evidence", "eventlog", log.to_str().unwrap()]);
            assert!(out.status.success(), "{}", log.display());
            let text = String::from_utf8(out.stdout).unwrap();
            let expected = std::fs::read_to_string(format!("{}.pcrs", log.display())).unwrap();
            for line in expected.lines().filter(|l| !l.trim().is_empty()) {
                let mut w = line.split_whitespace();
                let (bank, pcr, value) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
                let want = format!("  {bank} {pcr:>2}: {}", value.to_lowercase());
                assert!(text.contains(&want), "{}: missing {want:?}", log.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} logs");
}

#[test]
fn eventlog_json_and_truncated_log() {
    let log = eventlogs().join("tpm2-tools/event-uefivar.bin");
    let out = tnc_server(&["evidence", "eventlog", "--json", log.to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["events"].as_array().unwrap().len() >= 2);
    assert_eq!(v["pcrs"][0]["bank"], "sha1");

    let bytes = std::fs::read(&log).unwrap();
    let cut = temp("cut.bin", &bytes[..bytes.len() - 3]);
    let out = tnc_server(&["evidence", "eventlog", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid event log"));
}

/// One ima-ng record, written by the simulator; `tamper` flips a bit of the
/// logged SHA-1 template hash (bytes 4..24 of the record).
fn ima_ng(path: &str, file_digest: &[u8; 32], tamper: bool) -> Vec<u8> {
    let (mut rec, _) =
        testnet::simulator::ima_ng_record(policy::HashAlg::Sha256, file_digest, path);
    if tamper {
        rec[4] ^= 1;
    }
    rec
}

#[test]
fn ima_lists_entries_and_replays_or_refuses_tampering() {
    let list = [
        ima_ng("/usr/sbin/nginx", &[7; 32], false),
        ima_ng("/usr/lib/jvm/libjvm.so", &[9; 32], false),
    ]
    .concat();
    let path = temp("ima.bin", &list);
    let out = tnc_server(&[
        "evidence",
        "ima",
        "--bank",
        "sha256",
        "--bank",
        "sm3",
        path.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/usr/sbin/nginx"));
    assert!(text.contains("pcr 10 replayed from 2 entries"));
    assert!(text.contains("  sm3: "));

    let tampered = [ima_ng("/usr/sbin/nginx", &[7; 32], true)].concat();
    let path = temp("ima-tampered.bin", &tampered);
    let out = tnc_server(&["evidence", "ima", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REPLAY FAILED"));

    let out = tnc_server(&["evidence", "ima", "--bank", "md5", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown bank is a usage error"
    );
}

/// A quote made by tpm2-tools on a real swtpm, verified by the CLI as an operator
/// would: exit 0 only when signature, nonce, selection and PCR digest all hold.
/// Runs a tpm2-tools program on `tpm` in `dir`; its standard output.
fn tpm2_tool(tpm: &testnet::swtpm::Swtpm, dir: &Path, tool: &str, args: &[&str]) -> String {
    let out = tpm.tpm2(dir, tool, args).unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn quote_from_tpm2_tools_verifies_and_tampering_is_refused() {
    let tpm = testnet::swtpm::Swtpm::start(&Default::default()).unwrap();
    let dir = testnet::swtpm::scratch_dir("quote-cli").unwrap();
    let run = |tool: &str, args: &[&str]| tpm2_tool(&tpm, &dir, tool, args);
    run(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub"],
    );
    run(
        "tpm2_createak",
        &[
            "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa", "-u",
            "ak.pub", "-n", "ak.name",
        ],
    );
    run(
        "tpm2_pcrextend",
        &[&format!("10:sha256={}", "ab".repeat(32))],
    );
    let nonce = "00112233445566778899aabbccddeeff";
    run(
        "tpm2_quote",
        &[
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,10",
            "-q",
            nonce,
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-g",
            "sha256",
        ],
    );
    std::fs::write(
        dir.join("pcrs.txt"),
        run("tpm2_pcrread", &["sha256:0,1,2,3,10"]),
    )
    .unwrap();

    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let args = |nonce: &str, attest: &str| {
        vec![
            "evidence".to_string(),
            "quote".into(),
            "--ak-public".into(),
            p("ak.pub"),
            "--attest".into(),
            p(attest),
            "--signature".into(),
            p("quote.sig"),
            "--nonce".into(),
            nonce.into(),
            "--pcrs".into(),
            p("pcrs.txt"),
            "--selection".into(),
            "sha256:0,1,2,3,10".into(),
        ]
    };
    let cli = |a: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_tnc-server"))
            .args(a)
            .output()
            .unwrap()
    };

    let out = cli(args(nonce, "quote.msg"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("QUOTE VERIFIED"));
    let name = std::fs::read(dir.join("ak.name")).unwrap();
    assert!(
        text.contains(&format!("AK name: {}", policy::digest::hex(&name))),
        "{text}"
    );

    let out = cli(args("ffffffffffffffffffffffffffffffff", "quote.msg"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nonce mismatch"));

    let mut msg = std::fs::read(dir.join("quote.msg")).unwrap();
    let last = msg.len() - 1;
    msg[last] ^= 1;
    std::fs::write(dir.join("tampered.msg"), msg).unwrap();
    let out = cli(args(nonce, "tampered.msg"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not verify"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The quote shape of cloud vTPMs of a few years ago: an RSA AK whose scheme
/// is RSASSA over SHA-1, quoting with SHA-1 (made here by tpm2-tools on
/// swtpm). Refused by default; `--allow-sha1` verifies it, with a warning,
/// and still refuses it tampered or for another nonce; tpm2_checkquote, the
/// independent checker, agrees it is a good quote.
#[test]
fn sha1_quote_is_refused_unless_allowed() {
    let tpm = testnet::swtpm::Swtpm::start(&Default::default()).unwrap();
    let dir = testnet::swtpm::scratch_dir("quote-sha1").unwrap();
    let run = |tool: &str, args: &[&str]| tpm2_tool(&tpm, &dir, tool, args);
    run(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    run(
        "tpm2_createak",
        &[
            "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha1", "-s", "rsassa", "-u",
            "ak.pub", "-n", "ak.name",
        ],
    );
    let nonce = "0badc0de0badc0de0badc0de0badc0de";
    run(
        "tpm2_quote",
        &[
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,7",
            "-q",
            nonce,
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-g",
            "sha1",
            "-o",
            "quote.pcrs",
            "-F",
            "serialized",
        ],
    );
    std::fs::write(
        dir.join("pcrs.txt"),
        run("tpm2_pcrread", &["sha256:0,1,2,3,7"]),
    )
    .unwrap();
    // tpm2-tools' own checker: a genuine SHA-1 quote.
    run(
        "tpm2_checkquote",
        &[
            "-u",
            "ak.pub",
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-g",
            "sha1",
            "-q",
            nonce,
            "-f",
            "quote.pcrs",
        ],
    );

    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let cli = |nonce: &str, attest: &str, allow: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tnc-server"));
        cmd.args(["evidence", "quote", "--ak-public"])
            .arg(p("ak.pub"))
            .arg("--attest")
            .arg(p(attest))
            .arg("--signature")
            .arg(p("quote.sig"))
            .args(["--nonce", nonce, "--pcrs"])
            .arg(p("pcrs.txt"))
            .args(["--selection", "sha256:0,1,2,3,7"]);
        if allow {
            cmd.arg("--allow-sha1");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (code, text) = cli(nonce, "quote.msg", false);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("SHA-1 signatures are not accepted") && text.contains("--allow-sha1"),
        "{text}"
    );

    let (code, text) = cli(nonce, "quote.msg", true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("signature: valid (sha1"), "{text}");
    assert!(text.contains("warning: a SHA-1 signature"), "{text}");
    assert!(text.contains("QUOTE VERIFIED"), "{text}");

    let (code, text) = cli("ffffffffffffffffffffffffffffffff", "quote.msg", true);
    assert_eq!(code, Some(1));
    assert!(text.contains("nonce mismatch"), "{text}");
    let mut msg = std::fs::read(dir.join("quote.msg")).unwrap();
    msg[12] ^= 1;
    std::fs::write(dir.join("tampered.msg"), msg).unwrap();
    let (code, text) = cli(nonce, "tampered.msg", true);
    assert_eq!(code, Some(1));
    assert!(text.contains("does not verify"), "{text}");

    // The PDP's appraisal, as `attestation.allow_sha1_quotes` sets it.
    use policy::appraisal::{appraise, Challenge, Evidence};
    let ak = policy::tpm::Public::from_tpm2b(&std::fs::read(dir.join("ak.pub")).unwrap()).unwrap();
    let attest = std::fs::read(dir.join("quote.msg")).unwrap();
    let signature = std::fs::read(dir.join("quote.sig")).unwrap();
    let selection = policy::tpm::parse_selection("sha256:0,1,2,3,7").unwrap();
    let reference =
        policy::reference::ReferenceValues::from_toml("name = \"t\"\nbank = \"sha256\"\n")
            .and_then(|r| r.compile())
            .unwrap();
    let nonce = policy::digest::from_hex(nonce).unwrap();
    for allow_sha1 in [false, true] {
        let a = appraise(
            &ak,
            &Evidence {
                attest: &attest,
                signature: &signature,
                event_log: &[],
                ima: &[],
                ima_offset: 0,
            },
            &Challenge {
                nonce: &nonce,
                selection: &selection,
                allow_sha1,
            },
            &reference,
            None,
            0,
        );
        let refused = a.findings.iter().any(|f| f.message.contains("SHA-1"));
        assert_eq!(refused, !allow_sha1, "{:?}", a.findings);
        // Allowed, the quote passes and the appraisal goes on to the
        // (here empty) event log.
        let quote_findings = a
            .findings
            .iter()
            .filter(|f| f.area == policy::appraisal::Area::Quote)
            .count();
        assert_eq!(quote_findings, usize::from(!allow_sha1), "{:?}", a.findings);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `evidence appraise` on simulated boots signed by a SOFTWARE AK (testnet's,
/// clearly labelled): exit 0 allow, 3 isolate with the finding, 4 no access.
#[test]
fn appraise_prints_findings_and_verdict() {
    use testnet::simulator::Profile;
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testnet/profiles");
    let good = Profile::load(&profiles.join("good-terminal.toml")).unwrap();
    let reference = temp(
        "reference.toml",
        good.reference_values().unwrap().to_toml().as_bytes(),
    );
    let selection = policy::tpm::parse_selection("sha256:0,1,2,3,4,5,6,7,8,9,10").unwrap();
    let mut ak = testnet::soft_ak::SoftAk::generate();
    let ak_file = temp("ak.pub", ak.public_area());
    let mut run = |profile: &str, nonce_sent: &str, nonce_given: &str| {
        let m = Profile::load(&profiles.join(format!("{profile}.toml")))
            .unwrap()
            .measure()
            .unwrap();
        let (attest, sig) = ak.quote(nonce_sent.as_bytes(), &selection, &m.pcr_values());
        let files = [
            temp(&format!("{profile}.attest"), &attest),
            temp(&format!("{profile}.sig"), &sig),
            temp(&format!("{profile}.log"), &m.event_log),
            temp(&format!("{profile}.ima"), &m.ima),
        ];
        let s = |p: &Temp| p.to_str().unwrap().to_string();
        let nonce_hex = policy::digest::hex(nonce_given.as_bytes());
        let args = [
            "evidence",
            "appraise",
            "--ak-public",
            &s(&ak_file),
            "--attest",
            &s(&files[0]),
            "--signature",
            &s(&files[1]),
            "--eventlog",
            &s(&files[2]),
            "--ima",
            &s(&files[3]),
            "--reference",
            &s(&reference),
            "--nonce",
            &nonce_hex,
        ];
        let out = tnc_server(&args);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, text) = run("good-terminal", "n-1", "n-1");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("VERDICT: allow"));
    let (code, text) = run("tampered-kernel", "n-2", "n-2");
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("kernel or initrd not in the reference values"),
        "{text}"
    );
    assert!(text.contains("PCR 9"), "{text}");
    let (code, text) = run("good-terminal", "n-3", "other");
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("nonce mismatch"), "{text}");
}
