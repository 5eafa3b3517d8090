//! Evidence collectors: the UEFI event log and the IMA runtime measurement list
//! from the paths the kernel exposes (configurable, for containers and tests).
//!
//! The IMA list only grows until reboot, so a re-attestation sends just the
//! entries after the ones the PDP has already appraised: [`read_ima_from`] skips
//! whole records without keeping them.

use policy::ima::ImaEntries;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where the kernel exposes the measurements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidencePaths {
    pub event_log: PathBuf,
    pub ima: PathBuf,
}

impl Default for EvidencePaths {
    fn default() -> Self {
        Self {
            event_log: "/sys/kernel/security/tpm0/binary_bios_measurements".into(),
            ima: "/sys/kernel/security/ima/binary_runtime_measurements".into(),
        }
    }
}

/// Largest measurement file read: real event logs are tens of KiB and IMA lists
/// a few MiB; anything far larger is not a measurement list.
pub const MAX_EVIDENCE: u64 = 64 * 1024 * 1024;

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?
        .take(MAX_EVIDENCE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_EVIDENCE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: larger than {MAX_EVIDENCE} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// The whole UEFI event log.
pub fn read_event_log(paths: &EvidencePaths) -> io::Result<Vec<u8>> {
    read_bounded(&paths.event_log)
}

/// IMA entries from entry `first` on, and the number of entries in the list.
///
/// `first` is what the PDP says it has appraised; if the list is shorter (the
/// machine rebooted) the error says so and the caller starts again from 0.
pub fn read_ima_from(paths: &EvidencePaths, first: usize) -> io::Result<(Vec<u8>, usize)> {
    let bytes = read_bounded(&paths.ima)?;
    let mut entries = ImaEntries::new(&bytes);
    entries.skip_entries(first).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: cannot skip {first} entries: {e}", paths.ima.display()),
        )
    })?;
    let start = entries.offset();
    let mut total = first;
    for entry in entries.by_ref() {
        entry.map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", paths.ima.display()),
            )
        })?;
        total += 1;
    }
    Ok((bytes[start..].to_vec(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One ima-ng record for `path` (little-endian, as on x86).
    fn record(path: &str) -> Vec<u8> {
        let mut d_ng = b"sha256:\0".to_vec();
        d_ng.extend_from_slice(&[7; 32]);
        let mut n_ng = path.as_bytes().to_vec();
        n_ng.push(0);
        let mut data = Vec::new();
        for f in [&d_ng, &n_ng] {
            data.extend_from_slice(&(f.len() as u32).to_le_bytes());
            data.extend_from_slice(f);
        }
        let mut r = 10u32.to_le_bytes().to_vec();
        r.extend_from_slice(&policy::HashAlg::Sha1.digest(&data));
        r.extend_from_slice(&6u32.to_le_bytes());
        r.extend_from_slice(b"ima-ng");
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(&data);
        r
    }

    #[test]
    fn ima_tail_from_an_entry_offset() {
        let dir = std::env::temp_dir().join(format!("tnc-collect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (record("/a"), record("/bb"), record("/ccc"));
        std::fs::write(dir.join("ima"), [a.clone(), b.clone(), c.clone()].concat()).unwrap();
        let paths = EvidencePaths {
            event_log: dir.join("absent"),
            ima: dir.join("ima"),
        };
        assert_eq!(
            read_ima_from(&paths, 0).unwrap(),
            ([a, b.clone(), c.clone()].concat(), 3)
        );
        assert_eq!(read_ima_from(&paths, 1).unwrap(), ([b, c].concat(), 3));
        assert_eq!(read_ima_from(&paths, 3).unwrap(), (Vec::new(), 3));
        let e = read_ima_from(&paths, 4).unwrap_err();
        assert!(e.to_string().contains("cannot skip 4 entries"), "{e}");
        let e = read_event_log(&paths).unwrap_err();
        assert!(e.to_string().contains("absent"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
