//! The request layouts the bounds walker follows, transcribed from Kafka's JSON message
//! specs (`clients/src/main/resources/common/message/*Request.json`): for each field, the
//! versions it is present in and its type. Flexible versions use compact lengths and end
//! every struct with a tagged-fields section; tagged fields Kafka declares are listed with
//! their tag so their payload is walked too.
//!
//! Nullability is not tracked: a null where Kafka forbids one is bounded (it has no length)
//! and `kafka-protocol` rejects it while decoding, which is an error, not an allocation.

/// A field's wire type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    /// A fixed number of bytes: bool/int8 1, int16 2, int32 4, int64/float64 8, uuid 16.
    Fixed(usize),
    /// A (nullable) string: int16 length, or compact (unsigned varint length+1).
    Str,
    /// (Nullable) bytes or records: int32 length, or compact.
    Bytes,
    /// An array of elements: int32 count, or compact (count+1); -1/0 is null.
    Array(&'static Ty),
    /// A nested structure.
    Struct(&'static [Field]),
}

/// One field of a request structure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub ty: Ty,
    /// `Some(tag)` for a tagged field (present only in the tagged-fields section).
    pub tag: Option<u32>,
}

impl Field {
    pub(crate) fn in_version(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// The layout of one API's request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    pub api_key: i16,
    pub min: i16,
    pub max: i16,
    pub flexible_from: i16,
    pub fields: &'static [Field],
}

pub(crate) const ANY: i16 = i16::MAX;
const BOOL: Ty = Ty::Fixed(1);
const INT8: Ty = Ty::Fixed(1);
const INT16: Ty = Ty::Fixed(2);
pub(crate) const INT32: Ty = Ty::Fixed(4);
const INT64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);

pub(crate) const fn f(name: &'static str, min: i16, max: i16, ty: Ty) -> Field {
    Field {
        name,
        min,
        max,
        ty,
        tag: None,
    }
}

const fn tagged(name: &'static str, tag: u32, min: i16, ty: Ty) -> Field {
    Field {
        name,
        min,
        max: ANY,
        ty,
        tag: Some(tag),
    }
}

// Produce (0)
const PRODUCE_PARTITION: &[Field] = &[f("index", 0, ANY, INT32), f("records", 0, ANY, Ty::Bytes)];
const PRODUCE_TOPIC: &[Field] = &[
    f("name", 0, 12, Ty::Str),
    f("topic_id", 13, ANY, UUID),
    f(
        "partition_data",
        0,
        ANY,
        Ty::Array(&Ty::Struct(PRODUCE_PARTITION)),
    ),
];
const PRODUCE: &[Field] = &[
    f("transactional_id", 3, ANY, Ty::Str),
    f("acks", 0, ANY, INT16),
    f("timeout_ms", 0, ANY, INT32),
    f("topic_data", 0, ANY, Ty::Array(&Ty::Struct(PRODUCE_TOPIC))),
];

// Fetch (1)
const FETCH_PARTITION: &[Field] = &[
    f("partition", 0, ANY, INT32),
    f("current_leader_epoch", 9, ANY, INT32),
    f("fetch_offset", 0, ANY, INT64),
    f("last_fetched_epoch", 12, ANY, INT32),
    f("log_start_offset", 5, ANY, INT64),
    f("partition_max_bytes", 0, ANY, INT32),
    tagged("replica_directory_id", 0, 17, UUID),
    tagged("high_watermark", 1, 18, INT64),
];
const FETCH_TOPIC: &[Field] = &[
    f("topic", 0, 12, Ty::Str),
    f("topic_id", 13, ANY, UUID),
    f(
        "partitions",
        0,
        ANY,
        Ty::Array(&Ty::Struct(FETCH_PARTITION)),
    ),
];
const FORGOTTEN_TOPIC: &[Field] = &[
    f("topic", 7, 12, Ty::Str),
    f("topic_id", 13, ANY, UUID),
    f("partitions", 7, ANY, Ty::Array(&INT32)),
];
const REPLICA_STATE: &[Field] = &[
    f("replica_id", 15, ANY, INT32),
    f("replica_epoch", 15, ANY, INT64),
];
const FETCH: &[Field] = &[
    f("replica_id", 0, 14, INT32),
    f("max_wait_ms", 0, ANY, INT32),
    f("min_bytes", 0, ANY, INT32),
    f("max_bytes", 3, ANY, INT32),
    f("isolation_level", 4, ANY, INT8),
    f("session_id", 7, ANY, INT32),
    f("session_epoch", 7, ANY, INT32),
    f("topics", 0, ANY, Ty::Array(&Ty::Struct(FETCH_TOPIC))),
    f(
        "forgotten_topics_data",
        7,
        ANY,
        Ty::Array(&Ty::Struct(FORGOTTEN_TOPIC)),
    ),
    f("rack_id", 11, ANY, Ty::Str),
    tagged("cluster_id", 0, 12, Ty::Str),
    tagged("replica_state", 1, 15, Ty::Struct(REPLICA_STATE)),
];

// ListOffsets (2)
const LIST_OFFSETS_PARTITION: &[Field] = &[
    f("partition_index", 0, ANY, INT32),
    f("current_leader_epoch", 4, ANY, INT32),
    f("timestamp", 0, ANY, INT64),
];
const LIST_OFFSETS_TOPIC: &[Field] = &[
    f("name", 0, ANY, Ty::Str),
    f(
        "partitions",
        0,
        ANY,
        Ty::Array(&Ty::Struct(LIST_OFFSETS_PARTITION)),
    ),
];
const LIST_OFFSETS: &[Field] = &[
    f("replica_id", 0, ANY, INT32),
    f("isolation_level", 2, ANY, INT8),
    f("topics", 0, ANY, Ty::Array(&Ty::Struct(LIST_OFFSETS_TOPIC))),
    f("timeout_ms", 10, ANY, INT32),
];

// Metadata (3)
const METADATA_TOPIC: &[Field] = &[f("topic_id", 10, ANY, UUID), f("name", 0, ANY, Ty::Str)];
const METADATA: &[Field] = &[
    f("topics", 0, ANY, Ty::Array(&Ty::Struct(METADATA_TOPIC))),
    f("allow_auto_topic_creation", 4, ANY, BOOL),
    f("include_cluster_authorized_operations", 8, 10, BOOL),
    f("include_topic_authorized_operations", 8, ANY, BOOL),
];

// ApiVersions (18)
const API_VERSIONS: &[Field] = &[
    f("client_software_name", 3, ANY, Ty::Str),
    f("client_software_version", 3, ANY, Ty::Str),
];

// CreateTopics (19)
const CREATABLE_ASSIGNMENT: &[Field] = &[
    f("partition_index", 0, ANY, INT32),
    f("broker_ids", 0, ANY, Ty::Array(&INT32)),
];
const CREATABLE_CONFIG: &[Field] = &[f("name", 0, ANY, Ty::Str), f("value", 0, ANY, Ty::Str)];
const CREATABLE_TOPIC: &[Field] = &[
    f("name", 0, ANY, Ty::Str),
    f("num_partitions", 0, ANY, INT32),
    f("replication_factor", 0, ANY, INT16),
    f(
        "assignments",
        0,
        ANY,
        Ty::Array(&Ty::Struct(CREATABLE_ASSIGNMENT)),
    ),
    f("configs", 0, ANY, Ty::Array(&Ty::Struct(CREATABLE_CONFIG))),
];
const CREATE_TOPICS: &[Field] = &[
    f("topics", 0, ANY, Ty::Array(&Ty::Struct(CREATABLE_TOPIC))),
    f("timeout_ms", 0, ANY, INT32),
    f("validate_only", 1, ANY, BOOL),
];

// DeleteTopics (20)
const DELETE_TOPIC_STATE: &[Field] = &[f("name", 6, ANY, Ty::Str), f("topic_id", 6, ANY, UUID)];
const DELETE_TOPICS: &[Field] = &[
    f("topics", 6, ANY, Ty::Array(&Ty::Struct(DELETE_TOPIC_STATE))),
    f("topic_names", 0, 5, Ty::Array(&Ty::Str)),
    f("timeout_ms", 0, ANY, INT32),
];

// OffsetCommit (8)
const OFFSET_COMMIT_PARTITION: &[Field] = &[
    f("partition_index", 2, ANY, INT32),
    f("committed_offset", 2, ANY, INT64),
    f("committed_leader_epoch", 6, ANY, INT32),
    f("committed_metadata", 2, ANY, Ty::Str),
];
const OFFSET_COMMIT_TOPIC: &[Field] = &[
    f("name", 2, ANY, Ty::Str),
    f(
        "partitions",
        2,
        ANY,
        Ty::Array(&Ty::Struct(OFFSET_COMMIT_PARTITION)),
    ),
];
const OFFSET_COMMIT: &[Field] = &[
    f("group_id", 2, ANY, Ty::Str),
    f("generation_id_or_member_epoch", 2, ANY, INT32),
    f("member_id", 2, ANY, Ty::Str),
    f("group_instance_id", 7, ANY, Ty::Str),
    f("retention_time_ms", 2, 4, INT64),
    f(
        "topics",
        2,
        ANY,
        Ty::Array(&Ty::Struct(OFFSET_COMMIT_TOPIC)),
    ),
];

// OffsetFetch (9)
const OFFSET_FETCH_TOPIC: &[Field] = &[
    f("name", 1, ANY, Ty::Str),
    f("partition_indexes", 1, ANY, Ty::Array(&INT32)),
];
const OFFSET_FETCH_GROUP: &[Field] = &[
    f("group_id", 8, ANY, Ty::Str),
    f("member_id", 9, ANY, Ty::Str),
    f("member_epoch", 9, ANY, INT32),
    f("topics", 8, ANY, Ty::Array(&Ty::Struct(OFFSET_FETCH_TOPIC))),
];
const OFFSET_FETCH: &[Field] = &[
    f("group_id", 1, 7, Ty::Str),
    f("topics", 1, 7, Ty::Array(&Ty::Struct(OFFSET_FETCH_TOPIC))),
    f("groups", 8, ANY, Ty::Array(&Ty::Struct(OFFSET_FETCH_GROUP))),
    f("require_stable", 7, ANY, BOOL),
];

// FindCoordinator (10)
const FIND_COORDINATOR: &[Field] = &[
    f("key", 0, 3, Ty::Str),
    f("key_type", 1, ANY, INT8),
    f("coordinator_keys", 4, ANY, Ty::Array(&Ty::Str)),
];

// JoinGroup (11)
const JOIN_GROUP_PROTOCOL: &[Field] =
    &[f("name", 0, ANY, Ty::Str), f("metadata", 0, ANY, Ty::Bytes)];
const JOIN_GROUP: &[Field] = &[
    f("group_id", 0, ANY, Ty::Str),
    f("session_timeout_ms", 0, ANY, INT32),
    f("rebalance_timeout_ms", 1, ANY, INT32),
    f("member_id", 0, ANY, Ty::Str),
    f("group_instance_id", 5, ANY, Ty::Str),
    f("protocol_type", 0, ANY, Ty::Str),
    f(
        "protocols",
        0,
        ANY,
        Ty::Array(&Ty::Struct(JOIN_GROUP_PROTOCOL)),
    ),
    f("reason", 8, ANY, Ty::Str),
];

// Heartbeat (12)
const HEARTBEAT: &[Field] = &[
    f("group_id", 0, ANY, Ty::Str),
    f("generation_id", 0, ANY, INT32),
    f("member_id", 0, ANY, Ty::Str),
    f("group_instance_id", 3, ANY, Ty::Str),
];

// LeaveGroup (13)
const LEAVE_GROUP_MEMBER: &[Field] = &[
    f("member_id", 3, ANY, Ty::Str),
    f("group_instance_id", 3, ANY, Ty::Str),
    f("reason", 5, ANY, Ty::Str),
];
const LEAVE_GROUP: &[Field] = &[
    f("group_id", 0, ANY, Ty::Str),
    f("member_id", 0, 2, Ty::Str),
    f(
        "members",
        3,
        ANY,
        Ty::Array(&Ty::Struct(LEAVE_GROUP_MEMBER)),
    ),
];

// SyncGroup (14)
const SYNC_GROUP_ASSIGNMENT: &[Field] = &[
    f("member_id", 0, ANY, Ty::Str),
    f("assignment", 0, ANY, Ty::Bytes),
];
const SYNC_GROUP: &[Field] = &[
    f("group_id", 0, ANY, Ty::Str),
    f("generation_id", 0, ANY, INT32),
    f("member_id", 0, ANY, Ty::Str),
    f("group_instance_id", 3, ANY, Ty::Str),
    f("protocol_type", 5, ANY, Ty::Str),
    f("protocol_name", 5, ANY, Ty::Str),
    f(
        "assignments",
        0,
        ANY,
        Ty::Array(&Ty::Struct(SYNC_GROUP_ASSIGNMENT)),
    ),
];

// DescribeGroups (15)
const DESCRIBE_GROUPS: &[Field] = &[
    f("groups", 0, ANY, Ty::Array(&Ty::Str)),
    f("include_authorized_operations", 3, ANY, BOOL),
];

// ListGroups (16)
const LIST_GROUPS: &[Field] = &[
    f("states_filter", 4, ANY, Ty::Array(&Ty::Str)),
    f("types_filter", 5, ANY, Ty::Array(&Ty::Str)),
];

// DescribeConfigs (32)
const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", 1, ANY, INT8),
    f("resource_name", 1, ANY, Ty::Str),
    f("configuration_keys", 1, ANY, Ty::Array(&Ty::Str)),
];
const DESCRIBE_CONFIGS: &[Field] = &[
    f(
        "resources",
        1,
        ANY,
        Ty::Array(&Ty::Struct(DESCRIBE_CONFIGS_RESOURCE)),
    ),
    f("include_synonyms", 1, ANY, BOOL),
    f("include_documentation", 3, ANY, BOOL),
];

// AlterConfigs (33)
const ALTERABLE_CONFIG: &[Field] = &[f("name", 0, ANY, Ty::Str), f("value", 0, ANY, Ty::Str)];
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", 0, ANY, INT8),
    f("resource_name", 0, ANY, Ty::Str),
    f("configs", 0, ANY, Ty::Array(&Ty::Struct(ALTERABLE_CONFIG))),
];
const ALTER_CONFIGS: &[Field] = &[
    f(
        "resources",
        0,
        ANY,
        Ty::Array(&Ty::Struct(ALTER_CONFIGS_RESOURCE)),
    ),
    f("validate_only", 0, ANY, BOOL),
];

// DeleteGroups (42)
const DELETE_GROUPS: &[Field] = &[f("groups_names", 0, ANY, Ty::Array(&Ty::Str))];

// OffsetDelete (47)
const OFFSET_DELETE_PARTITION: &[Field] = &[f("partition_index", 0, ANY, INT32)];
const OFFSET_DELETE_TOPIC: &[Field] = &[
    f("name", 0, ANY, Ty::Str),
    f(
        "partitions",
        0,
        ANY,
        Ty::Array(&Ty::Struct(OFFSET_DELETE_PARTITION)),
    ),
];
const OFFSET_DELETE: &[Field] = &[
    f("group_id", 0, ANY, Ty::Str),
    f(
        "topics",
        0,
        ANY,
        Ty::Array(&Ty::Struct(OFFSET_DELETE_TOPIC)),
    ),
];

// DeleteRecords (21)
const DELETE_RECORDS_PARTITION: &[Field] = &[
    f("partition_index", 0, ANY, INT32),
    f("offset", 0, ANY, INT64),
];
const DELETE_RECORDS_TOPIC: &[Field] = &[
    f("name", 0, ANY, Ty::Str),
    f(
        "partitions",
        0,
        ANY,
        Ty::Array(&Ty::Struct(DELETE_RECORDS_PARTITION)),
    ),
];
const DELETE_RECORDS: &[Field] = &[
    f(
        "topics",
        0,
        ANY,
        Ty::Array(&Ty::Struct(DELETE_RECORDS_TOPIC)),
    ),
    f("timeout_ms", 0, ANY, INT32),
];

// CreatePartitions (37)
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[f("broker_ids", 0, ANY, Ty::Array(&INT32))];
const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    f("name", 0, ANY, Ty::Str),
    f("count", 0, ANY, INT32),
    f(
        "assignments",
        0,
        ANY,
        Ty::Array(&Ty::Struct(CREATE_PARTITIONS_ASSIGNMENT)),
    ),
];
const CREATE_PARTITIONS: &[Field] = &[
    f(
        "topics",
        0,
        ANY,
        Ty::Array(&Ty::Struct(CREATE_PARTITIONS_TOPIC)),
    ),
    f("timeout_ms", 0, ANY, INT32),
    f("validate_only", 0, ANY, BOOL),
];

// IncrementalAlterConfigs (44)
const INCREMENTAL_ALTERABLE_CONFIG: &[Field] = &[
    f("name", 0, ANY, Ty::Str),
    f("config_operation", 0, ANY, INT8),
    f("value", 0, ANY, Ty::Str),
];
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", 0, ANY, INT8),
    f("resource_name", 0, ANY, Ty::Str),
    f(
        "configs",
        0,
        ANY,
        Ty::Array(&Ty::Struct(INCREMENTAL_ALTERABLE_CONFIG)),
    ),
];
const INCREMENTAL_ALTER_CONFIGS: &[Field] = &[
    f(
        "resources",
        0,
        ANY,
        Ty::Array(&Ty::Struct(INCREMENTAL_ALTER_CONFIGS_RESOURCE)),
    ),
    f("validate_only", 0, ANY, BOOL),
];

// InitProducerId (22)
const INIT_PRODUCER_ID: &[Field] = &[
    f("transactional_id", 0, ANY, Ty::Str),
    f("transaction_timeout_ms", 0, ANY, INT32),
    f("producer_id", 3, ANY, INT64),
    f("producer_epoch", 3, ANY, INT16),
];

// DescribeCluster (60)
const DESCRIBE_CLUSTER: &[Field] = &[
    f("include_cluster_authorized_operations", 0, ANY, BOOL),
    f("endpoint_type", 1, ANY, INT8),
    f("include_fenced_brokers", 2, ANY, BOOL),
];

/// Every request the broker accepts, with the versions it serves.
pub(crate) const SCHEMAS: &[Schema] = &[
    Schema {
        api_key: 0,
        min: 3,
        max: 13,
        flexible_from: 9,
        fields: PRODUCE,
    },
    Schema {
        api_key: 1,
        min: 4,
        max: 18,
        flexible_from: 12,
        fields: FETCH,
    },
    Schema {
        api_key: 2,
        min: 1,
        max: 10,
        flexible_from: 6,
        fields: LIST_OFFSETS,
    },
    Schema {
        api_key: 3,
        min: 0,
        max: 13,
        flexible_from: 9,
        fields: METADATA,
    },
    Schema {
        api_key: 8,
        min: 2,
        max: 9,
        flexible_from: 8,
        fields: OFFSET_COMMIT,
    },
    Schema {
        api_key: 9,
        min: 1,
        max: 9,
        flexible_from: 6,
        fields: OFFSET_FETCH,
    },
    Schema {
        api_key: 10,
        min: 0,
        max: 6,
        flexible_from: 3,
        fields: FIND_COORDINATOR,
    },
    Schema {
        api_key: 11,
        min: 0,
        max: 9,
        flexible_from: 6,
        fields: JOIN_GROUP,
    },
    Schema {
        api_key: 12,
        min: 0,
        max: 4,
        flexible_from: 4,
        fields: HEARTBEAT,
    },
    Schema {
        api_key: 13,
        min: 0,
        max: 5,
        flexible_from: 4,
        fields: LEAVE_GROUP,
    },
    Schema {
        api_key: 14,
        min: 0,
        max: 5,
        flexible_from: 4,
        fields: SYNC_GROUP,
    },
    Schema {
        api_key: 15,
        min: 0,
        max: 5,
        flexible_from: 5,
        fields: DESCRIBE_GROUPS,
    },
    Schema {
        api_key: 16,
        min: 0,
        max: 5,
        flexible_from: 3,
        fields: LIST_GROUPS,
    },
    Schema {
        api_key: 18,
        min: 0,
        max: 4,
        flexible_from: 3,
        fields: API_VERSIONS,
    },
    Schema {
        api_key: 19,
        min: 2,
        max: 7,
        flexible_from: 5,
        fields: CREATE_TOPICS,
    },
    Schema {
        api_key: 20,
        min: 1,
        max: 6,
        flexible_from: 4,
        fields: DELETE_TOPICS,
    },
    Schema {
        api_key: 21,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: DELETE_RECORDS,
    },
    Schema {
        api_key: 22,
        min: 0,
        max: 5,
        flexible_from: 2,
        fields: INIT_PRODUCER_ID,
    },
    Schema {
        api_key: 32,
        min: 1,
        max: 4,
        flexible_from: 4,
        fields: DESCRIBE_CONFIGS,
    },
    Schema {
        api_key: 33,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: ALTER_CONFIGS,
    },
    Schema {
        api_key: 37,
        min: 0,
        max: 3,
        flexible_from: 2,
        fields: CREATE_PARTITIONS,
    },
    Schema {
        api_key: 42,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: DELETE_GROUPS,
    },
    Schema {
        api_key: 44,
        min: 0,
        max: 1,
        flexible_from: 1,
        fields: INCREMENTAL_ALTER_CONFIGS,
    },
    Schema {
        api_key: 47,
        min: 0,
        max: 0,
        flexible_from: ANY,
        fields: OFFSET_DELETE,
    },
    Schema {
        api_key: 60,
        min: 0,
        max: 2,
        flexible_from: 0,
        fields: DESCRIBE_CLUSTER,
    },
];

pub(crate) fn schema_for(api_key: i16) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.api_key == api_key)
}
