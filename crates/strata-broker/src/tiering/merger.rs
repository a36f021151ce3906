//! The merger: one per broker, beside the uploader, copying runs of small manifest entries of
//! the tiered partitions this broker leads into one new object, so that a partition's
//! entries follow its retained bytes rather than the number of upload rounds.
//!
//! A round asks the manifest for runs worth merging (`PartitionManifest::merge_runs`: at
//! least [`strata_meta::MERGE_FANOUT`] entries, none more than half of the run, up to
//! `strata.tiering.merge.target.bytes` in all and spanning at most the topic's `segment.ms`),
//! across partitions until the runs fill one object of [`MERGE_BYTES_PER_OBJECT`] (or one
//! run, if larger). It GETs their bytes, once per source object where the runs cover most
//! of it, checks that the batches are whole and hold exactly the run's offsets, packs one
//! chunk per run, PUTs the object under a new name and commits a `ReplaceSegments`: each
//! run is a compare-and-set, refused if retention or another merge changed it meanwhile.
//!
//! Crash safety: nothing is deleted here. Before the commit, the new object is an orphan
//! for the sweeper; after it, the replaced objects are, once no entry references them. A
//! merge that could not commit within half of the orphan grace period gives up, as an upload
//! does, so the sweeper never deletes an object a commit is about to reference.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use object_store::ObjectStoreExt;
use strata_log::BatchHeader;
use strata_meta::{MergeLimits, ReplacedSegment, SegmentEntry, SegmentMerge};
use strata_tier::object::Chunk;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use super::TieringContext;
use super::manifest::Replaced;
use super::new_object;
use crate::error::BrokerError;

/// A partition's run of entries chosen for one merge, oldest first.
struct Run {
    topic_id: Uuid,
    partition: i32,
    entries: Vec<(i64, SegmentEntry)>,
}

impl Run {
    fn bytes(&self) -> u64 {
        self.entries.iter().map(|(_, e)| e.byte_len).sum()
    }
}

/// Runs the merger until `cancel` fires: a round every `upload_interval`, and the next one
/// at once while rounds fill whole objects.
pub async fn run(tier: TieringContext, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(tier.settings.upload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        loop {
            let merged = tokio::select! {
                () = cancel.cancelled() => return,
                merged = round(&tier) => merged,
            };
            match merged {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tier.metrics.tiering.merge_failures.inc();
                    warn!(error = %e, "merging manifest entries failed; they stay as they are");
                    break;
                }
            }
        }
    }
}

/// The most bytes one merge copies (more merges follow at once while they fill), unless a
/// single run is larger: the merger holds about twice this while it works (what it read,
/// then the object it writes), so its memory does not follow the object size.
const MERGE_BYTES_PER_OBJECT: u64 = 16 << 20;

/// One merge: answers whether it filled an object and replaced something (more may be
/// waiting).
pub(super) async fn round(tier: &TieringContext) -> Result<bool, BrokerError> {
    let budget = MERGE_BYTES_PER_OBJECT.min(tier.settings.object_target_bytes);
    let runs = choose(tier, budget);
    if runs.is_empty() {
        return Ok(false);
    }
    let total: u64 = runs.iter().map(Run::bytes).sum();
    let name = new_object::name(tier);
    let span = info_span!("merge", object = %name, runs = runs.len(), bytes = total);
    async {
        let started = std::time::Instant::now();
        let chunks = read_runs(tier, &runs).await?;
        let (footer, size) = new_object::put(tier, &name, &chunks).await?;
        let tiering = &tier.metrics.tiering;
        tiering.merge_objects.inc();
        tiering.merge_bytes.inc_by(size);
        new_object::check_commit_deadline(tier, &name, started)?;
        let merges = runs
            .iter()
            .zip(&footer.chunks)
            .map(|(run, chunk)| SegmentMerge {
                topic_id: run.topic_id,
                partition: run.partition,
                replaced: run
                    .entries
                    .iter()
                    .map(|(base, e)| ReplacedSegment {
                        base_offset: *base,
                        object: e.object.clone(),
                    })
                    .collect(),
                byte_offset: chunk.byte_offset,
                byte_len: chunk.byte_len,
            })
            .collect();
        let Replaced { replaced, refused } = tier
            .manifest
            .replace_segments(name.clone(), merges)
            .instrument(info_span!("commit", object = %name))
            .await?;
        // The replaced objects go once unreferenced; the sweeper backs the metadata up
        // before it deletes anything, and this keeps the backup close behind anyway.
        if let Some(backups) = &tier.backups
            && let Err(e) = backups.back_up().await
        {
            warn!(error = %e, "metadata backup after a merge failed; the next round retries");
        }
        tiering.merge_runs_replaced.inc_by(u64::from(replaced));
        tiering.merge_runs_refused.inc_by(u64::from(refused));
        info!(object = %name, bytes = size, replaced, refused, "manifest entries merged");
        // A merge that replaced nothing waits for the next round rather than try again at once.
        Ok(total >= budget && replaced > 0)
    }
    .instrument(span)
    .await
}

/// Runs worth merging in the tiered partitions this broker leads, until they add up to
/// `budget` bytes.
fn choose(tier: &TieringContext, budget: u64) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut left = budget;
    for topic in tier.topics.all().iter().filter(|t| t.config.tiered()) {
        let limits = MergeLimits {
            target_bytes: tier.settings.merge_target_bytes,
            max_span_ms: topic.config.segment_ms(),
        };
        for partition in topic.partitions.values() {
            if left == 0 {
                return runs;
            }
            if partition.leader_epoch().is_none() {
                continue;
            }
            for entries in tier
                .manifest
                .merge_runs(topic.id, partition.index, limits, left)
            {
                let run = Run {
                    topic_id: topic.id,
                    partition: partition.index,
                    entries,
                };
                if run.bytes() > left && !runs.is_empty() {
                    return runs;
                }
                left = left.saturating_sub(run.bytes());
                runs.push(run);
            }
        }
    }
    runs
}

/// Reads every run's bytes into one chunk per run, checking each holds whole batches with
/// exactly the run's offsets.
async fn read_runs(tier: &TieringContext, runs: &[Run]) -> Result<Vec<Chunk>, BrokerError> {
    let ranges: Vec<(&str, Range<u64>)> = runs
        .iter()
        .flat_map(|run| &run.entries)
        .map(|(_, e)| (e.object.as_str(), e.byte_offset..e.byte_offset + e.byte_len))
        .collect();
    let fetched = fetch(tier, &ranges).await?;
    let mut chunks = Vec::with_capacity(runs.len());
    for run in runs {
        let mut batches = BytesMut::with_capacity(usize::try_from(run.bytes()).unwrap_or(0));
        for (_, e) in &run.entries {
            let range = e.byte_offset..e.byte_offset + e.byte_len;
            batches.extend_from_slice(&fetched[&(e.object.as_str(), range.start)]);
        }
        let batches = batches.freeze();
        let base_offset = run.entries.first().map_or(0, |(base, _)| *base);
        let last_offset = run.entries.last().map_or(-1, |(_, e)| e.last_offset);
        check_batches(&batches, base_offset, last_offset)?;
        chunks.push(Chunk {
            topic_id: run.topic_id,
            partition: run.partition,
            base_offset,
            last_offset,
            max_timestamp_ms: run
                .entries
                .iter()
                .map(|(_, e)| e.max_timestamp_ms)
                .max()
                .unwrap_or(-1),
            batches,
        });
    }
    Ok(chunks)
}

/// GETs the byte ranges, by (object, start): one GET per object covering all of its ranges
/// when they are at least half of what it covers (runs of one upload round share objects),
/// else one per range.
async fn fetch<'a>(
    tier: &TieringContext,
    ranges: &[(&'a str, Range<u64>)],
) -> Result<BTreeMap<(&'a str, u64), Bytes>, BrokerError> {
    let mut by_object: BTreeMap<&str, Vec<Range<u64>>> = BTreeMap::new();
    for (object, range) in ranges {
        by_object.entry(object).or_default().push(range.clone());
    }
    let mut fetched = BTreeMap::new();
    for (object, wanted) in by_object {
        let path = object_store::path::Path::from(object);
        let get = |range: Range<u64>| {
            let path = path.clone();
            async move {
                tier.store
                    .get_range(&path, range)
                    .await
                    .map_err(|e| BrokerError::RemoteStorage(format!("reading {object}: {e}")))
            }
        };
        let start = wanted.iter().map(|r| r.start).min().unwrap_or(0);
        let end = wanted.iter().map(|r| r.end).max().unwrap_or(0);
        let needed: u64 = wanted.iter().map(|r| r.end - r.start).sum();
        if needed * 2 >= end - start {
            let covering = get(start..end).await?;
            for range in wanted {
                let at = usize::try_from(range.start - start).unwrap_or(usize::MAX);
                let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
                let slice = covering.get(at..at.saturating_add(len)).ok_or_else(|| {
                    BrokerError::RemoteStorage(format!("{object} is shorter than its entries"))
                })?;
                fetched.insert((object, range.start), covering.slice_ref(slice));
            }
        } else {
            for range in wanted {
                let bytes = get(range.clone()).await?;
                fetched.insert((object, range.start), bytes);
            }
        }
    }
    Ok(fetched)
}

/// Whether `bytes` are whole batches holding exactly `base_offset..=last_offset`, back to
/// back: what a merged copy must be before it replaces anything.
fn check_batches(bytes: &[u8], base_offset: i64, last_offset: i64) -> Result<(), BrokerError> {
    let mut rest = bytes;
    let mut next = base_offset;
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest)
            .filter(|h| h.base_offset <= next && h.last_offset() >= next)
            .ok_or_else(|| {
                BrokerError::RemoteStorage(format!("merged bytes do not continue at offset {next}"))
            })?;
        let len = header
            .total_len()
            .filter(|len| *len <= rest.len())
            .ok_or_else(|| {
                BrokerError::RemoteStorage(format!("a torn batch at offset {next} in merged bytes"))
            })?;
        next = header.last_offset() + 1;
        rest = &rest[len..];
    }
    if next != last_offset + 1 {
        return Err(BrokerError::RemoteStorage(format!(
            "merged bytes end at {next}, the entries at {}",
            last_offset + 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use strata_log::test_util::{NOW, batch, record};

    use super::*;

    fn batches(base: i64, count: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..count {
            let mut bytes = batch(&[record("v")], strata_log::Compression::None, NOW).to_vec();
            bytes[0..8].copy_from_slice(&(base + i as i64).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn merged_bytes_must_be_whole_batches_of_exactly_the_runs_offsets() {
        let bytes = batches(10, 3);
        check_batches(&bytes, 10, 12).expect("10..=12");
        assert!(check_batches(&bytes, 10, 13).is_err(), "one short");
        assert!(check_batches(&bytes, 9, 12).is_err(), "a gap at the start");
        assert!(
            check_batches(&bytes[..bytes.len() - 1], 10, 12).is_err(),
            "a torn batch"
        );
        let mut gap = batches(10, 1);
        gap.extend(batches(12, 1));
        assert!(check_batches(&gap, 10, 12).is_err(), "a gap inside");
    }
}
