//! `client.toml`: the role, the PDP and the CA that signs its certificate, the
//! TPM, and where measurements and the agent's own state live. Relative paths
//! are relative to the file's directory.

use crate::attest::AttestationConfig;
use crate::collect::EvidencePaths;
use crate::os::OsPaths;
use crate::tpm::{AkKind, TpmConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tnc_proto::attestation::Role;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub role: Role,
    /// The PDP, `host:port` (PT-TLS's port is 271).
    pub server: String,
    /// Further PDPs sharing the first one's store, in order: a kept session
    /// (`login --stay`, `connect`) that loses its PDP goes on with the next
    /// (failover), and tries them in turn for its first decision when
    /// `server` is down. A plain `login` uses `server` only.
    #[serde(default)]
    pub servers: Vec<String>,
    /// `tcp` (default) or `quic`: PT-TLS over TCP + TLS 1.3, or over QUIC
    /// (then `server` names the PDP's QUIC port).
    #[serde(default)]
    pub transport: Option<String>,
    /// `standard` (default), `shangmi` (RFC 8998 only: the PDP must present
    /// an SM2 certificate) or `both` (the ShangMi suites preferred).
    #[serde(default)]
    pub suites: pki::tls::Suites,
    /// The name the PDP's certificate must carry; default: the host of `server`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM file with the CA that signs the PDP's certificate. Always checked.
    pub ca: PathBuf,
    /// A client certificate (PEM chain) and its key, presented when the PDP
    /// accepts certificates in place of a user's password.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// The agent's own files: the AK (0600) and the last verdict.
    pub state_dir: PathBuf,
    /// Ask the PDP for channel credentials (a certificate for the SM2
    /// channel key and an access ticket), granted on allow. Default true.
    #[serde(default = "yes")]
    pub credentials: bool,
    /// Where the channel key lives: "auto" (default: the TPM when there is
    /// one that makes SM2 keys, else software), "tpm", "software".
    #[serde(default)]
    pub channel_key: crate::channel::KeyPlace,
    /// A serving VM: the PDP's revocation stream, `host:port`
    /// (`[revocations] listen` on the PDP). Revoked tickets are then refused
    /// and their channels cut at once, not when they expire.
    #[serde(default)]
    pub revocations: Option<String>,
    /// The name on that listener's certificate (`[revocations] name`).
    #[serde(default = "default_revocations_name")]
    pub revocations_name: String,
    /// The machine this endpoint runs on, as the PDP's lists show it: for
    /// a VM the hypervisor host (its provisioning knows it; the PDP's
    /// monitor groups VMs by it), for a terminal its own name. Default: a
    /// terminal's host name (`/proc/sys/kernel/hostname`), none for a VM.
    /// Reported, not attested.
    #[serde(default)]
    pub host: Option<tnc_proto::attestation::HostLabel>,
    /// Absent: this endpoint has no TPM, and says so to the PDP.
    #[serde(default)]
    pub tpm: Option<TpmSection>,
    #[serde(default)]
    pub evidence: EvidenceSection,
    #[serde(default)]
    pub os: OsSection,
    #[serde(skip)]
    pub base: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmSection {
    /// `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `mssim:…`.
    pub tcti: String,
    /// `ecdsa-p256` (default), `rsa-2048` or `sm2`.
    #[serde(default = "default_ak")]
    pub ak_kind: String,
}

fn default_ak() -> String {
    "ecdsa-p256".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSection {
    pub event_log: Option<PathBuf>,
    pub ima: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsSection {
    pub os_release: Option<PathBuf>,
    pub ip_forward: Option<PathBuf>,
    pub dpkg_status: Option<PathBuf>,
    pub proc_stat: Option<PathBuf>,
    /// Whether a factory default password is still set (the operator knows).
    #[serde(default)]
    pub default_password: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ClientConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut c: Self = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if c.certificate.is_some() != c.private_key.is_some() {
            return Err(invalid(
                "certificate and private_key go together: give both or neither".into(),
            ));
        }
        if let Some(t) = c
            .transport
            .as_deref()
            .filter(|t| *t != "tcp" && *t != "quic")
        {
            return Err(invalid(format!(
                "transport: {t:?}: use \"tcp\" or \"quic\""
            )));
        }
        if let Some(t) = &c.tpm {
            TpmConfig::parse(&t.tcti).map_err(|e| invalid(format!("tpm.tcti: {e}")))?;
            parse_ak_kind(&t.ak_kind).map_err(|e| invalid(format!("tpm.ak_kind: {e}")))?;
        }
        Ok(c)
    }

    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// The name to check on the PDP's certificate.
    pub fn server_name(&self) -> String {
        self.server_name_for(&self.server)
    }

    /// The name the certificate of the PDP at `server` must carry:
    /// `server_name` if set, else the host of `server`.
    pub fn server_name_for(&self, server: &str) -> String {
        self.server_name.clone().unwrap_or_else(|| {
            match server.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((host, _)) => host.to_string(),
                None => server
                    .rsplit_once(':')
                    .map_or(server, |(h, _)| h)
                    .to_string(),
            }
        })
    }

    pub fn os_paths(&self) -> OsPaths {
        let d = OsPaths::default();
        let pick = |o: &Option<PathBuf>, d: PathBuf| o.as_ref().map_or(d, |p| self.path(p));
        OsPaths {
            os_release: pick(&self.os.os_release, d.os_release),
            ip_forward: pick(&self.os.ip_forward, d.ip_forward),
            dpkg_status: pick(&self.os.dpkg_status, d.dpkg_status),
            proc_stat: pick(&self.os.proc_stat, d.proc_stat),
        }
    }

    pub fn attestation(&self) -> AttestationConfig {
        let d = EvidencePaths::default();
        let pick = |o: &Option<PathBuf>, d: PathBuf| o.as_ref().map_or(d, |p| self.path(p));
        AttestationConfig {
            role: self.role,
            // Checked in `load`.
            tpm: self
                .tpm
                .as_ref()
                .and_then(|t| TpmConfig::parse(&t.tcti).ok()),
            evidence: EvidencePaths {
                event_log: pick(&self.evidence.event_log, d.event_log),
                ima: pick(&self.evidence.ima, d.ima),
            },
            ak_path: self.path(&self.state_dir).join("ak.bin"),
            ak_kind: self
                .tpm
                .as_ref()
                .and_then(|t| parse_ak_kind(&t.ak_kind).ok())
                .unwrap_or(AkKind::EcdsaP256Sha256),
            host: self.host.clone().or_else(|| match self.role {
                Role::Terminal => own_host_name(),
                Role::Vm => None,
            }),
        }
    }

    /// The channel key this config asks for.
    pub fn channel_key(&self) -> Result<crate::channel::ChannelKey, crate::channel::ChannelError> {
        crate::channel::ChannelKey::open(
            &self.path(&self.state_dir),
            self.attestation().tpm.as_ref(),
            self.channel_key,
        )
    }

    pub fn last_verdict_path(&self) -> PathBuf {
        self.path(&self.state_dir).join("last-verdict.json")
    }
}

pub fn parse_ak_kind(s: &str) -> Result<AkKind, String> {
    match s {
        "ecdsa-p256" => Ok(AkKind::EcdsaP256Sha256),
        "rsa-2048" => Ok(AkKind::RsaSsa2048Sha256),
        "sm2" => Ok(AkKind::Sm2P256Sha256),
        other => Err(format!(
            "{other:?} is not an AK kind: use \"ecdsa-p256\", \"rsa-2048\" or \"sm2\""
        )),
    }
}

fn yes() -> bool {
    true
}

fn default_revocations_name() -> String {
    "tnc-pdp".into()
}

/// This machine's name, if it is one a [`HostLabel`] may carry.
///
/// [`HostLabel`]: tnc_proto::attestation::HostLabel
fn own_host_name() -> Option<tnc_proto::attestation::HostLabel> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ClientConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "tnc-client-config-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.toml");
        std::fs::write(&path, text).unwrap();
        let c = ClientConfig::load(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        c
    }

    const BASE: &str =
        "role = \"vm\"\nserver = \"[::1]:271\"\nca = \"ca.pem\"\nstate_dir = \"s\"\n";

    #[test]
    fn a_valid_config_loads_and_names_the_server() {
        let c = load(BASE).unwrap();
        assert_eq!(c.role, Role::Vm);
        assert_eq!(c.server_name(), "::1");
        assert!(c.tpm.is_none() && c.certificate.is_none());
    }

    #[test]
    fn the_host_defaults_to_a_terminals_own_name_and_none_for_a_vm() {
        let terminal = BASE.replace("role = \"vm\"", "role = \"terminal\"");
        assert_ne!(terminal, BASE);
        assert_eq!(load(&terminal).unwrap().attestation().host, own_host_name());
        let vm = BASE;
        assert_eq!(load(vm).unwrap().attestation().host, None);
        let set = load(&format!("{vm}host = \"hv-3\"\n")).unwrap();
        assert_eq!(
            set.attestation().host.as_ref().map(|h| h.as_str()),
            Some("hv-3")
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            ("certificate = \"c.pem\"\n", "certificate and private_key"),
            ("transport = \"udp\"\n", "transport"),
            ("[tpm]\ntcti = \"carrier-pigeon\"\n", "tpm.tcti"),
            (
                "[tpm]\ntcti = \"device:/dev/tpmrm0\"\nak_kind = \"dsa\"\n",
                "tpm.ak_kind",
            ),
            ("colour = \"blue\"\n", "colour"),
            ("host = \"hv 1\"\n", "only letters, digits"),
        ];
        for (extra, key) in cases {
            let err = load(&format!("{BASE}{extra}")).unwrap_err().to_string();
            assert!(err.contains(key), "{extra:?}: {err}");
        }
    }
}
