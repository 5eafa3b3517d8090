//! The endpoint's channel credentials: the SM2 key of its ShangMi channel
//! and what the PDP granted for it on allow (the certificate, the session CA
//! and the access ticket), kept in `state_dir`.
//!
//! The key is made here and never leaves: in the TPM where the TPM signs
//! SM2 (an owner-hierarchy primary key the TPM derives from a value kept in
//! `state_dir/channel.tpm`; TPM2_Sign is handed SM3(Z_A || M)), otherwise a
//! software key in `state_dir/channel.key`, readable by the owner only.
//! client.toml's `channel_key` says which ("auto": the TPM if there is one
//! and it can, else software); the request tells the PDP (`key_storage`).

use crate::tpm::{Tpm, TpmConfig};
use crate::tunnel::ChannelSigner;
use pki::ca::Sm2Key;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tnc_proto::credential::{Grant, KeyRequest};

/// Files in `state_dir`.
const KEY: &str = "channel.key";
const TPM_KEY: &str = "channel.tpm";
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

/// Where the channel key lives (client.toml `channel_key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPlace {
    /// In the TPM if the endpoint has one that makes SM2 keys, else software.
    #[default]
    Auto,
    Tpm,
    Software,
}

/// The channel key of this endpoint.
#[derive(Debug)]
pub struct ChannelKey {
    inner: Inner,
    /// Why an `auto` key is not in the TPM, if it is not.
    pub fallback: Option<String>,
}

enum Inner {
    Software(Sm2Key),
    Tpm {
        config: TpmConfig,
        unique: [u8; 32],
        public: pki::ca::Sm2PublicKey,
    },
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inner::Software(k) => f.debug_tuple("Software").field(k).finish(),
            Inner::Tpm { config, .. } => f.debug_tuple("Tpm").field(&config.as_str()).finish(),
        }
    }
}

impl ChannelKey {
    /// The software key in `state_dir`, made (0600) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, ChannelError> {
        let path = state_dir.join(KEY);
        let key_err = |error: String| ChannelError::Key {
            path: path.clone(),
            error,
        };
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => Sm2Key::from_pem(&pem).map_err(|e| key_err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
                let key = Sm2Key::generate().map_err(|e| key_err(e.to_string()))?;
                key.write_new(&path).map_err(|e| key_err(e.to_string()))?;
                key
            }
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(Self {
            inner: Inner::Software(key),
            fallback: None,
        })
    }

    /// The key `place` asks for: in the TPM behind `tpm` (made on first
    /// use) or in software. With `Auto`, a TPM that cannot make an SM2 key
    /// (no SM2 curve) leaves the key in software, and [`ChannelKey::fallback`]
    /// says why; but once the key was made in the TPM (its unique value
    /// kept in `state_dir`), a TPM that fails is an error, never a quiet
    /// move of the key to software.
    pub fn open(
        state_dir: &Path,
        tpm: Option<&TpmConfig>,
        place: KeyPlace,
    ) -> Result<Self, ChannelError> {
        match (place, tpm) {
            (KeyPlace::Software, _) | (KeyPlace::Auto, None) => Self::load_or_create(state_dir),
            (KeyPlace::Tpm, None) => Err(ChannelError::Key {
                path: state_dir.join(TPM_KEY),
                error: "channel_key = \"tpm\" but the config names no TPM ([tpm])".into(),
            }),
            (KeyPlace::Tpm, Some(config)) => Self::in_tpm(state_dir, config),
            (KeyPlace::Auto, Some(config)) if state_dir.join(TPM_KEY).exists() => {
                Self::in_tpm(state_dir, config)
            }
            (KeyPlace::Auto, Some(config)) => match Self::in_tpm(state_dir, config) {
                Ok(k) => Ok(k),
                Err(e) => {
                    let mut k = Self::load_or_create(state_dir)?;
                    k.fallback = Some(e.to_string());
                    Ok(k)
                }
            },
        }
    }

    /// The TPM's SM2 key for the unique value in `state_dir` (made, 0600,
    /// on first use).
    fn in_tpm(state_dir: &Path, config: &TpmConfig) -> Result<Self, ChannelError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = state_dir.join(TPM_KEY);
        let key_err = |error: String| ChannelError::Key {
            path: path.clone(),
            error,
        };
        let unique: [u8; 32] = match std::fs::read(&path) {
            Ok(bytes) => bytes
                .as_slice()
                .try_into()
                .map_err(|_| key_err(format!("{} bytes, not 32", bytes.len())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut unique = [0u8; 32];
                pki::rand::SecureRandom::fill(&pki::rand::SystemRandom::new(), &mut unique)
                    .map_err(|_| key_err("the random number generator failed".into()))?;
                // The key is made before the file is: a TPM that cannot
                // leaves nothing behind.
                let public = Tpm::open(config)
                    .and_then(|mut t| t.sm2_public_key(&unique))
                    .map_err(|e| key_err(format!("the TPM makes no SM2 key: {e}")))?;
                std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io(&path))?;
                f.write_all(&unique).map_err(io(&path))?;
                let public = pki::ca::Sm2PublicKey::from_sec1_bytes(&public)
                    .map_err(|e| key_err(e.to_string()))?;
                return Ok(Self {
                    inner: Inner::Tpm {
                        config: config.clone(),
                        unique,
                        public,
                    },
                    fallback: None,
                });
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let public = Tpm::open(config)
            .and_then(|mut t| t.sm2_public_key(&unique))
            .map_err(|e| key_err(format!("the TPM's SM2 key: {e}")))?;
        let public =
            pki::ca::Sm2PublicKey::from_sec1_bytes(&public).map_err(|e| key_err(e.to_string()))?;
        Ok(Self {
            inner: Inner::Tpm {
                config: config.clone(),
                unique,
                public,
            },
            fallback: None,
        })
    }

    /// "tpm" or "software", as the request tells the PDP.
    pub fn storage(&self) -> &'static str {
        match self.inner {
            Inner::Software(_) => "software",
            Inner::Tpm { .. } => "tpm",
        }
    }

    pub fn public_key(&self) -> pki::ca::Sm2PublicKey {
        match &self.inner {
            Inner::Software(k) => k.public_key(),
            Inner::Tpm { public, .. } => *public,
        }
    }

    /// Whether `grant`'s certificate is for this key (a grant kept from
    /// before the key moved is not).
    pub fn matches(&self, grant: &Grant) -> bool {
        pki::ca::certificate_public_key(&grant.certificate).is_ok_and(|k| k == self.public_key())
    }

    /// A request for a certificate for this key, named `cn`.
    pub fn request(&self, cn: &str) -> Result<KeyRequest, ChannelError> {
        let key_err = |error: String| ChannelError::Key {
            path: PathBuf::from(match self.inner {
                Inner::Software(_) => KEY,
                Inner::Tpm { .. } => TPM_KEY,
            }),
            error,
        };
        let csr = match &self.inner {
            Inner::Software(key) => pki::ca::make_request(key, cn),
            Inner::Tpm {
                config,
                unique,
                public,
            } => pki::ca::make_request_with(public, cn, |e| {
                Tpm::open(config)
                    .and_then(|mut t| t.sm2_sign_digest(unique, e))
                    .map_err(|e| e.to_string())
            }),
        }
        .map_err(|e| key_err(e.to_string()))?;
        Ok(KeyRequest {
            csr,
            key_storage: self.storage().into(),
        })
    }

    /// The key as the channel's TLS signs with it. A key in the TPM opens
    /// the TPM for each signature (one per handshake) and closes it: a
    /// software TPM serves one connection at a time.
    pub fn into_signer(self) -> ChannelSigner {
        match self.inner {
            Inner::Software(key) => ChannelSigner::Software(key),
            Inner::Tpm {
                config,
                unique,
                public,
            } => ChannelSigner::External {
                public,
                sign: std::sync::Arc::new(move |e: &[u8; 32]| {
                    Tpm::open(&config)
                        .and_then(|mut t| t.sm2_sign_digest(&unique, e))
                        .map_err(|e| format!("the TPM: {e}"))
                }),
            },
        }
    }

    /// The software key, if the key is one.
    pub fn software_key(&self) -> Option<&Sm2Key> {
        match &self.inner {
            Inner::Software(k) => Some(k),
            Inner::Tpm { .. } => None,
        }
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
    fn without_a_tpm_auto_is_software_and_tpm_is_an_error_naming_the_setting() {
        let dir = std::env::temp_dir().join(format!("tnc-channel-place-{}", std::process::id()));
        let k = ChannelKey::open(&dir, None, KeyPlace::Auto).unwrap();
        assert_eq!((k.storage(), k.fallback.is_none()), ("software", true));
        assert!(k.software_key().is_some());
        let request = k.request("channel").unwrap();
        assert_eq!(request.key_storage, "software");
        let e = ChannelKey::open(&dir, None, KeyPlace::Tpm).unwrap_err();
        assert!(e.to_string().contains("names no TPM"), "{e}");
        #[derive(serde::Deserialize)]
        struct C {
            channel_key: KeyPlace,
        }
        for (text, want) in [
            ("auto", KeyPlace::Auto),
            ("tpm", KeyPlace::Tpm),
            ("software", KeyPlace::Software),
        ] {
            let c: C = toml::from_str(&format!("channel_key = \"{text}\"")).unwrap();
            assert_eq!(c.channel_key, want);
        }
        assert!(toml::from_str::<C>("channel_key = \"hsm\"").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn auto_never_moves_a_key_made_in_the_tpm_to_software() {
        let dir = std::env::temp_dir().join(format!("tnc-channel-kept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A TPM nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tpm = TpmConfig::parse(&format!("swtpm:host=127.0.0.1,port={port}")).unwrap();
        // No key in it yet: auto falls back to software, and says why.
        let k = ChannelKey::open(&dir, Some(&tpm), KeyPlace::Auto).unwrap();
        assert_eq!(k.storage(), "software");
        assert!(k.fallback.is_some());
        // The key was made in the TPM earlier: its failure is an error.
        std::fs::write(dir.join(TPM_KEY), [7u8; 32]).unwrap();
        let Err(e) = ChannelKey::open(&dir, Some(&tpm), KeyPlace::Auto) else {
            panic!("no fallback once the key is in the TPM");
        };
        assert!(e.to_string().contains(TPM_KEY), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_is_made_once_0600_and_grants_round_trip() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("tnc-channel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = ChannelKey::load_or_create(&dir).unwrap();
        let b = ChannelKey::load_or_create(&dir).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let mode = std::fs::metadata(dir.join(KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let request = a.request("device").unwrap();
        assert_eq!(
            pki::ca::verify_request(&request.csr).unwrap().public_key,
            a.public_key()
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
