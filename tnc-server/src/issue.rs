//! Credentials on allow: for an endpoint that sent a request for its SM2
//! channel key and was allowed, a short-lived SM2 certificate from the
//! session CA (`[ca]`) naming the device (CN), its role (OU) and its user
//! (UID), and an access ticket bound to that certificate
//! (`pki::ticket`), signed with the CA's key. Nothing is issued on isolate
//! or no access.

use crate::store::CredentialWrite;
use pki::ca::{CaError, LeafSpec, NameAttr, Sm2Ca, Usage, VerifiedRequest};
use pki::rand::SecureRandom as _;
use pki::ticket::{Claims, Justification, Tier, TrustVector};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tnc_proto::attestation::Role;
use tnc_proto::credential::Grant;

/// The session CA and what it issues.
pub struct Issuer {
    ca: Sm2Ca,
    /// How long certificates and tickets are valid, unless `lifetimes`
    /// says otherwise for the device's role.
    pub lifetime: Duration,
    /// Per role: `[ca] role_lifetime_secs = { vm = 28800 }`.
    pub lifetimes: BTreeMap<Role, Duration>,
    /// The VMs a device of each role may reach (the ticket's `vms`).
    pub vms: BTreeMap<Role, Vec<String>>,
    /// The ticket's issuer claim.
    pub name: String,
    /// The name a VM serves channels under, by device ID (hex): put in its
    /// certificate as a DNS name, which terminals check.
    pub vm_names: BTreeMap<String, String>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("lifetime", &self.lifetime)
            .field("vms", &self.vms)
            .finish_non_exhaustive()
    }
}

/// Whom a credential is for.
#[derive(Clone, Debug)]
pub struct Subject {
    pub device_id: [u8; 32],
    pub role: Role,
    pub user: Option<String>,
    /// The reference values' version the decision used.
    pub policy_version: i64,
    /// Unix seconds of the decision.
    pub decided_at: u64,
}

/// What an allow hands out and what the store keeps of it.
#[derive(Clone, Debug)]
pub struct Issued {
    pub grant: Grant,
    pub write: CredentialWrite,
}

impl Issuer {
    pub fn new(ca: Sm2Ca, lifetime: Duration, vms: BTreeMap<Role, Vec<String>>) -> Self {
        let name = pki::ca::describe(ca.certificate_der())
            .map(|i| i.subject)
            .unwrap_or_else(|_| "tnc-server".into());
        Self {
            ca,
            lifetime,
            lifetimes: BTreeMap::new(),
            vms,
            name,
            vm_names: BTreeMap::new(),
        }
    }

    /// The names VMs serve under, by device ID (hex).
    pub fn with_vm_names(mut self, names: BTreeMap<String, String>) -> Self {
        self.vm_names = names;
        self
    }

    /// The issuer of `[ca]`, if the config has one: its certificate and key
    /// read and checked (the key private to its owner, and the
    /// certificate's).
    pub fn from_config(
        config: &crate::config::ServerConfig,
    ) -> Result<Option<Self>, crate::error::ConfigError> {
        use crate::error::ConfigError;
        let Some(section) = &config.ca else {
            return Ok(None);
        };
        let cert = config.path(&section.certificate);
        let key = config.path(&section.private_key);
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key)
                .map_err(|e| ConfigError::new(format!("ca.private_key {}", key.display()), e))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(ConfigError::new(
                    format!("ca.private_key {} has mode {mode:03o}", key.display()),
                    "it must not be readable by group or others (chmod 600 it)",
                ));
            }
        }
        let read = |path: &std::path::Path, setting: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(format!("{setting} {}", path.display()), e))
        };
        let ca = Sm2Ca::from_pem(
            &read(&cert, "ca.certificate")?,
            &read(&key, "ca.private_key")?,
        )
        .map_err(|e| {
            ConfigError::new(
                format!(
                    "ca.certificate {} and ca.private_key {}",
                    cert.display(),
                    key.display()
                ),
                e,
            )
        })?;
        Ok(Some(
            Self::new(
                ca,
                Duration::from_secs(section.lifetime_secs),
                section.vms.clone(),
            )
            .with_vm_names(section.vm_names.clone())
            .with_role_lifetimes(
                section
                    .role_lifetime_secs
                    .iter()
                    .map(|(role, secs)| (*role, Duration::from_secs(*secs)))
                    .collect(),
            ),
        ))
    }

    /// Per-role lifetimes, over the default one.
    pub fn with_role_lifetimes(mut self, lifetimes: BTreeMap<Role, Duration>) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// How long a device of `role` is certified.
    pub fn lifetime_for(&self, role: Role) -> Duration {
        self.lifetimes.get(&role).copied().unwrap_or(self.lifetime)
    }

    pub fn ca(&self) -> &Sm2Ca {
        &self.ca
    }

    pub fn ca_certificate(&self) -> &[u8] {
        self.ca.certificate_der()
    }

    /// A certificate for the requested key and a ticket bound to it.
    pub fn issue(&self, request: &VerifiedRequest, who: &Subject) -> Result<Issued, CaError> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(who.decided_at);
        let device = crate::store::hex(&who.device_id);
        let mut extra = vec![(NameAttr::OrganizationalUnit, who.role.name().to_string())];
        if let Some(u) = &who.user {
            extra.push((NameAttr::UserId, u.clone()));
        }
        // A VM's certificate carries the name it serves under, if the
        // operator gave it one: terminals check it like a host name.
        let dns_names = match who.role {
            Role::Vm => self.vm_names.get(&device).cloned().into_iter().collect(),
            Role::Terminal => Vec::new(),
        };
        let spec = LeafSpec {
            common_name: device.clone(),
            subject_extra: extra,
            dns_names,
            ips: Vec::new(),
            usage: match who.role {
                // A VM serves channels and a terminal opens them; both
                // authenticate mutually.
                Role::Vm => Usage::ServerAndClient,
                Role::Terminal => Usage::Client,
            },
            lifetime: self.lifetime_for(who.role),
        };
        let certificate = self.ca.issue(&request.public_key, &spec, now)?;
        let info = pki::ca::describe(&certificate)?;
        let mut id = vec![0u8; 16];
        pki::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| CaError::Rng)?;
        let decided = who.decided_at as i64;
        let expires = info.not_after;
        let claims = Claims {
            id: id.clone(),
            issuer: self.name.clone(),
            device: device.clone(),
            user: who.user.clone(),
            role: who.role.name().to_string(),
            certificate_sha256: policy::HashAlg::Sha256.digest(&certificate),
            vms: self.vms.get(&who.role).cloned().unwrap_or_default(),
            issued_at: decided,
            not_before: decided,
            expires,
            justification: Justification {
                // The attestation is the device's row of this decision:
                // (sub, at) is unique per device in the store.
                attestation: decided,
                verdict: policy::Verdict::Allow.name().to_string(),
                policy_version: who.policy_version,
                at: decided,
            },
            // Issued on allow only: every part of the platform affirmed
            // (the EK chain and AK, the boot log, the kernel, the IMA list).
            trust: TrustVector {
                hardware: Tier::Affirming,
                boot: Tier::Affirming,
                kernel: Tier::Affirming,
                applications: Tier::Affirming,
            },
        };
        let ticket = pki::ticket::issue(&claims, self.ca.key())?;
        Ok(Issued {
            grant: Grant {
                certificate,
                ca: self.ca.certificate_der().to_vec(),
                ticket,
                expires,
            },
            write: CredentialWrite {
                ticket_id: id,
                device_id: who.device_id,
                user: who.user.clone(),
                role: who.role.name().to_string(),
                serial: info.serial,
                certificate_sha256: info.sha256,
                not_after: expires,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_lifetime_overrides_the_default_for_that_role_only() {
        let ca = Sm2Ca::create(
            "session CA",
            Duration::from_secs(86_400),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 - 60),
        )
        .unwrap();
        let issuer = Issuer::new(ca, Duration::from_secs(3600), BTreeMap::new())
            .with_role_lifetimes([(Role::Vm, Duration::from_secs(28_800))].into());
        let key = pki::ca::Sm2Key::generate().unwrap();
        let request =
            pki::ca::verify_request(&pki::ca::make_request(&key, "channel").unwrap()).unwrap();
        for (role, secs) in [(Role::Vm, 28_800), (Role::Terminal, 3600)] {
            let issued = issuer
                .issue(
                    &request,
                    &Subject {
                        device_id: [1; 32],
                        role,
                        user: None,
                        policy_version: 1,
                        decided_at: 1_800_000_000,
                    },
                )
                .unwrap();
            let info = pki::ca::describe(&issued.grant.certificate).unwrap();
            assert_eq!(info.not_after, 1_800_000_000 + secs, "{role:?}");
            assert_eq!(issued.grant.expires, 1_800_000_000 + secs);
        }
    }
}
