//! The operating-system validator: the IETF standard attributes of RFC 5792
//! §4.2 (product information, versions, operational status, forwarding
//! enabled, factory default password) against the OS policy.

use super::{Assessment, Reason};
use crate::config::OsPolicy;
use policy::Verdict;
use tnc_proto::pa_tnc::{Attribute, FactoryDefaultPassword, ForwardingEnabled};

/// What the endpoint reported.
#[derive(Debug, Default)]
pub struct OsValidator {
    product: Option<String>,
    version: Option<String>,
    forwarding: Option<ForwardingEnabled>,
    default_password: Option<FactoryDefaultPassword>,
    /// (name, version) of every installed package, once reported.
    packages: Option<Vec<(String, String)>>,
    heard: bool,
    /// The package inventory was asked for.
    asked_packages: bool,
}

impl OsValidator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the OS collector said anything.
    pub fn heard(&self) -> bool {
        self.heard
    }

    pub fn product(&self) -> Option<&str> {
        self.product.as_deref()
    }

    pub fn receive(&mut self, attr: &Attribute<'_>) {
        self.heard = true;
        match attr {
            Attribute::ProductInformation(p) => self.product = Some(p.name.to_string()),
            Attribute::StringVersion(v) => self.version = Some(v.version.to_string()),
            Attribute::ForwardingEnabled(f) => self.forwarding = Some(*f),
            Attribute::FactoryDefaultPasswordEnabled(d) => self.default_password = Some(*d),
            Attribute::InstalledPackages(p) => {
                self.packages = Some(
                    p.packages
                        .iter()
                        .map(|p| (p.name.to_string(), p.version.to_string()))
                        .collect(),
                )
            }
            _ => {}
        }
    }

    /// Whether to ask for the package inventory now: once, after the
    /// collector reported, when the policy forbids packages.
    pub fn request(&mut self, policy: &OsPolicy) -> bool {
        let ask = self.heard
            && !self.asked_packages
            && self.packages.is_none()
            && !policy.forbidden_packages.is_empty();
        self.asked_packages |= ask;
        ask
    }

    /// The verdict under `policy`.
    pub fn assess(&self, policy: &OsPolicy) -> Assessment {
        let isolate = |text: String| Reason {
            severity: Verdict::Isolate,
            text,
        };
        let mut reasons = Vec::new();
        if !self.heard {
            return Assessment::single(
                policy.no_report,
                "the endpoint sent no operating-system attributes",
            );
        }
        match &self.product {
            None => reasons.push(isolate("no Product Information attribute".into())),
            Some(p) if !policy.products.is_empty() && !policy.products.iter().any(|a| a == p) => {
                reasons.push(isolate(format!(
                    "operating system {p:?} is not one the policy allows ({})",
                    policy.products.join(", ")
                )))
            }
            Some(_) => {}
        }
        if !policy.versions.is_empty() {
            match &self.version {
                Some(v) if policy.versions.iter().any(|a| a == v) => {}
                Some(v) => reasons.push(isolate(format!(
                    "operating system version {v:?} is not one the policy allows ({})",
                    policy.versions.join(", ")
                ))),
                None => reasons.push(isolate("no String Version attribute".into())),
            }
        }
        if policy.forbid_forwarding {
            match self.forwarding {
                Some(ForwardingEnabled::Disabled) => {}
                Some(f) => reasons.push(isolate(format!(
                    "IP forwarding is {f:?}: policy requires it disabled"
                ))),
                None => reasons.push(isolate("IP forwarding state not reported".into())),
            }
        }
        if policy.forbid_default_password
            && self.default_password == Some(FactoryDefaultPassword::Enabled)
        {
            reasons.push(isolate("a factory default password is enabled".into()));
        }
        if !policy.forbidden_packages.is_empty() {
            match &self.packages {
                None => reasons.push(isolate(
                    "the package inventory was asked for and not sent".into(),
                )),
                Some(installed) => {
                    for (name, version) in installed {
                        if policy.forbidden_packages.iter().any(|f| f == name) {
                            reasons.push(isolate(format!(
                                "forbidden package {name} {version} is installed"
                            )));
                        }
                    }
                }
            }
        }
        let product = match (&self.product, &self.version) {
            (Some(p), Some(v)) => format!("{p} {v}"),
            (Some(p), None) => p.clone(),
            _ => "operating system".into(),
        };
        Assessment::from_reasons(reasons, &format!("{product} complies with the OS policy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tnc_proto::pa_tnc::{ProductInformation, StringVersion};
    use tnc_proto::U24;

    fn reported(version: &str, forwarding: ForwardingEnabled) -> OsValidator {
        let mut v = OsValidator::new();
        v.receive(&Attribute::ProductInformation(ProductInformation {
            vendor: U24::IETF,
            product_id: 0,
            name: "Debian",
        }));
        v.receive(&Attribute::StringVersion(
            StringVersion::new(version, "", "").unwrap(),
        ));
        v.receive(&Attribute::ForwardingEnabled(forwarding));
        v
    }

    #[test]
    fn policy_checks_product_version_and_forwarding() {
        let policy = OsPolicy {
            products: vec!["Debian".into()],
            versions: vec!["12 x86_64".into()],
            ..OsPolicy::default()
        };
        let ok = reported("12 x86_64", ForwardingEnabled::Disabled).assess(&policy);
        assert_eq!(ok.verdict, Verdict::Allow, "{ok:?}");
        let old = reported("11 x86_64", ForwardingEnabled::Disabled).assess(&policy);
        assert_eq!(old.verdict, Verdict::Isolate);
        assert!(old.reasons[0].text.contains("\"11 x86_64\""), "{old:?}");
        let router = reported("12 x86_64", ForwardingEnabled::Enabled).assess(&policy);
        assert!(router.reasons[0].text.contains("forwarding"), "{router:?}");
        let silent = OsValidator::new().assess(&policy);
        assert_eq!(silent.verdict, policy.no_report);
    }
}
