//! `tnc-monitor --server URL --certificate F --key F --ca F` (or
//! `--topology FILE` from `testnet up`): the live fleet, drill-down to
//! findings and audit entries, re-assess and revoke, the event stream.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tnc_monitor::app::{Action, App, Key, Link};
use tnc_proto::admin as api;
use tnc_server::admin::client::{AdminClient, Method};
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(version, about = "The PDP's live fleet view over its admin API")]
struct Args {
    /// The admin API, https://HOST:PORT.
    #[arg(long, required_unless_present = "topology")]
    server: Option<String>,
    /// An admin certificate (tnc-server admin issue).
    #[arg(long, required_unless_present = "topology")]
    certificate: Option<PathBuf>,
    #[arg(long, required_unless_present = "topology")]
    key: Option<PathBuf>,
    /// The CA of the PDP's certificate (its ca.pem).
    #[arg(long, required_unless_present = "topology")]
    ca: Option<PathBuf>,
    /// Take the four above from `testnet up`'s topology.json (its "admin").
    #[arg(long, conflicts_with_all = ["server", "certificate", "key", "ca"])]
    topology: Option<PathBuf>,
    /// Offer no actions, whatever the certificate allows.
    #[arg(long)]
    read_only: bool,
    /// How often the fleet is read (milliseconds).
    #[arg(long, default_value_t = 1000)]
    refresh_ms: u64,
}

/// The longest line of the event stream kept (an event is far shorter).
const MAX_LINE: usize = 1 << 20;

/// The first 12 characters of a device ID, for status lines.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What the network and the keyboard tell the main loop.
enum Msg {
    Key(Key),
    Resize,
    WhoAmI(api::WhoAmI),
    Fleet(Vec<api::Device>),
    Detail(Box<api::DeviceDetail>),
    Audit(Vec<api::AuditEntry>),
    Event(String),
    Done(String),
    Lost(String),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tnc-monitor: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn client(args: &Args) -> anyhow::Result<AdminClient> {
    if let Some(path) = &args.topology {
        let t: serde_json::Value = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("--topology {}", path.display()))?,
        )
        .with_context(|| format!("--topology {}: not JSON", path.display()))?;
        let admin = &t["admin"];
        let field = |k: &str| {
            admin[k]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("--topology {}: no admin.{k}", path.display()))
        };
        let (url, cert, key, ca) = (
            field("url")?,
            field("certificate")?,
            field("key")?,
            field("ca")?,
        );
        return Ok(AdminClient::new(
            &url,
            ca.as_ref(),
            Some((cert.as_ref(), key.as_ref())),
        )?);
    }
    let (Some(url), Some(cert), Some(key), Some(ca)) =
        (&args.server, &args.certificate, &args.key, &args.ca)
    else {
        anyhow::bail!("give --server, --certificate, --key and --ca, or --topology");
    };
    Ok(AdminClient::new(
        url,
        ca,
        Some((cert.as_path(), key.as_path())),
    )?)
}

fn run(args: Args) -> anyhow::Result<()> {
    let client = client(&args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| format!("https://{}", client.addr()));
    let mut app = App::new(server, args.read_only);
    let mut terminal = ratatui::init();
    let result = runtime.block_on(main_loop(&mut terminal, &mut app, client, args.refresh_ms));
    ratatui::restore();
    result
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn main_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    client: AdminClient,
    refresh_ms: u64,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    keyboard(tx.clone());
    tokio::spawn(poll_fleet(client.clone(), tx.clone(), refresh_ms));
    tokio::spawn(event_stream(client.clone(), tx.clone()));
    loop {
        app.now = unix_now();
        terminal.draw(|f| tnc_monitor::ui::draw(f, app))?;
        let Some(msg) = rx.recv().await else {
            return Ok(());
        };
        let action = match msg {
            Msg::Key(k) => {
                app.status.clear();
                app.on_key(k)
            }
            Msg::Resize => None,
            Msg::WhoAmI(w) => {
                app.admin = Some(w);
                None
            }
            Msg::Fleet(f) => {
                app.link = Link::Up;
                app.set_fleet(f);
                None
            }
            Msg::Detail(d) => {
                app.detail = Some(*d);
                None
            }
            Msg::Audit(a) => {
                app.audit = a;
                None
            }
            Msg::Event(line) => {
                app.push_event(line);
                None
            }
            Msg::Done(s) => {
                app.status = s;
                None
            }
            Msg::Lost(why) => {
                app.link = Link::Lost(why);
                None
            }
        };
        match action {
            None => {}
            Some(Action::Quit) => return Ok(()),
            Some(a) => {
                tokio::spawn(act(client.clone(), a, tx.clone()));
            }
        }
    }
}

/// Keys from the terminal, on a thread of their own (crossterm reads
/// block).
fn keyboard(tx: mpsc::UnboundedSender<Msg>) {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    std::thread::spawn(move || loop {
        let Ok(e) = event::read() else { return };
        let msg = match e {
            Event::Key(k) if k.kind == KeyEventKind::Press => {
                let key = match k.code {
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
                    KeyCode::Char(c) => Key::Char(c),
                    KeyCode::Enter => Key::Enter,
                    KeyCode::Esc => Key::Esc,
                    KeyCode::Backspace => Key::Backspace,
                    KeyCode::Up => Key::Up,
                    KeyCode::Down => Key::Down,
                    _ => continue,
                };
                Msg::Key(key)
            }
            Event::Resize(..) => Msg::Resize,
            _ => continue,
        };
        if tx.send(msg).is_err() {
            return;
        }
    });
}

/// The fleet every `refresh_ms`; who the caller is at each (re)connection.
async fn poll_fleet(client: AdminClient, tx: mpsc::UnboundedSender<Msg>, refresh_ms: u64) {
    let mut known = false;
    loop {
        if !known {
            match client.get::<api::WhoAmI>("/v1/whoami").await {
                Ok(w) => {
                    known = true;
                    let _ = tx.send(Msg::WhoAmI(w));
                }
                Err(e) => {
                    let _ = tx.send(Msg::Lost(e.to_string()));
                }
            }
        }
        if known {
            match client.get::<Vec<api::Device>>("/v1/devices").await {
                Ok(f) => {
                    if tx.send(Msg::Fleet(f)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    known = false;
                    let _ = tx.send(Msg::Lost(e.to_string()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(refresh_ms.max(100))).await;
    }
}

/// The PDP's session events, as lines; reconnects when the stream ends.
async fn event_stream(client: AdminClient, tx: mpsc::UnboundedSender<Msg>) {
    use http_body_util::BodyExt;
    loop {
        if let Ok(mut answer) = client.send(Method::GET, "/v1/events", None).await {
            // Bytes up to a line's end, decoded a whole line at a time (a
            // character may be split between frames); at most MAX_LINE.
            let mut pending: Vec<u8> = Vec::new();
            while let Some(Ok(frame)) = answer.body_mut().frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let bytes: Vec<u8> = pending.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&bytes);
                    if let Some(json) = line.trim_end().strip_prefix("data: ") {
                        if let Some(text) = tnc_monitor::event_line(json) {
                            if tx.send(Msg::Event(text)).is_err() {
                                return;
                            }
                        }
                    }
                }
                if pending.len() > MAX_LINE {
                    // Not an event stream as the PDP writes it: start over.
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn act(client: AdminClient, action: Action, tx: mpsc::UnboundedSender<Msg>) {
    let msg = match action {
        Action::LoadDevice(id) => match client.get(&format!("/v1/devices/{id}")).await {
            Ok(d) => Msg::Detail(Box::new(d)),
            Err(e) => Msg::Done(format!("device {id}: {e}")),
        },
        Action::LoadAudit(id) => match client.get(&format!("/v1/audit?subject={id}")).await {
            Ok(a) => Msg::Audit(a),
            Err(e) => Msg::Done(format!("audit: {e}")),
        },
        Action::Reassess(id) => {
            match client
                .post::<_, api::ActionResult>(&format!("/v1/devices/{id}/reassess"), &())
                .await
            {
                Ok(_) => Msg::Done(format!("re-assessment of {} requested", short(&id))),
                Err(e) => Msg::Done(format!("re-assess: {e}")),
            }
        }
        Action::Revoke(id) => {
            let reason = api::RevokeRequest {
                reason: "revoked from tnc-monitor".into(),
            };
            match client
                .post::<_, api::ActionResult>(&format!("/v1/devices/{id}/revoke"), &reason)
                .await
            {
                Ok(api::ActionResult::Revoked { tickets, .. }) => {
                    Msg::Done(format!("{tickets} ticket(s) of {} revoked", short(&id)))
                }
                Ok(other) => Msg::Done(format!("{other:?}")),
                Err(e) => Msg::Done(format!("revoke: {e}")),
            }
        }
        Action::Quit => return,
    };
    let _ = tx.send(msg);
}
