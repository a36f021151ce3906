//! DescribeCluster: this node is the whole cluster until the control plane arrives.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{RequestContext, str_bytes};

/// KIP-919: endpoint type 1 means brokers (2 would mean controllers).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = ctx.broker;
    let (host, port) = &broker.advertised;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.node.cluster_id()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.config.node_id))
                .with_host(str_bytes(host.clone()))
                .with_port(i32::from(*port)),
        ]);
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS && ctx.version() >= 1 {
        response = response
            .with_error_code(kafka_protocol::error::ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints can be described")))
            .with_brokers(Vec::new());
    }
    response.with_endpoint_type(ENDPOINT_TYPE_BROKERS)
}
