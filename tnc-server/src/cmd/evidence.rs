//! `tnc-server evidence`: read TPM evidence the way the PDP does, for operators
//! who build reference values or debug a rejected terminal.

use super::input::read_file;
use clap::{Args as ClapArgs, Subcommand};
use policy::digest::hex;
use policy::eventlog::EventLog;
use policy::ima::{self, ImaList};
use policy::HashAlg;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Largest evidence file read: event logs are tens of KiB, IMA lists a few MiB.

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse a TCG PC Client firmware event log (binary_bios_measurements) and
    /// print its events and the PCR values it replays to, like tpm2_eventlog.
    Eventlog(FileArgs),
    /// Parse a Linux IMA binary measurement list (binary_runtime_measurements),
    /// check every template hash, and print the entries and the replayed PCR 10.
    Ima(ImaArgs),
    /// Verify a TPM2_Quote made by tpm2-tools (or our client): signature, nonce,
    /// PCR selection and digest. Exit status 0 only if it verifies.
    Quote(super::quote::QuoteArgs),
    /// Appraise a quote, event log and IMA list against reference values, as
    /// the PDP does: prints the findings and the verdict. Exit status 0 allow,
    /// 3 isolate, 4 no access (1 and 2 stay for bad input and usage).
    Appraise(super::appraise::AppraiseArgs),
}

#[derive(ClapArgs, Debug)]
pub struct FileArgs {
    /// The file to read.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(ClapArgs, Debug)]
pub struct ImaArgs {
    #[command(flatten)]
    file: FileArgs,
    /// PCR banks to replay (sha1, sha256, sha384, sha512, sm3); repeatable.
    #[arg(long = "bank", default_values_t = [HashAlg::Sha1, HashAlg::Sha256], value_parser = parse_bank)]
    banks: Vec<HashAlg>,
    /// Kernels before per-bank template hashing extended the zero-padded SHA-1
    /// template hash into every bank; replay that way.
    #[arg(long)]
    padded_sha1: bool,
}

fn parse_bank(s: &str) -> Result<HashAlg, String> {
    HashAlg::from_name(s)
        .ok_or_else(|| format!("unknown bank {s:?}: use sha1, sha256, sha384, sha512 or sm3"))
}

pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Eventlog(a) => eventlog(a),
        Command::Ima(a) => ima_list(a),
        Command::Quote(a) => super::quote::run(a),
        Command::Appraise(a) => super::appraise::run(a),
    }
}

fn eventlog(args: &FileArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_file(&args.file)?;
    let log = match EventLog::parse(&bytes) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("{}: not a valid event log: {e}", args.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let replay = log.replay();
    let mut out = std::io::stdout().lock();
    if args.json {
        let events: Vec<Value> = log
            .events
            .iter()
            .map(|e| {
                json!({
                    "index": e.index,
                    "offset": e.offset,
                    "pcr": e.pcr,
                    "event_type": e.event_type,
                    "event_type_name": e.type_name(),
                    "digests": e.digests.iter().map(|(a, d)| json!({"alg": a.name(), "digest": hex(d)})).collect::<Vec<_>>(),
                    "data_len": e.data.len(),
                    "description": e.describe(),
                })
            })
            .collect();
        let pcrs: Vec<Value> = replay
            .iter()
            .map(|(bank, pcr, v)| json!({"bank": bank.name(), "pcr": pcr, "value": hex(v)}))
            .collect();
        serde_json::to_writer_pretty(&mut out, &json!({"events": events, "pcrs": pcrs}))?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &log.events {
        let name = e
            .type_name()
            .map_or_else(|| format!("{:#010x}", e.event_type), str::to_string);
        writeln!(
            out,
            "event {} (offset {}): PCR {} {name}",
            e.index, e.offset, e.pcr
        )?;
        for (alg, d) in &e.digests {
            writeln!(out, "  {alg}: {}", hex(d))?;
        }
        for (id, d) in &e.unknown_digests {
            writeln!(out, "  alg {id:#06x}: {}", hex(d))?;
        }
        if let Some(d) = e.describe().filter(|d| !d.is_empty()) {
            writeln!(out, "  event: {d}")?;
        }
    }
    writeln!(out, "pcrs:")?;
    for (bank, pcr, v) in replay.iter() {
        writeln!(out, "  {bank} {pcr:>2}: {}", hex(v))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ima_list(args: &ImaArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_file(&args.file.file)?;
    let list = match ImaList::parse(&bytes) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}: not a valid IMA list: {e}", args.file.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let options = ima::ReplayOptions {
        hashing: if args.padded_sha1 {
            ima::BankHashing::PaddedSha1
        } else {
            ima::BankHashing::PerBank
        },
        ..Default::default()
    };
    let replay = ima::replay_with(&list.entries, &args.banks, None, options);
    let mut out = std::io::stdout().lock();
    if args.file.json {
        let entries: Vec<Value> = list
            .entries
            .iter()
            .map(|e| {
                json!({
                    "index": e.index,
                    "pcr": e.pcr,
                    "template": e.template.name(),
                    "template_digest": hex(&e.template_digest),
                    "violation": e.is_violation(),
                    "file_digest": e.digest.as_ref().map(|(a, d)| format!("{a}:{}", hex(d))),
                    "path": e.path,
                    "signed": e.signature.is_some(),
                })
            })
            .collect();
        let value = match &replay {
            Ok(pcrs) => {
                json!({"entries": entries, "pcr10": pcrs.iter().map(|(b, v)| (b.name().to_string(), json!(hex(v)))).collect::<serde_json::Map<_, _>>()})
            }
            Err(e) => json!({"entries": entries, "error": e.to_string()}),
        };
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        for e in &list.entries {
            let digest = e
                .digest
                .as_ref()
                .map_or_else(String::new, |(a, d)| format!("{a}:{}", hex(d)));
            let mark = if e.is_violation() { " VIOLATION" } else { "" };
            writeln!(
                out,
                "{:>6} {:>2} {} {} {digest} {}{mark}",
                e.index,
                e.pcr,
                hex(&e.template_digest),
                e.template.name(),
                e.path.as_deref().unwrap_or("")
            )?;
        }
        match &replay {
            Ok(pcrs) => {
                writeln!(out, "pcr 10 replayed from {} entries:", list.entries.len())?;
                for (bank, v) in pcrs {
                    writeln!(out, "  {bank}: {}", hex(v))?;
                }
            }
            Err(e) => writeln!(out, "REPLAY FAILED: {e}")?,
        }
    }
    Ok(if replay.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
