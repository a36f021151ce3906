//! The sweeper: deletes objects that no manifest entry references and that are older than
//! the grace period: objects whose segments all expired or were deleted, and orphans of
//! uploads that never committed (a crash, a deposed leader, a refused commit).
//!
//! Safety: an uploader gives up on committing once half the grace period has passed since it
//! started, so an object past the grace period is never about to be referenced; and the
//! sweeper reads the manifest through a ReadIndex, so no commit it could miss exists; on an
//! embedded node a metadata backup at least as new as that manifest is written before
//! anything is deleted, so a restored manifest never points at a deleted object. One
//! broker sweeps (the live broker with the lowest id), so the store is listed once per pass.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tracing::{Instrument, info, info_span, warn};

use super::TieringContext;
use crate::error::BrokerError;

/// Where the uploader puts objects.
pub const SEGMENTS_PREFIX: &str = "segments";

/// One round, run every `strata.tiering.sweep.interval.ms` by the broker that sweeps (the
/// live broker with the lowest id, so the store is listed once per round).
pub async fn round(tier: &TieringContext) {
    match sweep(tier).instrument(info_span!("sweep")).await {
        Ok(0) => {}
        Ok(deleted) => info!(deleted, "sweeper deleted unreferenced objects"),
        Err(e) => warn!(error = %e, "sweep failed; the next one retries"),
    }
}

/// One pass; answers how many objects it deleted.
pub async fn sweep(tier: &TieringContext) -> Result<usize, BrokerError> {
    let store_err = |e: object_store::Error| BrokerError::RemoteStorage(e.to_string());
    let grace_ms = i64::try_from(tier.settings.orphan_grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff_ms = tier.clock.now_ms().saturating_sub(grace_ms);
    let prefix = object_store::path::Path::from(SEGMENTS_PREFIX);
    let old: Vec<object_store::path::Path> = tier
        .store
        .list(Some(&prefix))
        .try_filter(|meta| std::future::ready(meta.last_modified.timestamp_millis() < cutoff_ms))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(store_err)?;
    if old.is_empty() {
        return Ok(0);
    }
    let referenced = tier.manifest.referenced_objects().await?;
    // On a node that backs its metadata up, a restore must not find entries pointing to
    // objects deleted here: the backup has to be at least as new as the manifest this pass
    // read (objects are never referenced again once unreferenced).
    if let Some(backups) = &tier.backups {
        backups.back_up().await?;
    }
    let mut deleted = 0;
    for location in old {
        if referenced.contains(location.as_ref()) {
            continue;
        }
        tier.store.delete(&location).await.map_err(store_err)?;
        tier.metrics.tiering.objects_deleted.inc();
        deleted += 1;
    }
    Ok(deleted)
}
