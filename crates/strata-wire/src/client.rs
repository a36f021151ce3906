//! The client side of one exchange, for whoever sends requests (a follower fetching from its
//! leader, the CLI): a request framed with its header, and a response checked against the
//! request it answers. No I/O: callers own their sockets.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Why an exchange failed on our side of the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("the request does not encode: {0}")]
    Encode(String),
    #[error("the response does not decode: {0}")]
    Decode(String),
    #[error("the response answers correlation id {got}, not {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("a {len}-byte response is more than the {max} bytes allowed")]
    TooLarge { len: usize, max: usize },
}

/// `request` at `version` with its header, behind the 4-byte length prefix.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
) -> Result<Bytes, ExchangeError> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)))
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| ExchangeError::Encode(e.to_string()))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| ExchangeError::Encode(e.to_string()))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| ExchangeError::Encode("the request is over 2 GiB".into()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// The body length a response's 4-byte prefix announces, if it is within `max`.
pub fn response_length(prefix: [u8; 4], max: usize) -> Result<usize, ExchangeError> {
    let len = i32::from_be_bytes(prefix);
    let len = usize::try_from(len).map_err(|_| ExchangeError::Decode(format!("length {len}")))?;
    if len > max {
        return Err(ExchangeError::TooLarge { len, max });
    }
    Ok(len)
}

/// The response to the request of `correlation_id` sent at `version`, from its body (the
/// bytes after the length prefix).
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, ExchangeError> {
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .map_err(|e| ExchangeError::Decode(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(ExchangeError::Correlation {
            expected: correlation_id,
            got: header.correlation_id,
        });
    }
    R::Response::decode(&mut body, version).map_err(|e| ExchangeError::Decode(e.to_string()))
}
