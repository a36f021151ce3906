//! Record batches (magic v2): the header layout, validation of a produced batch, and the
//! LogAppendTime rewrite.
//!
//! A batch is stored exactly as the producer sent it. Validation reads it but never
//! re-encodes it: CRC32C over everything after the CRC field, the header's sizes and counts,
//! and every record's structure (decompressing compressed batches into a buffer whose size
//! is capped, so a decompression bomb is refused rather than allocated).

use std::io::Read;
use std::ops::ControlFlow;

use bytes::{Bytes, BytesMut};

/// Bytes of the v2 batch header before the first record.
pub const HEADER_LEN: usize = 61;
/// Bytes before `partition_leader_epoch` ends: the part the log rewrites on append.
pub const PREFIX_LEN: usize = 16;
/// `base_offset` + `batch_length`: what precedes the length-counted part of a batch.
pub const LOG_OVERHEAD: usize = 12;

const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const RECORDS_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The fixed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("slice of 8"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("slice of 4"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("slice of 2"))
}

impl BatchHeader {
    /// Reads the header from the start of `bytes`; `None` if fewer than 61 bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        Some(Self {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic: bytes[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(
                bytes[CRC_OFFSET..CRC_OFFSET + 4]
                    .try_into()
                    .expect("slice of 4"),
            ),
            attributes: be_i16(bytes, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            records_count: be_i32(bytes, RECORDS_COUNT_OFFSET),
        })
    }

    /// The codec, or `None` for the reserved codes 5-7.
    pub fn compression(&self) -> Option<Compression> {
        match self.attributes & COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// The whole batch's size on disk, header included; `None` if the length is negative.
    pub fn total_len(&self) -> Option<usize> {
        usize::try_from(self.batch_length)
            .ok()
            .map(|l| l + LOG_OVERHEAD)
    }
}

/// Why a produced batch is refused. The broker maps each to a Kafka error code:
/// CORRUPT_MESSAGE for bytes that do not parse or do not match their CRC, INVALID_RECORD for
/// well-formed batches that break Kafka's rules, MESSAGE_TOO_LARGE, INVALID_TIMESTAMP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// CORRUPT_MESSAGE
    #[error("record batch is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    /// CORRUPT_MESSAGE
    #[error("record batch declares {declared} bytes but {actual} were sent")]
    LengthMismatch { declared: i64, actual: usize },
    /// INVALID_RECORD: produce requests carry exactly one batch per partition.
    #[error("a produce request must carry exactly one record batch per partition")]
    NotOneBatch,
    /// INVALID_RECORD: message formats v0 and v1 were removed in Kafka 4.
    #[error("record batch magic {magic} is not supported (only v2)")]
    UnsupportedMagic { magic: i8 },
    /// CORRUPT_MESSAGE
    #[error("record batch CRC is {stored:#010x} but its bytes hash to {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// MESSAGE_TOO_LARGE
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    /// CORRUPT_MESSAGE
    #[error("record batch uses unknown compression codec {codec}")]
    UnknownCompression { codec: i16 },
    /// CORRUPT_MESSAGE
    #[error("record batch decompresses to more than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    /// CORRUPT_MESSAGE
    #[error("record batch does not decompress: {reason}")]
    Decompression { reason: String },
    /// CORRUPT_MESSAGE
    #[error("malformed record {index}: {reason}")]
    MalformedRecord { index: i32, reason: &'static str },
    /// INVALID_RECORD
    #[error("invalid record batch: {reason}")]
    Invalid { reason: String },
    /// INVALID_TIMESTAMP
    #[error("record timestamp {timestamp} is out of the allowed range around now ({now})")]
    InvalidTimestamp { timestamp: i64, now: i64 },
}

/// Limits a produced batch is checked against.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// `max.message.bytes`: the largest batch, in bytes as sent.
    pub max_message_bytes: usize,
    /// The largest the records of a compressed batch may decompress to.
    pub max_decompressed_bytes: usize,
    /// The broker's clock, for timestamp checks and LogAppendTime.
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms`
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`
    pub timestamp_after_max_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: stamp the batch with `now_ms`.
    pub log_append_time: bool,
}

/// A batch that passed validation, ready to append.
#[derive(Debug, Clone)]
pub struct ValidatedBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl ValidatedBatch {
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
    /// The batch as it will be stored (the first 16 bytes are rewritten by the log).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// The timestamp the log records for this batch's largest record.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }
}

/// How many leading bytes of `bytes` are whole batches (a read cut at a byte budget ends
/// mid-batch; Kafka returns only the complete ones), and the header of the last of them.
pub fn complete_batches(bytes: &[u8]) -> (usize, Option<BatchHeader>) {
    let mut complete = 0;
    let mut last = None;
    while let Some(header) = BatchHeader::parse(&bytes[complete..]) {
        match header.total_len() {
            Some(len) if complete + len <= bytes.len() => {
                complete += len;
                last = Some(header);
            }
            _ => break,
        }
    }
    (complete, last)
}

/// Whether validating `records` needs decompression (expensive: run it off the async runtime).
pub fn needs_decompression(records: &[u8]) -> bool {
    BatchHeader::parse(records).is_some_and(|h| h.attributes & COMPRESSION_MASK != 0)
}

/// Validates the records of one partition of a produce request.
pub fn validate_produce_batch(
    records: Bytes,
    limits: &BatchLimits,
) -> Result<ValidatedBatch, BatchError> {
    let header = BatchHeader::parse(&records).ok_or(BatchError::TooShort { len: records.len() })?;
    let declared = i64::from(header.batch_length) + LOG_OVERHEAD as i64;
    if declared < HEADER_LEN as i64 || declared > records.len() as i64 {
        return Err(BatchError::LengthMismatch {
            declared,
            actual: records.len(),
        });
    }
    if declared < records.len() as i64 {
        return Err(BatchError::NotOneBatch);
    }
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    if records.len() > limits.max_message_bytes {
        return Err(BatchError::TooLarge {
            size: records.len(),
            max: limits.max_message_bytes,
        });
    }
    let computed = crc32c::crc32c(&records[ATTRIBUTES_OFFSET..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    if header.records_count < 1 {
        return Err(BatchError::Invalid {
            reason: "a produced batch must hold at least one record".into(),
        });
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::Invalid {
            reason: format!(
                "last offset delta {} does not match {} records",
                header.last_offset_delta, header.records_count
            ),
        });
    }
    if header.is_control() {
        return Err(BatchError::Invalid {
            reason: "clients may not produce control batches".into(),
        });
    }
    let codec = header.compression().ok_or(BatchError::UnknownCompression {
        codec: header.attributes & COMPRESSION_MASK,
    })?;
    let body = &records[HEADER_LEN..];
    // Kafka's NO_TIMESTAMP (-1) base timestamp means the producer set none: nothing to check.
    let check_timestamps = !limits.log_append_time && header.base_timestamp != -1;
    match codec {
        Compression::None => walk_records(body, &header, limits, check_timestamps)?,
        codec => {
            let plain = decompress(codec, body, limits.max_decompressed_bytes)?;
            walk_records(&plain, &header, limits, check_timestamps)?;
        }
    }
    if limits.log_append_time {
        return Ok(stamp_log_append_time(&records, limits.now_ms));
    }
    Ok(ValidatedBatch {
        header,
        bytes: records,
    })
}

/// Rewrites a batch for `message.timestamp.type=LogAppendTime`: sets the timestamp-type bit
/// and the max timestamp, which the CRC covers, so this copies the batch and recomputes it.
fn stamp_log_append_time(records: &[u8], now_ms: i64) -> ValidatedBatch {
    let mut copy = BytesMut::from(records);
    let attributes = be_i16(&copy, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    copy[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    copy[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&copy[ATTRIBUTES_OFFSET..]);
    copy[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let bytes = copy.freeze();
    let header = BatchHeader::parse(&bytes).expect("a validated batch keeps its header");
    ValidatedBatch { header, bytes }
}

/// The Java client's snappy framing ("xerial"): magic, version, compatible version, then
/// blocks of [i32 length][raw snappy].
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let failed = |e: &dyn std::fmt::Display| BatchError::Decompression {
        reason: format!("{codec:?}: {e}"),
    };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            read_capped(flate2::read::MultiGzDecoder::new(input), limit).map_err(|e| e.or(&failed))
        }
        Compression::Lz4 => {
            read_capped(lz4_flex::frame::FrameDecoder::new(input), limit).map_err(|e| e.or(&failed))
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|e| failed(&e))?;
            read_capped(decoder, limit).map_err(|e| e.or(&failed))
        }
        Compression::Snappy => {
            if input.len() >= XERIAL_HEADER_LEN && &input[..8] == XERIAL_MAGIC {
                let mut out = Vec::new();
                let mut rest = &input[XERIAL_HEADER_LEN..];
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(failed(&"truncated xerial block length"));
                    }
                    let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                    let block = rest
                        .get(4..4 + len)
                        .ok_or_else(|| failed(&"xerial block past the end"))?;
                    snappy_raw(block, limit.saturating_sub(out.len()), &mut out)
                        .map_err(|e| e.or(&failed))?;
                    rest = &rest[4 + len..];
                }
                Ok(out)
            } else {
                let mut out = Vec::new();
                snappy_raw(input, limit, &mut out).map_err(|e| e.or(&failed))?;
                Ok(out)
            }
        }
    }
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

fn read_capped(reader: impl Read, limit: usize) -> Result<Vec<u8>, CappedError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CappedError::Codec(e.to_string()))?;
    if out.len() > limit {
        return Err(CappedError::TooLarge(limit));
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

/// A cursor over record bytes that never reads past its end.
struct Cursor<'a> {
    bytes: &'a [u8],
    index: i32,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, reason: &'static str) -> BatchError {
        BatchError::MalformedRecord {
            index: self.index,
            reason,
        }
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let (&byte, rest) = self
                .bytes
                .split_first()
                .ok_or_else(|| self.malformed("truncated varint"))?;
            self.bytes = rest;
            if shift == 63 && byte > 1 {
                return Err(self.malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zigzag decoding.
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(self.malformed("varint longer than 10 bytes"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        i32::try_from(self.varlong()?).map_err(|_| self.malformed("varint overflows 32 bits"))
    }

    fn skip(&mut self, len: usize, reason: &'static str) -> Result<(), BatchError> {
        if len > self.bytes.len() {
            return Err(self.malformed(reason));
        }
        self.bytes = &self.bytes[len..];
        Ok(())
    }

    /// A length-prefixed field; -1 (null) is allowed only where `nullable`.
    fn sized(&mut self, nullable: bool, reason: &'static str) -> Result<(), BatchError> {
        match self.varint()? {
            -1 if nullable => Ok(()),
            len if len >= 0 => self.skip(len as usize, reason),
            _ => Err(self.malformed(reason)),
        }
    }
}

/// Walks every record of a batch, checking its structure and offset delta, and calls
/// `visit(offset_delta, timestamp)` for each until it breaks.
fn for_each_record(
    body: &[u8],
    header: &BatchHeader,
    mut visit: impl FnMut(i32, i64) -> ControlFlow<()>,
) -> Result<(), BatchError> {
    let mut cursor = Cursor {
        bytes: body,
        index: 0,
    };
    for index in 0..header.records_count {
        cursor.index = index;
        let len = cursor.varint()?;
        if len <= 0 || len as usize > cursor.bytes.len() {
            return Err(cursor.malformed("record length does not fit the batch"));
        }
        let (record, rest) = cursor.bytes.split_at(len as usize);
        cursor.bytes = rest;
        let mut r = Cursor {
            bytes: record,
            index,
        };
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
            return Err(r.malformed("negative header count"));
        }
        for _ in 0..headers {
            r.sized(false, "header key longer than the record")?;
            r.sized(true, "header value longer than the record")?;
        }
        if !r.bytes.is_empty() {
            return Err(r.malformed("bytes left over after the record's fields"));
        }
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(timestamp_delta)
        };
        if visit(offset_delta, timestamp).is_break() {
            return Ok(());
        }
    }
    if !cursor.bytes.is_empty() {
        return Err(BatchError::Invalid {
            reason: "bytes left over after the last record".into(),
        });
    }
    Ok(())
}

/// Walks every record of a batch, checking structure and (for CreateTime) timestamps.
fn walk_records(
    body: &[u8],
    header: &BatchHeader,
    limits: &BatchLimits,
    check_timestamps: bool,
) -> Result<(), BatchError> {
    let mut bad_timestamp = None;
    for_each_record(body, header, |_, timestamp| {
        if check_timestamps && check_timestamp(timestamp, limits).is_err() {
            bad_timestamp = Some(timestamp);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    match bad_timestamp {
        Some(timestamp) => Err(BatchError::InvalidTimestamp {
            timestamp,
            now: limits.now_ms,
        }),
        None => Ok(()),
    }
}

/// The offset and timestamp of the first record of a stored batch whose timestamp is at
/// least `target` (decompressing with `max_decompressed_bytes` as the cap).
pub fn first_record_at_or_after(
    batch: &[u8],
    target: i64,
    max_decompressed_bytes: usize,
) -> Result<Option<(i64, i64)>, BatchError> {
    let header = BatchHeader::parse(batch).ok_or(BatchError::TooShort { len: batch.len() })?;
    let end = header
        .total_len()
        .filter(|l| *l <= batch.len() && *l >= HEADER_LEN);
    let end = end.ok_or(BatchError::LengthMismatch {
        declared: i64::from(header.batch_length),
        actual: batch.len(),
    })?;
    let codec = header.compression().ok_or(BatchError::UnknownCompression {
        codec: header.attributes & COMPRESSION_MASK,
    })?;
    let body = &batch[HEADER_LEN..end];
    let plain;
    let body = match codec {
        Compression::None => body,
        codec => {
            plain = decompress(codec, body, max_decompressed_bytes)?;
            &plain[..]
        }
    };
    let mut found = None;
    for_each_record(body, &header, |delta, timestamp| {
        if timestamp >= target {
            found = Some((header.base_offset + i64::from(delta), timestamp));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

fn check_timestamp(timestamp: i64, limits: &BatchLimits) -> Result<(), BatchError> {
    let too_old = limits.now_ms.saturating_sub(timestamp) > limits.timestamp_before_max_ms;
    let too_new = timestamp.saturating_sub(limits.now_ms) > limits.timestamp_after_max_ms;
    if too_old || too_new {
        return Err(BatchError::InvalidTimestamp {
            timestamp,
            now: limits.now_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{NOW, batch, batch_with_body, compress, fix_crc, limits, record};

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn valid_batches_of_every_codec_pass_unchanged() {
        for codec in CODECS {
            let bytes = batch(&[record("a"), record("bb"), record("ccc")], codec, NOW);
            let validated = validate_produce_batch(bytes.clone(), &limits()).expect("valid");
            assert_eq!(
                validated.bytes(),
                &bytes,
                "{codec:?} batch is stored as received"
            );
            assert_eq!(validated.header().records_count, 3);
        }
    }

    #[test]
    fn java_style_xerial_snappy_is_accepted() {
        let mut body = b"\x82SNAPPY\x00".to_vec();
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        let records = [record("x"), record("y")];
        let plain = {
            // The same records, framed as xerial blocks.
            let whole = batch(&records, Compression::None, NOW);
            whole[HEADER_LEN..].to_vec()
        };
        let block = compress(Compression::Snappy, &plain);
        body.extend_from_slice(&(block.len() as u32).to_be_bytes());
        body.extend_from_slice(&block);
        let bytes = batch_with_body(2, Compression::Snappy, NOW, &body, &records);
        validate_produce_batch(bytes, &limits()).expect("xerial snappy");
    }

    #[test]
    fn a_flipped_byte_fails_the_crc() {
        let mut bytes = batch(&[record("a")], Compression::None, NOW).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            validate_produce_batch(Bytes::from(bytes), &limits()),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn truncated_batches_and_two_batches_are_refused() {
        let bytes = batch(&[record("a")], Compression::None, NOW);
        for cut in [0, 10, HEADER_LEN, bytes.len() - 1] {
            let err = validate_produce_batch(bytes.slice(..cut), &limits()).expect_err("truncated");
            assert!(
                matches!(
                    err,
                    BatchError::TooShort { .. } | BatchError::LengthMismatch { .. }
                ),
                "{cut}: {err}"
            );
        }
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes);
        assert_eq!(
            validate_produce_batch(Bytes::from(two), &limits()).expect_err("two"),
            BatchError::NotOneBatch
        );
    }

    #[test]
    fn old_magic_is_refused() {
        let mut bytes = batch(&[record("a")], Compression::None, NOW).to_vec();
        bytes[MAGIC_OFFSET] = 1;
        assert_eq!(
            validate_produce_batch(Bytes::from(bytes), &limits()).expect_err("magic"),
            BatchError::UnsupportedMagic { magic: 1 }
        );
    }

    #[test]
    fn a_record_count_that_does_not_match_the_records_is_refused() {
        let mut bytes = batch(&[record("a"), record("b")], Compression::None, NOW).to_vec();
        bytes[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&3i32.to_be_bytes());
        bytes[23..27].copy_from_slice(&2i32.to_be_bytes());
        fix_crc(&mut bytes);
        assert!(validate_produce_batch(Bytes::from(bytes), &limits()).is_err());
    }

    #[test]
    fn a_batch_over_max_message_bytes_is_too_large() {
        let bytes = batch(&[record(&"x".repeat(2000))], Compression::None, NOW);
        let small = BatchLimits {
            max_message_bytes: 1000,
            ..limits()
        };
        assert!(matches!(
            validate_produce_batch(bytes, &small),
            Err(BatchError::TooLarge { max: 1000, .. })
        ));
    }

    #[test]
    fn a_decompression_bomb_is_refused_without_inflating_it() {
        for codec in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let records = [record(&"z".repeat(4 << 20))];
            let bytes = batch(&records, codec, NOW);
            let capped = BatchLimits {
                max_message_bytes: 64 << 20,
                max_decompressed_bytes: 1 << 20,
                ..limits()
            };
            assert_eq!(
                validate_produce_batch(bytes, &capped).expect_err("bomb"),
                BatchError::DecompressedTooLarge { limit: 1 << 20 },
                "{codec:?}"
            );
        }
    }

    #[test]
    fn garbage_in_a_compressed_batch_is_a_decompression_error() {
        let bytes = batch_with_body(
            1,
            Compression::Gzip,
            NOW,
            b"not gzip at all",
            &[record("a")],
        );
        assert!(matches!(
            validate_produce_batch(bytes, &limits()),
            Err(BatchError::Decompression { .. })
        ));
    }

    #[test]
    fn timestamps_too_far_in_the_future_are_invalid() {
        let bytes = batch(&[record("a")], Compression::None, NOW + 7_200_000);
        let bounded = BatchLimits {
            timestamp_after_max_ms: 3_600_000,
            ..limits()
        };
        assert!(matches!(
            validate_produce_batch(bytes, &bounded),
            Err(BatchError::InvalidTimestamp { .. })
        ));
        let old = batch(&[record("a")], Compression::None, NOW - 10_000);
        let strict = BatchLimits {
            timestamp_before_max_ms: 5_000,
            ..limits()
        };
        assert!(matches!(
            validate_produce_batch(old, &strict),
            Err(BatchError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn log_append_time_stamps_the_batch_and_keeps_its_crc_valid() {
        let bytes = batch(&[record("a")], Compression::Lz4, NOW - 5);
        let stamped = validate_produce_batch(
            bytes,
            &BatchLimits {
                log_append_time: true,
                ..limits()
            },
        )
        .expect("valid");
        assert!(stamped.header().is_log_append_time());
        assert_eq!(stamped.header().max_timestamp, NOW);
        assert_eq!(
            crc32c::crc32c(&stamped.bytes()[ATTRIBUTES_OFFSET..]),
            stamped.header().crc
        );
    }

    #[test]
    fn the_first_record_at_or_after_a_timestamp_is_found_in_any_codec() {
        let mut records: Vec<_> = (0..10).map(|i| record(&i.to_string())).collect();
        for (i, r) in records.iter_mut().enumerate() {
            r.timestamp_delta = i as i64 * 10;
        }
        for codec in CODECS {
            let bytes = batch(&records, codec, NOW);
            assert_eq!(
                first_record_at_or_after(&bytes, NOW + 35, 1 << 20).expect("walk"),
                Some((4, NOW + 40))
            );
            assert_eq!(
                first_record_at_or_after(&bytes, NOW + 1000, 1 << 20).expect("walk"),
                None
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = validate_produce_batch(Bytes::from(bytes), &limits());
        }

        #[test]
        fn mutated_valid_batches_never_panic(at in 0usize..200, value in proptest::prelude::any::<u8>(), resign in proptest::prelude::any::<bool>()) {
            let mut bytes = batch(&[record("abc"), record("de")], Compression::None, NOW).to_vec();
            let at = at % bytes.len();
            bytes[at] = value;
            if resign {
                fix_crc(&mut bytes);
            }
            let _ = validate_produce_batch(Bytes::from(bytes), &limits());
        }
    }
}
