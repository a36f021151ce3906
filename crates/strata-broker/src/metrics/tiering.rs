//! The numbers behind tiering's cost and health: what is not yet in the object store, what
//! the uploader sent and committed, how reads were served, and what the manifest holds.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    /// `memory`, `disk`, or `object_store` (a miss in both).
    pub tier: &'static str,
}

/// Tiering metrics (`strata_tiering_*`).
#[derive(Debug, Default, Clone)]
pub struct TieringMetrics {
    /// Local bytes of led, tiered partitions not yet committed to the object store.
    pub upload_lag_bytes: Gauge,
    /// Records (offsets) of led, tiered partitions not yet committed to the object store.
    pub upload_lag_records: Gauge,
    /// Age of the oldest such data, in seconds.
    pub upload_lag_seconds: Gauge,
    pub objects_uploaded: Counter,
    pub bytes_uploaded: Counter,
    pub upload_failures: Counter,
    pub segments_committed: Counter,
    /// Segments the manifest refused (a newer leader epoch, an overlap): their bytes are
    /// garbage in an object that is reclaimed with it.
    pub segments_refused: Counter,
    /// Block reads by the tier that served them.
    pub cache_reads: Family<TierLabels, Counter>,
    /// Bytes served to fetches from tiered segments.
    pub remote_read_bytes: Counter,
    /// Bytes the read cache GOT from the object store (its misses).
    pub fetched_bytes: Counter,
    /// Objects the sweeper deleted (unreferenced past the grace period).
    pub objects_deleted: Counter,
    /// Log start moves by whole-log retention.
    pub retention_advances: Counter,
    /// Merged objects written, the runs of entries their commits swapped and refused, and the
    /// bytes copied: the cost of keeping the manifest small.
    pub merge_objects: Counter,
    pub merge_runs_replaced: Counter,
    pub merge_runs_refused: Counter,
    pub merge_bytes: Counter,
    pub merge_failures: Counter,
    /// The embedded node's metadata backups: snapshots and log deltas written.
    pub metadata_backup_snapshots: Counter,
    pub metadata_backup_deltas: Counter,
    /// Objects, segment entries and bytes the manifest references, cluster-wide.
    pub manifest_objects: Gauge,
    pub manifest_segments: Gauge,
    pub manifest_bytes: Gauge,
}

impl TieringMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let tiering = registry.sub_registry_with_prefix("tiering");
        tiering.register(
            "upload_lag_bytes",
            "Local bytes of tiered partitions led here that a lost disk would lose (not yet committed to the object store, or on an embedded node not yet in a metadata backup)",
            self.upload_lag_bytes.clone(),
        );
        tiering.register(
            "merge_objects",
            "Objects written by merging runs of small manifest entries",
            self.merge_objects.clone(),
        );
        tiering.register(
            "merge_runs_replaced",
            "Runs of manifest entries a merged copy replaced",
            self.merge_runs_replaced.clone(),
        );
        tiering.register(
            "merge_runs_refused",
            "Merged runs the manifest refused because retention or another merge changed them first",
            self.merge_runs_refused.clone(),
        );
        tiering.register(
            "merge_bytes",
            "Bytes copied into merged objects",
            self.merge_bytes.clone(),
        );
        tiering.register(
            "merge_failures",
            "Merge rounds that failed (a GET, a PUT or the commit); the entries stay as they were",
            self.merge_failures.clone(),
        );
        tiering.register(
            "metadata_backup_snapshots",
            "Metadata backups written as a whole snapshot (embedded node)",
            self.metadata_backup_snapshots.clone(),
        );
        tiering.register(
            "metadata_backup_deltas",
            "Metadata backups written as the raft log since the last one (embedded node)",
            self.metadata_backup_deltas.clone(),
        );
        tiering.register(
            "upload_lag_records",
            "Offsets of tiered partitions led here that a lost disk would lose",
            self.upload_lag_records.clone(),
        );
        tiering.register(
            "upload_lag_seconds",
            "Age of the oldest data led here that a lost disk would lose",
            self.upload_lag_seconds.clone(),
        );
        tiering.register(
            "objects_uploaded",
            "Objects the uploader stored",
            self.objects_uploaded.clone(),
        );
        tiering.register(
            "uploaded_bytes",
            "Bytes of objects the uploader stored",
            self.bytes_uploaded.clone(),
        );
        tiering.register(
            "upload_failures",
            "Upload rounds that failed (their data stays local and is retried)",
            self.upload_failures.clone(),
        );
        tiering.register(
            "segments_committed",
            "Segments committed to the manifest",
            self.segments_committed.clone(),
        );
        tiering.register(
            "segments_refused",
            "Segments the manifest refused (fenced by a newer leader epoch, or overlapping)",
            self.segments_refused.clone(),
        );
        tiering.register(
            "cache_reads",
            "Block reads of tiered data, by the tier that served them",
            self.cache_reads.clone(),
        );
        tiering.register(
            "remote_read_bytes",
            "Bytes of tiered data returned to fetches",
            self.remote_read_bytes.clone(),
        );
        tiering.register(
            "objects_deleted",
            "Objects the sweeper deleted because no manifest entry referenced them",
            self.objects_deleted.clone(),
        );
        tiering.register(
            "retention_advances",
            "Log start moves made by whole-log retention on tiered partitions",
            self.retention_advances.clone(),
        );
        tiering.register(
            "fetched_bytes",
            "Bytes of tiered data read from the object store into the cache (misses)",
            self.fetched_bytes.clone(),
        );
        tiering.register(
            "manifest_objects",
            "Objects the manifest references, cluster-wide",
            self.manifest_objects.clone(),
        );
        tiering.register(
            "manifest_segments",
            "Segment entries the manifest holds, cluster-wide (one per partition per upload)",
            self.manifest_segments.clone(),
        );
        tiering.register(
            "manifest_bytes",
            "Bytes of segments the manifest references, cluster-wide",
            self.manifest_bytes.clone(),
        );
    }
}
