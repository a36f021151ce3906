//! The embedded node's metadata, backed up to the object store.
//!
//! A single node keeps its raft state on the same disk as its log, so losing the disk would
//! lose the manifest that says where the tiered data is. Such a node therefore backs its
//! metadata up after every upload round (before the round's local copies may go) and
//! whenever the metadata changed, at most every `strata.metadata.backup.interval.ms`.
//! Started with an empty data directory and the same object store, it restores the backup
//! into its raft directory before the quorum starts, so every topic and every tiered record
//! comes back; only what was not yet uploaded is lost.
//!
//! A backup is a snapshot (`metadata/snapshot`) and the raft log written since, in deltas
//! (`metadata/log/<first index>-<last index>`, the log's own frames, zstd-compressed), each
//! uploaded once:
//! what a round writes follows what changed, not the size of the state. A new snapshot is
//! written once the deltas since the last one outweigh it (or number [`MAX_DELTAS`], or the
//! log they would come from was purged), and then the deltas it covers are deleted. A
//! restore applies the deltas that continue the snapshot, in index order; overlapping and
//! older ones are skipped, so a crash between any two of these steps leaves a backup that
//! restores. Deltas holding only broker heartbeats are not written: they restore nothing.
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
use crate::metrics::TieringMetrics;
use crate::node_meta::NodeMeta;
use crate::topics::TopicRegistry;
use strata_meta::MetadataState;

/// Where the backup's snapshot lives in the object store.
pub const BACKUP_OBJECT: &str = "metadata/snapshot";
/// Where the backup's log deltas live.
pub const DELTAS_PREFIX: &str = "metadata/log";
/// The most deltas after one snapshot: a restore GETs each of them.
pub const MAX_DELTAS: u32 = 256;

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
    let deltas = read_deltas(store).await?;
    let data_dir = config.data_dir.clone();
    let node_id = config.node_id;
    let seeded =
        crate::blocking::blocking(move || seed(&data_dir, &raft_dir, node_id, &backup, &deltas))
            .await??;
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

/// Every log delta of the backup, by name.
async fn read_deltas(store: &Arc<dyn ObjectStore>) -> Result<Vec<Bytes>, BrokerError> {
    let mut deltas = Vec::new();
    for (name, _) in list_deltas(store).await? {
        let failed = |e| store_err(&format!("reading the metadata delta {name}"), e);
        let path = object_store::path::Path::from(name.as_str());
        let found = store.get(&path).await.map_err(failed)?;
        deltas.push(found.bytes().await.map_err(failed)?);
    }
    Ok(deltas)
}

/// The backup's log deltas: each one's name and the last index it holds.
async fn list_deltas(store: &Arc<dyn ObjectStore>) -> Result<Vec<(String, u64)>, BrokerError> {
    use futures::TryStreamExt;
    let prefix = object_store::path::Path::from(DELTAS_PREFIX);
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| store_err("listing the metadata deltas", e))?;
    Ok(listed
        .into_iter()
        .filter_map(|meta| {
            let name = meta.location.to_string();
            let last = name.rsplit_once('-')?.1.parse().ok()?;
            Some((name, last))
        })
        .collect())
}

/// Seeds the raft directory from `backup` and its log `deltas`; answers the cluster id it
/// names, or `None` for a backup that holds no cluster (nothing is written then).
fn seed(
    data_dir: &Path,
    raft_dir: &Path,
    node_id: i32,
    backup: &[u8],
    deltas: &[Bytes],
) -> Result<Option<String>, BrokerError> {
    let deltas: Vec<Vec<u8>> = deltas.iter().map(|d| d.to_vec()).collect();
    let Some(state) = strata_raft::seed_from_backup(raft_dir, backup, &deltas)
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
    metrics: TieringMetrics,
    covered: tokio::sync::Mutex<Option<Covered>>,
}

/// What the backup in the store covers.
#[derive(Debug, Clone, Copy)]
struct Covered {
    /// The last index it holds.
    index: u64,
    /// The size of its snapshot, and of the deltas written after it, and how many.
    snapshot_bytes: u64,
    delta_bytes: u64,
    deltas: u32,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups").finish_non_exhaustive()
    }
}

/// Each tiered partition's end in the manifest.
fn tiered_ends(state: &MetadataState) -> Vec<(Uuid, i32, i64)> {
    state
        .topics()
        .flat_map(|t| {
            (0..t.partitions.len() as i32).filter_map(move |p| {
                let end = state.partition_manifest(t.topic_id, p)?.end_offset()?;
                Some((t.topic_id, p, end))
            })
        })
        .collect()
}

impl Backups {
    pub fn new(
        metadata: MetadataView,
        store: Arc<dyn ObjectStore>,
        topics: Arc<TopicRegistry>,
        metrics: TieringMetrics,
    ) -> Self {
        Self {
            metadata,
            store,
            topics,
            metrics,
            covered: tokio::sync::Mutex::new(None),
        }
    }

    /// Backs up the metadata as applied now (unless the backup already covers it): the log
    /// since the last backup where that is still cheaper than a snapshot, else a snapshot.
    /// Then lets each tiered partition trim what the backup's manifest holds.
    pub async fn back_up(&self) -> Result<(), BrokerError> {
        let mut covered = self.covered.lock().await;
        // Before the cluster is formed there is nothing to keep, and an empty backup would
        // stand in for a real one.
        if self.metadata.cluster_id().is_none()
            || covered.is_some_and(|c| c.index == self.metadata.applied_index())
        {
            return Ok(());
        }
        let delta_due =
            covered.filter(|c| c.delta_bytes < c.snapshot_bytes && c.deltas < MAX_DELTAS);
        let ends = match delta_due {
            Some(previous) => self.back_up_delta(&mut covered, previous).await?,
            None => None,
        };
        let ends = match ends {
            Some(ends) => ends,
            None => self.back_up_snapshot(&mut covered).await?,
        };
        for (topic_id, partition, end) in ends {
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

    /// Writes the log after `previous` as a delta; answers the tiered ends it makes durable,
    /// or `None` when the log no longer holds all of it (a snapshot is due instead).
    async fn back_up_delta(
        &self,
        covered: &mut Option<Covered>,
        previous: Covered,
    ) -> Result<Option<Vec<(Uuid, i32, i64)>>, BrokerError> {
        let (index, ends) = self.metadata.at_applied(tiered_ends);
        let Some(frames) = self
            .metadata
            .log_frames(previous.index, index)
            .map_err(|e| store_err("reading the raft log for a metadata backup", e))?
        else {
            return Ok(None);
        };
        if frames.substantive {
            let delta = frames
                .to_delta()
                .map_err(|e| store_err("compressing a metadata backup delta", e))?;
            let size = delta.len();
            let name = format!("{DELTAS_PREFIX}/{:020}-{index:020}", previous.index + 1);
            self.store
                .put(
                    &object_store::path::Path::from(name.as_str()),
                    Bytes::from(delta).into(),
                )
                .instrument(info_span!("metadata_backup_delta", index, bytes = size))
                .await
                .map_err(|e| store_err("writing a metadata backup delta", e))?;
            self.metrics.metadata_backup_deltas.inc();
            *covered = Some(Covered {
                index,
                delta_bytes: previous.delta_bytes + size as u64,
                deltas: previous.deltas + 1,
                ..previous
            });
        }
        Ok(Some(ends))
    }

    /// Writes a snapshot, then deletes the deltas it covers; answers the tiered ends it
    /// makes durable.
    async fn back_up_snapshot(
        &self,
        covered: &mut Option<Covered>,
    ) -> Result<Vec<(Uuid, i32, i64)>, BrokerError> {
        let (bytes, index, ends) = self
            .metadata
            .backup(tiered_ends)
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
        self.metrics.metadata_backup_snapshots.inc();
        *covered = Some(Covered {
            index,
            snapshot_bytes: size as u64,
            delta_bytes: 0,
            deltas: 0,
        });
        // Deltas the snapshot covers are dead weight for a restore; one that is left (a
        // failed list or delete) is skipped by it, and goes with the next snapshot.
        let deltas = list_deltas(&self.store).await.unwrap_or_else(|e| {
            warn!(error = %e, "could not list the metadata deltas the snapshot covers");
            Vec::new()
        });
        for (name, last) in deltas {
            if last <= index
                && let Err(e) = self
                    .store
                    .delete(&object_store::path::Path::from(name.as_str()))
                    .await
            {
                warn!(delta = %name, error = %e, "could not delete a metadata delta the snapshot covers");
            }
        }
        Ok(ends)
    }
}

/// One periodic backup, run every `strata.metadata.backup.interval.ms` on a node that backs
/// up: writes one if the metadata changed since the last.
pub async fn round(backups: &Backups) {
    if let Err(e) = backups.back_up().await {
        warn!(error = %e, "metadata backup failed; local copies of tiered data stay until one succeeds");
    }
}
