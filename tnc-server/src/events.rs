//! Session events on a broadcast bus: what the admin API streams and the
//! metrics count (later issues), and what tests watch. Serializable, one
//! JSON object each, tagged by `event`. A slow subscriber misses events
//! (it is told how many), it never slows a session.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SessionEvent {
    /// A connection was let in (before TLS).
    Opened {
        session: u64,
        peer: String,
        transport: &'static str,
        at: u64,
    },
    /// A verdict was recorded and sent.
    Decided {
        session: u64,
        peer: String,
        device: Option<String>,
        role: Option<String>,
        user: Option<String>,
        verdict: String,
        findings: Vec<String>,
        ms: f64,
        at: u64,
    },
    /// A session kept open was re-assessed (the PDP's SRETRY round, on
    /// its interval, a policy change or the operator's request) and
    /// decided again; `why` says what started the round.
    Reassessed {
        session: u64,
        peer: String,
        device: Option<String>,
        role: Option<String>,
        verdict: String,
        findings: Vec<String>,
        round: u32,
        why: String,
        at: u64,
    },
    /// The session ended without a decision, and why.
    Failed {
        session: u64,
        peer: String,
        user: Option<String>,
        why: String,
        ms: f64,
        at: u64,
    },
    /// The session ended without a decision and without an error (the
    /// client left quietly).
    Closed { session: u64, peer: String, at: u64 },
}

/// Events a subscriber may fall behind by before it misses some.
const CAPACITY: usize = 4096;

#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<SessionEvent>,
    next: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            next: AtomicU64::new(1),
        }
    }
}

impl EventBus {
    /// A number for a new session, unique in this PDP's life.
    pub fn session_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn publish(&self, event: SessionEvent) {
        // No subscriber is fine.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_subscribers_as_tagged_json() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let session = bus.session_id();
        bus.publish(SessionEvent::Closed {
            session,
            peer: "192.0.2.1:5000".into(),
            at: 7,
        });
        let e = rx.recv().await.unwrap();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"event": "closed", "session": 1, "peer": "192.0.2.1:5000", "at": 7})
        );
        assert_eq!(bus.session_id(), 2);
    }
}
