//! Drawing the [`App`]: a title bar, the view (fleet table, device,
//! findings, audit), the events pane and a key line; the help and the
//! confirmation over it. Pure: the same state draws the same screen
//! (snapshot-tested on ratatui's TestBackend).

use crate::app::{age, App, Confirm, HostRow, Link, View, COLUMNS};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

/// The first 16 characters of a device ID (any text from the PDP: never a
/// slice inside a character).
fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

/// Below this the screen says so instead of drawing a broken table.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small: {MIN_WIDTH}x{MIN_HEIGHT} at least (now {}x{})",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let events_height = if area.height >= 24 { 6 } else { 3 };
    let [title, main, events, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(events_height),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(title_line(app), title);
    match &app.view {
        View::Fleet => fleet(f, app, main),
        View::Hosts => hosts(f, app, main),
        View::Device { id, selected } => device(f, app, id, *selected, main),
        View::Findings { id, attestation } => findings(f, app, id, *attestation, main),
        View::Audit { id } => audit(f, app, id, main),
    }
    let lines: Vec<Line> = app
        .events
        .iter()
        .take(events_height.saturating_sub(2) as usize)
        .map(|e| Line::from(e.as_str()))
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::TOP).title("events")),
        events,
    );
    f.render_widget(key_line(app), keys);
    if app.help {
        help(f, area);
    }
    if let Some(c) = &app.confirm {
        confirm(f, c, area);
    }
}

fn title_line(app: &App) -> Line<'_> {
    let who = app.admin.as_ref().map_or("?".to_string(), |a| {
        format!(
            "{} ({})",
            a.name,
            match a.role {
                tnc_proto::admin::AdminRole::ReadOnly => "read-only",
                tnc_proto::admin::AdminRole::ReadWrite if app.read_only => "read-only here",
                tnc_proto::admin::AdminRole::ReadWrite => "read-write",
            }
        )
    });
    let link = match &app.link {
        Link::Connecting => Span::raw("connecting"),
        Link::Up => Span::raw("connected").green(),
        Link::Lost(why) => Span::raw(format!("PDP LOST: {why}; reconnecting"))
            .red()
            .bold(),
    };
    let mut spans = vec![
        Span::raw("tnc-monitor ").bold(),
        Span::raw(format!("{}  {who}  ", app.server)),
        link,
    ];
    if app.paused {
        spans.push(Span::raw("  PAUSED").yellow().bold());
    }
    Line::from(spans)
}

fn verdict_style(v: Option<&str>) -> Style {
    match v {
        Some("allow") => Style::new().green(),
        Some("isolate") => Style::new().yellow(),
        Some(_) => Style::new().red(),
        None => Style::new().dim(),
    }
}

fn fleet(f: &mut Frame, app: &App, area: Rect) {
    let visible = app.visible();
    let header = Row::new(COLUMNS.iter().enumerate().map(|(i, c)| {
        let text = if i == app.sort {
            format!("{c} ▼")
        } else {
            c.to_string()
        };
        Cell::from(text)
    }))
    .style(Style::new().bold());
    let rows = visible.iter().map(|d| {
        Row::new(vec![
            Cell::from(short(&d.device).to_string()),
            Cell::from(d.role.clone()),
            Cell::from(d.user.clone().unwrap_or_else(|| "-".into())),
            Cell::from(d.host.clone().unwrap_or_else(|| "-".into())),
            Cell::from(d.last_verdict.clone().unwrap_or_else(|| "-".into()))
                .style(verdict_style(d.last_verdict.as_deref())),
            Cell::from(clock(app.now, d.last_seen)),
            Cell::from(if d.last_seen == 0 {
                "-".to_string()
            } else {
                age(app.now, d.last_seen)
            }),
            drift_cell(d.drift),
            Cell::from(d.ima_entries.map_or("-".into(), |n| n.to_string())),
        ])
    });
    let counts = |v: &str| {
        app.fleet
            .iter()
            .filter(|d| d.last_verdict.as_deref() == Some(v))
            .count()
    };
    let mut title = format!(
        " fleet: {} devices, {} allowed, {} isolated, {} no access ",
        app.fleet.len(),
        counts("allow"),
        counts("isolate"),
        counts("no-access")
    );
    if !app.filter.is_empty() {
        title.push_str(&format!(
            "| filter: {} ({} shown) ",
            app.filter,
            visible.len()
        ));
    }
    if let Some(t) = &app.typing {
        title = format!(" filter: /{t}▏ (Enter applies, Esc drops) ");
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(13),
            Constraint::Length(9),
            Constraint::Length(16),
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(Block::bordered().title(title))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected((!visible.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

/// When a device was last attested, UTC: the time of day if it was today,
/// else the date and time.
fn clock(now: u64, t: u64) -> String {
    if t == 0 {
        return "never".into();
    }
    if t / 86_400 == now / 86_400 {
        let s = t % 86_400;
        return format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    }
    let (days, s) = (t / 86_400, t % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", s / 3600, s / 60 % 60)
}

fn drift_cell(drift: u32) -> Cell<'static> {
    if drift == 0 {
        Cell::from("0").style(Style::new().dim())
    } else {
        Cell::from(drift.to_string()).style(Style::new().yellow().bold())
    }
}

/// The VMs grouped by the host they run on: the cloud manager's batch
/// view of their trusted status.
fn hosts(f: &mut Frame, app: &App, area: Rect) {
    let lines = app.host_rows();
    let hosts = lines
        .iter()
        .filter(|r| matches!(r, HostRow::Host { .. }))
        .count();
    let rows = lines.iter().map(|r| match r {
        HostRow::Host {
            name,
            vms,
            allowed,
            isolated,
            no_access,
            unassessed,
        } => {
            let style = if no_access + isolated > 0 {
                Style::new().yellow().bold()
            } else {
                Style::new().bold()
            };
            Row::new(vec![
                Cell::from(name.to_string()),
                Cell::from(format!("{vms} VMs")),
                Cell::from(format!(
                    "{allowed} allowed, {isolated} isolated, {no_access} no access, {unassessed} not assessed"
                )),
            ])
            .style(style)
        }
        HostRow::Vm(d) => Row::new(vec![
            Cell::from(format!("  {}", short(&d.device))),
            Cell::from(d.last_verdict.clone().unwrap_or_else(|| "-".into()))
                .style(verdict_style(d.last_verdict.as_deref())),
            Cell::from(format!(
                "{}  drift {}  {}",
                if d.last_seen == 0 {
                    "never attested".to_string()
                } else {
                    format!("attested {} ago", age(app.now, d.last_seen))
                },
                d.drift,
                d.user.as_deref().map_or(String::new(), |u| format!("user {u}"))
            )),
        ]),
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(10),
            Constraint::Min(20),
        ],
    )
    .block(Block::bordered().title(format!(
        " VMs by host: hosts {}, VMs {} (Enter: a VM's detail, a host's VMs in the fleet) ",
        hosts,
        lines.len() - hosts
    )))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected((!lines.is_empty()).then_some(app.host_selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn device(f: &mut Frame, app: &App, id: &str, selected: usize, area: Rect) {
    let Some(d) = app.detail.as_ref().filter(|d| d.device.device == id) else {
        f.render_widget(
            Paragraph::new(format!("loading {id} ...")).block(Block::bordered().title(" device ")),
            area,
        );
        return;
    };
    let [head, list] = Layout::vertical([Constraint::Length(5), Constraint::Min(2)]).areas(area);
    let dev = &d.device;
    let info = vec![
        Line::from(vec![
            Span::raw("device ").bold(),
            Span::raw(dev.device.clone()),
        ]),
        Line::from(format!(
            "role {}   verdict {}   last attested {}   enrolled {}",
            dev.role,
            dev.last_verdict.as_deref().unwrap_or("-"),
            if dev.last_seen == 0 {
                "never".into()
            } else {
                format!("{} ago", age(app.now, dev.last_seen))
            },
            clock(app.now, dev.enrolled_at)
        )),
        Line::from(format!(
            "user {}   host {}   drift {}   IMA entries {}   TPM resets {}   revoked tickets {}",
            dev.user.as_deref().unwrap_or("-"),
            dev.host.as_deref().unwrap_or("-"),
            dev.drift,
            dev.ima_entries.map_or("-".into(), |n| n.to_string()),
            dev.tpm_reset_count.map_or("-".into(), |n| n.to_string()),
            d.revocations.len()
        )),
    ];
    f.render_widget(Paragraph::new(info).block(Block::bordered()), head);
    let rows = d.attestations.iter().map(|a| {
        Row::new(vec![
            Cell::from(a.id.to_string()),
            Cell::from(format!("{} ago", age(app.now, a.at.max(0) as u64))),
            Cell::from(a.verdict.clone()).style(verdict_style(Some(&a.verdict))),
            Cell::from(match a.findings.len() {
                0 => "-".to_string(),
                1 => a.findings[0].clone(),
                n => format!("{n} findings: {}", a.findings[0]),
            }),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["#", "when", "verdict", "findings"]).style(Style::new().bold()))
    .block(Block::bordered().title(" attestations (Enter: findings, a: audit) "))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected((!d.attestations.is_empty()).then_some(selected));
    f.render_stateful_widget(table, list, &mut state);
}

fn findings(f: &mut Frame, app: &App, id: &str, attestation: usize, area: Rect) {
    let Some(a) = app
        .detail
        .as_ref()
        .filter(|d| d.device.device == id)
        .and_then(|d| d.attestations.get(attestation))
    else {
        f.render_widget(
            Paragraph::new("no such attestation").block(Block::bordered()),
            area,
        );
        return;
    };
    let mut lines = vec![Line::from(vec![
        Span::raw(format!("attestation #{} of {}: ", a.id, short(id))).bold(),
        Span::styled(a.verdict.clone(), verdict_style(Some(&a.verdict))),
    ])];
    if a.findings.is_empty() {
        lines.push(Line::from(
            "no findings: the evidence matched the reference values",
        ));
    }
    lines.extend(a.findings.iter().map(|x| Line::from(format!("- {x}"))));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" findings (Enter: audit entries) ")),
        area,
    );
}

fn audit(f: &mut Frame, app: &App, id: &str, area: Rect) {
    let rows = app.audit.iter().filter(|e| e.subject == id).map(|e| {
        Row::new(vec![
            Cell::from(e.seq.to_string()),
            Cell::from(format!("{} ago", age(app.now, e.at.max(0) as u64))),
            Cell::from(e.kind.clone()),
            Cell::from(e.detail.clone()),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(16),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["seq", "when", "kind", "detail"]).style(Style::new().bold()))
    .block(Block::bordered().title(format!(" audit entries of {} ", short(id))));
    f.render_widget(table, area);
}

fn key_line(app: &App) -> Line<'_> {
    if !app.status.is_empty() {
        return Line::from(app.status.as_str());
    }
    let acts = if app.may_act() {
        "  r re-assess  x revoke"
    } else {
        ""
    };
    Line::from(format!(
        "? keys  / filter  s sort  h hosts  p pause  Enter open  Esc back{acts}  q quit"
    ))
    .dim()
}

/// A rectangle of `w` x `h` in the middle of `area`.
fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn help(f: &mut Frame, area: Rect) {
    let keys = [
        ("↑ ↓ / j k", "move"),
        (
            "Enter",
            "drill down: device -> attestation's findings -> audit",
        ),
        ("Esc", "back one level"),
        (
            "/",
            "filter: text, field=prefix, field==whole (device role user host verdict drift)",
        ),
        ("h", "VMs grouped by host / the fleet"),
        ("s", "sort by the next column"),
        ("p", "pause / resume the live table and events"),
        ("a", "the device's audit entries"),
        ("r", "re-assess the device (asks first)"),
        ("x", "revoke the device's tickets (asks first)"),
        ("q", "quit (from the fleet), else back"),
        ("?", "this help"),
    ];
    let lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::raw(format!("{k:>10}  ")).bold(),
                Span::raw(*what),
            ])
        })
        .collect();
    let r = centred(area, 96, keys.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        r,
    );
}

fn confirm(f: &mut Frame, c: &Confirm, area: Rect) {
    let (what, id) = match c {
        Confirm::Reassess(id) => ("Re-assess", id),
        Confirm::Revoke(id) => ("Revoke the tickets of", id),
    };
    let r = centred(area, 60, 5);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(format!("{what} {}?", short(id))),
            Line::from("y: yes   n / Esc: no"),
        ])
        .block(Block::bordered().title(" confirm ")),
        r,
    );
}
