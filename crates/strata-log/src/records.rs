//! Walking the records of a batch, compressed or not, in memory that does not depend on what
//! the batch claims.
//!
//! A record is checked field by field (attributes, timestamp and offset deltas, key, value,
//! headers) and its payloads are skipped, never copied. An uncompressed batch is walked in
//! place. A gzip, lz4 or zstd batch is walked as it decompresses, through a small buffer, so a
//! batch that inflates to hundreds of MiB (or holds one huge record) costs a few KiB of
//! memory and at most `limit` decompressed bytes of CPU. Raw snappy has no streaming form and
//! states its length up front; it is decompressed whole after that length is checked against
//! `limit`, and its format cannot inflate much more than twentyfold anyway.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use crate::batch::{BatchError, BatchHeader, Compression};

/// The Java client's snappy framing ("xerial"): magic, version, compatible version, then
/// blocks of [i32 length][raw snappy].
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Walks every record of a batch whose records (after the 61-byte header) are `body` in
/// `codec`, checking each one's structure and offset delta, and calls
/// `visit(offset_delta, timestamp)` for each until it breaks. At most `limit` bytes are
/// decompressed.
pub(crate) fn for_each_record(
    codec: Compression,
    body: &[u8],
    header: &BatchHeader,
    limit: usize,
    visit: impl FnMut(i32, i64) -> ControlFlow<()>,
) -> Result<(), BatchError> {
    let failed = |e: &dyn std::fmt::Display| BatchError::Decompression {
        reason: format!("{codec:?}: {e}"),
    };
    match codec {
        Compression::None => walk(&mut Slice(body), header, visit),
        Compression::Gzip => walk(
            &mut Inflating::new(flate2::read::MultiGzDecoder::new(body), limit, codec),
            header,
            visit,
        ),
        Compression::Lz4 => walk(
            &mut Inflating::new(lz4_flex::frame::FrameDecoder::new(body), limit, codec),
            header,
            visit,
        ),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| failed(&e))?;
            walk(&mut Inflating::new(decoder, limit, codec), header, visit)
        }
        Compression::Snappy => {
            let plain = snappy(body, limit).map_err(|e| e.or(&failed))?;
            walk(&mut Slice(&plain), header, visit)
        }
    }
}

/// Where a batch's record bytes come from.
trait RecordBytes {
    /// The next byte; `None` at the end.
    fn byte(&mut self) -> Result<Option<u8>, BatchError>;
    /// Skips `n` bytes; answers how many there were (fewer than `n` at the end).
    fn skip(&mut self, n: usize) -> Result<usize, BatchError>;
    /// Whether nothing is left.
    fn is_empty(&mut self) -> Result<bool, BatchError>;
    /// The varint length that starts record `index`.
    fn record_length(&mut self, index: i32) -> Result<i64, BatchError> {
        let next = || {
            self.byte()?
                .ok_or_else(|| malformed(index, "record length does not fit the batch"))
        };
        varlong(next, |reason| malformed(index, reason))
    }
    /// Calls `parse` with the next `len` bytes and consumes them, when they are at hand in
    /// one piece (always for an uncompressed batch, for most records of a compressed one);
    /// `None` (nothing consumed) when they are not.
    fn with_contiguous<T>(
        &mut self,
        len: usize,
        parse: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, BatchError>;
}

/// An uncompressed batch's records, walked in place.
struct Slice<'a>(&'a [u8]);

impl RecordBytes for Slice<'_> {
    fn record_length(&mut self, index: i32) -> Result<i64, BatchError> {
        slice_varlong(&mut self.0, index)
    }

    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        Ok(self.0.split_first().map(|(&b, rest)| {
            self.0 = rest;
            b
        }))
    }

    fn skip(&mut self, n: usize) -> Result<usize, BatchError> {
        let n = n.min(self.0.len());
        self.0 = &self.0[n..];
        Ok(n)
    }

    fn is_empty(&mut self) -> Result<bool, BatchError> {
        Ok(self.0.is_empty())
    }

    fn with_contiguous<T>(
        &mut self,
        len: usize,
        parse: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, BatchError> {
        if len > self.0.len() {
            return Ok(None);
        }
        let (record, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(Some(parse(record)))
    }
}

/// A decompressor's output, read through a small buffer and cut off after `limit` bytes.
struct Inflating<R> {
    reader: BufReader<std::io::Take<R>>,
    limit: usize,
    read: usize,
    codec: Compression,
}

/// How much decompressed data is buffered at once.
const INFLATE_BUFFER: usize = 16 * 1024;

impl<R: Read> Inflating<R> {
    fn new(decoder: R, limit: usize, codec: Compression) -> Self {
        Self {
            reader: BufReader::with_capacity(INFLATE_BUFFER, decoder.take(limit as u64 + 1)),
            limit,
            read: 0,
            codec,
        }
    }

    /// The buffered bytes, refilled when empty; an empty slice at the end.
    fn fill(&mut self) -> Result<&[u8], BatchError> {
        let codec = self.codec;
        self.reader
            .fill_buf()
            .map_err(|e| BatchError::Decompression {
                reason: format!("{codec:?}: {e}"),
            })
    }

    fn consume(&mut self, n: usize) -> Result<(), BatchError> {
        self.reader.consume(n);
        self.read += n;
        if self.read > self.limit {
            return Err(BatchError::DecompressedTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

impl<R: Read> RecordBytes for Inflating<R> {
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        let Some(&byte) = self.fill()?.first() else {
            return Ok(None);
        };
        self.consume(1)?;
        Ok(Some(byte))
    }

    fn skip(&mut self, n: usize) -> Result<usize, BatchError> {
        let mut skipped = 0;
        while skipped < n {
            let available = self.fill()?.len();
            if available == 0 {
                break;
            }
            let step = available.min(n - skipped);
            self.consume(step)?;
            skipped += step;
        }
        Ok(skipped)
    }

    fn is_empty(&mut self) -> Result<bool, BatchError> {
        Ok(self.fill()?.is_empty())
    }

    fn with_contiguous<T>(
        &mut self,
        len: usize,
        parse: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, BatchError> {
        let buffered = self.fill()?;
        if len > buffered.len() {
            return Ok(None);
        }
        let parsed = parse(&buffered[..len]);
        self.consume(len)?;
        Ok(Some(parsed))
    }
}

/// Reads a zigzag varlong off the front of `bytes`: the same as [`varlong`], without a call
/// per byte (the uncompressed path, which every produce takes).
#[inline]
fn slice_varlong(bytes: &mut &[u8], index: i32) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some((&byte, rest)) = bytes.split_first() else {
            return Err(malformed(index, "truncated varint"));
        };
        *bytes = rest;
        if shift == 63 && byte > 1 {
            return Err(malformed(index, "varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(malformed(index, "varint longer than 10 bytes"))
}

/// Reads a zigzag varlong through `next`, which answers each following byte.
fn varlong(
    mut next: impl FnMut() -> Result<u8, BatchError>,
    malformed: impl Fn(&'static str) -> BatchError,
) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = next()?;
        if shift == 63 && byte > 1 {
            return Err(malformed("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

/// Reads one record's fields, bounded by the record's length.
trait Fields {
    fn index(&self) -> i32;
    fn byte(&mut self) -> Result<u8, BatchError>;
    fn skip(&mut self, n: usize, reason: &'static str) -> Result<(), BatchError>;
    /// Whether every byte of the record was read.
    fn done(&self) -> bool;

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let index = self.index();
        varlong(|| self.byte(), |reason| malformed(index, reason))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let index = self.index();
        i32::try_from(self.varlong()?).map_err(|_| malformed(index, "varint overflows 32 bits"))
    }

    /// A length-prefixed field; -1 (null) is allowed only where `nullable`.
    fn sized(&mut self, nullable: bool, reason: &'static str) -> Result<(), BatchError> {
        match self.varint()? {
            -1 if nullable => Ok(()),
            len if len >= 0 => self.skip(len as usize, reason),
            _ => Err(malformed(self.index(), reason)),
        }
    }
}

/// A record whose bytes are at hand in one piece.
struct InPlace<'a> {
    bytes: &'a [u8],
    index: i32,
}

impl Fields for InPlace<'_> {
    #[inline]
    fn index(&self) -> i32 {
        self.index
    }

    #[inline]
    fn varlong(&mut self) -> Result<i64, BatchError> {
        slice_varlong(&mut self.bytes, self.index)
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        let (&byte, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| malformed(self.index, "field runs past the record's length"))?;
        self.bytes = rest;
        Ok(byte)
    }

    #[inline]
    fn skip(&mut self, n: usize, reason: &'static str) -> Result<(), BatchError> {
        if n > self.bytes.len() {
            return Err(malformed(self.index, reason));
        }
        self.bytes = &self.bytes[n..];
        Ok(())
    }

    fn done(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The fields of one record: its timestamp delta and offset delta, every length checked.
#[inline]
fn parse_fields(r: &mut impl Fields) -> Result<(i64, i32), BatchError> {
    let index = r.index();
    r.skip(1, "missing attributes")?;
    let timestamp_delta = r.varlong()?;
    let offset_delta = r.varint()?;
    if offset_delta != index {
        return Err(BatchError::Invalid {
            reason: format!("record {index} has offset delta {offset_delta}"),
        });
    }
    r.sized(true, "key longer than the record")?;
    r.sized(true, "value longer than the record")?;
    let headers = r.varint()?;
    if headers < 0 {
        return Err(malformed(index, "negative header count"));
    }
    for _ in 0..headers {
        r.sized(false, "header key longer than the record")?;
        r.sized(true, "header value longer than the record")?;
    }
    if !r.done() {
        return Err(malformed(
            index,
            "bytes left over after the record's fields",
        ));
    }
    Ok((timestamp_delta, offset_delta))
}

/// A record read piece by piece as it decompresses: at most `remaining` more bytes.
struct Record<'b, B> {
    bytes: &'b mut B,
    remaining: usize,
    index: i32,
}

fn malformed(index: i32, reason: &'static str) -> BatchError {
    BatchError::MalformedRecord { index, reason }
}

impl<B: RecordBytes> Fields for Record<'_, B> {
    fn index(&self) -> i32 {
        self.index
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        let index = self.index;
        if self.remaining == 0 {
            return Err(malformed(index, "field runs past the record's length"));
        }
        self.remaining -= 1;
        self.bytes
            .byte()?
            .ok_or_else(|| malformed(index, "record length does not fit the batch"))
    }

    fn skip(&mut self, n: usize, reason: &'static str) -> Result<(), BatchError> {
        if n > self.remaining {
            return Err(malformed(self.index, reason));
        }
        self.remaining -= n;
        if self.bytes.skip(n)? < n {
            return Err(malformed(
                self.index,
                "record length does not fit the batch",
            ));
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.remaining == 0
    }
}

fn walk(
    bytes: &mut impl RecordBytes,
    header: &BatchHeader,
    mut visit: impl FnMut(i32, i64) -> ControlFlow<()>,
) -> Result<(), BatchError> {
    for index in 0..header.records_count {
        let len = bytes.record_length(index)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l > 0 && i32::try_from(*l).is_ok())
            .ok_or_else(|| malformed(index, "record length does not fit the batch"))?;
        let parsed = bytes.with_contiguous(len, |record| {
            parse_fields(&mut InPlace {
                bytes: record,
                index,
            })
        })?;
        let (timestamp_delta, offset_delta) = match parsed {
            Some(fields) => fields?,
            None => parse_fields(&mut Record {
                bytes: &mut *bytes,
                remaining: len,
                index,
            })?,
        };
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(timestamp_delta)
        };
        if visit(offset_delta, timestamp).is_break() {
            return Ok(());
        }
    }
    if !bytes.is_empty()? {
        return Err(BatchError::Invalid {
            reason: "bytes left over after the last record".into(),
        });
    }
    Ok(())
}

/// A decompression failure that is either the cap or the codec's own error.
enum CappedError {
    TooLarge(usize),
    Codec(String),
}

impl CappedError {
    fn or(self, failed: &dyn Fn(&dyn std::fmt::Display) -> BatchError) -> BatchError {
        match self {
            Self::TooLarge(limit) => BatchError::DecompressedTooLarge { limit },
            Self::Codec(reason) => failed(&reason),
        }
    }
}

/// Raw or xerial-framed snappy, decompressed whole after each block's stated length is
/// checked against what `limit` leaves.
fn snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, CappedError> {
    let mut out = Vec::new();
    if input.len() < XERIAL_HEADER_LEN || &input[..8] != XERIAL_MAGIC {
        snappy_raw(input, limit, &mut out)?;
        return Ok(out);
    }
    let mut rest = &input[XERIAL_HEADER_LEN..];
    while !rest.is_empty() {
        let Some((len, after)) = rest.split_first_chunk::<4>() else {
            return Err(CappedError::Codec("truncated xerial block length".into()));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let block = after
            .get(..len)
            .ok_or_else(|| CappedError::Codec("xerial block past the end".into()))?;
        snappy_raw(block, limit.saturating_sub(out.len()), &mut out)?;
        rest = &after[len..];
    }
    Ok(out)
}

fn snappy_raw(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CappedError> {
    // The raw format states its decompressed length up front: check it before allocating.
    let len = snap::raw::decompress_len(block).map_err(|e| CappedError::Codec(e.to_string()))?;
    if len > limit {
        return Err(CappedError::TooLarge(limit));
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| CappedError::Codec(e.to_string()))?;
    Ok(())
}
