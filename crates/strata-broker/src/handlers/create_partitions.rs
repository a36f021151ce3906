//! CreatePartitions: grows topics through the metadata quorum, placing the new partitions
//! like a create (or where the request's assignments say).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{RequestContext, str_bytes};

const API: &str = "create_partitions";

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        // An empty list places the new partitions like a null one does.
        let assignments = topic.assignments.filter(|a| !a.is_empty()).map(|given| {
            given
                .into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = ctx
            .broker
            .admin
            .create_partitions(&topic.name, topic.count, assignments, request.validate_only)
            .await;
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result,
            Err(e) => {
                ctx.broker.metrics.count_error(API, e.response_error());
                result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.to_string())))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
