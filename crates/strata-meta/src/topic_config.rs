//! Kafka's topic-level settings: each one's topic name (`retention.ms`), its broker-wide
//! default name (`log.retention.ms`), its type and built-in default, exactly as in Kafka.
//! [`TOPIC_CONFIGS`] is the one table that knows them; the state machine validates every
//! config change against it, and brokers resolve a topic's effective values from it.

use std::collections::BTreeMap;

use thiserror::Error;

/// A configuration value that could not be accepted.
#[derive(Debug, Clone, Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigError {
    #[error("unknown config '{name}'")]
    Unknown { name: String },
    #[error("config '{name}' is not supported: {reason}")]
    NotTaken { name: String, reason: String },
    #[error("invalid value '{value}' for config '{name}': {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A signed 64-bit number no smaller than the given minimum.
    Long { min: i64 },
    /// A signed 32-bit number (Kafka's INT) no smaller than the given minimum.
    Int { min: i32 },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// Free text (stored and described, not interpreted yet).
    Text,
}

/// One topic-level setting: its topic name, its broker-wide default name and built-in default.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub broker_name: &'static str,
    pub default: &'static str,
    kind: Kind,
}

const fn def(
    name: &'static str,
    broker_name: &'static str,
    default: &'static str,
    kind: Kind,
) -> ConfigDef {
    ConfigDef {
        name,
        broker_name,
        default,
        kind,
    }
}

/// Every topic-level setting the broker understands, with Kafka's defaults.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "segment.bytes",
        "log.segment.bytes",
        "1073741824",
        Kind::Int { min: 14 },
    ),
    def(
        "segment.ms",
        "log.roll.ms",
        "604800000",
        Kind::Long { min: 1 },
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        "604800000",
        Kind::Long { min: -1 },
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        Kind::Long { min: -1 },
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        "1048588",
        Kind::Int { min: 0 },
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        Kind::Int { min: 0 },
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        Kind::Choice(&["CreateTime", "LogAppendTime"]),
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        "9223372036854775807",
        Kind::Long { min: 0 },
    ),
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "3600000",
        Kind::Long { min: 0 },
    ),
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        "delete",
        Kind::Choice(&["delete", "compact", "compact,delete", "delete,compact"]),
    ),
    def(
        "compression.type",
        "compression.type",
        "producer",
        Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        "1",
        Kind::Int { min: 1 },
    ),
    def(
        "local.retention.ms",
        "log.local.retention.ms",
        "-2",
        Kind::Long { min: -2 },
    ),
    def(
        "local.retention.bytes",
        "log.local.retention.bytes",
        "-2",
        Kind::Long { min: -2 },
    ),
    def(
        "remote.storage.enable",
        "remote.storage.enable",
        "true",
        Kind::Choice(&["true", "false"]),
    ),
    def(
        "message.downconversion.enable",
        "log.message.downconversion.enable",
        "true",
        Kind::Choice(&["true", "false"]),
    ),
    def(
        "preallocate",
        "log.preallocate",
        "false",
        Kind::Choice(&["true", "false"]),
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        "9223372036854775807",
        Kind::Long { min: 1 },
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        "9223372036854775807",
        Kind::Long { min: 0 },
    ),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        Kind::Choice(&["true", "false"]),
    ),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        Kind::Long { min: 0 },
    ),
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        Kind::Long { min: 0 },
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "9223372036854775807",
        Kind::Long { min: 1 },
    ),
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        Kind::Text,
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        "60000",
        Kind::Long { min: 0 },
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        Kind::Int { min: 4 },
    ),
    def(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        "0",
        Kind::Long { min: 0 },
    ),
    def(
        "follower.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
        "",
        Kind::Text,
    ),
    def(
        "leader.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        "",
        Kind::Text,
    ),
];

/// Looks a topic-level setting up by its topic name.
pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Looks a topic-level setting up by its broker-wide default name (`log.retention.ms`): the
/// names dynamic broker and cluster configs use.
pub fn broker_config_def(broker_name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.broker_name == broker_name)
}

/// Kafka broker settings Strata does not take, with why. Setting one is refused with the
/// reason; removing one (which cannot have been set) does nothing, so a tool that clears them
/// after its work succeeds, as `kafka-reassign-partitions.sh --verify` clears throttles.
const NOT_TAKEN_BROKER_CONFIGS: &[(&str, &str)] = &[
    (
        "leader.replication.throttled.rate",
        REPLICATION_NOT_THROTTLED,
    ),
    (
        "follower.replication.throttled.rate",
        REPLICATION_NOT_THROTTLED,
    ),
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "a Strata broker keeps one log directory",
    ),
];

const REPLICATION_NOT_THROTTLED: &str = "Strata does not throttle replication: a new replica copies only the hot tail above the tiered log";

/// Why Strata does not take the broker setting `broker_name`, if it is one Kafka defines
/// that Strata leaves out.
pub fn broker_config_not_taken(broker_name: &str) -> Option<&'static str> {
    NOT_TAKEN_BROKER_CONFIGS
        .iter()
        .find(|(name, _)| *name == broker_name)
        .map(|(_, reason)| *reason)
}

/// Kafka's config types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum KafkaConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

impl ConfigDef {
    /// This setting's type as Kafka reports it.
    pub fn kafka_type(&self) -> KafkaConfigType {
        match self.kind {
            Kind::Long { .. } => KafkaConfigType::Long,
            Kind::Int { .. } => KafkaConfigType::Int,
            Kind::Choice(["true", "false"]) => KafkaConfigType::Boolean,
            // The only list-valued setting: a policy may combine both words.
            Kind::Choice(_) if self.name == "cleanup.policy" => KafkaConfigType::List,
            Kind::Choice(_) | Kind::Text => KafkaConfigType::String,
        }
    }

    /// Checks a value against this setting's type; returns it normalised.
    pub fn validate(&self, value: &str) -> Result<String, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: self.name.to_string(),
            value: value.to_string(),
            reason,
        };
        match self.kind {
            Kind::Long { min } => {
                let n: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number".into()))?;
                if n < min {
                    return Err(invalid(format!("must be at least {min}")));
                }
                Ok(n.to_string())
            }
            Kind::Int { min } => {
                let n: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number".into()))?;
                let n = i32::try_from(n).map_err(|_| {
                    invalid(format!("must be at most {} (a 32-bit number)", i32::MAX))
                })?;
                if n < min {
                    return Err(invalid(format!("must be at least {min}")));
                }
                Ok(n.to_string())
            }
            Kind::Choice(words) => {
                let v = value.trim();
                if words.contains(&v) {
                    Ok(v.to_string())
                } else {
                    Err(invalid(format!("must be one of {}", words.join(", "))))
                }
            }
            Kind::Text => Ok(value.to_string()),
        }
    }
}

/// Validates topic-level overrides by their topic names.
pub fn validate_overrides(
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    overrides
        .iter()
        .map(|(name, value)| {
            let def = topic_config_def(name)
                .ok_or_else(|| ConfigError::Unknown { name: name.clone() })?;
            Ok((name.clone(), def.validate(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<String, ConfigError> {
        topic_config_def(name).expect("known").validate(value)
    }

    #[test]
    fn kafkas_int_settings_refuse_what_32_bits_cannot_hold() {
        // Segment positions are 32-bit: 4 GiB segments would fail every append.
        assert!(check("segment.bytes", "4294967296").is_err());
        assert!(check("segment.bytes", &(i64::from(i32::MAX) + 1).to_string()).is_err());
        assert_eq!(
            check("segment.bytes", "2147483647").as_deref(),
            Ok("2147483647")
        );
        assert!(
            check("segment.bytes", "13").is_err(),
            "smaller than a batch header"
        );
        for name in [
            "max.message.bytes",
            "index.interval.bytes",
            "segment.index.bytes",
            "min.insync.replicas",
        ] {
            assert!(check(name, "9999999999").is_err(), "{name}");
            assert_eq!(
                topic_config_def(name).expect("known").kafka_type(),
                KafkaConfigType::Int,
                "{name} is described as Kafka's INT"
            );
        }
        assert!(
            check("retention.ms", "9999999999").is_ok(),
            "a LONG takes it"
        );
    }
}
