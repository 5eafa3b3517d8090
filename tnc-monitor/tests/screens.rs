//! The monitor's screens drawn on ratatui's TestBackend from fixed state:
//! the fleet table, a filter, the drill-down to a device, its findings and
//! its audit entries, the key help, a confirmation, a lost PDP and a
//! terminal too small.

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tnc_monitor::app::{App, Key, Link, View};
use tnc_proto::admin as api;

const NOW: u64 = 1_800_000_000;

fn device(n: u8, role: &str, verdict: Option<&str>, ago: u64) -> api::Device {
    api::Device {
        device: format!("{n:02x}{}", "5e".repeat(31)),
        role: role.into(),
        ak_name: "000b".into(),
        last_verdict: verdict.map(str::to_string),
        last_seen: if ago == u64::MAX { 0 } else { NOW - ago },
        enrolled_at: NOW - 86_400,
        ima_entries: Some(u64::from(n) * 100),
        tpm_reset_count: Some(2),
        user: None,
        host: None,
        drift: 0,
    }
}

fn app() -> App {
    let mut a = App::new("https://127.0.0.1:9271", false);
    a.now = NOW;
    a.link = Link::Up;
    a.admin = Some(api::WhoAmI {
        name: "alice".into(),
        role: api::AdminRole::ReadWrite,
    });
    let with = |d: api::Device, user: Option<&str>, host: Option<&str>, drift| api::Device {
        user: user.map(str::to_string),
        host: host.map(str::to_string),
        drift,
        ..d
    };
    a.set_fleet(vec![
        with(
            device(1, "terminal", Some("allow"), 30),
            Some("alice"),
            Some("ws-1"),
            0,
        ),
        with(
            device(2, "terminal", Some("isolate"), 400),
            Some("bob"),
            Some("ws-2"),
            1,
        ),
        with(device(3, "vm", Some("allow"), 7200), None, Some("hv-1"), 0),
        with(
            device(4, "vm", Some("no-access"), 90_000),
            None,
            Some("hv-1"),
            3,
        ),
        device(5, "terminal", None, u64::MAX),
    ]);
    let json = serde_json::json!({
        "event": "decided", "session": 7, "peer": "127.0.0.1:40112",
        "device": format!("02{}", "5e".repeat(31)), "role": "terminal", "user": null,
        "verdict": "isolate", "findings": ["IMA: /usr/bin/cryptominer"], "ms": 12.3,
        "at": NOW - 400
    });
    a.push_event(tnc_monitor::event_line(&json.to_string()).unwrap());
    a
}

/// The screen as text, one line per row (trailing blanks trimmed).
fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| tnc_monitor::ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_fleet_table() {
    let s = screen(&app(), 100, 24);
    println!("{s}");
    for want in [
        "tnc-monitor https://127.0.0.1:9271  alice (read-write)  connected",
        "fleet: 5 devices, 2 allowed, 1 isolated, 1 no access",
        "device ▼",
        "device ▼         role     user       host          verdict   last attested    age    drift IMA",
        "015e5e5e5e5e5e5e terminal alice      ws-1          allow     07:59:30         30 s   0     100",
        "025e5e5e5e5e5e5e terminal bob        ws-2          isolate   07:53:20         6 m    1     200",
        "035e5e5e5e5e5e5e vm       -          hv-1          allow     06:00:00         2 h    0     300",
        "045e5e5e5e5e5e5e vm       -          hv-1          no-access 2027-01-14 07:00 1 d    3     400",
        "055e5e5e5e5e5e5e terminal -          -             -         never            -      0     500",
        "07:53:20 decided: 025e5e5e5e5e terminal isolate, 1 finding(s) (12 ms, 127.0.0.1:40112)",
        "r re-assess  x revoke",
    ] {
        assert!(s.contains(want), "{want:?} not on\n{s}");
    }
    // Rows in device order, the first selected.
    let rows: Vec<&str> = s.lines().filter(|l| l.contains("5e5e5e5e")).collect();
    assert!(
        !s.contains("h hosts") || s.contains("h hosts  p pause"),
        "{s}"
    );
    assert_eq!(rows.len(), 6, "{s}"); // five rows and the event line
    assert!(rows[0].contains("01"));
}

#[test]
fn a_filter_and_a_sort() {
    let mut a = app();
    a.on_key(Key::Char('/'));
    for c in "role=terminal verdict=allow".chars() {
        a.on_key(Key::Char(c));
    }
    let typing = screen(&a, 120, 24);
    assert!(
        typing.contains("filter: /role=terminal verdict=allow"),
        "{typing}"
    );
    a.on_key(Key::Enter);
    let s = screen(&a, 120, 24);
    assert!(
        s.contains("filter: role=terminal verdict=allow (1 shown)"),
        "{s}"
    );
    assert_eq!(
        s.lines().filter(|l| l.contains("5e5e5e5e5e5e5e ")).count(),
        1,
        "{s}"
    );
    a.filter.clear();
    for _ in 0..5 {
        a.on_key(Key::Char('s'));
    }
    let s = screen(&a, 100, 24);
    assert!(s.contains("last attested ▼"), "{s}");
    let first = s.lines().find(|l| l.contains("5e5e5e5e5e5e5e ")).unwrap();
    assert!(first.contains("015e"), "newest first: {s}");
}

#[test]
fn drill_down_to_findings_and_audit_and_back() {
    let mut a = app();
    a.on_key(Key::Down);
    let id = a.selected_device().unwrap();
    assert!(id.starts_with("02"));
    a.on_key(Key::Enter);
    assert!(screen(&a, 100, 24).contains(&format!("loading {id}")));
    a.detail = Some(api::DeviceDetail {
        device: a.fleet[1].clone(),
        attestations: vec![
            api::Attestation {
                id: 42,
                at: (NOW - 400) as i64,
                verdict: "isolate".into(),
                findings: vec![
                    "IMA: /usr/bin/cryptominer is not in the reference values (sha256 9f86d081...)"
                        .into(),
                ],
            },
            api::Attestation {
                id: 17,
                at: (NOW - 4000) as i64,
                verdict: "allow".into(),
                findings: vec![],
            },
        ],
        revocations: vec![],
    });
    let s = screen(&a, 100, 24);
    println!("{s}");
    for want in [
        format!("device {id}"),
        "role terminal   verdict isolate   last attested 6 m ago".into(),
        "attestations (Enter: findings, a: audit)".into(),
        "42      6 m ago    isolate    IMA: /usr/bin/cryptominer".into(),
        "IMA: /usr/bin/cryptominer".into(),
    ] {
        assert!(s.contains(&want), "{want:?} not on\n{s}");
    }
    a.on_key(Key::Enter);
    let s = screen(&a, 100, 24);
    println!("{s}");
    assert!(
        s.contains("attestation #42 of 025e5e5e5e5e5e5e: isolate"),
        "{s}"
    );
    assert!(
        s.contains("- IMA: /usr/bin/cryptominer is not in the reference values"),
        "{s}"
    );
    a.on_key(Key::Enter);
    a.audit = vec![api::AuditEntry {
        seq: 9,
        at: (NOW - 400) as i64,
        kind: "verdict".into(),
        subject: id.clone(),
        detail: "isolate: IMA: /usr/bin/cryptominer".into(),
        hash: "hmac-sm3:00".into(),
    }];
    let s = screen(&a, 100, 24);
    assert!(s.contains("audit entries of 025e5e5e5e5e5e5e"), "{s}");
    assert!(
        s.contains("verdict") && s.contains("isolate: IMA: /usr/bin/cryptominer"),
        "{s}"
    );
    a.on_key(Key::Esc);
    a.on_key(Key::Esc);
    assert_eq!(a.view, View::Fleet);
}

#[test]
fn help_confirmation_lost_pdp_and_a_small_terminal() {
    let mut a = app();
    a.on_key(Key::Char('?'));
    let s = screen(&a, 100, 24);
    assert!(
        s.contains("keys") && s.contains("filter: text, field=prefix, field==whole"),
        "{s}"
    );
    a.on_key(Key::Esc);
    a.on_key(Key::Char('x'));
    let s = screen(&a, 100, 24);
    assert!(s.contains("Revoke the tickets of 015e5e5e5e5e5e5e?"), "{s}");
    assert!(s.contains("y: yes   n / Esc: no"), "{s}");
    a.on_key(Key::Char('n'));
    a.link = Link::Lost("cannot reach the admin API at 127.0.0.1:9271: connection refused".into());
    let s = screen(&a, 120, 24);
    assert!(s.contains("PDP LOST: cannot reach the admin API"), "{s}");
    // The last table stays on screen while the PDP is away.
    assert!(s.contains("fleet: 5 devices"), "{s}");
    for (w, h) in [(40, 20), (100, 8), (1, 1), (0, 0)] {
        let s = screen(&a, w, h);
        if w >= 20 && h >= 2 {
            assert!(s.contains("terminal too small"), "{w}x{h}: {s}");
        }
    }
}

/// IDs are text from the PDP: short or multi-byte ones draw without a
/// slice inside a character.
#[test]
fn odd_device_ids_do_not_break_the_screens() {
    let mut a = app();
    let odd = "€".repeat(20);
    a.set_fleet(vec![api::Device {
        device: odd.clone(),
        ..device(1, "terminal", Some("allow"), 30)
    }]);
    assert!(screen(&a, 100, 24).contains("€€€€"));
    a.on_key(Key::Char('x'));
    assert!(screen(&a, 100, 24).contains("Revoke the tickets of"));
    a.on_key(Key::Char('n'));
    a.on_key(Key::Enter);
    a.detail = Some(api::DeviceDetail {
        device: a.fleet[0].clone(),
        attestations: vec![api::Attestation {
            id: 1,
            at: NOW as i64,
            verdict: "allow".into(),
            findings: vec![],
        }],
        revocations: vec![],
    });
    a.on_key(Key::Enter);
    assert!(screen(&a, 100, 24).contains("attestation #1 of €€€€"));
    a.on_key(Key::Enter);
    assert!(screen(&a, 100, 24).contains("audit entries of €€€€"));
    a.view = View::Fleet;
    a.fleet[0].device = "ab".into();
    assert!(screen(&a, 100, 24).contains("ab "));
}

#[test]
fn vms_grouped_by_host() {
    let mut a = app();
    a.on_key(Key::Char('h'));
    let s = screen(&a, 100, 24);
    println!("{s}");
    for want in [
        "VMs by host: hosts 1, VMs 2",
        "hv-1                 2 VMs      1 allowed, 0 isolated, 1 no access, 0 not assessed",
        "  045e5e5e5e5e5e5e   no-access  attested 1 d ago  drift 3",
        "  035e5e5e5e5e5e5e   allow      attested 2 h ago  drift 0",
        "h hosts",
    ] {
        assert!(s.contains(want), "{want:?} not on\n{s}");
    }
    // Terminals are not in it.
    assert!(!s.contains("015e5e5e5e5e5e5e"), "{s}");
    // The worst VM first, the host line selected first.
    let hv = s.lines().position(|l| l.contains("hv-1")).unwrap();
    assert!(s.lines().nth(hv + 1).unwrap().contains("045e"), "{s}");
}
