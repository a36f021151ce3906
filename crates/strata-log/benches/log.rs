//! Hot-path micro benchmarks of the local log: batch validation, append, offset lookup and a
//! read of a hot segment. `cargo bench -p strata-log`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use strata_log::test_util::{NOW, batch, limits, record, unbounded_log_config};

use strata_log::{Compression, PartitionLog, SegmentFiles, validate_produce_batch};

/// A ~1 MiB producer batch: 1000 records of 1 KiB.
fn big_batch(codec: Compression) -> bytes::Bytes {
    let value = "x".repeat(1024);
    let records: Vec<_> = (0..1000).map(|_| record(&value)).collect();
    batch(&records, codec, NOW)
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_produce_batch");
    let limits = strata_log::BatchLimits {
        max_message_bytes: 4 << 20,
        max_decompressed_bytes: 4 << 20,
        ..limits()
    };
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let bytes = big_batch(codec);
        group.throughput(Throughput::Bytes(1000 * 1024));
        group.bench_function(format!("{codec:?}_1000x1KiB"), |b| {
            b.iter(|| validate_produce_batch(black_box(bytes.clone()), &limits).expect("valid"))
        });
    }
    group.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(
        dir.path(),
        unbounded_log_config(4096),
        Arc::new(SegmentFiles::new(64)),
    )
    .expect("open");
    let small: Vec<_> = (0..16).map(|_| record(&"y".repeat(1024))).collect();
    let batch =
        validate_produce_batch(batch(&small, Compression::None, NOW), &limits()).expect("valid");
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(batch.bytes().len() as u64));
    group.bench_function("16x1KiB_batch_to_page_cache", |b| {
        b.iter(|| log.append(black_box(&batch), 0, NOW).expect("append"))
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(
        dir.path(),
        unbounded_log_config(4096),
        Arc::new(SegmentFiles::new(64)),
    )
    .expect("open");
    let records: Vec<_> = (0..16).map(|_| record(&"z".repeat(1024))).collect();
    let batch =
        validate_produce_batch(batch(&records, Compression::None, NOW), &limits()).expect("valid");
    for _ in 0..20_000 {
        log.append(&batch, 0, NOW).expect("append");
    }
    let end = log.log_end_offset();
    let mut group = c.benchmark_group("read");
    group.bench_function("offset_lookup_in_a_320MiB_segment", |b| {
        let mut offset = 0;
        b.iter(|| {
            offset = (offset + 7919) % end;
            black_box(
                log.read_plan(offset, i64::MAX, 1 << 20, true)
                    .expect("plan"),
            )
        })
    });
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("1MiB_fetch_from_a_hot_segment", |b| {
        let mut offset = 0;
        b.iter_batched(
            || {
                offset = (offset + 7919) % (end - 2000);
                log.read_plan(offset, i64::MAX, 1 << 20, true)
                    .expect("plan")
            },
            |plan| black_box(plan.execute().expect("read")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, validation, append, reads);
criterion_main!(benches);
