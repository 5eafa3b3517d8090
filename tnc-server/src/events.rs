//! Session events on a broadcast bus: what the admin API streams and the
//! metrics count (later issues), and what tests watch. Serializable, one
//! JSON object each, tagged by `event`. A slow subscriber misses events
//! (it is told how many), it never slows a session.
//!
//! The bus also keeps the table of open sessions (`GET /v1/sessions`):
//! every event passes through [`EventBus::publish`], which folds it in
//! under a lock, so the table misses nothing a subscriber might.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tnc_proto::admin::Session;
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
    open: Mutex<BTreeMap<u64, Session>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            next: AtomicU64::new(1),
            open: Mutex::default(),
        }
    }
}

impl EventBus {
    /// A number for a new session, unique in this PDP's life.
    pub fn session_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn publish(&self, event: SessionEvent) {
        {
            let mut open = self.lock();
            match &event {
                SessionEvent::Opened {
                    session,
                    peer,
                    transport,
                    at,
                } => {
                    open.insert(
                        *session,
                        Session {
                            session: *session,
                            peer: peer.clone(),
                            transport: transport.to_string(),
                            opened_at: *at,
                            device: None,
                            role: None,
                            user: None,
                            verdict: None,
                            assessed_at: None,
                            reassessments: 0,
                        },
                    );
                }
                SessionEvent::Reassessed {
                    session,
                    device,
                    role,
                    verdict,
                    round,
                    at,
                    ..
                } => {
                    if let Some(s) = open.get_mut(session) {
                        s.device.clone_from(device);
                        s.role.clone_from(role);
                        s.verdict = Some(verdict.clone());
                        s.assessed_at = Some(*at);
                        s.reassessments = *round;
                    }
                }
                SessionEvent::Decided { session, .. }
                | SessionEvent::Failed { session, .. }
                | SessionEvent::Closed { session, .. } => {
                    open.remove(session);
                }
            }
        }
        // No subscriber is fine.
        let _ = self.tx.send(event);
    }

    /// A session reached its first decision and stays open (its
    /// `decided` event comes when it ends).
    pub fn assessed(
        &self,
        session: u64,
        device: Option<(String, Option<&'static str>)>,
        user: Option<String>,
        verdict: &str,
        at: u64,
    ) {
        if let Some(s) = self.lock().get_mut(&session) {
            let (device, role) = device.unzip();
            s.device = device;
            s.role = role.flatten().map(str::to_string);
            s.user = user;
            s.verdict = Some(verdict.to_string());
            s.assessed_at = Some(at);
        }
    }

    /// The sessions open now, oldest first.
    pub fn open_sessions(&self) -> Vec<Session> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
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

    #[test]
    fn the_open_sessions_follow_the_events() {
        let bus = EventBus::default();
        for session in [1, 2] {
            bus.publish(SessionEvent::Opened {
                session,
                peer: format!("192.0.2.{session}:5000"),
                transport: "tcp",
                at: 10,
            });
        }
        bus.assessed(
            1,
            Some(("ab".into(), Some("vm"))),
            Some("u".into()),
            "allow",
            11,
        );
        // Unknown sessions change nothing.
        bus.assessed(9, None, None, "allow", 11);
        bus.publish(SessionEvent::Reassessed {
            session: 1,
            peer: "192.0.2.1:5000".into(),
            device: Some("ab".into()),
            role: Some("vm".into()),
            verdict: "isolate".into(),
            findings: vec![],
            round: 3,
            why: "interval".into(),
            at: 20,
        });
        let open = bus.open_sessions();
        assert_eq!(open.len(), 2);
        let s = &open[0];
        assert_eq!(
            (
                s.device.as_deref(),
                s.role.as_deref(),
                s.user.as_deref(),
                s.verdict.as_deref(),
                s.assessed_at,
                s.reassessments
            ),
            (
                Some("ab"),
                Some("vm"),
                Some("u"),
                Some("isolate"),
                Some(20),
                3
            )
        );
        assert_eq!(open[1].verdict, None);
        bus.publish(SessionEvent::Closed {
            session: 2,
            peer: String::new(),
            at: 30,
        });
        bus.publish(SessionEvent::Failed {
            session: 1,
            peer: String::new(),
            user: None,
            why: "gone".into(),
            ms: 1.0,
            at: 30,
        });
        assert!(bus.open_sessions().is_empty());
    }
}
