//! Continuous trust in the store: revocations, the operator's requests for
//! re-assessment, and devices gone stale.
//!
//! A revocation is one row per ticket (and the certificate it is bound to):
//! revoking a device revokes each of its unexpired tickets not revoked yet,
//! so a subscriber (gateway, VM) learns exactly which ticket ids and
//! certificate hashes to refuse and cut, and can forget a row once its
//! ticket expired. Rows are numbered (`seq`); subscribers resume from the
//! last number they acknowledged. Revocations are written in the same
//! transaction as the decision or command that causes them, with an audit
//! entry, before anyone is told.

use super::{
    append_audit_on, begin_write, hex, AttestationWrite, AuditKey, Backend, Store, StoreError,
};
use policy::Verdict;
use sqlx::Row;
use std::collections::BTreeMap;
use tnc_proto::attestation::Role;

/// One revoked ticket: the admin API's type, as the store keeps it.
pub use tnc_proto::admin::Revocation;

/// A device isolated for silence by [`Store::mark_stale`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub device: [u8; 32],
    pub role: Role,
    /// Its last attestation (Unix seconds).
    pub last_seen: u64,
    /// Tickets revoked with it.
    pub revoked: u64,
}

/// An operator's request to re-assess one device, or all (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassessRequest {
    pub seq: i64,
    pub device: Option<[u8; 32]>,
}

/// On `conn`: revokes every unexpired ticket of `device` not revoked yet,
/// with an audit entry if there was any; how many.
///
/// On PostgreSQL the table is locked against other writers first, to the
/// end of the transaction: a row's number is then taken only after every
/// earlier row is committed, so a subscriber that has seen number N has
/// seen every number below it (sequence values are otherwise handed out at
/// insert and may commit out of order between PDPs). SQLite has one writer.
/// The longest reason kept with a revocation, in characters.
const MAX_REASON: usize = 2000;

/// On `conn`: whether any of `devices` holds an unexpired ticket not
/// revoked yet; if so, on PostgreSQL, the revocation table is locked (to the
/// end of the transaction). A transaction that may revoke calls this before
/// anything else it writes, so that every writer takes the lock before the
/// audit chain's next row (the other order deadlocks between PDPs).
pub(super) async fn lock_if_revoking(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    devices: &[[u8; 32]],
    at: u64,
) -> Result<bool, StoreError> {
    let mut any = false;
    for device in devices {
        any |= sqlx::query(
            "SELECT 1 FROM credentials c
             WHERE c.device_id = $1 AND c.not_after > $2
               AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.ticket_id = c.ticket_id)
             LIMIT 1",
        )
        .bind(device.to_vec())
        .bind(at as i64)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        if any {
            break;
        }
    }
    if any && backend == Backend::Postgres {
        sqlx::query("LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await?;
    }
    Ok(any)
}

pub(super) async fn revoke_on(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    key: Option<&AuditKey>,
    device: &[u8; 32],
    at: u64,
    reason: &str,
) -> Result<u64, StoreError> {
    // Most decisions that are not allow find nothing to revoke: no lock
    // for them.
    if !lock_if_revoking(conn, backend, std::slice::from_ref(device), at).await? {
        return Ok(0);
    }
    // Peer text (finding paths) may hold a NUL, which PostgreSQL text
    // refuses, and be long: a frame of the stream holds 64 KiB at most.
    let reason = super::without_nul(reason);
    let reason = match reason.char_indices().nth(MAX_REASON) {
        Some((at, _)) => format!("{}…", &reason[..at]),
        None => reason.into_owned(),
    };
    let reason = reason.as_str();
    let done = sqlx::query(
        "INSERT INTO revocations (at, device_id, ticket_id, certificate_sha256, not_after, reason)
         SELECT $1, c.device_id, c.ticket_id, c.certificate_sha256, c.not_after, $2
         FROM credentials c
         WHERE c.device_id = $3 AND c.not_after > $1
           AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.ticket_id = c.ticket_id)",
    )
    .bind(at as i64)
    .bind(reason)
    .bind(device.to_vec())
    .execute(&mut *conn)
    .await?;
    let n = done.rows_affected();
    if n > 0 {
        append_audit_on(
            conn,
            key,
            at,
            "revoke",
            &hex(device),
            &format!("{n} ticket(s): {reason}"),
        )
        .await?;
    }
    Ok(n)
}

/// A re-assessment request row; its number.
async fn reassess_request_on(
    conn: &mut sqlx::AnyConnection,
    device: Option<&[u8; 32]>,
    at: u64,
) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("INSERT INTO reassess_requests (at, device_id) VALUES ($1, $2) RETURNING seq")
            .bind(at as i64)
            .bind(device.map(|d| d.to_vec()))
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
    )
}

fn revocation_from_row(r: &sqlx::any::AnyRow) -> Result<Revocation, StoreError> {
    let device: Vec<u8> = r.try_get(2)?;
    let ticket: Vec<u8> = r.try_get(3)?;
    Ok(Revocation {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        device: hex(&device),
        ticket: hex(&ticket),
        certificate_sha256: r.try_get(4)?,
        not_after: r.try_get(5)?,
        reason: r.try_get(6)?,
    })
}

const REVOCATION_COLUMNS: &str =
    "seq, at, device_id, ticket_id, certificate_sha256, not_after, reason";

impl Store {
    /// Runs `f` in a write transaction under the audit lock, again (up to 8
    /// times) when another PDP appended to the audit chain first.
    async fn write_audited<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> Fn(
            &'c mut sqlx::AnyConnection,
            Option<&'c AuditKey>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'c>,
        >,
    {
        let _guard = self.audit_lock.lock().await;
        let mut attempts = 0;
        loop {
            let mut tx = begin_write(&self.pool, self.backend).await?;
            match f(&mut tx, self.audit_key.as_deref()).await {
                Ok(v) => {
                    tx.commit().await?;
                    return Ok(v);
                }
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

    /// [`Store::request_reassessment`] and its audit entry (`device-reassess`,
    /// the device or `*`, `detail`) in one transaction.
    pub async fn request_reassessment_audited(
        &self,
        device: Option<&[u8; 32]>,
        at: u64,
        detail: &str,
    ) -> Result<i64, StoreError> {
        let device = device.copied();
        let detail = detail.to_string();
        self.write_audited(move |conn, key| {
            let detail = detail.clone();
            Box::pin(async move {
                let seq = reassess_request_on(conn, device.as_ref(), at).await?;
                let subject = device.map_or_else(|| "*".to_string(), |d| hex(&d));
                append_audit_on(conn, key, at, "device-reassess", &subject, &detail).await?;
                Ok(seq)
            })
        })
        .await
    }

    /// Forgets a device and writes its audit entry (`device-forget`,
    /// `detail`) in one transaction; whether there was one to forget.
    pub async fn forget_device_audited(
        &self,
        id: &[u8; 32],
        at: u64,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let id = *id;
        let detail = detail.to_string();
        self.write_audited(move |conn, key| {
            let detail = detail.clone();
            Box::pin(async move {
                if !super::forget_device_on(conn, &id).await? {
                    return Ok(false);
                }
                append_audit_on(conn, key, at, "device-forget", &hex(&id), &detail).await?;
                Ok(true)
            })
        })
        .await
    }

    /// Revokes every unexpired ticket of `device` (the operator's `device
    /// revoke`); how many.
    pub async fn revoke_device(
        &self,
        device: &[u8; 32],
        at: u64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let device = *device;
        let reason = reason.to_string();
        let backend = self.backend;
        self.write_audited(move |conn, key| {
            let reason = reason.clone();
            Box::pin(async move { revoke_on(conn, backend, key, &device, at, &reason).await })
        })
        .await
    }

    /// Revocations numbered after `seq`, oldest first, at most `limit`.
    pub async fn revocations_after(
        &self,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(revocation_from_row).collect()
    }

    /// A device's revoked tickets, newest first.
    pub async fn revocations_of(&self, device: &[u8; 32]) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE device_id = $1 ORDER BY seq DESC"
        ))
        .bind(device.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(revocation_from_row).collect()
    }

    /// The revocation of this ticket, if it is revoked.
    pub async fn ticket_revocation(
        &self,
        ticket_id: &[u8],
    ) -> Result<Option<Revocation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE ticket_id = $1"
        ))
        .bind(ticket_id.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(revocation_from_row).transpose()
    }

    /// The newest revocation's number (0: none yet).
    pub async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM revocations")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Asks the PDPs to re-assess `device` (None: every open session) at
    /// once; the request's number.
    pub async fn request_reassessment(
        &self,
        device: Option<&[u8; 32]>,
        at: u64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        reassess_request_on(&mut conn, device, at).await
    }

    /// Re-assessment requests numbered after `seq`, oldest first.
    pub async fn reassess_requests_after(
        &self,
        seq: i64,
    ) -> Result<Vec<ReassessRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, device_id FROM reassess_requests WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let device: Option<Vec<u8>> = r.try_get(1)?;
                Ok(ReassessRequest {
                    seq: r.try_get(0)?,
                    device: match device {
                        None => None,
                        Some(d) => Some(d.try_into().map_err(|_| {
                            StoreError::Corrupt("a re-assessment request's device ID".into())
                        })?),
                    },
                })
            })
            .collect()
    }

    /// The newest re-assessment request's number (0: none yet).
    pub async fn last_reassess_seq(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM reassess_requests")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    /// Isolates every device whose standing verdict is allow but whose last
    /// attestation is older than its role's threshold (`stale_after`, in
    /// seconds): an attestation row and an audit entry saying so, and its
    /// tickets revoked, each device in its own transaction. A device another
    /// PDP marked (or that attested) in between is left alone.
    pub async fn mark_stale(
        &self,
        now: u64,
        stale_after: &BTreeMap<Role, u64>,
    ) -> Result<Vec<Stale>, StoreError> {
        let mut out = Vec::new();
        let backend = self.backend;
        for (role, after) in stale_after {
            let Some(before) = now.checked_sub(*after) else {
                continue;
            };
            let rows = sqlx::query(
                "SELECT device_id, last_seen FROM devices
                 WHERE role = $1 AND last_verdict = 'allow' AND last_seen < $2 LIMIT 1000",
            )
            .bind(role.name())
            .bind(before as i64)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let id: Vec<u8> = r.try_get(0)?;
                let last_seen: i64 = r.try_get(1)?;
                let Ok(device) = <[u8; 32]>::try_from(id) else {
                    continue;
                };
                let reason = format!(
                    "stale: not attested for {} s (the limit for a {} is {after} s)",
                    now.saturating_sub(last_seen as u64),
                    role.name()
                );
                let marked = self
                    .write_audited(|conn, key| {
                        let reason = reason.clone();
                        Box::pin(async move {
                            lock_if_revoking(conn, backend, &[device], now).await?;
                            let updated = sqlx::query(
                                "UPDATE devices SET last_verdict = 'isolate'
                                 WHERE device_id = $1 AND last_verdict = 'allow' AND last_seen < $2",
                            )
                            .bind(device.to_vec())
                            .bind(before as i64)
                            .execute(&mut *conn)
                            .await?;
                            if updated.rows_affected() == 0 {
                                return Ok(None);
                            }
                            let findings = [reason.clone()];
                            super::insert_attestation_on(
                                conn,
                                &AttestationWrite {
                                    device_id: device,
                                    verdict: Verdict::Isolate,
                                    findings: &findings,
                                    counters: None,
                                },
                                now,
                            )
                            .await?;
                            append_audit_on(
                                conn,
                                key,
                                now,
                                "verdict",
                                &hex(&device),
                                &format!("isolate: {reason}"),
                            )
                            .await?;
                            Ok(Some(revoke_on(conn, backend, key, &device, now, &reason).await?))
                        })
                    })
                    .await?;
                if let Some(revoked) = marked {
                    out.push(Stale {
                        device,
                        role: *role,
                        last_seen: last_seen as u64,
                        revoked,
                    });
                }
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Records that subscriber `name` (a VM's device ID, a gateway's name)
    /// applied every revocation up to `seq`; an older number changes
    /// nothing. Whether it moved.
    pub async fn record_ack(
        &self,
        name: &str,
        role: &str,
        seq: i64,
        at: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO subscribers (name, role, acked, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, acked = excluded.acked,
                at = excluded.at
             WHERE subscribers.acked < excluded.acked",
        )
        .bind(name)
        .bind(role)
        .bind(seq)
        .bind(at as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The subscribers and what they acknowledged: (name, role, seq, at).
    pub async fn subscribers(&self) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, role, acked, at FROM subscribers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// A one-time enrolment token for gateway `name` (its SHA-256, hex),
    /// valid until `expires`; replaces an unused one of the same name.
    pub async fn add_enrolment_token(
        &self,
        name: &str,
        sha256: &str,
        expires: u64,
        at: u64,
    ) -> Result<(), StoreError> {
        let name_owned = name.to_string();
        let sha = sha256.to_string();
        self.write_audited(move |conn, key| {
            let (name, sha) = (name_owned.clone(), sha.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO enrolment_tokens (name, sha256, expires, used_at)
                     VALUES ($1, $2, $3, NULL)
                     ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256,
                        expires = excluded.expires, used_at = NULL",
                )
                .bind(&name)
                .bind(&sha)
                .bind(expires as i64)
                .execute(&mut *conn)
                .await?;
                append_audit_on(
                    conn,
                    key,
                    at,
                    "gateway-token",
                    &name,
                    &format!("one-time enrolment token, valid until {expires}"),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// A new one-time token for gateway `name`, valid `valid_secs` from
    /// `now`: 24 random bytes, hex; only its SHA-256 is stored.
    pub async fn new_enrolment_token(
        &self,
        name: &str,
        valid_secs: u64,
        now: u64,
    ) -> Result<String, StoreError> {
        let mut raw = [0u8; 24];
        pki::rand::SecureRandom::fill(&pki::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| StoreError::Corrupt("the system's random source failed".into()))?;
        let token = hex(&raw);
        let sha = hex(&policy::HashAlg::Sha256.digest(token.as_bytes()));
        self.add_enrolment_token(name, &sha, now + valid_secs, now)
            .await?;
        Ok(token)
    }

    /// Uses up gateway `name`'s token if its SHA-256 is `sha256` (compared
    /// in constant time), unused and unexpired at `now`, with an audit entry.
    pub async fn take_enrolment_token(
        &self,
        name: &str,
        sha256: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        let name_owned = name.to_string();
        let presented = *sha256;
        self.write_audited(move |conn, key| {
            let name = name_owned.clone();
            Box::pin(async move {
                let row = sqlx::query(
                    "SELECT sha256 FROM enrolment_tokens
                     WHERE name = $1 AND used_at IS NULL AND expires >= $2",
                )
                .bind(&name)
                .bind(now as i64)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let stored: String = row.try_get(0)?;
                let matches = policy::digest::from_hex(&stored)
                    .is_some_and(|s| policy::quote::constant_time_eq(&s, &presented));
                if !matches {
                    return Ok(false);
                }
                // Used once: of two enrolments racing with the token, one
                // updates the row.
                let used = sqlx::query(
                    "UPDATE enrolment_tokens SET used_at = $2 WHERE name = $1 AND used_at IS NULL",
                )
                .bind(&name)
                .bind(now as i64)
                .execute(&mut *conn)
                .await?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
                append_audit_on(
                    conn,
                    key,
                    now,
                    "gateway-enrol",
                    &name,
                    "enrolment token used",
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }
}

impl Store {
    /// See [`super::PdpStore::take_lease`]: one statement, so two PDPs
    /// racing for an expired lease cannot both get it.
    pub async fn take_lease(
        &self,
        device: &[u8; 32],
        owner: &str,
        now: u64,
        expires: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO leases (device_id, owner, expires) VALUES ($1, $2, $3)
             ON CONFLICT (device_id) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
             WHERE leases.owner = excluded.owner OR leases.expires < $4",
        )
        .bind(device.to_vec())
        .bind(owner)
        .bind(expires as i64)
        .bind(now as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Who holds the lease on `device`, until when.
    pub async fn lease(&self, device: &[u8; 32]) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query("SELECT owner, expires FROM leases WHERE device_id = $1")
            .bind(device.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}

/// Subscribers' acknowledgements and gateways' enrolment tokens (migration 5).
pub(super) const SUBSCRIBERS: &str = "CREATE TABLE subscribers (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        acked BIGINT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE TABLE enrolment_tokens (
        name TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        expires BIGINT NOT NULL,
        used_at BIGINT
    )";

/// The revocation and re-assessment tables (migration 4).
pub(super) const MIGRATION: &str = "CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at BIGINT NOT NULL,
        device_id BLOB NOT NULL,
        ticket_id BLOB NOT NULL UNIQUE,
        certificate_sha256 TEXT NOT NULL,
        not_after BIGINT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX revocations_device ON revocations (device_id);
    CREATE TABLE reassess_requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at BIGINT NOT NULL,
        device_id BLOB
    )";
