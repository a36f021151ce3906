//! Retention, every `log.retention.check.interval.ms`: local retention and time-based rolls
//! on every hosted partition, expiry of silent idempotent producers, then whole-log retention
//! of tiered partitions (which moves their log start in the manifest).

use std::sync::Arc;
use std::time::Duration;

use tracing::{info_span, warn};

use crate::tiering::TieringContext;
use crate::topics::TopicRegistry;

/// What a retention round works with.
#[derive(Debug, Clone)]
pub struct Retention {
    pub topics: Arc<TopicRegistry>,
    /// `producer.id.expiration.ms`
    pub producer_id_expiration: Duration,
    pub tier: TieringContext,
}

impl Retention {
    /// One round over every hosted partition. An offline partition is left alone.
    pub async fn round(&self) {
        let topics = self.topics.clone();
        let now = self.tier.clock.now_ms();
        let expiration = i64::try_from(self.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
        let outcome = tokio::task::spawn_blocking(move || {
            let _span = info_span!("retention_pass").entered();
            let mut deleted = 0;
            for topic in topics.all() {
                for partition in topic.partitions.values() {
                    partition.expire_producers(now, expiration);
                    match partition.enforce_retention(now) {
                        Ok(n) => deleted += n,
                        Err(e) => warn!(topic = %topic.name, partition = partition.index, error = %e, "retention failed"),
                    }
                }
            }
            deleted
        })
        .await;
        if let Ok(deleted) = outcome {
            self.tier
                .metrics
                .retention_deleted_segments
                .inc_by(deleted as u64);
        }
        crate::tiering::retention::expire(&self.tier).await;
    }
}
