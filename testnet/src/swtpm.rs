//! Real software TPMs for tests and demos: one `swtpm` process per [`Swtpm`], on
//! free loopback ports, with its own state directory, stopped on drop.
//!
//! A provisioned TPM gets EK certificates from a local CA that the caller owns
//! ([`LocalCa`]), never the machine's shared `/var/lib/swtpm-localca`, so tests
//! are hermetic and can run in parallel.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, removed by its owner.
pub fn scratch_dir(what: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tnc-{what}-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// DER certificates.
pub type DerCerts = Vec<Vec<u8>>;

/// A certificate authority for EK certificates, in a directory the caller owns.
/// `swtpm_localca` creates its keys there on first use.
#[derive(Debug)]
pub struct LocalCa {
    dir: PathBuf,
}

impl LocalCa {
    pub fn create() -> io::Result<Self> {
        let dir = scratch_dir("localca")?;
        std::fs::write(
            dir.join("swtpm-localca.conf"),
            format!(
                "statedir = {d}\nsigningkey = {d}/signkey.pem\nissuercert = {d}/issuercert.pem\ncertserial = {d}/certserial\n",
                d = dir.display()
            ),
        )?;
        std::fs::write(
            dir.join("swtpm-localca.options"),
            "--platform-manufacturer tnc-testnet\n--platform-version 2.1\n--platform-model swtpm\n",
        )?;
        std::fs::write(
            dir.join("swtpm_setup.conf"),
            format!(
                "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {d}/swtpm-localca.conf\ncreate_certs_tool_options = {d}/swtpm-localca.options\n",
                d = dir.display()
            ),
        )?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA that signs EK certificates (PEM), once a TPM was provisioned.
    pub fn issuer_cert(&self) -> PathBuf {
        self.dir.join("issuercert.pem")
    }

    /// The self-signed root above the issuer (PEM).
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("swtpm-localca-rootca-cert.pem")
    }

    /// (roots, intermediates) as DER, as a verifier is configured with them.
    pub fn roots(&self) -> io::Result<(DerCerts, DerCerts)> {
        let der = |p: PathBuf| -> io::Result<Vec<Vec<u8>>> {
            pki::ek::certificates_from_pem(&std::fs::read(&p)?).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
            })
        };
        Ok((der(self.root_cert())?, der(self.issuer_cert())?))
    }
}

impl Drop for LocalCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How to prepare a new TPM's state.
#[derive(Clone, Debug, Default)]
pub struct SwtpmOptions {
    /// PCR banks to activate (`sha1`, `sha256`, ...); empty keeps swtpm's default.
    pub pcr_banks: Vec<String>,
    /// Create EKs with certificates (RSA 2048 and ECC P-384, as swtpm 0.7 does)
    /// signed by this CA's directory.
    pub ek_certs_from: Option<PathBuf>,
}

/// A running swtpm.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    port: u16,
    state: PathBuf,
}

/// Two consecutive free loopback ports (server, control).
fn free_port_pair() -> io::Result<u16> {
    for _ in 0..64 {
        let a = TcpListener::bind("127.0.0.1:0")?;
        let port = a.local_addr()?.port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free loopback port pair",
    ))
}

impl Swtpm {
    /// Prepares a state directory as `options` say and starts swtpm on it.
    pub fn start(options: &SwtpmOptions) -> io::Result<Self> {
        let state = scratch_dir("swtpm")?;
        if options.ek_certs_from.is_some() || !options.pcr_banks.is_empty() {
            let mut setup = Command::new("swtpm_setup");
            setup
                .args(["--tpm2", "--tpmstate"])
                .arg(&state)
                .arg("--overwrite");
            if let Some(ca) = &options.ek_certs_from {
                setup
                    .args(["--create-ek-cert", "--create-platform-cert", "--config"])
                    .arg(ca.join("swtpm_setup.conf"));
            }
            if !options.pcr_banks.is_empty() {
                setup.arg("--pcr-banks").arg(options.pcr_banks.join(","));
            }
            let out = setup.stdin(Stdio::null()).output().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("running swtpm_setup (install swtpm-tools): {e}"),
                )
            })?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&state);
                return Err(io::Error::other(format!(
                    "swtpm_setup failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        // A port found free can be taken before swtpm binds it: retry.
        let mut last = None;
        for _ in 0..8 {
            let port = free_port_pair()?;
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", state.display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("starting swtpm (install swtpm): {e}"))
                })?;
            let mut tpm = Swtpm {
                child,
                port,
                state: state.clone(),
            };
            match tpm.wait_ready() {
                Ok(()) => return Ok(tpm),
                Err(e) => {
                    last = Some(e);
                    // Drop would remove the state; keep it for the next try.
                    let _ = tpm.child.kill();
                    let _ = tpm.child.wait();
                    std::mem::forget(tpm);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&state);
        Err(last.unwrap_or_else(|| io::Error::other("swtpm did not start")))
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!("swtpm exited: {status}")));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Someone else's listener on our port would leave our swtpm
                // exiting on a failed bind: make sure ours is still alive.
                std::thread::sleep(Duration::from_millis(100));
                return match self.child.try_wait()? {
                    None => Ok(()),
                    Some(status) => Err(io::Error::other(format!("swtpm exited: {status}"))),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "swtpm did not listen within 10 s",
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCTI configuration for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// A tpm2-tools command aimed at this TPM (`TPM2TOOLS_TCTI` set), run in `dir`.
    pub fn tpm2_command(&self, program: &str, dir: &Path) -> Command {
        tpm2_command_at(&self.tcti(), program, dir)
    }

    /// Runs a tpm2-tools command, then flushes transient objects and sessions: a
    /// bare swtpm has only 3 object slots and no resource manager.
    pub fn tpm2(&self, dir: &Path, program: &str, args: &[&str]) -> io::Result<Output> {
        tpm2_at(&self.tcti(), dir, program, args)
    }
}

/// A tpm2-tools command aimed at the TPM behind `tcti`, run in `dir`.
pub fn tpm2_command_at(tcti: &str, program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("TPM2TOOLS_TCTI", tcti)
        .stdin(Stdio::null());
    cmd
}

/// [`Swtpm::tpm2`] for any TPM, named by its TCTI.
pub fn tpm2_at(tcti: &str, dir: &Path, program: &str, args: &[&str]) -> io::Result<Output> {
    let out = tpm2_command_at(tcti, program, dir)
        .args(args)
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running {program} (install tpm2-tools): {e}"),
            )
        })?;
    for flush in ["-t", "-s"] {
        let _ = tpm2_command_at(tcti, "tpm2_flushcontext", dir)
            .arg(flush)
            .output();
    }
    Ok(out)
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
