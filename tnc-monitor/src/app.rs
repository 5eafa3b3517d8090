//! The monitor's state and what each key does, without a terminal or a
//! network: the main loop feeds it keys and the API's answers, and does
//! the [`Action`]s it asks for. Unit-tested on its own; drawn by `ui`.

use std::collections::VecDeque;
use tnc_proto::admin as api;

/// Where the operator is: the fleet, then one device, then one of its
/// attestations' findings, or its audit entries. Esc goes back one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    Fleet,
    /// The VMs grouped by the host they run on, one block per host.
    Hosts,
    /// A device's detail: its attestations (the selected row).
    Device {
        id: String,
        selected: usize,
    },
    /// One attestation's findings.
    Findings {
        id: String,
        attestation: usize,
    },
    /// The device's audit entries.
    Audit {
        id: String,
    },
}

/// What the main loop is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fetch a device's detail (and keep it fresh while shown).
    LoadDevice(String),
    /// Fetch the audit entries about a device.
    LoadAudit(String),
    Reassess(String),
    Revoke(String),
    Quit,
}

/// An action waiting for the operator's y/n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    Reassess(String),
    Revoke(String),
}

/// The fleet table's columns, in order; `s` cycles the sort among them.
pub const COLUMNS: [&str; 9] = [
    "device",
    "role",
    "user",
    "host",
    "verdict",
    "last attested",
    "age",
    "drift",
    "IMA",
];

/// The host block VMs that name none are listed under.
pub const NO_HOST: &str = "(host not reported)";

/// One line of the hosts view: a host with its VMs' counts, or one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostRow<'a> {
    Host {
        name: &'a str,
        vms: usize,
        allowed: usize,
        isolated: usize,
        no_access: usize,
        unassessed: usize,
    },
    Vm(&'a api::Device),
}

/// How the connection to the PDP stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Up,
    /// Lost, with why; the main loop keeps trying.
    Lost(String),
}

#[derive(Debug)]
pub struct App {
    pub server: String,
    /// The admin's name and whether it may act (from /v1/whoami).
    pub admin: Option<api::WhoAmI>,
    /// Never offer actions (`--read-only`), whatever the certificate allows.
    pub read_only: bool,
    pub fleet: Vec<api::Device>,
    pub detail: Option<api::DeviceDetail>,
    pub audit: Vec<api::AuditEntry>,
    pub view: View,
    /// Where Esc from a device returns: the fleet or the hosts view.
    pub home: View,
    /// The fleet table's selected row (in the filtered, sorted list).
    pub selected: usize,
    /// The hosts view's selected line.
    pub host_selected: usize,
    /// `/` typing a filter: the text so far.
    pub typing: Option<String>,
    /// The filter in force: words that each must match (`field=value` for
    /// a column, else anywhere in the row).
    pub filter: String,
    pub sort: usize,
    pub paused: bool,
    pub help: bool,
    pub confirm: Option<Confirm>,
    pub link: Link,
    /// Newest first, at most [`EVENTS`].
    pub events: VecDeque<String>,
    /// A line for the status bar (what an action did, or why it failed).
    pub status: String,
    /// Unix seconds now (the main loop sets it; ages are computed from it).
    pub now: u64,
}

/// Lines the events pane keeps.
pub const EVENTS: usize = 200;

impl App {
    pub fn new(server: impl Into<String>, read_only: bool) -> Self {
        Self {
            server: server.into(),
            admin: None,
            read_only,
            fleet: Vec::new(),
            detail: None,
            audit: Vec::new(),
            view: View::Fleet,
            home: View::Fleet,
            selected: 0,
            host_selected: 0,
            typing: None,
            filter: String::new(),
            sort: 0,
            paused: false,
            help: false,
            confirm: None,
            link: Link::Connecting,
            events: VecDeque::new(),
            status: String::new(),
            now: 0,
        }
    }

    /// Whether actions may be offered.
    pub fn may_act(&self) -> bool {
        !self.read_only
            && self
                .admin
                .as_ref()
                .is_some_and(|a| a.role == api::AdminRole::ReadWrite)
    }

    /// A new fleet from the API (ignored while paused).
    pub fn set_fleet(&mut self, mut fleet: Vec<api::Device>) {
        if self.paused {
            return;
        }
        // The API says "no-access"; a PDP before it did said "no access":
        // the filters and counts take one word, as `verdict=no-access` is
        // typed.
        for d in &mut fleet {
            if d.last_verdict.as_deref() == Some("no access") {
                d.last_verdict = Some("no-access".into());
            }
        }
        self.fleet = fleet;
        let n = self.visible().len();
        if self.selected >= n {
            self.selected = n.saturating_sub(1);
        }
        let n = self.host_rows().len();
        if self.host_selected >= n {
            self.host_selected = n.saturating_sub(1);
        }
    }

    /// The VMs by the host they run on (hosts in name order, the VMs
    /// that name none last; in each, worst verdict first): a host line
    /// and then its VMs' lines.
    pub fn host_rows(&self) -> Vec<HostRow<'_>> {
        let mut hosts: std::collections::BTreeMap<Option<&str>, Vec<&api::Device>> =
            std::collections::BTreeMap::new();
        for d in self.fleet.iter().filter(|d| d.role == "vm") {
            hosts.entry(d.host.as_deref()).or_default().push(d);
        }
        let mut rows = Vec::new();
        // BTreeMap puts None first; the unknown block goes last.
        let mut order: Vec<_> = hosts.into_iter().collect();
        let unknown_first = order.first().is_some_and(|(h, _)| h.is_none());
        order.rotate_left(usize::from(unknown_first));
        for (host, mut vms) in order {
            let count = |v: &str| {
                vms.iter()
                    .filter(|d| d.last_verdict.as_deref() == Some(v))
                    .count()
            };
            rows.push(HostRow::Host {
                name: host.unwrap_or(NO_HOST),
                vms: vms.len(),
                allowed: count("allow"),
                isolated: count("isolate"),
                no_access: count("no-access"),
                unassessed: vms.iter().filter(|d| d.last_verdict.is_none()).count(),
            });
            vms.sort_by_key(|d| (severity(d.last_verdict.as_deref()), d.device.clone()));
            rows.extend(vms.into_iter().map(HostRow::Vm));
        }
        rows
    }

    pub fn push_event(&mut self, line: String) {
        if self.paused {
            return;
        }
        self.events.push_front(line);
        self.events.truncate(EVENTS);
    }

    /// The fleet as shown: filtered, then sorted by the sort column.
    pub fn visible(&self) -> Vec<&api::Device> {
        let words: Vec<&str> = self.filter.split_whitespace().collect();
        let mut list: Vec<&api::Device> = self
            .fleet
            .iter()
            .filter(|d| words.iter().all(|w| matches(d, w)))
            .collect();
        let key = |d: &api::Device| -> (String, u64) {
            match self.sort {
                1 => (d.role.clone(), 0),
                2 => (d.user.clone().unwrap_or_default(), 0),
                3 => (d.host.clone().unwrap_or_default(), 0),
                // Worst first.
                4 => (String::new(), severity(d.last_verdict.as_deref())),
                // Newest first (last attested), oldest first (age), most
                // first: as an operator reads them.
                5 => (String::new(), u64::MAX - d.last_seen),
                6 => (String::new(), d.last_seen),
                7 => (String::new(), u64::MAX - u64::from(d.drift)),
                8 => (String::new(), u64::MAX - d.ima_entries.unwrap_or(0)),
                _ => (d.device.clone(), 0),
            }
        };
        // The key clones strings: computed once per row, not per comparison.
        list.sort_by_cached_key(|d| key(d));
        list
    }

    /// The device under the cursor in the fleet table.
    pub fn selected_device(&self) -> Option<String> {
        self.visible().get(self.selected).map(|d| d.device.clone())
    }

    /// One key; what the main loop should do about it.
    pub fn on_key(&mut self, key: Key) -> Option<Action> {
        // A confirmation takes y or n (Esc: no) and nothing else.
        if let Some(c) = self.confirm.take() {
            return match key {
                Key::Char('y') | Key::Char('Y') => Some(match c {
                    Confirm::Reassess(id) => Action::Reassess(id),
                    Confirm::Revoke(id) => Action::Revoke(id),
                }),
                Key::Char('n') | Key::Char('N') | Key::Esc => {
                    self.status = "cancelled".into();
                    None
                }
                _ => {
                    self.confirm = Some(c);
                    None
                }
            };
        }
        if let Some(text) = &mut self.typing {
            match key {
                Key::Enter => {
                    self.filter = self.typing.take().unwrap_or_default();
                    self.selected = 0;
                }
                Key::Esc => self.typing = None,
                Key::Backspace => {
                    text.pop();
                }
                Key::Char(c) => text.push(c),
                _ => {}
            }
            return None;
        }
        if self.help {
            if matches!(key, Key::Esc | Key::Char('?') | Key::Char('q')) {
                self.help = false;
            }
            return None;
        }
        match key {
            Key::Char('q') if matches!(self.view, View::Fleet | View::Hosts) => {
                return Some(Action::Quit)
            }
            Key::CtrlC => return Some(Action::Quit),
            Key::Char('?') => self.help = true,
            Key::Char('p') => {
                self.paused = !self.paused;
                self.status = if self.paused {
                    "paused: the table and events stand still (p resumes)".into()
                } else {
                    "resumed".into()
                };
            }
            Key::Esc | Key::Char('q') => self.back(),
            Key::Up | Key::Char('k') => self.move_by(-1),
            Key::Down | Key::Char('j') => self.move_by(1),
            Key::Enter => return self.enter(),
            Key::Char('/') if self.view == View::Fleet => self.typing = Some(self.filter.clone()),
            Key::Char('h') if matches!(self.view, View::Fleet | View::Hosts) => {
                self.view = if self.view == View::Fleet {
                    View::Hosts
                } else {
                    View::Fleet
                };
                self.home = self.view.clone();
            }
            Key::Char('s') if self.view == View::Fleet => {
                self.sort = (self.sort + 1) % COLUMNS.len()
            }
            Key::Char('a') => {
                if let Some(id) = self.current_device() {
                    self.view = View::Audit { id: id.clone() };
                    return Some(Action::LoadAudit(id));
                }
            }
            Key::Char('r') | Key::Char('x') => {
                let id = self.current_device()?;
                if !self.may_act() {
                    self.status =
                        "read-only: re-assess and revoke need a tnc-admin-write certificate".into();
                    return None;
                }
                self.confirm = Some(if key == Key::Char('r') {
                    Confirm::Reassess(id)
                } else {
                    Confirm::Revoke(id)
                });
            }
            _ => {}
        }
        None
    }

    /// The device the view is about (the fleet's selected one).
    fn current_device(&self) -> Option<String> {
        match &self.view {
            View::Fleet => self.selected_device(),
            View::Hosts => match self.host_rows().get(self.host_selected) {
                Some(HostRow::Vm(d)) => Some(d.device.clone()),
                _ => None,
            },
            View::Device { id, .. } | View::Findings { id, .. } | View::Audit { id } => {
                Some(id.clone())
            }
        }
    }

    fn move_by(&mut self, step: isize) {
        let (pos, len) = match &mut self.view {
            View::Fleet => {
                let len = self.visible().len();
                (&mut self.selected, len)
            }
            View::Hosts => {
                let len = self.host_rows().len();
                (&mut self.host_selected, len)
            }
            View::Device { selected, .. } => (
                selected,
                self.detail.as_ref().map_or(0, |d| d.attestations.len()),
            ),
            _ => return,
        };
        if len == 0 {
            *pos = 0;
            return;
        }
        *pos = (*pos as isize + step).clamp(0, len as isize - 1) as usize;
    }

    fn enter(&mut self) -> Option<Action> {
        match self.view.clone() {
            View::Fleet => {
                let id = self.selected_device()?;
                self.detail = None;
                self.view = View::Device {
                    id: id.clone(),
                    selected: 0,
                };
                Some(Action::LoadDevice(id))
            }
            View::Hosts => match self.host_rows().get(self.host_selected) {
                Some(HostRow::Vm(d)) => {
                    let id = d.device.clone();
                    self.detail = None;
                    self.view = View::Device {
                        id: id.clone(),
                        selected: 0,
                    };
                    Some(Action::LoadDevice(id))
                }
                // A host line: the fleet table, filtered to its VMs.
                Some(HostRow::Host { name, .. }) => {
                    self.filter = format!(
                        "role==vm host=={}",
                        if *name == NO_HOST { "-" } else { name }
                    );
                    self.selected = 0;
                    self.view = View::Fleet;
                    self.home = View::Fleet;
                    None
                }
                None => None,
            },
            View::Device { id, selected } => {
                let has = self
                    .detail
                    .as_ref()
                    .is_some_and(|d| selected < d.attestations.len());
                if has {
                    self.view = View::Findings {
                        id,
                        attestation: selected,
                    };
                }
                None
            }
            View::Findings { id, .. } => {
                self.view = View::Audit { id: id.clone() };
                Some(Action::LoadAudit(id))
            }
            View::Audit { .. } => None,
        }
    }

    fn back(&mut self) {
        self.view = match &self.view {
            View::Fleet => View::Fleet,
            View::Hosts => View::Hosts,
            View::Device { .. } => self.home.clone(),
            View::Findings { id, attestation } => View::Device {
                id: id.clone(),
                selected: *attestation,
            },
            View::Audit { id } => View::Device {
                id: id.clone(),
                selected: 0,
            },
        };
    }
}

/// Worst verdict first: no access, isolate, allow, none yet.
fn severity(verdict: Option<&str>) -> u64 {
    match verdict {
        Some("allow") => 2,
        Some("isolate") => 1,
        Some(_) => 0,
        None => 3,
    }
}

/// Whether a device matches one filter word: `field=value` (a prefix of
/// the column's text, `-` for none; fields: device, role, user, host,
/// verdict, drift), `field==value` (the whole text) or text anywhere.
/// Case is ignored.
fn matches(d: &api::Device, word: &str) -> bool {
    let word = word.to_lowercase();
    let drift = d.drift.to_string();
    let user = d.user.as_deref().unwrap_or("-").to_lowercase();
    let host = d.host.as_deref().unwrap_or("-").to_lowercase();
    let verdict = d.last_verdict.as_deref().unwrap_or("none");
    if let Some((field, value)) = word.split_once('=') {
        let text = match field {
            "device" | "id" => d.device.as_str(),
            "role" => d.role.as_str(),
            "user" => user.as_str(),
            "host" => host.as_str(),
            "verdict" => verdict,
            "drift" => drift.as_str(),
            _ => return false,
        };
        return match value.strip_prefix('=') {
            Some(exact) => text == exact,
            None => text.starts_with(value),
        };
    }
    [d.device.as_str(), &d.role, &user, &host, verdict]
        .iter()
        .any(|t| t.contains(&word))
}

/// The keys the monitor knows, from whatever terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Backspace,
    Up,
    Down,
    CtrlC,
}

/// "3 s", "5 m", "2 h", "4 d" since `then`.
pub fn age(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} m", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn device(n: u8, role: &str, verdict: Option<&str>, seen: u64) -> api::Device {
        api::Device {
            device: format!("{n:02x}{}", "ab".repeat(31)),
            role: role.into(),
            ak_name: "000b".into(),
            last_verdict: verdict.map(str::to_string),
            last_seen: seen,
            enrolled_at: 1,
            ima_entries: Some(u64::from(n) * 10),
            tpm_reset_count: Some(1),
            user: None,
            host: None,
            drift: 0,
        }
    }

    fn app() -> App {
        let mut a = App::new("https://127.0.0.1:9271", false);
        a.admin = Some(api::WhoAmI {
            name: "alice".into(),
            role: api::AdminRole::ReadWrite,
        });
        a.set_fleet(vec![
            device(1, "terminal", Some("allow"), 100),
            device(2, "vm", Some("isolate"), 300),
            device(3, "terminal", Some("isolate"), 200),
            device(4, "vm", None, 0),
        ]);
        a
    }

    #[test]
    fn filters_take_field_selectors_and_free_words() {
        let mut a = app();
        for c in "verdict=isolate role=vm".chars() {
            a.typing.get_or_insert_with(String::new);
            a.on_key(Key::Char(c));
        }
        a.on_key(Key::Enter);
        let shown: Vec<&str> = a.visible().iter().map(|d| &d.device[..2]).collect();
        assert_eq!(shown, ["02"]);
        a.filter = "isolate".into();
        assert_eq!(a.visible().len(), 2);
        a.filter = "verdict=none".into();
        assert_eq!(a.visible().len(), 1);
        a.filter = "colour=red".into();
        assert!(a.visible().is_empty());
    }

    #[test]
    fn the_pdps_no_access_counts_and_filters_as_no_access() {
        let mut a = app();
        a.set_fleet(vec![
            device(1, "vm", Some("no access"), 1),
            device(2, "vm", Some("allow"), 1),
        ]);
        a.filter = "verdict=no-access".into();
        assert_eq!(a.visible().len(), 1);
        assert_eq!(a.fleet[0].last_verdict.as_deref(), Some("no-access"));
        assert!(matches!(
            a.host_rows()[0],
            HostRow::Host { no_access: 1, .. }
        ));
    }

    #[test]
    fn filters_on_user_host_drift_and_exact_values() {
        let mut a = app();
        a.fleet[0].user = Some("Alice".into());
        a.fleet[0].host = Some("ws-7".into());
        a.fleet[1].host = Some("hv-1".into());
        a.fleet[3].host = Some("hv-10".into());
        a.fleet[2].drift = 2;
        let shown = |a: &App, f: &str| -> Vec<String> {
            let mut a2 = App::new("", false);
            a2.fleet = a.fleet.clone();
            a2.filter = f.into();
            a2.visible()
                .iter()
                .map(|d| d.device[..2].to_string())
                .collect()
        };
        assert_eq!(shown(&a, "user=alice"), ["01"]);
        assert_eq!(shown(&a, "alice"), ["01"]);
        assert_eq!(shown(&a, "host=hv-1"), ["02", "04"]);
        assert_eq!(shown(&a, "host==hv-1"), ["02"]);
        assert_eq!(shown(&a, "host==-"), ["03"]);
        assert_eq!(shown(&a, "drift=2"), ["03"]);
        assert_eq!(shown(&a, "drift==0 role==vm"), ["02", "04"]);
        assert_eq!(shown(&a, "user=-"), ["02", "03", "04"]);
    }

    #[test]
    fn hosts_view_groups_vms_and_drills_down() {
        let mut a = app();
        let more = |n: u8, host: Option<&str>, verdict: Option<&str>| api::Device {
            host: host.map(str::to_string),
            ..device(n, "vm", verdict, 50)
        };
        a.fleet[1].host = Some("hv-b".into());
        a.fleet[3].host = Some("hv-a".into());
        a.fleet.push(more(5, Some("hv-b"), Some("allow")));
        a.fleet.push(more(6, None, Some("no-access")));
        a.fleet.push(more(7, Some("hv-b"), Some("no-access")));
        let rows = a.host_rows();
        let text: Vec<String> = rows
            .iter()
            .map(|r| match r {
                HostRow::Host {
                    name,
                    vms,
                    allowed,
                    isolated,
                    no_access,
                    unassessed,
                } => format!("{name}:{vms}/{allowed}/{isolated}/{no_access}/{unassessed}"),
                HostRow::Vm(d) => d.device[..2].to_string(),
            })
            .collect();
        // Hosts by name, unreported last; worst VM first; no terminals.
        assert_eq!(
            text,
            [
                "hv-a:1/0/0/0/1",
                "04",
                "hv-b:3/1/1/1/0",
                "07",
                "02",
                "05",
                &format!("{NO_HOST}:1/0/0/1/0"),
                "06"
            ]
        );
        a.on_key(Key::Char('h'));
        assert_eq!(a.view, View::Hosts);
        // The first line is a host: r has no device to act on.
        assert_eq!(a.on_key(Key::Char('r')), None);
        assert!(a.confirm.is_none());
        a.on_key(Key::Down);
        assert_eq!(
            a.on_key(Key::Enter),
            Some(Action::LoadDevice(a.fleet[3].device.clone()))
        );
        a.on_key(Key::Esc);
        assert_eq!(a.view, View::Hosts);
        // Enter on a host line: the fleet, filtered to its VMs.
        a.on_key(Key::Down);
        a.on_key(Key::Enter);
        assert_eq!(a.view, View::Fleet);
        assert_eq!(a.filter, "role==vm host==hv-b");
        assert_eq!(a.visible().len(), 3);
        a.on_key(Key::Char('h'));
        assert_eq!(a.view, View::Hosts);
        assert_eq!(a.on_key(Key::Char('q')), Some(Action::Quit));
    }

    #[test]
    fn typing_a_filter_and_escaping_it() {
        let mut a = app();
        a.on_key(Key::Char('/'));
        assert!(a.typing.is_some());
        a.on_key(Key::Char('v'));
        a.on_key(Key::Char('m'));
        a.on_key(Key::Backspace);
        a.on_key(Key::Esc);
        assert_eq!(a.filter, "");
        a.on_key(Key::Char('/'));
        for c in "vm".chars() {
            a.on_key(Key::Char(c));
        }
        a.on_key(Key::Enter);
        assert_eq!(a.filter, "vm");
        assert_eq!(a.visible().len(), 2);
    }

    #[test]
    fn enter_drills_down_and_esc_comes_back() {
        let mut a = app();
        assert_eq!(
            a.on_key(Key::Enter),
            Some(Action::LoadDevice(a.fleet[0].device.clone()))
        );
        let id = a.fleet[0].device.clone();
        a.detail = Some(api::DeviceDetail {
            device: a.fleet[0].clone(),
            attestations: vec![api::Attestation {
                id: 7,
                at: 100,
                verdict: "allow".into(),
                findings: vec!["PCR 4: expected 00, seen 11".into()],
            }],
            revocations: vec![],
        });
        a.on_key(Key::Enter);
        assert_eq!(
            a.view,
            View::Findings {
                id: id.clone(),
                attestation: 0
            }
        );
        assert_eq!(a.on_key(Key::Enter), Some(Action::LoadAudit(id.clone())));
        a.on_key(Key::Esc);
        assert!(matches!(a.view, View::Device { .. }));
        a.on_key(Key::Esc);
        assert_eq!(a.view, View::Fleet);
        assert_eq!(a.on_key(Key::Char('q')), Some(Action::Quit));
    }

    #[test]
    fn actions_need_a_confirmation_and_a_writer() {
        let mut a = app();
        assert_eq!(a.on_key(Key::Char('x')), None);
        assert!(matches!(a.confirm, Some(Confirm::Revoke(_))));
        // Other keys wait; n cancels.
        assert_eq!(a.on_key(Key::Char('j')), None);
        assert!(a.confirm.is_some());
        assert_eq!(a.on_key(Key::Char('n')), None);
        assert!(a.confirm.is_none());
        a.on_key(Key::Char('r'));
        let id = a.selected_device().unwrap();
        assert_eq!(a.on_key(Key::Char('y')), Some(Action::Reassess(id)));
        // Read-only: refused with the reason.
        let mut ro = app();
        ro.read_only = true;
        assert_eq!(ro.on_key(Key::Char('x')), None);
        assert!(ro.confirm.is_none());
        assert!(ro.status.contains("read-only"));
        let mut reader = app();
        reader.admin = Some(api::WhoAmI {
            name: "bob".into(),
            role: api::AdminRole::ReadOnly,
        });
        reader.on_key(Key::Char('r'));
        assert!(reader.confirm.is_none());
    }

    #[test]
    fn pausing_holds_the_table_and_sorting_cycles() {
        let mut a = app();
        a.on_key(Key::Char('p'));
        a.set_fleet(vec![]);
        assert_eq!(a.fleet.len(), 4);
        a.on_key(Key::Char('p'));
        let order = |a: &App| -> Vec<String> {
            a.visible()
                .iter()
                .map(|d| d.device[..2].to_string())
                .collect()
        };
        for _ in 0..4 {
            a.on_key(Key::Char('s'));
        }
        // By verdict, worst first: isolate, allow, none yet.
        assert_eq!(COLUMNS[a.sort], "verdict");
        assert_eq!(order(&a), ["02", "03", "01", "04"]);
        a.on_key(Key::Char('s'));
        assert_eq!(order(&a), ["02", "03", "01", "04"]);
        // Age: the longest silent first.
        a.on_key(Key::Char('s'));
        assert_eq!(order(&a), ["04", "01", "03", "02"]);
        // Back round to the device ID.
        for _ in 0..3 {
            a.on_key(Key::Char('s'));
        }
        assert_eq!(a.sort, 0);
        assert_eq!(order(&a), ["01", "02", "03", "04"]);
        assert_eq!(age(4000, 400), "1 h");
        assert_eq!(age(10, 20), "0 s");
    }
}
