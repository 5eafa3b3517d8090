//! The endpoint's channel credentials: the SM2 key of its ShangMi channel
//! and what the PDP granted for it on allow (the certificate, the session CA
//! and the access ticket), kept in `state_dir`.
//!
//! The key is made here and never leaves: a software key in
//! `state_dir/channel.key`, readable by the owner only. (A key inside the
//! TPM, where the TPM signs SM2, is the next step; the request says which
//! kind the PDP got: `key_storage`.)

use pki::ca::Sm2Key;
use std::path::{Path, PathBuf};
use tnc_proto::credential::{Grant, KeyRequest};

/// Files in `state_dir`.
const KEY: &str = "channel.key";
const CERTIFICATE: &str = "channel.pem";
const SESSION_CA: &str = "session-ca.pem";
const TICKET: &str = "ticket.cose";
const EXPIRES: &str = "channel.expires";

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Key { path: PathBuf, error: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChannelError + '_ {
    move |error| ChannelError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The channel key of this endpoint.
#[derive(Debug)]
pub struct ChannelKey {
    key: Sm2Key,
}

impl ChannelKey {
    /// The key in `state_dir`, made (0600) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, ChannelError> {
        let path = state_dir.join(KEY);
        let key_err = |error: String| ChannelError::Key {
            path: path.clone(),
            error,
        };
        match std::fs::read_to_string(&path) {
            Ok(pem) => Ok(Self {
                key: Sm2Key::from_pem(&pem).map_err(|e| key_err(e.to_string()))?,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
                let key = Sm2Key::generate().map_err(|e| key_err(e.to_string()))?;
                key.write_new(&path).map_err(|e| key_err(e.to_string()))?;
                Ok(Self { key })
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// A request for a certificate for this key, named `cn`.
    pub fn request(&self, cn: &str) -> Result<KeyRequest, ChannelError> {
        let csr = pki::ca::make_request(&self.key, cn).map_err(|e| ChannelError::Key {
            path: PathBuf::from(KEY),
            error: e.to_string(),
        })?;
        Ok(KeyRequest {
            csr,
            key_storage: "software".into(),
        })
    }

    pub fn key(&self) -> &Sm2Key {
        &self.key
    }

    pub fn into_key(self) -> Sm2Key {
        self.key
    }
}

/// Keeps a grant in `state_dir` (the ticket and the certificate readable by
/// the owner only: together with the key they open channels).
pub fn save(state_dir: &Path, grant: &Grant) -> Result<(), ChannelError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let write = |name: &str, bytes: &[u8], mode: u32| -> Result<(), ChannelError> {
        let path = state_dir.join(name);
        let tmp = state_dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    };
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    write(
        CERTIFICATE,
        pki::ca::pem_certificate(&grant.certificate).as_bytes(),
        0o600,
    )?;
    write(
        SESSION_CA,
        pki::ca::pem_certificate(&grant.ca).as_bytes(),
        0o644,
    )?;
    write(TICKET, &grant.ticket, 0o600)?;
    write(EXPIRES, grant.expires.to_string().as_bytes(), 0o644)
}

/// The grant kept in `state_dir`, if there is one.
pub fn load(state_dir: &Path) -> Option<Grant> {
    let read = |name: &str| std::fs::read(state_dir.join(name)).ok();
    Some(Grant {
        certificate: pki::ca::pem_or_der(&read(CERTIFICATE)?).ok()?,
        ca: pki::ca::pem_or_der(&read(SESSION_CA)?).ok()?,
        ticket: read(TICKET)?,
        expires: String::from_utf8(read(EXPIRES)?)
            .ok()?
            .trim()
            .parse()
            .ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_0600_and_grants_round_trip() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("tnc-channel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = ChannelKey::load_or_create(&dir).unwrap();
        let b = ChannelKey::load_or_create(&dir).unwrap();
        assert_eq!(a.key().public_sec1(), b.key().public_sec1());
        let mode = std::fs::metadata(dir.join(KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let request = a.request("device").unwrap();
        assert_eq!(
            pki::ca::verify_request(&request.csr).unwrap().public_key,
            a.key().public_key()
        );
        assert!(load(&dir).is_none());
        let grant = Grant {
            certificate: vec![0x30, 1, 2],
            ca: vec![0x30, 3, 4],
            ticket: vec![0xd2, 5],
            expires: 1_800_003_600,
        };
        save(&dir, &grant).unwrap();
        assert_eq!(load(&dir), Some(grant));
        let mode = std::fs::metadata(dir.join(TICKET))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
