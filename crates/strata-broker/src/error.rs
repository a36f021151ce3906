//! The broker's errors and the one place they become Kafka error codes.
//!
//! [`BrokerError::response_error`] and the functions it calls match every variant without a
//! wildcard, so a new failure forces a decision about what a client is told (and whether
//! the client will retry).

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use strata_log::{BatchError, LogError};
use thiserror::Error;

use crate::config::ConfigError;
use crate::producer_state::SequenceError;
use strata_meta::MetaError;

/// Everything a request handler can fail with.
#[derive(Debug, Clone, Error)]
pub enum BrokerError {
    #[error("storage error at {path}: {source}")]
    Storage {
        path: String,
        source: Arc<std::io::Error>,
    },
    #[error(transparent)]
    Log(Arc<LogError>),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    /// Only the broker's coordinators write to Kafka's internal topics.
    #[error("{topic} is an internal topic: clients cannot write to it or delete its records")]
    InternalTopic { topic: String },
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("transactions are not supported yet")]
    TransactionsUnsupported,
    #[error("required acks must be -1, 0 or 1, got {acks}")]
    InvalidRequiredAcks { acks: i16 },
    #[error("leader epoch {requested} is newer than the partition's epoch {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is older than the partition's epoch {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error(transparent)]
    ObjectStoreUrl(Arc<strata_objects::ObjectStoreUrlError>),
    /// Too much data waits for the object store; retry once the uploader catches up.
    #[error(
        "{pending} bytes on this broker wait to be uploaded to the object store (budget {budget}): retry later"
    )]
    TieringBacklog { pending: u64, budget: u64 },
    /// The object store failed a read, or holds something other than the manifest says.
    #[error("tiered storage: {0}")]
    RemoteStorage(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// An append was written but not committed within the request's timeout (Kafka's
    /// REQUEST_TIMED_OUT): the client retries, and idempotence makes the retry safe.
    #[error("the append was not committed within {timeout_ms} ms")]
    CommitTimedOut { timeout_ms: u64 },
    /// The partition's log failed on this broker (see `partition::Offline`).
    #[error("the partition is offline on this broker: {reason}")]
    PartitionOffline { reason: String },
    #[error("this broker does not lead the partition; refresh metadata to find its leader")]
    NotLeaderOrFollower,
    /// This broker's quorum heartbeats have not got through for longer than its lease: it
    /// may have been replaced as leader, so it acknowledges nothing (a retriable
    /// NOT_LEADER_OR_FOLLOWER: the client refreshes its metadata and finds the leader).
    #[error(
        "this broker has not reached the metadata quorum for {expired_ms} ms past its lease; refresh metadata to find the leader"
    )]
    LeaseExpired { expired_ms: u64 },
    /// `acks=all` while the ISR is below `min.insync.replicas`: nothing was written.
    #[error("the ISR has {isr} members, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicas { isr: usize, min_isr: usize },
    /// Written, but the ISR fell below `min.insync.replicas` before it committed.
    #[error("written, but the ISR fell to {isr} members, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicasAfterAppend { isr: usize, min_isr: usize },
    #[error("{reason}")]
    InvalidRequest { reason: String },
    #[error("cannot start: {0}")]
    Setup(String),
    #[error("metadata quorum: {0}")]
    ControlPlane(strata_raft::ControllerError),
    #[error("the metadata quorum refused this broker's registration: {0}")]
    Registration(String),
    /// Another live process is registered under this node id.
    #[error(
        "node id {broker_id} is in use by another live broker (incarnation {incarnation}, still heartbeating); stop it or give this node another --node-id"
    )]
    DuplicateBroker {
        broker_id: i32,
        incarnation: uuid::Uuid,
    },
    /// A newer process registered under this node id: this one must stop serving.
    #[error("another process registered as node {broker_id}; this one stops serving")]
    Superseded { broker_id: i32 },
    #[error(transparent)]
    Metadata(#[from] MetaError),
}

impl From<LogError> for BrokerError {
    fn from(e: LogError) -> Self {
        Self::Log(Arc::new(e))
    }
}

impl From<std::io::Error> for BrokerError {
    fn from(e: std::io::Error) -> Self {
        Self::Storage {
            path: String::new(),
            source: Arc::new(e),
        }
    }
}

impl BrokerError {
    pub fn storage(path: &Path, source: std::io::Error) -> Self {
        Self::Storage {
            path: path.display().to_string(),
            source: Arc::new(source),
        }
    }

    /// The Kafka error code a client is told.
    pub fn response_error(&self) -> ResponseError {
        match self {
            Self::Storage { .. } => ResponseError::KafkaStorageError,
            Self::Log(e) => log_error_code(e),
            Self::Batch(e) => batch_error_code(e),
            Self::Sequence(SequenceError::StaleEpoch { .. }) => ResponseError::InvalidProducerEpoch,
            Self::Sequence(SequenceError::OutOfOrder { .. }) => {
                ResponseError::OutOfOrderSequenceNumber
            }
            Self::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            Self::UnknownTopicId => ResponseError::UnknownTopicId,
            Self::InternalTopic { .. } => ResponseError::InvalidTopicException,
            Self::InvalidConfig(_) => ResponseError::InvalidConfig,
            Self::TransactionsUnsupported => ResponseError::UnsupportedVersion,
            Self::InvalidRequiredAcks { .. } => ResponseError::InvalidRequiredAcks,
            Self::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            Self::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            Self::ObjectStoreUrl(_) | Self::RemoteStorage(_) | Self::TieringBacklog { .. } => {
                ResponseError::KafkaStorageError
            }
            Self::ShuttingDown | Self::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
            Self::PartitionOffline { .. } => ResponseError::KafkaStorageError,
            Self::LeaseExpired { .. } => ResponseError::NotLeaderOrFollower,
            Self::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            Self::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            Self::CommitTimedOut { .. } => ResponseError::RequestTimedOut,
            Self::InvalidRequest { .. } => ResponseError::InvalidRequest,
            Self::Setup(_) => ResponseError::UnknownServerError,
            Self::ControlPlane(_) => ResponseError::NotController,
            Self::Registration(_) => ResponseError::UnknownServerError,
            Self::DuplicateBroker { .. } => ResponseError::DuplicateBrokerRegistration,
            Self::Superseded { .. } => ResponseError::StaleBrokerEpoch,
            Self::Metadata(e) => meta_error_code(e),
        }
    }

    /// The code as it goes on the wire.
    pub fn code(&self) -> i16 {
        self.response_error().code()
    }
}

fn meta_error_code(e: &MetaError) -> ResponseError {
    match e {
        MetaError::ClusterIdMismatch { .. } => ResponseError::InconsistentClusterId,
        MetaError::UnknownBroker { .. } => ResponseError::BrokerIdNotRegistered,
        MetaError::StaleBrokerIncarnation { .. } => ResponseError::StaleBrokerEpoch,
        MetaError::InvalidRegistration { .. }
        | MetaError::InvalidTopicId
        | MetaError::InvalidSegment { .. }
        | MetaError::InvalidProducerIdBlock => ResponseError::InvalidRequest,
        MetaError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        MetaError::TopicAlreadyExists { .. } => ResponseError::TopicAlreadyExists,
        MetaError::UnknownTopicId { .. } => ResponseError::UnknownTopicId,
        MetaError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
        MetaError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        MetaError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        MetaError::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
        MetaError::InvalidConfig(_) => ResponseError::InvalidConfig,
        MetaError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        MetaError::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
        MetaError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        MetaError::IneligibleReplica { .. } => ResponseError::IneligibleReplica,
        MetaError::InvalidIsr { .. } => ResponseError::InvalidRequest,
        MetaError::NoReassignmentInProgress { .. } => ResponseError::NoReassignmentInProgress,
        MetaError::ProducerIdsExhausted => ResponseError::UnknownServerError,
        MetaError::MetadataVersionRefused { .. } => ResponseError::InvalidUpdateVersion,
    }
}

fn log_error_code(e: &LogError) -> ResponseError {
    match e {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Only a follower's fetcher meets it, and it refetches; no client is answered it.
        LogError::NotContiguous { .. } => ResponseError::UnknownServerError,
        LogError::Io { .. }
        | LogError::SyncFailed { .. }
        | LogError::Corrupt { .. }
        | LogError::SegmentFull { .. } => ResponseError::KafkaStorageError,
    }
}

fn batch_error_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::TooShort { .. }
        | BatchError::LengthMismatch { .. }
        | BatchError::CrcMismatch { .. }
        | BatchError::UnknownCompression { .. }
        | BatchError::DecompressedTooLarge { .. }
        | BatchError::Decompression { .. }
        | BatchError::MalformedRecord { .. } => ResponseError::CorruptMessage,
        BatchError::NotOneBatch
        | BatchError::UnsupportedMagic { .. }
        | BatchError::Invalid { .. } => ResponseError::InvalidRecord,
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BatchError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
    }
}
