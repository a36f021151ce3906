//! The segment manifest behind one interface: which committed segments (ranges of offsets in
//! which objects) each tiered partition has, where its log starts, and the two ways it
//! changes (an upload commits segments, retention moves the log start).
//!
//! Today it lives in the metadata quorum's state machine ([`StateManifest`] over the
//! node's [`MetadataView`]), read locally on every broker and changed through raft. Tiering,
//! remote reads and the replica manager see only [`ManifestStore`], so the next scaling step
//! (many partitions, long retention) can move it without touching them. Unit tests run the
//! same state machine in memory.

use std::collections::HashSet;

use async_trait::async_trait;
use strata_meta::{
    CommandOutcome, CommitSegments, MERGED_SEGMENTS, MergeLimits, MetaCommand, MetadataState,
    ReplaceSegments, SegmentCommit, SegmentEntry, SegmentMerge,
};
use uuid::Uuid;

use crate::control_plane::MetadataView;
use crate::error::BrokerError;

/// What a commit of one object's segments did: segments are refused (never half-taken) when
/// a newer leader epoch fences them or they would leave a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub committed: u32,
    pub refused: u32,
}

/// What a [`ManifestStore::replace_segments`] did: a merge is refused (never half-taken) when
/// its run changed since it was planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub replaced: u32,
    pub refused: u32,
}

/// Where the segment manifest lives.
#[async_trait]
pub trait ManifestStore: Send + Sync + std::fmt::Debug {
    /// The committed segment holding `offset`, with its base offset.
    fn segment_for(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
    ) -> Option<(i64, SegmentEntry)>;

    /// The segments of a partition holding offsets in `from..below`, oldest first.
    fn segments(
        &self,
        topic_id: Uuid,
        partition: i32,
        from: i64,
        below: i64,
    ) -> Vec<(i64, SegmentEntry)>;

    /// The newest segments of a partition, oldest first, adding up to at least `bytes` (and
    /// at least one, if there is one).
    fn tail(&self, topic_id: Uuid, partition: i32, bytes: u64) -> Vec<(i64, SegmentEntry)>;

    /// Where whole-log retention would move the partition's log start at `now_ms`, given
    /// `newer_bytes` not yet tiered (see `PartitionManifest::expired_end`).
    fn expired_end(
        &self,
        topic_id: Uuid,
        partition: i32,
        now_ms: i64,
        retention: (Option<i64>, Option<i64>),
        newer_bytes: u64,
    ) -> Option<i64>;

    /// Objects and bytes the manifest references.
    fn totals(&self) -> strata_meta::ManifestTotals;

    /// Runs of a partition's entries worth merging into entries within `limits`, adding up
    /// to at least `budget` bytes (see `PartitionManifest::merge_runs`). Empty until the
    /// cluster's metadata version takes merges.
    fn merge_runs(
        &self,
        topic_id: Uuid,
        partition: i32,
        limits: MergeLimits,
        budget: u64,
    ) -> Vec<Vec<(i64, SegmentEntry)>>;

    /// Every object referenced, as of the latest committed manifest (not a possibly stale
    /// local copy: the sweeper deletes what is not in it).
    async fn referenced_objects(&self) -> Result<HashSet<String>, BrokerError>;

    /// Commits one object's segments, each fenced by the leader epoch it was read under.
    async fn commit_segments(
        &self,
        object: String,
        segments: Vec<SegmentCommit>,
    ) -> Result<Committed, BrokerError>;

    /// Moves a partition's log start forward.
    async fn advance_log_start(
        &self,
        topic_id: Uuid,
        partition: i32,
        log_start_offset: i64,
    ) -> Result<(), BrokerError>;

    /// Swaps runs of entries for the merged copies `object` holds, each run on its own.
    async fn replace_segments(
        &self,
        object: String,
        merges: Vec<SegmentMerge>,
    ) -> Result<Replaced, BrokerError>;
}

/// A `MetadataState` the manifest is read from and changed through: the quorum's (through
/// this node's replica), or one in memory for tests.
#[async_trait]
pub trait StateSource: Send + Sync + 'static {
    fn read<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> T;

    /// Reads the state as of the latest committed command, not a possibly stale replica.
    async fn read_latest<T, F>(&self, read: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: for<'s> FnOnce(&'s MetadataState) -> T + Send + 'static;

    async fn apply(&self, command: MetaCommand) -> Result<CommandOutcome, BrokerError>;
}

#[async_trait]
impl StateSource for MetadataView {
    fn read<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> T {
        MetadataView::read(self, read)
    }

    async fn read_latest<T, F>(&self, read: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: for<'s> FnOnce(&'s MetadataState) -> T + Send + 'static,
    {
        MetadataView::read_latest(self, read).await
    }

    async fn apply(&self, command: MetaCommand) -> Result<CommandOutcome, BrokerError> {
        self.commit(command).await
    }
}

/// The state machine in memory, applying commands at once: for unit tests.
#[cfg(test)]
#[async_trait]
impl StateSource for std::sync::Mutex<MetadataState> {
    fn read<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> T {
        read(&self.lock().expect("test lock"))
    }

    async fn read_latest<T, F>(&self, read: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: for<'s> FnOnce(&'s MetadataState) -> T + Send + 'static,
    {
        Ok(StateSource::read(self, read))
    }

    async fn apply(&self, command: MetaCommand) -> Result<CommandOutcome, BrokerError> {
        Ok(self.lock().expect("test lock").apply(&command)?)
    }
}

/// The manifest kept in a metadata state machine: the quorum's (`StateManifest<MetadataView>`)
/// in a broker, one in memory (`StateManifest<Mutex<MetadataState>>`) in unit tests.
#[derive(Debug, Default)]
pub struct StateManifest<S>(pub S);

#[async_trait]
impl<S: StateSource + std::fmt::Debug> ManifestStore for StateManifest<S> {
    fn segment_for(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
    ) -> Option<(i64, SegmentEntry)> {
        self.0.read(|state| {
            state
                .partition_manifest(topic_id, partition)?
                .segment_for(offset)
                .map(|(base, segment)| (base, segment.clone()))
        })
    }

    fn segments(
        &self,
        topic_id: Uuid,
        partition: i32,
        from: i64,
        below: i64,
    ) -> Vec<(i64, SegmentEntry)> {
        self.0.read(|state| {
            state
                .partition_manifest(topic_id, partition)
                .map(|m| {
                    m.segments
                        .range(..below)
                        .filter(|(_, s)| s.last_offset >= from)
                        .map(|(base, s)| (*base, s.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    fn tail(&self, topic_id: Uuid, partition: i32, bytes: u64) -> Vec<(i64, SegmentEntry)> {
        self.0.read(|state| {
            let Some(manifest) = state.partition_manifest(topic_id, partition) else {
                return Vec::new();
            };
            let mut total = 0;
            let mut tail: Vec<(i64, SegmentEntry)> = manifest
                .segments
                .iter()
                .rev()
                .take_while(|(_, s)| {
                    let first = total == 0;
                    total += s.byte_len;
                    first || total <= bytes
                })
                .map(|(base, s)| (*base, s.clone()))
                .collect();
            tail.reverse();
            tail
        })
    }

    fn expired_end(
        &self,
        topic_id: Uuid,
        partition: i32,
        now_ms: i64,
        (retention_ms, retention_bytes): (Option<i64>, Option<i64>),
        newer_bytes: u64,
    ) -> Option<i64> {
        self.0.read(|state| {
            state.partition_manifest(topic_id, partition)?.expired_end(
                now_ms,
                retention_ms,
                retention_bytes,
                newer_bytes,
            )
        })
    }

    fn totals(&self) -> strata_meta::ManifestTotals {
        self.0.read(MetadataState::manifest_totals)
    }

    fn merge_runs(
        &self,
        topic_id: Uuid,
        partition: i32,
        limits: MergeLimits,
        budget: u64,
    ) -> Vec<Vec<(i64, SegmentEntry)>> {
        self.0.read(|state| {
            if state.metadata_version() < MERGED_SEGMENTS {
                return Vec::new();
            }
            state
                .partition_manifest(topic_id, partition)
                .map(|m| {
                    m.merge_runs(limits, budget)
                        .into_iter()
                        .map(|run| run.into_iter().map(|(b, e)| (b, e.clone())).collect())
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    async fn referenced_objects(&self) -> Result<HashSet<String>, BrokerError> {
        self.0
            .read_latest(|state| {
                state
                    .referenced_objects()
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            })
            .await
    }

    async fn commit_segments(
        &self,
        object: String,
        segments: Vec<SegmentCommit>,
    ) -> Result<Committed, BrokerError> {
        let command = MetaCommand::CommitSegments(CommitSegments { object, segments });
        match self.0.apply(command).await? {
            CommandOutcome::SegmentsCommitted { committed, refused } => {
                Ok(Committed { committed, refused })
            }
            other => Err(BrokerError::RemoteStorage(format!(
                "a segment commit answered {other:?}"
            ))),
        }
    }

    async fn advance_log_start(
        &self,
        topic_id: Uuid,
        partition: i32,
        log_start_offset: i64,
    ) -> Result<(), BrokerError> {
        let command = MetaCommand::AdvanceLogStart {
            topic_id,
            partition,
            log_start_offset,
        };
        self.0.apply(command).await.map(drop)
    }

    async fn replace_segments(
        &self,
        object: String,
        merges: Vec<SegmentMerge>,
    ) -> Result<Replaced, BrokerError> {
        let command = MetaCommand::ReplaceSegments(ReplaceSegments { object, merges });
        match self.0.apply(command).await? {
            CommandOutcome::SegmentsReplaced { replaced, refused } => {
                Ok(Replaced { replaced, refused })
            }
            other => Err(BrokerError::RemoteStorage(format!(
                "a segment merge answered {other:?}"
            ))),
        }
    }
}
