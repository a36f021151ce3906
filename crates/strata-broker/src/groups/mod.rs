//! The group coordinator: consumer groups under Kafka's classic protocol, with their state and
//! committed offsets kept in the internal topic `__consumer_offsets`, run on the
//! [coordinator runtime](crate::coordinator).
//!
//! A group belongs to partition `abs(java_hash(group id)) % partitions` of that topic (the
//! same mapping as Kafka), and its coordinator is that partition's leader. Each partition
//! this broker leads is one runtime shard ([`GroupShard`]): loaded by replaying the
//! partition when this broker starts leading it, dropped when it stops. Requests meanwhile
//! answer COORDINATOR_LOAD_IN_PROGRESS; requests for partitions it does not lead answer
//! NOT_COORDINATOR. Every change a client must be able to rely on (a commit, a completed
//! rebalance) is written to the partition and committed before it is answered, and a failed
//! write rolls the in-memory state back.
//!
//! The topic is created through the metadata quorum the first time a client looks for a
//! coordinator. Its partitions have one replica, like every topic until replication: when the
//! broker leading one is down, its groups are unavailable until it returns, with their
//! offsets intact.

pub mod group;
pub mod records;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::clock::Clock;
use crate::config::{GroupLimits, GroupSettings};
use crate::control_plane::MetadataView;
use crate::coordinator::{CoordinatorRuntime, Record, RecordWriter, Target, Write};
use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::partition::Partition;
use crate::topic_admin::{NewTopic, TopicAdmin};
use crate::topics::TopicRegistry;
use group::{CommittedOffset, Group, GroupState, StoredGroup};
use records::{RecordKey, encode_group, encode_offset};

/// The internal topic that holds groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often the coordinator checks sessions, join deadlines and offset expiry.
const TICK: Duration = Duration::from_millis(100);
/// Group metrics are refreshed every this many ticks.
const METRICS_EVERY: u32 = 20;
/// Offsets partitions are considered for a checkpoint every this many ticks.
const CHECKPOINT_EVERY: u32 = 50;

/// The groups of one `__consumer_offsets` partition this broker leads: a runtime shard.
#[derive(Debug, Default)]
pub struct GroupShard {
    groups: HashMap<String, Group>,
}

impl GroupShard {
    pub fn get(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn get_mut(&mut self, group_id: &str) -> Option<&mut Group> {
        self.groups.get_mut(group_id)
    }

    /// The group, made empty if it was not known.
    pub fn get_or_create(&mut self, group_id: &str) -> &mut Group {
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id))
    }

    pub fn remove(&mut self, group_id: &str) {
        self.groups.remove(group_id);
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }
}

/// The time as an operation reads it, when it runs.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub ms: i64,
}

impl Now {
    fn read(clock: &dyn Clock) -> Self {
        Self {
            at: clock.now(),
            ms: clock.now_ms(),
        }
    }
}

/// What the group coordinator is built from.
pub struct GroupDeps {
    /// Where shards' records go (the replica manager).
    pub writer: Arc<dyn RecordWriter>,
    pub topics: Arc<TopicRegistry>,
    pub metadata: MetadataView,
    pub admin: TopicAdmin,
    pub settings: GroupSettings,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

/// Every group this broker coordinates.
pub struct GroupCoordinator {
    runtime: CoordinatorRuntime<GroupShard>,
    topics: Arc<TopicRegistry>,
    metadata: MetadataView,
    admin: TopicAdmin,
    pub settings: GroupSettings,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// The topics the metadata held at the last look, by name: a name that disappears or
    /// comes back under another id was deleted, and groups' offsets for it must go.
    topic_ids: Mutex<HashMap<String, uuid::Uuid>>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator").finish_non_exhaustive()
    }
}

/// Java's `String.hashCode`, so groups map to the partitions Kafka would put them in.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition a group's records go to.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs: i32::MIN maps to 0, not to itself.
    let hash = java_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

/// What a client is told when a coordinator write fails: a partition this broker no longer
/// leads answers NOT_COORDINATOR, so the client looks the coordinator up again.
pub fn write_error(e: &BrokerError) -> ResponseError {
    match e {
        BrokerError::NotLeaderOrFollower | BrokerError::ShuttingDown => {
            ResponseError::NotCoordinator
        }
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

/// A group's metadata record.
pub fn group_record(group_id: &str, stored: &StoredGroup) -> Record {
    let key = RecordKey::Group {
        group: group_id.to_string(),
    };
    (key.encode(), Some(encode_group(stored)))
}

/// A committed offset's record, or (with `None`) its tombstone.
pub fn offset_record(
    group_id: &str,
    topic: &str,
    partition: i32,
    offset: Option<&CommittedOffset>,
) -> Record {
    let key = RecordKey::Offset {
        group: group_id.to_string(),
        topic: topic.to_string(),
        partition,
    };
    (key.encode(), offset.map(encode_offset))
}

/// A group's deletion: tombstones for every offset and for its metadata.
pub fn deletion_records(group: &Group) -> Vec<Record> {
    let mut records: Vec<Record> = group
        .offsets
        .keys()
        .map(|(topic, partition)| offset_record(&group.group_id, topic, *partition, None))
        .collect();
    let key = RecordKey::Group {
        group: group.group_id.clone(),
    };
    records.push((key.encode(), None));
    records
}

/// A group's live state as records: its committed offsets and its last metadata record.
fn live_records(group: &Group) -> Vec<Record> {
    let mut records: Vec<Record> = group
        .offsets
        .iter()
        .map(|((topic, partition), offset)| {
            offset_record(&group.group_id, topic, *partition, Some(offset))
        })
        .collect();
    if let Some(stored) = &group.last_stored {
        records.push(group_record(&group.group_id, stored));
    }
    records
}

impl GroupCoordinator {
    pub fn new(deps: GroupDeps) -> Self {
        let clock = deps.clock.clone();
        let metrics = deps.metrics.clone();
        let loader = Arc::new(move |partition: &Partition| {
            let replayed = store::replay(partition, clock.now())?;
            metrics.groups.records_skipped.inc_by(replayed.skipped);
            Ok(GroupShard {
                groups: replayed.groups,
            })
        });
        Self {
            runtime: CoordinatorRuntime::new("groups", deps.writer, loader),
            topics: deps.topics,
            metadata: deps.metadata,
            admin: deps.admin,
            settings: deps.settings,
            metrics: deps.metrics,
            clock: deps.clock,
            topic_ids: Mutex::default(),
        }
    }

    /// The `__consumer_offsets` partition of `group_id`, creating the topic if it does not
    /// exist yet.
    pub async fn ensure_partition_for(&self, group_id: &str) -> Result<i32, ResponseError> {
        if let Some(count) = self.offsets_partitions() {
            return Ok(partition_for(group_id, count));
        }
        let partitions = self.settings.offsets_topic_partitions;
        let wanted = self.settings.offsets_topic_replication_factor;
        let live = self.metadata.live_brokers().len();
        let replication_factor =
            i16::try_from(usize::from(wanted).min(live).max(1)).unwrap_or(i16::MAX);
        if usize::from(wanted) > live {
            info!(
                wanted,
                live_brokers = live,
                replication_factor,
                "fewer live brokers than offsets.topic.replication.factor: the consumer offsets topic gets one replica per broker"
            );
        }
        let new = NewTopic {
            name: OFFSETS_TOPIC.into(),
            num_partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            assignments: None,
            overrides: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), (100 << 20).to_string()),
            ]),
        };
        match self.admin.create_topic(new, false).await {
            Ok(_) => info!(
                partitions,
                replication_factor, "created the consumer offsets topic"
            ),
            Err(BrokerError::Metadata(strata_meta::MetaError::TopicAlreadyExists { .. })) => {}
            Err(e) => {
                warn!(error = %e, "could not create the consumer offsets topic");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        self.offsets_partitions()
            .map(|count| partition_for(group_id, count))
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// How many partitions `__consumer_offsets` has, if it exists.
    fn offsets_partitions(&self) -> Option<i32> {
        self.metadata.read(|state| {
            state
                .topic_by_name(OFFSETS_TOPIC)
                .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
        })
    }

    /// Offsets partition `index`, if this broker leads it.
    fn led(&self, index: i32) -> Option<Target> {
        let partition = self.topics.get(OFFSETS_TOPIC)?.partition(index)?.clone();
        let leader_epoch = partition.leader_epoch()?;
        Some(Target {
            index,
            partition,
            leader_epoch,
        })
    }

    /// The shard that coordinates `group_id`, if this broker leads its partition.
    fn target(&self, group_id: &str) -> Result<Target, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let count = self
            .offsets_partitions()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        self.led(partition_for(group_id, count))
            .ok_or(ResponseError::NotCoordinator)
    }

    /// The time, as operations read it.
    pub fn now(&self) -> Now {
        Now::read(self.clock.as_ref())
    }

    /// Runs `op` on the shard that coordinates `group_id` (see the runtime: its records are
    /// committed before its answer is released).
    pub async fn write<R: Send + 'static>(
        &self,
        group_id: &str,
        op: impl FnOnce(&mut GroupShard, Now) -> Write<GroupShard, R> + Send + 'static,
    ) -> Result<R, ResponseError> {
        let target = self.target(group_id)?;
        let clock = self.clock.clone();
        self.runtime
            .write(&target, move |shard| op(shard, Now::read(clock.as_ref())))
            .await
    }

    /// Reads every loaded shard.
    pub async fn read_all<R: Send + 'static>(
        &self,
        read: impl Fn(&GroupShard) -> R + Send + Sync + 'static,
    ) -> Vec<R> {
        let read = Arc::new(read);
        let reads = self.runtime.loaded().into_iter().map(|target| {
            let read = read.clone();
            self.runtime
                .submit(target.index, target.leader_epoch, move |shard| {
                    Write::answer(read(shard))
                })
        });
        futures::future::join_all(reads)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    /// Follows the partitions of `__consumer_offsets` this broker leads: starts loading the
    /// ones it newly leads and drops the ones it no longer does. Called after every
    /// reconcile. A newly loaded shard first forgets the offsets of topics deleted while no
    /// broker here led it.
    pub fn follow_leadership(self: &Arc<Self>) {
        let led: HashMap<i32, (Arc<Partition>, i32)> = self
            .topics
            .get(OFFSETS_TOPIC)
            .map(|topic| {
                topic
                    .partitions
                    .iter()
                    .filter_map(|(i, p)| Some((*i, (p.clone(), p.leader_epoch()?))))
                    .collect()
            })
            .unwrap_or_default();
        for target in self.runtime.follow(led) {
            let coordinator = self.clone();
            tokio::spawn(async move {
                let metadata = coordinator.metadata.clone();
                let gone =
                    move |topic: &str| metadata.read(|state| state.topic_by_name(topic).is_none());
                coordinator.forget_topics(&target, gone).await;
            });
        }
    }

    /// Waits (up to `timeout`) until partition `index` is loaded here, when this broker
    /// leads it: a FindCoordinator answered while the coordinator still loads would send
    /// the client's first JoinGroup into COORDINATOR_LOAD_IN_PROGRESS.
    pub async fn wait_loaded(&self, index: i32, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while let Some(target) = self.led(index) {
            if self.runtime.is_loaded(&target) || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Names of the topics deleted (or deleted and re-created) since the last call, which
    /// records the topics the metadata holds now.
    fn deleted_topics(&self) -> HashSet<String> {
        let now: HashMap<String, uuid::Uuid> = self.metadata.read(|state| {
            state
                .topics()
                .map(|t| (t.name.clone(), t.topic_id))
                .collect()
        });
        let mut known = self
            .topic_ids
            .lock()
            .expect("no code panics holding the topic ids");
        let deleted = known
            .iter()
            .filter(|(name, id)| now.get(*name) != Some(*id))
            .map(|(name, _)| name.clone())
            .collect();
        *known = now;
        deleted
    }

    /// Removes the committed offsets of topics deleted since the last call from every group
    /// loaded here, as Kafka's coordinator does when partitions are deleted, so a topic
    /// re-created under the same name starts from its consumers' reset policy, not from
    /// stale offsets. Called after every applied metadata change.
    pub fn forget_deleted_topics(self: &Arc<Self>) {
        let deleted = Arc::new(self.deleted_topics());
        if deleted.is_empty() {
            return;
        }
        let coordinator = self.clone();
        tokio::spawn(async move {
            for target in coordinator.runtime.loaded() {
                let deleted = deleted.clone();
                coordinator
                    .forget_topics(&target, move |topic| deleted.contains(topic))
                    .await;
            }
        });
    }

    /// Writes tombstones for, then forgets, every committed offset in `target`'s groups whose
    /// topic `doomed` names.
    async fn forget_topics(&self, target: &Target, doomed: impl Fn(&str) -> bool + Send + 'static) {
        let forgotten = self
            .runtime
            .submit(target.index, target.leader_epoch, move |shard| {
                forget_offsets(shard, &doomed)
            })
            .await;
        match forgotten {
            Ok(()) => {}
            // Leadership moved on meanwhile: the new coordinator forgets them on a later pass.
            Err(ResponseError::NotCoordinator) => {
                debug!(
                    partition = target.index,
                    "offsets partition moved before its deleted topics were forgotten"
                );
            }
            Err(e) => {
                warn!(partition = target.index, error = ?e, "could not remove the committed offsets of deleted topics");
            }
        }
    }

    /// Drives every group's timers (sessions, join and sync deadlines), expires the offsets
    /// of empty groups, refreshes the group metrics and checkpoints partitions, until
    /// `cancel` fires.
    pub async fn run_ticker(self: Arc<Self>, cancel: CancellationToken) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for round in 0u32.. {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            self.tick_all().await;
            if round % METRICS_EVERY == 0 {
                self.export_metrics().await;
            }
            if round % CHECKPOINT_EVERY == 0 {
                self.checkpoint_where_due().await;
            }
        }
    }

    async fn tick_all(&self) {
        let limits = self.settings.limits;
        let retention = self.settings.offsets_retention;
        let ticks = self.runtime.loaded().into_iter().map(|target| {
            let clock = self.clock.clone();
            self.runtime
                .submit(target.index, target.leader_epoch, move |shard| {
                    tick(shard, &limits, retention, Now::read(clock.as_ref()))
                })
        });
        futures::future::join_all(ticks).await;
    }

    /// Checkpoints every loaded offsets partition whose records outnumber its live keys by
    /// more than `checkpoint_after_records`.
    async fn checkpoint_where_due(&self) {
        for target in self.runtime.loaded() {
            let partition = target.partition.clone();
            let after_records = self.settings.checkpoint_after_records;
            let now_ms = self.clock.now_ms();
            let span = info_span!("checkpoint_groups", partition = target.index);
            let rewritten = self
                .runtime
                .submit(target.index, target.leader_epoch, move |shard| {
                    checkpoint(shard, &partition, after_records, now_ms)
                })
                .instrument(span)
                .await;
            // Only once the rewritten state is committed may what it replaces go.
            if let Ok(Some(start)) = rewritten {
                match target.partition.delete_segments_below(start) {
                    Ok(deleted) => info!(
                        partition = target.index,
                        start, deleted, "checkpointed a consumer offsets partition"
                    ),
                    Err(e) => {
                        warn!(partition = target.index, error = %e, "could not delete the segments a checkpoint replaced")
                    }
                }
            }
        }
    }

    /// Sets the group metrics from the groups loaded here: members per group and state, and
    /// per committed partition its offset and, where this broker leads the partition, its end
    /// and the lag. Families are rebuilt whole, so deleted groups and offsets disappear.
    async fn export_metrics(&self) {
        use crate::metrics::{GroupLabels, GroupPartitionLabels};
        type Exported = (String, &'static str, usize, Vec<((String, i32), i64)>);
        let shards: Vec<Vec<Exported>> = self
            .read_all(|shard| {
                shard
                    .groups()
                    .map(|g| {
                        let offsets = g
                            .offsets
                            .iter()
                            .map(|(key, o)| (key.clone(), o.offset))
                            .collect();
                        (g.group_id.clone(), g.state.name(), g.members.len(), offsets)
                    })
                    .collect()
            })
            .await;
        let metrics = &self.metrics.groups;
        metrics.members.clear();
        metrics.committed_offset.clear();
        metrics.log_end_offset.clear();
        metrics.lag.clear();
        for (group, state, members, offsets) in shards.into_iter().flatten() {
            let labels = GroupLabels {
                group: group.clone(),
                state,
            };
            metrics
                .members
                .get_or_create(&labels)
                .set(i64::try_from(members).unwrap_or(i64::MAX));
            for ((topic, partition), committed) in offsets {
                let led = self
                    .topics
                    .get(&topic)
                    .and_then(|t| t.partition(partition).cloned())
                    .filter(|p| p.leader_epoch().is_some());
                let labels = GroupPartitionLabels {
                    group: group.clone(),
                    topic,
                    partition,
                };
                metrics
                    .committed_offset
                    .get_or_create(&labels)
                    .set(committed);
                if let Some(led) = led {
                    let end = led.offsets().high_watermark;
                    metrics.log_end_offset.get_or_create(&labels).set(end);
                    metrics
                        .lag
                        .get_or_create(&labels)
                        .set(end.saturating_sub(committed).max(0));
                }
            }
        }
    }
}

/// One tick of a shard: every group's timers, and the offsets of empty groups past
/// `offsets.retention.minutes`. Timers change groups before the write, so a failed write
/// rebuilds the shard from the log.
fn tick(
    shard: &mut GroupShard,
    limits: &GroupLimits,
    retention: Duration,
    now: Now,
) -> Write<GroupShard, ()> {
    let mut records = Vec::new();
    let mut stored = Vec::new();
    let mut expired = Vec::new();
    for group in shard.groups.values_mut() {
        if group.tick(limits, now.at, now.ms).persist_metadata {
            let state = group.stored();
            records.push(group_record(&group.group_id, &state));
            stored.push((group.group_id.clone(), state));
        }
        if group.state == GroupState::Empty {
            let keys = group.expired_offsets(retention, now.ms);
            if !keys.is_empty() {
                records.extend(
                    keys.iter()
                        .map(|(topic, p)| offset_record(&group.group_id, topic, *p, None)),
                );
                expired.push((group.group_id.clone(), keys));
            }
        }
    }
    if records.is_empty() {
        return Write::answer(());
    }
    Write::reload(
        records,
        move |shard: &mut GroupShard| {
            for (group_id, state) in stored {
                if let Some(group) = shard.get_mut(&group_id) {
                    group.last_stored = Some(state);
                }
            }
            for (group_id, keys) in expired {
                if let Some(group) = shard.get_mut(&group_id) {
                    for key in &keys {
                        group.offsets.remove(key);
                    }
                    info!(group = %group_id, expired = keys.len(), "expired the offsets of an empty group");
                }
            }
        },
        |_| {},
    )
}

/// Tombstones for every committed offset whose topic `doomed` names; forgotten once written.
fn forget_offsets(shard: &mut GroupShard, doomed: &dyn Fn(&str) -> bool) -> Write<GroupShard, ()> {
    let gone: Vec<(String, Vec<(String, i32)>)> = shard
        .groups()
        .map(|g| {
            let keys = g
                .offsets
                .keys()
                .filter(|(topic, _)| doomed(topic))
                .cloned()
                .collect::<Vec<_>>();
            (g.group_id.clone(), keys)
        })
        .filter(|(_, keys)| !keys.is_empty())
        .collect();
    let records: Vec<Record> = gone
        .iter()
        .flat_map(|(group_id, keys)| {
            keys.iter()
                .map(move |(topic, p)| offset_record(group_id, topic, *p, None))
        })
        .collect();
    if records.is_empty() {
        return Write::answer(());
    }
    Write::reload(
        records,
        move |shard: &mut GroupShard| {
            for (group_id, keys) in gone {
                if let Some(group) = shard.get_mut(&group_id) {
                    for key in &keys {
                        group.offsets.remove(key);
                    }
                    info!(group = %group_id, offsets = keys.len(), "removed the committed offsets of deleted topics");
                }
            }
        },
        |_| {},
    )
}

/// Kafka compacts `__consumer_offsets` with its log cleaner; Strata's coordinator, which
/// holds the partition's whole live state, compacts it by rewriting that state: it starts a
/// new segment, writes every group's committed offsets and last metadata record there, and
/// once they are committed the caller deletes the segments before it (answered here). A
/// crash in between leaves duplicates, never a gap. The shard's loop runs nothing else
/// meanwhile, so no group can write below the new segment after it is listed.
fn checkpoint(
    shard: &mut GroupShard,
    partition: &Partition,
    after_records: i64,
    now_ms: i64,
) -> Write<GroupShard, Option<i64>> {
    let live: i64 = shard
        .groups()
        .map(|g| i64::try_from(g.offsets.len()).unwrap_or(i64::MAX) + 1)
        .sum();
    let offsets = partition.offsets();
    let held = offsets.high_watermark - offsets.log_start_offset;
    if held <= after_records.saturating_add(2 * live) {
        return Write::answer(None);
    }
    let start = match partition.roll(now_ms) {
        Ok(start) => start,
        Err(e) => {
            warn!(partition = partition.index, error = %e, "could not start a checkpoint");
            return Write::answer(None);
        }
    };
    let records: Vec<Record> = shard.groups().flat_map(live_records).collect();
    if records.is_empty() {
        return Write::answer(Some(start));
    }
    Write::reload(records, move |_| Some(start), |_| None)
}

#[cfg(test)]
mod tests;
