//! The store in memory: what [`PdpStore`] asks for, kept in maps behind one
//! lock, with the same audit hash chain as the durable store. Nothing
//! survives the process. Its failure switches make "the store failed" a
//! case the session's unit tests can reach.

use super::{
    chain_hash, hex, AttestationRecord, AuditEntry, DecisionWrite, PdpStore, ReassessRequest,
    Revocation, Stale, StoreError, StoreFuture, StoredEvidence, GENESIS,
};
use crate::devices::DeviceRecord;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tnc_proto::attestation::Role;

#[derive(Debug, Default)]
struct State {
    devices: HashMap<[u8; 32], DeviceRecord>,
    /// Per role, every version loaded: (version, TOML).
    policies: BTreeMap<Role, Vec<(i64, String)>>,
    next_policy: i64,
    /// The last attestation's number (rows are numbered as in the table).
    next_attestation: i64,
    users: BTreeMap<String, String>,
    attestations: HashMap<[u8; 32], Vec<AttestationRecord>>,
    evidence: HashMap<[u8; 32], StoredEvidence>,
    credentials: Vec<super::CredentialWrite>,
    audit: Vec<AuditEntry>,
    revocations: Vec<Revocation>,
    reassess: Vec<ReassessRequest>,
    /// Subscriber name -> the last revocation it acknowledged.
    acked: BTreeMap<String, i64>,
    /// Gateway name -> (token SHA-256, expires, used).
    tokens: BTreeMap<String, ([u8; 32], u64, bool)>,
    /// Device -> (owner, expires).
    leases: HashMap<[u8; 32], (String, u64)>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    fail_reads: AtomicBool,
    fail_policy_reads: AtomicBool,
    fail_commits: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on every read fails (as a database that went away).
    pub fn fail_reads(&self, fail: bool) {
        self.fail_reads.store(fail, Ordering::SeqCst);
    }

    /// From now on reading the policy versions fails, and nothing else (a
    /// store that gave the device and then went away).
    pub fn fail_policy_reads(&self, fail: bool) {
        self.fail_policy_reads.store(fail, Ordering::SeqCst);
    }

    /// From now on every decision's commit fails (as a full disk).
    pub fn fail_commits(&self, fail: bool) {
        self.fail_commits.store(fail, Ordering::SeqCst);
    }

    fn read_check(&self) -> Result<(), StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt(
                "the in-memory store is set to fail reads".into(),
            ));
        }
        Ok(())
    }

    /// Records `body` as the role's newest reference values; its version.
    pub fn load_policy(&self, role: Role, body: &str) -> i64 {
        let mut s = self.state();
        s.next_policy += 1;
        let version = s.next_policy;
        s.policies
            .entry(role)
            .or_default()
            .push((version, body.to_string()));
        version
    }

    /// Inserts or replaces a device.
    pub fn put_device(&self, d: DeviceRecord) {
        self.state().devices.insert(d.device_id, d);
    }

    pub fn device_record(&self, id: &[u8; 32]) -> Option<DeviceRecord> {
        self.state().devices.get(id).cloned()
    }

    pub fn add_user(&self, name: &str, password_hash: &str) {
        self.state()
            .users
            .insert(name.to_string(), password_hash.to_string());
    }

    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        self.state().audit.clone()
    }

    /// A device's attestations, oldest first.
    pub fn attestations(&self, id: &[u8; 32]) -> Vec<AttestationRecord> {
        self.state()
            .attestations
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// The credentials issued, oldest first.
    pub fn credentials(&self) -> Vec<super::CredentialWrite> {
        self.state().credentials.clone()
    }

    pub fn evidence(&self, id: &[u8; 32]) -> Option<StoredEvidence> {
        self.state().evidence.get(id).cloned()
    }

    /// The revoked tickets, oldest first.
    pub fn revocations(&self) -> Vec<Revocation> {
        self.state().revocations.clone()
    }

    /// Revokes the device's unexpired tickets (as `device revoke`); how many.
    pub fn revoke_device(&self, device: &[u8; 32], at: u64, reason: &str) -> u64 {
        self.state().revoke(device, at, reason)
    }

    /// What each subscriber acknowledged.
    pub fn acks(&self) -> BTreeMap<String, i64> {
        self.state().acked.clone()
    }

    /// A one-time enrolment token for gateway `name` (its SHA-256).
    pub fn add_enrolment_token(&self, name: &str, sha256: [u8; 32], expires: u64) {
        self.state()
            .tokens
            .insert(name.to_string(), (sha256, expires, false));
    }

    /// Asks for a re-assessment of `device` (None: all), as `device reassess`.
    pub fn request_reassessment(&self, device: Option<[u8; 32]>) -> i64 {
        let mut s = self.state();
        let seq = s.reassess.last().map_or(1, |r| r.seq + 1);
        s.reassess.push(ReassessRequest { seq, device });
        seq
    }
}

impl State {
    /// As the durable store's `revoke_on`: each unexpired ticket of the
    /// device not revoked yet, with an audit entry if any.
    fn revoke(&mut self, device: &[u8; 32], at: u64, reason: &str) -> u64 {
        let fresh: Vec<Revocation> = self
            .credentials
            .iter()
            .filter(|c| &c.device_id == device && c.not_after > at as i64)
            .filter(|c| {
                let t = hex(&c.ticket_id);
                !self.revocations.iter().any(|r| r.ticket == t)
            })
            .map(|c| Revocation {
                seq: 0,
                at: at as i64,
                device: hex(device),
                ticket: hex(&c.ticket_id),
                certificate_sha256: c.certificate_sha256.clone(),
                not_after: c.not_after,
                reason: reason.to_string(),
            })
            .collect();
        let n = fresh.len() as u64;
        for mut r in fresh {
            r.seq = self.revocations.last().map_or(1, |l| l.seq + 1);
            self.revocations.push(r);
        }
        if n > 0 {
            self.append_audit(
                at,
                "revoke",
                &hex(device),
                &format!("{n} ticket(s): {reason}"),
            );
        }
        n
    }

    fn append_audit(&mut self, at: u64, kind: &str, subject: &str, detail: &str) -> i64 {
        let (seq, prev) = match self.audit.last() {
            Some(e) => (e.seq + 1, e.hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let hash = chain_hash(&prev, seq, at as i64, kind, subject, detail);
        self.audit.push(AuditEntry {
            seq,
            at: at as i64,
            kind: kind.to_string(),
            subject: subject.to_string(),
            detail: detail.to_string(),
            hash,
        });
        seq
    }
}

impl PdpStore for MemoryStore {
    fn device<'a>(&'a self, id: &'a [u8; 32]) -> StoreFuture<'a, Option<DeviceRecord>> {
        let r = self
            .read_check()
            .map(|()| self.state().devices.get(id).cloned());
        Box::pin(std::future::ready(r))
    }

    fn policy_versions(&self) -> StoreFuture<'_, BTreeMap<Role, i64>> {
        if self.fail_policy_reads.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(StoreError::Corrupt(
                "the in-memory store is set to fail policy reads".into(),
            ))));
        }
        let r = self.read_check().map(|()| {
            self.state()
                .policies
                .iter()
                .filter_map(|(role, v)| Some((*role, v.last()?.0)))
                .collect()
        });
        Box::pin(std::future::ready(r))
    }

    fn current_policies(&self) -> StoreFuture<'_, BTreeMap<Role, (i64, String)>> {
        let r = self.read_check().map(|()| {
            self.state()
                .policies
                .iter()
                .filter_map(|(role, v)| Some((*role, v.last()?.clone())))
                .collect()
        });
        Box::pin(std::future::ready(r))
    }

    fn commit_decision<'a>(&'a self, w: &'a DecisionWrite<'a>) -> StoreFuture<'a, ()> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(StoreError::Commit(
                "the in-memory store is set to fail commits".into(),
            ))));
        }
        let mut s = self.state();
        if let Some(d) = w.device {
            s.devices.insert(d.device_id, d.clone());
        }
        if let Some(a) = &w.attestation {
            s.next_attestation += 1;
            let id = s.next_attestation;
            s.attestations
                .entry(a.device_id)
                .or_default()
                .push(AttestationRecord {
                    id,
                    at: w.at as i64,
                    verdict: a.verdict.label().to_string(),
                    findings: a.findings.to_vec(),
                });
        }
        if let Some(e) = &w.evidence {
            let kept = s.evidence.entry(e.device_id).or_insert(StoredEvidence {
                at: 0,
                event_log: Vec::new(),
                ima: Vec::new(),
                ima_from: e.ima_offset as i64,
                ima_entries: e.ima_offset as i64,
            });
            // The entries continue the kept ones, or start a new list.
            if e.ima_offset as i64 != kept.ima_entries {
                kept.ima.clear();
                kept.ima_from = e.ima_offset as i64;
            }
            kept.at = w.at as i64;
            kept.event_log = e.event_log.to_vec();
            kept.ima.extend_from_slice(e.ima);
            kept.ima_entries = e.ima_end as i64;
        }
        if let Some(c) = w.credential {
            s.credentials.push(c.clone());
        }
        for (kind, subject, detail) in w.audit {
            s.append_audit(w.at, kind, subject, detail);
        }
        if let (Some(reason), Some(a)) = (w.revoke, &w.attestation) {
            s.revoke(&a.device_id, w.at, reason);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn password_hash<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<String>> {
        let r = self
            .read_check()
            .map(|()| self.state().users.get(user).cloned());
        Box::pin(std::future::ready(r))
    }

    fn audit<'a>(
        &'a self,
        at: u64,
        kind: &'a str,
        subject: &'a str,
        detail: &'a str,
    ) -> StoreFuture<'a, i64> {
        let seq = self.state().append_audit(at, kind, subject, detail);
        Box::pin(std::future::ready(Ok(seq)))
    }

    fn ticket_revocation<'a>(&'a self, ticket_id: &'a [u8]) -> StoreFuture<'a, Option<Revocation>> {
        let t = hex(ticket_id);
        let r = self.read_check().map(|()| {
            self.state()
                .revocations
                .iter()
                .find(|r| r.ticket == t)
                .cloned()
        });
        Box::pin(std::future::ready(r))
    }

    fn revocations_after(&self, seq: i64, limit: i64) -> StoreFuture<'_, Vec<Revocation>> {
        let r = self.read_check().map(|()| {
            self.state()
                .revocations
                .iter()
                .filter(|r| r.seq > seq)
                .take(limit.max(0) as usize)
                .cloned()
                .collect()
        });
        Box::pin(std::future::ready(r))
    }

    fn reassess_requests_after(&self, seq: i64) -> StoreFuture<'_, Vec<ReassessRequest>> {
        let r = self.read_check().map(|()| {
            self.state()
                .reassess
                .iter()
                .filter(|r| r.seq > seq)
                .cloned()
                .collect()
        });
        Box::pin(std::future::ready(r))
    }

    fn last_reassess_seq(&self) -> StoreFuture<'_, i64> {
        let r = self
            .read_check()
            .map(|()| self.state().reassess.last().map_or(0, |r| r.seq));
        Box::pin(std::future::ready(r))
    }

    fn last_revocation_seq(&self) -> StoreFuture<'_, i64> {
        let r = self
            .read_check()
            .map(|()| self.state().revocations.last().map_or(0, |r| r.seq));
        Box::pin(std::future::ready(r))
    }

    fn take_lease<'a>(
        &'a self,
        device: &'a [u8; 32],
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> StoreFuture<'a, bool> {
        let mut s = self.state();
        let free = match s.leases.get(device) {
            None => true,
            Some((o, exp)) => o == owner || *exp < now,
        };
        if free {
            s.leases.insert(*device, (owner.to_string(), expires));
        }
        Box::pin(std::future::ready(Ok(free)))
    }

    fn record_ack<'a>(
        &'a self,
        name: &'a str,
        _role: &'a str,
        seq: i64,
        _at: u64,
    ) -> StoreFuture<'a, bool> {
        let mut s = self.state();
        let acked = s.acked.entry(name.to_string()).or_insert(i64::MIN);
        let moved = *acked < seq;
        *acked = (*acked).max(seq);
        Box::pin(std::future::ready(Ok(moved)))
    }

    fn take_enrolment_token<'a>(
        &'a self,
        name: &'a str,
        sha256: &'a [u8; 32],
        now: u64,
    ) -> StoreFuture<'a, bool> {
        let mut s = self.state();
        let ok = match s.tokens.get_mut(name) {
            Some((hash, expires, used)) if !*used && *expires >= now && hash == sha256 => {
                *used = true;
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(ok)))
    }

    fn mark_stale<'a>(
        &'a self,
        now: u64,
        stale_after: &'a BTreeMap<Role, u64>,
    ) -> StoreFuture<'a, Vec<Stale>> {
        if let Err(e) = self.read_check() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let mut s = self.state();
        let stale: Vec<([u8; 32], Role, u64, u64)> = s
            .devices
            .values()
            .filter(|d| d.last_verdict == Some(policy::Verdict::Allow))
            .filter_map(|d| {
                let after = *stale_after.get(&d.role)?;
                (now.checked_sub(after)? > d.last_seen).then_some((
                    d.device_id,
                    d.role,
                    d.last_seen,
                    after,
                ))
            })
            .collect();
        let mut out = Vec::new();
        for (id, role, last_seen, after) in stale {
            let reason = format!(
                "stale: not attested for {} s (the limit for a {} is {after} s)",
                now - last_seen,
                role.name()
            );
            if let Some(d) = s.devices.get_mut(&id) {
                d.last_verdict = Some(policy::Verdict::Isolate);
            }
            s.next_attestation += 1;
            let row = s.next_attestation;
            s.attestations
                .entry(id)
                .or_default()
                .push(AttestationRecord {
                    id: row,
                    at: now as i64,
                    verdict: "isolate".into(),
                    findings: vec![reason.clone()],
                });
            s.append_audit(now, "verdict", &hex(&id), &format!("isolate: {reason}"));
            let revoked = s.revoke(&id, now, &reason);
            out.push(Stale {
                device: id,
                role,
                last_seen,
                revoked,
            });
        }
        Box::pin(std::future::ready(Ok(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_audit_chain_verifies_like_the_durable_one() {
        let m = MemoryStore::new();
        m.audit(1, "user-add", "alice", "").await.unwrap();
        m.audit(2, "verdict", "dev", "allow: ok").await.unwrap();
        assert_eq!(
            super::super::verify_chain_keyed(&m.audit_entries(), None),
            Ok(2)
        );
        let mut edited = m.audit_entries();
        edited[0].detail = "x".into();
        assert!(super::super::verify_chain_keyed(&edited, None).is_err());
    }

    #[tokio::test]
    async fn memory_policy_versions_follow_loads() {
        let m = MemoryStore::new();
        assert!(m.policy_versions().await.unwrap().is_empty());
        m.load_policy(Role::Terminal, "a");
        let v2 = m.load_policy(Role::Terminal, "b");
        assert_eq!(m.policy_versions().await.unwrap()[&Role::Terminal], v2);
        assert_eq!(m.current_policies().await.unwrap()[&Role::Terminal].1, "b");
        m.fail_reads(true);
        assert!(m.policy_versions().await.is_err());
    }
}
