//! How this broker tiers: uploads to and reads from the object store.

use std::time::Duration;

/// The read cache's unit: an object is read in blocks of this size, each filled by one
/// ranged GET. Fixed, not a setting; the disk tier must hold at least one.
pub const TIERED_BLOCK_BYTES: u64 = 1 << 20;

/// How this broker tiers, by the names its config file uses (Kafka's where Kafka has one).
#[derive(Debug, Clone)]
pub struct TieringSettings {
    /// `remote.log.manager.task.interval.ms`: how often the uploader looks for sealed data.
    pub upload_interval: Duration,
    /// `strata.tiering.upload.max.lag.ms`: data is uploaded at the latest once it has waited
    /// this long (since it was appended), which bounds what only the local disk holds.
    pub upload_max_lag: Duration,
    /// `strata.tiering.object.target.bytes`: an object is sent once it holds this much.
    pub object_target_bytes: u64,
    /// `strata.tiering.merge.target.bytes`: the merger copies runs of small manifest entries
    /// of a partition into one entry of up to this size (see `tiering::merger`).
    pub merge_target_bytes: u64,
    /// `strata.tiering.upload.max.in.flight`: objects being stored at once (their commits
    /// still go in order); unset, it depends on the store (see
    /// [`TieringSettings::upload_max_in_flight`]).
    pub upload_max_in_flight: Option<usize>,
    /// Whether the object store is a local directory (`file://`), set by [`Self::for_store`].
    pub local_store: bool,
    /// `strata.tiering.cache.memory.bytes`: the read cache's memory tier.
    pub cache_memory_bytes: usize,
    /// `strata.tiering.cache.disk.bytes`: the read cache's local-disk tier.
    pub cache_disk_bytes: usize,
    /// `strata.tiering.fetch.max.concurrent.gets`: GETs in flight for reads, so catch-up
    /// readers cannot take every connection and core from the produce path.
    pub max_concurrent_gets: usize,
    /// `strata.tiering.fetch.readahead.blocks`: blocks fetched ahead of a sequential reader.
    pub readahead_blocks: u64,
    /// `strata.tiering.orphan.grace.ms`: an object no manifest entry references is deleted
    /// once it is this old. An upload that has not committed within half of it gives up, so
    /// the sweeper never deletes an object a commit is about to reference.
    pub orphan_grace: Duration,
    /// `strata.tiering.sweep.interval.ms`: how often the sweeper lists the store.
    pub sweep_interval: Duration,
    /// `strata.tiering.local.budget.bytes`: once this broker's tiered partitions hold this
    /// much data not yet in the object store (an outage, a slow store), produce to them
    /// answers KAFKA_STORAGE_ERROR (retriable) instead of filling the disk. 0: no budget.
    pub local_budget_bytes: u64,
    /// `strata.metadata.backup.interval.ms`: how often an embedded node backs its metadata
    /// up to the object store when it changed (upload rounds back it up at once).
    pub metadata_backup_interval: Duration,
}

impl Default for TieringSettings {
    fn default() -> Self {
        Self {
            upload_interval: Duration::from_secs(30),
            upload_max_lag: Duration::from_secs(60),
            object_target_bytes: 64 << 20,
            merge_target_bytes: 64 << 20,
            upload_max_in_flight: None,
            local_store: false,
            cache_memory_bytes: 64 << 20,
            cache_disk_bytes: 1 << 30,
            max_concurrent_gets: 8,
            readahead_blocks: 4,
            orphan_grace: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(300),
            metadata_backup_interval: Duration::from_secs(10),
            local_budget_bytes: 16 << 30,
        }
    }
}

impl TieringSettings {
    /// These settings for the store at `object_store_url`.
    pub fn for_store(&self, object_store_url: &str) -> Self {
        Self {
            local_store: object_store_url.starts_with("file://"),
            ..self.clone()
        }
    }

    /// Objects being stored at once. Unset: 4 for a remote store, whose PUTs are mostly
    /// waiting, so overlapping them hides its latency; 1 for a local directory, whose PUTs
    /// are this machine's own CPU and disk work, so overlapping them (and the reads of the
    /// next object) only takes cores from request threads: produce p99 during upload rounds
    /// was 150–184 ms at 4 and 40–65 ms at 1 (docs/benchmarks.md, "Sustained load").
    pub fn upload_max_in_flight(&self) -> usize {
        self.upload_max_in_flight
            .unwrap_or(if self.local_store { 1 } else { 4 })
    }

    /// Takes one of the settings above by its config name; `None` if the name is not one.
    pub fn apply(&mut self, name: &str, value: u64) -> Option<Result<(), String>> {
        let positive = || {
            if value == 0 {
                Err(format!("{name} must be positive"))
            } else {
                Ok(())
            }
        };
        let result = match name {
            "remote.log.manager.task.interval.ms" => {
                positive().map(|()| self.upload_interval = Duration::from_millis(value))
            }
            "strata.tiering.upload.max.lag.ms" => {
                positive().map(|()| self.upload_max_lag = Duration::from_millis(value))
            }
            "strata.tiering.object.target.bytes" => {
                positive().map(|()| self.object_target_bytes = value)
            }
            "strata.tiering.merge.target.bytes" => {
                positive().map(|()| self.merge_target_bytes = value)
            }
            "strata.tiering.upload.max.in.flight" => positive().map(|()| {
                self.upload_max_in_flight = Some(usize::try_from(value).unwrap_or(usize::MAX));
            }),
            "strata.tiering.cache.memory.bytes" => positive().map(|()| {
                self.cache_memory_bytes = usize::try_from(value).unwrap_or(usize::MAX);
            }),
            "strata.tiering.cache.disk.bytes" => {
                if value < TIERED_BLOCK_BYTES {
                    Err(format!(
                        "{name} must be at least one block ({} bytes)",
                        TIERED_BLOCK_BYTES
                    ))
                } else {
                    self.cache_disk_bytes = usize::try_from(value).unwrap_or(usize::MAX);
                    Ok(())
                }
            }
            "strata.tiering.fetch.max.concurrent.gets" => positive().map(|()| {
                self.max_concurrent_gets = usize::try_from(value).unwrap_or(usize::MAX);
            }),
            "strata.tiering.orphan.grace.ms" => {
                positive().map(|()| self.orphan_grace = Duration::from_millis(value))
            }
            "strata.tiering.sweep.interval.ms" => {
                positive().map(|()| self.sweep_interval = Duration::from_millis(value))
            }
            "strata.metadata.backup.interval.ms" => {
                positive().map(|()| self.metadata_backup_interval = Duration::from_millis(value))
            }
            "strata.tiering.local.budget.bytes" => {
                self.local_budget_bytes = value;
                Ok(())
            }
            "strata.tiering.fetch.readahead.blocks" => {
                self.readahead_blocks = value;
                Ok(())
            }
            _ => return None,
        };
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_overlap_for_a_remote_store_and_not_for_a_local_directory_unless_set() {
        let settings = TieringSettings::default();
        assert_eq!(
            settings.for_store("s3://bucket/p").upload_max_in_flight(),
            4
        );
        assert_eq!(
            settings
                .for_store("file:///data/objects")
                .upload_max_in_flight(),
            1
        );
        let mut set = TieringSettings::default();
        assert_eq!(
            set.apply("strata.tiering.upload.max.in.flight", 3),
            Some(Ok(()))
        );
        assert_eq!(
            set.for_store("file:///data/objects").upload_max_in_flight(),
            3
        );
    }
}
