//! The operator's store commands: `user`, `device`, `audit`, `policy`. Each
//! takes `--config FILE` and works on the store the config names (the PDP may
//! be running: SQLite serializes the writes).

use super::target::{Target, Where};
use super::{open_store as open, runtime};
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tnc_proto::admin as api;
use tnc_proto::attestation::Role;
use tnc_server::admin::client::AdminClient;
use tnc_server::pdp::system_clock;
use tnc_server::store::{hex, Store};

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user for SASL PLAIN (argon2id hash). The password comes from
    /// --password-file, else the TNC_PASSWORD environment variable, else a
    /// line on standard input.
    Add {
        #[arg(long)]
        config: PathBuf,
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List the users.
    List {
        #[arg(long)]
        config: PathBuf,
        /// A JSON array of {name, created_at}.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user.
    Remove {
        #[arg(long)]
        config: PathBuf,
        name: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum DeviceCommand {
    /// The enrolled devices.
    List {
        #[command(flatten)]
        at: Target,
        #[arg(long)]
        json: bool,
    },
    /// One device (by its ID or a unique prefix of it) and its last attestations.
    Show {
        #[command(flatten)]
        at: Target,
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Forget a device: its next login enrolls its AK again, from a whole IMA list.
    Forget {
        #[command(flatten)]
        at: Target,
        device: String,
    },
    /// Re-assess a device now on the session it keeps open with a PDP (any
    /// PDP on this store), or every open session with --all; waits for the
    /// device's verdict.
    ///
    /// Exit status: 0 allow, 3 isolate, 4 no access, 1 no re-assessment in
    /// time (the device keeps no session open: its next login assesses it).
    Reassess {
        #[command(flatten)]
        at: Target,
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        device: Option<String>,
        #[arg(long)]
        all: bool,
        /// Seconds to wait for the verdict (0: do not wait).
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Revoke the device's unexpired certificates and tickets: gateways and
    /// VMs refuse them and cut their connections; pairings are refused.
    Revoke {
        #[command(flatten)]
        at: Target,
        device: String,
        /// Said in the revocation and the audit log.
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum GatewayCommand {
    /// A one-time token with which gateway NAME enrols (`tnc-gateway enrol`)
    /// on the PDP's revocation port, getting its certificate. Printed once;
    /// the store keeps its SHA-256 only.
    Token {
        #[arg(long)]
        config: PathBuf,
        name: String,
        /// How long the token may be used.
        #[arg(long, default_value_t = 3600)]
        valid_secs: u64,
    },
    /// The subscribers to the revocation stream (gateways, VMs): the last
    /// revocation each acknowledged, and when.
    Subscribers {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn gateway(cmd: &GatewayCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            GatewayCommand::Token {
                config,
                name,
                valid_secs,
            } => {
                if !tnc_server::revocation::valid_gateway_name(name) {
                    bail!("gateway name {name:?}: 1 to 64 letters, digits, '.', '-' or '_'");
                }
                let settings = tnc_server::config::ServerConfig::load(config)?;
                if settings.revocations.listen.is_none() {
                    eprintln!(
                        "note: revocations.listen is not set in {}: gateways cannot enrol \
                         or subscribe until it is",
                        config.display()
                    );
                }
                let store = open(config).await?;
                let token = store
                    .new_enrolment_token(name, *valid_secs, system_clock())
                    .await?;
                println!("{token}");
                eprintln!(
                    "one-time token for gateway {name}, valid {valid_secs} s: \
                     tnc-gateway enrol --config gateway.toml --token {token}"
                );
            }
            GatewayCommand::Subscribers { config, json } => {
                let store = open(config).await?;
                let newest = store.last_revocation_seq().await?;
                let list = store.subscribers().await?;
                if *json {
                    let v: Vec<_> = list
                        .iter()
                        .map(|(n, r, s, at)| json!({"name": n, "role": r, "acked": s, "at": at, "behind": newest - s}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("newest revocation: {newest}");
                    println!("{:<64} | {:<7} | {:>7} | at", "subscriber", "role", "acked");
                    for (n, r, s, at) in &list {
                        println!("{n:<64} | {r:<7} | {s:>7} | {at}");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the audit log's chain (HMAC-SM3 under [store] audit_key,
    /// SM3 before the key); exit 1 if any entry was edited, removed or
    /// inserted, or, with --anchor, if entries after the newest anchor were
    /// dropped.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// An anchor file `audit anchor` appended to.
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
    /// Append the chain's newest (sequence, hash) to FILE, or print it with
    /// `-`, to keep somewhere the database's writers cannot reach (another
    /// host, a write-once store; e.g. from cron every few minutes).
    Anchor {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        to: PathBuf,
    },
    /// Make a key for an audit log that has none yet: it covers the entries
    /// from the next one on. Stop the PDPs on the store first, add the line
    /// it prints to [store] of every config on the store, then start them.
    Key {
        #[arg(long)]
        config: PathBuf,
        /// Where to write it (0600; must not exist).
        #[arg(long, default_value = "audit.key")]
        out: PathBuf,
    },
    /// Print the audit log.
    List {
        #[command(flatten)]
        at: Target,
        /// One JSON object per line (JSON Lines: the log may be long).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Each role's current policy version (its SHA-256 and when it was
    /// loaded).
    List {
        #[command(flatten)]
        at: Target,
        #[arg(long)]
        json: bool,
    },
    /// Check reference values and record them as the role's new policy
    /// version in the store (the daemon reads the files the config names; the
    /// store keeps every version with its SHA-256 for the record).
    Load {
        #[command(flatten)]
        at: Target,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        file: PathBuf,
    },
    /// Learn mode: turn a device's last genuine evidence (boot events, kernel,
    /// command line, every file IMA measured) into reference values for its
    /// role. Shows what it learned and asks before recording it as the new
    /// policy version; never automatic.
    Learn {
        #[arg(long)]
        config: PathBuf,
        /// The device (its ID or a unique prefix, from `device list`, or as
        /// `tnc-client login` prints it).
        #[arg(required_unless_present = "last")]
        device: Option<String>,
        /// The device that attested most recently, in place of DEVICE.
        #[arg(long, conflicts_with = "device")]
        last: bool,
        /// Record for this role instead of the device's own.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Also write the reference values to this file (TOML).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Do not ask: record them.
        #[arg(long)]
        yes: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_name(s).ok_or_else(|| format!("{s:?}: use terminal or vm"))
}

fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    let password = if let Some(f) = file {
        std::fs::read_to_string(f).with_context(|| format!("--password-file {}", f.display()))?
    } else if let Ok(p) = std::env::var("TNC_PASSWORD") {
        p
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password: ")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

pub fn user(cmd: &UserCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            UserCommand::Add {
                config,
                name,
                password_file,
            } => {
                if name.is_empty() || name.contains('\0') {
                    bail!("user name {name:?}: must be non-empty text without NUL");
                }
                let password = read_password(password_file.as_deref())?;
                let hash =
                    tnc_server::auth::hash_password(&password, &pki::rand::SystemRandom::new())
                        .map_err(|e| anyhow!("hashing the password: {e}"))?;
                let store = open(config).await?;
                if !store.add_user(name, &hash, system_clock()).await? {
                    bail!("user {name:?} exists already (remove it first to change the password)");
                }
                store.audit(system_clock(), "user-add", name, "").await?;
                println!("user {name} added");
            }
            UserCommand::List { config, json } => {
                let users = open(config).await?.users().await?;
                if *json {
                    let list: Vec<_> = users
                        .iter()
                        .map(|(name, created)| serde_json::json!({"name": name, "created_at": created}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for (name, created) in users {
                        println!("{name}\tcreated {created}");
                    }
                }
            }
            UserCommand::Remove { config, name } => {
                let store = open(config).await?;
                if !store.remove_user(name).await? {
                    bail!("no user {name:?}");
                }
                store.audit(system_clock(), "user-remove", name, "").await?;
                println!("user {name} removed");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn find_device(
    store: &Store,
    prefix: &str,
) -> anyhow::Result<tnc_server::devices::DeviceRecord> {
    Ok(store.find_device(prefix).await?)
}

fn print_devices(list: &[api::Device], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    println!(
        "{:<16} | {:<8} | {:<9} | {:>5} | {:>11} | {:<12} | {:<16} | last seen",
        "device", "role", "verdict", "drift", "IMA entries", "user", "host"
    );
    for d in list {
        println!(
            "{:<16} | {:<8} | {:<9} | {:>5} | {:>11} | {:<12} | {:<16} | {}",
            d.device.get(..16).unwrap_or(&d.device),
            d.role,
            d.last_verdict.as_deref().unwrap_or("-"),
            d.drift,
            d.ima_entries.map_or("-".into(), |n| n.to_string()),
            d.user.as_deref().unwrap_or("-"),
            d.host.as_deref().unwrap_or("-"),
            d.last_seen
        );
    }
    Ok(())
}

fn print_detail(d: &api::DeviceDetail, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    if let serde_json::Value::Object(fields) = serde_json::to_value(&d.device)? {
        for (k, val) in fields {
            println!("{k}: {val}");
        }
    }
    for r in &d.revocations {
        println!(
            "ticket {} revoked at {} (until {}): {}",
            r.ticket, r.at, r.not_after, r.reason
        );
    }
    for a in &d.attestations {
        println!("attestation at {}: {}", a.at, a.verdict);
        for f in &a.findings {
            println!("  - {f}");
        }
    }
    Ok(())
}

/// A re-assessment's verdict, printed; its exit status.
fn reassessed(id: &str, at: i64, verdict: &str, findings: &[String]) -> ExitCode {
    println!("device {id} re-assessed at {at}: {verdict}");
    for f in findings {
        println!("  - {f}");
    }
    ExitCode::from(match verdict {
        "allow" => 0,
        "isolate" => 3,
        _ => 4,
    })
}

fn not_reassessed(id: &str, wait: u64) -> ExitCode {
    println!(
        "device {id} was not re-assessed within {wait} s: it keeps no session open with a \
         running PDP on this store (its next login assesses it)"
    );
    ExitCode::from(1)
}

pub fn device(cmd: &DeviceCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let at = match cmd {
            DeviceCommand::List { at, .. }
            | DeviceCommand::Show { at, .. }
            | DeviceCommand::Forget { at, .. }
            | DeviceCommand::Reassess { at, .. }
            | DeviceCommand::Revoke { at, .. } => at,
        };
        match at.resolve()? {
            Where::Local(config) => device_local(cmd, config).await,
            Where::Remote(client) => device_remote(cmd, &client).await,
        }
    })
}

async fn device_local(cmd: &DeviceCommand, config: &Path) -> anyhow::Result<ExitCode> {
    match cmd {
        DeviceCommand::List { json, .. } => {
            let list: Vec<api::Device> = open(config)
                .await?
                .device_summaries(None, None)
                .await?
                .iter()
                .map(tnc_server::admin::summary_view)
                .collect();
            print_devices(&list, *json)?;
        }
        DeviceCommand::Show { device, json, .. } => {
            let store = open(config).await?;
            print_detail(
                &tnc_server::admin::device_detail(&store, device).await?,
                *json,
            )?;
        }
        DeviceCommand::Forget { device, .. } => {
            let store = open(config).await?;
            let d = find_device(&store, device).await?;
            store
                .forget_device_audited(&d.device_id, system_clock(), "by the operator")
                .await?;
            println!("device {} forgotten", hex(&d.device_id));
        }
        DeviceCommand::Reassess {
            device, all, wait, ..
        } => return reassess(config, device.as_deref(), *all, *wait).await,
        DeviceCommand::Revoke { device, reason, .. } => {
            let store = open(config).await?;
            let d = find_device(&store, device).await?;
            let n = store
                .revoke_device(&d.device_id, system_clock(), reason)
                .await?;
            print_revoked(&hex(&d.device_id), n, reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_revoked(device: &str, n: u64, reason: &str) {
    match n {
        0 => println!("device {device} holds no unexpired ticket: nothing to revoke"),
        n => println!(
            "device {device}: {n} ticket(s) revoked ({reason}); gateways and VMs \
             subscribed to the PDP cut their connections"
        ),
    }
}

/// The same commands through the admin API of a running PDP.
async fn device_remote(cmd: &DeviceCommand, client: &AdminClient) -> anyhow::Result<ExitCode> {
    match cmd {
        DeviceCommand::List { json, .. } => {
            let list: Vec<api::Device> = client.get("/v1/devices").await?;
            print_devices(&list, *json)?;
        }
        DeviceCommand::Show { device, json, .. } => {
            let d: api::DeviceDetail = client.get(&format!("/v1/devices/{device}")).await?;
            print_detail(&d, *json)?;
        }
        DeviceCommand::Forget { device, .. } => {
            let done: api::ActionResult = client
                .post(&format!("/v1/devices/{device}/forget"), &())
                .await?;
            if let api::ActionResult::Forgotten { device } = done {
                println!("device {device} forgotten");
            }
        }
        DeviceCommand::Revoke { device, reason, .. } => {
            let done: api::ActionResult = client
                .post(
                    &format!("/v1/devices/{device}/revoke"),
                    &api::RevokeRequest {
                        reason: reason.clone(),
                    },
                )
                .await?;
            if let api::ActionResult::Revoked { device, tickets } = done {
                print_revoked(&device, tickets, reason);
            }
        }
        DeviceCommand::Reassess {
            device, all, wait, ..
        } => {
            let Some(device) = device.as_deref().filter(|_| !*all) else {
                let _: api::ActionResult = client.post("/v1/reassess", &()).await?;
                println!("asked every PDP on the store to re-assess all its open sessions");
                return Ok(ExitCode::SUCCESS);
            };
            let before: api::DeviceDetail = client.get(&format!("/v1/devices/{device}")).await?;
            let newest = before.attestations.first().map(|a| a.id);
            // From here on by its whole ID, so the polls name this device even
            // if another comes to share the typed prefix.
            let id = before.device.device;
            let path = format!("/v1/devices/{id}");
            let _: api::ActionResult = client.post(&format!("{path}/reassess"), &()).await?;
            if *wait == 0 {
                println!("asked for a re-assessment of {id}");
                return Ok(ExitCode::SUCCESS);
            }
            let until = std::time::Instant::now() + std::time::Duration::from_secs(*wait);
            while std::time::Instant::now() < until {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let now: api::DeviceDetail = client.get(&path).await?;
                let Some(a) = now.attestations.first().filter(|a| Some(a.id) != newest) else {
                    continue;
                };
                return Ok(reassessed(&id, a.at, &a.verdict, &a.findings));
            }
            return Ok(not_reassessed(&id, *wait));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `device reassess`: a request in the store, which every PDP on it polls;
/// then, for one device, its next attestation.
async fn reassess(
    config: &Path,
    device: Option<&str>,
    all: bool,
    wait: u64,
) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let d = match (device, all) {
        (Some(prefix), false) => Some(find_device(&store, prefix).await?),
        _ => None,
    };
    let before = match &d {
        Some(d) => store.last_attestation_id(&d.device_id).await?,
        None => None,
    };
    store
        .request_reassessment(d.as_ref().map(|d| &d.device_id), system_clock())
        .await?;
    let Some(d) = d else {
        println!("asked every PDP on this store to re-assess all its open sessions");
        return Ok(ExitCode::SUCCESS);
    };
    let id = hex(&d.device_id);
    if wait == 0 {
        println!("asked for a re-assessment of {id}");
        return Ok(ExitCode::SUCCESS);
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    while std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if store.last_attestation_id(&d.device_id).await? == before {
            continue;
        }
        let Some(a) = store.attestations(&d.device_id, 1).await?.pop() else {
            continue;
        };
        return Ok(reassessed(&id, a.at, &a.verdict, &a.findings));
    }
    Ok(not_reassessed(&id, wait))
}

pub fn audit(cmd: &AuditCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            AuditCommand::Verify { config, anchor } => {
                let anchor = match anchor {
                    None => None,
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("--anchor {}", path.display()))?;
                        Some(tnc_server::store::Anchor::newest(&text).with_context(|| {
                            format!("--anchor {}: no anchor line in it", path.display())
                        })?)
                    }
                };
                let store = open(config).await?;
                match store.verify_audit_against(anchor.as_ref()).await? {
                    Ok(n) => {
                        let how = match store.audit_key() {
                            Some(k) => format!(
                                "HMAC-SM3 chain verified with the key (it covers entries from {} on)",
                                k.since()
                            ),
                            None => "SM3 chain verified; it has no key, so whoever can write \
                                     the database could have rewritten it consistently \
                                     (tnc-server audit key)"
                                .into(),
                        };
                        println!("audit log intact: {n} entries, {how}");
                        if let Some(a) = &anchor {
                            println!("the anchor taken at {} (entry {}) holds", a.at, a.seq);
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(b) => {
                        println!("audit log BROKEN at {b}");
                        Ok(ExitCode::from(1))
                    }
                }
            }
            AuditCommand::Anchor { config, to } => {
                let store = open(config).await?;
                let Some(anchor) = store.audit_anchor(system_clock()).await? else {
                    bail!("the audit log is empty: nothing to anchor");
                };
                if to.as_os_str() == "-" {
                    println!("{}", anchor.line());
                } else {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(to)
                        .with_context(|| format!("--to {}", to.display()))?;
                    writeln!(f, "{}", anchor.line())
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("--to {}", to.display()))?;
                    println!("anchored entry {} in {}", anchor.seq, to.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Key { config, out } => {
                let settings = tnc_server::config::ServerConfig::load(config)?;
                if settings.store.audit_key.is_some() {
                    bail!("[store] audit_key is set already: the audit log has a key");
                }
                let store = open(config).await?;
                let next = store.audit_anchor(0).await?.map_or(1, |a| a.seq + 1);
                tnc_server::store::AuditKey::create(out, next)
                    .with_context(|| format!("--out {}", out.display()))?;
                println!(
                    "wrote {} (0600): it keys the audit entries from {next} on",
                    out.display()
                );
                println!(
                    "add to [store] in {}:  audit_key = \"{}\"  and restart the PDP; keep a copy off this host",
                    config.display(),
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::List { at, json } => {
                let print = |e: &api::AuditEntry| {
                    if *json {
                        println!("{}", serde_json::to_string(e).unwrap_or_default());
                    } else {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            e.seq, e.at, e.kind, e.subject, e.detail
                        );
                    }
                };
                match at.resolve()? {
                    Where::Local(config) => {
                        for e in open(config).await?.audit_entries().await? {
                            print(&e);
                        }
                    }
                    Where::Remote(client) => {
                        // Page by page, 1000 entries each.
                        let mut after = 0;
                        loop {
                            let page: Vec<api::AuditEntry> =
                                client.get(&format!("/v1/audit?after={after}")).await?;
                            let Some(last) = page.last() else { break };
                            after = last.seq;
                            for e in &page {
                                print(e);
                            }
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn policy_list(at: &Target, json: bool) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let list: Vec<api::PolicyVersion> = match at.resolve()? {
            Where::Local(config) => {
                tnc_server::admin::policy_versions(&open(config).await?).await?
            }
            Where::Remote(client) => client.get("/v1/policies").await?,
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            println!(
                "{:<8} | {:>7} | {:<64} | loaded at",
                "role", "version", "sha256"
            );
            for p in &list {
                println!(
                    "{:<8} | {:>7} | {:<64} | {}",
                    p.role, p.version, p.sha256, p.loaded_at
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn policy(cmd: &PolicyCommand) -> anyhow::Result<ExitCode> {
    let (at, role, file) = match cmd {
        PolicyCommand::List { at, json } => return policy_list(at, *json),
        PolicyCommand::Load { at, role, file } => (at, role, file),
        PolicyCommand::Learn {
            config,
            device,
            // Without DEVICE, clap made sure --last was given.
            last: _,
            role,
            output,
            yes,
        } => return learn(config, device.as_deref(), *role, output.as_deref(), *yes),
    };
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    policy::reference::ReferenceValues::from_toml(&text)
        .and_then(|r| r.compile())
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    runtime()?.block_on(async {
        let config = match at.resolve()? {
            Where::Local(config) => config,
            Where::Remote(client) => {
                let done: api::ActionResult = client
                    .post(
                        &format!("/v1/policies/{}", role.name()),
                        &api::PolicyLoad {
                            reference_values: text.clone(),
                        },
                    )
                    .await?;
                match done {
                    api::ActionResult::PolicyLoaded {
                        version: Some(v), ..
                    } => println!(
                        "reference values for {} recorded as version {v}",
                        role.name()
                    ),
                    _ => println!(
                        "reference values for {}: the current version already, nothing recorded",
                        role.name()
                    ),
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        let store = open(config).await?;
        let id = store.record_policy(*role, &text, system_clock()).await?;
        store
            .audit(
                system_clock(),
                "policy-load",
                role.name(),
                &format!("version {id} from {}", file.display()),
            )
            .await?;
        println!(
            "reference values for {} recorded as version {id}",
            role.name()
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn learn(
    config: &Path,
    device: Option<&str>,
    role: Option<Role>,
    output: Option<&Path>,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(config).await?;
        let d = match device {
            Some(prefix) => find_device(&store, prefix).await?,
            None => store
                .devices()
                .await?
                .into_iter()
                .max_by_key(|d| d.last_seen)
                .ok_or_else(|| anyhow!("no device has attested yet"))?,
        };
        let id = hex(&d.device_id);
        let evidence = store.evidence(&d.device_id).await?.ok_or_else(|| {
            anyhow!("device {id} has no kept evidence: it must attest once (genuinely) first")
        })?;
        let role = role.unwrap_or(d.role);
        let (values, stats) = policy::reference::ReferenceValues::learn(
            &format!("learned from device {} at {}", &id[..16], evidence.at),
            policy::HashAlg::Sha256,
            &evidence.event_log,
            &evidence.ima,
        )
        .map_err(|e| anyhow!("device {id}: {e}"))?;
        let toml = values.to_toml();
        println!("device {id} ({}), evidence of {}:", d.role.name(), evidence.at);
        println!("  {} boot events (PCRs 0-7)", stats.boot_events);
        println!("  {} kernel/initrd digests (PCR 9), {} command lines (PCR 8)", stats.kernel_images, stats.cmdlines);
        println!(
            "  {} files from IMA entries {}..{} ({} left out: violations, /tmp/, /var/log/)",
            stats.files, evidence.ima_from, evidence.ima_entries, stats.skipped
        );
        if evidence.ima_from != 0 {
            println!(
                "  WARNING: IMA entries before {} were not kept: files measured only then are missing",
                evidence.ima_from
            );
        }
        println!("  no key applications: name them in the file before relying on it");
        if let Some(out) = output {
            std::fs::write(out, &toml).with_context(|| out.display().to_string())?;
            println!("written to {}", out.display());
        }
        if !yes {
            print!("record these as the reference values for the role {}? [yes/no] ", role.name());
            std::io::Write::flush(&mut std::io::stdout())?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if answer.trim() != "yes" {
                println!("not recorded");
                return Ok(ExitCode::from(1));
            }
        }
        let version = store.record_policy(role, &toml, system_clock()).await?;
        store
            .audit(
                system_clock(),
                "policy-learn",
                role.name(),
                &format!("version {version} learned from device {id}"),
            )
            .await?;
        println!("recorded as version {version} for {}: sessions from now on use it", role.name());
        Ok(ExitCode::SUCCESS)
    })
}
