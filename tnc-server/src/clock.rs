//! Time, injected: the PDP reads wall-clock seconds (records, certificate
//! validity) and a monotonic instant (rate limits, back-offs) through
//! [`Clock`], so its rules can be tested at any time of day and across
//! minutes that take no time to pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the PDP gets the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix seconds.
    fn unix(&self) -> u64;
    /// Monotonic time, for intervals.
    fn monotonic(&self) -> Instant;
}

/// The machine's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix(&self) -> u64 {
        system_unix()
    }
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// The system's Unix seconds (0 before 1970).
pub fn system_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A clock that moves only when told to ([`FakeClock::advance`]); both of
/// its readings move together.
#[derive(Debug)]
pub struct FakeClock {
    unix_start: u64,
    base: Instant,
    elapsed_ms: AtomicU64,
}

impl FakeClock {
    /// Starts at `unix` seconds.
    pub fn at(unix: u64) -> Self {
        Self {
            unix_start: unix,
            base: Instant::now(),
            elapsed_ms: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.elapsed_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms.load(Ordering::SeqCst))
    }
}

impl Clock for FakeClock {
    fn unix(&self) -> u64 {
        self.unix_start + self.elapsed().as_secs()
    }
    fn monotonic(&self) -> Instant {
        self.base + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_both_readings_together() {
        let c = FakeClock::at(1_800_000_000);
        let t0 = c.monotonic();
        c.advance(Duration::from_secs(61));
        assert_eq!(c.unix(), 1_800_000_061);
        assert_eq!(c.monotonic() - t0, Duration::from_secs(61));
    }
}
