//! The cost of the bounds walk next to the decode it protects. `cargo bench -p strata-wire`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName, produce_request};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// A Produce v9 request for 16 partitions with a 64 KiB batch each.
fn produce_frame() -> Bytes {
    let partitions = (0..16)
        .map(|i| {
            produce_request::PartitionProduceData::default()
                .with_index(i)
                .with_records(Some(Bytes::from(vec![7u8; 65536])))
        })
        .collect();
    let topic = produce_request::TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("bench")))
        .with_partition_data(partitions);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(9)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, ProduceRequest::header_version(9))
        .expect("header");
    request.encode(&mut buf, 9).expect("body");
    buf.freeze()
}

fn decode(c: &mut Criterion) {
    let frame = produce_frame();
    let mut group = c.benchmark_group("produce_v9_16x64KiB");
    group.bench_function("check_request", |b| {
        b.iter(|| strata_wire::check_request(black_box(&frame)).expect("valid"))
    });
    group.bench_function("check_and_decode", |b| {
        b.iter(|| {
            strata_wire::check_request(&frame).expect("valid");
            let mut body = frame.clone();
            RequestHeader::decode(&mut body, ProduceRequest::header_version(9)).expect("header");
            black_box(ProduceRequest::decode(&mut body, 9).expect("body"))
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
