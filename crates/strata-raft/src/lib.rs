//! The metadata quorum: openraft over the [`strata_meta`] state machine.
//!
//! - [`LogStore`]: the raft log and vote, durable on the local disk (`docs/formats/raft.md`).
//! - [`StateMachineStore`]: applies committed [`MetaCommand`]s to a [`MetadataState`] and
//!   takes, stores and installs snapshots in the versioned format of
//!   [`strata_meta::snapshot`].
//!
//! - [`network`]: raft RPCs between controllers over HTTP.
//! - [`Controller`]: a node's raft, its state replica and its write path.
//!
//! Every node keeps a full replica of the state machine, so metadata reads never leave the
//! process; only writes go through the raft leader.

use std::io::Cursor;

use strata_meta::{CommandOutcome, MetaCommand, MetaError};

mod controller;
pub mod leader;
mod log_store;
pub mod network;
mod state_machine;

pub use controller::{Controller, ControllerError};
pub use leader::{Committed, LeaderAnswer, LeaderClient, LeaderRequest, QuorumStatus};
pub use log_store::{LogFrames, LogStore, decode_backup_delta};
pub use network::raft_routes;
pub use state_machine::{StateMachineStore, StateReader, seed_from_backup};

/// A node's id in the quorum (the same number as its Kafka broker id).
pub type NodeId = u64;
/// How to reach a node: its controller address.
pub type Node = openraft::BasicNode;
/// What applying one command answers: the proposer learns whether the state machine took it.
pub type MetaResponse = Result<CommandOutcome, MetaError>;

openraft::declare_raft_types!(
    /// The raft types of the metadata quorum.
    pub TypeConfig:
        D = MetaCommand,
        R = MetaResponse,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;

#[cfg(test)]
mod tests;
