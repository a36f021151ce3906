//! Builds valid v2 record batches for tests and benchmarks, independently of the validation
//! code. Compiled for tests and with the `test-util` feature only.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{BatchLimits, Compression};
use crate::partition_log::LogConfig;

/// One record: key, value, headers, timestamp delta.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp_delta: i64,
}

pub fn record(value: &str) -> TestRecord {
    TestRecord {
        key: Some(b"k".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![(b"h".to_vec(), Some(b"v".to_vec()))],
        timestamp_delta: 0,
    }
}

fn varlong(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn sized(buf: &mut BytesMut, bytes: &Option<Vec<u8>>) {
    match bytes {
        None => varlong(buf, -1),
        Some(b) => {
            varlong(buf, b.len() as i64);
            buf.put_slice(b);
        }
    }
}

fn encode_records(records: &[TestRecord]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = BytesMut::new();
        body.put_u8(0);
        varlong(&mut body, r.timestamp_delta);
        varlong(&mut body, i as i64);
        sized(&mut body, &r.key);
        sized(&mut body, &r.value);
        varlong(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            sized(&mut body, &Some(k.clone()));
            sized(&mut body, v);
        }
        varlong(&mut out, body.len() as i64);
        out.put_slice(&body);
    }
    out.to_vec()
}

pub fn compress(codec: Compression, plain: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => plain.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).expect("gzip");
            e.finish().expect("gzip")
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(plain)
            .expect("snappy"),
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(plain).expect("lz4");
            e.finish().expect("lz4")
        }
        Compression::Zstd => zstd::encode_all(plain, 1).expect("zstd"),
    }
}

fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// A producer batch (base offset 0) with the given records, codec and base timestamp.
pub fn batch(records: &[TestRecord], codec: Compression, base_timestamp: i64) -> Bytes {
    batch_with_body(
        records.len() as i32,
        codec,
        base_timestamp,
        &compress(codec, &encode_records(records)),
        records,
    )
}

pub fn batch_with_body(
    count: i32,
    codec: Compression,
    base_timestamp: i64,
    body: &[u8],
    records: &[TestRecord],
) -> Bytes {
    let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32(0);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(codec_bits(codec));
    b.put_i32(count - 1);
    b.put_i64(base_timestamp);
    b.put_i64(base_timestamp + max_delta);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(body);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Re-signs a batch after a test edited its bytes.
pub fn fix_crc(bytes: &mut [u8]) {
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The broker's time in tests.
pub const NOW: i64 = 1_700_000_000_000;

/// Generous limits with no timestamp bounds.
pub fn limits() -> BatchLimits {
    BatchLimits {
        max_message_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 20,
        now_ms: NOW,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        log_append_time: false,
    }
}

/// A log that never rolls by time and never deletes, indexing every `index_interval_bytes`.
pub fn unbounded_log_config(index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 30,
        segment_ms: i64::MAX,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes,
    }
}
