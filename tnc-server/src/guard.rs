//! Password guessing, slowed and recorded. Wrong SASL passwords are counted
//! per user name and per peer address (IPv6 per /64) in bounded tables: each
//! key has a bucket of `burst` wrong guesses refilled at `per_minute`; a key
//! whose bucket is empty is locked (its attempts fail without a password
//! check) until a guess has dripped back in, and every wrong guess is
//! answered after a back-off that doubles with the key's recent failures.
//! User names are counted whether or not the user exists, so a lock reveals
//! nothing about which names are real. Failures go to the audit log at most
//! once a minute per address, with a count.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys a table holds at most; when full, the keys whose buckets are full
/// again go first, then new keys are refused a password check (locked).
const MAX_KEYS: usize = 65_536;
/// User names named in one address's audit entry at most.
const AUDIT_USERS: usize = 5;
/// The longest back-off before a wrong guess is answered.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// `[auth]`'s guessing limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuessLimits {
    /// Wrong guesses a user name or an address may make per minute once its
    /// burst is spent; 0 turns the guard off.
    pub per_minute: u32,
    /// Wrong guesses allowed before the rate applies.
    pub burst: u32,
}

impl Default for GuessLimits {
    fn default() -> Self {
        Self {
            per_minute: 30,
            burst: 10,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Wrong guesses since the last success or a quiet minute (back-off).
    recent: u32,
}

/// Failed logins of one address not yet in the audit log.
#[derive(Debug, Default)]
struct Unaudited {
    since: Option<Instant>,
    count: u64,
    users: BTreeSet<String>,
}

/// What [`GuessGuard::check`] says of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Check the password.
    Check,
    /// Locked: fail it without checking (the user name or the address has
    /// spent its guesses).
    Locked,
}

#[derive(Debug, Default)]
pub struct GuessGuard {
    limits: GuessLimits,
    users: Mutex<HashMap<String, Bucket>>,
    addresses: Mutex<HashMap<IpAddr, Bucket>>,
    unaudited: Mutex<HashMap<IpAddr, Unaudited>>,
}

/// An audit entry to write: (subject, detail).
pub type AuditLine = (String, String);

impl GuessGuard {
    pub fn new(limits: GuessLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Before a password check: may `user` from `peer` try now?
    pub fn check(&self, user: &str, peer: IpAddr, now: Instant) -> Admission {
        if self.limits.per_minute == 0 {
            return Admission::Check;
        }
        let user_ok = self.has_guess(&self.users, user.to_string(), now);
        let addr_ok = self.has_guess(&self.addresses, key(peer), now);
        if user_ok && addr_ok {
            Admission::Check
        } else {
            Admission::Locked
        }
    }

    /// After a wrong password (`checked`) or a locked attempt: a checked
    /// guess is spent (a locked one was no guess: the lock ends as the
    /// bucket refills, however often the locked door is tried), and the
    /// answer waits the returned back-off. The audit entry to write, if
    /// this address's last one is a minute old.
    pub fn failed(
        &self,
        user: &str,
        peer: IpAddr,
        now: Instant,
        checked: bool,
    ) -> (Duration, Option<AuditLine>) {
        let mut backoff = Duration::ZERO;
        if self.limits.per_minute != 0 {
            let a = self.spend(&self.users, user.to_string(), now, checked);
            let b = self.spend(&self.addresses, key(peer), now, checked);
            backoff = a.max(b);
        }
        (backoff, self.note(user, key(peer), now))
    }

    /// A correct password: the user's back-off starts again (its spent
    /// guesses still drip back at the rate, so a guesser cannot reset them
    /// with an account of his own).
    pub fn succeeded(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = users.get_mut(user) {
            b.recent = 0;
        }
    }

    /// The audit entries of failures not yet written (at shutdown).
    pub fn drain_audit(&self) -> Vec<AuditLine> {
        let mut unaudited = self.unaudited.lock().unwrap_or_else(|p| p.into_inner());
        unaudited
            .drain()
            .filter(|(_, u)| u.count > 0)
            .map(|(addr, u)| line(addr, &u))
            .collect()
    }

    fn has_guess<K: std::hash::Hash + Eq>(
        &self,
        table: &Mutex<HashMap<K, Bucket>>,
        k: K,
        now: Instant,
    ) -> bool {
        let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get_mut(&k) {
            Some(b) => {
                self.refill(b, now);
                b.tokens >= 1.0
            }
            // Unknown keys have their whole burst, unless the table is full
            // of keys that are all still spending.
            None => table.len() < MAX_KEYS || self.prune(&mut table, now),
        }
    }

    fn spend<K: std::hash::Hash + Eq>(
        &self,
        table: &Mutex<HashMap<K, Bucket>>,
        k: K,
        now: Instant,
        checked: bool,
    ) -> Duration {
        let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_KEYS && !table.contains_key(&k) && !self.prune(&mut table, now) {
            return MAX_BACKOFF;
        }
        let burst = f64::from(self.limits.burst.max(1));
        let b = table.entry(k).or_insert(Bucket {
            tokens: burst,
            at: now,
            recent: 0,
        });
        self.refill(b, now);
        if checked {
            b.tokens = (b.tokens - 1.0).max(0.0);
        }
        b.recent = b.recent.saturating_add(1);
        // 0, 0, 0, then 125 ms doubling: a typo or two costs nothing.
        match b.recent {
            0..=3 => Duration::ZERO,
            n => (Duration::from_millis(125) * 2u32.saturating_pow(n - 4)).min(MAX_BACKOFF),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let burst = f64::from(self.limits.burst.max(1));
        let elapsed = now.saturating_duration_since(b.at);
        b.tokens = (b.tokens + elapsed.as_secs_f64() * f64::from(self.limits.per_minute) / 60.0)
            .min(burst);
        if elapsed >= Duration::from_secs(60) {
            b.recent = 0;
        }
        b.at = now;
    }

    /// Drops keys whose buckets are full again; whether there is room now.
    fn prune<K>(&self, table: &mut HashMap<K, Bucket>, now: Instant) -> bool {
        let burst = f64::from(self.limits.burst.max(1));
        let rate = f64::from(self.limits.per_minute) / 60.0;
        table.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
        table.len() < MAX_KEYS
    }

    fn note(&self, user: &str, addr: IpAddr, now: Instant) -> Option<AuditLine> {
        let mut unaudited = self.unaudited.lock().unwrap_or_else(|p| p.into_inner());
        if unaudited.len() >= MAX_KEYS && !unaudited.contains_key(&addr) {
            // Counted in the tracing log only; the table stays bounded.
            return None;
        }
        let u = unaudited.entry(addr).or_default();
        u.count += 1;
        if u.users.len() < AUDIT_USERS {
            u.users.insert(user.to_string());
        }
        match u.since {
            // The first failure of a quiet address is written at once.
            None => {
                let out = line(addr, u);
                *u = Unaudited {
                    since: Some(now),
                    ..Unaudited::default()
                };
                Some(out)
            }
            Some(since) if now.saturating_duration_since(since) >= Duration::from_secs(60) => {
                let out = line(addr, u);
                *u = Unaudited {
                    since: Some(now),
                    ..Unaudited::default()
                };
                Some(out)
            }
            Some(_) => None,
        }
    }
}

fn line(addr: IpAddr, u: &Unaudited) -> AuditLine {
    let users: Vec<String> = u
        .users
        .iter()
        .map(|n| {
            let mut s = String::new();
            crate::log::escape_into(&mut s, &format!("{n:?}"));
            s
        })
        .collect();
    (
        addr.to_string(),
        format!(
            "{} failed SASL login{} (users {})",
            u.count,
            if u.count == 1 { "" } else { "s" },
            users.join(", ")
        ),
    )
}

fn key(peer: IpAddr) -> IpAddr {
    crate::address::counted_as(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> GuessGuard {
        GuessGuard::new(GuessLimits::default())
    }

    /// Wrong guesses as fast as the guard lets them through, for a minute:
    /// the goal is at most 60 per key.
    fn guesses_in_a_minute(
        g: &GuessGuard,
        user: impl Fn(u32) -> String,
        addr: impl Fn(u32) -> IpAddr,
    ) -> u32 {
        let start = Instant::now();
        let mut checked = 0;
        for ms in (0..60_000).step_by(10) {
            let now = start + Duration::from_millis(ms);
            let (u, a) = (user(ms as u32), addr(ms as u32));
            let ok = g.check(&u, a, now) == Admission::Check;
            checked += u32::from(ok);
            let _ = g.failed(&u, a, now, ok);
        }
        checked
    }

    #[test]
    fn one_address_guessing_one_user_gets_at_most_60_a_minute() {
        let n = guesses_in_a_minute(
            &guard(),
            |_| "alice".into(),
            |_| "192.0.2.1".parse().unwrap(),
        );
        assert!((30..=60).contains(&n), "{n}");
    }

    #[test]
    fn many_addresses_guessing_one_user_are_held_by_the_user_key() {
        let n = guesses_in_a_minute(
            &guard(),
            |_| "alice".into(),
            |i| IpAddr::from([198, 51, (i >> 8) as u8, i as u8]),
        );
        assert!(n <= 60, "{n}");
    }

    #[test]
    fn one_address_spraying_many_users_is_held_by_the_address_key() {
        let n = guesses_in_a_minute(
            &guard(),
            |i| format!("user{i}"),
            |_| "192.0.2.1".parse().unwrap(),
        );
        assert!(n <= 60, "{n}");
        // An IPv6 /64 is one address.
        let n = guesses_in_a_minute(
            &guard(),
            |i| format!("user{i}"),
            |i| format!("2001:db8::{:x}", i + 1).parse().unwrap(),
        );
        assert!(n <= 60, "{n}");
    }

    #[test]
    fn back_off_grows_then_caps_and_a_quiet_minute_forgives() {
        let g = guard();
        let a: IpAddr = "192.0.2.9".parse().unwrap();
        let t = Instant::now();
        let waits: Vec<Duration> = (0..10).map(|_| g.failed("bob", a, t, true).0).collect();
        assert_eq!(waits[..3], [Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(125));
        assert_eq!(waits[4], Duration::from_millis(250));
        assert_eq!(waits[9], MAX_BACKOFF);
        assert_eq!(g.check("bob", a, t), Admission::Locked);
        // Someone else from elsewhere is not locked by bob's guesser...
        assert_eq!(
            g.check("carol", "192.0.2.10".parse().unwrap(), t),
            Admission::Check
        );
        // ...and bob can try again once guesses have dripped back.
        let later = t + Duration::from_secs(61);
        assert_eq!(g.check("bob", a, later), Admission::Check);
        assert_eq!(g.failed("bob", a, later, true).0, Duration::ZERO);
    }

    #[test]
    fn the_audit_gets_one_line_per_address_per_minute() {
        let g = guard();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        let first = g
            .failed("alice\nforged", a, t, true)
            .1
            .expect("the first is written");
        assert!(
            first.1.contains("1 failed SASL login") && first.1.contains("\\n"),
            "{first:?}"
        );
        assert!(!first.1.contains('\n'));
        let within: Vec<_> = (1..500)
            .filter_map(|i| {
                g.failed(&format!("u{i}"), a, t + Duration::from_millis(i), true)
                    .1
            })
            .collect();
        assert!(within.is_empty(), "{within:?}");
        let next = g
            .failed("x", a, t + Duration::from_secs(61), true)
            .1
            .unwrap();
        assert!(next.1.starts_with("500 failed SASL logins"), "{next:?}");
        g.failed("y", a, t + Duration::from_secs(62), false);
        let rest = g.drain_audit();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].1.starts_with("1 failed"), "{rest:?}");
        assert!(g.drain_audit().is_empty());
    }

    #[test]
    fn off_means_off() {
        let g = GuessGuard::new(GuessLimits {
            per_minute: 0,
            burst: 0,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        for _ in 0..1000 {
            assert_eq!(g.check("alice", a, t), Admission::Check);
            assert_eq!(g.failed("alice", a, t, true).0, Duration::ZERO);
        }
    }
}
