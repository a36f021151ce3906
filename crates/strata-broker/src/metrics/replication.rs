//! Replication health: ISR changes proposed by leaders here, and what followers here did.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Replication metrics (`strata_replication_*`).
#[derive(Debug, Clone)]
pub struct ReplicationMetrics {
    /// Partitions led here, and of those, the ones whose ISR lacks a replica or is below
    /// `min.insync.replicas`.
    pub led_partitions: Gauge,
    pub under_replicated_partitions: Gauge,
    pub under_min_isr_partitions: Gauge,
    /// Partitions followed here.
    pub followed_partitions: Gauge,
    /// The largest lag, in offsets, of a follower of a partition led here.
    pub max_follower_lag_records: Gauge,
    /// The largest lag, in offsets, of a partition followed here behind its leader.
    pub max_lag_behind_leader_records: Gauge,
    /// How long `acks=all` appends waited for the high watermark (the replication latency).
    pub commit_wait: Histogram,
    /// ISR changes the quorum accepted from leaders on this broker.
    pub isr_changes: Counter,
    /// ISR changes the quorum refused (the leader's view was outdated).
    pub isr_changes_refused: Counter,
    /// Divergent tails cut from follower logs here.
    pub truncations: Counter,
    /// Follower fetches here that failed (connection, leader error).
    pub fetch_errors: Counter,
    /// Bytes followers here copied from their leaders.
    pub fetched_bytes: Counter,
    /// Appends refused because this broker's lease had run out.
    pub lease_refusals: Counter,
    /// Unclean leader elections this node's controller ran.
    pub unclean_elections: Counter,
}

impl Default for ReplicationMetrics {
    fn default() -> Self {
        Self {
            led_partitions: Gauge::default(),
            under_replicated_partitions: Gauge::default(),
            under_min_isr_partitions: Gauge::default(),
            followed_partitions: Gauge::default(),
            max_follower_lag_records: Gauge::default(),
            max_lag_behind_leader_records: Gauge::default(),
            commit_wait: Histogram::new(exponential_buckets(0.000_05, 2.0, 18)),
            isr_changes: Counter::default(),
            isr_changes_refused: Counter::default(),
            truncations: Counter::default(),
            fetch_errors: Counter::default(),
            fetched_bytes: Counter::default(),
            lease_refusals: Counter::default(),
            unclean_elections: Counter::default(),
        }
    }
}

impl ReplicationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let replication = registry.sub_registry_with_prefix("replication");
        let gauges: [(&str, &str, &Gauge); 6] = [
            (
                "led_partitions",
                "Partitions led by this broker",
                &self.led_partitions,
            ),
            (
                "under_replicated_partitions",
                "Partitions led here whose ISR lacks one of their replicas",
                &self.under_replicated_partitions,
            ),
            (
                "under_min_isr_partitions",
                "Partitions led here whose ISR is below min.insync.replicas: acks=all produces are refused and nothing commits",
                &self.under_min_isr_partitions,
            ),
            (
                "followed_partitions",
                "Partitions followed by this broker",
                &self.followed_partitions,
            ),
            (
                "max_follower_lag_records",
                "The most offsets a follower of a partition led here trails its log end by",
                &self.max_follower_lag_records,
            ),
            (
                "max_lag_behind_leader_records",
                "The most offsets a partition followed here trails its leader's high watermark by",
                &self.max_lag_behind_leader_records,
            ),
        ];
        for (name, help, gauge) in gauges {
            replication.register(name, help, gauge.clone());
        }
        replication.register(
            "commit_wait_seconds",
            "How long acks=all appends waited for the in-sync replicas (the high watermark)",
            self.commit_wait.clone(),
        );
        replication.register(
            "isr_changes",
            "ISR changes the quorum accepted from leaders on this broker",
            self.isr_changes.clone(),
        );
        replication.register(
            "isr_changes_refused",
            "ISR changes the quorum refused because the leader's view was outdated",
            self.isr_changes_refused.clone(),
        );
        replication.register(
            "truncations",
            "Divergent tails cut from follower logs on this broker",
            self.truncations.clone(),
        );
        replication.register(
            "fetch_errors",
            "Follower fetches from this broker that failed",
            self.fetch_errors.clone(),
        );
        replication.register(
            "lease_refusals",
            "Appends refused because this broker had not reached the metadata quorum within its lease",
            self.lease_refusals.clone(),
        );
        replication.register(
            "unclean_elections",
            "Partitions this node's controller gave a leader outside the ISR and ELR (unclean.leader.election.enable): committed records may be lost",
            self.unclean_elections.clone(),
        );
        replication.register(
            "fetched_bytes",
            "Bytes followers on this broker copied from their leaders",
            self.fetched_bytes.clone(),
        );
    }
}
