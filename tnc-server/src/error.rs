//! The library's errors. Each says what went wrong in the words the operator
//! fixes it with (the setting and the file, the step of the session); the
//! `tnc-server` binary alone wraps them in `anyhow`.

/// A setting of `server.toml`, or a file it names, that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {problem}")]
pub struct ConfigError {
    /// The setting (and file) at fault: "tls.private_key /etc/tnc/key.pem".
    pub what: String,
    /// What is wrong with it, and how to fix it where that is known.
    pub problem: String,
}

impl ConfigError {
    pub fn new(what: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Self {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

/// Why the PDP did not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket could not be bound: the address and the setting it came from.
    #[error("listening on {what}: {error}")]
    Listen { what: String, error: std::io::Error },
    #[error("QUIC: {0}")]
    Quic(#[from] pki::tls::TlsError),
    #[error("a PDP listener panicked: {0}")]
    Panicked(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
