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
pub const COLUMNS: [&str; 6] = [
    "device",
    "role",
    "verdict",
    "last attested",
    "IMA",
    "resets",
];

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
    /// The fleet table's selected row (in the filtered, sorted list).
    pub selected: usize,
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
            selected: 0,
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
    pub fn set_fleet(&mut self, fleet: Vec<api::Device>) {
        if self.paused {
            return;
        }
        self.fleet = fleet;
        let n = self.visible().len();
        if self.selected >= n {
            self.selected = n.saturating_sub(1);
        }
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
                2 => (d.last_verdict.clone().unwrap_or_default(), 0),
                // Newest first, most first: as an operator reads them.
                3 => (String::new(), u64::MAX - d.last_seen),
                4 => (String::new(), u64::MAX - d.ima_entries.unwrap_or(0)),
                5 => (
                    String::new(),
                    u64::MAX - u64::from(d.tpm_reset_count.unwrap_or(0)),
                ),
                _ => (d.device.clone(), 0),
            }
        };
        list.sort_by_key(|d| key(d));
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
            Key::Char('q') if self.view == View::Fleet => return Some(Action::Quit),
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
            View::Device { .. } => View::Fleet,
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

/// Whether a device matches one filter word: `field=value` (a prefix of
/// the column's text; fields: device, role, verdict) or text anywhere.
fn matches(d: &api::Device, word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    if let Some((field, value)) = word.split_once('=') {
        let text = match field {
            "device" | "id" => d.device.as_str(),
            "role" => d.role.as_str(),
            "verdict" => d.last_verdict.as_deref().unwrap_or("none"),
            _ => return false,
        };
        return text.starts_with(value);
    }
    d.device.contains(&word)
        || d.role.contains(&word)
        || d.last_verdict.as_deref().unwrap_or("none").contains(&word)
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
        a.on_key(Key::Char('s'));
        a.on_key(Key::Char('s'));
        // By verdict: "" (none) < allow < isolate.
        let order: Vec<&str> = a.visible().iter().map(|d| &d.device[..2]).collect();
        assert_eq!(order, ["04", "01", "02", "03"]);
        a.on_key(Key::Char('s'));
        let newest: Vec<&str> = a.visible().iter().map(|d| &d.device[..2]).collect();
        assert_eq!(newest, ["02", "03", "01", "04"]);
        assert_eq!(age(4000, 400), "1 h");
        assert_eq!(age(10, 20), "0 s");
    }
}
