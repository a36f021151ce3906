//! The uploader: one per broker, packing sealed data of every tiered partition this broker
//! leads into shared objects, so PUTs per GiB do not grow with the partition count.
//!
//! Cutting an object: take ranges below the high watermark from where each partition's
//! committed or in-flight data ends, partitions in rotating order, until the object reaches
//! its target size; if it is not full, cut it only once the oldest data not yet uploaded has
//! waited `upload_max_lag`, and then take every partition's data, so they all travel
//! together. Ranges come from the active segment as well as sealed ones: an upload never
//! rolls a segment, so a quiet partition keeps one local segment, not one per lag period
//! (segments roll by `segment.bytes` and `segment.ms`, and local retention takes them once
//! uploaded: `PartitionLog::roll_if_retired`). Each object is read (outside every lock, from files the log keeps open),
//! packed and PUT under a name never used before; up to `upload_max_in_flight()` objects are
//! stored at once. Commits run one at a time in the order objects were cut: one
//! `CommitSegments` command per object, each segment fenced by the leader epoch it was read
//! under; then local retention may delete what is committed. Objects are cut back to back
//! while they fill, and once per `upload_interval` otherwise.
//!
//! Crash safety: nothing local is deleted before the commit, so a crash or a failed PUT
//! leaves at worst an object nobody references (an orphan, for the sweeper). A retried PUT
//! sends the same bytes under the same name, so an ambiguous PUT is harmless. A failed or
//! refused object discards every object cut after it before they commit, so a partition's
//! segments are committed in offset order with no gap (the manifest refuses a gap anyway).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use strata_log::UploadRange;
use strata_meta::SegmentCommit;
use strata_tier::object::Chunk;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use super::TieringContext;
use super::manifest::Committed;
use super::new_object;
use crate::blocking::blocking;
use crate::error::BrokerError;
use crate::partition::Partition;

/// How often the upload lag is measured.
pub const LAG_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// How often the manifest gauges are refreshed.
pub const MANIFEST_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Sealed data of one partition, chosen for the next object.
pub(super) struct Candidate {
    partition: Arc<Partition>,
    topic_id: Uuid,
    leader_epoch: i32,
    pub(super) range: UploadRange,
}

/// Measures the upload lag, whatever the uploader is doing (a round can spend a long time
/// retrying): produce reads it for the local budget. Run every [`LAG_REPORT_INTERVAL`].
pub fn report_lag(tier: &TieringContext) {
    let now = tier.clock.now_ms();
    let (mut bytes, mut records, mut oldest) = (0u64, 0i64, None::<i64>);
    for topic in tier.topics.all().iter().filter(|t| t.config.tiered()) {
        for partition in topic.partitions.values() {
            if partition.leader_epoch().is_none() {
                continue;
            }
            // Committed is not enough: an embedded node's commit is safe from a lost disk
            // only once a metadata backup holds it.
            let from = partition.first_undurable_offset();
            let (pending, since) = partition.pending_from(from);
            bytes += pending;
            records += (partition.offsets().high_watermark - from).max(0);
            if pending > 0 {
                oldest = oldest.min(since).or(since);
            }
        }
    }
    tier.backlog.set(bytes);
    let tiering = &tier.metrics.tiering;
    tiering
        .upload_lag_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    tiering.upload_lag_records.set(records);
    tiering
        .upload_lag_seconds
        .set(oldest.map_or(0, |since| (now - since).max(0) / 1000));
}

/// Counts what the manifest references: a walk of the whole manifest, too much for the
/// lag's cadence. Run every [`MANIFEST_REPORT_INTERVAL`].
pub fn report_manifest(tier: &TieringContext) {
    let totals = tier.manifest.totals();
    let tiering = &tier.metrics.tiering;
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tiering.manifest_objects.set(gauge(totals.objects as u64));
    tiering.manifest_segments.set(gauge(totals.segments as u64));
    tiering.manifest_bytes.set(gauge(totals.bytes));
}

/// Objects being stored, oldest first, and how far each partition's data is claimed by them.
#[derive(Default)]
struct Pipeline {
    in_flight: VecDeque<JoinHandle<Result<Stored, BrokerError>>>,
    /// Per partition, the offset after the last one an object in flight holds.
    claimed: HashMap<(Uuid, i32), i64>,
}

impl Pipeline {
    fn claim(&mut self, candidates: &[Candidate]) {
        for c in candidates {
            self.claimed
                .insert((c.topic_id, c.partition.index), c.range.last_offset + 1);
        }
    }

    /// Forgets everything in flight: a failed or refused object must not be followed by a
    /// commit of what was read after it, which would leave a gap. Their objects, if stored,
    /// are orphans for the sweeper.
    fn reset(&mut self) {
        for task in self.in_flight.drain(..) {
            task.abort();
        }
        self.claimed.clear();
    }
}

/// Runs the uploader until `cancel` fires (an upload in flight is abandoned: its object, if
/// stored, is an orphan). Keeps up to `upload_max_in_flight()` objects being stored at once and
/// commits them one at a time in the order they were cut, so each partition's segments are
/// committed in offset order whatever order the PUTs finish in.
pub async fn run(tier: TieringContext, cancel: CancellationToken) {
    let settings = tier.settings.clone();
    let mut interval = tokio::time::interval(settings.upload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rotation = 0usize;
    let mut pipeline = Pipeline::default();
    loop {
        while pipeline.in_flight.len() < settings.upload_max_in_flight() {
            let chooser = tier.clone();
            let claimed = pipeline.claimed.clone();
            rotation = rotation.wrapping_add(1);
            let start = rotation;
            let chosen = blocking(move || choose(&chooser, start, &claimed)).await;
            let (candidates, filled) = match chosen.and_then(|c| c) {
                Ok(chosen) => chosen,
                Err(e) => {
                    warn!(error = %e, "choosing data to upload failed");
                    break;
                }
            };
            if candidates.is_empty() {
                break;
            }
            pipeline.claim(&candidates);
            pipeline
                .in_flight
                .push_back(tokio::spawn(store_object(tier.clone(), candidates)));
            if !filled {
                break;
            }
        }
        let Some(oldest) = pipeline.in_flight.front_mut() else {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => continue,
            }
        };
        let stored = tokio::select! {
            () = cancel.cancelled() => {
                pipeline.reset();
                return;
            }
            stored = oldest => stored,
        };
        pipeline.in_flight.pop_front();
        let committed = match stored {
            Ok(Ok(stored)) => commit_object(&tier, stored).await,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(BrokerError::from(std::io::Error::other(e.to_string()))),
        };
        match committed {
            Ok(true) => {}
            Ok(false) => pipeline.reset(),
            Err(e) => {
                pipeline.reset();
                tier.metrics.tiering.upload_failures.inc();
                warn!(error = %e, "upload failed; its data stays local and is retried");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = interval.tick() => {}
                }
            }
        }
    }
}

/// An object stored, waiting for its commit.
struct Stored {
    name: String,
    candidates: Vec<Candidate>,
    footer: strata_tier::object::Footer,
    size: u64,
    started: std::time::Instant,
}

/// Reads the chosen ranges, packs them and PUTs the object under a new name.
async fn store_object(
    tier: TieringContext,
    candidates: Vec<Candidate>,
) -> Result<Stored, BrokerError> {
    let started = std::time::Instant::now();
    let name = new_object::name(&tier);
    let span = info_span!("upload", object = %name, segments = candidates.len());
    async {
        let read = candidates
            .iter()
            .map(|c| (c.range.clone(), c.topic_id, c.partition.index))
            .collect::<Vec<_>>();
        let chunks = blocking(move || read_chunks(read)).await??;
        let (footer, size) = new_object::put(&tier, &name, &chunks).await?;
        tier.metrics.tiering.objects_uploaded.inc();
        tier.metrics.tiering.bytes_uploaded.inc_by(size);
        Ok(Stored {
            name: name.clone(),
            candidates,
            footer,
            size,
            started,
        })
    }
    .instrument(span)
    .await
}

/// Commits a stored object's segments, backs the metadata up where that is what makes the
/// commit survive a lost disk, and lets local retention trim. Answers false if the manifest
/// refused any segment (the pipeline then starts over from the manifest).
async fn commit_object(tier: &TieringContext, stored: Stored) -> Result<bool, BrokerError> {
    let Stored {
        name,
        candidates,
        footer,
        size,
        started,
    } = stored;
    new_object::check_commit_deadline(tier, &name, started)?;
    let segments = candidates
        .iter()
        .zip(&footer.chunks)
        .map(|(candidate, chunk)| SegmentCommit {
            topic_id: candidate.topic_id,
            partition: candidate.partition.index,
            leader_epoch: candidate.leader_epoch,
            base_offset: chunk.base_offset,
            last_offset: chunk.last_offset,
            byte_offset: chunk.byte_offset,
            byte_len: chunk.byte_len,
            max_timestamp_ms: chunk.max_timestamp_ms,
        })
        .collect();
    let Committed { committed, refused } = tier
        .manifest
        .commit_segments(name.clone(), segments)
        .instrument(info_span!("commit", object = %name))
        .await?;
    let tiering = &tier.metrics.tiering;
    tiering.segments_committed.inc_by(u64::from(committed));
    tiering.segments_refused.inc_by(u64::from(refused));
    info!(object = %name, bytes = size, committed, refused, "object uploaded and committed");
    // What is committed may now leave the local disk, by local retention, once a lost disk
    // cannot take the commit with it.
    if let Some(backups) = &tier.backups {
        backups.back_up().await?;
    }
    let trimmed: Vec<_> = candidates.into_iter().map(|c| c.partition).collect();
    let now = tier.clock.now_ms();
    blocking(move || {
        for partition in trimmed {
            if let Err(e) = partition.enforce_retention(now) {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "local retention after upload failed");
            }
        }
    })
    .await?;
    Ok(refused == 0)
}

/// Picks ranges for one object from the tiered partitions this broker leads, starting at
/// partition `start` (mod their count) so that no partition waits behind others for ever.
/// Answers the ranges and whether they fill the object.
///
/// An object is sent when it is full, or when the oldest data not yet uploaded (on any of
/// these partitions) has waited `upload_max_lag`; then it takes what every partition holds,
/// so all of them travel in the same object. That is what keeps PUTs from growing with the
/// partition count: one flush per lag period, not one per partition.
pub(super) fn choose(
    tier: &TieringContext,
    start: usize,
    claimed: &HashMap<(Uuid, i32), i64>,
) -> Result<(Vec<Candidate>, bool), BrokerError> {
    let settings = &tier.settings;
    let now = tier.clock.now_ms();
    let lag_ms = i64::try_from(settings.upload_max_lag.as_millis()).unwrap_or(i64::MAX);
    let led: Vec<(Uuid, Arc<Partition>)> = tier
        .topics
        .all()
        .iter()
        .filter(|t| t.config.tiered())
        .flat_map(|t| t.partitions.values().map(|p| (t.id, p.clone())))
        .filter(|(_, p)| p.leader_epoch().is_some())
        .collect();
    // Where the next upload of a partition starts: after what is committed or in flight.
    let next_from = |topic_id: Uuid, p: &Partition| {
        let tiered_end = p.tiered_range().map_or(i64::MIN, |r| r.end);
        claimed
            .get(&(topic_id, p.index))
            .map_or(tiered_end, |c| (*c).max(tiered_end))
    };
    let oldest_pending = led
        .iter()
        .filter_map(|(topic_id, p)| p.pending_from(next_from(*topic_id, p)).1)
        .min();
    let due = oldest_pending.is_some_and(|since| since <= now.saturating_sub(lag_ms));
    let mut budget = settings.object_target_bytes;
    let mut candidates = Vec::new();
    let count = led.len();
    for (topic_id, partition) in led
        .into_iter()
        .cycle()
        .skip(start % count.max(1))
        .take(count)
    {
        let Some(leader_epoch) = partition.leader_epoch() else {
            continue;
        };
        let mut from = next_from(topic_id, &partition);
        while budget > 0 {
            let Some(range) = partition.upload_range(from, budget)? else {
                break;
            };
            budget = budget.saturating_sub(range.bytes.len() as u64);
            from = range.last_offset + 1;
            candidates.push(Candidate {
                partition: partition.clone(),
                topic_id,
                leader_epoch,
                range,
            });
        }
        if budget == 0 {
            return Ok((candidates, true));
        }
    }
    if !due {
        candidates.clear();
    }
    Ok((candidates, false))
}

/// Reads the chosen ranges into chunks, in the order chosen.
fn read_chunks(ranges: Vec<(UploadRange, Uuid, i32)>) -> Result<Vec<Chunk>, BrokerError> {
    ranges
        .into_iter()
        .map(|(range, topic_id, partition)| {
            Ok(Chunk {
                topic_id,
                partition,
                base_offset: range.base_offset,
                last_offset: range.last_offset,
                max_timestamp_ms: range.max_timestamp_ms,
                batches: range.bytes.read()?,
            })
        })
        .collect()
}
