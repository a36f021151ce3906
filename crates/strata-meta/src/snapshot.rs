//! The state machine's snapshot format: what a node writes to disk and what a raft leader
//! sends a lagging follower.
//!
//! ```text
//! magic "STRATASM" (8 bytes) | format version (u32 LE) | rkyv archive of MetadataState
//! ```
//!
//! The version names the archive's layout: a node refuses a version it does not know instead
//! of misreading it, and a layout change comes with a new version and a converter. The
//! archive is validated (bytecheck) before use, so a corrupt or hostile snapshot is an error,
//! never undefined behaviour.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::state::MetadataState;

const MAGIC: &[u8; 8] = b"STRATASM";
/// The layout written today. Version 4 added each partition's eligible leader replicas and
/// the metadata version (of the cluster and of each broker);
/// version 3 the replica moves in progress; version 2 gave each partition's manifest a log
/// start offset (version 1 was never released, so it has no converter).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 4;
const HEADER_LEN: usize = MAGIC.len() + 4;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Strata metadata snapshot")]
    NotASnapshot,
    #[error(
        "snapshot format version {0} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("snapshot archive is invalid: {0}")]
    Invalid(String),
}

/// Encodes `state` as a versioned snapshot.
pub fn encode_snapshot(state: &MetadataState) -> Result<Vec<u8>, SnapshotError> {
    let archive = rkyv::to_bytes::<rancor::Error>(state)
        .map_err(|e| SnapshotError::Invalid(e.to_string()))?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + archive.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&archive);
    Ok(bytes)
}

/// Decodes a snapshot written by [`encode_snapshot`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<MetadataState, SnapshotError> {
    let (magic, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or(SnapshotError::NotASnapshot)?;
    if magic != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let (version, archive) = rest
        .split_first_chunk::<4>()
        .ok_or(SnapshotError::NotASnapshot)?;
    // The archive's root must be aligned; the bytes came from a file or the network.
    let mut aligned = AlignedVec::<16>::with_capacity(archive.len());
    aligned.extend_from_slice(archive);
    let invalid = |e: rancor::Error| SnapshotError::Invalid(e.to_string());
    match u32::from_le_bytes(*version) {
        SNAPSHOT_FORMAT_VERSION => {
            rkyv::from_bytes::<MetadataState, rancor::Error>(&aligned).map_err(invalid)
        }
        3 => rkyv::from_bytes::<v3::MetadataState, rancor::Error>(&aligned)
            .map(MetadataState::from)
            .map_err(invalid),
        2 => rkyv::from_bytes::<v2::MetadataState, rancor::Error>(&aligned)
            .map(|v2| MetadataState::from(v3::MetadataState::from(v2)))
            .map_err(invalid),
        other => Err(SnapshotError::UnsupportedVersion(other)),
    }
}

/// Version 3's layout: before eligible leader replicas and metadata versions.
mod v3 {
    use std::collections::BTreeMap;

    use rkyv::{Archive, Deserialize};
    use uuid::Uuid;

    use crate::command::Endpoint;
    use crate::state::{PartitionManifest, Reassignment};

    #[derive(Archive, Deserialize)]
    pub(super) struct BrokerRecord {
        broker_id: i32,
        incarnation: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        fenced: bool,
        last_heartbeat_ms: i64,
    }

    #[derive(Archive, Deserialize)]
    pub(super) struct PartitionRecord {
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    }

    #[derive(Archive, Deserialize)]
    pub(super) struct TopicRecord {
        topic_id: Uuid,
        name: String,
        configs: BTreeMap<String, String>,
        partitions: Vec<PartitionRecord>,
    }

    #[derive(Archive, Deserialize)]
    pub(super) struct MetadataState {
        pub(super) cluster_id: Option<String>,
        pub(super) brokers: BTreeMap<i32, BrokerRecord>,
        pub(super) topics: BTreeMap<Uuid, TopicRecord>,
        pub(super) topic_ids: BTreeMap<String, Uuid>,
        pub(super) broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
        pub(super) cluster_configs: BTreeMap<String, String>,
        pub(super) next_producer_id: i64,
        pub(super) manifest: BTreeMap<Uuid, BTreeMap<i32, PartitionManifest>>,
        pub(super) reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
    }

    impl From<BrokerRecord> for crate::BrokerRecord {
        fn from(old: BrokerRecord) -> Self {
            Self {
                broker_id: old.broker_id,
                incarnation: old.incarnation,
                endpoints: old.endpoints,
                rack: old.rack,
                fenced: old.fenced,
                last_heartbeat_ms: old.last_heartbeat_ms,
                metadata_version: 0,
            }
        }
    }

    impl From<TopicRecord> for crate::TopicRecord {
        fn from(old: TopicRecord) -> Self {
            let partitions = old
                .partitions
                .into_iter()
                .map(|p| crate::PartitionRecord {
                    replicas: p.replicas,
                    isr: p.isr,
                    elr: Vec::new(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                })
                .collect();
            Self {
                topic_id: old.topic_id,
                name: old.name,
                configs: old.configs,
                partitions,
            }
        }
    }

    impl From<MetadataState> for crate::MetadataState {
        fn from(old: MetadataState) -> Self {
            Self {
                cluster_id: old.cluster_id,
                brokers: old
                    .brokers
                    .into_iter()
                    .map(|(id, broker)| (id, broker.into()))
                    .collect(),
                topics: old
                    .topics
                    .into_iter()
                    .map(|(id, topic)| (id, topic.into()))
                    .collect(),
                topic_ids: old.topic_ids,
                broker_configs: old.broker_configs,
                cluster_configs: old.cluster_configs,
                next_producer_id: old.next_producer_id,
                manifest: old.manifest,
                reassignments: old.reassignments,
                metadata_version: 0,
            }
        }
    }
}

/// Version 2's layout: the state before replica moves existed.
mod v2 {
    use std::collections::BTreeMap;

    use rkyv::{Archive, Deserialize};
    use uuid::Uuid;

    use crate::state::PartitionManifest;

    #[derive(Archive, Deserialize)]
    pub(super) struct MetadataState {
        cluster_id: Option<String>,
        brokers: BTreeMap<i32, super::v3::BrokerRecord>,
        topics: BTreeMap<Uuid, super::v3::TopicRecord>,
        topic_ids: BTreeMap<String, Uuid>,
        broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
        cluster_configs: BTreeMap<String, String>,
        next_producer_id: i64,
        manifest: BTreeMap<Uuid, BTreeMap<i32, PartitionManifest>>,
    }

    impl From<MetadataState> for super::v3::MetadataState {
        fn from(old: MetadataState) -> Self {
            Self {
                cluster_id: old.cluster_id,
                brokers: old.brokers,
                topics: old.topics,
                topic_ids: old.topic_ids,
                broker_configs: old.broker_configs,
                cluster_configs: old.cluster_configs,
                next_producer_id: old.next_producer_id,
                manifest: old.manifest,
                reassignments: BTreeMap::new(),
            }
        }
    }
}
