//! Reading operator-supplied files: bounded, with the path in every error.

use anyhow::Context;
use std::io::Read;
use std::path::Path;

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
