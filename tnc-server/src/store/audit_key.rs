//! What keeps the audit log honest against someone who can write the
//! database: a key outside it (HMAC-SM3 over each entry from a sequence
//! number on) and anchors, the chain's newest (sequence, hash) written
//! elsewhere from time to time.
//!
//! Without the key, a rewritten history is consistent SM3 all the way and
//! only an anchor catches it; with the key, an entry from `since` on that is
//! not keyed or whose MAC does not match is found; with an anchor, entries
//! dropped after it are found too.

use super::{AuditBreak, AuditEntry};
use std::path::Path;

/// The prefix of a keyed entry's hash: `hmac-sm3:` and 64 hex digits.
pub(super) const KEYED: &str = "hmac-sm3:";

/// The audit chain's key, from its file (`[store] audit_key`).
#[derive(Clone)]
pub struct AuditKey {
    key: [u8; 32],
    /// The first entry it covers: entries before it (written before the
    /// store had a key) are plain SM3.
    since: i64,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{0} is readable by others: chmod 600 it")]
    Open(String),
    #[error(
        "{path}: {what} (the file tnc-server audit key writes: key = \"64 hex digits\", since = N)"
    )]
    Format { path: String, what: String },
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    key: String,
    since: i64,
}

impl AuditKey {
    /// A new key covering entries from `since` on, written to `path` (0600,
    /// which must not exist).
    pub fn create(path: &Path, since: i64) -> Result<Self, AuditKeyError> {
        let mut key = [0u8; 32];
        use pki::rand::SecureRandom;
        pki::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| AuditKeyError::Io {
                path: path.display().to_string(),
                error: std::io::Error::other("no randomness"),
            })?;
        let text = format!(
            "# The audit chain's HMAC-SM3 key (tnc-server audit key). Keep it 0600 and off the\n\
             # database's host and backups: whoever holds it and the database can rewrite history.\n{}",
            toml::to_string(&KeyFile {
                key: super::hex(&key),
                since,
            })
            .map_err(|e| AuditKeyError::Format {
                path: path.display().to_string(),
                what: e.to_string(),
            })?
        );
        crate::certs::write_private(path, text.as_bytes(), false).map_err(|error| {
            AuditKeyError::Io {
                path: path.display().to_string(),
                error,
            }
        })?;
        Ok(Self { key, since })
    }

    /// The key in `path`, refused when group or others may read it.
    pub fn load(path: &Path) -> Result<Self, AuditKeyError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let io = |error| AuditKeyError::Io {
            path: shown.clone(),
            error,
        };
        if std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o077 != 0 {
            return Err(AuditKeyError::Open(shown));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let format = |what: String| AuditKeyError::Format {
            path: shown.clone(),
            what,
        };
        let file: KeyFile = toml::from_str(&text).map_err(|e| format(e.to_string()))?;
        let key = policy::digest::from_hex(&file.key)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| format("key is not 64 hex digits".into()))?;
        if file.since < 1 {
            return Err(format("since is below 1".into()));
        }
        Ok(Self {
            key,
            since: file.since,
        })
    }

    pub fn since(&self) -> i64 {
        self.since
    }

    /// Whether entry `seq` is to be keyed.
    pub(super) fn covers(&self, seq: i64) -> bool {
        seq >= self.since
    }

    /// `hmac-sm3:` and HMAC-SM3 over `input`, hex.
    pub(super) fn mac(&self, input: &[u8]) -> String {
        format!(
            "{KEYED}{}",
            super::hex(&pki::alg::HashAlg::hmac_sm3(&self.key, &[input]))
        )
    }
}

/// The chain's newest entry as recorded outside the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    /// When it was taken (Unix seconds).
    pub at: u64,
}

impl Anchor {
    /// One line of an anchor file.
    pub fn line(&self) -> String {
        format!(
            "tnc-audit-anchor seq={} hash={} at={}",
            self.seq, self.hash, self.at
        )
    }

    /// The newest anchor of a file of [`Anchor::line`]s (the last well-formed
    /// line: a line cut short by a crash does not hide the one before).
    pub fn newest(text: &str) -> Option<Self> {
        text.lines().rev().find_map(Self::parse)
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.trim().split(' ');
        if fields.next()? != "tnc-audit-anchor" {
            return None;
        }
        let mut get = |name: &str| {
            fields
                .next()?
                .strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_string)
        };
        let seq = get("seq")?.parse().ok()?;
        let hash = get("hash")?;
        let at = get("at")?.parse().ok()?;
        (seq > 0 && !hash.is_empty()).then_some(Self { seq, hash, at })
    }

    /// Whether `entries` (the whole log, in order) still hold this anchor:
    /// its entry with its hash. Run after the chain itself verified.
    pub fn check(&self, entries: &[AuditEntry]) -> Result<(), AuditBreak> {
        let Some(e) = entries.iter().find(|e| e.seq == self.seq) else {
            let last = entries.last().map_or(0, |e| e.seq);
            return Err(AuditBreak {
                seq: last + 1,
                what: format!(
                    "entries {} to {} are gone: the anchor taken at {} saw entry {} (entries were dropped)",
                    last + 1,
                    self.seq,
                    self.at,
                    self.seq
                ),
            });
        };
        if !super::policy_ct_eq(e.hash.as_bytes(), self.hash.as_bytes()) {
            return Err(AuditBreak {
                seq: e.seq,
                what: format!(
                    "its hash is not the one the anchor taken at {} recorded: history was rewritten",
                    self.at
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_a_torn_last_line_is_skipped() {
        let a = Anchor {
            seq: 7,
            hash: "hmac-sm3:ab".into(),
            at: 1_700_000_000,
        };
        let b = Anchor {
            seq: 9,
            hash: "cd".into(),
            at: 1_700_000_100,
        };
        let text = format!("{}\n{}\ntnc-audit-anchor seq=12 ha", a.line(), b.line());
        assert_eq!(Anchor::newest(&text), Some(b));
        assert_eq!(Anchor::newest("garbage\n"), None);
        assert_eq!(Anchor::newest("tnc-audit-anchor seq=0 hash=x at=1"), None);
        assert_eq!(Anchor::newest("tnc-audit-anchor seq=3 hash= at=1"), None);
    }

    #[test]
    fn key_files_are_private_and_well_formed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("audit-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.key");
        let made = AuditKey::create(&path, 5).unwrap();
        let loaded = AuditKey::load(&path).unwrap();
        assert_eq!((made.key, made.since), (loaded.key, loaded.since));
        assert!(format!("{loaded:?}").contains("since: 5"));
        assert!(!format!("{loaded:?}").contains(&super::super::hex(&made.key)));
        // Not over an existing one.
        assert!(AuditKey::create(&path, 1).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(AuditKey::load(&path), Err(AuditKeyError::Open(_))));
        std::fs::write(&path, "key = \"00\"\nsince = 1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            AuditKey::load(&path),
            Err(AuditKeyError::Format { .. })
        ));
        let key = "ab".repeat(32);
        std::fs::write(&path, format!("key = \"{key}\"\nsince = 0\n")).unwrap();
        assert!(
            matches!(AuditKey::load(&path), Err(AuditKeyError::Format { what, .. }) if what.contains("since"))
        );
        std::fs::write(&path, format!("key = \"{key}\"\nsince = 1\n")).unwrap();
        assert!(AuditKey::load(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
