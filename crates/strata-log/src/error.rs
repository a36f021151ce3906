//! Errors of the local log.

use std::path::PathBuf;
use std::sync::Arc;

/// A failure of the partition log. `Clone` so one failure can answer many waiters.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("i/o error on {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// An fsync failed: what was written since the last good one may not be on disk, and a
    /// retried fsync cannot tell.
    #[error("fsync of {path} failed: {source}", path = path.display())]
    SyncFailed {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("offset {requested} is outside the log's range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A replicated batch that does not start at the log end: the follower's view of the
    /// leader's log is stale, and it must truncate or refetch.
    #[error("a replicated batch starts at {base_offset}, not at the log end {log_end_offset}")]
    NotContiguous {
        base_offset: i64,
        log_end_offset: i64,
    },
    #[error("segment at offset {base_offset} cannot grow past 4 GiB")]
    SegmentFull { base_offset: i64 },
    #[error("corrupt data in {path} at position {position}: {reason}", path = path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}
