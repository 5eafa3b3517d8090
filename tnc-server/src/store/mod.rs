//! The PDP's durable store: users, devices (EK, AK, enrollment, the state the
//! next appraisal continues from), attestations, policy versions and an
//! append-only audit log hash-chained with SM3.
//!
//! SQLite by default (a file created on first start), PostgreSQL by URL,
//! through one code path: sqlx's Any driver with `$n` placeholders, which both
//! accept. The schema is created by the migrations below, applied in order and
//! recorded in `schema_version`; only the column types differ per backend.

use crate::devices::DeviceRecord;
use policy::appraisal::{DeviceState, FlaggedEntry};
use policy::{HashAlg, Verdict};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tnc_proto::attestation::Role;

mod audit_key;
mod memory;
mod revocation;
pub use audit_key::{Anchor, AuditKey, AuditKeyError};
pub use memory::MemoryStore;
pub use revocation::{ReassessRequest, Revocation, Stale};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("store URL {0:?}: use sqlite://PATH or postgres://…")]
    Url(String),
    #[error("store: {0}")]
    Corrupt(String),
    #[error("store: the decision was not committed: {0}")]
    Commit(String),
}

/// A boxed store future: the trait below is used as `dyn PdpStore`.
pub type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What the PDP's sessions need from a store, and nothing else: look up a
/// device, read the current reference values, commit a decision, check a
/// password, append to the audit log. [`Store`] (SQLite, PostgreSQL) is the
/// one the daemon runs on; [`MemoryStore`] holds everything in memory, for
/// the session's unit tests and for tools that need no history.
pub trait PdpStore: Send + Sync + std::fmt::Debug {
    fn device<'a>(&'a self, id: &'a [u8; 32]) -> StoreFuture<'a, Option<DeviceRecord>>;
    /// The newest policy version of each role (checked per session).
    fn policy_versions(&self) -> StoreFuture<'_, BTreeMap<Role, i64>>;
    /// The newest reference values of each role: (version, TOML).
    fn current_policies(&self) -> StoreFuture<'_, BTreeMap<Role, (i64, String)>>;
    /// The device record, attestation, evidence and audit entries of one
    /// decision, durably and all at once, before the verdict is sent.
    fn commit_decision<'a>(&'a self, w: &'a DecisionWrite<'a>) -> StoreFuture<'a, ()>;
    fn password_hash<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Appends an audit entry; its sequence number.
    fn audit<'a>(
        &'a self,
        at: u64,
        kind: &'a str,
        subject: &'a str,
        detail: &'a str,
    ) -> StoreFuture<'a, i64>;
    /// The revocation of this ticket, if it is revoked.
    fn ticket_revocation<'a>(&'a self, ticket_id: &'a [u8]) -> StoreFuture<'a, Option<Revocation>>;
    /// Revocations numbered after `seq`, oldest first, at most `limit`.
    fn revocations_after(&self, seq: i64, limit: i64) -> StoreFuture<'_, Vec<Revocation>>;
    /// Re-assessment requests numbered after `seq`, oldest first.
    fn reassess_requests_after(&self, seq: i64) -> StoreFuture<'_, Vec<ReassessRequest>>;
    /// The newest re-assessment request's number (0: none yet).
    fn last_reassess_seq(&self) -> StoreFuture<'_, i64>;
    /// The newest revocation's number (0: none yet).
    fn last_revocation_seq(&self) -> StoreFuture<'_, i64>;
    /// Takes or renews the lease on `device`'s periodic re-assessment for
    /// `owner` until `expires`: true when it is `owner`'s now (it was free,
    /// expired at `now`, or `owner`'s already).
    fn take_lease<'a>(
        &'a self,
        device: &'a [u8; 32],
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> StoreFuture<'a, bool>;
    /// Subscriber `name` applied every revocation up to `seq` (an older
    /// number changes nothing); whether it moved.
    fn record_ack<'a>(
        &'a self,
        name: &'a str,
        role: &'a str,
        seq: i64,
        at: u64,
    ) -> StoreFuture<'a, bool>;
    /// Uses up gateway `name`'s one-time enrolment token if `sha256` is its
    /// hash and it is unused and unexpired at `now`.
    fn take_enrolment_token<'a>(
        &'a self,
        name: &'a str,
        sha256: &'a [u8; 32],
        now: u64,
    ) -> StoreFuture<'a, bool>;
    /// Isolates the allowed devices not attested for their role's
    /// threshold (seconds), revoking their tickets.
    fn mark_stale<'a>(
        &'a self,
        now: u64,
        stale_after: &'a BTreeMap<Role, u64>,
    ) -> StoreFuture<'a, Vec<Stale>>;
}

impl PdpStore for Store {
    fn device<'a>(&'a self, id: &'a [u8; 32]) -> StoreFuture<'a, Option<DeviceRecord>> {
        Box::pin(Store::device(self, id))
    }
    fn policy_versions(&self) -> StoreFuture<'_, BTreeMap<Role, i64>> {
        Box::pin(Store::policy_versions(self))
    }
    fn current_policies(&self) -> StoreFuture<'_, BTreeMap<Role, (i64, String)>> {
        Box::pin(Store::current_policies(self))
    }
    fn commit_decision<'a>(&'a self, w: &'a DecisionWrite<'a>) -> StoreFuture<'a, ()> {
        Box::pin(Store::commit_decision(self, w))
    }
    fn password_hash<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(Store::password_hash(self, user))
    }
    fn audit<'a>(
        &'a self,
        at: u64,
        kind: &'a str,
        subject: &'a str,
        detail: &'a str,
    ) -> StoreFuture<'a, i64> {
        Box::pin(Store::audit(self, at, kind, subject, detail))
    }
    fn ticket_revocation<'a>(&'a self, ticket_id: &'a [u8]) -> StoreFuture<'a, Option<Revocation>> {
        Box::pin(Store::ticket_revocation(self, ticket_id))
    }
    fn revocations_after(&self, seq: i64, limit: i64) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(Store::revocations_after(self, seq, limit))
    }
    fn reassess_requests_after(&self, seq: i64) -> StoreFuture<'_, Vec<ReassessRequest>> {
        Box::pin(Store::reassess_requests_after(self, seq))
    }
    fn last_reassess_seq(&self) -> StoreFuture<'_, i64> {
        Box::pin(Store::last_reassess_seq(self))
    }
    fn last_revocation_seq(&self) -> StoreFuture<'_, i64> {
        Box::pin(Store::last_revocation_seq(self))
    }
    fn take_lease<'a>(
        &'a self,
        device: &'a [u8; 32],
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(Store::take_lease(self, device, owner, now, expires))
    }
    fn record_ack<'a>(
        &'a self,
        name: &'a str,
        role: &'a str,
        seq: i64,
        at: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(Store::record_ack(self, name, role, seq, at))
    }
    fn take_enrolment_token<'a>(
        &'a self,
        name: &'a str,
        sha256: &'a [u8; 32],
        now: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(Store::take_enrolment_token(self, name, sha256, now))
    }
    fn mark_stale<'a>(
        &'a self,
        now: u64,
        stale_after: &'a BTreeMap<Role, u64>,
    ) -> StoreFuture<'a, Vec<Stale>> {
        Box::pin(Store::mark_stale(self, now, stale_after))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Schema changes, in order, in SQLite's dialect; [`for_backend`] turns them
/// into PostgreSQL's (the column types are all that differ).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE devices (
        device_id BLOB PRIMARY KEY,
        role TEXT NOT NULL,
        ek_certificate BLOB NOT NULL,
        ak_name BLOB NOT NULL,
        ak_public BLOB NOT NULL,
        state TEXT,
        last_verdict TEXT,
        last_seen BIGINT NOT NULL,
        enrolled_at BIGINT NOT NULL
    );
    CREATE TABLE attestations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id BLOB NOT NULL,
        at BIGINT NOT NULL,
        verdict TEXT NOT NULL,
        findings TEXT NOT NULL,
        reset_count BIGINT,
        restart_count BIGINT,
        clock BIGINT
    );
    CREATE TABLE policy_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        role TEXT NOT NULL,
        loaded_at BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
    "CREATE TABLE evidence (
        device_id BLOB PRIMARY KEY,
        at BIGINT NOT NULL,
        event_log BLOB NOT NULL,
        event_log_sha256 TEXT NOT NULL,
        ima BLOB NOT NULL,
        ima_from BIGINT NOT NULL,
        ima_entries BIGINT NOT NULL
    )",
    "CREATE TABLE credentials (
        ticket_id BLOB PRIMARY KEY,
        device_id BLOB NOT NULL,
        at BIGINT NOT NULL,
        user_name TEXT,
        role TEXT NOT NULL,
        serial TEXT NOT NULL,
        certificate_sha256 TEXT NOT NULL,
        not_after BIGINT NOT NULL
    );
    CREATE INDEX credentials_device ON credentials (device_id, at)",
    revocation::MIGRATION,
    revocation::SUBSCRIBERS,
    // Kept IMA entries move to an append-only table: an incremental
    // attestation inserts its entries, it no longer reads and rewrites the
    // whole list (continuous re-attestation would make that hot).
    "CREATE TABLE ima_chunks (
        device_id BLOB NOT NULL,
        first_entry BIGINT NOT NULL,
        end_entry BIGINT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (device_id, first_entry)
    );
    INSERT INTO ima_chunks (device_id, first_entry, end_entry, data)
        SELECT device_id, ima_from, ima_entries, ima FROM evidence WHERE LENGTH(ima) > 0;
    ALTER TABLE evidence ADD COLUMN ima_bytes BIGINT NOT NULL DEFAULT 0;
    UPDATE evidence SET ima_bytes = LENGTH(ima);
    UPDATE evidence SET ima = SUBSTR(ima, 1, 0)",
    // Which PDP re-assesses a device on its interval (several PDPs on one
    // store): one lease per device, renewed by its owner each round, taken
    // over once it expired.
    "CREATE TABLE leases (
        device_id BLOB PRIMARY KEY,
        owner TEXT NOT NULL,
        expires BIGINT NOT NULL
    )",
    // What the operator's views show of a device beside its verdict: the
    // user of its last session, the host it says it runs on, and how many
    // findings of its last decision departed from the policy.
    "ALTER TABLE devices ADD COLUMN user_name TEXT;
    ALTER TABLE devices ADD COLUMN host TEXT;
    ALTER TABLE devices ADD COLUMN drift BIGINT NOT NULL DEFAULT 0",
];

/// A migration in the backend's dialect.
fn for_backend(backend: Backend, sqlite_ddl: &str) -> String {
    match backend {
        Backend::Sqlite => sqlite_ddl.to_string(),
        Backend::Postgres => sqlite_ddl
            .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
            .replace("BLOB", "BYTEA"),
    }
}

/// The hash the first audit entry chains from.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry (its hash: SM3, or `hmac-sm3:` and HMAC-SM3 under
/// the key, over the previous entry's hash and this entry's fields): the
/// admin API's type, as the store keeps it.
pub use tnc_proto::admin::AuditEntry;

fn audit_from_row(r: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        kind: r.try_get(2)?,
        subject: r.try_get(3)?,
        detail: r.try_get(4)?,
        hash: r.try_get(5)?,
    })
}

/// Why [`Store::find_device`] found no one device.
#[derive(Debug, thiserror::Error)]
pub enum FindDevice {
    #[error("no device {0:?} (device list shows them)")]
    None(String),
    #[error("{0:?} matches {1} devices: give more of the ID")]
    Ambiguous(String, usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where `audit verify` found the chain broken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {what}")]
pub struct AuditBreak {
    pub seq: i64,
    pub what: String,
}

/// An attestation as recorded: the admin API's type.
pub use tnc_proto::admin::Attestation as AttestationRecord;

/// A stored verdict ("no access", as the decision names it) as the admin
/// API and the metrics spell it (`Verdict::label`: "no-access"); text no
/// verdict names passes through.
fn api_verdict(stored: String) -> String {
    Verdict::from_name(&stored).map_or(stored, |v| v.label().to_string())
}

/// A device's last genuine evidence, kept for learn mode: the UEFI event log
/// and the IMA entries `ima_from..ima_entries` (appended as incremental
/// attestations bring them).
#[derive(Clone, Debug)]
pub struct StoredEvidence {
    pub at: i64,
    pub event_log: Vec<u8>,
    pub ima: Vec<u8>,
    pub ima_from: i64,
    pub ima_entries: i64,
}

/// Genuine evidence to keep with a decision.
#[derive(Debug)]
pub struct EvidenceWrite<'a> {
    pub device_id: [u8; 32],
    pub event_log: &'a [u8],
    /// IMA entries `ima_offset..ima_end`.
    pub ima: &'a [u8],
    pub ima_offset: u64,
    pub ima_end: u64,
}

/// The IMA bytes kept per device at most; beyond, appends stop (learn mode
/// then says the list is incomplete).
const MAX_KEPT_IMA: usize = 64 << 20;

/// An attestation row.
#[derive(Clone, Copy, Debug)]
pub struct AttestationWrite<'a> {
    pub device_id: [u8; 32],
    pub verdict: Verdict,
    pub findings: &'a [String],
    /// TPM reset count, restart count, clock of the quote.
    pub counters: Option<(u32, u32, u64)>,
}

/// Credentials issued with an allow: the certificate and the ticket bound
/// to it (their bytes go to the endpoint; the store keeps what identifies
/// and revokes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialWrite {
    pub ticket_id: Vec<u8>,
    pub device_id: [u8; 32],
    pub user: Option<String>,
    pub role: String,
    /// Hex.
    pub serial: String,
    /// Hex.
    pub certificate_sha256: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Everything a decision writes, committed in one transaction before the
/// verdict is sent: one durable commit per handshake.
#[derive(Debug)]
pub struct DecisionWrite<'a> {
    pub at: u64,
    pub device: Option<&'a DeviceRecord>,
    pub attestation: Option<AttestationWrite<'a>>,
    /// (kind, subject, detail), appended to the audit chain in order.
    pub audit: &'a [(&'a str, String, String)],
    pub evidence: Option<EvidenceWrite<'a>>,
    /// Credentials issued with this decision (allow only).
    pub credential: Option<&'a CredentialWrite>,
    /// Not allow: the device's unexpired tickets are revoked, for this
    /// reason.
    pub revoke: Option<&'a str>,
}

pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Serializes audit appends of this process; other processes sharing a
    /// PostgreSQL store are kept apart by the primary key on `seq` (retry).
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The group-commit writer's queue.
    writer: tokio::sync::mpsc::Sender<Pending>,
    /// Keys the audit chain (HMAC-SM3) when the config names a key.
    audit_key: Option<std::sync::Arc<AuditKey>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (and for SQLite, creates, mode 0600) the store at `url` and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_keyed(url, None).await
    }

    /// [`Store::open`], its audit entries keyed with `key` from the
    /// sequence number the key names on.
    pub async fn open_keyed(url: &str, key: Option<AuditKey>) -> Result<Self, StoreError> {
        let store = Self::open_unmigrated(url, key).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// The store at `url`, its schema as it is.
    async fn open_unmigrated(url: &str, key: Option<AuditKey>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Url(url.to_string()));
            }
            if path != ":memory:" {
                create_private(Path::new(path))
                    .map_err(|e| StoreError::Corrupt(format!("creating {path}: {e}")))?;
            }
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer; more connections only queue on its lock.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 8 })
            // A ping before each use finds a PostgreSQL connection the
            // network broke; a SQLite file cannot break so, and the ping is
            // a round trip to the connection's thread on every query (sqlx
            // pings again when a connection goes back to the pool).
            .test_before_acquire(backend == Backend::Postgres)
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // Write-ahead logging: a commit is one fsync of the log instead of
            // the rollback journal's several, and readers do not block the
            // writer. synchronous=FULL keeps every commit durable on power loss
            // (the verdict is only sent after its commit).
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA synchronous=FULL")
                .execute(&pool)
                .await?;
        }
        let audit_lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let audit_key = key.map(std::sync::Arc::new);
        let (writer, queue) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        tokio::spawn(group_writer(
            pool.clone(),
            backend,
            audit_lock.clone(),
            audit_key.clone(),
            queue,
        ));
        Ok(Self {
            pool,
            backend,
            audit_lock,
            writer,
            audit_key,
        })
    }

    /// Opens `url` with its schema brought only up to migration `version`:
    /// for tests of what a later migration does to data an earlier schema
    /// held.
    #[doc(hidden)]
    pub async fn open_at_version(url: &str, version: usize) -> Result<Self, StoreError> {
        let store = Self::open_unmigrated(url, None).await?;
        store.migrate_to(version).await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_to(MIGRATIONS.len()).await
    }

    async fn migrate_to(&self, last: usize) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        for (i, sqlite_ddl) in MIGRATIONS.iter().enumerate().take(last) {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            let ddl = for_backend(self.backend, sqlite_ddl);
            let mut tx = begin_write(&self.pool, self.backend).await?;
            for statement in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    // ---- users ----

    pub async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn users(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    // ---- devices ----

    pub async fn device(&self, id: &[u8; 32]) -> Result<Option<DeviceRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT device_id, role, ek_certificate, ak_name, ak_public, state, last_verdict,
                    last_seen, enrolled_at, user_name, host, drift FROM devices WHERE device_id = $1",
        )
        .bind(id.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, role, ek_certificate, ak_name, ak_public, state, last_verdict,
                    last_seen, enrolled_at, user_name, host, drift FROM devices ORDER BY device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// The store's part of a metrics scrape: devices by role and last
    /// verdict; those not attested within their role's stale limit
    /// (`stale_after`: seconds, by role).
    pub async fn metrics_gauges(
        &self,
        now: u64,
        stale_after: &BTreeMap<Role, u64>,
    ) -> Result<crate::metrics::StoreGauges, StoreError> {
        let rows = sqlx::query(
            "SELECT role, COALESCE(last_verdict, 'none'), COUNT(*) FROM devices
             GROUP BY role, last_verdict ORDER BY role, last_verdict",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut g = crate::metrics::StoreGauges::default();
        for r in &rows {
            // The store's verdict names ("no access") as metrics label them
            // ("none" passes through).
            let verdict = api_verdict(r.try_get(1)?);
            g.devices.push(((r.try_get(0)?, verdict), r.try_get(2)?));
        }
        for (role, after) in stale_after {
            let n: i64 =
                sqlx::query("SELECT COUNT(*) FROM devices WHERE role = $1 AND last_seen < $2")
                    .bind(role.name())
                    .bind(now.saturating_sub(*after) as i64)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            g.stale += n;
        }
        Ok(g)
    }

    /// A device's stored appraisal state as the store keeps it (JSON), for
    /// benchmarks that copy it.
    #[doc(hidden)]
    pub async fn device_state_json(&self, id: &[u8; 32]) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT state FROM devices WHERE device_id = $1")
                .bind(id.to_vec())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<Option<String>, _>(0))
                .transpose()?
                .flatten(),
        )
    }

    /// The one device whose hex ID starts with `prefix` (any case): a
    /// range of the index on device_id (IDs in [prefix 00.., prefix ff..]),
    /// not a scan of the fleet.
    pub async fn find_device(&self, prefix: &str) -> Result<DeviceRecord, FindDevice> {
        let prefix = prefix.to_ascii_lowercase();
        let Some((low, high)) = id_range(&prefix) else {
            return Err(FindDevice::None(prefix));
        };
        let mut query = String::from(
            "SELECT device_id, role, ek_certificate, ak_name, ak_public, state, last_verdict,
                    last_seen, enrolled_at, user_name, host, drift FROM devices WHERE device_id >= $1",
        );
        if high.is_some() {
            query.push_str(" AND device_id < $2");
        }
        query.push_str(" ORDER BY device_id LIMIT 2");
        let mut q = sqlx::query(&query).bind(low);
        if let Some(high) = high {
            q = q.bind(high);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(StoreError::from)?;
        let mut matches = rows
            .iter()
            .map(device_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(FindDevice::None(prefix)),
            _ => {
                let n = self.count_prefix(&prefix).await?;
                Err(FindDevice::Ambiguous(prefix, n))
            }
        }
    }

    /// How many device IDs start with `prefix` (for the ambiguity message).
    async fn count_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let Some((low, high)) = id_range(prefix) else {
            return Ok(0);
        };
        let n: i64 = match high {
            Some(high) => {
                sqlx::query("SELECT COUNT(*) FROM devices WHERE device_id >= $1 AND device_id < $2")
                    .bind(low)
                    .bind(high)
                    .fetch_one(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT COUNT(*) FROM devices WHERE device_id >= $1")
                    .bind(low)
                    .fetch_one(&self.pool)
                    .await?
            }
        }
        .try_get(0)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The devices as the operator's lists show them (the role and last
    /// verdict filtered in the query; of the state only its counters).
    pub async fn device_summaries(
        &self,
        role: Option<Role>,
        verdict: Option<Verdict>,
    ) -> Result<Vec<DeviceSummary>, StoreError> {
        let mut query = String::from(
            "SELECT device_id, role, ak_name, last_verdict, last_seen, enrolled_at, state,
                    user_name, host, drift
             FROM devices WHERE 1 = 1",
        );
        let mut n = 0;
        if role.is_some() {
            n += 1;
            query.push_str(&format!(" AND role = ${n}"));
        }
        if verdict.is_some() {
            n += 1;
            query.push_str(&format!(" AND last_verdict = ${n}"));
        }
        query.push_str(" ORDER BY device_id");
        let mut q = sqlx::query(&query);
        if let Some(r) = role {
            q = q.bind(r.name());
        }
        if let Some(v) = verdict {
            // Stored as the decision names it ("no access").
            q = q.bind(v.name());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let id: Vec<u8> = r.try_get(0)?;
                let device_id: [u8; 32] = id
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("device_id is not 32 bytes".into()))?;
                let role: String = r.try_get(1)?;
                let verdict: Option<String> = r.try_get(3)?;
                let state: Option<String> = r.try_get(6)?;
                let counters = match state {
                    Some(s) => Some(
                        serde_json::from_str::<StateCounters>(&s)
                            .map_err(|e| StoreError::Corrupt(format!("device state: {e}")))?,
                    ),
                    None => None,
                };
                Ok(DeviceSummary {
                    device_id,
                    role: parse_role(&role)?,
                    ak_name: r.try_get(2)?,
                    last_verdict: verdict.as_deref().and_then(Verdict::from_name),
                    last_seen: r.try_get::<i64, _>(4)? as u64,
                    enrolled_at: r.try_get::<i64, _>(5)? as u64,
                    ima_entries: counters.as_ref().map(|c| c.ima_entries as u64),
                    tpm_reset_count: counters.map(|c| c.reset_count),
                    user: r.try_get(7)?,
                    host: r.try_get(8)?,
                    drift: u32::try_from(r.try_get::<i64, _>(9)?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// Inserts or replaces a device.
    pub async fn put_device(&self, d: &DeviceRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        put_device_on(&mut conn, d).await
    }

    /// Commits a decision's device record, attestation and audit entries,
    /// durably, before returning. Decisions of concurrent sessions share one
    /// transaction (group commit): a commit costs one fsync however many
    /// sessions are waiting for it.
    pub async fn commit_decision(&self, w: &DecisionWrite<'_>) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let pending = Pending {
            at: w.at,
            device: w.device.cloned(),
            attestation: w.attestation.as_ref().map(|a| OwnedAttestation {
                device_id: a.device_id,
                verdict: a.verdict,
                findings: a.findings.to_vec(),
                counters: a.counters,
            }),
            audit: w
                .audit
                .iter()
                .map(|(k, s, d)| (k.to_string(), s.clone(), d.clone()))
                .collect(),
            evidence: w.evidence.as_ref().map(|e| OwnedEvidence {
                device_id: e.device_id,
                event_log: e.event_log.to_vec(),
                ima: e.ima.to_vec(),
                ima_offset: e.ima_offset as i64,
                ima_end: e.ima_end as i64,
            }),
            credential: w.credential.cloned(),
            revoke: w.revoke.map(str::to_string),
            done,
        };
        self.writer
            .send(pending)
            .await
            .map_err(|_| StoreError::Commit("the store's writer has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Commit("the store's writer has stopped".into()))?
            .map_err(StoreError::Commit)
    }
}

/// A decision's writes on their way to the writer task.
struct Pending {
    at: u64,
    device: Option<DeviceRecord>,
    attestation: Option<OwnedAttestation>,
    audit: Vec<(String, String, String)>,
    evidence: Option<OwnedEvidence>,
    credential: Option<CredentialWrite>,
    revoke: Option<String>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

struct OwnedEvidence {
    device_id: [u8; 32],
    event_log: Vec<u8>,
    ima: Vec<u8>,
    ima_offset: i64,
    ima_end: i64,
}

struct OwnedAttestation {
    device_id: [u8; 32],
    verdict: Verdict,
    findings: Vec<String>,
    counters: Option<(u32, u32, u64)>,
}

/// A transaction that will write. On SQLite it takes the write lock at
/// BEGIN (IMMEDIATE), where the busy timeout (sqlx's default, 5 s) makes it
/// wait for another process's write (an operator's `user add` or `policy
/// load`) to finish: a deferred transaction that read first and then tried
/// to write fails at once with SQLITE_BUSY_SNAPSHOT (517) when another
/// connection wrote in between, and a verdict would be lost to it.
async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    Ok(match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    })
}

/// Most decisions one transaction carries.
const GROUP_COMMIT_MAX: usize = 256;

/// The writer task: takes what is waiting, commits it in one transaction,
/// answers every waiter with the outcome (all or none were written).
async fn group_writer(
    pool: AnyPool,
    backend: Backend,
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    key: Option<std::sync::Arc<AuditKey>>,
    mut rx: tokio::sync::mpsc::Receiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let result = commit_batch(&pool, backend, &lock, key.as_deref(), &batch)
            .await
            .map_err(|e| e.to_string());
        for p in batch {
            let _ = p.done.send(result.clone());
        }
    }
}

async fn commit_batch(
    pool: &AnyPool,
    backend: Backend,
    lock: &tokio::sync::Mutex<()>,
    key: Option<&AuditKey>,
    batch: &[Pending],
) -> Result<(), StoreError> {
    let _guard = lock.lock().await;
    let mut attempts = 0;
    loop {
        let mut tx = begin_write(pool, backend).await?;
        let applied: Result<(), StoreError> = async {
            // Decisions that may revoke take the revocation lock before
            // they append to the audit chain (see lock_if_revoking).
            let revoking: Vec<[u8; 32]> = batch
                .iter()
                .filter(|p| p.revoke.is_some())
                .filter_map(|p| p.attestation.as_ref().map(|a| a.device_id))
                .collect();
            if !revoking.is_empty() {
                let at = batch.first().map_or(0, |p| p.at);
                revocation::lock_if_revoking(&mut tx, backend, &revoking, at).await?;
            }
            // Each statement is a round trip to the connection (on SQLite,
            // to its worker thread and back): the batch's device records,
            // attestations and audit entries go in one statement each
            // (on SQLite, one per power-of-two run: `statement_chunks`).
            let devices: Vec<&DeviceRecord> =
                batch.iter().filter_map(|p| p.device.as_ref()).collect();
            put_devices_on(&mut tx, &devices).await?;
            let attestations: Vec<(AttestationWrite<'_>, u64)> = batch
                .iter()
                .filter_map(|p| {
                    let a = p.attestation.as_ref()?;
                    let w = AttestationWrite {
                        device_id: a.device_id,
                        verdict: a.verdict,
                        findings: &a.findings,
                        counters: a.counters,
                    };
                    Some((w, p.at))
                })
                .collect();
            insert_attestations_on(&mut tx, &attestations).await?;
            let evidence: Vec<(&OwnedEvidence, u64)> = batch
                .iter()
                .filter_map(|p| Some((p.evidence.as_ref()?, p.at)))
                .collect();
            keep_evidence_on(&mut tx, &evidence).await?;
            // The audit chain's newest (seq, hash), once read: the batch
            // chains its entries on top of it and inserts them together,
            // before a revocation appends entries of its own.
            let mut tip = None;
            let mut entries = Vec::new();
            for p in batch {
                if let Some(c) = &p.credential {
                    insert_credential_on(&mut tx, c, p.at).await?;
                }
                for (kind, subject, detail) in &p.audit {
                    entries.push(
                        chain_next(&mut tx, key, &mut tip, p.at, kind, subject, detail).await?,
                    );
                }
                if let (Some(reason), Some(a)) = (&p.revoke, &p.attestation) {
                    insert_audit_on(&mut tx, &std::mem::take(&mut entries)).await?;
                    if revocation::revoke_on(&mut tx, backend, key, &a.device_id, p.at, reason)
                        .await?
                        > 0
                    {
                        // It appended an entry of its own.
                        tip = None;
                    }
                }
            }
            insert_audit_on(&mut tx, &entries).await?;
            Ok(())
        }
        .await;
        match applied {
            Ok(()) => {
                tx.commit().await?;
                return Ok(());
            }
            // Another PDP appended to the audit chain first: redo on top.
            Err(StoreError::Sql(sqlx::Error::Database(e)))
                if e.is_unique_violation() && attempts < 8 =>
            {
                tx.rollback().await?;
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn put_device_on(conn: &mut sqlx::AnyConnection, d: &DeviceRecord) -> Result<(), StoreError> {
    put_devices_on(conn, &[d]).await
}

/// Most rows one multi-row statement carries (12 columns x 256 stay well
/// under SQLite's 32,766 and PostgreSQL's 65,535 parameters).
const MAX_ROWS: usize = 256;

/// `items` in runs for multi-row statements on `conn`. On SQLite, runs of
/// power-of-two lengths, longest first: a statement then takes one of nine
/// shapes per kind, each prepared once and kept in the connection's
/// statement cache (a shape per group size was parsed anew for most groups,
/// and SQLite's parse of numbered placeholders grows with their square). On
/// PostgreSQL, where each statement is a round trip inside the write
/// transaction, runs as long as allowed: one statement per kind.
fn statement_chunks<'a, T>(
    conn: &sqlx::AnyConnection,
    items: &'a [T],
) -> impl Iterator<Item = &'a [T]> {
    runs(
        items,
        conn.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME,
    )
}

/// `items` in runs of at most [`MAX_ROWS`], of power-of-two lengths when
/// `power_of_two` (longest first).
fn runs<T>(items: &[T], power_of_two: bool) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = match power_of_two {
            true => 1 << rest.len().ilog2(),
            false => rest.len(),
        };
        let (run, tail) = rest.split_at(n.min(MAX_ROWS));
        rest = tail;
        Some(run)
    })
}

/// `n` placeholders numbered from `$first`: "$1, $2, $3".
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `VALUES` rows of `columns` placeholders each, numbered from $1.
fn values_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upserts device records, one statement per run ([`statement_chunks`]);
/// of two for the same device the later wins (one statement may not touch
/// a row twice).
async fn put_devices_on(
    conn: &mut sqlx::AnyConnection,
    devices: &[&DeviceRecord],
) -> Result<(), StoreError> {
    let mut latest: Vec<&DeviceRecord> = Vec::with_capacity(devices.len());
    for d in devices.iter().rev() {
        if !latest.iter().any(|l| l.device_id == d.device_id) {
            latest.push(d);
        }
    }
    latest.reverse();
    for latest in statement_chunks(conn, &latest) {
        put_distinct_devices_on(conn, latest).await?;
    }
    Ok(())
}

async fn put_distinct_devices_on(
    conn: &mut sqlx::AnyConnection,
    latest: &[&DeviceRecord],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO devices (device_id, role, ek_certificate, ak_name, ak_public, state,
                              last_verdict, last_seen, enrolled_at, user_name, host, drift)
         VALUES {}
         ON CONFLICT (device_id) DO UPDATE SET
            role = excluded.role, ek_certificate = excluded.ek_certificate,
            ak_name = excluded.ak_name, ak_public = excluded.ak_public,
            state = excluded.state, last_verdict = excluded.last_verdict,
            last_seen = excluded.last_seen, enrolled_at = excluded.enrolled_at,
            user_name = excluded.user_name, host = excluded.host, drift = excluded.drift",
        values_rows(latest.len(), 12)
    );
    let mut query = sqlx::query(&sql);
    for d in latest {
        let state = d
            .state
            .as_ref()
            .map(|s| serde_json::to_string(&StoredState::from(s)).unwrap_or_default());
        query = query
            .bind(d.device_id.to_vec())
            .bind(d.role.name())
            .bind(d.ek_certificate.clone())
            .bind(d.ak_name.clone())
            .bind(d.ak_public.clone())
            .bind(state)
            .bind(d.last_verdict.map(|v| v.name().to_string()))
            .bind(d.last_seen as i64)
            .bind(d.enrolled_at as i64)
            .bind(d.user.clone())
            .bind(d.host.clone())
            .bind(i64::from(d.drift));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

async fn insert_credential_on(
    conn: &mut sqlx::AnyConnection,
    c: &CredentialWrite,
    at: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credentials (ticket_id, device_id, at, user_name, role, serial,
                                  certificate_sha256, not_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.ticket_id.clone())
    .bind(c.device_id.to_vec())
    .bind(at as i64)
    .bind(c.user.clone())
    .bind(c.role.clone())
    .bind(c.serial.clone())
    .bind(c.certificate_sha256.clone())
    .bind(c.not_after)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// The credentials issued to a device, newest first:
    /// (issued at, serial, not after, user).
    pub async fn credentials(
        &self,
        device: &[u8; 32],
    ) -> Result<Vec<(i64, String, i64, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, serial, not_after, user_name FROM credentials
             WHERE device_id = $1 ORDER BY at DESC",
        )
        .bind(device.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }
}

impl Store {
    /// Credentials newest first, with their revocation if revoked: of one
    /// device or all, only those unexpired and unrevoked at `active_at`
    /// when given, at most `limit`.
    pub async fn credential_list(
        &self,
        device: Option<&[u8; 32]>,
        active_at: Option<u64>,
        limit: i64,
    ) -> Result<Vec<tnc_proto::admin::Credential>, StoreError> {
        let mut sql = String::from(
            "SELECT c.ticket_id, c.device_id, c.at, c.user_name, c.role, c.serial,
                    c.certificate_sha256, c.not_after, r.seq
             FROM credentials c LEFT JOIN revocations r ON r.ticket_id = c.ticket_id
             WHERE 1 = 1",
        );
        let mut n = 0;
        if device.is_some() {
            n += 1;
            sql.push_str(&format!(" AND c.device_id = ${n}"));
        }
        if active_at.is_some() {
            n += 1;
            sql.push_str(&format!(" AND c.not_after > ${n} AND r.seq IS NULL"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY c.at DESC, c.ticket_id LIMIT ${n}"));
        let mut q = sqlx::query(&sql);
        if let Some(d) = device {
            q = q.bind(d.to_vec());
        }
        if let Some(t) = active_at {
            q = q.bind(t as i64);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(tnc_proto::admin::Credential {
                    ticket: hex(&r.try_get::<Vec<u8>, _>(0)?),
                    device: hex(&r.try_get::<Vec<u8>, _>(1)?),
                    issued_at: r.try_get(2)?,
                    user: r.try_get(3)?,
                    role: r.try_get(4)?,
                    serial: r.try_get(5)?,
                    certificate_sha256: r.try_get(6)?,
                    not_after: r.try_get(7)?,
                    revoked: r.try_get(8)?,
                })
            })
            .collect()
    }
}

async fn insert_attestation_on(
    conn: &mut sqlx::AnyConnection,
    a: &AttestationWrite<'_>,
    at: u64,
) -> Result<(), StoreError> {
    insert_attestations_on(conn, &[(*a, at)]).await
}

/// Inserts attestations, in order, one statement per run
/// ([`statement_chunks`]).
async fn insert_attestations_on(
    conn: &mut sqlx::AnyConnection,
    rows: &[(AttestationWrite<'_>, u64)],
) -> Result<(), StoreError> {
    for rows in statement_chunks(conn, rows) {
        let sql = format!(
            "INSERT INTO attestations (device_id, at, verdict, findings, reset_count,
                                       restart_count, clock)
             VALUES {}",
            values_rows(rows.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for (a, at) in rows {
            query = query
                .bind(a.device_id.to_vec())
                .bind(*at as i64)
                .bind(a.verdict.name())
                .bind(serde_json::to_string(a.findings).unwrap_or_default())
                .bind(a.counters.map(|c| i64::from(c.0)))
                .bind(a.counters.map(|c| i64::from(c.1)))
                .bind(a.counters.map(|c| c.2 as i64));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Keeps devices' evidence: a new event log replaces the old one only when
/// it changed; IMA entries continuing the kept ones are appended, anything
/// else starts over from what came. Evidence of distinct devices is read
/// and written together (one statement per kind and run, not four per
/// decision); a device with several in the group has them kept one after
/// the other.
async fn keep_evidence_on(
    conn: &mut sqlx::AnyConnection,
    items: &[(&OwnedEvidence, u64)],
) -> Result<(), StoreError> {
    let repeated = |e: &OwnedEvidence| {
        items
            .iter()
            .filter(|(o, _)| o.device_id == e.device_id)
            .count()
            > 1
    };
    let (one_each, repeats): (Vec<_>, Vec<_>) = items.iter().partition(|(e, _)| !repeated(e));
    for group in statement_chunks(conn, &one_each) {
        keep_distinct_evidence_on(conn, group).await?;
    }
    for item in repeats {
        keep_distinct_evidence_on(conn, std::slice::from_ref(&item)).await?;
    }
    Ok(())
}

/// [`keep_evidence_on`] for evidence of distinct devices.
async fn keep_distinct_evidence_on(
    conn: &mut sqlx::AnyConnection,
    items: &[(&OwnedEvidence, u64)],
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT device_id, event_log_sha256, ima_entries, ima_bytes FROM evidence
         WHERE device_id IN ({})",
        placeholders(1, items.len())
    );
    let mut query = sqlx::query(&sql);
    for (e, _) in items {
        query = query.bind(e.device_id.to_vec());
    }
    // What is kept of each device: (event log SHA-256, entries, bytes).
    let mut kept = std::collections::HashMap::new();
    for r in query.fetch_all(&mut *conn).await? {
        let id: Vec<u8> = r.try_get(0)?;
        let row = (
            r.try_get::<String, _>(1)?,
            r.try_get::<i64, _>(2)?,
            r.try_get::<i64, _>(3)?,
        );
        kept.insert(id, row);
    }
    let mut replaced = Vec::new();
    let mut chunks = Vec::new();
    for (e, at) in items {
        let sha = hex(&HashAlg::Sha256.digest(&e.event_log));
        let (kept_sha, kept_len) = match kept.get(e.device_id.as_slice()) {
            Some((sha, entries, bytes)) if *entries == e.ima_offset && e.ima_offset > 0 => {
                (sha, *bytes as usize)
            }
            // A new list (first contact, a reboot, entries missed): it
            // replaces what was kept.
            _ => {
                replaced.push((*e, *at, sha));
                chunks.push(*e);
                continue;
            }
        };
        if *kept_sha != sha {
            sqlx::query(
                "UPDATE evidence SET event_log = $1, event_log_sha256 = $2 WHERE device_id = $3",
            )
            .bind(e.event_log.clone())
            .bind(&sha)
            .bind(e.device_id.to_vec())
            .execute(&mut *conn)
            .await?;
        }
        if !e.ima.is_empty() && kept_len + e.ima.len() <= MAX_KEPT_IMA {
            chunks.push(*e);
            sqlx::query(
                "UPDATE evidence SET ima_entries = $1, ima_bytes = ima_bytes + $2, at = $3
                 WHERE device_id = $4",
            )
            .bind(e.ima_end)
            .bind(e.ima.len() as i64)
            .bind(*at as i64)
            .bind(e.device_id.to_vec())
            .execute(&mut *conn)
            .await?;
        } else {
            sqlx::query("UPDATE evidence SET at = $1 WHERE device_id = $2")
                .bind(*at as i64)
                .bind(e.device_id.to_vec())
                .execute(&mut *conn)
                .await?;
        }
    }
    for replaced in statement_chunks(conn, &replaced) {
        let sql = format!(
            "INSERT INTO evidence (device_id, at, event_log, event_log_sha256, ima, ima_from,
                                   ima_entries, ima_bytes)
             VALUES {}
             ON CONFLICT (device_id) DO UPDATE SET at = excluded.at, event_log = excluded.event_log,
                event_log_sha256 = excluded.event_log_sha256, ima = excluded.ima,
                ima_from = excluded.ima_from, ima_entries = excluded.ima_entries,
                ima_bytes = excluded.ima_bytes",
            values_rows(replaced.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for (e, at, sha) in replaced {
            query = query
                .bind(e.device_id.to_vec())
                .bind(*at as i64)
                .bind(e.event_log.clone())
                .bind(sha.as_str())
                .bind(Vec::<u8>::new())
                .bind(e.ima_offset)
                .bind(e.ima_end)
                .bind(e.ima.len() as i64);
        }
        query.execute(&mut *conn).await?;
        let sql = format!(
            "DELETE FROM ima_chunks WHERE device_id IN ({})",
            placeholders(1, replaced.len())
        );
        let mut query = sqlx::query(&sql);
        for (e, _, _) in replaced {
            query = query.bind(e.device_id.to_vec());
        }
        query.execute(&mut *conn).await?;
    }
    insert_chunks_on(conn, &chunks).await
}

/// The entries each evidence brings as one chunk (none for those that
/// bring none), one statement per run ([`statement_chunks`]).
async fn insert_chunks_on(
    conn: &mut sqlx::AnyConnection,
    items: &[&OwnedEvidence],
) -> Result<(), StoreError> {
    let items: Vec<&&OwnedEvidence> = items.iter().filter(|e| !e.ima.is_empty()).collect();
    for items in statement_chunks(conn, &items) {
        let sql = format!(
            "INSERT INTO ima_chunks (device_id, first_entry, end_entry, data) VALUES {}",
            values_rows(items.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for e in items {
            query = query
                .bind(e.device_id.to_vec())
                .bind(e.ima_offset)
                .bind(e.ima_end)
                .bind(e.ima.clone());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes a device's record, on `conn`; whether there was one.
async fn forget_device_on(
    conn: &mut sqlx::AnyConnection,
    id: &[u8; 32],
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM devices WHERE device_id = $1")
        .bind(id.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Appends one audit entry chained to the last one, on `conn`.
async fn append_audit_on(
    conn: &mut sqlx::AnyConnection,
    key: Option<&AuditKey>,
    at: u64,
    kind: &str,
    subject: &str,
    detail: &str,
) -> Result<i64, StoreError> {
    let entry = chain_next(conn, key, &mut None, at, kind, subject, detail).await?;
    let seq = entry.seq;
    insert_audit_on(conn, &[entry]).await?;
    Ok(seq)
}

/// An audit entry chained on top of `tip`, the chain's newest (seq, hash)
/// as this transaction left it (read from the table when None), which it
/// advances; not yet inserted ([`insert_audit_on`]). Within one write
/// transaction nobody else appends: on SQLite it holds the write lock, and
/// on PostgreSQL a concurrent append fails the transaction on the
/// sequence's uniqueness and it is redone.
async fn chain_next(
    conn: &mut sqlx::AnyConnection,
    key: Option<&AuditKey>,
    tip: &mut Option<(i64, String)>,
    at: u64,
    kind: &str,
    subject: &str,
    detail: &str,
) -> Result<ChainedEntry, StoreError> {
    let (seq, prev) = match tip.take() {
        Some((seq, hash)) => (seq + 1, hash),
        None => {
            let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
            match &last {
                Some(r) => (r.try_get::<i64, _>(0)? + 1, r.try_get::<String, _>(1)?),
                None => (1, GENESIS.to_string()),
            }
        }
    };
    // PostgreSQL text refuses NUL; peer-supplied text (paths, messages) may
    // carry one. Replaced before hashing, so the chain covers what is stored.
    let (subject, detail) = (without_nul(subject), without_nul(detail));
    let input = chain_input(&prev, seq, at as i64, kind, &subject, &detail);
    let hash = match key {
        Some(k) if k.covers(seq) => k.mac(&input),
        // A keyed chain goes on keyed: a PDP or command without the key
        // would otherwise extend it with entries anyone could forge.
        _ if prev.starts_with(audit_key::KEYED) => {
            return Err(StoreError::Corrupt(
                "the audit log is keyed (HMAC-SM3) and this process has no key: \
                 set [store] audit_key to the key file"
                    .into(),
            ))
        }
        _ => hex(&HashAlg::Sm3.digest(&input)),
    };
    *tip = Some((seq, hash.clone()));
    Ok(ChainedEntry {
        seq,
        at: at as i64,
        kind: kind.to_string(),
        subject: subject.into_owned(),
        detail: detail.into_owned(),
        hash,
    })
}

/// An audit row, its hash computed.
struct ChainedEntry {
    seq: i64,
    at: i64,
    kind: String,
    subject: String,
    detail: String,
    hash: String,
}

/// Inserts chained audit entries, one statement per run
/// ([`statement_chunks`]).
async fn insert_audit_on(
    conn: &mut sqlx::AnyConnection,
    entries: &[ChainedEntry],
) -> Result<(), StoreError> {
    for entries in statement_chunks(conn, entries) {
        let sql = format!(
            "INSERT INTO audit (seq, at, kind, subject, detail, hash) VALUES {}",
            values_rows(entries.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for e in entries {
            query = query
                .bind(e.seq)
                .bind(e.at)
                .bind(e.kind.as_str())
                .bind(e.subject.as_str())
                .bind(e.detail.as_str())
                .bind(e.hash.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// The device's last genuine evidence, for learn mode.
    pub async fn evidence(&self, id: &[u8; 32]) -> Result<Option<StoredEvidence>, StoreError> {
        let row = sqlx::query(
            "SELECT at, event_log, ima_from, ima_entries FROM evidence WHERE device_id = $1",
        )
        .bind(id.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let chunks =
            sqlx::query("SELECT data FROM ima_chunks WHERE device_id = $1 ORDER BY first_entry")
                .bind(id.to_vec())
                .fetch_all(&self.pool)
                .await?;
        let mut ima = Vec::new();
        for c in &chunks {
            ima.extend_from_slice(&c.try_get::<Vec<u8>, _>(0)?);
        }
        Ok(Some(StoredEvidence {
            at: r.try_get(0)?,
            event_log: r.try_get(1)?,
            ima,
            ima_from: r.try_get(2)?,
            ima_entries: r.try_get(3)?,
        }))
    }

    /// The number of IMA chunks kept for a device (one per attestation
    /// that brought entries since its list began).
    pub async fn ima_chunks(&self, id: &[u8; 32]) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM ima_chunks WHERE device_id = $1")
                .bind(id.to_vec())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    pub async fn forget_device(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        forget_device_on(&mut conn, id).await
    }

    // ---- attestations ----

    /// The row number of the device's newest attestation.
    pub async fn last_attestation_id(
        &self,
        device_id: &[u8; 32],
    ) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query("SELECT MAX(id) FROM attestations WHERE device_id = $1")
                .bind(device_id.to_vec())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    pub async fn attestations(
        &self,
        device_id: &[u8; 32],
        limit: i64,
    ) -> Result<Vec<AttestationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, verdict, findings, id FROM attestations WHERE device_id = $1
             ORDER BY id DESC LIMIT $2",
        )
        .bind(device_id.to_vec())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let findings: String = r.try_get(2)?;
                Ok(AttestationRecord {
                    id: r.try_get(3)?,
                    at: r.try_get(0)?,
                    verdict: api_verdict(r.try_get(1)?),
                    findings: serde_json::from_str(&findings)
                        .map_err(|e| StoreError::Corrupt(format!("attestation findings: {e}")))?,
                })
            })
            .collect()
    }

    // ---- policy versions ----

    pub async fn record_policy(&self, role: Role, body: &str, now: u64) -> Result<i64, StoreError> {
        let sha = hex(&HashAlg::Sha256.digest(body.as_bytes()));
        sqlx::query(
            "INSERT INTO policy_versions (role, loaded_at, sha256, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(role.name())
        .bind(now as i64)
        .bind(&sha)
        .bind(body)
        .execute(&self.pool)
        .await?;
        let id: i64 = sqlx::query("SELECT MAX(id) FROM policy_versions WHERE role = $1")
            .bind(role.name())
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(id)
    }

    /// The newest policy version of each role (cheap: checked per session).
    pub async fn policy_versions(&self) -> Result<BTreeMap<Role, i64>, StoreError> {
        let rows = sqlx::query("SELECT role, MAX(id) FROM policy_versions GROUP BY role")
            .fetch_all(&self.pool)
            .await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let role: String = r.try_get(0)?;
            out.insert(parse_role(&role)?, r.try_get(1)?);
        }
        Ok(out)
    }

    /// Each role's current policy version: (role, version, SHA-256 hex of
    /// its text, loaded at).
    pub async fn policy_list(&self) -> Result<Vec<(Role, i64, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.role, p.id, p.sha256, p.loaded_at FROM policy_versions p
             WHERE p.id = (SELECT MAX(id) FROM policy_versions q WHERE q.role = p.role)
             ORDER BY p.role",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(0)?;
                Ok((
                    parse_role(&role)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                ))
            })
            .collect()
    }

    /// Records `body` as the role's policy unless it is the current version
    /// already; returns the new version's ID if one was recorded.
    pub async fn seed_policy(
        &self,
        role: Role,
        body: &str,
        now: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.load_policy_by(role, body, now, None).await
    }

    /// [`Store::seed_policy`] with who loaded it in the audit entry.
    pub async fn load_policy_by(
        &self,
        role: Role,
        body: &str,
        now: u64,
        by: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let current = self.current_policies().await?;
        if current.get(&role).is_some_and(|(_, b)| b == body) {
            return Ok(None);
        }
        let id = self.record_policy(role, body, now).await?;
        let detail = match by {
            Some(who) => format!("version {id} by {who}"),
            None => format!("version {id}"),
        };
        self.audit(now, "policy-load", role.name(), &detail).await?;
        Ok(Some(id))
    }

    /// The newest reference values loaded for each role.
    pub async fn current_policies(&self) -> Result<BTreeMap<Role, (i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.role, p.id, p.body FROM policy_versions p
             WHERE p.id = (SELECT MAX(id) FROM policy_versions q WHERE q.role = p.role)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let role: String = r.try_get(0)?;
            let role = parse_role(&role)?;
            out.insert(role, (r.try_get(1)?, r.try_get(2)?));
        }
        Ok(out)
    }

    // ---- audit ----

    /// Appends an audit entry chained to the last one; returns its sequence number.
    pub async fn audit(
        &self,
        at: u64,
        kind: &str,
        subject: &str,
        detail: &str,
    ) -> Result<i64, StoreError> {
        let _guard = self.audit_lock.lock().await;
        let mut attempts = 0;
        loop {
            let mut conn = self.pool.acquire().await?;
            match append_audit_on(
                &mut conn,
                self.audit_key.as_deref(),
                at,
                kind,
                subject,
                detail,
            )
            .await
            {
                // Another PDP took this sequence number: chain to its entry.
                Err(StoreError::Sql(sqlx::Error::Database(e)))
                    if e.is_unique_violation() && attempts < 8 =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// Audit entries numbered after `seq`, oldest first, at most `limit`;
    /// with `subject`, only those about it (a device ID, a user name).
    pub async fn audit_after(
        &self,
        seq: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = match subject {
            None => {
                sqlx::query(
                    "SELECT seq, at, kind, subject, detail, hash FROM audit WHERE seq > $1
                     ORDER BY seq LIMIT $2",
                )
                .bind(seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(subject) => {
                sqlx::query(
                    "SELECT seq, at, kind, subject, detail, hash FROM audit
                     WHERE seq > $1 AND subject = $2 ORDER BY seq LIMIT $3",
                )
                .bind(seq)
                .bind(subject)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(audit_from_row).collect()
    }

    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, at, kind, subject, detail, hash FROM audit ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Recomputes the chain: the number of entries, or the first that breaks it
    /// (an edited field, a deleted or inserted entry, a gap in the numbering;
    /// with the key, an entry it covers that is not keyed or whose MAC is
    /// wrong; with an anchor, entries dropped after it or a rewritten one).
    pub async fn verify_audit(&self) -> Result<Result<usize, AuditBreak>, StoreError> {
        self.verify_audit_against(None).await
    }

    /// [`Store::verify_audit`] and then `anchor`.
    pub async fn verify_audit_against(
        &self,
        anchor: Option<&Anchor>,
    ) -> Result<Result<usize, AuditBreak>, StoreError> {
        let entries = self.audit_entries().await?;
        Ok(verify_chain_keyed(&entries, self.audit_key.as_deref())
            .and_then(|n| anchor.map_or(Ok(()), |a| a.check(&entries)).map(|()| n)))
    }

    /// The chain's newest entry as an anchor taken `at`; None while empty.
    pub async fn audit_anchor(&self, at: u64) -> Result<Option<Anchor>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Anchor {
                seq: r.try_get(0)?,
                hash: r.try_get(1)?,
                at,
            })
        })
        .transpose()
    }

    /// The key this store appends with, if any.
    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_deref()
    }

    /// For tests of tamper detection: runs one raw statement.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Recomputes the chain from its first entry; with `key`, every entry from
/// its `since` on must be keyed with it.
pub fn verify_chain_keyed(
    entries: &[AuditEntry],
    key: Option<&AuditKey>,
) -> Result<usize, AuditBreak> {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return Err(AuditBreak {
                seq: e.seq,
                what: format!("expected entry {expected_seq}: entries were removed or renumbered"),
            });
        }
        let input = chain_input(&prev, e.seq, e.at, &e.kind, &e.subject, &e.detail);
        let keyed = e.hash.starts_with(audit_key::KEYED);
        let hash = match key {
            Some(k) if keyed => k.mac(&input),
            Some(k) if k.covers(e.seq) => {
                return Err(AuditBreak {
                    seq: e.seq,
                    what: format!(
                        "not keyed, though the key covers every entry from {} on: \
                         history was rewritten without the key",
                        k.since()
                    ),
                })
            }
            None if keyed => {
                return Err(AuditBreak {
                    seq: e.seq,
                    what: "keyed (HMAC-SM3): verify with the key ([store] audit_key)".into(),
                })
            }
            _ => hex(&HashAlg::Sm3.digest(&input)),
        };
        if !policy_ct_eq(hash.as_bytes(), e.hash.as_bytes()) {
            return Err(AuditBreak {
                seq: e.seq,
                what: "hash does not match its contents and the previous entry: history was edited"
                    .into(),
            });
        }
        prev = hash;
    }
    Ok(entries.len())
}

/// SM3 of [`chain_input`], hex: an entry's hash in an unkeyed chain.
fn chain_hash(prev: &str, seq: i64, at: i64, kind: &str, subject: &str, detail: &str) -> String {
    hex(&HashAlg::Sm3.digest(&chain_input(prev, seq, at, kind, subject, detail)))
}

/// prev || seq || at || len(kind) || kind || len(subject) || subject ||
/// len(detail) || detail, integers big-endian, lengths u64: what an entry's
/// hash covers (SM3 of it, or HMAC-SM3 under the key). The lengths keep
/// text from moving between fields without changing the hash.
fn chain_input(prev: &str, seq: i64, at: i64, kind: &str, subject: &str, detail: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(prev.len() + 40 + kind.len() + subject.len() + detail.len());
    input.extend_from_slice(prev.as_bytes());
    input.extend_from_slice(&seq.to_be_bytes());
    input.extend_from_slice(&at.to_be_bytes());
    for field in [kind, subject, detail] {
        input.extend_from_slice(&(field.len() as u64).to_be_bytes());
        input.extend_from_slice(field.as_bytes());
    }
    input
}

fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Equal-length byte comparison without an early exit.
fn policy_ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub use policy::digest::hex;

fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::from_name(s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
}

fn device_from_row(r: &AnyRow) -> Result<DeviceRecord, StoreError> {
    let id: Vec<u8> = r.try_get(0)?;
    let device_id: [u8; 32] = id
        .try_into()
        .map_err(|_| StoreError::Corrupt("device_id is not 32 bytes".into()))?;
    let role: String = r.try_get(1)?;
    let state: Option<String> = r.try_get(5)?;
    let state = match state {
        Some(s) => Some(
            serde_json::from_str::<StoredState>(&s)
                .map_err(|e| StoreError::Corrupt(format!("device state: {e}")))?
                .into_state()?,
        ),
        None => None,
    };
    let verdict: Option<String> = r.try_get(6)?;
    Ok(DeviceRecord {
        device_id,
        role: parse_role(&role)?,
        ek_certificate: r.try_get(2)?,
        ak_name: r.try_get(3)?,
        ak_public: r.try_get(4)?,
        state,
        last_verdict: verdict.as_deref().and_then(Verdict::from_name),
        last_seen: r.try_get::<i64, _>(7)? as u64,
        enrolled_at: r.try_get::<i64, _>(8)? as u64,
        user: r.try_get(9)?,
        host: r.try_get(10)?,
        drift: u32::try_from(r.try_get::<i64, _>(11)?).unwrap_or(u32::MAX),
    })
}

/// The `[low, high)` range of device IDs whose hex starts with `prefix`
/// (high None: to the end), or None when `prefix` is not hex or too long.
fn id_range(prefix: &str) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // An odd prefix's last nibble is the high half of its last byte.
    let mut padded = prefix.to_string();
    if padded.len() % 2 == 1 {
        padded.push('0');
    }
    let low = policy::digest::from_hex(&padded)?;
    // The next prefix: add one at the prefix's last nibble, carrying.
    let step: u16 = if prefix.len() % 2 == 1 { 0x10 } else { 0x01 };
    let mut high = low.clone();
    let mut carry = step;
    for b in high.iter_mut().rev() {
        let sum = u16::from(*b) + carry;
        *b = (sum & 0xff) as u8;
        carry = sum >> 8;
        if carry == 0 {
            break;
        }
    }
    // All ff: every ID from low on.
    let high = (carry == 0).then_some(high);
    Some((low, high))
}

/// A device as the lists show it ([`Store::device_summaries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSummary {
    pub device_id: [u8; 32],
    pub role: Role,
    pub ak_name: Vec<u8>,
    pub last_verdict: Option<Verdict>,
    pub last_seen: u64,
    pub enrolled_at: u64,
    pub ima_entries: Option<u64>,
    pub tpm_reset_count: Option<u32>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub drift: u32,
}

impl From<&DeviceRecord> for DeviceSummary {
    fn from(d: &DeviceRecord) -> Self {
        Self {
            device_id: d.device_id,
            role: d.role,
            ak_name: d.ak_name.clone(),
            last_verdict: d.last_verdict,
            last_seen: d.last_seen,
            enrolled_at: d.enrolled_at,
            ima_entries: d.state.as_ref().map(|s| s.ima_entries as u64),
            tpm_reset_count: d.state.as_ref().map(|s| s.reset_count),
            user: d.user.clone(),
            host: d.host.clone(),
            drift: d.drift,
        }
    }
}

/// What the lists read of the `state` column.
#[derive(Deserialize)]
struct StateCounters {
    reset_count: u32,
    ima_entries: usize,
}

/// `DeviceState` as JSON in the `state` column.
#[derive(Serialize, Deserialize)]
struct StoredState {
    reset_count: u32,
    restart_count: u32,
    clock: u64,
    ima_entries: usize,
    /// bank name -> hex PCR 10.
    pcr10: BTreeMap<String, String>,
    key_applications_seen: BTreeSet<String>,
    /// (index, path, hex digest, violation).
    #[serde(default)]
    ima_flagged: Vec<(usize, String, String, bool)>,
    #[serde(default)]
    ima_flagged_overflow: bool,
    appraised_at: u64,
}

impl From<&DeviceState> for StoredState {
    fn from(s: &DeviceState) -> Self {
        Self {
            reset_count: s.reset_count,
            restart_count: s.restart_count,
            clock: s.clock,
            ima_entries: s.ima_entries,
            pcr10: s
                .pcr10
                .iter()
                .map(|(b, v)| (b.name().to_string(), hex(v)))
                .collect(),
            key_applications_seen: s.key_applications_seen.clone(),
            ima_flagged: s
                .ima_flagged
                .iter()
                .map(|f| (f.index, f.path.clone(), hex(&f.digest), f.violation))
                .collect(),
            ima_flagged_overflow: s.ima_flagged_overflow,
            appraised_at: s.appraised_at,
        }
    }
}

impl StoredState {
    fn into_state(self) -> Result<DeviceState, StoreError> {
        let mut pcr10 = BTreeMap::new();
        for (bank, value) in self.pcr10 {
            let alg = HashAlg::from_name(&bank)
                .ok_or_else(|| StoreError::Corrupt(format!("device state: bank {bank:?}")))?;
            let bytes = policy::digest::from_hex(&value)
                .ok_or_else(|| StoreError::Corrupt("device state: PCR 10 not hex".into()))?;
            pcr10.insert(alg, bytes);
        }
        Ok(DeviceState {
            reset_count: self.reset_count,
            restart_count: self.restart_count,
            clock: self.clock,
            ima_entries: self.ima_entries,
            pcr10,
            key_applications_seen: self.key_applications_seen,
            ima_flagged: self
                .ima_flagged
                .into_iter()
                .map(|(index, path, digest, violation)| {
                    Ok(FlaggedEntry {
                        index,
                        path,
                        digest: policy::digest::from_hex(&digest).ok_or_else(|| {
                            StoreError::Corrupt("device state: flagged digest not hex".into())
                        })?,
                        violation,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            ima_flagged_overflow: self.ima_flagged_overflow,
            appraised_at: self.appraised_at,
        })
    }
}

/// Creates `path` with mode 0600 if it does not exist (it holds password hashes).
fn create_private(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match crate::certs::write_private(path, &[], false) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod id_range_tests {
    use super::id_range;

    #[test]
    fn prefixes_become_ranges_of_ids() {
        assert_eq!(id_range("ab"), Some((vec![0xab], Some(vec![0xac]))));
        assert_eq!(id_range("a"), Some((vec![0xa0], Some(vec![0xb0]))));
        assert_eq!(
            id_range("0ff"),
            Some((vec![0x0f, 0xf0], Some(vec![0x10, 0x00])))
        );
        assert_eq!(id_range("ff"), Some((vec![0xff], None)));
        assert_eq!(id_range("f"), Some((vec![0xf0], None)));
        assert_eq!(id_range(""), Some((vec![], None)));
        assert_eq!(id_range("xyz"), None);
        assert_eq!(id_range(&"a".repeat(65)), None);
    }
}

#[cfg(test)]
mod statement_chunk_tests {
    use super::{runs, MAX_ROWS};

    #[test]
    fn runs_are_powers_of_two_longest_first_in_order() {
        let items: Vec<usize> = (0..1000).collect();
        for n in [0, 1, 2, 3, 7, 255, 256, 257, 1000] {
            let pow2: Vec<&[usize]> = runs(&items[..n], true).collect();
            assert!(pow2
                .iter()
                .all(|r| r.len().is_power_of_two() && r.len() <= MAX_ROWS));
            assert!(pow2.windows(2).all(|w| w[0].len() >= w[1].len()));
            assert_eq!(pow2.concat(), &items[..n], "{n} items");
            let long: Vec<&[usize]> = runs(&items[..n], false).collect();
            assert_eq!(long.len(), n.div_ceil(MAX_ROWS));
            assert_eq!(long.concat(), &items[..n], "{n} items");
        }
        let lengths = |n: usize, pow2| {
            runs(&items[..n], pow2)
                .map(<[usize]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(lengths(7, true), [4, 2, 1]);
        assert_eq!(lengths(1000, true), [256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(lengths(7, false), [7]);
        assert_eq!(lengths(1000, false), [256, 256, 256, 232]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "tnc-store-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let url = format!("sqlite://{}", dir.join("tnc.db").display());
        (Store::open(&url).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn audit_chain_detects_edits_deletions_and_insertions() {
        let (store, dir) = temp_store().await;
        for i in 0..5 {
            store
                .audit(1000 + i, "verdict", "dev", &format!("allow {i}"))
                .await
                .unwrap();
        }
        assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
        // Reopening keeps the chain (the migrations do not run twice).
        store.close().await;
        let url = format!("sqlite://{}", dir.join("tnc.db").display());
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.verify_audit().await.unwrap(), Ok(5));

        store
            .execute_raw("UPDATE audit SET detail = 'isolate 2' WHERE seq = 3")
            .await
            .unwrap();
        let err = store.verify_audit().await.unwrap().unwrap_err();
        assert_eq!(err.seq, 3, "{err}");
        store
            .execute_raw("UPDATE audit SET detail = 'allow 2' WHERE seq = 3")
            .await
            .unwrap();
        assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
        store
            .execute_raw("DELETE FROM audit WHERE seq = 2")
            .await
            .unwrap();
        assert_eq!(store.verify_audit().await.unwrap().unwrap_err().seq, 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn device(id: u8) -> DeviceRecord {
        DeviceRecord {
            device_id: [id; 32],
            role: Role::Terminal,
            ek_certificate: vec![1],
            ak_name: vec![0, 11, id],
            ak_public: vec![4],
            state: None,
            last_verdict: None,
            last_seen: 1,
            enrolled_at: 1,
            user: None,
            host: None,
            drift: 0,
        }
    }

    // One thread: the 40 decisions are all queued before the writer runs,
    // so they are committed as one group, device 1's revocation first.
    #[tokio::test]
    async fn decisions_committed_together_extend_one_audit_chain() {
        let (store, dir) = temp_store().await;
        let store = std::sync::Arc::new(store);
        // Device 1 holds a ticket that a decision in the group revokes (its
        // own audit entry lands between the others').
        let one = device(1);
        let credential = CredentialWrite {
            ticket_id: vec![9; 16],
            device_id: [1; 32],
            user: None,
            role: "terminal".into(),
            serial: "01".into(),
            certificate_sha256: "00".repeat(32),
            not_after: 10_000,
        };
        let audit = [("verdict", hex(&[1; 32]), "allow".to_string())];
        store
            .commit_decision(&DecisionWrite {
                at: 100,
                device: Some(&one),
                attestation: None,
                audit: &audit,
                evidence: None,
                credential: Some(&credential),
                revoke: None,
            })
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 1..=40u8 {
            let store = store.clone();
            tasks.spawn(async move {
                let d = device(i);
                let findings = vec!["a finding".to_string()];
                let audit = [
                    ("verdict", hex(&[i; 32]), format!("decision {i}")),
                    ("note", hex(&[i; 32]), format!("second entry {i}")),
                ];
                store
                    .commit_decision(&DecisionWrite {
                        at: 200,
                        device: Some(&d),
                        attestation: Some(AttestationWrite {
                            device_id: [i; 32],
                            verdict: Verdict::Isolate,
                            findings: &findings,
                            counters: None,
                        }),
                        audit: &audit,
                        evidence: None,
                        credential: None,
                        revoke: Some("isolated"),
                    })
                    .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        let entries = store.audit_entries().await.unwrap();
        assert_eq!(
            store.verify_audit().await.unwrap(),
            Ok(1 + 80 + 1),
            "one chain: the first decision, two entries for each of 40, one revocation"
        );
        assert!(entries.iter().any(|e| e.kind == "revoke"));
        assert_eq!(store.revocations_after(0, 10).await.unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn metrics_label_a_verdict_in_one_word() {
        let (store, dir) = temp_store().await;
        let mut d = device(3);
        d.last_verdict = Some(Verdict::NoAccess);
        store.put_device(&d).await.unwrap();
        let g = store.metrics_gauges(10, &BTreeMap::new()).await.unwrap();
        assert_eq!(
            g.devices,
            vec![(("terminal".to_string(), "no-access".to_string()), 1)]
        );
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn devices_and_users_round_trip() {
        let (store, dir) = temp_store().await;
        let mut state = DeviceState {
            reset_count: 1,
            restart_count: 2,
            clock: 3,
            ima_entries: 6,
            ..DeviceState::default()
        };
        state.pcr10.insert(HashAlg::Sha256, vec![0xAB; 32]);
        state.key_applications_seen.insert("/usr/sbin/sshd".into());
        let d = DeviceRecord {
            device_id: [7; 32],
            role: Role::Vm,
            ek_certificate: vec![1, 2, 3],
            ak_name: vec![0, 11, 9],
            ak_public: vec![4, 5],
            state: Some(state),
            last_verdict: Some(Verdict::Isolate),
            last_seen: 99,
            enrolled_at: 98,
            user: None,
            host: None,
            drift: 0,
        };
        store.put_device(&d).await.unwrap();
        let got = store.device(&[7; 32]).await.unwrap().unwrap();
        assert_eq!(got.state, d.state);
        assert_eq!(got.role, Role::Vm);
        assert_eq!(got.last_verdict, Some(Verdict::Isolate));
        assert!(store.device(&[8; 32]).await.unwrap().is_none());
        assert!(store.add_user("alice", "$argon2id$x", 5).await.unwrap());
        assert!(
            !store.add_user("alice", "$argon2id$y", 6).await.unwrap(),
            "no overwrite"
        );
        assert_eq!(
            store.password_hash("alice").await.unwrap().as_deref(),
            Some("$argon2id$x")
        );
        assert!(store.remove_user("alice").await.unwrap());
        assert!(store.forget_device(&[7; 32]).await.unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("tnc.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the store file is private: {mode:o}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
