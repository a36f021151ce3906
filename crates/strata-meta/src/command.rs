//! The typed changes the metadata log carries.
//!
//! Anything a replica could compute differently (a time, a new id, where partitions go) is
//! decided by the proposer and carried in the command; applying it is then a pure function of
//! the state and the command.

use std::collections::{BTreeMap, BTreeSet};

use rkyv::{Archive, Deserialize as RkyvDeserialize, Serialize as RkyvSerialize};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Names the cluster; only the first one takes, so a cluster id never changes.
    InitCluster {
        cluster_id: String,
    },
    RegisterBroker(RegisterBroker),
    BrokerHeartbeat(BrokerHeartbeat),
    FenceBroker(FenceBroker),
    CreateTopic(CreateTopic),
    DeleteTopic {
        topic_id: Uuid,
    },
    CreatePartitions(CreatePartitions),
    AlterConfigs(AlterConfigs),
    /// Hands a block of `count` producer ids to a broker, unique across the cluster.
    AllocateProducerIds {
        broker_id: i32,
        count: u32,
    },
    /// Records the segments one uploaded object holds.
    CommitSegments(CommitSegments),
    /// Swaps runs of committed segments for the merged copies one object holds.
    ReplaceSegments(ReplaceSegments),
    /// Moves a partition's log start offset forward (retention, DeleteRecords) and drops the
    /// manifest entries wholly below it.
    AdvanceLogStart {
        topic_id: Uuid,
        partition: i32,
        log_start_offset: i64,
    },
    /// A partition leader changing its ISR (Kafka's AlterPartition).
    AlterPartition(AlterPartition),
    /// Kafka's ElectLeaders, and the controller's automatic leader rebalance.
    ElectLeaders(ElectLeaders),
    /// Kafka's AlterPartitionReassignments: moves partitions to other replicas.
    ReassignPartitions(ReassignPartitions),
    /// Moves the cluster to newer rules (see [`crate::METADATA_VERSION`]).
    UpgradeMetadata(UpgradeMetadata),
}

/// Applies the rules of metadata version `version` from here on, once every registered
/// broker applies them too. Entries before it keep the rules they were written under, so
/// every node, whatever snapshot it started from, reaches the same state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeMetadata {
    pub version: u16,
    /// The proposer's static `min.insync.replicas`: turning on eligible leader replicas
    /// makes it the cluster-wide setting unless one is set (as Kafka does), so that the
    /// quorum and every leader agree on each topic's value.
    pub min_insync_replicas: u32,
}

/// Moves (or, with no target, stops moving) each named partition's replicas, each judged on
/// its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitions {
    pub partitions: Vec<PartitionReassignment>,
    /// Whether a target may have another number of replicas than the partition has.
    pub allow_replication_factor_change: bool,
}

/// One partition's new replicas, the first its preferred leader; `None` cancels the move in
/// progress, putting back the replicas it started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReassignment {
    pub topic_id: Uuid,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
}

/// Which leader an election gives a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Its first replica, if that is live and in the ISR.
    Preferred,
    /// For a partition with no leader, any live replica, even one outside the ISR (it may
    /// lack acknowledged records: Kafka's unclean election).
    Unclean,
}

/// Elections for the named partitions, each judged on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeaders {
    pub election: ElectionType,
    pub partitions: Vec<(Uuid, i32)>,
}

/// Where a broker serves one listener.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Archive, RkyvSerialize, RkyvDeserialize,
)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// A broker announcing itself. A new incarnation (a restart) replaces the old one and unfences
/// the broker; the same incarnation registering again is a harmless repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBroker {
    pub broker_id: i32,
    pub incarnation: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub now_ms: i64,
    /// The previous incarnation, when this process found its partition logs exactly as that
    /// one left them (it stopped cleanly, or nothing unsynced could have been lost): the
    /// replica then still holds what it held, and stays eligible to lead where it was.
    #[serde(default)]
    pub intact_predecessor: Option<Uuid>,
    /// The newest metadata version this broker's code applies (0 before versions existed).
    #[serde(default)]
    pub metadata_version: u16,
}

/// A broker saying it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub broker_id: i32,
    pub incarnation: Uuid,
    pub now_ms: i64,
}

/// The controller deciding a broker missed its session timeout. Names the incarnation, so a
/// decision about a broker that has since restarted does not fence the new process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceBroker {
    pub broker_id: i32,
    pub incarnation: Uuid,
}

/// A new topic with its partitions already placed: `assignments[p]` lists partition `p`'s
/// replicas, the first being its preferred leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
    pub topic_id: Uuid,
    pub assignments: Vec<Vec<i32>>,
    /// Topic-level overrides, by Kafka's topic config names.
    pub configs: BTreeMap<String, String>,
}

/// More partitions for a topic, placed like [`CreateTopic::assignments`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitions {
    pub topic_id: Uuid,
    pub new_assignments: Vec<Vec<i32>>,
}

/// Whose configuration a change is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(Uuid),
    Broker(i32),
    /// The default for every broker (Kafka's broker resource with an empty name).
    ClusterDefault,
}

/// A configuration change: with `replace`, the resource's overrides become exactly `set`
/// (Kafka's AlterConfigs); without, `set` is merged in and `remove` taken out
/// (IncrementalAlterConfigs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigs {
    pub resource: ConfigResource,
    pub set: BTreeMap<String, String>,
    pub remove: BTreeSet<String>,
    pub replace: bool,
}

/// An uploader recording that `object` holds these segments. Each segment is checked on its
/// own: one whose partition has a new leader epoch, or that overlaps what is committed, is
/// refused and the others are still recorded (the refused one's bytes in the object are then
/// garbage, reclaimed with the object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSegments {
    /// The object's key in the object store.
    pub object: String,
    pub segments: Vec<SegmentCommit>,
}

/// A partition leader recording that its offsets `base_offset..=last_offset` are at
/// `byte_offset..byte_offset + byte_len` of the object. Fenced by the leader epoch: a leader
/// that has been replaced cannot commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentCommit {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub byte_offset: u64,
    pub byte_len: u64,
    pub max_timestamp_ms: i64,
}

/// A merger recording that `object` holds merged copies of runs of committed segments, each
/// run's bytes back to back. Each merge is a compare-and-set of its own: it replaces exactly
/// the entries it names, which must still be the partition's consecutive entries from the
/// first named on, or it is refused and changes nothing (retention or another merge got
/// there first; the copy in the object is then garbage, reclaimed with the object). The
/// others are still recorded. No leader-epoch fence is needed: a merge moves bytes that are
/// committed already, whoever leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceSegments {
    /// The key of the object holding the merged copies.
    pub object: String,
    pub merges: Vec<SegmentMerge>,
}

/// One partition's run of consecutive committed segments, and where the object holds their
/// bytes, in offset order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMerge {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The entries replaced, oldest first, at least two, all written under one leader epoch.
    pub replaced: Vec<ReplacedSegment>,
    pub byte_offset: u64,
    /// The sum of the replaced entries' lengths: their bytes are copied unchanged.
    pub byte_len: u64,
}

/// A committed segment a merge replaces, named by its base offset and its object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedSegment {
    pub base_offset: i64,
    pub object: String,
}

/// A leader's change to its partition's in-sync replicas: a compare-and-set on the partition
/// epoch, so a change decided on an outdated view (or by a deposed leader) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The broker proposing it, which must still lead the partition under `leader_epoch`.
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The partition epoch the leader last saw.
    pub partition_epoch: i32,
    /// The whole new ISR, the leader among it.
    pub isr: Vec<i32>,
}
