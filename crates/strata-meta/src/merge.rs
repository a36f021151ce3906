//! Merged segments: a run of a partition's small committed segments, copied back to back into
//! one new object, becomes one manifest entry, so the manifest follows the retained bytes
//! rather than the number of upload rounds.
//!
//! Each merge is a compare-and-set on the entries it names: they must still be the
//! partition's consecutive entries from the first named on, unchanged. Retention, a newer
//! merge or a recommitted entry therefore makes it fail, and a failed merge changes nothing.
//! The objects the replaced entries pointed to are left to the sweeper once nothing
//! references them.

use crate::MERGED_SEGMENTS;
use crate::command::{ReplaceSegments, SegmentMerge};
use crate::error::MetaError;
use crate::state::{CommandOutcome, MetadataState, PartitionManifest, SegmentEntry};

impl MetadataState {
    /// Records each merge of `c` that still matches the manifest; refuses the others.
    pub(crate) fn replace_segments(
        &mut self,
        c: &ReplaceSegments,
    ) -> Result<CommandOutcome, MetaError> {
        if self.metadata_version() < MERGED_SEGMENTS {
            return Err(MetaError::MetadataVersionRefused {
                version: self.metadata_version(),
                reason: format!("merged segments need metadata version {MERGED_SEGMENTS}"),
            });
        }
        if c.object.is_empty() || c.merges.is_empty() {
            return Err(MetaError::InvalidSegment {
                reason: "a merge names an object and at least one run of segments".into(),
            });
        }
        let (mut replaced, mut refused) = (0, 0);
        for merge in &c.merges {
            match self.replace_run(&c.object, merge) {
                Ok(()) => replaced += 1,
                Err(_) => refused += 1,
            }
        }
        Ok(CommandOutcome::SegmentsReplaced { replaced, refused })
    }

    /// Swaps one partition's run for its merged copy, or refuses without changing anything.
    fn replace_run(&mut self, object: &str, m: &SegmentMerge) -> Result<(), MetaError> {
        self.known_partition(m.topic_id, m.partition)?;
        let invalid = |reason: String| Err(MetaError::InvalidSegment { reason });
        let (Some(first), true) = (m.replaced.first(), m.replaced.len() >= 2) else {
            return invalid("a merge replaces at least two segments".into());
        };
        let Some(manifest) = self
            .manifest
            .get_mut(&m.topic_id)
            .and_then(|t| t.get_mut(&m.partition))
        else {
            return invalid("the partition has no committed segments".into());
        };
        let run: Vec<(&i64, &SegmentEntry)> = manifest
            .segments
            .range(first.base_offset..)
            .take(m.replaced.len())
            .collect();
        let matches = run.len() == m.replaced.len()
            && run.iter().zip(&m.replaced).all(|((base, entry), named)| {
                **base == named.base_offset && entry.object == named.object
            });
        if !matches {
            return invalid(format!(
                "the {} segments from offset {} are no longer the ones merged",
                m.replaced.len(),
                first.base_offset
            ));
        }
        let leader_epoch = run[0].1.leader_epoch;
        if run.iter().any(|(_, e)| e.leader_epoch != leader_epoch) {
            return invalid("merged segments share one leader epoch".into());
        }
        let byte_len: u64 = run.iter().map(|(_, e)| e.byte_len).sum();
        if byte_len != m.byte_len {
            return invalid(format!(
                "the merged copy is {} bytes, the segments {byte_len}",
                m.byte_len
            ));
        }
        let merged = SegmentEntry {
            last_offset: run.last().map_or(first.base_offset, |(_, e)| e.last_offset),
            object: object.to_string(),
            byte_offset: m.byte_offset,
            byte_len,
            max_timestamp_ms: run
                .iter()
                .map(|(_, e)| e.max_timestamp_ms)
                .max()
                .unwrap_or(-1),
            leader_epoch,
        };
        let bases: Vec<i64> = run.iter().map(|(base, _)| **base).collect();
        for base in bases {
            manifest.segments.remove(&base);
        }
        manifest.segments.insert(first.base_offset, merged);
        Ok(())
    }
}

/// How many entries a merge takes at least.
pub const MERGE_FANOUT: usize = 8;
/// The most entries one merge takes (bounds a command's size and a plan's work).
pub const MAX_MERGED_ENTRIES: usize = 1024;

/// How large a merged entry may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeLimits {
    /// Its bytes.
    pub target_bytes: u64,
    /// From its first entry's newest record to its last's (the topic's `segment.ms`): a
    /// merged entry goes by retention whole, so it may not hold data much older than its
    /// newest record, as a Kafka segment may not.
    pub max_span_ms: i64,
}

impl PartitionManifest {
    /// Runs of entries worth merging, oldest first, adding up to at least `budget` bytes
    /// (or every run there is). A run is at least [`MERGE_FANOUT`] consecutive entries of one
    /// leader epoch, within `limits`, none more than half of the total: a merge then at
    /// least doubles the entry holding each byte, so no byte is copied more than
    /// log2(`target_bytes` / its first entry's size) times, and a partition's entries settle
    /// at about `MERGE_FANOUT` - 1 per size class plus one per `target_bytes` retained.
    pub fn merge_runs(&self, limits: MergeLimits, budget: u64) -> Vec<Vec<(i64, &SegmentEntry)>> {
        let entries: Vec<(i64, &SegmentEntry)> =
            self.segments.iter().map(|(base, e)| (*base, e)).collect();
        let mut runs = Vec::new();
        let mut planned = 0u64;
        let mut start = 0;
        while start < entries.len() && planned < budget {
            let first = entries[start].1;
            let (mut total, mut largest, mut end) = (0u64, 0u64, None);
            for (i, (_, entry)) in entries
                .iter()
                .enumerate()
                .skip(start)
                .take(MAX_MERGED_ENTRIES)
            {
                let span = entry
                    .max_timestamp_ms
                    .saturating_sub(first.max_timestamp_ms);
                if entry.leader_epoch != first.leader_epoch
                    || total + entry.byte_len > limits.target_bytes
                    || span > limits.max_span_ms
                {
                    break;
                }
                total += entry.byte_len;
                largest = largest.max(entry.byte_len);
                if i + 1 - start >= MERGE_FANOUT && largest * 2 <= total {
                    end = Some((i + 1, total));
                }
            }
            match end {
                Some((end, total)) => {
                    runs.push(entries[start..end].to_vec());
                    planned += total;
                    start = end;
                }
                None => start += 1,
            }
        }
        runs
    }
}
