//! Replication health: ISR changes proposed by leaders here, and what followers here did.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Replication metrics (`strata_replication_*`).
#[derive(Debug, Default, Clone)]
pub struct ReplicationMetrics {
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
}

impl ReplicationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let replication = registry.sub_registry_with_prefix("replication");
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
            "fetched_bytes",
            "Bytes followers on this broker copied from their leaders",
            self.fetched_bytes.clone(),
        );
    }
}
