//! Request dispatch: version checks, bounds checks, decoding, one handler per API, encoding.
//!
//! Nothing from the network reaches `kafka-protocol`'s decoders before
//! [`strata_wire::check_request`] has walked it and proved every length fits the bytes
//! present: those decoders pre-allocate from wire counts.

mod alter_configs;
mod api_versions;
pub mod apis;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_quorum;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod group_admin;
mod init_producer_id;
mod list_offsets;
mod membership;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
mod reassignments;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::broker::Broker;
use crate::metrics::ApiLabels;
use crate::response::{Response, Splices};

/// Why a request could not be answered; each closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Bounds(#[from] strata_wire::BoundsError),
    #[error("unknown api key {api_key}")]
    UnknownApi { api_key: i16 },
    #[error("unsupported version {api_version} of {api}")]
    UnsupportedVersion { api: &'static str, api_version: i16 },
    #[error("could not decode {api} v{api_version}: {reason}")]
    Decode {
        api: &'static str,
        api_version: i16,
        reason: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// Kafka closes an acks=0 producer's connection when a produce fails, since the producer
    /// gets no response: the reconnect makes it refresh metadata.
    #[error("acks=0 produce failed: {error}")]
    FailedWithoutAcks { error: &'static str },
}

/// What every handler knows about the request it serves.
#[derive(Debug)]
pub struct RequestContext<'a> {
    pub broker: &'a Arc<Broker>,
    pub header: &'a RequestHeader,
    pub shutdown: &'a CancellationToken,
    /// The client's address (DescribeGroups reports it as the member's host).
    pub peer: std::net::SocketAddr,
}

impl RequestContext<'_> {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Answers one request frame; `None` when the request expects no response (acks=0).
pub async fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: std::net::SocketAddr,
    shutdown: &CancellationToken,
) -> Result<Option<Response>, RequestError> {
    let started = Instant::now();
    let start = strata_wire::peek_header(&frame)?;
    let api_key = ApiKey::try_from(start.api_key).map_err(|_| RequestError::UnknownApi {
        api_key: start.api_key,
    })?;
    let Some(api) = apis::served(api_key) else {
        return Err(RequestError::UnsupportedVersion {
            api: "other",
            api_version: start.api_version,
        });
    };
    if !api.serves(start.api_version) {
        // Kafka answers an ApiVersions it cannot parse with a v0 response listing what it
        // supports, so the client can pick a version; any other API is a protocol error.
        if api_key == ApiKey::ApiVersions {
            return Ok(Some(api_versions::unsupported_version_response(
                start.correlation_id,
            )?));
        }
        return Err(RequestError::UnsupportedVersion {
            api: api.name,
            api_version: start.api_version,
        });
    }
    strata_wire::check_request(&frame)?;

    let mut body = frame;
    let header_version = api_key.request_header_version(start.api_version);
    let header =
        RequestHeader::decode(&mut body, header_version).map_err(|e| RequestError::Decode {
            api: "request_header",
            api_version: header_version,
            reason: e.to_string(),
        })?;
    let span = info_span!(
        "kafka_request",
        api = api.name,
        version = start.api_version,
        correlation_id = start.correlation_id,
        client_id = header
            .client_id
            .as_ref()
            .map(StrBytes::as_str)
            .unwrap_or(""),
        node_id = broker.config.node_id,
    );
    let ctx = RequestContext {
        broker,
        header: &header,
        shutdown,
        peer,
    };
    let response = apis::route(&ctx, api, body).instrument(span).await;
    let labels = ApiLabels { api: api.name };
    broker.metrics.requests.get_or_create(&labels).inc();
    broker
        .metrics
        .request_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Decodes a request of type `R`, runs its handler and encodes the response, if any, with
/// the file ranges the handler's splices name sent from their files.
async fn run<R, F>(
    ctx: &RequestContext<'_>,
    mut body: Bytes,
    handler: impl FnOnce(R) -> F,
) -> Result<Option<Response>, RequestError>
where
    R: Request,
    F: Future<Output = Result<Option<(R::Response, Splices)>, RequestError>>,
{
    let version = ctx.version();
    let request = R::decode(&mut body, version).map_err(|e| RequestError::Decode {
        api: std::any::type_name::<R>(),
        api_version: version,
        reason: e.to_string(),
    })?;
    match handler(request).await? {
        Some((response, splices)) => {
            crate::response::encode(ctx.header.correlation_id, version, &response, &splices)
                .map(Some)
        }
        None => Ok(None),
    }
}

/// Builds a `StrBytes` from an owned string.
pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
