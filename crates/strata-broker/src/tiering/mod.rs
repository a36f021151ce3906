//! Tiered storage on the broker: sealed log data goes to the object store, reads below the
//! local log start come back from it.
//!
//! - [`uploader`] packs sealed data of every partition this broker leads into shared objects
//!   and commits each object's segments to the manifest, fenced by leader epochs.
//! - [`merger`] copies runs of small manifest entries into one new object, so the manifest
//!   follows the retained bytes rather than the number of upload rounds.
//! - [`block_cache`] reads objects through a foyer hybrid cache (memory, then local disk) of
//!   aligned blocks, with a bounded number of GETs in flight.
//! - [`remote_read`] turns a Fetch below the local log start into whole batches from a
//!   committed segment, the same bytes a local read would have returned.
//!
//! The lifecycle and why each step is crash-safe are in `docs/architecture.md` (Tiering).

pub mod block_cache;
pub mod manifest;
pub mod merger;
pub mod metadata_backup;
mod new_object;
pub mod producer_state;
pub mod remote_read;
pub mod retention;
pub mod sweeper;
pub mod uploader;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;
use crate::config::TieringSettings;
use crate::metrics::Metrics;
use crate::topics::TopicRegistry;

/// What every tiering task works with, handed to each by the code that wires the node.
#[derive(Clone)]
pub struct TieringContext {
    pub settings: TieringSettings,
    pub node_id: i32,
    pub topics: Arc<TopicRegistry>,
    pub manifest: Arc<dyn manifest::ManifestStore>,
    pub store: Arc<dyn object_store::ObjectStore>,
    /// Reads of committed segments, through the block cache.
    pub remote: Arc<remote_read::RemoteReader>,
    /// An embedded node's metadata backups (`None` where the quorum is replicated).
    pub backups: Option<Arc<metadata_backup::Backups>>,
    pub backlog: UploadBacklog,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TieringContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieringContext")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The bytes of this broker's led, tiered partitions that losing its disk would lose, as the
/// uploader last measured them. Produce refuses appends to tiered partitions while it is over
/// the local budget: back-pressure from the uploader's state, not from a metric.
#[derive(Debug, Clone, Default)]
pub struct UploadBacklog(Arc<AtomicU64>);

impl UploadBacklog {
    pub fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
