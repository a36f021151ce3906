//! The process's file descriptors: its limit, raised to the hard limit at start, and how many
//! are open (exported, and logged when they run short).
//!
//! Descriptors are what a busy broker runs out of first: every connection, every active
//! segment, every cached sealed segment and the raft and cache files take one. Running out
//! fails uploads, rolls and `accept` alike, so the broker asks for all it may have and says
//! loudly when it nears the limit.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// Raises the soft RLIMIT_NOFILE to the hard limit; answers the soft limit in force after.
pub fn raise_fd_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => info!(
                from = limit.current,
                to = limit.maximum,
                "raised the open file limit to the hard limit"
            ),
            Err(e) => {
                warn!(limit = limit.current, error = %e, "could not raise the open file limit")
            }
        }
    }
    fd_limit()
}

/// The soft limit on open descriptors; `None` when unlimited.
pub fn fd_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// How many descriptors the process has open, if the platform says (Linux's /proc).
pub fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count() as u64)
}

/// Sets the descriptor gauges and warns once usage passes 80% of the limit.
pub fn report_fds(metrics: &crate::metrics::Metrics) {
    let (Some(open), limit) = (open_fds(), fd_limit()) else {
        return;
    };
    metrics
        .open_fds
        .set(i64::try_from(open).unwrap_or(i64::MAX));
    if let Some(limit) = limit {
        metrics
            .max_fds
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        if open.saturating_mul(5) > limit.saturating_mul(4) {
            warn!(
                open,
                limit, "more than 80% of the open file limit is in use"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_at_most_the_hard_limit_and_descriptors_are_counted() {
        let soft = raise_fd_limit();
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(soft, hard, "the soft limit was raised to the hard one");
        let before = open_fds().expect("/proc/self/fd");
        let file = std::fs::File::open("/proc/self/status").expect("open");
        assert!(open_fds().expect("count") >= before.min(1));
        drop(file);
    }
}
