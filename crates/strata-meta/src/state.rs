//! The metadata every node holds, and the reads brokers serve from it.

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize as RkyvDeserialize, Serialize as RkyvSerialize};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::Endpoint;

/// A partition's leader when no replica can lead it (it is offline).
pub const NO_LEADER: i32 = -1;

/// A registered broker.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Archive, RkyvSerialize, RkyvDeserialize,
)]
pub struct BrokerRecord {
    pub broker_id: i32,
    /// Changes on every process start, so decisions about an old process can be told apart.
    pub incarnation: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Missed its session timeout: it leads nothing and is left out of Metadata.
    pub fenced: bool,
    pub last_heartbeat_ms: i64,
    /// The newest metadata version its code applies.
    pub metadata_version: u16,
}

/// One partition's replicas and leadership.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Archive, RkyvSerialize, RkyvDeserialize,
)]
pub struct PartitionRecord {
    pub replicas: Vec<i32>,
    /// The in-sync replicas. Empty only while the partition has no leader.
    pub isr: Vec<i32>,
    /// The eligible leader replicas (Kafka's KIP-966): replicas outside the ISR that still
    /// hold every committed record, so one may lead when no ISR member can. Disjoint from
    /// the ISR; see [`crate::eligibility`].
    pub elr: Vec<i32>,
    /// The broker serving the partition, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped on every leader change; fences a deposed leader's writes.
    pub leader_epoch: i32,
    /// Bumped on every change to the partition (leader, ISR or ELR).
    pub partition_epoch: i32,
}

/// A partition's replicas moving (Kafka's KIP-455). While it lasts, the partition's
/// `replicas` are `target` followed by the replicas leaving.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Archive, RkyvSerialize, RkyvDeserialize,
)]
pub struct Reassignment {
    /// The replicas before the move, in their order: what a cancel puts back.
    pub original: Vec<i32>,
    /// The replicas after it, the first the preferred leader.
    pub target: Vec<i32>,
}

impl Reassignment {
    /// The replicas the move brings in.
    pub fn adding(&self) -> Vec<i32> {
        let original = &self.original;
        self.target
            .iter()
            .copied()
            .filter(|b| !original.contains(b))
            .collect()
    }

    /// The replicas the move takes out.
    pub fn removing(&self) -> Vec<i32> {
        let target = &self.target;
        self.original
            .iter()
            .copied()
            .filter(|b| !target.contains(b))
            .collect()
    }
}

/// A topic and its partitions, indexed by partition number.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Archive, RkyvSerialize, RkyvDeserialize,
)]
pub struct TopicRecord {
    pub topic_id: Uuid,
    pub name: String,
    /// The topic's own overrides, validated; everything else comes from broker defaults.
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionRecord>,
}

/// Where a committed segment of a partition lives in the object store.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Archive, RkyvSerialize, RkyvDeserialize,
)]
pub struct SegmentEntry {
    pub last_offset: i64,
    pub object: String,
    pub byte_offset: u64,
    pub byte_len: u64,
    pub max_timestamp_ms: i64,
    /// The epoch of the leader that committed it.
    pub leader_epoch: i32,
}

/// A partition's part of the manifest: where its log starts, and its committed segments.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Archive,
    RkyvSerialize,
    RkyvDeserialize,
)]
pub struct PartitionManifest {
    /// The first offset of the partition's log, across both tiers: retention and
    /// DeleteRecords move it forward, never back.
    pub log_start_offset: i64,
    /// Committed segments by base offset; they never overlap.
    pub segments: BTreeMap<i64, SegmentEntry>,
}

impl PartitionManifest {
    /// The offset after the last committed segment, if any is.
    pub fn end_offset(&self) -> Option<i64> {
        self.segments
            .values()
            .next_back()
            .map(|s| s.last_offset + 1)
    }

    /// The segment holding `offset`, with its base offset.
    pub fn segment_for(&self, offset: i64) -> Option<(i64, &SegmentEntry)> {
        self.segments
            .range(..=offset)
            .next_back()
            .filter(|(_, s)| s.last_offset >= offset)
            .map(|(base, s)| (*base, s))
    }

    /// The committed bytes at or above the log start.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.byte_len).sum()
    }

    /// Where whole-log retention moves the log start: past every oldest segment whose newest
    /// record is older than `retention_ms`, or whose removal still leaves at least
    /// `retention_bytes` (counting `newer_bytes`, the data not tiered yet), as Kafka applies
    /// `retention.*` to segments. `None` when nothing expires.
    pub fn expired_end(
        &self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<i64>,
        newer_bytes: u64,
    ) -> Option<i64> {
        let mut total = self.size_bytes() + newer_bytes;
        let mut end = None;
        for segment in self.segments.values() {
            let old = retention_ms.is_some_and(|ms| {
                segment.max_timestamp_ms >= 0
                    && now_ms.saturating_sub(segment.max_timestamp_ms) > ms
            });
            let over = retention_bytes.is_some_and(|limit| {
                total.saturating_sub(segment.byte_len) >= u64::try_from(limit).unwrap_or(0)
            });
            if !(old || over) {
                break;
            }
            total -= segment.byte_len;
            end = Some(segment.last_offset + 1);
        }
        end.filter(|end| *end > self.log_start_offset)
    }
}

/// The size of the manifest: objects referenced, segment entries, and the bytes of those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestTotals {
    pub objects: usize,
    pub segments: usize,
    pub bytes: u64,
}

/// What an applied command produced, beyond the state change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    Applied,
    /// How many segments of a [`crate::CommitSegments`] were recorded and how many refused.
    SegmentsCommitted {
        committed: u32,
        refused: u32,
    },
    /// How many merges of a [`crate::ReplaceSegments`] were recorded and how many refused.
    SegmentsReplaced {
        replaced: u32,
        refused: u32,
    },
    /// Producer ids `first_id..first_id + count` now belong to the requesting broker.
    ProducerIdBlock {
        first_id: i64,
        count: u32,
    },
    /// What an [`crate::ElectLeaders`] did to each partition it named, in order.
    Elections(Vec<Election>),
    /// Whether a [`crate::ReassignPartitions`] took each partition it named, in order.
    Reassignments(Vec<Result<(), crate::MetaError>>),
}

/// The outcome of electing one partition's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// A new leader was elected.
    Elected { leader: i32 },
    /// The partition already has the leader the election would give it (or, unclean, has
    /// one at all): ELECTION_NOT_NEEDED.
    NotNeeded,
    /// Its preferred replica is not live or not in the ISR: PREFERRED_LEADER_NOT_AVAILABLE.
    PreferredNotAvailable,
    /// No live replica at all: ELIGIBLE_LEADERS_NOT_AVAILABLE.
    NoEligibleLeader,
    /// The topic or partition does not exist: UNKNOWN_TOPIC_OR_PARTITION.
    UnknownPartition,
}

/// The whole metadata state. Only [`MetadataState::apply`] changes it.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Archive,
    RkyvSerialize,
    RkyvDeserialize,
)]
pub struct MetadataState {
    pub(crate) cluster_id: Option<String>,
    pub(crate) brokers: BTreeMap<i32, BrokerRecord>,
    pub(crate) topics: BTreeMap<Uuid, TopicRecord>,
    pub(crate) topic_ids: BTreeMap<String, Uuid>,
    /// Dynamic config overrides of one broker, by Kafka's broker config names.
    pub(crate) broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Dynamic config overrides for every broker.
    pub(crate) cluster_configs: BTreeMap<String, String>,
    pub(crate) next_producer_id: i64,
    /// The tiered log of each partition that has one, by topic and partition.
    pub(crate) manifest: BTreeMap<Uuid, BTreeMap<i32, PartitionManifest>>,
    /// The replica moves in progress, by topic and partition.
    pub(crate) reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
    /// The rules in force (see [`crate::METADATA_VERSION`]); only moves forward.
    pub(crate) metadata_version: u16,
}

impl MetadataState {
    /// The metadata version in force.
    pub fn metadata_version(&self) -> u16 {
        self.metadata_version
    }

    /// Whether every registered broker applies metadata version `version`: only then may
    /// the cluster move to it.
    pub fn brokers_support(&self, version: u16) -> bool {
        self.brokers.values().all(|b| b.metadata_version >= version)
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRecord> {
        self.brokers.get(&broker_id)
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values()
    }

    /// The brokers that are not fenced, by id: the ones Metadata lists.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// The ids of the brokers that are not fenced.
    pub fn live_broker_ids(&self) -> std::collections::BTreeSet<i32> {
        self.live_brokers().map(|b| b.broker_id).collect()
    }

    pub fn topic(&self, topic_id: Uuid) -> Option<&TopicRecord> {
        self.topics.get(&topic_id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicRecord> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    /// Every topic, by id.
    pub fn topics(&self) -> impl Iterator<Item = &TopicRecord> {
        self.topics.values()
    }

    pub fn broker_configs(&self, broker_id: i32) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&broker_id)
    }

    pub fn cluster_configs(&self) -> &BTreeMap<String, String> {
        &self.cluster_configs
    }

    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// A partition's tiered log, if anything was ever committed or trimmed for it.
    pub fn partition_manifest(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionManifest> {
        self.manifest.get(&topic_id)?.get(&partition)
    }

    /// The move in progress of a partition's replicas, if one is.
    pub fn reassignment(&self, topic_id: Uuid, partition: i32) -> Option<&Reassignment> {
        self.reassignments.get(&topic_id)?.get(&partition)
    }

    /// A topic's replication factor: its first partition's replicas, counting a move in
    /// progress by its target (the replicas leaving are not part of it).
    pub fn replication_factor(&self, topic_id: Uuid) -> Option<usize> {
        let first = self.topics.get(&topic_id)?.partitions.first()?;
        Some(
            self.reassignment(topic_id, 0)
                .map_or(first.replicas.len(), |moving| moving.target.len()),
        )
    }

    /// Every move in progress, by topic and partition.
    pub fn reassignments(&self) -> impl Iterator<Item = (Uuid, i32, &Reassignment)> {
        self.reassignments
            .iter()
            .flat_map(|(id, moves)| moves.iter().map(|(p, r)| (*id, *p, r)))
    }

    /// What the manifest holds, cluster-wide.
    pub fn manifest_totals(&self) -> ManifestTotals {
        let partitions = || self.manifest.values().flat_map(BTreeMap::values);
        ManifestTotals {
            objects: self.referenced_objects().len(),
            segments: partitions().map(|m| m.segments.len()).sum(),
            bytes: partitions().map(PartitionManifest::size_bytes).sum(),
        }
    }

    /// Every object some manifest entry references.
    pub fn referenced_objects(&self) -> std::collections::BTreeSet<&str> {
        self.manifest
            .values()
            .flat_map(BTreeMap::values)
            .flat_map(|p| p.segments.values())
            .map(|s| s.object.as_str())
            .collect()
    }
}
