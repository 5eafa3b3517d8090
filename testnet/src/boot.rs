//! `testnet boot`: a measured boot for a TPM that had none. A software TPM
//! (swtpm) has no firmware or kernel measuring into it, so its PCRs stay zero
//! and there is no event log; this plays both from a profile, as the
//! end-to-end tests do, for a lab endpoint the operator runs by hand: it
//! extends the TPM's PCRs, writes the UEFI event log and the IMA list that
//! reproduce them, and the OS facts of a well-kept Debian host.

use anyhow::{anyhow, Context};
use std::path::PathBuf;
use testnet::e2e::{profile, write_host_files};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The software TPM, `swtpm:host=127.0.0.1,port=2321` or `mssim:…` (no
    /// other TCTI: on a real TPM the extends would stay until reboot).
    #[arg(long)]
    tcti: String,
    /// A profile of `testnet/profiles/` (good-terminal, good-vm,
    /// tampered-kernel, ...) or a profile file.
    #[arg(long, default_value = "good-terminal")]
    profile: String,
    /// Where to write the event log, the IMA list and the OS facts.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Only a software TPM: on a real one the made-up extends would stay in
    // its PCRs until the machine reboots.
    if !["swtpm:", "mssim:"]
        .iter()
        .any(|p| args.tcti.starts_with(p))
    {
        anyhow::bail!(
            "--tcti {}: testnet boot extends PCRs with made-up measurements; give a software \
             TPM (swtpm:host=…,port=… or mssim:…)",
            args.tcti
        );
    }
    let profile = if args.profile.ends_with(".toml") {
        testnet::simulator::Profile::load(args.profile.as_ref())
            .map_err(|e| anyhow!("{}: {e}", args.profile))?
    } else {
        profile(&args.profile)?
    };
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let out = args.out.canonicalize()?;
    let m = profile.measure().map_err(|e| anyhow!(e))?;
    m.apply_to(&args.tcti, &out)
        .map_err(|e| anyhow!("extending the PCRs through {}: {e}", args.tcti))?;
    let event_log = out.join("binary_bios_measurements");
    let ima = out.join("binary_runtime_measurements");
    std::fs::write(&event_log, &m.event_log)?;
    std::fs::write(&ima, &m.ima)?;
    let os = write_host_files(&out)?;
    println!(
        "booted {} into {}: {} PCR extends, {} IMA entries",
        args.profile,
        args.tcti,
        m.extends.len(),
        m.ima_entries()
    );
    println!("for the endpoint's client.toml:");
    println!("[evidence]");
    println!("event_log = {:?}", event_log.display().to_string());
    println!("ima = {:?}", ima.display().to_string());
    println!("[os]");
    println!("os_release = {:?}", os.os_release.display().to_string());
    println!("ip_forward = {:?}", os.ip_forward.display().to_string());
    println!("dpkg_status = {:?}", os.dpkg_status.display().to_string());
    println!("proc_stat = {:?}", os.proc_stat.display().to_string());
    Ok(())
}
