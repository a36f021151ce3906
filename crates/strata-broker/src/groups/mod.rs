//! The group coordinator: consumer groups under Kafka's classic protocol, with their state and
//! committed offsets kept in the internal topic `__consumer_offsets`.
//!
//! A group belongs to partition `abs(java_hash(group id)) % partitions` of that topic (the
//! same mapping as Kafka), and its coordinator is that partition's leader. When this broker
//! becomes the leader of such a partition (under a new leader epoch), it replays the
//! partition to rebuild its groups; requests meanwhile answer COORDINATOR_LOAD_IN_PROGRESS,
//! and requests for partitions it does not lead answer NOT_COORDINATOR. Every change a client
//! must be able to rely on (a commit, a completed rebalance) is written to the partition and
//! made durable before it is answered.
//!
//! The topic is created through the metadata quorum the first time a client looks for a
//! coordinator. Its partitions have one replica, like every topic until replication: when the
//! broker leading one is down, its groups are unavailable until it returns, with their
//! offsets intact.

pub mod group;
pub mod records;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::broker::Broker;
use crate::partition::Partition;
use crate::topic_admin::NewTopic;
use group::{CommittedOffset, Effects, Group, GroupState};
use records::{RecordKey, encode_group, encode_offset};

/// The internal topic that holds groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often the coordinator checks sessions, join deadlines and offset expiry.
const TICK: Duration = Duration::from_millis(100);
/// Group metrics are refreshed every this many ticks.
const METRICS_EVERY: u32 = 20;
/// Offsets partitions are considered for a checkpoint every this many ticks.
const CHECKPOINT_EVERY: u32 = 50;

/// The groups of one `__consumer_offsets` partition this broker leads.
struct Shard {
    leader_epoch: i32,
    partition: Arc<Partition>,
    /// `None` while the partition is being replayed.
    groups: Option<HashMap<String, SharedGroup>>,
}

/// A group, shared between the requests and timers that change it.
pub type SharedGroup = Arc<tokio::sync::Mutex<Group>>;

/// A group this broker coordinates, with the partition its records go to.
pub struct Coordinated {
    pub partition: Arc<Partition>,
    pub group: SharedGroup,
}

/// Every group this broker coordinates.
#[derive(Default)]
pub struct GroupCoordinator {
    shards: Mutex<HashMap<i32, Shard>>,
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

impl GroupCoordinator {
    /// The `__consumer_offsets` partition of `group_id`, creating the topic if it does not
    /// exist yet.
    pub async fn ensure_partition_for(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
    ) -> Result<i32, ResponseError> {
        if let Some(count) = offsets_partitions(broker) {
            return Ok(partition_for(group_id, count));
        }
        let settings = &broker.config.groups;
        let new = NewTopic {
            name: OFFSETS_TOPIC.into(),
            num_partitions: Some(settings.offsets_topic_partitions),
            replication_factor: Some(1),
            assignments: None,
            overrides: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), (100 << 20).to_string()),
            ]),
        };
        match broker.admin.create_topic(new, false).await {
            Ok(_) => info!(
                partitions = settings.offsets_topic_partitions,
                "created the consumer offsets topic"
            ),
            Err(crate::error::BrokerError::Metadata(
                strata_meta::MetaError::TopicAlreadyExists { .. },
            )) => {}
            Err(e) => {
                warn!(error = %e, "could not create the consumer offsets topic");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        offsets_partitions(broker)
            .map(|count| partition_for(group_id, count))
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// The group `group_id` if this broker coordinates it; with `create`, an empty group is
    /// made for an id not seen before. `Ok(None)`: not created and not known.
    pub fn group(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        create: bool,
    ) -> Result<Option<Coordinated>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let count = offsets_partitions(broker).ok_or(ResponseError::CoordinatorNotAvailable)?;
        let index = partition_for(group_id, count);
        let partition = broker
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partition(index).cloned())
            .ok_or(ResponseError::NotCoordinator)?;
        let epoch = partition
            .leader_epoch()
            .ok_or(ResponseError::NotCoordinator)?;
        let mut shards = self.lock();
        let shard = shards.get_mut(&index);
        let groups = match shard {
            Some(Shard {
                leader_epoch,
                groups: Some(groups),
                ..
            }) if *leader_epoch == epoch => groups,
            Some(Shard { leader_epoch, .. }) if *leader_epoch == epoch => {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
            _ => {
                drop(shards);
                self.start_loading(broker, index, partition, epoch);
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
        };
        let group = match groups.get(group_id) {
            Some(group) => group.clone(),
            None if create => groups
                .entry(group_id.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Group::new(group_id))))
                .clone(),
            None => return Ok(None),
        };
        Ok(Some(Coordinated { partition, group }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Shard>> {
        self.shards
            .lock()
            .expect("the shard map holder never panics")
    }

    /// Replays partition `index` under leader epoch `epoch`, unless that is under way.
    fn start_loading(
        &self,
        broker: &Arc<Broker>,
        index: i32,
        partition: Arc<Partition>,
        epoch: i32,
    ) {
        {
            let mut shards = self.lock();
            if shards.get(&index).is_some_and(|s| s.leader_epoch == epoch) {
                return;
            }
            shards.insert(
                index,
                Shard {
                    leader_epoch: epoch,
                    partition: partition.clone(),
                    groups: None,
                },
            );
        }
        let broker = broker.clone();
        tokio::spawn(async move {
            let replaying = partition.clone();
            let started = Instant::now();
            let loaded = tokio::task::spawn_blocking(move || {
                let _span = info_span!("load_groups", partition = index, epoch).entered();
                store::replay(&replaying, Instant::now())
            })
            .await;
            let groups = match loaded {
                Ok(Ok(replayed)) => {
                    broker
                        .metrics
                        .groups
                        .records_skipped
                        .inc_by(replayed.skipped);
                    replayed.groups
                }
                Ok(Err(e)) => {
                    warn!(partition = index, error = %e, "could not load the groups of a consumer offsets partition");
                    broker.groups.lock().remove(&index);
                    return;
                }
                Err(e) => {
                    warn!(partition = index, error = %e, "loading groups panicked");
                    broker.groups.lock().remove(&index);
                    return;
                }
            };
            let count = groups.len();
            let loaded = {
                let mut shards = broker.groups.lock();
                let Some(shard) = shards
                    .get_mut(&index)
                    .filter(|shard| shard.leader_epoch == epoch)
                else {
                    return;
                };
                let groups: HashMap<String, SharedGroup> = groups
                    .into_iter()
                    .map(|(id, g)| (id, Arc::new(tokio::sync::Mutex::new(g))))
                    .collect();
                let loaded: Vec<(Arc<Partition>, SharedGroup)> = groups
                    .values()
                    .map(|g| (shard.partition.clone(), g.clone()))
                    .collect();
                shard.groups = Some(groups);
                loaded
            };
            if count > 0 {
                info!(
                    partition = index,
                    groups = count,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded consumer groups"
                );
            }
            // Topics deleted while no broker here led this partition.
            let metadata = broker.metadata.clone();
            let exists =
                move |topic: &str| metadata.read(|state| state.topic_by_name(topic).is_some());
            forget_offsets(&broker, loaded, |topic| !exists(topic)).await;
        });
    }

    /// Follows the partitions of `__consumer_offsets` this broker leads: starts loading the
    /// ones it newly leads and forgets the ones it no longer does. Called after every
    /// reconcile.
    pub fn follow_leadership(&self, broker: &Arc<Broker>) {
        let led: HashMap<i32, (Arc<Partition>, i32)> = broker
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
        self.lock().retain(|index, shard| {
            led.get(index)
                .is_some_and(|(_, e)| *e == shard.leader_epoch)
        });
        for (index, (partition, epoch)) in led {
            self.start_loading(broker, index, partition, epoch);
        }
    }

    /// Waits (up to `timeout`) until partition `index` is loaded here, when this broker
    /// leads it: a FindCoordinator answered while the coordinator still loads would send
    /// the client's first JoinGroup into COORDINATOR_LOAD_IN_PROGRESS.
    pub async fn wait_loaded(&self, broker: &Arc<Broker>, index: i32, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let led = broker
                .topics
                .get(OFFSETS_TOPIC)
                .and_then(|t| t.partition(index).and_then(|p| p.leader_epoch()));
            let Some(epoch) = led else { return };
            let loaded = self
                .lock()
                .get(&index)
                .is_some_and(|s| s.leader_epoch == epoch && s.groups.is_some());
            if loaded || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every loaded group with the partition its records go to.
    pub fn loaded(&self) -> Vec<(Arc<Partition>, SharedGroup)> {
        self.loaded_by_partition()
            .into_iter()
            .flat_map(|(partition, groups)| groups.into_iter().map(move |g| (partition.clone(), g)))
            .collect()
    }

    /// The loaded groups, by the offsets partition they live in.
    pub fn loaded_by_partition(&self) -> Vec<(Arc<Partition>, Vec<SharedGroup>)> {
        self.lock()
            .values()
            .filter_map(|shard| {
                let groups = shard.groups.as_ref()?;
                Some((shard.partition.clone(), groups.values().cloned().collect()))
            })
            .collect()
    }

    /// The groups of offsets partition `index` while it is loaded under leader epoch `epoch`.
    pub fn groups_of(&self, index: i32, epoch: i32) -> Option<Vec<SharedGroup>> {
        let shards = self.lock();
        let shard = shards.get(&index).filter(|s| s.leader_epoch == epoch)?;
        Some(shard.groups.as_ref()?.values().cloned().collect())
    }

    /// Names of the topics deleted (or deleted and re-created) since the last call, which
    /// records the topics the metadata holds now.
    fn deleted_topics(&self, broker: &Broker) -> Vec<String> {
        let now: HashMap<String, uuid::Uuid> = broker.metadata.read(|state| {
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
    pub fn forget_deleted_topics(&self, broker: &Arc<Broker>) {
        let deleted = self.deleted_topics(broker);
        if deleted.is_empty() {
            return;
        }
        let loaded = self.loaded();
        let broker = broker.clone();
        tokio::spawn(async move {
            let deleted: std::collections::HashSet<String> = deleted.into_iter().collect();
            forget_offsets(&broker, loaded, |topic| deleted.contains(topic)).await;
        });
    }

    /// Forgets a deleted group.
    pub fn forget(&self, group_id: &str) {
        for shard in self.lock().values_mut() {
            if let Some(groups) = shard.groups.as_mut() {
                groups.remove(group_id);
            }
        }
    }
}

/// How many partitions `__consumer_offsets` has, if it exists.
fn offsets_partitions(broker: &Broker) -> Option<i32> {
    broker.metadata.read(|state| {
        state
            .topic_by_name(OFFSETS_TOPIC)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    })
}

/// Persists what `effects` asks for, for a group whose lock the caller holds.
pub async fn persist(
    broker: &Broker,
    partition: &Arc<Partition>,
    group: &mut Group,
    effects: Effects,
) -> Result<(), ResponseError> {
    if !effects.persist_metadata {
        return Ok(());
    }
    write_metadata(broker, partition, group, group.stored()).await
}

/// Writes a group's metadata as it will be once `assignments` are installed.
pub async fn persist_assignments(
    broker: &Broker,
    partition: &Arc<Partition>,
    group: &mut Group,
    assignments: &HashMap<String, Bytes>,
) -> Result<(), ResponseError> {
    let stored = group.stored_with(assignments);
    write_metadata(broker, partition, group, stored).await
}

/// Writes `stored` as the group's metadata record.
pub async fn write_metadata(
    broker: &Broker,
    partition: &Arc<Partition>,
    group: &mut Group,
    stored: group::StoredGroup,
) -> Result<(), ResponseError> {
    let key = RecordKey::Group {
        group: group.group_id.clone(),
    };
    store::append(
        broker,
        partition,
        vec![(key.encode(), Some(encode_group(&stored)))],
    )
    .await?;
    group.last_stored = Some(stored);
    Ok(())
}

/// Writes committed offsets (or, with `None`, their deletion).
pub async fn persist_offsets(
    broker: &Broker,
    partition: &Arc<Partition>,
    group_id: &str,
    offsets: &[((String, i32), Option<CommittedOffset>)],
) -> Result<(), ResponseError> {
    let records = offsets
        .iter()
        .map(|((topic, index), offset)| {
            let key = RecordKey::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *index,
            };
            (key.encode(), offset.as_ref().map(encode_offset))
        })
        .collect();
    store::append(broker, partition, records).await
}

/// Writes a group's deletion: tombstones for its metadata and every offset.
pub async fn persist_deletion(
    broker: &Broker,
    partition: &Arc<Partition>,
    group: &Group,
) -> Result<(), ResponseError> {
    let mut records: Vec<(Bytes, Option<Bytes>)> = group
        .offsets
        .keys()
        .map(|(topic, index)| {
            let key = RecordKey::Offset {
                group: group.group_id.clone(),
                topic: topic.clone(),
                partition: *index,
            };
            (key.encode(), None)
        })
        .collect();
    records.push((
        RecordKey::Group {
            group: group.group_id.clone(),
        }
        .encode(),
        None,
    ));
    store::append(broker, partition, records).await
}

/// Drives every group's timers (sessions, join and sync deadlines) and expires the offsets
/// of empty groups, until `shutdown` fires.
pub async fn run_ticker(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0u32.. {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tick_all(&broker).await;
        if round % METRICS_EVERY == 0 {
            export_metrics(&broker).await;
        }
        if round % CHECKPOINT_EVERY == 0 {
            checkpoint_where_due(&broker).await;
        }
    }
}

async fn tick_all(broker: &Arc<Broker>) {
    let limits = broker.config.groups.limits;
    let retention = broker.config.groups.offsets_retention;
    for (partition, group) in broker.groups.loaded() {
        let mut group = group.lock().await;
        let now = Instant::now();
        let now_ms = broker.clock.now_ms();
        let effects = group.tick(&limits, now, now_ms);
        if let Err(e) = persist(broker, &partition, &mut group, effects).await {
            warn!(group = %group.group_id, error = ?e, "could not persist a group's state");
        }
        if group.state == GroupState::Empty {
            expire_offsets(broker, &partition, &mut group, retention, now_ms).await;
        }
    }
}

/// Checkpoints every loaded offsets partition whose records outnumber its live keys by
/// more than `checkpoint_after_records`.
async fn checkpoint_where_due(broker: &Arc<Broker>) {
    for (partition, groups) in broker.groups.loaded_by_partition() {
        let mut live = 0i64;
        for group in &groups {
            let group = group.lock().await;
            live += i64::try_from(group.offsets.len()).unwrap_or(i64::MAX) + 1;
        }
        let offsets = partition.offsets();
        let records = offsets.high_watermark - offsets.log_start_offset;
        if records > broker.config.groups.checkpoint_after_records + 2 * live {
            let span = info_span!(
                "checkpoint_groups",
                partition = partition.index,
                records,
                live
            );
            let Some(epoch) = partition.leader_epoch() else {
                continue;
            };
            let index = partition.index;
            let list = || broker.groups.groups_of(index, epoch);
            let now_ms = broker.clock.now_ms();
            if let Err(e) = checkpoint(broker.as_ref(), &partition, list, now_ms)
                .instrument(span)
                .await
            {
                warn!(partition = partition.index, error = %e, "could not checkpoint a consumer offsets partition");
            }
        }
    }
}

/// Where a coordinator's records go: the partition's log, made durable per the broker's
/// durability (tests write straight to a partition).
pub(crate) trait GroupWriter {
    fn append(
        &self,
        partition: &Arc<Partition>,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> impl Future<Output = Result<(), ResponseError>> + Send;
}

impl GroupWriter for Broker {
    async fn append(
        &self,
        partition: &Arc<Partition>,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError> {
        store::append(self, partition, records).await
    }
}

/// Kafka compacts `__consumer_offsets` with its log cleaner; Strata's coordinator, which
/// holds the partition's whole live state, compacts it by rewriting that state: it starts a
/// new segment, appends every group's committed offsets and last metadata record there
/// (under each group's lock, so nothing it writes meanwhile can be overtaken), and then
/// deletes the segments before it. A crash in between leaves duplicates, never a gap.
///
/// The groups are listed (`list`) only after the roll: a group is in the shard before it
/// writes its first record, so every group with a record below the roll point is listed,
/// and a group created after the listing writes only above it. `list` answers `None` when
/// the shard is no longer loaded under the epoch the checkpoint started in; nothing is
/// deleted then.
async fn checkpoint(
    writer: &impl GroupWriter,
    partition: &Arc<Partition>,
    list: impl FnOnce() -> Option<Vec<SharedGroup>>,
    now_ms: i64,
) -> Result<(), String> {
    let start = partition.roll(now_ms).map_err(|e| e.to_string())?;
    let groups = list().ok_or("the partition is no longer loaded here")?;
    for group in &groups {
        let group = group.lock().await;
        let records = group_records(&group);
        if records.is_empty() {
            continue;
        }
        writer
            .append(partition, records)
            .await
            .map_err(|e| format!("writing the checkpoint: {e}"))?;
    }
    let deleted = partition
        .delete_segments_below(start)
        .map_err(|e| e.to_string())?;
    info!(
        partition = partition.index,
        start, deleted, "checkpointed a consumer offsets partition"
    );
    Ok(())
}

/// A group's live state as records: its committed offsets and its last metadata record.
fn group_records(group: &Group) -> Vec<(Bytes, Option<Bytes>)> {
    let mut records: Vec<(Bytes, Option<Bytes>)> = group
        .offsets
        .iter()
        .map(|((topic, index), offset)| {
            let key = RecordKey::Offset {
                group: group.group_id.clone(),
                topic: topic.clone(),
                partition: *index,
            };
            (key.encode(), Some(encode_offset(offset)))
        })
        .collect();
    if let Some(stored) = &group.last_stored {
        let key = RecordKey::Group {
            group: group.group_id.clone(),
        };
        records.push((key.encode(), Some(encode_group(stored))));
    }
    records
}

/// Sets the group metrics from the groups loaded here: members per group and state, and
/// per committed partition its offset and, where this broker leads the partition, its end
/// and the lag. Families are rebuilt whole, so deleted groups and offsets disappear.
async fn export_metrics(broker: &Arc<Broker>) {
    use crate::metrics::{GroupLabels, GroupPartitionLabels};
    let metrics = &broker.metrics.groups;
    metrics.members.clear();
    metrics.committed_offset.clear();
    metrics.log_end_offset.clear();
    metrics.lag.clear();
    for (_, group) in broker.groups.loaded() {
        let group = group.lock().await;
        let labels = GroupLabels {
            group: group.group_id.clone(),
            state: group.state.name(),
        };
        metrics
            .members
            .get_or_create(&labels)
            .set(i64::try_from(group.members.len()).unwrap_or(i64::MAX));
        for ((topic, partition), committed) in &group.offsets {
            let labels = GroupPartitionLabels {
                group: group.group_id.clone(),
                topic: topic.clone(),
                partition: *partition,
            };
            metrics
                .committed_offset
                .get_or_create(&labels)
                .set(committed.offset);
            let led = broker
                .topics
                .get(topic)
                .and_then(|t| t.partition(*partition).cloned())
                .filter(|p| p.leader_epoch().is_some());
            if let Some(led) = led {
                let end = led.offsets().high_watermark;
                metrics.log_end_offset.get_or_create(&labels).set(end);
                metrics
                    .lag
                    .get_or_create(&labels)
                    .set(end.saturating_sub(committed.offset).max(0));
            }
        }
    }
}

/// Writes tombstones for, then forgets, every committed offset of `groups` whose topic
/// `doomed` names.
async fn forget_offsets(
    broker: &Broker,
    groups: Vec<(Arc<Partition>, SharedGroup)>,
    doomed: impl Fn(&str) -> bool,
) {
    for (partition, group) in groups {
        let mut group = group.lock().await;
        let gone: Vec<((String, i32), Option<CommittedOffset>)> = group
            .offsets
            .keys()
            .filter(|(topic, _)| doomed(topic))
            .map(|key| (key.clone(), None))
            .collect();
        if gone.is_empty() {
            continue;
        }
        let group_id = group.group_id.clone();
        match persist_offsets(broker, &partition, &group_id, &gone).await {
            Ok(()) => {
                for (key, _) in &gone {
                    group.offsets.remove(key);
                }
                info!(group = %group_id, offsets = gone.len(), "removed the committed offsets of deleted topics");
            }
            Err(e) => {
                warn!(group = %group_id, error = ?e, "could not remove the committed offsets of deleted topics")
            }
        }
    }
}

/// Kafka's `offsets.retention.minutes`: an empty group's offsets go once the group has been
/// empty that long and they are that old.
async fn expire_offsets(
    broker: &Broker,
    partition: &Arc<Partition>,
    group: &mut Group,
    retention: Duration,
    now_ms: i64,
) {
    let expired: Vec<((String, i32), Option<CommittedOffset>)> = group
        .expired_offsets(retention, now_ms)
        .into_iter()
        .map(|key| (key, None))
        .collect();
    if expired.is_empty() {
        return;
    }
    let group_id = group.group_id.clone();
    if persist_offsets(broker, partition, &group_id, &expired)
        .await
        .is_ok()
    {
        for (key, _) in &expired {
            group.offsets.remove(key);
        }
        info!(group = %group_id, expired = expired.len(), "expired the offsets of an empty group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes straight to the partition, as a broker with `--durability os` does.
    struct Direct;

    impl GroupWriter for Direct {
        async fn append(
            &self,
            partition: &Arc<Partition>,
            records: Vec<(Bytes, Option<Bytes>)>,
        ) -> Result<(), ResponseError> {
            store::append_committed(partition, records, 0)
                .map_err(|_| ResponseError::CoordinatorNotAvailable)
        }
    }

    fn commit(group: &str, offset: i64) -> Vec<(Bytes, Option<Bytes>)> {
        let key = RecordKey::Offset {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
        };
        let value = CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        };
        vec![(key.encode(), Some(encode_offset(&value)))]
    }

    #[tokio::test]
    async fn a_checkpoint_keeps_the_commits_of_a_group_created_while_it_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = Arc::new(crate::partition::test_partition(
            OFFSETS_TOPIC,
            dir.path(),
            crate::partition::test_files(),
        ));
        store::append_committed(&partition, commit("old", 5), 0).expect("append");
        let mut old = Group::new("old");
        old.offsets.insert(
            ("t".into(), 0),
            CommittedOffset {
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            },
        );
        let old: SharedGroup = Arc::new(tokio::sync::Mutex::new(old));
        // A group that commits at the moment the checkpoint looks at the shard, and is not
        // among the groups it sees: its commit must survive the checkpoint.
        let list = || {
            store::append_committed(&partition, commit("new", 9), 0).expect("append");
            Some(vec![old.clone()])
        };
        checkpoint(&Direct, &partition, list, 0)
            .await
            .expect("checkpoint");
        let replayed = store::replay(&partition, Instant::now()).expect("replay");
        let offset = |g: &str| {
            replayed
                .groups
                .get(g)
                .and_then(|g| g.offsets.get(&("t".into(), 0)))
                .map(|o| o.offset)
        };
        assert_eq!(offset("old"), Some(5), "rewritten by the checkpoint");
        assert_eq!(offset("new"), Some(9), "written while the checkpoint ran");
        assert!(
            partition.offsets().log_start_offset > 0,
            "older segments went"
        );
    }

    #[tokio::test]
    async fn a_checkpoint_of_a_shard_no_longer_loaded_deletes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = Arc::new(crate::partition::test_partition(
            OFFSETS_TOPIC,
            dir.path(),
            crate::partition::test_files(),
        ));
        store::append_committed(&partition, commit("g", 5), 0).expect("append");
        assert!(checkpoint(&Direct, &partition, || None, 0).await.is_err());
        assert_eq!(partition.offsets().log_start_offset, 0);
    }

    #[test]
    fn groups_map_to_the_partitions_kafka_would_choose() {
        // Java's "my-group".hashCode() is -1906497762; Utils.abs maps i32::MIN (the hash of
        // "polygenelubricants") to 0.
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
