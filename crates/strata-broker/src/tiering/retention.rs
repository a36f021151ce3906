//! Whole-log retention for tiered partitions: `retention.ms` and `retention.bytes` apply to
//! the log across both tiers, so the leader moves the log start in the manifest past expired
//! segments (`AdvanceLogStart`). Local copies go by `local.retention.*`, which is never longer;
//! objects no segment references any more are reclaimed by the sweeper.

use tracing::{Instrument, info, info_span, warn};

use super::TieringContext;

/// One pass over the tiered partitions this broker leads.
pub async fn expire(tier: &TieringContext) {
    let now = tier.clock.now_ms();
    for topic in tier.topics.all().iter().filter(|t| t.config.tiered()) {
        let (retention_ms, retention_bytes) =
            (topic.config.retention_ms(), topic.config.retention_bytes());
        for partition in topic.partitions.values() {
            if partition.leader_epoch().is_none() {
                continue;
            }
            let Some(tiered) = partition.tiered_range() else {
                continue;
            };
            let (newer_bytes, _) = partition.pending_from(tiered.end);
            let local_start = partition.offsets().local_log_start_offset;
            let expired = tier.manifest.expired_end(
                topic.id,
                partition.index,
                now,
                (retention_ms, retention_bytes),
                newer_bytes,
            );
            // Data between the tiered end and the local log start exists nowhere (local
            // retention deleted it while the topic was not tiered): the log starts after it,
            // or the next upload would leave a gap the manifest refuses.
            let expired = if tiered.end < local_start {
                expired.max(Some(local_start))
            } else {
                expired
            };
            let Some(log_start_offset) = expired else {
                continue;
            };
            let span = info_span!("expire", topic = %topic.name, partition = partition.index, log_start_offset);
            let advanced = tier
                .manifest
                .advance_log_start(topic.id, partition.index, log_start_offset)
                .instrument(span)
                .await;
            match advanced {
                Ok(_) => {
                    tier.metrics.tiering.retention_advances.inc();
                    info!(topic = %topic.name, partition = partition.index, log_start_offset, "retention moved the log start");
                }
                Err(e) => {
                    warn!(topic = %topic.name, partition = partition.index, error = %e, "retention could not move the log start")
                }
            }
        }
    }
}
