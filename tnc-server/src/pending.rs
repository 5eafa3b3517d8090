//! Connections that have not authenticated yet. An idle connection must not
//! hold the door shut: until a peer has finished TLS and PT-TLS
//! authentication it holds no session slot, only a place in this pool,
//! which is bounded in total and per address (IPv6 per /64). When the pool
//! is full, the oldest unauthenticated connection is cut to make room; a
//! genuine handshake takes milliseconds, so the oldest is the idlest.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug)]
pub struct PendingPool {
    max: usize,
    per_address: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Oldest first (ids grow).
    order: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a connection was not let into the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressFull;

/// A place in the pool, left when the peer authenticates or the connection
/// ends (on drop).
#[derive(Debug)]
pub struct Ticket {
    pool: Arc<PendingPool>,
    id: u64,
    evicted: Arc<Notify>,
}

impl PendingPool {
    /// At most `max` unauthenticated connections, `per_address` from one
    /// address.
    pub fn new(max: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            per_address: per_address.max(1),
            inner: Mutex::default(),
        })
    }

    pub fn from_limits(limits: &crate::config::Limits) -> Arc<Self> {
        Self::new(limits.max_pending, limits.pending_per_address)
    }

    /// A place for a new connection from `peer`, making room by cutting the
    /// oldest if the pool is full; refused when `peer`'s address holds its
    /// share already.
    pub fn enter(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, AddressFull> {
        let key = crate::address::counted_as(peer);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.per_address.get(&key).copied().unwrap_or(0) >= self.per_address {
            return Err(AddressFull);
        }
        while inner.order.len() >= self.max {
            let Some((_, (ip, notify))) = inner.order.pop_first() else {
                break;
            };
            release(&mut inner.per_address, ip);
            // A stored permit: the ticket's holder sees it even if it is
            // not waiting at this moment.
            notify.notify_one();
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let evicted = Arc::new(Notify::new());
        inner.order.insert(id, (key, evicted.clone()));
        *inner.per_address.entry(key).or_insert(0) += 1;
        Ok(Ticket {
            pool: self.clone(),
            id,
            evicted,
        })
    }

    /// Unauthenticated connections now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn release(per_address: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = per_address.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_address.remove(&ip);
        }
    }
}

impl Ticket {
    /// Resolves when the pool cut this connection to make room.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.pool.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ip, _)) = inner.order.remove(&self.id) {
            release(&mut inner.per_address, ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_per_address_and_the_oldest_goes_first() {
        let pool = PendingPool::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let first = pool.enter(a).unwrap();
        let _second = pool.enter(a).unwrap();
        assert_eq!(pool.enter(a).unwrap_err(), AddressFull);
        let _third = pool.enter(b).unwrap();
        assert_eq!(pool.len(), 3);
        // Full: the next one cuts the oldest, which hears of it.
        let _fourth = pool.enter(c).unwrap();
        assert_eq!(pool.len(), 3);
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest was told");
        // Its address has room again; a /64 neighbour of c shares c's count.
        drop(first);
        let _again = pool.enter(a).unwrap();
        let _c2 = pool.enter("2001:db8::2".parse().unwrap()).unwrap();
        assert_eq!(
            pool.enter("2001:db8::3".parse().unwrap()).unwrap_err(),
            AddressFull
        );
    }

    #[test]
    fn a_ticket_leaves_on_drop() {
        let pool = PendingPool::new(10, 10);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let tickets: Vec<Ticket> = (0..10).map(|_| pool.enter(a).unwrap()).collect();
        assert_eq!(pool.enter(a).unwrap_err(), AddressFull);
        drop(tickets);
        assert!(pool.is_empty());
        assert!(pool.enter(a).is_ok());
    }
}
