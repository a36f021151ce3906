//! Why the state machine refused a command. Each maps to one Kafka error code at the edge.

use uuid::Uuid;

use crate::topic_config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MetaError {
    #[error("the cluster id is {existing}, not {requested}")]
    ClusterIdMismatch { existing: String, requested: String },
    #[error("broker {broker_id} is not registered")]
    UnknownBroker { broker_id: i32 },
    #[error("broker {broker_id} has restarted since; this request is from an older incarnation")]
    StaleBrokerIncarnation { broker_id: i32 },
    #[error("invalid broker registration: {reason}")]
    InvalidRegistration { reason: String },
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("a topic id must not be the nil uuid")]
    InvalidTopicId,
    #[error("topic '{name}' already exists")]
    TopicAlreadyExists { name: String },
    #[error("no topic has id {topic_id}")]
    UnknownTopicId { topic_id: Uuid },
    #[error("topic {topic_id} has no partition {partition}")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error("invalid partitions: {reason}")]
    InvalidPartitions { reason: String },
    #[error("invalid replication factor: {reason}")]
    InvalidReplicationFactor { reason: String },
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("leader epoch {given} is not the partition's current epoch {current}")]
    FencedLeaderEpoch { given: i32, current: i32 },
    #[error("partition epoch {given} is not the partition's current epoch {current}")]
    InvalidUpdateVersion { given: i32, current: i32 },
    #[error("broker {broker_id} is not the partition's leader")]
    NotLeader { broker_id: i32 },
    #[error("broker {broker_id} cannot join the ISR: it is fenced, unknown or not a replica")]
    IneligibleReplica { broker_id: i32 },
    #[error("invalid ISR: {reason}")]
    InvalidIsr { reason: String },
    #[error("no reassignment of partition {partition} of topic {topic_id} is in progress")]
    NoReassignmentInProgress { topic_id: Uuid, partition: i32 },
    #[error("invalid segment: {reason}")]
    InvalidSegment { reason: String },
    #[error("a producer id block needs at least one id")]
    InvalidProducerIdBlock,
    #[error("producer ids are exhausted")]
    ProducerIdsExhausted,
    #[error("metadata version {version} cannot be applied: {reason}")]
    MetadataVersionRefused { version: u16, reason: String },
}
