//! The sweeper: deletes objects that no manifest entry references: objects whose segments all
//! expired or were deleted or merged away, and orphans of uploads that never committed (a
//! crash, a deposed leader, a refused commit).
//!
//! An unreferenced object goes once it is older than the grace period, or at once if an
//! earlier round saw it referenced. Why the second rule: the grace protects uploads not yet
//! committed, but an object that was referenced was committed, and once unreferenced no
//! commit references it again (a retried commit of its segments is refused: they are below
//! the log start, or the manifest holds other entries for them). Without it, data that
//! retention drops within the grace period stays in the store for the whole hour: 43 GB after
//! ten minutes at 143 MB/s with topics keeping 3 GiB (docs/benchmarks.md).
//!
//! Safety: an uploader gives up on committing once half the grace period has passed since it
//! started, so an object past the grace period is never about to be referenced; and the
//! sweeper reads the manifest through a ReadIndex, so no commit it could miss exists; on an
//! embedded node a metadata backup at least as new as that manifest is written before
//! anything is deleted, so a restored manifest never points at a deleted object. One
//! broker sweeps (the live broker with the lowest id), so the store is listed once per pass;
//! what it saw is kept in memory only, so a broker that starts sweeping waits out the grace.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tracing::{Instrument, info, info_span, warn};

use super::TieringContext;
use crate::error::BrokerError;

/// Where the uploader puts objects.
pub const SEGMENTS_PREFIX: &str = "segments";

/// The sweeper of one broker, and what it saw referenced.
#[derive(Debug, Default)]
pub struct Sweeper {
    /// Objects younger than the grace period that the last round saw referenced (and those of
    /// them it found unreferenced, until they are deleted).
    seen_referenced: Mutex<HashSet<String>>,
}

impl Sweeper {
    /// One round, run every `strata.tiering.sweep.interval.ms` by the broker that sweeps (the
    /// live broker with the lowest id, so the store is listed once per round).
    pub async fn round(&self, tier: &TieringContext) {
        match self.sweep(tier).instrument(info_span!("sweep")).await {
            Ok(0) => {}
            Ok(deleted) => info!(deleted, "sweeper deleted unreferenced objects"),
            Err(e) => warn!(error = %e, "sweep failed; the next one retries"),
        }
    }

    /// One pass; answers how many objects it deleted.
    pub async fn sweep(&self, tier: &TieringContext) -> Result<usize, BrokerError> {
        let store_err = |e: object_store::Error| BrokerError::RemoteStorage(e.to_string());
        let grace_ms = i64::try_from(tier.settings.orphan_grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = tier.clock.now_ms().saturating_sub(grace_ms);
        let prefix = object_store::path::Path::from(SEGMENTS_PREFIX);
        let listed: Vec<(object_store::path::Path, bool)> = tier
            .store
            .list(Some(&prefix))
            .map_ok(|meta| {
                (
                    meta.location,
                    meta.last_modified.timestamp_millis() < cutoff_ms,
                )
            })
            .try_collect()
            .await
            .map_err(store_err)?;
        if listed.is_empty() {
            return Ok(0);
        }
        let referenced = tier.manifest.referenced_objects().await?;
        let (doomed, remembered) = {
            let seen = self.lock();
            let mut doomed = Vec::new();
            let mut remembered = HashSet::new();
            for (location, old) in listed {
                let name = location.as_ref();
                let unreferenced = !referenced.contains(name);
                if unreferenced && (old || seen.contains(name)) {
                    doomed.push(location.clone());
                }
                // A young one stays known across a round whose deletes fail part way.
                if !old && (!unreferenced || seen.contains(name)) {
                    remembered.insert(name.to_string());
                }
            }
            (doomed, remembered)
        };
        *self.lock() = remembered;
        if doomed.is_empty() {
            return Ok(0);
        }
        // On a node that backs its metadata up, a restore must not find entries pointing to
        // objects deleted here: the backup has to be at least as new as the manifest this
        // pass read (objects are never referenced again once unreferenced).
        if let Some(backups) = &tier.backups {
            backups.back_up().await?;
        }
        let mut deleted = 0;
        for location in doomed {
            tier.store.delete(&location).await.map_err(store_err)?;
            tier.metrics.tiering.objects_deleted.inc();
            deleted += 1;
        }
        Ok(deleted)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.seen_referenced
            .lock()
            .expect("no code panics while holding the sweeper's memory")
    }
}
