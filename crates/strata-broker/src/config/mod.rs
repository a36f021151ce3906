//! Broker and topic configuration, named as Kafka names it.
//!
//! The table of topic-level settings lives with the metadata state machine
//! ([`strata_meta::topic_config`]); [`TopicConfig`] is the resolved, typed view a partition
//! log works with. A topic stores only its overrides, so changing a broker default changes
//! every topic that did not override it, as Kafka users expect.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod groups;
mod replication;
mod tiering;

pub use groups::{GroupLimits, GroupSettings};
pub use replication::ReplicationSettings;
pub use strata_meta::topic_config::{ConfigDef, ConfigError, TOPIC_CONFIGS, topic_config_def};
pub use tiering::{TIERED_BLOCK_BYTES, TieringSettings};

/// Whether a timestamp in a stored batch is the producer's or the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// When a produce is acknowledged relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge once the write reached the OS page cache: survives `kill -9`, not power loss.
    Os,
    /// Acknowledge after an fsync; concurrent produces share one fsync (group commit).
    Fsync,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "os" => Ok(Self::Os),
            "fsync" => Ok(Self::Fsync),
            other => Err(format!("expected 'os' or 'fsync', got '{other}'")),
        }
    }
}

/// Topic-level values after overrides, broker defaults and built-in defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    values: BTreeMap<&'static str, String>,
}

impl TopicConfig {
    /// Resolves a topic's configuration: its own overrides first, then the broker's defaults.
    /// Overrides must have been validated (see [`ConfigDef::validate`]).
    pub fn resolve(broker_defaults: &TopicConfig, overrides: &BTreeMap<String, String>) -> Self {
        let mut values = broker_defaults.values.clone();
        for (name, value) in overrides {
            if let Some(def) = topic_config_def(name) {
                values.insert(def.name, value.clone());
            }
        }
        Self { values }
    }

    /// These defaults with dynamic broker settings (by their `log.*` names, validated by the
    /// quorum) laid over them.
    pub fn with_broker_settings(&self, settings: &BTreeMap<String, String>) -> Self {
        let mut values = self.values.clone();
        for (name, value) in settings {
            if let Some(def) = strata_meta::topic_config::broker_config_def(name) {
                values.insert(def.name, value.clone());
            }
        }
        Self { values }
    }

    /// Kafka's built-in defaults.
    pub fn builtin() -> Self {
        Self {
            values: TOPIC_CONFIGS
                .iter()
                .map(|d| (d.name, d.default.to_string()))
                .collect(),
        }
    }

    /// The resolved value of a topic-level setting by its topic name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// All resolved values, by topic name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.values.iter().map(|(k, v)| (*k, v.as_str()))
    }

    fn long(&self, name: &str) -> i64 {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .expect("long-typed configs are validated before they are stored")
    }

    /// At most 2 GiB (Kafka's INT): segment positions are 32-bit, and a value stored before
    /// the limit was enforced must not make every append fail.
    pub fn segment_bytes(&self) -> u64 {
        self.long("segment.bytes").clamp(14, i64::from(i32::MAX)) as u64
    }
    pub fn segment_ms(&self) -> i64 {
        self.long("segment.ms")
    }
    /// Whether old segments are deleted at all: `cleanup.policy` includes `delete`. A
    /// compacted-only topic keeps its records whatever its retention says, as in Kafka.
    fn deletes(&self) -> bool {
        self.get("cleanup.policy")
            .is_some_and(|policy| policy.split(',').any(|p| p.trim() == "delete"))
    }
    /// `None` means unlimited (Kafka's -1, or a topic that is not `delete`).
    pub fn retention_ms(&self) -> Option<i64> {
        Some(self.long("retention.ms")).filter(|v| *v >= 0 && self.deletes())
    }
    /// `None` means unlimited (Kafka's -1, or a topic that is not `delete`).
    pub fn retention_bytes(&self) -> Option<i64> {
        Some(self.long("retention.bytes")).filter(|v| *v >= 0 && self.deletes())
    }
    /// `unclean.leader.election.enable`: a partition with no live replica eligible to lead
    /// takes any live one, losing the committed records it lacks.
    pub fn unclean_leader_election(&self) -> bool {
        self.get("unclean.leader.election.enable") == Some("true")
    }
    /// Whether sealed data goes to the object store: `remote.storage.enable`, on a topic that
    /// is not compacted (compaction rewrites segments, which tiering cannot follow; Kafka
    /// refuses the combination too).
    pub fn tiered(&self) -> bool {
        self.get("remote.storage.enable") == Some("true")
            && self
                .get("cleanup.policy")
                .is_some_and(|policy| !policy.contains("compact"))
    }
    /// How long a tiered topic's data stays on local disk too: `local.retention.ms`, where -2
    /// means "as `retention.ms`". An untiered topic keeps it by `retention.ms`.
    pub fn local_retention_ms(&self) -> Option<i64> {
        self.local_limit("local.retention.ms", self.retention_ms())
    }
    /// `local.retention.bytes`, as [`Self::local_retention_ms`].
    pub fn local_retention_bytes(&self) -> Option<i64> {
        self.local_limit("local.retention.bytes", self.retention_bytes())
    }
    fn local_limit(&self, name: &str, whole_log: Option<i64>) -> Option<i64> {
        if !self.tiered() {
            return whole_log;
        }
        match self.long(name) {
            -2 => whole_log,
            local if local < 0 => whole_log,
            local => Some(whole_log.map_or(local, |whole| whole.min(local))),
        }
    }
    /// `min.insync.replicas`: the ISR size below which `acks=all` appends are refused and
    /// nothing commits.
    pub fn min_insync_replicas(&self) -> usize {
        usize::try_from(self.long("min.insync.replicas")).unwrap_or(1)
    }
    pub fn max_message_bytes(&self) -> usize {
        self.long("max.message.bytes").max(0) as usize
    }
    pub fn index_interval_bytes(&self) -> u32 {
        self.long("index.interval.bytes")
            .clamp(0, i64::from(u32::MAX)) as u32
    }
    pub fn timestamp_type(&self) -> TimestampType {
        match self.get("message.timestamp.type") {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        }
    }
    pub fn timestamp_before_max_ms(&self) -> i64 {
        self.long("message.timestamp.before.max.ms")
    }
    pub fn timestamp_after_max_ms(&self) -> i64 {
        self.long("message.timestamp.after.max.ms")
    }
}

/// Settings of the whole broker process.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Where clients are told to connect; `None` means the bound Kafka listener address.
    pub advertised_kafka: Option<(String, u16)>,
    pub data_dir: PathBuf,
    /// `file:///abs/path`, `memory://` or `s3://bucket/prefix`.
    pub object_store_url: String,
    /// Kafka's `socket.request.max.bytes`: the largest request frame accepted.
    pub socket_request_max_bytes: usize,
    /// What clients may hold open and in flight (connections, bytes, timeouts).
    pub connections: ConnectionLimits,
    /// Kafka's `fetch.max.bytes`: the most a fetch response carries, whatever it asks for.
    pub fetch_max_bytes: usize,
    /// Kafka's `max.incremental.fetch.session.cache.slots`: fetch sessions (KIP-227) kept at
    /// once; 0 turns sessions off.
    pub fetch_session_slots: usize,
    /// Kafka's `producer.id.expiration.ms`: a producer silent this long loses its
    /// idempotence state on a partition.
    pub producer_id_expiration: Duration,
    /// Upper bound on a batch's size after decompression, checked while validating it.
    pub max_decompressed_batch_bytes: usize,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub durability: Durability,
    /// How often retention and time-based segment rolls are checked.
    pub retention_check_interval: Duration,
    /// `strata.log.open.segments.max`: sealed segments whose descriptors stay open for reads
    /// (the least recently read are closed first).
    pub open_segment_files_max: usize,
    /// How long an ordered shutdown may take before the process exits anyway.
    pub shutdown_timeout: Duration,
    /// Broker-wide defaults for topic-level settings (from their `log.*` names).
    pub topic_defaults: TopicConfig,
    /// The metadata quorum's voters, by node id, at their controller addresses. Empty: this
    /// node alone (the embedded default).
    pub controller_quorum: BTreeMap<u64, String>,
    pub roles: Roles,
    /// Kafka's `broker.rack`: placement puts a partition's replicas on different racks.
    pub rack: Option<String>,
    /// Consumer group and committed-offset settings.
    pub groups: GroupSettings,
    /// Uploads to and reads from the object store.
    pub tiering: TieringSettings,
    /// Replication factors, ISR lag, follower fetches.
    pub replication: ReplicationSettings,
    /// Failures to inject under the object store's retry layer (fault tests, chaos drills);
    /// `None` in normal operation.
    pub object_store_faults: Option<std::sync::Arc<strata_objects::FaultPlan>>,
}

impl BrokerConfig {
    /// The embedded single-node defaults rooted at `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        let object_store_url = format!("file://{}", absolute(&data_dir.join("objects")).display());
        Self {
            node_id: 1,
            advertised_kafka: None,
            data_dir,
            object_store_url,
            socket_request_max_bytes: 100 * 1024 * 1024,
            connections: ConnectionLimits::default(),
            fetch_max_bytes: 55 * 1024 * 1024,
            fetch_session_slots: 1000,
            producer_id_expiration: Duration::from_secs(24 * 3600),
            max_decompressed_batch_bytes: 256 * 1024 * 1024,
            auto_create_topics: true,
            num_partitions: 1,
            durability: Durability::Os,
            retention_check_interval: Duration::from_secs(30),
            open_segment_files_max: 1024,
            shutdown_timeout: Duration::from_secs(30),
            topic_defaults: TopicConfig::builtin(),
            controller_quorum: BTreeMap::new(),
            roles: Roles::BOTH,
            rack: None,
            groups: GroupSettings::default(),
            tiering: TieringSettings::default(),
            replication: ReplicationSettings::default(),
            object_store_faults: None,
        }
    }

    /// Applies Kafka-named broker properties (`num.partitions`, `log.retention.ms`, ...).
    pub fn apply_kafka_properties<'a>(
        &mut self,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in properties {
            self.apply_kafka_property(name, value)?;
        }
        Ok(())
    }

    fn apply_kafka_property(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let positive = |v: &str| -> Result<u64, ConfigError> {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("must be a positive whole number"))
        };
        match name {
            "num.partitions" => {
                self.num_partitions =
                    i32::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "broker.rack" => {
                let rack = value.trim();
                if rack.is_empty() {
                    return Err(invalid("must not be empty"));
                }
                self.rack = Some(rack.to_string());
            }
            "offsets.topic.replication.factor" => {
                self.groups.offsets_topic_replication_factor =
                    u16::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "offsets.topic.num.partitions" => {
                self.groups.offsets_topic_partitions =
                    i32::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "group.initial.rebalance.delay.ms" => {
                let ms: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be a whole number of milliseconds"))?;
                self.groups.limits.initial_rebalance_delay = Duration::from_millis(ms);
            }
            "group.min.session.timeout.ms" => {
                self.groups.limits.min_session_timeout = Duration::from_millis(positive(value)?);
            }
            "group.max.session.timeout.ms" => {
                self.groups.limits.max_session_timeout = Duration::from_millis(positive(value)?);
            }
            "group.max.size" => {
                self.groups.limits.max_size =
                    usize::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "offsets.retention.minutes" => {
                self.groups.offsets_retention =
                    Duration::from_secs(positive(value)?.saturating_mul(60));
            }
            "offset.metadata.max.bytes" => {
                self.groups.offset_metadata_max_bytes =
                    usize::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "replica.selector.class" => {
                self.replication.rack_aware_reads = match value.trim() {
                    "org.apache.kafka.common.replica.RackAwareReplicaSelector" => true,
                    "org.apache.kafka.common.replica.LeaderSelector" => false,
                    _ => {
                        return Err(invalid(
                            "must be org.apache.kafka.common.replica.RackAwareReplicaSelector or LeaderSelector",
                        ));
                    }
                };
            }
            "auto.leader.rebalance.enable" => {
                self.replication.auto_leader_rebalance = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be true or false"))?;
            }
            "auto.create.topics.enable" => {
                self.auto_create_topics = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be true or false"))?;
            }
            "socket.request.max.bytes" => {
                let bytes = positive(value)?;
                if bytes > i32::MAX as u64 {
                    return Err(invalid("must be at most 2147483647 (Kafka's INT)"));
                }
                self.socket_request_max_bytes = bytes as usize;
            }
            "fetch.max.bytes" => {
                let bytes = positive(value)?;
                if bytes < 1024 {
                    return Err(invalid("must be at least 1024"));
                }
                self.fetch_max_bytes = usize::try_from(bytes).map_err(|_| invalid("too large"))?;
            }
            "max.incremental.fetch.session.cache.slots" => {
                self.fetch_session_slots = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be a whole number (0 turns sessions off)"))?;
            }
            "producer.id.expiration.ms" => {
                self.producer_id_expiration = Duration::from_millis(positive(value)?);
            }
            "max.connections" => {
                self.connections.max_connections =
                    usize::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "max.connections.per.ip" => {
                self.connections.max_connections_per_ip =
                    usize::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "connections.max.idle.ms" => {
                self.connections.idle_timeout = Duration::from_millis(positive(value)?);
            }
            "queued.max.request.bytes" => {
                let bytes: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be a whole number of bytes, or -1"))?;
                self.connections.queued_max_request_bytes = match bytes {
                    -1 => None,
                    b if b > 0 => Some(usize::try_from(b).map_err(|_| invalid("too large"))?),
                    _ => return Err(invalid("must be positive, or -1 for no limit")),
                };
            }
            "strata.socket.request.timeout.ms" => {
                self.connections.request_timeout = Duration::from_millis(positive(value)?);
            }
            "strata.socket.write.timeout.ms" => {
                self.connections.write_timeout = Duration::from_millis(positive(value)?);
            }
            "strata.log.open.segments.max" => {
                self.open_segment_files_max =
                    usize::try_from(positive(value)?).map_err(|_| invalid("too large"))?;
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval = Duration::from_millis(positive(value)?);
            }
            // Kafka's coarser spellings of the retention and roll periods.
            "log.retention.minutes" | "log.retention.hours" | "log.roll.hours" => {
                let unit: i64 = if name.ends_with("minutes") {
                    60_000
                } else {
                    3_600_000
                };
                let n: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number"))?;
                let target = if name.starts_with("log.roll") {
                    "segment.ms"
                } else {
                    "retention.ms"
                };
                let ms = if n < 0 { -1 } else { n.saturating_mul(unit) };
                self.set_topic_default(target, &ms.to_string())?;
            }
            "default.replication.factor"
            | "replica.lag.time.max.ms"
            | "replica.fetch.wait.max.ms"
            | "replica.fetch.max.bytes"
            | "replica.fetch.response.max.bytes"
            | "replica.fetch.backoff.ms"
            | "leader.imbalance.check.interval.seconds"
            | "leader.imbalance.per.broker.percentage" => {
                let number: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be a positive whole number"))?;
                self.replication
                    .apply(name, number)
                    .expect("every name matched here is a replication setting")
                    .map_err(|reason| invalid(&reason))?;
            }
            _ if name == "remote.log.manager.task.interval.ms"
                || name == "strata.metadata.backup.interval.ms"
                || name.starts_with("strata.tiering.") =>
            {
                let number: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("must be a whole number"))?;
                match self.tiering.apply(name, number) {
                    Some(result) => result.map_err(|reason| invalid(&reason))?,
                    None => {
                        return Err(ConfigError::Unknown {
                            name: name.to_string(),
                        });
                    }
                }
            }
            _ => {
                let def = TOPIC_CONFIGS
                    .iter()
                    .find(|d| d.broker_name == name)
                    .ok_or_else(|| ConfigError::Unknown {
                        name: name.to_string(),
                    })?;
                self.set_topic_default(def.name, value)?;
            }
        }
        Ok(())
    }

    fn set_topic_default(&mut self, topic_name: &str, value: &str) -> Result<(), ConfigError> {
        let def = topic_config_def(topic_name).expect("callers name a known topic config");
        let value = def.validate(value)?;
        self.topic_defaults.values.insert(def.name, value);
        Ok(())
    }

    /// Whether the object store is the default directory inside this node's data directory,
    /// which no other node reads: fine for the embedded node, wrong for a cluster.
    pub fn object_store_is_node_local(&self) -> bool {
        self.object_store_url
            == format!(
                "file://{}",
                absolute(&self.data_dir.join("objects")).display()
            )
    }

    /// Whether this node backs its metadata up to the object store: the embedded single node,
    /// whose raft state shares its data directory (see `tiering::metadata_backup`).
    pub fn backs_up_metadata(&self) -> bool {
        self.controller_quorum.is_empty()
    }

    /// Whether this node is one of the configured voters (a quorum of one counts).
    pub fn is_voter(&self) -> bool {
        self.controller_quorum.is_empty()
            || u64::try_from(self.node_id).is_ok_and(|id| self.controller_quorum.contains_key(&id))
    }

    /// This node's own `min.insync.replicas` (its static configuration): what the cluster
    /// takes as its setting, if it has none, when the quorum leader turns on eligible leader
    /// replicas.
    pub fn static_min_isr(&self) -> u32 {
        u32::try_from(self.topic_defaults.min_insync_replicas()).unwrap_or(u32::MAX)
    }

    /// The address advertised to clients given the address the listener actually bound.
    pub fn advertised_address(&self, bound: SocketAddr) -> (String, u16) {
        self.advertised_kafka
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), bound.port()))
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// What clients may hold of a broker: Kafka's connection limits, and the timeouts that keep a
/// stalled client from holding a connection (and its buffers) for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `max.connections`: connections beyond it are closed as they are accepted.
    pub max_connections: usize,
    /// `max.connections.per.ip`
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// `queued.max.request.bytes`: request bytes all connections may hold at once while they
    /// are read and served (`None`: no limit). Never below `socket.request.max.bytes`.
    pub queued_max_request_bytes: Option<usize>,
    /// `strata.socket.request.timeout.ms`: once a request has begun to arrive, the rest must
    /// arrive within this.
    pub request_timeout: Duration,
    /// `strata.socket.write.timeout.ms`: a response the client does not read for this long
    /// closes the connection (and frees the response).
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            // Kafka's defaults are unlimited; the broker also caps connections by its
            // descriptor limit when it starts.
            max_connections: usize::MAX,
            max_connections_per_ip: usize::MAX,
            idle_timeout: Duration::from_secs(600),
            queued_max_request_bytes: Some(512 * 1024 * 1024),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// What a node does: vote in the metadata quorum, serve Kafka clients, or both (Kafka's
/// `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub controller: bool,
    pub broker: bool,
}

impl Roles {
    pub const BOTH: Self = Self {
        controller: true,
        broker: true,
    };
}

impl std::str::FromStr for Roles {
    type Err = String;
    /// `controller`, `broker`, `both`, or Kafka's `broker,controller` in either order.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut roles = Self {
            controller: false,
            broker: false,
        };
        for role in s.split(',').map(str::trim) {
            match role {
                "controller" => roles.controller = true,
                "broker" => roles.broker = true,
                "both" => roles = Self::BOTH,
                other => {
                    return Err(format!(
                        "unknown role '{other}': expected controller, broker or both"
                    ));
                }
            }
        }
        Ok(roles)
    }
}

/// Parses `--controller-quorum`: `ID@HOST:PORT` entries separated by commas, as Kafka's
/// `controller.quorum.voters`.
pub fn parse_controller_quorum(value: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("'{entry}' is not ID@HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("'{id}' in '{entry}' is not a node id"))?;
        let port_ok = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(format!("'{address}' in '{entry}' is not HOST:PORT"));
        }
        if voters.insert(id, address.to_string()).is_some() {
            return Err(format!("node {id} is named twice"));
        }
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_names_set_topic_defaults_and_topic_overrides_win() {
        let mut broker = BrokerConfig::new(PathBuf::from("/tmp/x"));
        broker
            .apply_kafka_properties([("log.retention.ms", "1000"), ("message.max.bytes", "2048")])
            .expect("valid properties");
        let overrides = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        let topic = TopicConfig::resolve(&broker.topic_defaults, &overrides);
        assert_eq!(topic.retention_ms(), Some(5));
        assert_eq!(topic.max_message_bytes(), 2048);
    }

    #[test]
    fn replication_settings_take_kafkas_names_and_refuse_nonsense() {
        let mut broker = BrokerConfig::new(PathBuf::from("/tmp/x"));
        broker
            .apply_kafka_properties([
                ("default.replication.factor", "3"),
                ("offsets.topic.replication.factor", "2"),
                ("replica.lag.time.max.ms", "10000"),
                ("auto.leader.rebalance.enable", "false"),
                ("leader.imbalance.per.broker.percentage", "20"),
                (
                    "replica.selector.class",
                    "org.apache.kafka.common.replica.LeaderSelector",
                ),
            ])
            .expect("valid");
        let r = &broker.replication;
        assert_eq!(r.default_replication_factor, 3);
        assert_eq!(broker.groups.offsets_topic_replication_factor, 2);
        assert_eq!(r.lag_time_max, Duration::from_secs(10));
        assert!(!r.auto_leader_rebalance && !r.rack_aware_reads);
        assert_eq!(r.leader_imbalance_per_broker_percent, 20);
        for (name, value) in [
            ("default.replication.factor", "0"),
            ("leader.imbalance.per.broker.percentage", "101"),
            ("replica.selector.class", "com.example.Mine"),
        ] {
            assert!(
                broker.apply_kafka_properties([(name, value)]).is_err(),
                "{name}={value}"
            );
        }
        // A cluster node left at the default object store tiers into its own directory.
        assert!(broker.object_store_is_node_local());
        broker.object_store_url = "s3://bucket/prefix".into();
        assert!(!broker.object_store_is_node_local());
    }

    #[test]
    fn retention_hours_are_converted_to_milliseconds() {
        let mut broker = BrokerConfig::new(PathBuf::from("/tmp/x"));
        broker
            .apply_kafka_properties([("log.retention.hours", "2")])
            .expect("valid");
        assert_eq!(broker.topic_defaults.retention_ms(), Some(7_200_000));
    }

    #[test]
    fn unknown_and_invalid_properties_are_refused() {
        let mut broker = BrokerConfig::new(PathBuf::from("/tmp/x"));
        assert!(matches!(
            broker.apply_kafka_properties([("no.such.thing", "1")]),
            Err(ConfigError::Unknown { .. })
        ));
        assert!(matches!(
            broker.apply_kafka_properties([("log.segment.bytes", "abc")]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            broker.apply_kafka_properties([("log.message.timestamp.type", "Sometimes")]),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn infinite_retention_is_none() {
        let topic = TopicConfig::builtin();
        assert_eq!(topic.retention_bytes(), None);
        assert_eq!(topic.retention_ms(), Some(604_800_000));
    }

    #[test]
    fn a_compacted_only_topic_is_never_deleted_by_retention() {
        let defaults = TopicConfig::builtin();
        let compact = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        assert_eq!(
            TopicConfig::resolve(&defaults, &compact).retention_ms(),
            None
        );
        assert_eq!(
            TopicConfig::resolve(&defaults, &compact).retention_bytes(),
            None
        );
        let both = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact,delete".to_string()),
            ("retention.bytes".to_string(), "100".to_string()),
        ]);
        let both = TopicConfig::resolve(&defaults, &both);
        assert_eq!(both.retention_ms(), Some(604_800_000));
        assert_eq!(both.retention_bytes(), Some(100));
    }

    #[test]
    fn the_rack_is_kafkas_broker_rack() {
        let mut broker = BrokerConfig::new(PathBuf::from("/tmp/x"));
        broker
            .apply_kafka_properties([("broker.rack", "eu-west-1a")])
            .expect("valid");
        assert_eq!(broker.rack.as_deref(), Some("eu-west-1a"));
        assert!(
            broker
                .apply_kafka_properties([("broker.rack", " ")])
                .is_err()
        );
    }

    #[test]
    fn roles_parse_like_kafkas_process_roles() {
        let parse = |s: &str| s.parse::<Roles>();
        assert_eq!(parse("both"), Ok(Roles::BOTH));
        assert_eq!(parse("broker,controller"), Ok(Roles::BOTH));
        assert_eq!(
            parse("controller"),
            Ok(Roles {
                controller: true,
                broker: false
            })
        );
        assert_eq!(
            parse("broker"),
            Ok(Roles {
                controller: false,
                broker: true
            })
        );
        assert!(parse("follower").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn controller_quorums_parse_like_kafkas_voter_lists() {
        assert_eq!(
            parse_controller_quorum("1@a:9093, 2@b:9093,3@10.0.0.3:19093"),
            Ok(BTreeMap::from([
                (1, "a:9093".to_string()),
                (2, "b:9093".to_string()),
                (3, "10.0.0.3:19093".to_string()),
            ]))
        );
        for bad in [
            "1a:9093",
            "x@a:9093",
            "1@a",
            "1@:9093",
            "1@a:0",
            "1@a:1,1@b:2",
        ] {
            assert!(parse_controller_quorum(bad).is_err(), "{bad}");
        }
    }
}
