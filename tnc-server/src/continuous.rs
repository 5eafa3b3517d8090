//! Continuous trust: what makes a PDP re-assess its open sessions besides
//! their own interval, and the watcher that finds it in the store.
//!
//! Every PDP process runs one [`watch`] task. It reads the store every
//! `[reassessment] poll_ms`: a new policy version of a role, the operator's
//! `device reassess` requests (a table, so they reach every PDP sharing the
//! store), and, less often, devices gone stale (allowed, but not attested for
//! `stale_intervals` intervals: isolated and their tickets revoked). What
//! concerns open sessions goes out on the context's [`Trigger`] bus; each
//! session task listens and starts a round (SRETRY) when a trigger names it.

use crate::pdp::PdpContext;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tnc_proto::attestation::Role;

/// Why sessions should be re-assessed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The operator asked for this device (`device reassess DEVICE`).
    Device([u8; 32]),
    /// The operator asked for every open session (`device reassess --all`).
    All,
    /// The reference values of this role changed.
    Policy(Role),
}

impl Trigger {
    /// Whether it concerns a session of `device` (hex) in `role`.
    pub fn applies(&self, device: &str, role: Option<Role>) -> bool {
        match self {
            Self::Device(id) => crate::store::hex(id) == device,
            Self::All => true,
            Self::Policy(r) => role == Some(*r),
        }
    }

    /// For the log line of the round it starts.
    pub fn why(&self) -> &'static str {
        match self {
            Self::Device(_) | Self::All => "the operator asked",
            Self::Policy(_) => "the reference values changed",
        }
    }
}

/// How many triggers wait for a slow session before it skips to "all".
pub const TRIGGER_QUEUE: usize = 256;

/// A number in [0, 1) from the PDP's random source, for the jitter.
pub fn unit(rng: &pki::rand::SystemRandom) -> f64 {
    let mut b = [0u8; 4];
    let _ = pki::rand::SecureRandom::fill(rng, &mut b);
    f64::from(u32::from_be_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// Polls the store for what concerns open sessions until `shutdown`; see
/// the module's text. Store errors are logged and the next poll tries again.
pub async fn watch(ctx: Arc<PdpContext>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let poll = ctx.reassessment.poll();
    // Stale devices are looked for every 2 s at most often.
    let stale_every = (Duration::from_secs(2).as_millis() / poll.as_millis().max(1)).max(1) as u64;
    let stale_after: BTreeMap<Role, u64> = [Role::Terminal, Role::Vm]
        .into_iter()
        .filter_map(|r| Some((r, ctx.reassessment.stale_after(r)?)))
        .collect();
    let mut policies = ctx.store.policy_versions().await.ok();
    // Requests made before this PDP started are not its business.
    let mut requests = match ctx.store.last_reassess_seq().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "reading re-assessment requests: from the start");
            0
        }
    };
    let mut revocations = match ctx.store.last_revocation_seq().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "reading the newest revocation");
            0
        }
    };
    ctx.newest_revocation.send_replace(revocations);
    let mut ticks: u64 = 0;
    let mut timer = tokio::time::interval(poll);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let nudged = tokio::select! {
            _ = timer.tick() => false,
            () = ctx.revoked.notified() => true,
            _ = shutdown.changed() => return,
        };
        if *shutdown.borrow() {
            return;
        }
        // Revocations first: this PDP's or another's on the same store.
        match ctx.store.last_revocation_seq().await {
            Ok(newest) if newest > revocations => {
                revocations = newest;
                ctx.newest_revocation.send_replace(revocations);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading revocations"),
        }
        if nudged {
            continue;
        }
        ticks += 1;
        match ctx.store.policy_versions().await {
            Ok(now) => {
                if let Some(before) = &policies {
                    for (role, v) in &now {
                        if before.get(role) != Some(v) {
                            tracing::info!(
                                role = role.name(),
                                version = v,
                                "new reference values: re-assessing the open sessions of the role"
                            );
                            let _ = ctx.triggers.send(Trigger::Policy(*role));
                        }
                    }
                }
                policies = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, "reading policy versions"),
        }
        match ctx.store.reassess_requests_after(requests).await {
            Ok(list) => {
                for r in list {
                    requests = requests.max(r.seq);
                    let t = match r.device {
                        Some(d) => Trigger::Device(d),
                        None => Trigger::All,
                    };
                    tracing::info!(request = r.seq, trigger = ?t, "re-assessment asked for");
                    let _ = ctx.triggers.send(t);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading re-assessment requests"),
        }
        if !stale_after.is_empty() && ticks.is_multiple_of(stale_every) {
            match ctx.store.mark_stale(ctx.now(), &stale_after).await {
                Ok(list) => {
                    if list.iter().any(|s| s.revoked > 0) {
                        ctx.revoked.notify_one();
                    }
                    for s in list {
                        tracing::warn!(
                            device = %crate::store::hex(&s.device),
                            role = s.role.name(),
                            last_attested = s.last_seen,
                            tickets_revoked = s.revoked,
                            "device stale: isolated"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "looking for stale devices"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_name_their_sessions() {
        let id = [7u8; 32];
        let hex = crate::store::hex(&id);
        assert!(Trigger::Device(id).applies(&hex, Some(Role::Vm)));
        assert!(!Trigger::Device([8; 32]).applies(&hex, Some(Role::Vm)));
        assert!(Trigger::All.applies(&hex, None));
        assert!(Trigger::Policy(Role::Vm).applies(&hex, Some(Role::Vm)));
        assert!(!Trigger::Policy(Role::Terminal).applies(&hex, Some(Role::Vm)));
        assert!(!Trigger::Policy(Role::Terminal).applies(&hex, None));
    }

    #[test]
    fn jitter_stays_within_its_share() {
        let r = crate::config::Reassessment {
            interval_secs: 100,
            jitter_percent: 10,
            ..Default::default()
        };
        assert_eq!(r.jittered(None, 0.0), Duration::from_secs(90));
        assert_eq!(r.jittered(None, 0.5), Duration::from_secs(100));
        assert!(r.jittered(None, 0.999_999) < Duration::from_secs(110));
        let rng = pki::rand::SystemRandom::new();
        for _ in 0..1000 {
            let u = unit(&rng);
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.stale_after(Role::Vm), Some(300));
        let never = crate::config::Reassessment {
            stale_intervals: 0,
            ..Default::default()
        };
        assert_eq!(never.stale_after(Role::Vm), None);
    }
}
