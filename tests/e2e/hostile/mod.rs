//! The hostile-client suite: requests a careless or malicious client can send. Each test
//! checks that the broker stays up, bounded, and serving a real client alongside, and that
//! no client can change state that belongs to the broker or to other clients.

mod frames;
pub(crate) mod internal_state;
mod resources;

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::client_runtime;

/// A produce from a real client succeeds: the broker is up and serving.
pub(crate) fn still_serves(producer: &FutureProducer, topic: &str) {
    let delivered = client_runtime().block_on(async {
        producer
            .send(
                FutureRecord::to(topic).partition(0).key("k").payload("v"),
                Duration::from_secs(10),
            )
            .await
    });
    assert!(
        delivered.is_ok(),
        "the real client is still served: {delivered:?}"
    );
}
