//! Helpers shared by the CLI tests.

use std::path::{Path, PathBuf};

/// A file in this process's scratch directory, removed (with the directory,
/// once empty) when dropped.
pub struct Temp(PathBuf);

impl std::ops::Deref for Temp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Temp {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<Path> for Temp {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Writes `bytes` to `name` in `tnc-<what>-<pid>` under the temp directory.
pub fn temp_file(what: &str, name: &str, bytes: &[u8]) -> Temp {
    let dir = std::env::temp_dir().join(format!("tnc-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    Temp(path)
}
