//! Prometheus metrics of the broker, rendered in the text exposition format at `/metrics`.
//!
//! Names follow `strata_<subsystem>_<what>_<unit>`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod fetch_sessions;
mod replication;
mod tiering;

pub use fetch_sessions::FetchSessionMetrics;
pub use replication::ReplicationMetrics;
pub use tiering::{TierLabels, TieringMetrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub api: &'static str,
    pub error: &'static str,
}

/// One committed partition of one group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupPartitionLabels {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// One group, in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
    pub state: &'static str,
}

/// The consumer groups this broker coordinates, refreshed every couple of seconds.
#[derive(Debug, Default)]
pub struct GroupMetrics {
    pub members: Family<GroupLabels, Gauge>,
    pub committed_offset: Family<GroupPartitionLabels, Gauge>,
    /// Only for partitions this broker leads (it knows their end).
    pub log_end_offset: Family<GroupPartitionLabels, Gauge>,
    pub lag: Family<GroupPartitionLabels, Gauge>,
    /// `__consumer_offsets` records skipped while loading because their value does not decode.
    pub records_skipped: Counter,
}

impl GroupMetrics {
    fn register(&self, registry: &mut Registry) {
        let group = registry.sub_registry_with_prefix("group");
        group.register(
            "members",
            "Members of each group this broker coordinates, labelled with its state",
            self.members.clone(),
        );
        group.register(
            "committed_offset",
            "A group's committed offset per partition",
            self.committed_offset.clone(),
        );
        group.register(
            "log_end_offset",
            "The end of a committed partition this broker leads",
            self.log_end_offset.clone(),
        );
        group.register(
            "lag",
            "Records between a group's committed offset and the end of the partition",
            self.lag.clone(),
        );
        group.register(
            "records_skipped",
            "Consumer offsets records skipped while loading groups because their value does not decode",
            self.records_skipped.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the broker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<ApiLabels, Counter>,
    pub request_errors: Family<ErrorLabels, Counter>,
    pub request_duration: Family<ApiLabels, Histogram, fn() -> Histogram>,
    pub connections_active: Gauge,
    pub connections_rejected: Counter,
    /// Connections closed as accepted: over `max.connections` or `max.connections.per.ip`.
    pub connections_refused: Counter,
    pub produce_bytes: Counter,
    pub produce_records: Counter,
    pub produce_duplicates: Counter,
    pub fetch_bytes: Counter,
    /// Fetched bytes sent from segment files with `sendfile`, never copied through the broker.
    pub fetch_sendfile_bytes: Counter,
    pub fetch_sessions: FetchSessionMetrics,
    pub fsyncs: Counter,
    pub fsync_duration: Histogram,
    pub fsync_batch_waiters: Histogram,
    pub retention_deleted_segments: Counter,
    /// Descriptors the process has open, and its limit.
    pub open_fds: Gauge,
    pub max_fds: Gauge,
    /// Sealed segments' descriptors held open for reads (bounded; see `SegmentFiles`).
    pub open_segment_files: Gauge,
    /// Rolled segments waiting for their fsync and index (the sealing thread's queue).
    pub segment_seals_queued: Gauge,
    pub quorum: QuorumMetrics,
    pub groups: GroupMetrics,
    pub object_store: strata_objects::ObjectStoreMetrics,
    pub tiering: TieringMetrics,
    pub replication: ReplicationMetrics,
}

/// The metadata quorum as this node sees it.
#[derive(Debug, Default)]
pub struct QuorumMetrics {
    pub term: Gauge,
    pub last_log_index: Gauge,
    pub last_applied_index: Gauge,
    /// Entries in this node's log that it has not applied yet.
    pub apply_lag: Gauge,
    /// 1 while this node is the controller leader.
    pub leader: Gauge,
    pub leader_changes: Counter,
    /// Registered brokers that are not fenced.
    pub live_brokers: Gauge,
    /// The metadata rules in force (`strata_meta::METADATA_VERSION` once every broker runs
    /// this build).
    pub metadata_version: Gauge,
}

impl QuorumMetrics {
    fn register(&self, registry: &mut Registry) {
        let quorum = registry.sub_registry_with_prefix("quorum");
        quorum.register("term", "The raft term", self.term.clone());
        quorum.register(
            "last_log_index",
            "Index of the last entry in this node's raft log",
            self.last_log_index.clone(),
        );
        quorum.register(
            "last_applied_index",
            "Index of the last entry applied to this node's metadata",
            self.last_applied_index.clone(),
        );
        quorum.register(
            "apply_lag",
            "Entries in this node's raft log not yet applied",
            self.apply_lag.clone(),
        );
        quorum.register(
            "leader",
            "1 while this node is the controller leader",
            self.leader.clone(),
        );
        quorum.register(
            "leader_changes",
            "Times the controller leader this node knows of changed",
            self.leader_changes.clone(),
        );
        quorum.register(
            "live_brokers",
            "Registered brokers that are not fenced",
            self.live_brokers.clone(),
        );
        quorum.register(
            "metadata_version",
            "The metadata rules in force; moves to this build's once every broker runs it",
            self.metadata_version.clone(),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strata");
        let requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "kafka_requests",
            "Kafka requests handled, by API",
            requests.clone(),
        );
        let request_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "kafka_request_errors",
            "Partition- or request-level errors answered, by API and Kafka error",
            request_errors.clone(),
        );
        let request_duration =
            Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "kafka_request_duration_seconds",
            "Time from a request's arrival to its response being written",
            request_duration.clone(),
        );
        let connections_active = Gauge::default();
        registry.register(
            "kafka_connections_active",
            "Open client connections",
            connections_active.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "kafka_connections_malformed",
            "Connections closed because a request was malformed or too large",
            connections_rejected.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "kafka_connections_refused",
            "Connections closed as they were accepted: over max.connections or max.connections.per.ip",
            connections_refused.clone(),
        );
        let produce_bytes = Counter::default();
        registry.register(
            "produce_bytes",
            "Record batch bytes appended",
            produce_bytes.clone(),
        );
        let produce_records = Counter::default();
        registry.register(
            "produce_records",
            "Records appended",
            produce_records.clone(),
        );
        let produce_duplicates = Counter::default();
        registry.register(
            "produce_duplicate_batches",
            "Idempotent retries answered with their original offsets",
            produce_duplicates.clone(),
        );
        let fetch_bytes = Counter::default();
        registry.register(
            "fetch_bytes",
            "Record batch bytes returned to fetches",
            fetch_bytes.clone(),
        );
        let fetch_sendfile_bytes = Counter::default();
        registry.register(
            "fetch_sendfile_bytes",
            "Record batch bytes sent from segment files with sendfile, not copied by the broker",
            fetch_sendfile_bytes.clone(),
        );
        let fetch_sessions = FetchSessionMetrics::default();
        fetch_sessions.register(&mut registry);
        let fsyncs = Counter::default();
        registry.register("log_fsyncs", "Group-commit fsync rounds", fsyncs.clone());
        let fsync_duration = latency_histogram();
        registry.register(
            "log_fsync_duration_seconds",
            "Duration of one group-commit round",
            fsync_duration.clone(),
        );
        let fsync_batch_waiters = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "log_fsync_batch_waiters",
            "Produce requests acknowledged by one group-commit round",
            fsync_batch_waiters.clone(),
        );
        let retention_deleted_segments = Counter::default();
        registry.register(
            "log_retention_deleted_segments",
            "Segments deleted by retention",
            retention_deleted_segments.clone(),
        );
        let open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "File descriptors the broker process has open",
            open_fds.clone(),
        );
        let max_fds = Gauge::default();
        registry.register(
            "process_max_fds",
            "The broker process's limit on open file descriptors",
            max_fds.clone(),
        );
        let open_segment_files = Gauge::default();
        registry.register(
            "log_open_segment_files",
            "Sealed segment files held open for reads (least recently used closed first)",
            open_segment_files.clone(),
        );
        let segment_seals_queued = Gauge::default();
        registry.register(
            "log_segment_seals_queued",
            "Rolled segments waiting for the sealing thread to fsync them and write their index",
            segment_seals_queued.clone(),
        );
        let quorum = QuorumMetrics::default();
        quorum.register(&mut registry);
        let groups = GroupMetrics::default();
        groups.register(&mut registry);
        let object_store = strata_objects::ObjectStoreMetrics::default();
        object_store.register(&mut registry);
        let tiering = TieringMetrics::default();
        tiering.register(&mut registry);
        let replication = ReplicationMetrics::default();
        replication.register(&mut registry);
        Self {
            tiering,
            replication,
            registry,
            quorum,
            groups,
            object_store,
            requests,
            request_errors,
            request_duration,
            connections_active,
            connections_rejected,
            connections_refused,
            produce_bytes,
            produce_records,
            produce_duplicates,
            fetch_bytes,
            fetch_sendfile_bytes,
            fetch_sessions,
            fsyncs,
            fsync_duration,
            fsync_batch_waiters,
            retention_deleted_segments,
            open_fds,
            max_fds,
            open_segment_files,
            segment_seals_queued,
        }
    }

    /// Renders every metric in the Prometheus/OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts a partition- or request-level error answered to a client.
    pub fn count_error(&self, api: &'static str, error: kafka_protocol::error::ResponseError) {
        let name = error_name(error.code());
        self.request_errors
            .get_or_create(&ErrorLabels { api, error: name })
            .inc();
    }
}

/// A stable, static label for a Kafka error code.
pub fn error_name(code: i16) -> &'static str {
    use kafka_protocol::error::ResponseError as E;
    let Some(error) = E::try_from_code(code) else {
        return "none";
    };
    match error {
        E::OffsetOutOfRange => "offset_out_of_range",
        E::CorruptMessage => "corrupt_message",
        E::UnknownTopicOrPartition => "unknown_topic_or_partition",
        E::MessageTooLarge => "message_too_large",
        E::InvalidRecord => "invalid_record",
        E::InvalidTimestamp => "invalid_timestamp",
        E::OutOfOrderSequenceNumber => "out_of_order_sequence_number",
        E::InvalidProducerEpoch => "invalid_producer_epoch",
        E::KafkaStorageError => "kafka_storage_error",
        E::UnknownTopicId => "unknown_topic_id",
        E::TopicAlreadyExists => "topic_already_exists",
        E::InvalidTopicException => "invalid_topic",
        E::InvalidConfig => "invalid_config",
        E::InvalidPartitions => "invalid_partitions",
        E::InvalidReplicationFactor => "invalid_replication_factor",
        _ => "other",
    }
}
