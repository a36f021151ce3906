//! Fetches below the local log start, served from a committed segment in the object store.
//!
//! A segment is a run of whole batches, byte for byte as the leader's log stored them. A
//! read walks its batch headers from the segment's start (or from where the previous read of
//! it ended: sequential consumers continue exactly there) to the batch holding the fetch
//! offset, then reads up to the byte budget and keeps whole batches, as a local read does.
//! Every byte comes through the [`BlockCache`]; the blocks after a read are fetched ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_log::batch::{BatchHeader, HEADER_LEN, complete_batches, first_record_at_or_after};
use strata_meta::SegmentEntry;
use tracing::{Instrument, debug_span};

use super::block_cache::{BLOCK_BYTES, BlockCache};
use crate::error::BrokerError;
use crate::metrics::TieringMetrics;

/// The largest batch a timestamp lookup decompresses (a stored batch passed the produce cap).
const LOOKUP_DECOMPRESS_LIMIT: usize = 256 * 1024 * 1024;

/// Remembered read positions; beyond this many the map starts over (a miss only costs a
/// header walk).
const MAX_CURSORS: usize = 4096;

/// Where a read of a segment ended: the next offset and its byte position.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    next_offset: i64,
    position: u64,
}

/// Reads batches of committed segments.
#[derive(Debug)]
pub struct RemoteReader {
    blocks: Arc<BlockCache>,
    readahead_blocks: u64,
    cursors: Mutex<HashMap<(String, u64), Cursor>>,
    metrics: TieringMetrics,
}

impl RemoteReader {
    pub fn new(blocks: Arc<BlockCache>, readahead_blocks: u64, metrics: TieringMetrics) -> Self {
        Self {
            blocks,
            readahead_blocks,
            cursors: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    pub fn blocks(&self) -> &Arc<BlockCache> {
        &self.blocks
    }

    /// Whole batches of `segment` from the one holding `fetch_offset`, at most `max_bytes`
    /// unless `at_least_one` and the first batch is larger.
    pub async fn read(
        &self,
        segment: &SegmentEntry,
        fetch_offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<Bytes, BrokerError> {
        let span = debug_span!("remote_read", object = %segment.object, fetch_offset, max_bytes);
        async {
            let end = segment.byte_offset + segment.byte_len;
            let Some((position, first_len)) = self.find_batch(segment, fetch_offset).await? else {
                return Ok(Bytes::new());
            };
            let available = end - position;
            let mut want = (max_bytes as u64).min(available);
            if want < first_len {
                if !at_least_one {
                    return Ok(Bytes::new());
                }
                want = first_len;
            }
            let mut bytes = self
                .blocks
                .read(&segment.object, position..position + want)
                .await?;
            let (complete, last) = complete_batches(&bytes, i64::MAX);
            bytes.truncate(complete);
            if let Some(last) = last {
                self.remember(
                    segment,
                    last.last_offset() + 1,
                    position + bytes.len() as u64,
                );
            }
            let next_block = (position + bytes.len() as u64) / BLOCK_BYTES;
            let last_block = (end.max(1) - 1) / BLOCK_BYTES;
            let ahead_end = (next_block + 1 + self.readahead_blocks).min(last_block + 1);
            self.blocks
                .read_ahead(&segment.object, next_block + 1..ahead_end);
            self.metrics.remote_read_bytes.inc_by(bytes.len() as u64);
            Ok(bytes)
        }
        .instrument(span)
        .await
    }

    /// The position and length of the batch holding `fetch_offset`, or `None` if the segment
    /// ends before it.
    async fn find_batch(
        &self,
        segment: &SegmentEntry,
        fetch_offset: i64,
    ) -> Result<Option<(u64, u64)>, BrokerError> {
        let end = segment.byte_offset + segment.byte_len;
        let from = self
            .cursor(segment)
            .filter(|c| c.next_offset <= fetch_offset && c.position < end)
            .map_or(segment.byte_offset, |c| c.position);
        let found = self
            .walk(segment, from, |h| h.last_offset() >= fetch_offset)
            .await?;
        Ok(found.map(|(position, _, len)| (position, len)))
    }

    /// The first record of `segment` whose timestamp is at least `timestamp`: its offset and
    /// timestamp (ListOffsets by time on tiered data).
    pub async fn offset_for_timestamp(
        &self,
        segment: &SegmentEntry,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, BrokerError> {
        let mut from = segment.byte_offset;
        while let Some((position, _, len)) = self
            .walk(segment, from, |h| h.max_timestamp >= timestamp)
            .await?
        {
            let batch = self
                .blocks
                .read(&segment.object, position..position + len)
                .await?;
            let found = first_record_at_or_after(&batch, timestamp, LOOKUP_DECOMPRESS_LIMIT)
                .map_err(|e| {
                    BrokerError::RemoteStorage(format!(
                        "{} holds a batch at byte {position} that does not decode: {e}",
                        segment.object
                    ))
                })?;
            if found.is_some() {
                return Ok(found);
            }
            from = position + len;
        }
        Ok(None)
    }

    /// Walks `segment`'s batch headers from byte `from` to the first that `wanted` accepts:
    /// its position, header and length.
    async fn walk(
        &self,
        segment: &SegmentEntry,
        from: u64,
        wanted: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader, u64)>, BrokerError> {
        let end = segment.byte_offset + segment.byte_len;
        let mut position = from;
        while position + HEADER_LEN as u64 <= end {
            let header_bytes = self
                .blocks
                .read(&segment.object, position..position + HEADER_LEN as u64)
                .await?;
            let header = BatchHeader::parse(&header_bytes)
                .and_then(|h| h.total_len().map(|len| (h, len as u64)))
                .filter(|(_, len)| *len >= HEADER_LEN as u64 && position + len <= end);
            let Some((header, len)) = header else {
                return Err(BrokerError::RemoteStorage(format!(
                    "{} holds no valid batch at byte {position}",
                    segment.object
                )));
            };
            if wanted(&header) {
                return Ok(Some((position, header, len)));
            }
            position += len;
        }
        Ok(None)
    }

    fn cursor(&self, segment: &SegmentEntry) -> Option<Cursor> {
        self.cursors
            .lock()
            .expect("cursor map lock is never poisoned")
            .get(&(segment.object.clone(), segment.byte_offset))
            .copied()
    }

    fn remember(&self, segment: &SegmentEntry, next_offset: i64, position: u64) {
        let mut cursors = self
            .cursors
            .lock()
            .expect("cursor map lock is never poisoned");
        if cursors.len() >= MAX_CURSORS {
            cursors.clear();
        }
        cursors.insert(
            (segment.object.clone(), segment.byte_offset),
            Cursor {
                next_offset,
                position,
            },
        );
    }
}
