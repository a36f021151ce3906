//! Any bytes as a produced record batch: validation must never panic or over-allocate.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_log::{BatchLimits, validate_produce_batch};

fuzz_target!(|data: &[u8]| {
    let limits = BatchLimits {
        max_message_bytes: 1 << 20,
        max_decompressed_bytes: 8 << 20,
        now_ms: 1_700_000_000_000,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        log_append_time: false,
    };
    let _ = validate_produce_batch(Bytes::copy_from_slice(data), &limits);
});
