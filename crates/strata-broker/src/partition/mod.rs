//! One partition as the broker serves it: its log, its idempotent-producer state and a watch
//! of its high watermark that wakes long-polling fetches.
//!
//! Invariants: offsets are assigned, the producer state consulted and the append made under
//! one lock, so a retried idempotent batch can never be appended twice. Reads take the lock
//! only to plan (which file, which position, how far) and do their I/O outside it.
//!
//! Its role comes from the replicated metadata (see [`crate::reconciler`]). As the leader it
//! accepts appends and serves reads, stamps batches with the leader epoch it leads under,
//! and moves the high watermark by the followers' progress (see [`crate::leader_state`]).
//! The role is checked under the same lock as the append, so no append lands after the
//! broker learned it lost the leadership. As a follower it takes its leader's batches as
//! they are (see [`replication`]).

mod replication;

pub use replication::{FollowerFetch, FollowerPosition, ReplicationStatus};

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strata_log::{
    FileRange, LogConfig, LogError, PartitionLog, ReadPlan, SegmentFiles, ValidatedBatch,
};
use tokio::sync::watch;

use crate::config::TopicConfig;
use crate::error::BrokerError;
use crate::leader_state::{Assignment, LeaderState};
use crate::producer_state::{AppendedRange, ProducerBatch, ProducerStates, SequenceCheck};

/// The result of a produce append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub range: AppendedRange,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already appended.
    pub duplicate: bool,
}

/// Offsets of the partition at one instant: `log_start_offset <= local_log_start_offset`
/// (when anything is local), and `high_watermark <= log_end_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// The first offset of the whole log, in either tier.
    pub log_start_offset: i64,
    /// The first offset on local disk (Kafka's "local log start offset").
    pub local_log_start_offset: i64,
    /// The end of what is committed: readers see nothing at or above it.
    pub high_watermark: i64,
    /// The end of what `read_committed` readers see; the high watermark until transactions.
    pub last_stable_offset: i64,
    /// The offset the next append gets.
    pub log_end_offset: i64,
}

/// The offsets `start..end` of a partition that the manifest places in the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TieredRange {
    pub start: i64,
    pub end: i64,
}

/// What the manifest says of a partition: where its log starts (DeleteRecords and
/// retention move it, in both tiers) and what the object store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteLog {
    pub log_start_offset: i64,
    pub tiered: Option<TieredRange>,
}

/// Why a partition cannot serve: Kafka's offline replica, answered KAFKA_STORAGE_ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offline {
    /// Bringing it in line with the metadata failed (an unlink, a file that could not be
    /// created); the reconciler retries and it serves again once that succeeds.
    Reconcile(String),
    /// The local log was lost and starts at the tiered end: the idempotent-producer state
    /// of the batches before it is being read back from the object store, and until it is,
    /// a retried batch could not be told from a new one.
    RebuildingProducers,
    /// An fsync failed. The kernel may have dropped the pages it could not write, so a later
    /// fsync's success would prove nothing: nothing written since the last good fsync is
    /// acknowledged, and the partition stays offline until a restart recovers its log from
    /// what is really on disk.
    SyncFailed(String),
}

impl Offline {
    /// Which reason wins when two apply: only a lesser one may be cleared by its own fix.
    fn severity(&self) -> u8 {
        match self {
            Self::Reconcile(_) => 1,
            Self::RebuildingProducers => 2,
            Self::SyncFailed(_) => 3,
        }
    }
}

impl std::fmt::Display for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reconcile(why) => write!(f, "{why} (retrying)"),
            Self::RebuildingProducers => write!(
                f,
                "reading the idempotent-producer state of the tiered log back from the object store"
            ),
            Self::SyncFailed(why) => write!(f, "an fsync failed, restart to recover: {why}"),
        }
    }
}

/// What this broker does for a partition, as the metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Placed here, but neither led nor followed: it has no leader, or another process has
    /// registered under this node id since.
    Inactive,
    /// Led here under the assignment's leader epoch.
    Leader(Assignment),
    /// Copied here from `leader`, which leads under `leader_epoch`.
    Follower { leader: i32, leader_epoch: i32 },
}

impl Role {
    /// Leading a partition that has no other replica.
    pub fn alone(node_id: i32, leader_epoch: i32) -> Self {
        Self::Leader(Assignment {
            replicas: vec![node_id],
            isr: vec![node_id],
            leader_epoch,
            partition_epoch: 0,
            live: std::collections::BTreeMap::new(),
        })
    }
}

/// What this broker does for a partition, with what it needs to do it.
#[derive(Debug)]
enum Serving {
    Inactive,
    Leader(LeaderState),
    Follower { leader: i32, leader_epoch: i32 },
}

struct PartitionState {
    log: PartitionLog,
    /// Set while the partition cannot serve; appends and reads answer KAFKA_STORAGE_ERROR.
    offline: Option<Offline>,
    producers: ProducerStates,
    serving: Serving,
    /// This broker's node id, for the leader's view of the ISR.
    node_id: i32,
    /// The end of what this broker's own copy holds committed: what is appended, or under
    /// `--durability fsync` what is fsynced. The leader's contribution to the high watermark.
    local_end: i64,
    /// The topic's `min.insync.replicas`.
    min_isr: usize,
    /// As a follower, the high watermark its leader last reported.
    leader_high_watermark: i64,
    /// Whether sealed data goes to the object store (`remote.storage.enable` on a topic that
    /// is not compacted); local segments are then deleted only once committed there.
    tiered: bool,
    /// What the manifest says of this partition.
    remote: RemoteLog,
    /// The end of what is committed (see [`crate::replica`], which alone advances it).
    high_watermark: i64,
    /// The tiered end as far as it would survive losing this broker's disk: local copies
    /// below it may go. The reconciler sets it on a replicated quorum; an embedded node's
    /// metadata backups set it.
    durable_tiered_end: Option<i64>,
}

impl PartitionState {
    /// Writes the producer state as of the active segment's start if a roll has just
    /// started a new one (its base is no longer `active_before`).
    fn snapshot_producers_if_rolled(&self, active_before: i64) {
        let active = self.log.active_base_offset();
        if active != active_before {
            crate::producer_snapshots::write(self.log.dir(), active, &self.producers);
        }
    }

    /// The epoch this broker leads the partition under, if it leads it.
    fn leader_epoch(&self) -> Option<i32> {
        match &self.serving {
            Serving::Leader(leader) => Some(leader.leader_epoch()),
            Serving::Inactive | Serving::Follower { .. } => None,
        }
    }

    /// Moves the high watermark as far as the commit rule allows (never down): to the
    /// leader's own committed end, bounded by the ISR's progress. Answers whether it moved.
    fn advance_high_watermark(&mut self) -> bool {
        let Serving::Leader(leader) = &self.serving else {
            return false;
        };
        let Some(candidate) = leader.high_watermark(self.local_end, self.min_isr) else {
            return false;
        };
        let candidate = candidate.min(self.log.log_end_offset());
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            return true;
        }
        false
    }

    fn check_online(&self) -> Result<(), BrokerError> {
        match &self.offline {
            None => Ok(()),
            Some(offline) => Err(BrokerError::PartitionOffline {
                reason: offline.to_string(),
            }),
        }
    }

    /// Marks the partition offline; a reason is never replaced by a lesser one.
    fn go_offline(&mut self, offline: Offline) {
        if self
            .offline
            .as_ref()
            .is_none_or(|now| offline.severity() >= now.severity())
        {
            match offline {
                // A log restarted at the tiered end (a lost disk, a new replica) expects it.
                Offline::RebuildingProducers => {
                    tracing::info!(reason = %offline, "a partition is offline until it is ready");
                }
                Offline::Reconcile(_) | Offline::SyncFailed(_) => {
                    tracing::error!(reason = %offline, "a partition went offline");
                }
            }
            self.offline = Some(offline);
        }
    }

    /// Passes `result` on, taking the partition offline first if it failed in an fsync.
    fn note_sync_failure<T>(&mut self, result: Result<T, LogError>) -> Result<T, BrokerError> {
        result.map_err(|e| {
            if let LogError::SyncFailed { .. } = e {
                self.go_offline(Offline::SyncFailed(e.to_string()));
            }
            BrokerError::from(e)
        })
    }

    /// Moves the durable tiered end forward to `end`: local retention may delete below it,
    /// and nobody asks again when data below it was appended.
    fn advance_durable_tiered_end(&mut self, end: i64) {
        self.durable_tiered_end = self.durable_tiered_end.max(Some(end));
        self.log.forget_append_times_below(end);
    }

    /// The end of what local retention may delete: everything, unless the log is tiered,
    /// when only what the manifest holds.
    fn deletable_end(&self) -> i64 {
        match (self.tiered, self.durable_tiered_end) {
            (false, _) => i64::MAX,
            (true, Some(end)) => end,
            (true, None) => i64::MIN,
        }
    }

    fn offsets(&self) -> LogOffsets {
        let local_log_start_offset = self.log.log_start_offset();
        let log_start_offset = match self.remote.tiered {
            // The tiers meet (or overlap): the log starts where the tiered part does.
            Some(remote) if remote.end >= local_log_start_offset => {
                remote.start.min(local_log_start_offset)
            }
            _ => local_log_start_offset,
        }
        .max(self.remote.log_start_offset.min(self.log.log_end_offset()));
        LogOffsets {
            log_start_offset,
            local_log_start_offset,
            high_watermark: self.high_watermark,
            last_stable_offset: self.high_watermark,
            log_end_offset: self.log.log_end_offset(),
        }
    }
}

/// A partition of a topic hosted by this broker.
pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    state: Mutex<PartitionState>,
    /// The high watermark, for waiters: long-polling fetches, appends waiting to commit. It
    /// also wakes them (unchanged) when the partition goes offline or its role changes.
    high_watermark: watch::Sender<i64>,
    /// The log end, for followers' long-polling fetches.
    log_end: watch::Sender<i64>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("index", &self.index)
            .finish()
    }
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Consumers: only what is committed.
    HighWatermark,
    /// Followers: everything the leader has, which they must copy to commit it.
    LogEnd,
}

/// The idempotent-producer state of `log`: the newest snapshot, then the batches after it.
fn load_producers(log: &PartitionLog) -> Result<ProducerStates, BrokerError> {
    let (from, mut producers) =
        crate::producer_snapshots::load_latest(log.dir(), log.log_end_offset())
            .unwrap_or((i64::MIN, ProducerStates::default()));
    // When a replayed batch was appended is not stored (its timestamp is the producer's):
    // count it as seen now, so expiry errs on keeping the state.
    let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    log.scan_batch_headers(from, |header| {
        if let Some(batch) = ProducerBatch::from_header(header) {
            producers.record(batch, appended_range(header), now_ms);
        }
    })?;
    Ok(producers)
}

/// Where a stored batch sits; its append time is not stored.
fn appended_range(header: &strata_log::BatchHeader) -> AppendedRange {
    AppendedRange {
        base_offset: header.base_offset,
        last_offset: header.last_offset(),
        log_append_time_ms: -1,
    }
}

/// The local log settings a topic's configuration implies: a tiered topic keeps its local
/// copy by `local.retention.*`, the rest of the log by `retention.*`.
pub fn log_config(config: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: config.segment_bytes(),
        segment_ms: config.segment_ms(),
        retention_ms: config.local_retention_ms(),
        retention_bytes: config.local_retention_bytes(),
        index_interval_bytes: config.index_interval_bytes(),
    }
}

impl Partition {
    /// Opens (recovering if needed) the partition's log in `dir` and rebuilds producer state.
    /// Its sealed segments are read through `files`, shared by the broker's partitions.
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: &Path,
        config: &TopicConfig,
        files: Arc<SegmentFiles>,
        node_id: i32,
    ) -> Result<Self, BrokerError> {
        let log = PartitionLog::open(dir, log_config(config), files)?;
        let producers = load_producers(&log)?;
        // What survived a restart is what there is: recovery already cut any torn tail. A
        // follower learns its high watermark from its leader.
        let log_end_offset = log.log_end_offset();
        let (high_watermark, _) = watch::channel(log_end_offset);
        let (log_end, _) = watch::channel(log_end_offset);
        Ok(Self {
            topic,
            index,
            state: Mutex::new(PartitionState {
                log,
                offline: None,
                producers,
                serving: Serving::Inactive,
                node_id,
                local_end: log_end_offset,
                min_isr: config.min_insync_replicas(),
                leader_high_watermark: log_end_offset,
                tiered: config.tiered(),
                remote: RemoteLog::default(),
                high_watermark: log_end_offset,
                durable_tiered_end: None,
            }),
            high_watermark,
            log_end,
        })
    }

    fn lock(&self) -> MutexGuard<'_, PartitionState> {
        self.state
            .lock()
            .expect("a partition lock holder never panics")
    }

    /// Appends a validated batch, deduplicating idempotent retries. The batch is not
    /// committed (readable, acknowledgeable) until the high watermark covers
    /// it: call this through [`crate::replica::ReplicaManager`].
    /// With `needs_min_isr` (`acks=all`), an ISR below `min.insync.replicas` refuses it.
    pub fn append(
        &self,
        batch: &ValidatedBatch,
        now_ms: i64,
        needs_min_isr: bool,
    ) -> Result<AppendOutcome, BrokerError> {
        let header = batch.header();
        let producer = ProducerBatch::from_header(header);
        let mut state = self.lock();
        let Serving::Leader(leader) = &state.serving else {
            return Err(BrokerError::NotLeaderOrFollower);
        };
        let leader_epoch = leader.leader_epoch();
        if needs_min_isr && !leader.has_min_isr(state.min_isr) {
            return Err(BrokerError::NotEnoughReplicas {
                isr: leader.assignment().isr.len(),
                min_isr: state.min_isr,
            });
        }
        state.check_online()?;
        if let Some(producer) = &producer
            && let SequenceCheck::Duplicate(range) = state.producers.check(producer)?
        {
            return Ok(AppendOutcome {
                range,
                log_start_offset: state.log.log_start_offset(),
                duplicate: true,
            });
        }
        let active_before = state.log.active_base_offset();
        let info = state.log.append(batch, leader_epoch, now_ms);
        let info = state.note_sync_failure(info)?;
        // A roll before this batch: the snapshot at the new segment excludes it.
        state.snapshot_producers_if_rolled(active_before);
        let range = AppendedRange {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_append_time_ms: info.log_append_time_ms,
        };
        if let Some(producer) = producer {
            state.producers.record(producer, range, now_ms);
        }
        let log_start_offset = state.log.log_start_offset();
        let log_end_offset = state.log.log_end_offset();
        drop(state);
        self.log_end.send_replace(log_end_offset);
        Ok(AppendOutcome {
            range,
            log_start_offset,
            duplicate: false,
        })
    }

    /// Counts this broker's copy as committed up to `end` (appended, or under `--durability
    /// fsync` fsynced), moves the high watermark as far as that and the ISR allow, and wakes
    /// whoever waits on it.
    pub fn commit_local(&self, end: i64) {
        let mut state = self.lock();
        state.local_end = state.local_end.max(end.min(state.log.log_end_offset()));
        self.publish_high_watermark(state);
    }

    /// Moves the high watermark if the commit rule now allows, and tells waiters.
    fn publish_high_watermark(&self, mut state: MutexGuard<'_, PartitionState>) {
        if state.advance_high_watermark() {
            let high_watermark = state.high_watermark;
            drop(state);
            self.high_watermark.send_replace(high_watermark);
        }
    }

    /// Waits until the high watermark reaches `end`; fails if the partition goes offline,
    /// this broker stops leading it, the ISR falls below `min.insync.replicas`
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND), or `timeout` passes first.
    pub async fn wait_high_watermark(
        &self,
        end: i64,
        timeout: std::time::Duration,
    ) -> Result<(), BrokerError> {
        let mut watcher = self.high_watermark.subscribe();
        let reached = async {
            loop {
                if *watcher.borrow_and_update() >= end {
                    return Ok(());
                }
                {
                    let state = self.lock();
                    state.check_online()?;
                    let Serving::Leader(leader) = &state.serving else {
                        return Err(BrokerError::NotLeaderOrFollower);
                    };
                    if !leader.has_min_isr(state.min_isr) {
                        return Err(BrokerError::NotEnoughReplicasAfterAppend {
                            isr: leader.assignment().isr.len(),
                            min_isr: state.min_isr,
                        });
                    }
                }
                if watcher.changed().await.is_err() {
                    return Err(BrokerError::ShuttingDown);
                }
            }
        };
        tokio::time::timeout(timeout, reached)
            .await
            .map_err(|_| BrokerError::CommitTimedOut {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })?
    }

    /// Reads whole batches from `fetch_offset`, at most `max_bytes` unless `at_least_one` and
    /// the first batch is larger, and none at or above the high watermark (or, for a
    /// follower, the log end). The file I/O runs outside the partition lock.
    pub fn read(
        &self,
        fetch_offset: i64,
        bound: ReadBound,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<Bytes, BrokerError> {
        let plan = self.read_plan(fetch_offset, bound, max_bytes, at_least_one)?;
        Ok(plan.execute()?)
    }

    /// Finds what [`Self::read`] would read without reading it (only batch headers), for a
    /// fetch that sends the range from the file. `None`: no batch.
    pub fn locate(
        &self,
        fetch_offset: i64,
        bound: ReadBound,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<Option<FileRange>, BrokerError> {
        let plan = self.read_plan(fetch_offset, bound, max_bytes, at_least_one)?;
        Ok(plan.locate()?)
    }

    fn read_plan(
        &self,
        fetch_offset: i64,
        bound: ReadBound,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<ReadPlan, BrokerError> {
        let state = self.lock();
        state.check_online()?;
        let end = match bound {
            ReadBound::HighWatermark => state.high_watermark,
            ReadBound::LogEnd => state.log.log_end_offset(),
        };
        Ok(state
            .log
            .read_plan(fetch_offset, end, max_bytes, at_least_one)?)
    }

    /// Takes the role the metadata gives this broker. A new leader epoch starts a new
    /// leadership (the followers' progress is learned again); the same epoch with a newer
    /// ISR updates it. Waiters are woken: appends waiting to commit here may now fail.
    pub fn set_role(&self, role: &Role, now_ms: i64) {
        let mut state = self.lock();
        let log_end_offset = state.log.log_end_offset();
        let node_id = state.node_id;
        state.serving = match (
            std::mem::replace(&mut state.serving, Serving::Inactive),
            role,
        ) {
            (Serving::Leader(mut leader), Role::Leader(assignment))
                if leader.leader_epoch() == assignment.leader_epoch =>
            {
                leader.update(assignment.clone(), now_ms);
                Serving::Leader(leader)
            }
            (_, Role::Leader(assignment)) => Serving::Leader(LeaderState::new(
                node_id,
                assignment.clone(),
                log_end_offset,
                now_ms,
            )),
            (
                _,
                Role::Follower {
                    leader,
                    leader_epoch,
                },
            ) => Serving::Follower {
                leader: *leader,
                leader_epoch: *leader_epoch,
            },
            (_, Role::Inactive) => Serving::Inactive,
        };
        state.advance_high_watermark();
        let high_watermark = state.high_watermark;
        drop(state);
        self.high_watermark.send_modify(|hw| *hw = high_watermark);
    }

    /// The epoch this broker leads the partition under, if it leads it.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.lock().leader_epoch()
    }

    /// The leader epoch this broker serves reads under: the one it leads or follows.
    pub fn serving_epoch(&self) -> Option<i32> {
        match &self.lock().serving {
            Serving::Leader(leader) => Some(leader.leader_epoch()),
            Serving::Follower { leader_epoch, .. } => Some(*leader_epoch),
            Serving::Inactive => None,
        }
    }

    /// Applies a changed topic configuration to the log.
    pub fn set_config(&self, config: &TopicConfig) {
        let mut state = self.lock();
        state.log.set_config(log_config(config));
        state.tiered = config.tiered();
        state.min_isr = config.min_insync_replicas();
    }

    /// Takes what the manifest now says of this partition. A local log that ends before the
    /// tiered part does (its disk was lost or replaced) skips ahead to the tiered end, so new
    /// appends continue after the stored offsets instead of reusing them; local data below
    /// the log start goes.
    /// With `durable`, the manifest it came from survives a lost disk, so local copies of
    /// what it holds may go.
    /// A partition that skipped ahead goes offline until [`Self::seed_producers`] gives it
    /// the producer state of its tiered tail.
    pub fn set_remote(
        &self,
        remote: RemoteLog,
        durable: bool,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        let mut state = self.lock();
        state.remote = remote;
        if durable && let Some(tiered) = remote.tiered {
            state.advance_durable_tiered_end(tiered.end);
        }
        state.log.advance_log_start(remote.log_start_offset)?;
        if let Some(tiered) = remote.tiered
            && state.log.skip_to(tiered.end, now_ms)?
        {
            state.go_offline(Offline::RebuildingProducers);
            // What the log skipped over is committed in the object store.
            let end = state.log.log_end_offset();
            state.high_watermark = end;
            state.local_end = end;
            drop(state);
            self.high_watermark.send_replace(end);
        }
        Ok(())
    }

    /// Whether the producer state of the tiered tail still has to be read back.
    pub fn awaits_producers(&self) -> bool {
        matches!(self.lock().offline, Some(Offline::RebuildingProducers))
    }

    /// Records the idempotent batches (by their headers, oldest first) of the tiered tail
    /// the local log no longer holds, then serves again.
    pub fn seed_producers(&self, headers: &[strata_log::BatchHeader], now_ms: i64) {
        let mut state = self.lock();
        for header in headers {
            if let Some(batch) = ProducerBatch::from_header(header) {
                state
                    .producers
                    .record(batch, appended_range(header), now_ms);
            }
        }
        if matches!(state.offline, Some(Offline::RebuildingProducers)) {
            state.offline = None;
        }
        let dir = state.log.dir().to_path_buf();
        crate::producer_snapshots::write(&dir, state.log.log_end_offset(), &state.producers);
    }

    /// Lets local retention delete what is below `end` (a metadata backup holds it).
    pub fn set_durable_tiered_end(&self, end: i64) {
        self.lock().advance_durable_tiered_end(end);
    }

    /// The first offset losing this broker's disk would lose: the durable tiered end (see
    /// [`Self::set_durable_tiered_end`]), or the log start while nothing tiered is durable.
    pub fn first_undurable_offset(&self) -> i64 {
        let state = self.lock();
        let log_start = state.offsets().log_start_offset;
        state
            .durable_tiered_end
            .map_or(log_start, |end| end.max(log_start))
    }

    /// What the object store holds of this partition.
    pub fn tiered_range(&self) -> Option<TieredRange> {
        self.lock().remote.tiered
    }

    pub fn offsets(&self) -> LogOffsets {
        self.lock().offsets()
    }

    /// The bytes of this partition's log on local disk.
    pub fn local_size_bytes(&self) -> u64 {
        self.lock().log.size_bytes()
    }

    /// The local data from `from_offset` on (see [`PartitionLog::upload_range`]), below
    /// the high watermark: nothing uncommitted leaves this broker.
    pub fn upload_range(
        &self,
        from_offset: i64,
        max_bytes: u64,
    ) -> Result<Option<strata_log::UploadRange>, BrokerError> {
        let state = self.lock();
        Ok(state
            .log
            .upload_range(from_offset, state.high_watermark, max_bytes)?)
    }

    /// The local bytes from `offset` on and when the first of them was appended (see
    /// [`PartitionLog::pending_from`]).
    pub fn pending_from(&self, offset: i64) -> (u64, Option<i64>) {
        self.lock().log.pending_from(offset)
    }

    /// OffsetForLeaderEpoch: the largest epoch not above `epoch` that wrote here and where its
    /// data ends (Kafka's -1, -1 when it cannot be placed).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), BrokerError> {
        let state = self.lock();
        state.check_online()?;
        Ok(state.log.end_offset_for_epoch(epoch))
    }

    /// The first offset whose timestamp is at least `timestamp`, with that timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, BrokerError> {
        Ok(self.lock().log.offset_for_timestamp(timestamp)?)
    }

    /// The offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, BrokerError> {
        Ok(self.lock().log.max_timestamp()?)
    }

    /// Subscribes to high watermark changes (for fetch long-polling).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Subscribes to log end changes (for followers' long-polling fetches).
    pub fn watch_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Makes everything appended so far durable; returns the offset it is durable up to.
    pub fn sync(&self) -> Result<i64, BrokerError> {
        let handle = {
            let state = self.lock();
            state.check_online()?;
            state.log.sync_handle()?
        };
        handle.sync().map_err(|e| {
            let reason = format!("fsync of {}-{}: {e}", self.topic, self.index);
            self.lock().go_offline(Offline::SyncFailed(reason.clone()));
            // Whoever waits for this partition's commit learns it will not come.
            self.high_watermark.send_modify(|_| {});
            BrokerError::PartitionOffline { reason }
        })
    }

    /// Why the partition cannot serve, if it cannot.
    pub fn offline(&self) -> Option<Offline> {
        self.lock().offline.clone()
    }

    /// Takes the partition offline while a reconcile step fails (`Some`), or back online
    /// once it succeeds (`None`). A failed fsync keeps it offline whatever this says.
    pub fn set_reconcile_failure(&self, failure: Option<String>) {
        let mut state = self.lock();
        match failure {
            Some(why) => state.go_offline(Offline::Reconcile(why)),
            None => {
                if matches!(state.offline, Some(Offline::Reconcile(_))) {
                    state.offline = None;
                }
            }
        }
    }

    /// Applies local retention and time-based rolls; returns how many segments were
    /// deleted. A tiered log deletes only what the manifest holds.
    /// An offline partition is left alone.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, BrokerError> {
        let mut state = self.lock();
        if state.offline.is_some() {
            return Ok(0);
        }
        let deletable_end = state.deletable_end();
        let active_before = state.log.active_base_offset();
        if state.tiered {
            let rolled = state.log.roll_if_retired(now_ms, deletable_end);
            state.note_sync_failure(rolled)?;
        }
        let outcome = state.log.enforce_retention(now_ms, deletable_end);
        let deleted = state.note_sync_failure(outcome)?.deleted_segments;
        state.snapshot_producers_if_rolled(active_before);
        Ok(deleted)
    }

    /// Starts a new segment (if the active one holds anything); answers its base offset.
    pub fn roll(&self, now_ms: i64) -> Result<i64, BrokerError> {
        let mut state = self.lock();
        state.check_online()?;
        if state.log.log_end_offset() > state.log.active_base_offset() {
            let active_before = state.log.active_base_offset();
            let rolled = state.log.roll(now_ms);
            state.note_sync_failure(rolled)?;
            state.snapshot_producers_if_rolled(active_before);
        }
        Ok(state.log.log_end_offset())
    }

    /// Deletes the segments wholly below `offset`; answers how many went.
    pub fn delete_segments_below(&self, offset: i64) -> Result<usize, BrokerError> {
        Ok(self.lock().log.delete_segments_below(offset)?)
    }

    /// Flushes the log before shutdown.
    pub fn flush(&self) -> Result<(), BrokerError> {
        let mut state = self.lock();
        state.check_online()?;
        let flushed = state.log.flush();
        state.note_sync_failure(flushed)
    }

    /// Forgets producers silent for `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock().producers.expire(now_ms, expiration_ms)
    }

    /// How many producers have idempotence state here.
    pub fn producer_count(&self) -> usize {
        self.lock().producers.len()
    }
}

/// A small descriptor set for unit tests that open partitions.
#[cfg(test)]
pub(crate) fn test_files() -> Arc<SegmentFiles> {
    Arc::new(SegmentFiles::new(16))
}

/// A partition of `topic` in `dir` with the built-in config, led by this broker (epoch 0),
/// for unit tests.
#[cfg(test)]
pub(crate) fn test_partition(topic: &str, dir: &Path, files: Arc<SegmentFiles>) -> Partition {
    let partition =
        Partition::open(topic.into(), 0, dir, &TopicConfig::builtin(), files, 1).expect("open");
    partition.set_role(&Role::alone(1, 0), 0);
    partition
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a lost disk would lose starts at the durable tiered end, not the committed one:
    /// an embedded node's commit counts only once a metadata backup holds it.
    #[test]
    fn only_a_durable_commit_is_safe_from_a_lost_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = Partition::open(
            "t".into(),
            0,
            dir.path(),
            &TopicConfig::builtin(),
            test_files(),
            1,
        )
        .expect("open");
        let remote = RemoteLog {
            log_start_offset: 0,
            tiered: Some(TieredRange { start: 0, end: 100 }),
        };
        partition.set_remote(remote, false, 0).expect("set_remote");
        assert_eq!(
            partition.first_undurable_offset(),
            0,
            "committed, not backed up"
        );
        partition.set_durable_tiered_end(60);
        assert_eq!(
            partition.first_undurable_offset(),
            60,
            "a backup holds part of it"
        );
        partition.set_remote(remote, true, 0).expect("set_remote");
        assert_eq!(
            partition.first_undurable_offset(),
            100,
            "a replicated commit"
        );
    }

    fn one_batch() -> ValidatedBatch {
        use strata_log::test_util::{NOW, batch, limits, record};
        let bytes = batch(&[record("v")], strata_log::Compression::None, NOW);
        strata_log::validate_produce_batch(bytes, &limits()).expect("valid")
    }

    #[test]
    fn readers_see_only_what_the_high_watermark_covers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = test_partition("t", dir.path(), test_files());
        for _ in 0..3 {
            partition.append(&one_batch(), 0, false).expect("append");
        }
        let offsets = partition.offsets();
        assert_eq!((offsets.high_watermark, offsets.log_end_offset), (0, 3));
        assert!(
            partition
                .read(0, ReadBound::HighWatermark, 1 << 20, true)
                .expect("read")
                .is_empty()
        );
        partition.commit_local(2);
        let (_, last) = strata_log::batch::complete_batches(
            &partition
                .read(0, ReadBound::HighWatermark, 1 << 20, true)
                .expect("read"),
            i64::MAX,
        );
        assert_eq!(last.map(|h| h.last_offset()), Some(1));
        partition.commit_local(1);
        assert_eq!(partition.offsets().high_watermark, 2, "it never moves down");
        partition.commit_local(99);
        assert_eq!(
            partition.offsets().high_watermark,
            3,
            "nor past the log end"
        );
    }

    #[tokio::test]
    async fn a_commit_waiter_wakes_on_the_commit_and_fails_when_it_cannot_come() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = Arc::new(test_partition("t", dir.path(), test_files()));
        partition.append(&one_batch(), 0, false).expect("append");
        let waiting = {
            let partition = partition.clone();
            tokio::spawn(async move {
                partition
                    .wait_high_watermark(1, std::time::Duration::from_secs(60))
                    .await
            })
        };
        tokio::task::yield_now().await;
        partition.commit_local(1);
        waiting.await.expect("join").expect("committed");

        partition.append(&one_batch(), 0, false).expect("append");
        let short = partition
            .wait_high_watermark(2, std::time::Duration::from_millis(10))
            .await;
        assert!(matches!(short, Err(BrokerError::CommitTimedOut { .. })));
        let deposed = {
            let partition = partition.clone();
            tokio::spawn(async move {
                partition
                    .wait_high_watermark(2, std::time::Duration::from_secs(60))
                    .await
            })
        };
        tokio::task::yield_now().await;
        partition.set_role(&Role::Inactive, 0);
        assert!(matches!(
            deposed.await.expect("join"),
            Err(BrokerError::NotLeaderOrFollower)
        ));
    }

    /// A batch of producer 7 at epoch 0 with first sequence `sequence`.
    fn idempotent_batch(sequence: i32) -> ValidatedBatch {
        use strata_log::test_util::{NOW, batch, fix_crc, limits, record};
        let mut bytes = batch(&[record("v")], strata_log::Compression::None, NOW).to_vec();
        bytes[43..51].copy_from_slice(&7i64.to_be_bytes());
        bytes[51..53].copy_from_slice(&0i16.to_be_bytes());
        bytes[53..57].copy_from_slice(&sequence.to_be_bytes());
        fix_crc(&mut bytes);
        strata_log::validate_produce_batch(bytes::Bytes::from(bytes), &limits()).expect("valid")
    }

    #[test]
    fn producer_state_outlives_the_segments_it_came_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            Partition::open(
                "t".into(),
                0,
                dir.path(),
                &TopicConfig::builtin(),
                test_files(),
                1,
            )
            .expect("open")
        };
        let partition = open();
        partition.set_role(&Role::alone(1, 0), 0);
        let first = partition
            .append(&idempotent_batch(0), 0, false)
            .expect("append");
        partition.roll(0).expect("roll");
        partition.append(&one_batch(), 0, false).expect("append");
        partition.roll(0).expect("roll");
        // Retention takes the segment holding the producer's batch.
        partition.delete_segments_below(1).expect("delete");
        assert_eq!(partition.offsets().log_start_offset, 1);
        drop(partition);
        let reopened = open();
        reopened.set_role(&Role::alone(1, 0), 0);
        let retried = reopened
            .append(&idempotent_batch(0), 0, false)
            .expect("retry");
        assert!(retried.duplicate, "the snapshot remembers the batch");
        assert_eq!(retried.range, first.range);
        assert!(
            !reopened
                .append(&idempotent_batch(1), 0, false)
                .expect("next")
                .duplicate
        );
    }

    #[test]
    fn a_failed_fsync_takes_the_partition_offline_for_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = test_files();
        let partition = test_partition("t", dir.path(), files.clone());
        partition.append(&one_batch(), 0, false).expect("append");
        assert_eq!(partition.sync().expect("sync"), 1);
        partition.append(&one_batch(), 0, false).expect("append");
        files.fail_next_syncs(1);
        let failed = partition.sync().expect_err("the fsync fails");
        assert_eq!(
            failed.response_error(),
            kafka_protocol::error::ResponseError::KafkaStorageError
        );
        assert!(matches!(partition.offline(), Some(Offline::SyncFailed(_))));
        // The disk "works" again, but a second fsync proves nothing about the first's pages:
        // nothing more is acknowledged, appended or read until a restart recovers the log.
        assert!(partition.sync().is_err(), "no second fsync is trusted");
        assert!(partition.append(&one_batch(), 0, false).is_err());
        assert!(
            partition
                .read(0, ReadBound::HighWatermark, 1 << 20, true)
                .is_err()
        );
        partition.set_reconcile_failure(None);
        assert!(
            partition.offline().is_some(),
            "a reconcile success does not clear it"
        );
        drop(partition);
        let reopened =
            Partition::open("t".into(), 0, dir.path(), &TopicConfig::builtin(), files, 1)
                .expect("reopen");
        assert_eq!(reopened.offline(), None, "a restart recovers it");
        assert_eq!(reopened.offsets().high_watermark, 2);
    }

    #[test]
    fn a_seal_whose_fsync_fails_takes_the_partition_offline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = test_files();
        let partition = test_partition("t", dir.path(), files.clone());
        partition.append(&one_batch(), 0, false).expect("append");
        files.fail_next_syncs(1);
        partition
            .roll(0)
            .expect("a roll leaves its fsync to the sealing thread");
        assert!(
            partition.sync().is_err(),
            "a sync waits for the seal and learns that it failed"
        );
        assert!(matches!(partition.offline(), Some(Offline::SyncFailed(_))));
        assert!(partition.append(&one_batch(), 0, false).is_err());
    }
}
