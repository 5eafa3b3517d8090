//! The README's quickstart, run as written: its shell block between the
//! `quickstart:begin` and `quickstart:end` markers goes to bash in an empty
//! directory, with the workspace's `tnc-server`, `tnc-client` and `testnet`
//! first on the PATH. The verdicts it promises must come out in order.
//!
//! Like a newcomer, it uses fixed loopback ports (2321, 2322, 2710) and the
//! machine's swtpm local CA; it is the only test in this binary, so no other
//! test of the suite runs beside it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn quickstart_block() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let begin = readme
        .find("<!-- quickstart:begin -->")
        .expect("the README marks its quickstart");
    let end = readme
        .find("<!-- quickstart:end -->")
        .expect("the quickstart's end marker");
    let block = &readme[begin..end];
    let body = block
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.rsplit_once("```"))
        .map(|(body, _)| body)
        .expect("one sh code block between the markers");
    body.to_string()
}

/// The directory the workspace's binaries are built in (this test's own
/// `testnet` binary is there; `cargo test --workspace` builds the others).
fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_testnet"))
        .parent()
        .unwrap()
        .to_path_buf();
    for bin in ["tnc-server", "tnc-client"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the workspace first (cargo build --workspace)",
            dir.join(bin).display()
        );
    }
    dir
}

#[test]
fn readme_quickstart_runs_as_written() {
    let script = quickstart_block();
    let work = testnet::swtpm::scratch_dir("quickstart").unwrap();
    std::fs::write(work.join("quickstart.sh"), &script).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .arg("quickstart.sh")
        .current_dir(&work)
        .env("PATH", path)
        .env_remove("TNC_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: whatever it leaves running is ended below.
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(180) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // `-s SIG -- -PGID`: procps-ng 4.0's kill reads `-KILL -12913` as a
    // signal option followed by pid -1, which is every process there is.
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let out = out_reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let log = std::fs::read_to_string(work.join("pdp/log")).unwrap_or_default();
    let context = format!("stdout:\n{out}\nstderr:\n{err}\nPDP log:\n{log}");
    assert!(
        status.is_some(),
        "the quickstart did not finish in 180 s\n{context}"
    );

    // Step 4, 5 and 6 in order: isolate (no TPM), isolate (no reference
    // values), allow.
    let verdicts: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("verdict: "))
        .collect();
    assert_eq!(verdicts, ["isolate", "isolate", "allow"], "{context}");
    let statuses: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("exit status "))
        .collect();
    assert_eq!(statuses, ["3", "3", "0"], "{context}");
    let no_tpm = out.find("has no TPM").expect("step 4 says why");
    let no_reference = out.find("no reference values").expect("step 5 says why");
    assert!(no_tpm < no_reference, "{context}");
    assert!(out.contains("created in"), "init: {context}");
    assert!(out.contains("user alice added"), "{context}");
    assert!(
        out.contains("recorded as version"),
        "policy learn: {context}"
    );
    assert!(
        out.contains("device: "),
        "the login names the device: {context}"
    );
    // The PDP started with its EK anchors (the lab CA among them: step 5's
    // terminal enrolled, or its verdict would not be about reference
    // values), and decided three sessions.
    assert!(log.contains("EK trust anchors loaded"), "{context}");
    let lab_ca = std::fs::read_to_string(work.join("pdp/ek-roots.pem")).unwrap_or_default();
    assert!(lab_ca.contains("swtpm-localca"), "{lab_ca}");
    assert_eq!(log.matches("session decided").count(), 3, "{context}");
    assert!(!log.contains("secret"), "a password in the log: {log}");
    // No error output but the PDP's and swtpm's own.
    for line in err.lines() {
        assert!(
            !line.contains("command not found") && !line.starts_with("tnc-"),
            "{line}\n{context}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
