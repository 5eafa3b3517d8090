//! The real `tnc-monitor` binary in a pseudo-terminal (tmux, from Debian)
//! against a running PDP with two swtpm endpoints kept open: a terminal
//! (host ws-1) and a VM (host hv-1). The operator filters the fleet to the
//! terminal, a program outside the reference values runs there, the
//! operator presses `r` and `y`; the screen then shows the terminal
//! isolated with its drift, the re-assessment in the events pane, and the
//! drill-down device -> attestation's findings (the program's path) ->
//! audit entries; `h` shows the VM under its host; a PDP that cannot be
//! reached is said on screen and the monitor reconnects by itself. Each screen is printed (`--nocapture`) as the operator
//! saw it.

use std::process::Command;
use std::time::{Duration, Instant};
use testnet::e2e::{profile, Endpoint, PdpOptions, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_proto::admin::{self as api, AdminRole};
use tnc_proto::attestation::Role;

/// A tmux server of the test's own (its socket named after the process)
/// with one session running the monitor in a 110 x 32 terminal.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Self {
        let socket = format!("tnc-monitor-test-{}", std::process::id());
        let t = Self { socket };
        let out = t
            .cmd(&["-f", "/dev/null", "new-session", "-d", "-s", "mon"])
            .args(["-x", "110", "-y", "32", command])
            .output()
            .expect("tmux (Debian's tmux package; make test installs it)");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Esc reaches the program at once, not after tmux's 500 ms wait
        // for an escape sequence.
        t.run(&["set-option", "-g", "escape-time", "0"]);
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "mon"])
    }

    /// Keys as tmux names them ("r", "Enter", "Escape", "/").
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "mon", k]);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Text typed as it is.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "mon", "-l", text]);
    }

    /// Waits (up to 20 s) for a screen that satisfies `ok`; prints it
    /// under `title`.
    fn wait_for(&self, title: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if ok(&s) {
                println!("--- {title} ---\n{}", s.trim_end());
                return s;
            }
            assert!(Instant::now() < until, "{title}: never showed; last:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "mon"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).output();
    }
}

/// An endpoint's session kept open on a thread of its own (its TPM is
/// blocking I/O); dropping the sender ends it.
fn keep_open(
    pdp: &TestPdp,
    endpoint: &Endpoint,
) -> (
    std::sync::mpsc::Receiver<String>,
    tokio::sync::oneshot::Sender<()>,
) {
    let target = pdp.target(pki::tls::Suites::Standard).unwrap();
    let agent = endpoint.agent().unwrap();
    let (verdicts_tx, verdicts) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (first, mut session) = tnc_client::pairing::KeptSession::open(
                &[target],
                agent,
                None,
                Duration::from_secs(30),
                None,
                false,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            let _ = verdicts_tx.send(first.verdict_name().to_string());
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    o = session.reassessed() => match o {
                        Some(o) => { let _ = verdicts_tx.send(o.verdict_name().to_string()); }
                        None => break,
                    },
                    _ = &mut stopped => break,
                }
            }
        });
    });
    (verdicts, stop)
}

/// A TCP relay to the PDP's admin API that the test can cut (every
/// connection closed, new ones refused) and restore: the network between
/// the monitor and its PDP.
struct Relay {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // dropped: refused
                }
                let mut cut = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The screen line that shows `id`'s row (its first 16 characters).
fn row<'a>(screen: &'a str, id: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(&id[..16]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_in_a_terminal_shows_a_reassessment_and_its_findings() {
    let ca = LocalCa::create().unwrap();
    let mut terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let mut vm = Endpoint::boot("good-vm", Role::Vm, &ca).unwrap();
    terminal.host = Some("ws-1".parse().unwrap());
    vm.host = Some("hv-1".parse().unwrap());
    let (t_ref, vm_ref) = (
        profile("good-terminal").unwrap(),
        profile("good-vm").unwrap(),
    );
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &t_ref), (Role::Vm, &vm_ref)],
        ca.roots().unwrap(),
        PdpOptions {
            admin: true,
            reassessment: tnc_server::config::Reassessment {
                poll_ms: 100,
                ..Default::default()
            },
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let (t_id, vm_id) = (terminal.device_id().unwrap(), vm.device_id().unwrap());
    let (t_verdicts, _t_stop) = keep_open(&pdp, &terminal);
    let (vm_verdicts, _vm_stop) = keep_open(&pdp, &vm);
    for v in [&t_verdicts, &vm_verdicts] {
        assert_eq!(v.recv_timeout(Duration::from_secs(30)).unwrap(), "allow");
    }

    // The operator's certificate, and the monitor in a terminal.
    let admin = pdp.admin_client("ops", AdminRole::ReadWrite).unwrap();
    let file = |ext: &str| pdp.dir.join(format!("admin-ops.{ext}"));
    // The monitor reaches the PDP through a relay the test can cut.
    let relay = Relay::start(pdp.admin_addr.unwrap()).await;
    let command = format!(
        "exec {} --server https://{} --certificate {} --key {} --ca {} --refresh-ms 300",
        env!("CARGO_BIN_EXE_tnc-monitor"),
        relay.addr,
        file("pem").display(),
        file("key").display(),
        pdp.tls.ca.display()
    );
    let tmux = Tmux::start(&command);

    let s = tmux.wait_for("the fleet", |s| {
        s.contains("fleet: 2 devices, 2 allowed, 0 isolated")
            && row(s, &t_id).is_some_and(|r| r.contains("ws-1") && r.contains("allow"))
            && row(s, &vm_id).is_some_and(|r| r.contains("hv-1") && r.contains("allow"))
    });
    assert!(s.contains("ops (read-write)  connected"), "{s}");

    // Only the terminal, by a field selector.
    tmux.keys(&["/"]);
    tmux.type_text("role==terminal");
    tmux.keys(&["Enter"]);
    tmux.wait_for("filtered", |s| {
        s.contains("filter: role==terminal (1 shown)") && row(s, &vm_id).is_none()
    });

    // A program outside the reference values runs on the terminal; the
    // operator asks for a re-assessment from the monitor.
    const PROGRAM: &str = "/home/user/.local/bin/cryptominer";
    terminal
        .measure_more(&[(PROGRAM, b"mines something")])
        .unwrap();
    tmux.keys(&["r"]);
    tmux.wait_for("asked to confirm", |s| {
        s.contains(&format!("Re-assess {}?", &t_id[..16]))
    });
    tmux.keys(&["y"]);
    let s = tmux.wait_for("the fleet after the re-assessment", |s| {
        row(s, &t_id).is_some_and(|r| r.contains("isolate"))
            && s.contains("re-assessed (the operator asked)")
    });
    // Its drift: the program, one finding that departs from the policy.
    let r = row(&s, &t_id).unwrap();
    let cells: Vec<&str> = r.split_whitespace().collect();
    let drift_at = cells.iter().position(|c| *c == "isolate").unwrap() + 4;
    assert!(cells[drift_at].parse::<u32>().unwrap() >= 1, "{r}");
    assert_eq!(
        t_verdicts.recv_timeout(Duration::from_secs(10)).unwrap(),
        "isolate"
    );

    // Drill down: the device, the attestation's findings, its audit.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the device", |s| {
        s.contains("attestations (Enter: findings") && s.contains("host ws-1")
    });
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the findings", |s| s.contains("findings (Enter: audit"));
    assert!(s.contains(PROGRAM), "{s}");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the audit entries", |s| {
        s.contains(&format!("audit entries of {}", &t_id[..16]))
            && s.contains("device-reassess")
            && s.contains("by admin ops")
    });

    // Back to the fleet; the VMs by host.
    tmux.keys(&["Escape", "Escape"]);
    tmux.wait_for("back", |s| s.contains("filter: role==terminal"));
    tmux.keys(&["h"]);
    let s = tmux.wait_for("VMs by host", |s| {
        s.contains("VMs by host: hosts 1, VMs 1") && s.contains(&vm_id[..16])
    });
    let hv = s.lines().find(|l| l.contains("hv-1")).unwrap();
    assert!(hv.contains("1 VMs") && hv.contains("1 allowed"), "{hv}");

    // The API agrees with the screen.
    let listed: Vec<api::Device> = admin.get("/v1/devices?role=terminal").await.unwrap();
    assert_eq!(listed[0].last_verdict.as_deref(), Some("isolate"));

    // The network to the PDP goes: the monitor says so, keeps the last
    // table, and comes back by itself when the network does, its event
    // stream too.
    relay.set(false);
    tmux.wait_for("the PDP lost", |s| {
        s.contains("PDP LOST") && s.contains(&vm_id[..16])
    });
    relay.set(true);
    tmux.wait_for("reconnected", |s| s.contains("ops (read-write)  connected"));
    // The event stream reconnects 2 s after it ended.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _: api::ActionResult = admin
        .post(&format!("/v1/devices/{vm_id}/reassess"), &())
        .await
        .unwrap();
    tmux.wait_for("an event after reconnecting", |s| {
        s.contains(&format!(
            "re-assessed (the operator asked): {} vm allow",
            &vm_id[..12]
        ))
    });

    // The PDP stops: said on screen; the monitor stays up, q quits it.
    pdp.stop().await.unwrap();
    tmux.wait_for("the PDP stopped", |s| s.contains("PDP LOST"));
    assert!(tmux.alive());
    tmux.keys(&["q"]);
    let until = Instant::now() + Duration::from_secs(5);
    while tmux.alive() {
        assert!(Instant::now() < until, "q did not quit the monitor");
        std::thread::sleep(Duration::from_millis(50));
    }
}
