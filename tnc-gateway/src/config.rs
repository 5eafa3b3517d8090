//! `gateway.toml`. Relative paths are relative to the file's directory;
//! every error names the key.
//!
//! ```toml
//! listen = "[::]:2712"                 # where terminals connect (TCP)
//! listen_quic = "[::]:2712"            # and over QUIC (UDP), if set
//!
//! [pdp]
//! revocations = "pdp.example:2711"     # the PDP's [revocations] listen (or a list:
//!                                      # the PDPs on one store, tried in turn)
//! name = "tnc-pdp"                     # the name on its certificate ([revocations] name)
//!
//! [identity]
//! name = "gw-1"                        # this gateway (enrolment names it so)
//! ca = "session-ca.pem"                # the PDP's session CA ([ca] certificate, public)
//! certificate = "gateway.pem"          # written by `tnc-gateway enrol`
//! private_key = "gateway.key"          # made by `tnc-gateway enrol`, 0600
//!
//! [vms]                                # where each VM serves channels
//! vm-1 = "10.0.0.5:2710"
//!
//! [limits]
//! per_ticket = 8                       # connections at once per ticket
//! per_source = 64                      # per source address
//! total = 4096
//! first_frame_secs = 10                # to send the admission
//! idle_secs = 600                      # a connection silent both ways this long is cut
//! pdp_grace_secs = 15                  # no word from the PDP this long: admit nobody
//! fail_open = false                    # true: keep admitting without the PDP (not advised)
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{what}: {problem}")]
pub struct ConfigError {
    pub what: String,
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Also QUIC (UDP) here: the framing on a connection's first stream,
    /// the gateway presenting its enrolled certificate; off unless set.
    #[serde(default)]
    pub listen_quic: Option<SocketAddr>,
    pub pdp: PdpSection,
    pub identity: Identity,
    #[serde(default)]
    pub vms: BTreeMap<String, SocketAddr>,
    #[serde(default)]
    pub limits: Limits,
    /// Prometheus metrics (docs/metrics.md).
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(skip)]
    pub base: PathBuf,
}

/// `[metrics]`: plain HTTP, `GET /metrics`; off unless `listen` is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdpSection {
    /// `host:port` of the PDP's revocation stream, or a list of those of
    /// the PDPs sharing one store: tried in order when the stream is lost.
    pub revocations: OneOrMore,
    #[serde(default = "default_pdp_name")]
    pub name: String,
}

/// A string, or a list of them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl OneOrMore {
    pub fn all(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::More(v) => v.clone(),
        }
    }
}

impl std::fmt::Display for OneOrMore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.all().join(", "))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub name: String,
    pub ca: PathBuf,
    #[serde(default = "default_certificate")]
    pub certificate: PathBuf,
    #[serde(default = "default_key")]
    pub private_key: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_per_ticket")]
    pub per_ticket: usize,
    #[serde(default = "default_per_source")]
    pub per_source: usize,
    #[serde(default = "default_total")]
    pub total: usize,
    #[serde(default = "default_first_frame")]
    pub first_frame_secs: u64,
    #[serde(default = "default_idle")]
    pub idle_secs: u64,
    #[serde(default = "default_grace")]
    pub pdp_grace_secs: u64,
    #[serde(default)]
    pub fail_open: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0u16; 8], 2712))
}
fn default_pdp_name() -> String {
    "tnc-pdp".into()
}
fn default_certificate() -> PathBuf {
    "gateway.pem".into()
}
fn default_key() -> PathBuf {
    "gateway.key".into()
}
fn default_per_ticket() -> usize {
    8
}
fn default_per_source() -> usize {
    64
}
fn default_total() -> usize {
    4096
}
fn default_first_frame() -> u64 {
    10
}
fn default_idle() -> u64 {
    600
}
fn default_grace() -> u64 {
    15
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_ticket: default_per_ticket(),
            per_source: default_per_source(),
            total: default_total(),
            first_frame_secs: default_first_frame(),
            idle_secs: default_idle(),
            pdp_grace_secs: default_grace(),
            fail_open: false,
        }
    }
}

impl Limits {
    pub fn first_frame(&self) -> Duration {
        Duration::from_secs(self.first_frame_secs)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs)
    }
    pub fn pdp_grace(&self) -> Duration {
        Duration::from_secs(self.pdp_grace_secs)
    }
}

impl GatewayConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("reading {}", path.display()), e))?;
        let mut config = Self::parse(&text)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.problem))?;
        config.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(config)
    }

    /// The text of a `gateway.toml`, checked.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::new("gateway.toml", e))?;
        let invalid = |key: &str, problem: &str| Err(ConfigError::new(key, problem));
        for (key, v) in [
            ("limits.per_ticket", config.limits.per_ticket as u64),
            ("limits.per_source", config.limits.per_source as u64),
            ("limits.total", config.limits.total as u64),
            ("limits.first_frame_secs", config.limits.first_frame_secs),
            ("limits.idle_secs", config.limits.idle_secs),
            ("limits.pdp_grace_secs", config.limits.pdp_grace_secs),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if config.pdp.revocations.all().is_empty() {
            return invalid("pdp.revocations", "name at least one PDP");
        }
        for name in config.vms.keys() {
            if !tnc_proto::gateway::valid_vm_name(name) {
                return invalid(
                    &format!("vms.{name}"),
                    "a VM name is letters, digits, '.', '-' and '_'",
                );
            }
        }
        Ok(config)
    }

    /// `p` relative to the config file's directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[pdp]
revocations = "127.0.0.1:2711"
[identity]
name = "gw-1"
ca = "ca.pem"
[vms]
vm-1 = "10.0.0.5:2710"
"#;

    #[test]
    fn defaults_and_errors_that_name_the_key() {
        let c = GatewayConfig::parse(MINIMAL).unwrap();
        assert_eq!(c.listen.port(), 2712);
        assert_eq!(c.pdp.name, "tnc-pdp");
        assert_eq!(c.limits.pdp_grace(), Duration::from_secs(15));
        assert!(!c.limits.fail_open);
        let zero = format!("{MINIMAL}[limits]\nper_ticket = 0\n");
        assert_eq!(
            GatewayConfig::parse(&zero).unwrap_err().what,
            "limits.per_ticket"
        );
        let two = MINIMAL.replace(
            "revocations = \"127.0.0.1:2711\"",
            "revocations = [\"127.0.0.1:2711\", \"127.0.0.2:2711\"]",
        );
        assert_eq!(
            GatewayConfig::parse(&two).unwrap().pdp.revocations.all(),
            ["127.0.0.1:2711", "127.0.0.2:2711"]
        );
        let bad_vm = MINIMAL.replace("vm-1 =", "\"vm 1\" =");
        assert_eq!(GatewayConfig::parse(&bad_vm).unwrap_err().what, "vms.vm 1");
        let unknown = format!("{MINIMAL}[limits]\nper_tickets = 3\n");
        assert!(GatewayConfig::parse(&unknown)
            .unwrap_err()
            .problem
            .contains("per_tickets"));
    }
}
