//! The operator's commands, one file each. They use the library and the
//! helpers here, never each other.

pub mod admin;
pub mod admins;
pub mod appraise;
pub mod ca;
pub mod dissect;
pub mod ek_roots;
pub mod evidence;
pub mod init;
pub mod input;
pub mod quote;
pub mod run;
pub mod target;

use anyhow::Context;
use std::path::Path;
use tnc_server::config::ServerConfig;
use tnc_server::store::Store;

/// The runtime a command's store calls run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The store the config names.
pub async fn open_store(config: &Path) -> anyhow::Result<Store> {
    let config = ServerConfig::load(config)?;
    Store::open_keyed(&config.store_url(), config.audit_key()?)
        .await
        .with_context(|| format!("store.url {:?}", config.store.url))
}
