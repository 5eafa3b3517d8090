//! Replays every real-world firmware event log in the shared test data and compares
//! with the PCR values tpm2-tools 5.4 (`tpm2_eventlog`) computed for it
//! (`NAME.pcrs` beside each log, one `bank index hex` per line).
//!
//! The directory defaults to `../../shared/testdata` from this crate; set
//! `TNC_TESTDATA` to the testdata directory to use another copy.

use std::fs;
use std::path::{Path, PathBuf};

use policy::digest::{from_hex, hex};
use policy::eventlog::{EventLog, LogFormat};
use policy::HashAlg;

/// There are nine logs today; fewer means the data went missing, not that all
/// is well.
const MIN_LOGS: usize = 9;

fn eventlog_dir() -> PathBuf {
    let testdata = std::env::var_os("TNC_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
        PathBuf::from,
    );
    testdata.join("eventlogs")
}

/// `(log, pcrs)` paths for every log under every source folder, failing on a log
/// without its `.pcrs` or a `.pcrs` without its log.
fn logs() -> Vec<(PathBuf, PathBuf)> {
    let root = eventlog_dir();
    let mut out = Vec::new();
    let sources = fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    for source in sources {
        let source = source.unwrap().path();
        if !source.is_dir() {
            continue;
        }
        for file in fs::read_dir(&source).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            if let Some(log_name) = name.strip_suffix(".pcrs") {
                assert!(
                    source.join(log_name).is_file(),
                    "{} has no log beside it",
                    path.display()
                );
                continue;
            }
            let pcrs = source.join(format!("{name}.pcrs"));
            assert!(pcrs.is_file(), "{} has no .pcrs beside it", path.display());
            out.push((path, pcrs));
        }
    }
    out.sort();
    out
}

fn parse_pcrs(path: &Path) -> Vec<(HashAlg, u32, Vec<u8>)> {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<_> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [bank, index, value] = parts[..] else {
                panic!("{}: bad line {line:?}", path.display())
            };
            (
                HashAlg::from_name(bank).unwrap_or_else(|| panic!("unknown bank {bank}")),
                index.parse().unwrap(),
                from_hex(value).unwrap(),
            )
        })
        .collect();
    assert!(!lines.is_empty(), "{} lists no PCRs", path.display());
    lines
}

#[test]
fn every_shared_log_replays_to_its_pcrs() {
    let logs = logs();
    let mut failures = Vec::new();
    for (log_path, pcrs_path) in &logs {
        let bytes = fs::read(log_path).unwrap();
        let log = EventLog::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
        let replay = log.replay();
        for (bank, pcr, expected) in parse_pcrs(pcrs_path) {
            let got = replay.get(bank, pcr);
            if got != Some(expected.as_slice()) {
                failures.push(format!(
                    "{}: {bank} PCR {pcr}: expected {}, replayed {}",
                    log_path.display(),
                    hex(&expected),
                    got.map_or_else(|| "nothing".to_owned(), hex)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        logs.len() >= MIN_LOGS,
        "checked only {} logs in {}",
        logs.len(),
        eventlog_dir().display()
    );
}

#[test]
fn sha1_only_log_is_legacy_and_others_crypto_agile() {
    for (log_path, _) in logs() {
        let bytes = fs::read(&log_path).unwrap();
        let log = EventLog::parse(&bytes).unwrap();
        let legacy = log_path.ends_with("event-uefi-sha1-log.bin");
        assert_eq!(
            log.format == LogFormat::Legacy,
            legacy,
            "{}",
            log_path.display()
        );
        // Every record is reachable for display without panicking.
        for event in &log.events {
            let _ = event.describe();
        }
    }
}
