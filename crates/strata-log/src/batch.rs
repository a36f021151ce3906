//! Record batches (magic v2): the header layout, validation of a produced batch, and the
//! LogAppendTime rewrite.
//!
//! A batch is stored exactly as the producer sent it. Validation reads it but never
//! re-encodes it: CRC32C over everything after the CRC field, the header's sizes and counts,
//! and every record's structure (decompressing compressed batches into a buffer whose size
//! is capped, so a decompression bomb is refused rather than allocated).
//!
//! Timestamps are the producer's claim, checked as Kafka's `LogValidator` does: every record's
//! timestamp (base + delta; -1 is "none") against `message.timestamp.*.max.ms`, and the
//! header's max timestamp, which retention and time lookups trust, recomputed from the
//! records. A batch whose header claims another maximum is rewritten with the true one (a
//! copy and a new CRC; well-behaved clients never pay it).

use std::ops::ControlFlow;

use bytes::{Bytes, BytesMut};

use crate::records::for_each_record;

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

/// How many leading bytes of `bytes` are whole batches that end below `end_offset` (a read
/// cut at a byte budget ends mid-batch, and one of the log's tail may reach past what is
/// committed; Kafka returns only the complete, committed ones), and the header of the last
/// of them.
pub fn complete_batches(bytes: &[u8], end_offset: i64) -> (usize, Option<BatchHeader>) {
    let mut complete = 0;
    let mut last = None;
    while let Some(header) = BatchHeader::parse(&bytes[complete..]) {
        match header.total_len() {
            Some(len) if complete + len <= bytes.len() && header.last_offset() < end_offset => {
                complete += len;
                last = Some(header);
            }
            _ => break,
        }
    }
    (complete, last)
}

/// Splits records a follower fetched from its leader into whole batches, each checked as
/// a follower must before storing it byte for byte: magic v2, a length within the bytes, a
/// CRC that matches, an offset range. Records are not decompressed (the leader validated
/// them) and offsets and epochs are the leader's. A trailing partial batch (a byte budget
/// cut it) is left out, as clients leave it out.
pub fn validate_replicated_batches(records: &Bytes) -> Result<Vec<ValidatedBatch>, BatchError> {
    let mut batches = Vec::new();
    let mut at = 0;
    while let Some(header) = BatchHeader::parse(&records[at..]) {
        let declared = i64::from(header.batch_length) + LOG_OVERHEAD as i64;
        if declared < HEADER_LEN as i64 {
            return Err(BatchError::LengthMismatch {
                declared,
                actual: records.len() - at,
            });
        }
        let len = usize::try_from(declared).expect("a positive batch length fits usize");
        if at + len > records.len() {
            break;
        }
        if header.magic != 2 {
            return Err(BatchError::UnsupportedMagic {
                magic: header.magic,
            });
        }
        let bytes = records.slice(at..at + len);
        let computed = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        if header.base_offset < 0 || header.last_offset_delta < 0 {
            return Err(BatchError::Invalid {
                reason: format!(
                    "a replicated batch at {} with last offset delta {} is not an offset range",
                    header.base_offset, header.last_offset_delta
                ),
            });
        }
        batches.push(ValidatedBatch { header, bytes });
        at += len;
    }
    Ok(batches)
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
    if header.is_log_append_time() && !limits.log_append_time {
        // The broker stamps LogAppendTime; a producer claiming it would choose the
        // timestamp retention trusts.
        return Err(BatchError::InvalidTimestamp {
            timestamp: header.max_timestamp,
            now: limits.now_ms,
        });
    }
    let max_timestamp = walk_records(codec, &records[HEADER_LEN..], &header, limits)?;
    if limits.log_append_time {
        return Ok(restamp(&records, limits.now_ms, TIMESTAMP_TYPE_BIT));
    }
    if max_timestamp != header.max_timestamp {
        return Ok(restamp(&records, max_timestamp, 0));
    }
    Ok(ValidatedBatch {
        header,
        bytes: records,
    })
}

/// Rewrites a batch's max timestamp (and sets `attributes_bits`): for
/// `message.timestamp.type=LogAppendTime`, or a header whose maximum the records contradict.
/// The CRC covers both fields, so this copies the batch and recomputes it.
fn restamp(records: &[u8], max_timestamp: i64, attributes_bits: i16) -> ValidatedBatch {
    let mut copy = BytesMut::from(records);
    let attributes = be_i16(&copy, ATTRIBUTES_OFFSET) | attributes_bits;
    copy[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    copy[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&copy[ATTRIBUTES_OFFSET..]);
    copy[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let bytes = copy.freeze();
    let header = BatchHeader::parse(&bytes).expect("a validated batch keeps its header");
    ValidatedBatch { header, bytes }
}

/// Kafka's NO_TIMESTAMP: a record whose producer set none.
const NO_TIMESTAMP: i64 = -1;

/// Walks every record of a batch, checking structure and (for CreateTime) every record's
/// timestamp; answers the largest timestamp (-1 when no record has one).
fn walk_records(
    codec: Compression,
    body: &[u8],
    header: &BatchHeader,
    limits: &BatchLimits,
) -> Result<i64, BatchError> {
    let mut bad_timestamp = None;
    let mut max_timestamp = NO_TIMESTAMP;
    let limit = limits.max_decompressed_bytes;
    for_each_record(codec, body, header, limit, |_, timestamp| {
        if timestamp == NO_TIMESTAMP || limits.log_append_time {
            return ControlFlow::Continue(());
        }
        if check_timestamp(timestamp, limits).is_err() {
            bad_timestamp = Some(timestamp);
            return ControlFlow::Break(());
        }
        max_timestamp = max_timestamp.max(timestamp);
        ControlFlow::Continue(())
    })?;
    match bad_timestamp {
        Some(timestamp) => Err(BatchError::InvalidTimestamp {
            timestamp,
            now: limits.now_ms,
        }),
        None => Ok(max_timestamp),
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
    let mut found = None;
    for_each_record(
        codec,
        body,
        &header,
        max_decompressed_bytes,
        |delta, timestamp| {
            if timestamp >= target {
                found = Some((header.base_offset + i64::from(delta), timestamp));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        },
    )?;
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
    use crate::test_util::{
        NOW, TestRecord, batch, batch_with_body, compress, fix_crc, limits, record,
    };

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

    /// `bytes` with its header's max timestamp set to `max`, re-signed.
    fn claiming_max(bytes: Bytes, max: i64) -> Bytes {
        let mut edited = bytes.to_vec();
        edited[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max.to_be_bytes());
        fix_crc(&mut edited);
        Bytes::from(edited)
    }

    #[test]
    fn the_max_timestamp_is_recomputed_from_the_records_not_trusted() {
        let records = [
            record("a"),
            TestRecord {
                timestamp_delta: 7,
                ..record("b")
            },
        ];
        for codec in [Compression::None, Compression::Zstd] {
            let lying = claiming_max(batch(&records, codec, NOW), i64::MAX);
            let valid = validate_produce_batch(lying, &limits()).expect("valid");
            assert_eq!(valid.max_timestamp(), NOW + 7, "{codec:?}");
            let stored = valid.bytes();
            assert_eq!(
                crc32c::crc32c(&stored[ATTRIBUTES_OFFSET..]),
                BatchHeader::parse(stored).expect("header").crc,
                "the rewritten batch is signed again"
            );
        }
        // An honest header is stored as sent, without a copy.
        let honest = batch(&records, Compression::None, NOW);
        let valid = validate_produce_batch(honest.clone(), &limits()).expect("valid");
        assert_eq!(valid.bytes().as_ptr(), honest.as_ptr());
    }

    #[test]
    fn records_of_a_batch_without_a_base_timestamp_are_still_checked() {
        // Base -1 (NO_TIMESTAMP), but a delta puts the record ten hours ahead.
        let ahead = TestRecord {
            timestamp_delta: NOW + 36_000_000 + 1,
            ..record("a")
        };
        let bounded = BatchLimits {
            timestamp_after_max_ms: 3_600_000,
            ..limits()
        };
        assert!(matches!(
            validate_produce_batch(batch(&[ahead], Compression::None, -1), &bounded),
            Err(BatchError::InvalidTimestamp { .. })
        ));
        // Records with no timestamp at all pass, and so does their maximum of -1.
        let none = claiming_max(batch(&[record("a")], Compression::None, -1), i64::MAX);
        let valid = validate_produce_batch(none, &bounded).expect("valid");
        assert_eq!(valid.max_timestamp(), -1);
    }

    #[test]
    fn a_producer_cannot_claim_log_append_time() {
        let mut bytes = batch(&[record("a")], Compression::None, NOW).to_vec();
        let attributes = be_i16(&bytes, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
        bytes[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        bytes[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&i64::MAX.to_be_bytes());
        fix_crc(&mut bytes);
        assert!(matches!(
            validate_produce_batch(Bytes::from(bytes), &limits()),
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
