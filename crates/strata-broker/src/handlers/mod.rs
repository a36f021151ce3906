//! Request dispatch: version checks, bounds checks, decoding, one handler per API, encoding.
//!
//! Nothing from the network reaches `kafka-protocol`'s decoders before
//! [`strata_wire::check_request`] has walked it and proved every length fits the bytes
//! present: those decoders pre-allocate from wire counts.

mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod find_coordinator;
mod group_admin;
mod init_producer_id;
mod list_offsets;
mod membership;
mod metadata;
mod offsets;
mod produce;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, RequestHeader, ResponseHeader,
    SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::broker::Broker;
use crate::metrics::ApiLabels;

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

fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "produce",
        ApiKey::Fetch => "fetch",
        ApiKey::ListOffsets => "list_offsets",
        ApiKey::Metadata => "metadata",
        ApiKey::ApiVersions => "api_versions",
        ApiKey::CreateTopics => "create_topics",
        ApiKey::DeleteTopics => "delete_topics",
        ApiKey::DeleteRecords => "delete_records",
        ApiKey::InitProducerId => "init_producer_id",
        ApiKey::DescribeCluster => "describe_cluster",
        ApiKey::DescribeConfigs => "describe_configs",
        ApiKey::AlterConfigs => "alter_configs",
        ApiKey::IncrementalAlterConfigs => "incremental_alter_configs",
        ApiKey::CreatePartitions => "create_partitions",
        ApiKey::OffsetCommit => "offset_commit",
        ApiKey::OffsetFetch => "offset_fetch",
        ApiKey::FindCoordinator => "find_coordinator",
        ApiKey::JoinGroup => "join_group",
        ApiKey::Heartbeat => "heartbeat",
        ApiKey::LeaveGroup => "leave_group",
        ApiKey::SyncGroup => "sync_group",
        ApiKey::DescribeGroups => "describe_groups",
        ApiKey::ListGroups => "list_groups",
        ApiKey::DeleteGroups => "delete_groups",
        ApiKey::OffsetDelete => "offset_delete",
        _ => "other",
    }
}

/// Answers one request frame; `None` when the request expects no response (acks=0).
pub async fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: std::net::SocketAddr,
    shutdown: &CancellationToken,
) -> Result<Option<Bytes>, RequestError> {
    let started = Instant::now();
    let start = strata_wire::peek_header(&frame)?;
    let api_key = ApiKey::try_from(start.api_key).map_err(|_| RequestError::UnknownApi {
        api_key: start.api_key,
    })?;
    let api = api_name(api_key);
    let supported = strata_wire::supported_range(start.api_key)
        .is_some_and(|(min, max)| (min..=max).contains(&start.api_version));
    if !supported {
        // Kafka answers an ApiVersions it cannot parse with a v0 response listing what it
        // supports, so the client can pick a version; any other API is a protocol error.
        if api_key == ApiKey::ApiVersions {
            return Ok(Some(api_versions::unsupported_version_response(
                start.correlation_id,
            )?));
        }
        return Err(RequestError::UnsupportedVersion {
            api,
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
        api,
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
    let response = async {
        match api_key {
            ApiKey::ApiVersions => {
                run::<ApiVersionsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(api_versions::handle(&ctx, r)))
                })
                .await
            }
            ApiKey::Metadata => {
                run::<MetadataRequest, _>(&ctx, body, |r| async {
                    Ok(Some(metadata::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::Produce => {
                run::<ProduceRequest, _>(&ctx, body, |r| produce::handle(&ctx, r)).await
            }
            ApiKey::Fetch => {
                run::<FetchRequest, _>(&ctx, body, |r| async {
                    Ok(Some(fetch::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::ListOffsets => {
                run::<ListOffsetsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(list_offsets::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::CreateTopics => {
                run::<CreateTopicsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(create_topics::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::DeleteTopics => {
                run::<DeleteTopicsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(delete_topics::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::DescribeCluster => {
                run::<DescribeClusterRequest, _>(&ctx, body, |r| async {
                    Ok(Some(describe_cluster::handle(&ctx, r)))
                })
                .await
            }
            ApiKey::InitProducerId => {
                run::<InitProducerIdRequest, _>(&ctx, body, |r| async {
                    Ok(Some(init_producer_id::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::DescribeConfigs => {
                run::<DescribeConfigsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(describe_configs::handle(&ctx, r)))
                })
                .await
            }
            ApiKey::AlterConfigs => {
                run::<AlterConfigsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(alter_configs::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::IncrementalAlterConfigs => {
                run::<IncrementalAlterConfigsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(alter_configs::handle_incremental(&ctx, r).await))
                })
                .await
            }
            ApiKey::DeleteRecords => {
                run::<DeleteRecordsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(delete_records::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::CreatePartitions => {
                run::<CreatePartitionsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(create_partitions::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::FindCoordinator => {
                run::<FindCoordinatorRequest, _>(&ctx, body, |r| async {
                    Ok(Some(find_coordinator::handle(&ctx, r).await))
                })
                .await
            }
            ApiKey::JoinGroup => {
                run::<JoinGroupRequest, _>(&ctx, body, |r| async {
                    Ok(Some(membership::join(&ctx, r).await))
                })
                .await
            }
            ApiKey::SyncGroup => {
                run::<SyncGroupRequest, _>(&ctx, body, |r| async {
                    Ok(Some(membership::sync(&ctx, r).await))
                })
                .await
            }
            ApiKey::Heartbeat => {
                run::<HeartbeatRequest, _>(&ctx, body, |r| async {
                    Ok(Some(membership::heartbeat(&ctx, r).await))
                })
                .await
            }
            ApiKey::LeaveGroup => {
                run::<LeaveGroupRequest, _>(&ctx, body, |r| async {
                    Ok(Some(membership::leave(&ctx, r).await))
                })
                .await
            }
            ApiKey::OffsetCommit => {
                run::<OffsetCommitRequest, _>(&ctx, body, |r| async {
                    Ok(Some(offsets::commit(&ctx, r).await))
                })
                .await
            }
            ApiKey::OffsetFetch => {
                run::<OffsetFetchRequest, _>(&ctx, body, |r| async {
                    Ok(Some(offsets::fetch(&ctx, r).await))
                })
                .await
            }
            ApiKey::OffsetDelete => {
                run::<OffsetDeleteRequest, _>(&ctx, body, |r| async {
                    Ok(Some(offsets::delete(&ctx, r).await))
                })
                .await
            }
            ApiKey::ListGroups => {
                run::<ListGroupsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(group_admin::list(&ctx, r).await))
                })
                .await
            }
            ApiKey::DescribeGroups => {
                run::<DescribeGroupsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(group_admin::describe(&ctx, r).await))
                })
                .await
            }
            ApiKey::DeleteGroups => {
                run::<DeleteGroupsRequest, _>(&ctx, body, |r| async {
                    Ok(Some(group_admin::delete(&ctx, r).await))
                })
                .await
            }
            _ => Err(RequestError::UnsupportedVersion {
                api,
                api_version: start.api_version,
            }),
        }
    }
    .instrument(span)
    .await;
    let labels = ApiLabels { api };
    broker.metrics.requests.get_or_create(&labels).inc();
    broker
        .metrics
        .request_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Decodes a request of type `R`, runs its handler and encodes the response, if any.
async fn run<R, F>(
    ctx: &RequestContext<'_>,
    mut body: Bytes,
    handler: impl FnOnce(R) -> F,
) -> Result<Option<Bytes>, RequestError>
where
    R: Request,
    F: Future<Output = Result<Option<R::Response>, RequestError>>,
{
    let version = ctx.version();
    let request = R::decode(&mut body, version).map_err(|e| RequestError::Decode {
        api: std::any::type_name::<R>(),
        api_version: version,
        reason: e.to_string(),
    })?;
    match handler(request).await? {
        Some(response) => encode_response(ctx.header.correlation_id, version, &response).map(Some),
        None => Ok(None),
    }
}

/// Encodes a length-prefixed response frame.
pub(crate) fn encode_response<T: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &T,
) -> Result<Bytes, RequestError> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, T::header_version(version))
        .and_then(|()| response.encode(&mut buf, version))
        .map_err(|e| RequestError::Internal(format!("encoding a response failed: {e}")))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| RequestError::Internal("response over 2 GiB".into()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Builds a `StrBytes` from an owned string.
pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
