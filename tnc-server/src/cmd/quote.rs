//! `tnc-server evidence quote`: verify a TPM2_Quote from the files tpm2-tools
//! writes (`tpm2_createak -u`, `tpm2_quote -m -s`).

use super::input::{read_file, QuoteFiles};
use clap::Args as ClapArgs;
use policy::digest::hex;
use policy::quote::{verify_quote, QuoteExpectation};
use policy::tpm::{parse_selection, PcrSelection, PcrValues, Signature};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(ClapArgs, Debug)]
pub struct QuoteArgs {
    #[command(flatten)]
    files: QuoteFiles,
    /// The nonce the verifier sent (qualifying data), in hex. Without it the
    /// quote's freshness is not checked (everything else is), as tpm2_checkquote
    /// does without -q.
    #[arg(long)]
    nonce: Option<String>,
    /// PCR values the quote must cover, as `tpm2_pcrread` prints them or as
    /// `bank index hex` lines. With it the PCR digest is checked.
    #[arg(long)]
    pcrs: Option<PathBuf>,
    /// The PCR selection that was requested, e.g. `sha256:0,1,2,3,7+sha1:10`.
    #[arg(long)]
    selection: Option<String>,
    /// Verify an RSASSA signature over SHA-1 (legacy cloud vTPMs quote so).
    /// Refused by default: SHA-1 collisions can be made.
    #[arg(long)]
    allow_sha1: bool,
}

pub fn run(a: &QuoteArgs) -> anyhow::Result<ExitCode> {
    let (ak, attest, sig_bytes) = a.files.read()?;
    let sig = Signature::parse(&sig_bytes).map_err(|e| {
        anyhow::anyhow!("{}: not a TPMT_SIGNATURE: {e}", a.files.signature.display())
    })?;
    // Without --nonce the quote's nonce is compared with itself: the check
    // passes, and the output says it was not made.
    let nonce = super::input::nonce_or_the_quotes_own(a.nonce.as_deref(), &attest)?;
    let selection: Option<Vec<PcrSelection>> = match &a.selection {
        Some(s) => Some(parse_selection(s).ok_or_else(|| {
            anyhow::anyhow!("--selection {s:?}: write banks and PCRs like sha256:0,1,7+sha1:10")
        })?),
        None => None,
    };
    let values = match &a.pcrs {
        Some(p) => {
            let text = String::from_utf8(read_file(p)?)
                .map_err(|_| anyhow::anyhow!("{}: PCR values must be text", p.display()))?;
            Some(
                PcrValues::parse_text(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let expectation = QuoteExpectation {
        nonce: &nonce,
        selection: selection.as_deref(),
        pcr_values: values.as_ref(),
        allow_sha1: a.allow_sha1,
    };
    println!("AK name: {}", hex(&ak.name()));
    let result = verify_quote(&ak, &attest, &sig, &expectation);
    match result {
        Ok(v) => {
            let c = &v.attest.clock_info;
            println!("signature: valid ({} over the attest bytes)", v.sig_hash);
            if v.sig_hash == policy::HashAlg::Sha1 {
                println!("warning: a SHA-1 signature, accepted because of --allow-sha1");
            }
            match a.nonce {
                Some(_) => println!("nonce: {} (as expected)", hex(&v.attest.extra_data)),
                None => println!(
                    "nonce: {} (not checked: give --nonce)",
                    hex(&v.attest.extra_data)
                ),
            }
            println!(
                "pcr selection: {}",
                policy::tpm::selection_to_string(&v.quote.pcr_select)
            );
            println!("pcr digest: {}", hex(&v.quote.pcr_digest));
            println!(
                "clock: {} ms, resets {}, restarts {}, safe {}",
                c.clock, c.reset_count, c.restart_count, c.safe
            );
            if values.is_none() {
                println!("pcr values: not checked (give --pcrs)");
            }
            println!("QUOTE VERIFIED");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("QUOTE REJECTED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
