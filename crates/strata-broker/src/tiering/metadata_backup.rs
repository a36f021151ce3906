//! The embedded node's metadata, backed up to the object store.
//!
//! A single node keeps its raft state on the same disk as its log, so losing the disk would
//! lose the manifest that says where the tiered data is. Such a node therefore writes a
//! snapshot of its metadata to `metadata/snapshot` after every upload round (before the
//! round's local copies may go) and whenever the metadata changed, at most every
//! `strata.metadata.backup.interval.ms`. Started with an empty data directory and the same
//! object store, it restores the snapshot into its raft directory before the quorum starts,
//! so every topic and every tiered record comes back; only what was not yet uploaded is lost.
//!
//! Ordering is what makes that promise hold: a tiered partition may delete a local segment
//! only once a backup holds the commit of its data ([`Partition::set_durable_tiered_end`] is
//! set from the state each backup captured). Nodes of a multi-node quorum do not back up:
//! their metadata is replicated, and commits are durable once applied.
//!
//! [`Partition::set_durable_tiered_end`]: crate::partition::Partition::set_durable_tiered_end

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::node_meta::NodeMeta;
use crate::topics::TopicRegistry;

/// Where the backup lives in the object store.
pub const BACKUP_OBJECT: &str = "metadata/snapshot";

fn store_err(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::RemoteStorage(format!("{what}: {e}"))
}

/// On an embedded node whose data directory has no raft state, restores the metadata from
/// the object store's backup, if there is one. Answers whether it did.
pub async fn restore_if_empty(
    config: &BrokerConfig,
    store: &Arc<dyn ObjectStore>,
) -> Result<bool, BrokerError> {
    let raft_dir = config.data_dir.join("raft");
    if !config.backs_up_metadata() || raft_dir.exists() {
        return Ok(false);
    }
    let backup = match store
        .get(&object_store::path::Path::from(BACKUP_OBJECT))
        .await
    {
        Ok(found) => found
            .bytes()
            .await
            .map_err(|e| store_err("reading the metadata backup", e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        // Starting a new cluster instead would overwrite the backup with an empty one.
        Err(e) => {
            return Err(store_err(
                "the data directory is empty and the object store cannot be asked for a metadata backup to restore",
                e,
            ));
        }
    };
    let data_dir = config.data_dir.clone();
    let node_id = config.node_id;
    let seeded =
        crate::blocking::blocking(move || seed(&data_dir, &raft_dir, node_id, &backup)).await??;
    match &seeded {
        Some(cluster_id) => info!(
            backup = BACKUP_OBJECT,
            cluster_id = %cluster_id,
            "restored the metadata from the object store: the data directory had no metadata"
        ),
        None => warn!(
            backup = BACKUP_OBJECT,
            "the metadata backup was taken before the cluster was formed; starting without it"
        ),
    }
    Ok(seeded.is_some())
}

/// Seeds the raft directory from `backup`; answers the cluster id it names, or `None` for a
/// backup that holds no cluster (nothing is written then).
fn seed(
    data_dir: &Path,
    raft_dir: &Path,
    node_id: i32,
    backup: &[u8],
) -> Result<Option<String>, BrokerError> {
    let Some(state) = strata_raft::seed_from_backup(raft_dir, backup)
        .map_err(|e| store_err("restoring the metadata backup", e))?
    else {
        return Ok(None);
    };
    let cluster_id = state
        .cluster_id()
        .expect("seed_from_backup refuses a backup without a cluster")
        .to_string();
    NodeMeta::adopt(data_dir, node_id, &cluster_id)?;
    Ok(Some(cluster_id))
}

/// Serializes backups so an older one never overwrites a newer one, and remembers what the
/// last one covered.
/// Only an embedded node backs its metadata up (see [`BrokerConfig::backs_up_metadata`]).
pub struct Backups {
    metadata: MetadataView,
    store: Arc<dyn ObjectStore>,
    topics: Arc<TopicRegistry>,
    last_index: tokio::sync::Mutex<Option<u64>>,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups").finish_non_exhaustive()
    }
}

impl Backups {
    pub fn new(
        metadata: MetadataView,
        store: Arc<dyn ObjectStore>,
        topics: Arc<TopicRegistry>,
    ) -> Self {
        Self {
            metadata,
            store,
            topics,
            last_index: tokio::sync::Mutex::new(None),
        }
    }

    /// Writes a backup of the metadata as applied now (unless the last one already covers
    /// it), then lets each tiered partition trim what that backup's manifest holds.
    pub async fn back_up(&self) -> Result<(), BrokerError> {
        let mut last = self.last_index.lock().await;
        let index = self.metadata.applied_index();
        // Before the cluster is formed there is nothing to keep, and an empty backup would
        // stand in for a real one.
        if *last == Some(index) || self.metadata.cluster_id().is_none() {
            return Ok(());
        }
        let (bytes, tiered_ends) = self
            .metadata
            .backup(|state| {
                state
                    .topics()
                    .flat_map(|t| {
                        (0..t.partitions.len() as i32).filter_map(move |p| {
                            let end = state.partition_manifest(t.topic_id, p)?.end_offset()?;
                            Some((t.topic_id, p, end))
                        })
                    })
                    .collect::<Vec<(Uuid, i32, i64)>>()
            })
            .map_err(|e| store_err("snapshotting the metadata", e))?;
        let size = bytes.len();
        self.store
            .put(
                &object_store::path::Path::from(BACKUP_OBJECT),
                Bytes::from(bytes).into(),
            )
            .instrument(info_span!("metadata_backup", index, bytes = size))
            .await
            .map_err(|e| store_err("writing the metadata backup", e))?;
        *last = Some(index);
        for (topic_id, partition, end) in tiered_ends {
            if let Some(partition) = self
                .topics
                .get_by_id(topic_id)
                .and_then(|t| t.partition(partition).cloned())
            {
                partition.set_durable_tiered_end(end);
            }
        }
        Ok(())
    }
}

/// One periodic backup, run every `strata.metadata.backup.interval.ms` on a node that backs
/// up: writes one if the metadata changed since the last.
pub async fn round(backups: &Backups) {
    if let Err(e) = backups.back_up().await {
        warn!(error = %e, "metadata backup failed; local copies of tiered data stay until one succeeds");
    }
}
