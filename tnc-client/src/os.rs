//! The operating-system collector: the IETF standard attributes of RFC 5792 §4.2
//! (product information, versions, operational status, forwarding, factory default
//! password, installed packages), read from the running system.
//!
//! Parsing is separate from reading files so it can be tested on fixed inputs;
//! [`OsPaths`] says where the files are (a test or a container points elsewhere).

use std::path::PathBuf;
use tnc_proto::pa_tnc::{
    Attribute, FactoryDefaultPassword, ForwardingEnabled, InstalledPackages, NumericVersion,
    OperationalResult, OperationalState, OperationalStatus, Package, ProductInformation,
    StringVersion,
};
use tnc_proto::U24;

/// Where the collector reads the system's facts.
#[derive(Clone, Debug)]
pub struct OsPaths {
    pub os_release: PathBuf,
    pub ip_forward: PathBuf,
    pub dpkg_status: PathBuf,
    /// `/proc/stat`, for the boot time reported as the operating system's last use.
    pub proc_stat: PathBuf,
}

impl Default for OsPaths {
    fn default() -> Self {
        Self {
            os_release: "/etc/os-release".into(),
            ip_forward: "/proc/sys/net/ipv4/ip_forward".into(),
            dpkg_status: "/var/lib/dpkg/status".into(),
            proc_stat: "/proc/stat".into(),
        }
    }
}

/// The facts, owned; [`OsFacts::attributes`] borrows them into PA-TNC attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsFacts {
    /// Product name as strongSwan reports it: the first word of os-release NAME.
    pub product: String,
    /// SMI PEN of the OS vendor, 0 when unknown.
    pub vendor: u32,
    pub version_id: String,
    pub arch: String,
    /// `VERSION_ID ARCH`, the String Version's product version number.
    pub version_string: String,
    /// RFC 3339 time of the last boot, or the RFC 5792 "unknown" value.
    pub last_use: String,
    pub forwarding: ForwardingEnabled,
    /// Operator-asserted: no tool can tell in general whether a factory default
    /// password is in use, so this comes from configuration (default: no).
    pub default_password: bool,
    /// (name, version) of installed packages, empty if no package database.
    pub packages: Vec<(String, String)>,
}

/// Reads a file the collector may do without, treating "absent" as "unknown".
fn read_optional(path: &PathBuf) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl OsFacts {
    /// Reads the running system. Files that are missing give "unknown" values;
    /// only an unreadable os-release is an error, since without it there is no
    /// product to report.
    pub fn collect(paths: &OsPaths, default_password: bool) -> std::io::Result<Self> {
        let os_release = std::fs::read_to_string(&paths.os_release)?;
        let release = parse_os_release(&os_release);
        let forwarding = match read_optional(&paths.ip_forward).as_deref().map(str::trim) {
            Some("0") => ForwardingEnabled::Disabled,
            Some("1") => ForwardingEnabled::Enabled,
            _ => ForwardingEnabled::Unknown,
        };
        let last_use = read_optional(&paths.proc_stat)
            .and_then(|s| boot_time(&s))
            .map(OperationalStatus::last_use_at)
            .unwrap_or_else(|| OperationalStatus::LAST_USE_UNKNOWN.to_string());
        let packages = read_optional(&paths.dpkg_status)
            .map(|s| parse_dpkg_status(&s))
            .or_else(rpm_packages)
            .unwrap_or_default();
        Ok(Self {
            vendor: vendor_pen(&release.id),
            product: release.name,
            version_string: format!("{} {}", release.version_id, std::env::consts::ARCH),
            version_id: release.version_id,
            arch: std::env::consts::ARCH.to_string(),
            last_use,
            forwarding,
            default_password,
            packages,
        })
    }

    /// The attributes an OS collector volunteers in its first batch, in the order
    /// strongSwan's OS IMC sends them.
    pub fn posture(&self) -> Vec<Attribute<'_>> {
        let (major, minor) = numeric_version(&self.version_id);
        let mut v = vec![Attribute::ProductInformation(ProductInformation {
            vendor: U24::truncate(self.vendor),
            product_id: 0,
            name: &self.product,
        })];
        // strongSwan's OS IMC reports "<version> <arch>" with empty build and
        // configuration numbers (its capture shows `09 '12 x86_64' 00 00`).
        if let Some(s) = StringVersion::new(&self.version_string, "", "") {
            v.push(Attribute::StringVersion(s));
        }
        v.push(Attribute::NumericVersion(NumericVersion {
            major,
            minor,
            build: 0,
            service_pack_major: 0,
            service_pack_minor: 0,
        }));
        if let Some(s) = OperationalStatus::new(
            OperationalState::Operational,
            OperationalResult::Successful,
            &self.last_use,
        ) {
            v.push(Attribute::OperationalStatus(s));
        }
        v.push(Attribute::ForwardingEnabled(self.forwarding));
        v.push(Attribute::FactoryDefaultPasswordEnabled(
            if self.default_password {
                FactoryDefaultPassword::Enabled
            } else {
                FactoryDefaultPassword::Disabled
            },
        ));
        v
    }

    /// The Installed Packages attribute; packages whose name or version does not
    /// fit the 8-bit length fields are left out, and at most 65,535 are sent.
    pub fn installed_packages(&self) -> Attribute<'_> {
        let list: Vec<_> = self
            .packages
            .iter()
            .filter_map(|(n, v)| Package::new(n, v))
            .take(usize::from(u16::MAX))
            .collect();
        // `new` refuses only more than 65,535 entries, cut above.
        let packages = InstalledPackages::new(list).unwrap_or(InstalledPackages {
            packages: Vec::new(),
        });
        Attribute::InstalledPackages(packages)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct OsRelease {
    id: String,
    name: String,
    version_id: String,
}

/// os-release(5): `KEY=value` lines, values optionally quoted.
fn parse_os_release(text: &str) -> OsRelease {
    let mut r = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            "ID" => r.id = v,
            "NAME" => r.name = v.split_whitespace().next().unwrap_or_default().to_string(),
            "VERSION_ID" => r.version_id = v,
            _ => {}
        }
    }
    if r.name.is_empty() {
        r.name = "Linux".into();
    }
    r
}

/// SMI Private Enterprise Numbers of OS vendors, as strongSwan's OS IMC sends
/// them (its capture reports Debian as 9586).
fn vendor_pen(id: &str) -> u32 {
    match id {
        "debian" => 9586,
        "ubuntu" => 24337,
        "fedora" | "rhel" | "centos" => 2312,
        _ => 0,
    }
}

fn numeric_version(version_id: &str) -> (u32, u32) {
    let mut parts = version_id.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Installed packages from a dpkg status file: stanzas whose Status ends in
/// "installed".
/// The RPM database's packages, on a system without dpkg: `rpm -qa` is the
/// stable interface to it (its on-disk format changed between releases).
fn rpm_packages() -> Option<Vec<(String, String)>> {
    const RPM: &str = "/usr/bin/rpm";
    if !std::path::Path::new(RPM).exists() {
        return None;
    }
    let out = std::process::Command::new(RPM)
        .args(["-qa", "--queryformat", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(parse_rpm_query(&String::from_utf8_lossy(&out.stdout)))
}

/// `NAME<TAB>VERSION-RELEASE` lines, sorted by name.
fn parse_rpm_query(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

fn parse_dpkg_status(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, None, false);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.push((n.to_string(), v.to_string()));
        }
    }
    out.sort();
    out
}

/// `btime` of /proc/stat: seconds since the epoch at boot.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_query_lines_become_packages() {
        let text = "openssl\t3.0.7-27.el9\nbash\t5.1.8-9.el9\n\nbroken line\n\tno-name\n";
        assert_eq!(
            parse_rpm_query(text),
            vec![
                ("bash".to_string(), "5.1.8-9.el9".to_string()),
                ("openssl".to_string(), "3.0.7-27.el9".to_string()),
            ]
        );
    }

    #[test]
    fn os_release_fields() {
        let r = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(
            r,
            OsRelease {
                id: "debian".into(),
                name: "Debian".into(),
                version_id: "12".into()
            }
        );
        assert_eq!(numeric_version("22.04"), (22, 4));
        assert_eq!(numeric_version("rolling"), (0, 0));
        assert_eq!(parse_os_release("").name, "Linux");
    }

    #[test]
    fn dpkg_status_keeps_only_installed() {
        let s = "Package: b\nStatus: install ok installed\nVersion: 2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: a\nStatus: install ok installed\nVersion: 1:1.0\n";
        assert_eq!(
            parse_dpkg_status(s),
            vec![("a".into(), "1:1.0".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn boot_time_reads_btime() {
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn collects_from_given_paths() {
        let dir = std::env::temp_dir().join(format!("tnc-os-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("os-release"),
            "NAME=Fedora Linux\nID=fedora\nVERSION_ID=40\n",
        )
        .unwrap();
        std::fs::write(dir.join("ip_forward"), "1\n").unwrap();
        let paths = OsPaths {
            os_release: dir.join("os-release"),
            ip_forward: dir.join("ip_forward"),
            dpkg_status: dir.join("absent"),
            proc_stat: dir.join("absent"),
        };
        let f = OsFacts::collect(&paths, false).unwrap();
        assert_eq!((f.product.as_str(), f.vendor), ("Fedora", 2312));
        assert_eq!(f.forwarding, ForwardingEnabled::Enabled);
        assert_eq!(f.last_use, OperationalStatus::LAST_USE_UNKNOWN);
        assert!(f.packages.is_empty());
        let attrs = f.posture();
        assert_eq!(attrs.len(), 6);
        // Every attribute encodes to a value that parses back to itself.
        for a in &attrs {
            let mut msg = Vec::new();
            a.encode(&mut msg, false);
            assert!(!msg.is_empty());
        }
        assert!(OsFacts::collect(
            &OsPaths {
                os_release: dir.join("absent"),
                ..paths
            },
            false
        )
        .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
