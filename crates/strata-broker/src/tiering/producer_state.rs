//! The idempotent-producer state of a partition whose local log was lost, read back from
//! its tiered tail.
//!
//! A broker that lost its disk starts the partition's local log at the tiered end
//! ([`Partition::set_remote`]) with no producer state, so a producer retrying a batch that
//! was committed to the object store before the crash would have it appended twice. Such a
//! partition stays offline until the headers of its newest tiered segments (at least one,
//! up to [`TAIL_BYTES`]) have been read back and recorded. A retry can only be of a batch
//! sent within the producer's delivery timeout, which is far newer than that tail; a producer
//! whose last batch is older is accepted at any sequence, as Kafka accepts one whose state
//! retention removed.
//!
//! [`Partition::set_remote`]: crate::partition::Partition::set_remote

use strata_log::BatchHeader;
use tracing::{info, warn};
use uuid::Uuid;

use super::TieringContext;
use crate::error::BrokerError;

/// How much of a partition's tiered tail is read back.
const TAIL_BYTES: u64 = 16 << 20;

/// Rebuilds the producer state of every hosted partition that awaits it; a failure is
/// retried by the next reconcile pass.
pub async fn rebuild_where_needed(tier: &TieringContext) {
    for topic in tier.topics.all() {
        for partition in topic.partitions.values() {
            if !partition.awaits_producers() {
                continue;
            }
            match tail_headers(tier, topic.id, partition.index).await {
                Ok(headers) => {
                    partition.seed_producers(&headers, tier.clock.now_ms());
                    let from = headers.first().map_or(-1, |h| h.base_offset);
                    info!(topic = %topic.name, partition = partition.index, batches = headers.len(), from, "rebuilt the idempotent-producer state from the tiered log");
                }
                Err(e) => {
                    warn!(topic = %topic.name, partition = partition.index, error = %e, "could not read the tiered tail back for its producer state; retrying")
                }
            }
        }
    }
}

/// The headers of the batches of the newest tiered segments of a partition, oldest first.
async fn tail_headers(
    tier: &TieringContext,
    topic_id: Uuid,
    partition: i32,
) -> Result<Vec<BatchHeader>, BrokerError> {
    let segments = tier.manifest.tail(topic_id, partition, TAIL_BYTES);
    let mut headers = Vec::new();
    for (base, segment) in segments {
        let mut offset = base;
        while offset <= segment.last_offset {
            let budget = usize::try_from(segment.byte_len).unwrap_or(usize::MAX);
            let bytes = tier.remote.read(&segment, offset, budget, true).await?;
            let mut rest = &bytes[..];
            let before = headers.len();
            while let Some(header) = BatchHeader::parse(rest) {
                let Some(len) = header.total_len().filter(|l| *l <= rest.len()) else {
                    break;
                };
                offset = header.last_offset() + 1;
                headers.push(header);
                rest = &rest[len..];
            }
            if headers.len() == before {
                break;
            }
        }
    }
    Ok(headers)
}
