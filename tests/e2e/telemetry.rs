//! With OTEL_EXPORTER_OTLP_ENDPOINT set, request spans reach an OTLP/HTTP collector.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use strata_e2e::{BrokerProcess, server_command};

use crate::{client_runtime, create_topic};

/// A minimal OTLP/HTTP sink: answers every POST with 200 and hands over its path and body.
fn spawn_sink() -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; content_length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            if tx.send((path, body)).is_err() {
                break;
            }
        }
    });
    (endpoint, rx)
}

#[test]
fn request_spans_are_exported_over_otlp_http() {
    let (endpoint, received) = spawn_sink();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = server_command(dir.path()).expect("binary");
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    let mut broker = BrokerProcess::start(command).expect("broker starts");
    client_runtime().block_on(create_topic(&broker.bootstrap, "traced", 1, &[]));
    // SIGTERM: the ordered shutdown flushes the span exporter.
    assert!(broker.terminate().expect("stops").success());
    let mut found = false;
    while let Ok((path, body)) = received.recv_timeout(Duration::from_secs(2)) {
        assert_eq!(path, "/v1/traces");
        // Span names travel as plain strings inside the protobuf.
        let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        if has(b"kafka_request") && has(b"create_topics") {
            found = true;
            break;
        }
    }
    assert!(
        found,
        "a kafka_request span for create_topics reached the collector"
    );
}
