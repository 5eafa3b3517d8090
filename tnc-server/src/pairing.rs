//! Pairings: a terminal and a VM authenticate each other on the ShangMi
//! channel with a key the PDP makes for the two of them (issue 12, item 4;
//! `docs/shangmi.md`, "Pairing").
//!
//! A serving VM's control session registers here once it is allowed and
//! holds a certificate from this PDP; it leaves when the session ends. A
//! terminal's session, allowed and holding a ticket that names the VM, asks
//! [`Registry::pair`]: a fresh 128-bit key and id, pushed to the VM over its
//! control session (SRETRY, SDATA; the VM acknowledges in its CDATA) and,
//! once acknowledged, returned for the terminal's RESULT. The VM uses a
//! pairing once, within [`PAIRING_LIFETIME_SECS`].

use pki::rand::SecureRandom;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tnc_proto::credential::Pairing;
use tokio::sync::{mpsc, oneshot};

/// How long a pairing may wait to be used.
pub const PAIRING_LIFETIME_SECS: u64 = 60;
/// How long the terminal's session waits for the VM's acknowledgement.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pairings queued for one VM while a round is under way.
pub const QUEUE: usize = 64;
/// Pairings the registry remembers for the operator (`GET /v1/pairings`).
pub const RECENT: usize = 256;

/// A pairing for a VM's control session to deliver; `done` once the VM
/// acknowledged it.
pub struct Push {
    pub pairing: Pairing,
    pub done: oneshot::Sender<()>,
}

/// A serving VM as the registry knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serving {
    /// Its name in tickets (`[ca] vm_names`).
    pub name: String,
    /// Its device ID (hex).
    pub device: String,
    /// Where it serves channels.
    pub address: String,
    /// Where it serves them over QUIC, if it does.
    pub quic_address: Option<String>,
    /// SHA-256 of the certificate it presents on channels.
    pub certificate_sha256: Vec<u8>,
    /// Unix seconds it registered.
    pub since: u64,
}

struct Link {
    serving: Serving,
    generation: u64,
    push: mpsc::Sender<Push>,
}

/// The VMs serving now, by name.
pub struct Registry {
    vms: Mutex<HashMap<String, Link>>,
    /// The latest pairings asked for, newest first (IDs, never keys).
    recent: Mutex<VecDeque<tnc_proto::admin::PairingRecord>>,
    generation: AtomicU64,
    ack_timeout: Duration,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_ack_timeout(ACK_TIMEOUT)
    }
}

/// A VM's place in the registry; give it back with [`Registry::leave`].
#[derive(Debug)]
pub struct Registration {
    pub name: String,
    generation: u64,
}

/// Why a terminal gets no pairing.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    #[error("{0} is not serving: no open control session from it (is `tnc-client serve` running there, and allowed?)")]
    NotServing(String),
    #[error("{0} did not acknowledge the pairing in time")]
    NoAck(String),
    #[error("{0} has {QUEUE} pairings waiting already; try again")]
    Busy(String),
    #[error("the PDP's random source failed")]
    Random,
}

impl Registry {
    /// A registry whose pairings wait `ack_timeout` for the VM.
    pub fn with_ack_timeout(ack_timeout: Duration) -> Self {
        Self {
            vms: Mutex::default(),
            recent: Mutex::default(),
            generation: AtomicU64::new(0),
            ack_timeout,
        }
    }

    /// How long a pairing waits for the VM's acknowledgement.
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// `serving` takes calls now (a VM that registers again replaces its
    /// older session); pushes arrive on the receiver.
    pub fn register(&self, serving: Serving) -> (Registration, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let name = serving.name.clone();
        self.lock().insert(
            name.clone(),
            Link {
                serving,
                generation,
                push: tx,
            },
        );
        (Registration { name, generation }, rx)
    }

    /// The control session behind `r` ended.
    pub fn leave(&self, r: Registration) {
        let mut vms = self.lock();
        if vms
            .get(&r.name)
            .is_some_and(|l| l.generation == r.generation)
        {
            vms.remove(&r.name);
        }
    }

    /// Who serves as `name` now.
    pub fn serving(&self, name: &str) -> Option<Serving> {
        self.lock()
            .get(name)
            .filter(|l| !l.push.is_closed())
            .map(|l| l.serving.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the operator sees: the VMs serving now (by name) and the
    /// latest pairings.
    pub fn listing(&self) -> tnc_proto::admin::Pairings {
        let mut serving: Vec<_> = self
            .lock()
            .values()
            .filter(|l| !l.push.is_closed())
            .map(|l| tnc_proto::admin::ServingVm {
                name: l.serving.name.clone(),
                device: l.serving.device.clone(),
                address: l.serving.address.clone(),
                quic_address: l.serving.quic_address.clone(),
                since: l.serving.since,
            })
            .collect();
        serving.sort_by(|a, b| a.name.cmp(&b.name));
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        tnc_proto::admin::Pairings { serving, recent }
    }

    fn remember(
        &self,
        id: Option<&[u8]>,
        vm: &str,
        terminal: &str,
        now: u64,
        result: &Result<(), PairingError>,
    ) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_front(tnc_proto::admin::PairingRecord {
            id: id.map(crate::store::hex),
            vm: vm.to_string(),
            terminal: terminal.to_string(),
            at: now,
            expires: now + PAIRING_LIFETIME_SECS,
            outcome: match result {
                Ok(()) => "acknowledged",
                Err(PairingError::NotServing(_)) => "not-serving",
                Err(PairingError::NoAck(_)) => "no-ack",
                Err(PairingError::Busy(_)) => "busy",
                Err(PairingError::Random) => "random",
            }
            .to_string(),
        });
        recent.truncate(RECENT);
    }

    /// A pairing of the terminal `device` (presenting the certificate with
    /// `certificate_sha256`) with the VM `vm`, delivered to the VM and
    /// acknowledged; what the terminal gets.
    pub async fn pair(
        &self,
        vm: &str,
        device: &str,
        certificate_sha256: &[u8],
        now: u64,
        rng: &(dyn SecureRandom + Sync),
    ) -> Result<Pairing, PairingError> {
        let mut id = None;
        let result = self
            .make_pair(vm, device, certificate_sha256, now, rng, &mut id)
            .await;
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        self.remember(id.as_deref(), vm, device, now, &outcome);
        result
    }

    async fn make_pair(
        &self,
        vm: &str,
        device: &str,
        certificate_sha256: &[u8],
        now: u64,
        rng: &(dyn SecureRandom + Sync),
        made: &mut Option<Vec<u8>>,
    ) -> Result<Pairing, PairingError> {
        let (serving, push) = {
            let vms = self.lock();
            let link = vms
                .get(vm)
                .filter(|l| !l.push.is_closed())
                .ok_or_else(|| PairingError::NotServing(vm.to_string()))?;
            (link.serving.clone(), link.push.clone())
        };
        let mut secret = [0u8; 32];
        rng.fill(&mut secret).map_err(|_| PairingError::Random)?;
        let (id, key) = secret.split_at(16);
        *made = Some(id.to_vec());
        let expires = (now + PAIRING_LIFETIME_SECS) as i64;
        let (done, acked) = oneshot::channel();
        push.try_send(Push {
            pairing: Pairing {
                id: id.to_vec(),
                key: key.to_vec(),
                peer: device.to_string(),
                peer_certificate_sha256: certificate_sha256.to_vec(),
                address: None,
                quic_address: None,
                expires,
            },
            done,
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PairingError::Busy(vm.to_string()),
            mpsc::error::TrySendError::Closed(_) => PairingError::NotServing(vm.to_string()),
        })?;
        match tokio::time::timeout(self.ack_timeout, acked).await {
            Ok(Ok(())) => Ok(Pairing {
                id: id.to_vec(),
                key: key.to_vec(),
                peer: serving.name,
                peer_certificate_sha256: serving.certificate_sha256,
                address: Some(serving.address),
                quic_address: serving.quic_address,
                expires,
            }),
            // The VM's session ended before it acknowledged.
            Ok(Err(_)) => Err(PairingError::NotServing(vm.to_string())),
            Err(_) => Err(PairingError::NoAck(vm.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(name: &str) -> Serving {
        Serving {
            name: name.into(),
            device: "aa".into(),
            address: "127.0.0.1:2710".into(),
            quic_address: None,
            certificate_sha256: vec![9; 32],
            since: 5,
        }
    }

    #[tokio::test]
    async fn a_pairing_reaches_the_vm_and_the_terminal_with_one_key() {
        let registry = Registry::default();
        let rng = pki::rand::SystemRandom::new();
        let (reg, mut rx) = registry.register(serving("vm-1"));
        let vm = tokio::spawn(async move {
            let push = rx.recv().await.unwrap();
            let p = push.pairing.clone();
            push.done.send(()).unwrap();
            p
        });
        let t = registry
            .pair("vm-1", "bb", &[1; 32], 1_000, &rng)
            .await
            .unwrap();
        let v = vm.await.unwrap();
        assert_eq!((t.id.len(), t.key.len()), (16, 16));
        assert_eq!((&t.id, &t.key), (&v.id, &v.key));
        assert_eq!((t.peer.as_str(), v.peer.as_str()), ("vm-1", "bb"));
        assert_eq!(t.peer_certificate_sha256, vec![9; 32]);
        assert_eq!(v.peer_certificate_sha256, vec![1; 32]);
        assert_eq!(t.address.as_deref(), Some("127.0.0.1:2710"));
        assert_eq!(t.expires, 1_060);
        // Another pairing gets another key.
        let (_, mut rx2) = {
            registry.leave(reg);
            registry.register(serving("vm-1"))
        };
        let vm2 = tokio::spawn(async move {
            let push = rx2.recv().await.unwrap();
            push.done.send(()).unwrap();
            rx2
        });
        let t2 = registry
            .pair("vm-1", "bb", &[1; 32], 1_000, &rng)
            .await
            .unwrap();
        // Its control session stays.
        let _rx2 = vm2.await.unwrap();
        assert_ne!(t2.key, t.key);
        // The operator's listing: the VM serving, both pairings by ID,
        // newest first, and no key anywhere in it.
        let listing = registry.listing();
        assert_eq!(listing.serving.len(), 1);
        assert_eq!(
            (listing.serving[0].name.as_str(), listing.serving[0].since),
            ("vm-1", 5)
        );
        let ids: Vec<_> = listing.recent.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            ids,
            [
                Some(crate::store::hex(&t2.id)),
                Some(crate::store::hex(&t.id))
            ]
        );
        assert_eq!(listing.recent[0].outcome, "acknowledged");
        assert_eq!(listing.recent[0].expires, 1_060);
        let json = serde_json::to_string(&listing).unwrap();
        assert!(!json.contains(&crate::store::hex(&t.key)), "{json}");
    }

    #[tokio::test]
    async fn no_pairing_with_a_vm_that_is_gone_or_silent() {
        let registry = Registry::with_ack_timeout(Duration::from_millis(50));
        let rng = pki::rand::SystemRandom::new();
        assert_eq!(
            registry.pair("vm-1", "bb", &[1; 32], 0, &rng).await,
            Err(PairingError::NotServing("vm-1".into()))
        );
        let (old, rx_old) = registry.register(serving("vm-1"));
        let (new, rx_new) = registry.register(serving("vm-1"));
        // The older session leaving does not remove the newer one.
        registry.leave(old);
        drop(rx_old);
        assert!(registry.serving("vm-1").is_some());
        // A session that never acknowledges.
        let silent = registry.pair("vm-1", "bb", &[1; 32], 0, &rng);
        assert_eq!(silent.await, Err(PairingError::NoAck("vm-1".into())));
        drop(rx_new);
        assert!(registry.serving("vm-1").is_none());
        registry.leave(new);
        assert!(registry.serving("vm-1").is_none());
        let outcomes: Vec<_> = registry
            .listing()
            .recent
            .iter()
            .map(|r| (r.id.is_some(), r.outcome.clone()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (true, "no-ack".to_string()),
                (false, "not-serving".to_string())
            ]
        );
        assert!(registry.listing().serving.is_empty());
    }
}
