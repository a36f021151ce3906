//! A raw Kafka client for tests that send exact requests: frames encoded by `kafka-protocol`
//! as a client would, over one blocking TCP connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(bootstrap: &str) -> Self {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self {
            stream,
            correlation_id: 0,
        }
    }

    /// Writes a request that expects no response (acks=0 produce).
    pub fn send_only<R: Request>(&mut self, request: &R, version: i16) {
        let frame = self.frame(request, version);
        self.stream.write_all(&frame).expect("write");
    }

    /// True once the broker has closed this connection.
    pub fn closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> BytesMut {
        self.correlation_id += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(s("versions-test")));
        header
            .encode(&mut buf, R::header_version(version))
            .expect("header");
        request.encode(&mut buf, version).expect("request");
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf
    }

    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let buf = self.frame(request, version);
        self.stream
            .write_all(&buf)
            .unwrap_or_else(|e| panic!("api {} v{version}: write: {e}", R::KEY));
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap_or_else(|e| {
            panic!(
                "api {} v{version}: the broker closed instead of answering: {e}",
                R::KEY
            )
        });
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).expect("response body");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, self.correlation_id);
        let response = R::Response::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("api {} v{version}: response does not decode: {e}", R::KEY));
        assert!(
            !body.has_remaining(),
            "api {} v{version}: response has trailing bytes",
            R::KEY
        );
        response
    }
}
