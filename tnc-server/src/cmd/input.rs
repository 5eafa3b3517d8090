//! Reading operator-supplied files: bounded, with the path in every error.

use anyhow::Context;
use policy::tpm::Public;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads `path` (or standard input for `-`), refusing more than `max` bytes
/// before holding them all.
pub fn read_bounded(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(max + 1)
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("opening {}", path.display()))?
            .take(max + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    anyhow::ensure!(
        bytes.len() as u64 <= max,
        "{} is larger than {max} bytes",
        path.display()
    );
    Ok(bytes)
}

/// Evidence files are never near this size.
const MAX_EVIDENCE: u64 = 64 * 1024 * 1024;

/// Reads an evidence file (bounded).
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    read_bounded(path, MAX_EVIDENCE)
}

/// The three files of a quote, as tpm2-tools writes them.
#[derive(clap::Args, Debug)]
pub struct QuoteFiles {
    /// The AK's public area: TPM2B_PUBLIC as `tpm2_createak -u` writes it (a bare
    /// TPMT_PUBLIC is accepted too).
    #[arg(long)]
    pub ak_public: PathBuf,
    /// The signed TPMS_ATTEST (`tpm2_quote -m`).
    #[arg(long)]
    pub attest: PathBuf,
    /// The TPMT_SIGNATURE (`tpm2_quote -s`).
    #[arg(long)]
    pub signature: PathBuf,
}

/// An AK public area as tpm2-tools writes it (TPM2B_PUBLIC) or bare (TPMT_PUBLIC).
impl QuoteFiles {
    /// The AK's public area, the signed TPMS_ATTEST and the TPMT_SIGNATURE
    /// bytes.
    pub fn read(&self) -> anyhow::Result<(Public, Vec<u8>, Vec<u8>)> {
        Ok((
            load_public(&self.ak_public)?,
            read_file(&self.attest)?,
            read_file(&self.signature)?,
        ))
    }
}

fn load_public(path: &Path) -> anyhow::Result<Public> {
    let bytes = read_file(path)?;
    Public::from_tpm2b(&bytes)
        .or_else(|_| Public::parse(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: not a TPM2B_PUBLIC or TPMT_PUBLIC: {e}", path.display()))
}

/// The nonce a quote is checked against: `--nonce` (hex), or else the
/// quote's own, so the check passes and the output says none was given.
pub fn nonce_or_the_quotes_own(nonce: Option<&str>, attest: &[u8]) -> anyhow::Result<Vec<u8>> {
    match nonce {
        Some(n) => {
            policy::digest::from_hex(n).ok_or_else(|| anyhow::anyhow!("--nonce {n:?} is not hex"))
        }
        None => Ok(policy::tpm::Attest::parse(attest)
            .map(|q| q.extra_data)
            .unwrap_or_default()),
    }
}
