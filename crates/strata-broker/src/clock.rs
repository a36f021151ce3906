//! Time comes through a trait so that tests and a future simulation can drive it: the broker's
//! timers (group sessions and rebalances, offset and producer expiry, retention, upload lag,
//! liveness) read it here, never from the operating system directly.

use std::time::{Instant, SystemTime, UNIX_EPOCH};
#[cfg(test)]
use std::{sync::Mutex, time::Duration};

/// A source of time: wall-clock milliseconds (Kafka's timestamps) and a monotonic instant
/// (deadlines, which must not jump when the wall clock is set).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic instant.
    fn now(&self) -> Instant;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests: both readings advance together.
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_ms: i64,
    elapsed: Mutex<Duration>,
}

#[cfg(test)]
impl ManualClock {
    /// A clock reading `start_ms` on the wall clock.
    pub fn new(start_ms: i64) -> Self {
        Self {
            start: Instant::now(),
            start_ms,
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    pub fn advance(&self, by: Duration) {
        *self
            .elapsed
            .lock()
            .expect("no code panics holding the clock") += by;
    }

    fn elapsed(&self) -> Duration {
        *self
            .elapsed
            .lock()
            .expect("no code panics holding the clock")
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + i64::try_from(self.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }
}
