//! InitProducerId for idempotent producers (transactions come later).
//!
//! Without a transactional id, Kafka always answers a fresh producer id at epoch 0, whatever
//! id and epoch the request names: bumping the epoch of a named id would let any client
//! fence another's producer.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::warn;

use super::RequestContext;
use crate::error::BrokerError;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        return response.with_error_code(BrokerError::TransactionsUnsupported.code());
    }
    // KIP-360's fields come as a pair: both set, or neither.
    if (request.producer_id.0 == -1) != (request.producer_epoch == -1) {
        return response
            .with_error_code(kafka_protocol::error::ResponseError::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match ctx.broker.producer_ids.allocate().await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "producer id allocation failed");
            response
                .with_error_code(e.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
