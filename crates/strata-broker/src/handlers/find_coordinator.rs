//! FindCoordinator: the broker leading a group's `__consumer_offsets` partition, for one key
//! (v0–3) or a batch of keys (v4+). The topic is created on first use.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strata_meta::NO_LEADER;

use super::{RequestContext, str_bytes};
use crate::groups::OFFSETS_TOPIC;

const API: &str = "find_coordinator";
/// Kafka's key types: consumer groups, transactions, share groups.
const KEY_TYPE_GROUP: i8 = 0;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys = if ctx.version() >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let found = if request.key_type == KEY_TYPE_GROUP {
            locate(ctx, &key).await
        } else {
            // Transaction and share-group coordinators come with those features.
            Err(ResponseError::CoordinatorNotAvailable)
        };
        let coordinator = Coordinator::default().with_key(key);
        coordinators.push(match found {
            Ok((node_id, host, port)) => coordinator
                .with_node_id(BrokerId(node_id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port)),
            Err(error) => {
                ctx.broker.metrics.count_error(API, error);
                coordinator
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(error.to_string())))
            }
        });
    }
    if ctx.version() >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let one = coordinators.pop().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(one.error_code)
        .with_error_message(one.error_message)
        .with_node_id(one.node_id)
        .with_host(one.host)
        .with_port(one.port)
}

/// The live broker leading the group's partition.
async fn locate(
    ctx: &RequestContext<'_>,
    key: &StrBytes,
) -> Result<(i32, String, u16), ResponseError> {
    if key.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let broker = ctx.broker;
    let index = broker.groups.ensure_partition_for(key).await?;
    broker
        .groups
        .wait_loaded(index, std::time::Duration::from_secs(2))
        .await;
    let leader = broker.metadata.read(|state| {
        state
            .topic_by_name(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
            .map_or(NO_LEADER, |p| p.leader)
    });
    broker
        .metadata
        .live_brokers()
        .into_iter()
        .find(|b| b.id == leader)
        .map(|b| (b.id, b.host, b.port))
        .ok_or(ResponseError::CoordinatorNotAvailable)
}
