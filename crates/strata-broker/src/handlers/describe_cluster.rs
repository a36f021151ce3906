//! DescribeCluster: the live brokers and the cluster id from this node's metadata replica.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{RequestContext, str_bytes};

/// KIP-919: endpoint type 1 means brokers (2 would mean controllers).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let metadata = &ctx.broker.metadata;
    let brokers = metadata
        .live_brokers()
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(metadata.cluster_id().unwrap_or_default()))
        .with_controller_id(BrokerId(metadata.controller_id()))
        .with_brokers(brokers);
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS && ctx.version() >= 1 {
        response = response
            .with_error_code(kafka_protocol::error::ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints can be described")))
            .with_brokers(Vec::new());
    }
    response.with_endpoint_type(ENDPOINT_TYPE_BROKERS)
}
