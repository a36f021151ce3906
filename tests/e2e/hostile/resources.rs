//! What one client can make the broker hold: memory for a fetch or a compressed batch,
//! connections, and requests that never finish. Each is bounded, and a real client connected
//! alongside keeps being served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_e2e::{BrokerProcess, server_command};

use super::still_serves;
use crate::raw::{Client, s};
use crate::{client_runtime, create_topic, metric, producer};

/// A broker process with `settings` (Kafka names) in its config file.
fn broker_with(dir: &tempfile::TempDir, settings: &str) -> BrokerProcess {
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, settings).expect("config");
    let mut command = server_command(&dir.path().join("data")).expect("strata binary");
    command.arg("--config").arg(&config);
    BrokerProcess::start(command).expect("broker")
}

/// The broker's peak resident memory so far, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Produces `count` records of `size` bytes to partition 0 of `topic`; answers the producer.
fn fill(bootstrap: &str, topic: &str, count: usize, size: usize) -> FutureProducer {
    let producer = producer(bootstrap, &[("linger.ms", "20"), ("batch.size", "1000000")]);
    client_runtime().block_on(async {
        let value = vec![b'x'; size];
        let sends = (0..count).map(|_| {
            producer.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(30),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.expect("delivered");
        }
    });
    producer
}

fn fetch_everything(topic: &str) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(i32::MAX),
                ]),
        ])
}

#[test]
fn a_fetch_asking_for_everything_gets_at_most_fetch_max_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with(&dir, "\"fetch.max.bytes\" = 2097152\n");
    client_runtime().block_on(create_topic(&broker.bootstrap, "big", 1, &[]));
    let producer = fill(&broker.bootstrap, "big", 800, 10_000);
    let response = Client::connect(&broker.bootstrap).send(&fetch_everything("big"), 12);
    let records = response.responses[0].partitions[0]
        .records
        .as_ref()
        .expect("records");
    assert!(
        !records.is_empty() && records.len() <= 2 * 1024 * 1024,
        "8 MB stored, 2 MiB allowed, {} returned",
        records.len()
    );
    still_serves(&producer, "big");
}

/// One gzip batch of a single record whose value is `inflated` zero bytes: a few hundred KiB
/// on the wire.
fn gzip_bomb(inflated: usize) -> Bytes {
    fn varint(buf: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            buf.push((z as u8) | 0x80);
            z >>= 7;
        }
        buf.push(z as u8);
    }
    let mut fields = vec![0u8]; // attributes
    varint(&mut fields, 0); // timestamp delta
    varint(&mut fields, 0); // offset delta
    varint(&mut fields, -1); // no key
    varint(&mut fields, inflated as i64); // the value's length; its bytes follow
    let mut record_len = Vec::new();
    varint(&mut record_len, (fields.len() + inflated + 1) as i64);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&record_len).expect("gzip");
    gzip.write_all(&fields).expect("gzip");
    let zeros = vec![0u8; 1 << 20];
    let mut left = inflated;
    while left > 0 {
        let n = left.min(zeros.len());
        gzip.write_all(&zeros[..n]).expect("gzip");
        left -= n;
    }
    gzip.write_all(&[0]).expect("gzip"); // no headers
    let body = gzip.finish().expect("gzip");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32(0);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(1); // gzip
    b.put_i32(0);
    b.put_i64(now);
    b.put_i64(now);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(1);
    b.put_slice(&body);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

#[test]
fn decompression_bombs_are_checked_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with(&dir, "");
    client_runtime().block_on(create_topic(&broker.bootstrap, "bombed", 1, &[]));
    let pid = broker.child.id();
    let before = peak_rss(pid);
    // Past the 256 MiB the broker will inflate at all: refused, after inflating as far.
    let bomb = gzip_bomb(300 << 20);
    assert!(
        bomb.len() < 1 << 20,
        "fits max.message.bytes: {}",
        bomb.len()
    );
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("bombed")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bomb)),
                ]),
        ]);
    let answers = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..8)
            .map(|_| {
                let produce = produce.clone();
                let bootstrap = broker.bootstrap.clone();
                scope.spawn(move || {
                    let response = Client::connect(&bootstrap).send(&produce, 9);
                    response.responses[0].partition_responses[0].error_code
                })
            })
            .collect();
        senders
            .into_iter()
            .map(|s| s.join().expect("sender"))
            .collect::<Vec<_>>()
    });
    for code in answers {
        assert_eq!(code, ResponseError::CorruptMessage.code(), "refused");
    }
    let grown = peak_rss(pid).saturating_sub(before);
    println!(
        "peak RSS grew by {} MiB while 8 bombs were checked",
        grown >> 20
    );
    // Each inflated whole would cost 300 MiB; streamed, the check holds a few KiB.
    assert!(grown < 150 << 20, "peak RSS grew by {} MiB", grown >> 20);
    still_serves(&producer(&broker.bootstrap, &[]), "bombed");
}

/// Opens a connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: &str) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let source: SocketAddr = format!("{from}:0").parse().expect("address");
    socket.bind(&source.into())?;
    let target: SocketAddr = to.parse().expect("address");
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// Whether the broker closes `stream` (EOF or reset) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_connection_flood_and_stalled_requests_cannot_lock_clients_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with(
        &dir,
        "\"max.connections.per.ip\" = 20\n\
         \"connections.max.idle.ms\" = 3000\n\
         \"strata.socket.request.timeout.ms\" = 1000\n",
    );
    client_runtime().block_on(create_topic(&broker.bootstrap, "alive", 1, &[]));
    // A flood from one address: beyond its 20 connections, each is closed as accepted.
    let mut flood: Vec<TcpStream> = (0..60)
        .filter_map(|_| connect_from("127.0.0.2", &broker.bootstrap).ok())
        .collect();
    let mut refused = 0;
    for stream in &mut flood {
        if closed_within(stream, Duration::from_millis(500)) {
            refused += 1;
        }
    }
    assert!(refused >= 40, "{refused} of 60 refused");
    // Clients from elsewhere are served meanwhile.
    let producer = producer(&broker.bootstrap, &[]);
    still_serves(&producer, "alive");

    // A request that starts and never finishes is cut off, and so is a silent connection.
    let mut slow = connect_from("127.0.0.3", &broker.bootstrap).expect("connect");
    slow.write_all(&1000i32.to_be_bytes()).expect("prefix");
    slow.write_all(&[0, 3, 0, 1]).expect("a few bytes");
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(15)),
        "the slow request is cut off"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut idle = connect_from("127.0.0.3", &broker.bootstrap).expect("connect");
    assert!(
        closed_within(&mut idle, Duration::from_secs(15)),
        "the idle connection is closed"
    );
    // The idle flood is gone too: the address may connect again.
    drop(flood);
    let mut again = connect_from("127.0.0.2", &broker.bootstrap).expect("connect");
    assert!(
        !closed_within(&mut again, Duration::from_millis(500)),
        "a fresh connection is accepted"
    );
    still_serves(&producer, "alive");
}

#[test]
fn a_client_that_never_reads_its_response_is_disconnected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with(
        &dir,
        "\"fetch.max.bytes\" = 33554432\n\
         \"strata.socket.write.timeout.ms\" = 3000\n",
    );
    client_runtime().block_on(create_topic(&broker.bootstrap, "unread", 1, &[]));
    let producer = fill(&broker.bootstrap, "unread", 300, 100_000);
    let active = || metric(&broker.admin, "strata_kafka_connections_active");
    let before = active();
    // Ask for 30 MB and never read it: more than the socket buffers take.
    let mut stalled = TcpStream::connect(&broker.bootstrap).expect("connect");
    let mut request = BytesMut::new();
    request.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(1)
        .with_request_api_version(12)
        .with_correlation_id(1);
    use kafka_protocol::protocol::Encodable;
    header.encode(&mut request, 2).expect("header");
    fetch_everything("unread")
        .encode(&mut request, 12)
        .expect("fetch");
    let len = (request.len() - 4) as i32;
    request[..4].copy_from_slice(&len.to_be_bytes());
    stalled.write_all(&request).expect("send");
    let counted = Instant::now() + Duration::from_secs(3);
    while active() <= before {
        assert!(Instant::now() < counted, "the connection was never counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while active() > before {
        assert!(
            Instant::now() < deadline,
            "the stalled connection (and its response) is still held"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    still_serves(&producer, "unread");
    drop(stalled);
}
