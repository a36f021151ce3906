//! Fetch sessions (KIP-227): how many the cache holds and how they are used.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Fetch session metrics (`strata_fetch_session_*`).
#[derive(Debug, Clone, Default)]
pub struct FetchSessionMetrics {
    /// Sessions cached, and the partitions they hold between them.
    pub sessions: Gauge,
    pub partitions: Gauge,
    /// Fetches answered incrementally (with only what changed).
    pub incremental_fetches: Counter,
    /// Sessions dropped to make room for a new one.
    pub evictions: Counter,
}

impl FetchSessionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let sessions = registry.sub_registry_with_prefix("fetch_session");
        sessions.register(
            "count",
            "Fetch sessions (KIP-227) cached",
            self.sessions.clone(),
        );
        sessions.register(
            "partitions",
            "Partitions held by the cached fetch sessions",
            self.partitions.clone(),
        );
        sessions.register(
            "incremental_fetches",
            "Fetches answered incrementally, with only the partitions that changed",
            self.incremental_fetches.clone(),
        );
        sessions.register(
            "evictions",
            "Fetch sessions dropped to make room for a new one",
            self.evictions.clone(),
        );
    }
}
