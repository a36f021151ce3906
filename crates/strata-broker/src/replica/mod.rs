//! The replica manager: the one path by which anything appends to a partition this broker
//! hosts (produce, the group coordinator, later the transaction coordinator and replication)
//! and the one path by which anything reads from one (fetch, coordinators replaying their
//! partition).
//!
//! An append is validated, written to the local log, and then waits until it is committed:
//! until the partition's high watermark covers it. What moves the high watermark is the
//! commit rule, and only this module applies it: with `--durability os` a write is
//! committed once it is in the log; with `--durability fsync`, once a group-commit round has
//! fsynced it (see [`group_commit`]); with replication, once the in-sync replicas have it.
//! A read never returns data at or above the high watermark, and picks the local log or the
//! object store by where the offset lives.
//!
//! Crash: nothing is acknowledged before it is committed, so a crash loses only what no
//! client was told was written. A failed fsync takes the partition offline (see
//! [`crate::partition`]) and fails every append waiting on it.

mod fetch_session;
pub mod fetcher;
pub mod group_commit;
mod isr;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_log::{BatchLimits, FileRange, ValidatedBatch, validate_produce_batch};
use tracing::{Instrument, debug, debug_span, info_span};

use crate::clock::Clock;
use crate::config::{BrokerConfig, TimestampType};
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::partition::{AppendOutcome, FollowerFetch, LogOffsets, Partition, ReadBound};
use crate::tiering::UploadBacklog;
use crate::tiering::manifest::ManifestStore;
use crate::tiering::remote_read::RemoteReader;
use crate::topics::{Topic, TopicRegistry};
use group_commit::GroupCommit;
pub use isr::IsrWriter;

/// How a request names a topic: by name, or by id (the newest Produce and Fetch versions).
#[derive(Debug, Clone, Copy)]
pub enum TopicRef<'a> {
    Name(&'a str),
    Id(uuid::Uuid),
}

/// A partition this broker leads, as a request found it.
#[derive(Debug, Clone)]
pub struct LedPartition {
    pub topic: Arc<Topic>,
    pub partition: Arc<Partition>,
    pub leader_epoch: i32,
}

/// What the cluster metadata says of topics: enough to tell a partition that does not exist
/// from one led elsewhere.
pub trait TopicCatalog: Send + Sync {
    /// How many partitions `topic` has, if the metadata has it.
    fn partition_count(&self, topic: TopicRef<'_>) -> Option<usize>;
}

impl TopicCatalog for MetadataView {
    fn partition_count(&self, topic: TopicRef<'_>) -> Option<usize> {
        self.read(|state| {
            let topic = match topic {
                TopicRef::Name(name) => state.topic_by_name(name),
                TopicRef::Id(id) => state.topic(id),
            };
            topic.map(|t| t.partitions.len())
        })
    }
}

/// Kafka's `acks`: how much of the commit an append waits for before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredAcks {
    /// `acks=0`: no answer at all; the append is still committed in the background.
    None,
    /// `acks=1`: the leader's log has it (fsynced, under `--durability fsync`).
    Leader,
    /// `acks=all` (-1): committed. Without followers, the same as the leader's commit.
    All,
}

impl RequiredAcks {
    pub fn from_wire(acks: i16) -> Result<Self, BrokerError> {
        match acks {
            0 => Ok(Self::None),
            1 => Ok(Self::Leader),
            -1 => Ok(Self::All),
            acks => Err(BrokerError::InvalidRequiredAcks { acks }),
        }
    }
}

/// One client batch for one partition.
#[derive(Debug)]
pub struct ProducedBatch {
    pub led: LedPartition,
    pub records: Bytes,
}

/// Whole batches read from a partition, and its offsets when they were read.
#[derive(Debug)]
pub struct ReadResult {
    pub records: Records,
    pub offsets: LogOffsets,
}

/// The batches a read found: in memory (a tiered read, through the block cache), or in a
/// local segment, located but not read, for the connection to send from the file.
#[derive(Debug, Clone)]
pub enum Records {
    Memory(Bytes),
    File(FileRange),
}

impl Default for Records {
    fn default() -> Self {
        Self::Memory(Bytes::new())
    }
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(bytes) => bytes.len(),
            Self::File(range) => range.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, read from the file if they are there. Blocking.
    #[cfg(test)]
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            Self::Memory(bytes) => Ok(bytes.clone()),
            Self::File(range) => range.read(),
        }
    }

    fn located(range: Option<FileRange>) -> Self {
        range.map_or_else(Self::default, Self::File)
    }
}

/// How a replica answers a fetch of one partition.
#[derive(Debug)]
pub enum FetchRead {
    /// Batches from the fetch offset: up to the log end for a follower, the high watermark
    /// for a consumer.
    Records(ReadResult),
    /// The fetcher's log diverged after `end_offset` of `epoch` (KIP-320, KIP-595): a
    /// follower truncates there, a consumer knows its position is gone.
    Diverging {
        epoch: i32,
        end_offset: i64,
        offsets: LogOffsets,
    },
}

/// What the replica manager is built from.
pub struct ReplicaManager {
    topics: Arc<TopicRegistry>,
    catalog: Arc<dyn TopicCatalog>,
    manifest: Arc<dyn ManifestStore>,
    remote: Arc<RemoteReader>,
    /// `Some` under `--durability fsync`.
    group_commit: Option<GroupCommit>,
    backlog: UploadBacklog,
    /// This broker's id, as leader of the partitions whose ISR it changes.
    node_id: i32,
    /// Where ISR changes go: the metadata quorum.
    isr_writer: Arc<dyn IsrWriter>,
    /// Appends are acknowledged only while it holds (see [`crate::lease`]).
    lease: Lease,
    /// `replica.lag.time.max.ms`
    lag_time_max_ms: i64,
    /// `strata.tiering.local.budget.bytes`
    local_budget_bytes: u64,
    max_decompressed_batch_bytes: usize,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager").finish_non_exhaustive()
    }
}

/// The dependencies of a [`ReplicaManager`].
pub struct ReplicaDeps {
    pub topics: Arc<TopicRegistry>,
    pub catalog: Arc<dyn TopicCatalog>,
    pub manifest: Arc<dyn ManifestStore>,
    pub remote: Arc<RemoteReader>,
    pub group_commit: Option<GroupCommit>,
    pub backlog: UploadBacklog,
    pub isr_writer: Arc<dyn IsrWriter>,
    pub lease: Lease,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl ReplicaManager {
    pub fn new(config: &BrokerConfig, deps: ReplicaDeps) -> Self {
        Self {
            topics: deps.topics,
            catalog: deps.catalog,
            manifest: deps.manifest,
            remote: deps.remote,
            group_commit: deps.group_commit,
            backlog: deps.backlog,
            node_id: config.node_id,
            isr_writer: deps.isr_writer,
            lease: deps.lease,
            lag_time_max_ms: i64::try_from(config.replication.lag_time_max.as_millis())
                .unwrap_or(i64::MAX),
            local_budget_bytes: config.tiering.local_budget_bytes,
            max_decompressed_batch_bytes: config.max_decompressed_batch_bytes,
            metrics: deps.metrics,
            clock: deps.clock,
        }
    }

    /// Whether this broker's lease holds (see [`crate::lease`]): while it does not, it
    /// acknowledges nothing and does not claim leadership.
    pub fn holds_lease(&self) -> bool {
        self.lease.expired_for(self.clock.now()).is_none()
    }

    /// The time batches are stamped with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The partition a Produce, Fetch or ListOffsets addresses if this broker leads it, or
    /// why not as Kafka says it: a partition the metadata places elsewhere (or whose
    /// leadership is moving) is NOT_LEADER_OR_FOLLOWER, so the client refreshes its metadata
    /// and retries; one the metadata does not have is unknown.
    pub fn led_partition(
        &self,
        topic: TopicRef<'_>,
        index: i32,
    ) -> Result<LedPartition, BrokerError> {
        let hosted = match topic {
            TopicRef::Name(name) => self.topics.get(name),
            TopicRef::Id(id) => self.topics.get_by_id(id),
        };
        if let Some(hosted) = hosted
            && let Some(partition) = hosted.partition(index).cloned()
        {
            return match partition.leader_epoch() {
                Some(leader_epoch) => Ok(LedPartition {
                    topic: hosted,
                    partition,
                    leader_epoch,
                }),
                None => Err(BrokerError::NotLeaderOrFollower),
            };
        }
        let known = self
            .catalog
            .partition_count(topic)
            .map(|count| usize::try_from(index).is_ok_and(|i| i < count));
        match (known, topic) {
            (Some(true), _) => Err(BrokerError::NotLeaderOrFollower),
            (None, TopicRef::Id(_)) => Err(BrokerError::UnknownTopicId),
            _ => Err(BrokerError::UnknownTopicOrPartition),
        }
    }

    /// The partition a consumer's Fetch reads here: one led here, or, for a fetch that
    /// names the consumer's rack (KIP-392), one followed here, read up to this replica's
    /// own high watermark. Answers as [`Self::led_partition`] otherwise.
    pub fn readable_partition(
        &self,
        topic: TopicRef<'_>,
        index: i32,
        follower_reads: bool,
    ) -> Result<LedPartition, BrokerError> {
        match self.led_partition(topic, index) {
            Err(BrokerError::NotLeaderOrFollower) if follower_reads => {
                let hosted = match topic {
                    TopicRef::Name(name) => self.topics.get(name),
                    TopicRef::Id(id) => self.topics.get_by_id(id),
                };
                let partition = hosted
                    .as_ref()
                    .and_then(|t| t.partition(index).cloned())
                    .ok_or(BrokerError::NotLeaderOrFollower)?;
                let (_, leader_epoch) = partition
                    .followed_leader()
                    .ok_or(BrokerError::NotLeaderOrFollower)?;
                Ok(LedPartition {
                    topic: hosted.expect("found above"),
                    partition,
                    leader_epoch,
                })
            }
            led => led,
        }
    }

    /// Appends client batches, each validated against its topic's limits, then waits until
    /// every one that was appended is committed (or `timeout` passes): one group-commit
    /// round covers them all. Answers per batch, in order.
    pub async fn append(
        &self,
        batches: Vec<ProducedBatch>,
        acks: RequiredAcks,
        timeout: Duration,
    ) -> Vec<Result<AppendOutcome, BrokerError>> {
        let mut appended = Vec::with_capacity(batches.len());
        for batch in batches {
            let span = info_span!("produce_partition", topic = %batch.led.topic.name, partition = batch.led.partition.index, bytes = batch.records.len());
            let outcome = self
                .append_client_batch(&batch, acks)
                .instrument(span)
                .await;
            appended.push((batch.led.partition, outcome));
        }
        let waits = appended.into_iter().map(|(partition, outcome)| async move {
            let outcome = outcome?;
            self.wait_committed(&partition, outcome.range.last_offset + 1, timeout, acks)
                .await?;
            Ok(outcome)
        });
        futures::future::join_all(waits).await
    }

    /// Appends a batch a coordinator encoded (its own records, checked for structure only)
    /// and waits until it is committed.
    pub async fn append_internal(
        &self,
        partition: &Arc<Partition>,
        records: Bytes,
    ) -> Result<AppendOutcome, BrokerError> {
        let now_ms = self.clock.now_ms();
        let batch = validate_produce_batch(records, &own_batch_limits(now_ms))?;
        let outcome = self.append_validated(partition, &batch, now_ms, true)?;
        self.wait_committed(
            partition,
            outcome.range.last_offset + 1,
            Duration::MAX,
            RequiredAcks::All,
        )
        .await?;
        Ok(outcome)
    }

    async fn append_client_batch(
        &self,
        batch: &ProducedBatch,
        acks: RequiredAcks,
    ) -> Result<AppendOutcome, BrokerError> {
        let now_ms = self.clock.now_ms();
        let config = &batch.led.topic.config;
        let limits = BatchLimits {
            max_message_bytes: config.max_message_bytes(),
            max_decompressed_bytes: self.max_decompressed_batch_bytes,
            now_ms,
            timestamp_before_max_ms: config.timestamp_before_max_ms(),
            timestamp_after_max_ms: config.timestamp_after_max_ms(),
            log_append_time: config.timestamp_type() == TimestampType::LogAppendTime,
        };
        let records = batch.records.clone();
        let bytes = records.len();
        // Compressed batches are decompressed to be validated: keep that off the runtime.
        let validated: ValidatedBatch = if strata_log::needs_decompression(&records) {
            crate::blocking::blocking(move || validate_produce_batch(records, &limits)).await??
        } else {
            validate_produce_batch(records, &limits)?
        };
        if validated.header().is_transactional() {
            return Err(BrokerError::TransactionsUnsupported);
        }
        if config.tiered() {
            self.check_tiering_backlog()?;
        }
        let needs_min_isr = acks == RequiredAcks::All;
        let outcome =
            self.append_validated(&batch.led.partition, &validated, now_ms, needs_min_isr)?;
        if outcome.duplicate {
            self.metrics.produce_duplicates.inc();
            debug!(
                base_offset = outcome.range.base_offset,
                "duplicate batch answered with its original offsets"
            );
        } else {
            self.metrics.produce_bytes.inc_by(bytes as u64);
            self.metrics
                .produce_records
                .inc_by(u64::try_from(validated.header().records_count).unwrap_or(0));
        }
        Ok(outcome)
    }

    /// Writes a validated batch to the leader's log, if this broker's lease holds; without
    /// an fsync to wait for, that commits the leader's copy (the followers' copies commit as
    /// they fetch it).
    fn append_validated(
        &self,
        partition: &Partition,
        batch: &ValidatedBatch,
        now_ms: i64,
        needs_min_isr: bool,
    ) -> Result<AppendOutcome, BrokerError> {
        if let Some(expired) = self.lease.expired_for(self.clock.now()) {
            self.metrics.replication.lease_refusals.inc();
            return Err(BrokerError::LeaseExpired {
                expired_ms: u64::try_from(expired.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let outcome = partition.append(batch, now_ms, needs_min_isr)?;
        if self.group_commit.is_none() {
            partition.commit_local(outcome.range.last_offset + 1);
        }
        Ok(outcome)
    }

    /// Refuses an append to a tiered partition while the data waiting for the object store
    /// exceeds the local budget (as the uploader last measured it).
    fn check_tiering_backlog(&self) -> Result<(), BrokerError> {
        let budget = self.local_budget_bytes;
        let pending = self.backlog.bytes();
        if budget > 0 && pending >= budget {
            return Err(BrokerError::TieringBacklog { pending, budget });
        }
        Ok(())
    }

    /// Waits for what `acks` asks of an append that ends at `end`: under `--durability
    /// fsync`, the fsync of the leader's copy (asked for but not awaited with `acks=0`, so
    /// the data still becomes readable); with `acks=all`, also the high watermark reaching
    /// `end`, or `timeout`, or this broker's lease running out (cut off from the quorum, it
    /// may have been replaced: the client is told NOT_LEADER_OR_FOLLOWER and retries at the
    /// new leader instead of waiting out its timeout).
    async fn wait_committed(
        &self,
        partition: &Arc<Partition>,
        end: i64,
        timeout: Duration,
        acks: RequiredAcks,
    ) -> Result<(), BrokerError> {
        if let Some(group_commit) = &self.group_commit {
            if acks == RequiredAcks::None {
                let (group_commit, partition) = (group_commit.clone(), partition.clone());
                tokio::spawn(async move { group_commit.sync(partition).await });
                return Ok(());
            }
            group_commit.sync(partition.clone()).await?;
        }
        match acks {
            RequiredAcks::All => {
                let started = std::time::Instant::now();
                let committed = tokio::select! {
                    committed = partition.wait_high_watermark(end, timeout) => committed,
                    lost = self.lease_lost() => Err(lost),
                };
                self.metrics
                    .replication
                    .commit_wait
                    .observe(started.elapsed().as_secs_f64());
                committed
            }
            RequiredAcks::None | RequiredAcks::Leader => Ok(()),
        }
    }

    /// Resolves once this broker's lease has run out (never, on a node that needs none).
    async fn lease_lost(&self) -> BrokerError {
        loop {
            let now = self.clock.now();
            if let Some(expired) = self.lease.expired_for(now) {
                self.metrics.replication.lease_refusals.inc();
                return BrokerError::LeaseExpired {
                    expired_ms: u64::try_from(expired.as_millis()).unwrap_or(u64::MAX),
                };
            }
            match self.lease.remaining(now) {
                Some(left) => tokio::time::sleep(left.max(Duration::from_millis(1))).await,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Reads whole batches of a partition this broker leads (or follows, for a consumer in
    /// its rack) from `fetch_offset`, at most `max_bytes` unless `at_least_one` and the
    /// first batch is larger, never at or above this replica's high watermark: from the
    /// local log, or below the local log start from the object store.
    /// `current_leader_epoch` is the client's (KIP-320; -1 when it has none).
    pub async fn read(
        &self,
        led: &LedPartition,
        fetch: FetchAt,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<FetchRead, BrokerError> {
        let partition = &led.partition;
        // Leadership can move while a fetch waits: check it on every read. What a replica
        // serves is at most its high watermark, which a follower takes from its leader.
        let leader_epoch = partition
            .serving_epoch()
            .ok_or(BrokerError::NotLeaderOrFollower)?;
        check_leader_epoch(fetch.current_leader_epoch, leader_epoch)?;
        let offsets = partition.offsets();
        if let Some((epoch, end_offset)) =
            partition.divergence(fetch.fetch_offset, fetch.last_fetched_epoch)
        {
            return Ok(FetchRead::Diverging {
                epoch,
                end_offset,
                offsets,
            });
        }
        let fetch_offset = fetch.fetch_offset;
        let tiered =
            (offsets.log_start_offset..offsets.local_log_start_offset).contains(&fetch_offset);
        let span = debug_span!("read", topic = %partition.topic, partition = partition.index, fetch_offset, tiered);
        let records = if max_bytes == 0 && !at_least_one {
            Records::default()
        } else if tiered {
            Records::Memory(
                self.read_tiered(led, fetch_offset, max_bytes, at_least_one)
                    .instrument(span)
                    .await?,
            )
        } else {
            let _span = span.entered();
            Records::located(partition.locate(
                fetch_offset,
                ReadBound::HighWatermark,
                max_bytes,
                at_least_one,
            )?)
        };
        Ok(FetchRead::Records(ReadResult { records, offsets }))
    }

    /// A follower's fetch of a partition this broker leads, from `fetch_offset` (its log
    /// end) with `last_fetched_epoch` (its last batch's): records its progress (which may
    /// move the high watermark and change the ISR) and reads up to the log end, or tells it
    /// where its log diverged.
    pub fn read_for_follower(
        &self,
        led: &LedPartition,
        replica: i32,
        fetch: FetchAt,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<FetchRead, BrokerError> {
        let partition = &led.partition;
        let leader_epoch = partition
            .leader_epoch()
            .ok_or(BrokerError::NotLeaderOrFollower)?;
        check_leader_epoch(fetch.current_leader_epoch, leader_epoch)?;
        let answer = partition.follower_fetch(
            replica,
            fetch.fetch_offset,
            fetch.last_fetched_epoch,
            self.clock.now_ms(),
            self.lag_time_max_ms,
        )?;
        let offsets = partition.offsets();
        match answer {
            FollowerFetch::Diverging { epoch, end_offset } => Ok(FetchRead::Diverging {
                epoch,
                end_offset,
                offsets,
            }),
            FollowerFetch::Read { isr_change } => {
                if let Some(change) = isr_change {
                    self.propose_isr_change(led.topic.id, partition.clone(), change);
                }
                let records = if max_bytes == 0 && !at_least_one {
                    Records::default()
                } else {
                    Records::located(partition.locate(
                        fetch.fetch_offset,
                        ReadBound::LogEnd,
                        max_bytes,
                        at_least_one,
                    )?)
                };
                Ok(FetchRead::Records(ReadResult { records, offsets }))
            }
        }
    }

    /// OffsetForLeaderEpoch for a partition this broker leads: where `epoch`'s data ends
    /// (KIP-101), after the client's own epoch is checked (KIP-320).
    pub fn end_offset_for_epoch(
        &self,
        led: &LedPartition,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), BrokerError> {
        let leader_epoch = led
            .partition
            .leader_epoch()
            .ok_or(BrokerError::NotLeaderOrFollower)?;
        check_leader_epoch(current_leader_epoch, leader_epoch)?;
        led.partition.end_offset_for_epoch(epoch)
    }

    /// Reads below the local log start, from the committed segment holding the offset.
    async fn read_tiered(
        &self,
        led: &LedPartition,
        fetch_offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<Bytes, BrokerError> {
        let segment = self
            .manifest
            .segment_for(led.topic.id, led.partition.index, fetch_offset);
        match segment {
            Some((_, segment)) => {
                self.remote
                    .read(&segment, fetch_offset, max_bytes, at_least_one)
                    .await
            }
            // Retention moved the log start past it between our two looks.
            None => Err(BrokerError::from(strata_log::LogError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start_offset: -1,
                log_end_offset: -1,
            })),
        }
    }
}

/// Where a fetch of one partition starts, with the epochs the fetcher knows.
#[derive(Debug, Clone, Copy)]
pub struct FetchAt {
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    pub current_leader_epoch: i32,
}

/// KIP-320: a client that knows a newer epoch than ours, or an older one, is told so.
pub fn check_leader_epoch(requested: i32, current: i32) -> Result<(), BrokerError> {
    match requested {
        -1 => Ok(()),
        e if e > current => Err(BrokerError::UnknownLeaderEpoch {
            requested: e,
            current,
        }),
        e if e < current => Err(BrokerError::FencedLeaderEpoch {
            requested: e,
            current,
        }),
        _ => Ok(()),
    }
}

/// A coordinator's own batches are checked for structure only: it wrote them.
pub(crate) fn own_batch_limits(now_ms: i64) -> BatchLimits {
    BatchLimits {
        max_message_bytes: usize::MAX,
        max_decompressed_bytes: usize::MAX,
        now_ms,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        log_append_time: false,
    }
}

#[cfg(test)]
mod tests;
