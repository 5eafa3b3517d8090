//! Where an operator command works: the store the config names, or a
//! running PDP's admin API (`--server URL` with an admin certificate).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use tnc_server::admin::client::AdminClient;

#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The PDP's configuration: work on the store it names.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub config: Option<PathBuf>,
    /// Or a running PDP's admin API, https://HOST:PORT, with an admin
    /// certificate (tnc-server admin issue).
    #[arg(long, requires_all = ["certificate", "key", "ca"])]
    pub server: Option<String>,
    /// The admin certificate (PEM).
    #[arg(long)]
    pub certificate: Option<PathBuf>,
    /// Its key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The CA of the PDP's certificate (its ca.pem).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// The store's config, or the API's client.
pub enum Where<'a> {
    Local(&'a Path),
    Remote(AdminClient),
}

impl Target {
    pub fn resolve(&self) -> anyhow::Result<Where<'_>> {
        match (&self.config, &self.server) {
            (Some(config), None) => Ok(Where::Local(config)),
            (None, Some(url)) => {
                let (Some(cert), Some(key), Some(ca)) = (&self.certificate, &self.key, &self.ca)
                else {
                    bail!("--server needs --certificate, --key and --ca");
                };
                Ok(Where::Remote(
                    AdminClient::new(url, ca, Some((cert.as_path(), key.as_path())))
                        .with_context(|| format!("--server {url}"))?,
                ))
            }
            _ => bail!("give --config FILE (the local store) or --server URL (the admin API)"),
        }
    }
}
