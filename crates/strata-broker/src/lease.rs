//! The leader lease: a broker acknowledges appends only while its quorum heartbeats get
//! through, so a leader cut off from the quorum stops acknowledging (even `acks=1`) before
//! the controller can fence it and elect another.
//!
//! Why it is safe: the controller fences a broker once it has seen no new heartbeat from it
//! for the session timeout, measured on its own clock from when it saw the last one. That
//! heartbeat was sent before it was committed, and so before it was seen: fencing comes at
//! least a session timeout after the send. The lease runs from the send, for less than the
//! session timeout, so it has expired before any new leader exists. A heartbeat renews the
//! lease only once this node has applied it and brought its partitions in line with the
//! metadata before it, so a broker that was fenced while it was hung (SIGSTOP) learns that
//! it lost its leadership before it may acknowledge again.
//!
//! Only a node that is part of a multi-node quorum holds a lease: an embedded single node
//! has nobody to hand its partitions to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A broker's lease on the leadership of its partitions.
#[derive(Debug, Clone)]
pub struct Lease {
    /// When the newest heartbeat that was applied here was sent; `None` before the first.
    renewed_from: Arc<Mutex<Option<Instant>>>,
    /// `None`: no lease is needed, appends are always allowed.
    duration: Option<Duration>,
}

impl Lease {
    /// A lease of `duration` from each renewal, held from nothing until the first.
    pub fn new(duration: Duration) -> Self {
        Self {
            renewed_from: Arc::new(Mutex::new(None)),
            duration: Some(duration),
        }
    }

    /// For a node that needs none: always held.
    pub fn unneeded() -> Self {
        Self {
            renewed_from: Arc::new(Mutex::new(None)),
            duration: None,
        }
    }

    /// Extends the lease to `duration` from `sent_at`, the time the heartbeat that renews it
    /// was sent (never shortens it).
    pub fn renew(&self, sent_at: Instant) {
        let mut renewed = self.renewed_from.lock().expect("never poisoned");
        *renewed = Some(renewed.map_or(sent_at, |at| at.max(sent_at)));
    }

    /// How long the lease still holds (zero once it ran out); `None` for a node that needs
    /// none.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        let duration = self.duration?;
        let renewed = *self.renewed_from.lock().expect("never poisoned");
        Some(renewed.map_or(Duration::ZERO, |at| {
            (at + duration).saturating_duration_since(now)
        }))
    }

    /// How long ago the lease ran out, or `None` while it holds.
    pub fn expired_for(&self, now: Instant) -> Option<Duration> {
        let duration = self.duration?;
        let renewed = *self.renewed_from.lock().expect("never poisoned");
        let ends = renewed.map_or(now, |at| at + duration);
        (now >= ends).then(|| now.saturating_duration_since(ends))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_holds_for_its_duration_from_the_newest_send_and_no_longer() {
        let lease = Lease::new(Duration::from_secs(7));
        let t0 = Instant::now();
        assert_eq!(
            lease.expired_for(t0),
            Some(Duration::ZERO),
            "held from nothing"
        );
        lease.renew(t0);
        assert_eq!(lease.expired_for(t0 + Duration::from_secs(6)), None);
        assert_eq!(
            lease.expired_for(t0 + Duration::from_secs(8)),
            Some(Duration::from_secs(1))
        );
        // An older heartbeat answered late does not shorten it; a newer one extends it.
        lease.renew(t0 + Duration::from_secs(5));
        lease.renew(t0 + Duration::from_secs(1));
        assert_eq!(lease.expired_for(t0 + Duration::from_secs(11)), None);
        assert!(lease.expired_for(t0 + Duration::from_secs(12)).is_some());
        assert_eq!(
            lease.remaining(t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            lease.remaining(t0 + Duration::from_secs(13)),
            Some(Duration::ZERO)
        );
        assert_eq!(Lease::unneeded().expired_for(t0), None);
        assert_eq!(Lease::unneeded().remaining(t0), None);
    }
}
