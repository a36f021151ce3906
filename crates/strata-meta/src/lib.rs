//! The cluster's metadata as a state machine: brokers, topics, partitions, the segment
//! manifest, producer-id blocks and dynamic configs.
//!
//! Every change is a typed [`MetaCommand`]. [`MetadataState::apply`] validates it against the
//! current state and either changes the state or refuses with a [`MetaError`], and does so
//! deterministically: it reads no clock and draws no random number (times, ids and placements
//! travel inside the command, chosen by whoever proposed it), and iterates only ordered maps.
//! Replaying the same commands from the same state therefore gives the same state on every
//! node, which is what lets a raft log carry them.
//!
//! A refused command is still a committed log entry: it changes nothing, and every replica
//! refuses it the same way. That is how two concurrent creates of one topic resolve: both are
//! committed, the first applied wins, the second gets `TopicAlreadyExists`.

mod apply;
mod command;
mod eligibility;
mod error;
mod legacy;
mod merge;
pub mod names;
mod placement;
mod reassign;
pub mod snapshot;
mod state;
pub mod topic_config;

pub use apply::MAX_PARTITIONS;
pub use command::{
    AlterConfigs, AlterPartition, BrokerHeartbeat, CommitSegments, ConfigResource,
    CreatePartitions, CreateTopic, ElectLeaders, ElectionType, Endpoint, FenceBroker, MetaCommand,
    PartitionReassignment, ReassignPartitions, RegisterBroker, ReplaceSegments, ReplacedSegment,
    SegmentCommit, SegmentMerge, UpgradeMetadata,
};
pub use error::MetaError;
pub use merge::{MAX_MERGED_ENTRIES, MERGE_FANOUT, MergeLimits};
pub use state::{
    BrokerRecord, CommandOutcome, Election, ManifestTotals, MetadataState, NO_LEADER,
    PartitionManifest, PartitionRecord, Reassignment, SegmentEntry, TopicRecord,
};

/// The metadata rules this build applies, moved to through [`UpgradeMetadata`] once every
/// broker applies them. 0: the rules before versions existed. 1: eligible leader replicas
/// (KIP-966), with `min.insync.replicas` set per topic or cluster-wide only, as Kafka has it.
/// 2: merged segments ([`ReplaceSegments`]).
pub const METADATA_VERSION: u16 = 2;

/// The first metadata version with eligible leader replicas.
pub(crate) const ELIGIBLE_LEADERS: u16 = 1;

/// The first metadata version that takes [`ReplaceSegments`]: a broker proposes it only
/// once the cluster is there, since an older build cannot read it from the log.
pub const MERGED_SEGMENTS: u16 = 2;

#[cfg(test)]
mod tests;
