//! Consumer group and committed-offset settings, by Kafka's names.

use std::time::Duration;

/// The broker's group settings, by Kafka's names.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.replication.factor`: capped at the live brokers when the topic is
    /// first created.
    pub offsets_topic_replication_factor: u16,
    /// `group.min.session.timeout.ms`, `group.max.session.timeout.ms`,
    /// `group.initial.rebalance.delay.ms`, `group.max.size`
    pub limits: GroupLimits,
    /// `offsets.retention.minutes`: how long an empty group's offsets are kept.
    pub offsets_retention: Duration,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// Records an offsets partition may hold, beyond twice its live keys, before the
    /// coordinator checkpoints it (Strata's stand-in for Kafka's log cleaner; not a Kafka
    /// setting).
    pub checkpoint_after_records: i64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: 3,
            limits: GroupLimits {
                min_session_timeout: Duration::from_secs(6),
                max_session_timeout: Duration::from_secs(30 * 60),
                initial_rebalance_delay: Duration::from_secs(3),
                max_size: usize::MAX,
            },
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offset_metadata_max_bytes: 4096,
            checkpoint_after_records: 100_000,
        }
    }
}

/// Limits from the broker's group settings.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub initial_rebalance_delay: Duration,
    pub max_size: usize,
}
