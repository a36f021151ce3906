//! Replication settings, by Kafka's names.

use std::time::Duration;

/// How partitions are replicated and how followers fetch.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    /// `default.replication.factor`: replicas of a topic created without one (auto-created
    /// topics, CreateTopics with -1).
    pub default_replication_factor: u16,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits for new data.
    pub fetch_wait_max: Duration,
    /// `replica.fetch.max.bytes`: what one partition's part of a follower fetch may carry.
    pub fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`: what a whole follower fetch may carry.
    pub fetch_response_max_bytes: u32,
    /// `replica.fetch.backoff.ms`: the pause after a failed fetch.
    pub fetch_backoff: Duration,
    /// `auto.leader.rebalance.enable`: the controller moves leadership back to preferred
    /// replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage`
    pub leader_imbalance_per_broker_percent: u32,
    /// `replica.selector.class`: whether consumers that name their rack read from an
    /// in-sync replica on it (KIP-392's RackAwareReplicaSelector, Strata's default) or
    /// only from leaders (Kafka's default LeaderSelector).
    pub rack_aware_reads: bool,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        Self {
            default_replication_factor: 1,
            lag_time_max: Duration::from_secs(30),
            fetch_wait_max: Duration::from_millis(500),
            fetch_max_bytes: 1 << 20,
            fetch_response_max_bytes: 10 << 20,
            fetch_backoff: Duration::from_secs(1),
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            leader_imbalance_per_broker_percent: 10,
            rack_aware_reads: true,
        }
    }
}

impl ReplicationSettings {
    /// Applies one setting by its Kafka name; `None` if the name is not one of these.
    pub fn apply(&mut self, name: &str, value: u64) -> Option<Result<(), String>> {
        if value == 0 {
            return Some(Err(format!("{name} must be positive")));
        }
        let factor = || u16::try_from(value).map_err(|_| format!("{name} is at most 32767"));
        let bytes = || {
            u32::try_from(value)
                .ok()
                .filter(|b| *b <= i32::MAX as u32)
                .ok_or_else(|| format!("{name} must fit Kafka's INT"))
        };
        let millis = Duration::from_millis(value);
        let result = match name {
            "default.replication.factor" => factor().map(|f| self.default_replication_factor = f),
            "replica.lag.time.max.ms" => {
                self.lag_time_max = millis;
                Ok(())
            }
            "replica.fetch.wait.max.ms" => {
                self.fetch_wait_max = millis;
                Ok(())
            }
            "replica.fetch.max.bytes" => bytes().map(|b| self.fetch_max_bytes = b),
            "replica.fetch.response.max.bytes" => {
                bytes().map(|b| self.fetch_response_max_bytes = b)
            }
            "replica.fetch.backoff.ms" => {
                self.fetch_backoff = millis;
                Ok(())
            }
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval = Duration::from_secs(value);
                Ok(())
            }
            "leader.imbalance.per.broker.percentage" => u32::try_from(value)
                .ok()
                .filter(|p| *p <= 100)
                .map(|p| self.leader_imbalance_per_broker_percent = p)
                .ok_or_else(|| format!("{name} is a percentage")),
            _ => return None,
        };
        Some(result)
    }
}
