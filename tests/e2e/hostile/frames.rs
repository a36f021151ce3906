//! Malformed frames: each gets its connection answered or closed, and a real client
//! connected alongside keeps being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata_e2e::InProcessBroker;

use super::still_serves;
use crate::{client_runtime, create_topic, producer};

fn connect(bootstrap: &str) -> TcpStream {
    let stream = TcpStream::connect(bootstrap).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

/// True when the broker closed the connection (EOF or reset) instead of answering.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// api key, version, correlation id, null client id.
fn header(api_key: i16, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&7i32.to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn send_and_expect_close(bootstrap: &str, bytes: &[u8], what: &str) {
    let mut stream = connect(bootstrap);
    // The broker may close before reading everything: a failed write is a close too.
    if stream.write_all(bytes).is_ok() {
        assert!(
            closed_by_broker(&mut stream),
            "{what}: the connection is closed"
        );
    }
}

#[test]
fn malformed_requests_close_only_their_connection() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "alive", 1, &[]));
    let producer = producer(&broker.bootstrap, &[("linger.ms", "0")]);
    still_serves(&producer, "alive");

    // The 14-byte Metadata v1 request that claims 0x7fffffff topics.
    let mut body = header(3, 1);
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(body.len(), 14);
    send_and_expect_close(&broker.bootstrap, &frame(&body), "huge array count");
    still_serves(&producer, "alive");

    // Produce v3 claiming 0x7fffffff topics.
    let mut body = header(0, 3);
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    send_and_expect_close(
        &broker.bootstrap,
        &frame(&body),
        "produce with a huge topic count",
    );

    // A frame cut short, then the connection half-closed.
    let mut stream = connect(&broker.bootstrap);
    stream.write_all(&100i32.to_be_bytes()).expect("write");
    stream.write_all(&header(3, 1)).expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert!(closed_by_broker(&mut stream), "truncated frame");

    // Length prefixes that lie: over the limit, negative.
    send_and_expect_close(
        &broker.bootstrap,
        &0x4000_0000i32.to_be_bytes(),
        "1 GiB prefix",
    );
    send_and_expect_close(&broker.bootstrap, &(-5i32).to_be_bytes(), "negative prefix");
    // Shorter than a request header.
    send_and_expect_close(
        &broker.bootstrap,
        &frame(&[0, 3]),
        "frame shorter than a header",
    );

    // Unknown API key, unsupported version.
    send_and_expect_close(
        &broker.bootstrap,
        &frame(&header(999, 0)),
        "unknown api key",
    );
    send_and_expect_close(
        &broker.bootstrap,
        &frame(&header(3, 99)),
        "unsupported metadata version",
    );

    // Strings whose lengths run past the end of the frame.
    let mut body = header(3, 1);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&3000i16.to_be_bytes());
    body.extend_from_slice(b"abc");
    send_and_expect_close(
        &broker.bootstrap,
        &frame(&body),
        "string longer than the frame",
    );
    still_serves(&producer, "alive");

    // Random bytes, with valid and invalid framing.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0574_7a7a);
    for _ in 0..200 {
        let len = rng.random_range(0..300);
        let garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let bytes = if rng.random_bool(0.5) {
            frame(&garbage)
        } else {
            garbage
        };
        let mut stream = connect(&broker.bootstrap);
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    still_serves(&producer, "alive");
}

#[test]
fn an_api_versions_request_of_an_unknown_version_gets_a_v0_answer() {
    let broker = InProcessBroker::start().expect("broker");
    let mut stream = connect(&broker.bootstrap);
    stream.write_all(&frame(&header(18, 99))).expect("write");
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .expect("a response, not a close");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("response body");
    assert_eq!(
        i32::from_be_bytes(body[0..4].try_into().expect("4 bytes")),
        7,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().expect("2 bytes")),
        35,
        "UNSUPPORTED_VERSION"
    );
    let api_count = i32::from_be_bytes(body[6..10].try_into().expect("4 bytes"));
    assert!(api_count >= 9, "the supported APIs are listed");
}
