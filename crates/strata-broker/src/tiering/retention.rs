//! Whole-log retention for tiered partitions: `retention.ms` and `retention.bytes` apply to
//! the log across both tiers, so the leader moves the log start in the manifest past expired
//! segments (`AdvanceLogStart`). Local copies go by `local.retention.*`, which is never longer;
//! objects no segment references any more are reclaimed by the sweeper.

use strata_meta::MetaCommand;
use tracing::{Instrument, info, info_span, warn};

use crate::broker::Broker;

/// One pass over the tiered partitions this broker leads.
pub async fn expire(broker: &Broker) {
    let now = broker.clock.now_ms();
    for topic in broker.topics.all().iter().filter(|t| t.config.tiered()) {
        let (retention_ms, retention_bytes) =
            (topic.config.retention_ms(), topic.config.retention_bytes());
        if retention_ms.is_none() && retention_bytes.is_none() {
            continue;
        }
        for partition in topic.partitions.values() {
            if partition.leader_epoch().is_none() {
                continue;
            }
            let Some(tiered) = partition.tiered_range() else {
                continue;
            };
            let (newer_bytes, _) = partition.pending_from(tiered.end);
            let expired = broker.metadata.read(|state| {
                state
                    .partition_manifest(topic.id, partition.index)?
                    .expired_end(now, retention_ms, retention_bytes, newer_bytes)
            });
            let Some(log_start_offset) = expired else {
                continue;
            };
            let command = MetaCommand::AdvanceLogStart {
                topic_id: topic.id,
                partition: partition.index,
                log_start_offset,
            };
            let span = info_span!("expire", topic = %topic.name, partition = partition.index, log_start_offset);
            match broker.metadata.commit(command).instrument(span).await {
                Ok(_) => {
                    broker.metrics.tiering.retention_advances.inc();
                    info!(topic = %topic.name, partition = partition.index, log_start_offset, "retention moved the log start");
                }
                Err(e) => {
                    warn!(topic = %topic.name, partition = partition.index, error = %e, "retention could not move the log start")
                }
            }
        }
    }
}
