//! The local partition log of a Strata broker: record batches (magic v2) stored exactly as
//! produced, in segments with a sparse offset-and-time index, recovered after a crash by
//! validating the last segment and cutting a torn tail.
//!
//! Also the small durable-file helpers every on-disk structure of the node shares
//! ([`durable_file`]).
//!
//! No async runtime here: the broker holds a [`PartitionLog`] in a mutex and executes
//! [`ReadPlan`]s and [`SyncHandle`]s outside it.

mod append_times;
pub mod batch;
pub mod durable_file;
mod error;
mod file_range;
pub mod leader_epochs;
mod partition_log;
mod records;
mod seal;
pub mod segment;
pub mod segment_files;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
mod write_behind;

pub use batch::{
    BatchError, BatchHeader, BatchLimits, Compression, ValidatedBatch, needs_decompression,
    validate_produce_batch, validate_replicated_batches,
};
pub use error::LogError;
pub use file_range::FileRange;
pub use partition_log::{
    AppendInfo, LogConfig, PartitionLog, ReadPlan, RetentionOutcome, SyncHandle, UploadRange,
};
pub use segment_files::SegmentFiles;
