//! Kafka wire handling that must happen before any decoder allocates: framing limits, the
//! bounds pre-pass over requests, and the table of API versions the broker serves.
//!
//! `kafka-protocol` 0.18 pre-allocates arrays from the count on the wire (a 14-byte request
//! claiming 0x7fffffff elements aborts the process) and panics on frames shorter than a
//! header. [`check_request`] walks a request by Kafka's message specs and refuses it unless
//! every length fits the bytes actually present, so only bounded requests reach the crate.
//! No runtime and no I/O here.

pub mod client;
mod cursor;
pub mod embedded;
mod frame;
mod schema;
mod walk;

pub use frame::{FrameError, frame_length};
pub use walk::{MAX_REQUEST_ELEMENTS, RequestStart, check_request, peek_header};

/// Why a request was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("request truncated in {field}: needs {needed} bytes, {remaining} remain")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("{field} claims length {len} but {remaining} bytes remain")]
    BadLength {
        field: &'static str,
        len: i64,
        remaining: usize,
    },
    #[error("malformed varint in {field}")]
    BadVarint { field: &'static str },
    #[error("tagged field {field} declared {declared} bytes but left {extra} unread")]
    TaggedSizeMismatch {
        field: &'static str,
        declared: usize,
        extra: usize,
    },
    #[error("{field} takes the request past {max} array elements")]
    TooManyElements { field: &'static str, max: usize },
    #[error("{what} does not decode: {reason}")]
    Undecodable { what: &'static str, reason: String },
    #[error("api key {api_key} version {api_version} is not a request Kafka defines")]
    UnsupportedApi { api_key: i16, api_version: i16 },
}

/// The versions Kafka defines for a request (what [`check_request`] can walk), if Kafka
/// defines it. Which of them a broker serves is the broker's choice.
pub fn request_versions(api_key: i16) -> Option<(i16, i16)> {
    schema::schema_for(api_key).map(|s| (s.min, s.max))
}

#[cfg(test)]
mod tests;
