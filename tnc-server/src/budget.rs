//! A memory budget for what peers make the PDP buffer. A session may
//! announce a PT-TLS message of up to `max_message_len` (16 MiB by default)
//! and send it slowly; a thousand such sessions would hold 16 GiB. Every
//! session may buffer [`FREE`] bytes of an unfinished message on its own;
//! beyond that, each read is first covered by the PDP-wide budget
//! (`limits.message_budget_mib`), so when the budget is spent the session
//! stops reading (TCP and QUIC flow control push back on the peer) until
//! other messages are done, or its handshake deadline cuts it off. Memory
//! stays bounded by sessions x FREE + the budget.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of an unfinished message a session buffers without the budget.
pub const FREE: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct MessageBudget {
    /// One permit per KiB.
    kib: Arc<Semaphore>,
    total_kib: usize,
}

impl MessageBudget {
    pub fn new(mib: usize) -> Self {
        let total_kib = mib.saturating_mul(1024).min(Semaphore::MAX_PERMITS);
        Self {
            kib: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// A session's share, empty at first.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            kib: self.kib.clone(),
            held: None,
        }
    }

    /// KiB reserved by sessions now.
    pub fn in_use_kib(&self) -> usize {
        self.total_kib - self.kib.available_permits()
    }

    pub fn total_kib(&self) -> usize {
        self.total_kib
    }
}

impl Default for MessageBudget {
    fn default() -> Self {
        Self::new(256)
    }
}

/// What one session holds of the budget; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    kib: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    fn held_kib(&self) -> usize {
        self.held.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Makes sure `bytes` of buffered input are covered, waiting for other
    /// sessions to give some back if the budget is spent.
    pub async fn cover(&mut self, bytes: usize) {
        let need = kib_beyond_free(bytes);
        let held = self.held_kib();
        if need <= held {
            return;
        }
        let Ok(more) = self
            .kib
            .clone()
            .acquire_many_owned(u32::try_from(need - held).unwrap_or(u32::MAX))
            .await
        else {
            return; // The semaphore is never closed.
        };
        match &mut self.held {
            Some(p) => p.merge(more),
            None => self.held = Some(more),
        }
    }

    /// Gives back what `bytes` of buffered input no longer need.
    pub fn shrink_to(&mut self, bytes: usize) {
        let need = kib_beyond_free(bytes);
        let held = self.held_kib();
        if held <= need {
            return;
        }
        if need == 0 {
            self.held = None;
        } else if let Some(p) = &mut self.held {
            drop(p.split(held - need));
        }
    }
}

fn kib_beyond_free(bytes: usize) -> usize {
    bytes.saturating_sub(FREE).div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_grow_shrink_and_wait_for_each_other() {
        let budget = MessageBudget::new(1);
        let mut a = budget.reservation();
        a.cover(FREE).await;
        assert_eq!(budget.in_use_kib(), 0, "small messages are free");
        a.cover(FREE + 1000 * 1024).await;
        assert_eq!(budget.in_use_kib(), 1000);
        let mut b = budget.reservation();
        // b needs 100 KiB: only 24 are left, so it waits...
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            b.cover(FREE + 100 * 1024),
        )
        .await;
        assert!(waiting.is_err(), "b waited");
        // ...until a's message is done.
        a.shrink_to(10);
        assert_eq!(budget.in_use_kib(), 0);
        b.cover(FREE + 100 * 1024).await;
        assert_eq!(budget.in_use_kib(), 100);
        b.shrink_to(FREE + 50 * 1024);
        assert_eq!(budget.in_use_kib(), 50);
        drop(b);
        assert_eq!(budget.in_use_kib(), 0);
    }
}
