//! `tnc-server evidence appraise`: the PDP's decision for one set of evidence
//! files, with the findings that led to it.

use super::input::{read_file, QuoteFiles};
use clap::Args as ClapArgs;
use policy::appraisal::{appraise, Challenge, Evidence};
use policy::reference::ReferenceValues;
use policy::tpm::parse_selection;
use policy::Verdict;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(ClapArgs, Debug)]
pub struct AppraiseArgs {
    #[command(flatten)]
    files: QuoteFiles,
    /// The nonce sent with the challenge, in hex. Without it the quote's own is
    /// used and the verdict cannot be better than isolate (freshness unknown).
    #[arg(long)]
    nonce: Option<String>,
    /// The PCR selection asked for, e.g. `sha256:0,1,2,3,4,5,6,7,8,9,10`.
    #[arg(long, default_value = "sha256:0,1,2,3,4,5,6,7,8,9,10")]
    selection: String,
    /// The UEFI event log (binary_bios_measurements).
    #[arg(long)]
    eventlog: PathBuf,
    /// The IMA list (binary_runtime_measurements); none means no entries.
    #[arg(long)]
    ima: Option<PathBuf>,
    /// Reference values (TOML).
    #[arg(long)]
    reference: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Accept a quote signed over SHA-1, as a PDP with
    /// `attestation.allow_sha1_quotes = true` does.
    #[arg(long)]
    allow_sha1: bool,
}

pub fn run(a: &AppraiseArgs) -> anyhow::Result<ExitCode> {
    let (ak, attest, signature) = a.files.read()?;
    let event_log = read_file(&a.eventlog)?;
    let ima = match &a.ima {
        Some(p) => read_file(p)?,
        None => Vec::new(),
    };
    let text = String::from_utf8(read_file(&a.reference)?).map_err(|_| {
        anyhow::anyhow!(
            "{}: reference values must be UTF-8 TOML",
            a.reference.display()
        )
    })?;
    let reference = ReferenceValues::from_toml(&text)
        .and_then(|r| r.compile())
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.reference.display()))?;
    let selection = parse_selection(&a.selection).ok_or_else(|| {
        anyhow::anyhow!(
            "--selection {:?}: write banks and PCRs like sha256:0,1,7+sha1:10",
            a.selection
        )
    })?;
    let nonce = super::input::nonce_or_the_quotes_own(a.nonce.as_deref(), &attest)?;
    let evidence = Evidence {
        attest: &attest,
        signature: &signature,
        event_log: &event_log,
        ima: &ima,
        ima_offset: 0,
    };
    let challenge = Challenge {
        nonce: &nonce,
        selection: &selection,
        allow_sha1: a.allow_sha1,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut result = appraise(&ak, &evidence, &challenge, &reference, None, now);
    if a.nonce.is_none() && result.verdict == Verdict::Allow {
        result.verdict = Verdict::Isolate;
        println!("no --nonce: the quote's freshness is unknown, so the verdict is at most isolate");
    }
    if a.json {
        let findings: Vec<_> = result
            .findings
            .iter()
            .map(|f| {
                json!({
                    "severity": f.severity.name(), "area": format!("{:?}", f.area), "message": f.message,
                    "pcr": f.pcr, "event": f.event, "path": f.path, "expected": f.expected, "seen": f.seen,
                })
            })
            .collect();
        let out = json!({"verdict": result.verdict.name(), "reference": reference.source.name, "findings": findings});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for f in &result.findings {
            println!("{f}");
        }
        println!(
            "VERDICT: {} (reference values {:?})",
            result.verdict, reference.source.name
        );
    }
    Ok(match result.verdict {
        Verdict::Allow => ExitCode::SUCCESS,
        Verdict::Isolate => ExitCode::from(3),
        Verdict::NoAccess => ExitCode::from(4),
    })
}
