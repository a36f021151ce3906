//! The Strata broker: Kafka request handlers over local partition logs, the connection
//! server and the admin HTTP port.
//!
//! [`run`] takes already-bound listeners (so tests bind port 0) and a cancellation token, and
//! performs the ordered shutdown when the token fires: stop accepting, drain in-flight
//! requests, stop background tasks, flush every partition.

pub mod admin_http;
pub mod broker;
pub mod clock;
pub mod config;
pub mod error;
pub mod frame_reader;
mod group_commit;
pub mod handlers;
pub mod metrics;
pub mod node_meta;
pub mod object_store_url;
pub mod partition;
pub mod producer_state;
pub mod server;
pub mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::BrokerError;

/// Runs a broker on the given listeners until `shutdown` fires, then shuts down in order.
pub async fn run(
    config: BrokerConfig,
    kafka_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let kafka_addr = kafka_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let advertised = config.advertised_address(kafka_addr);
    let drain_timeout = config.shutdown_timeout;
    let ready = Arc::new(AtomicBool::new(false));
    let admin_shutdown = CancellationToken::new();
    let (broker, tasks) = Broker::open(config, advertised.clone()).await?;
    let admin = tokio::spawn(admin_http::serve(
        admin_listener,
        broker.clone(),
        ready.clone(),
        admin_shutdown.clone(),
    ));
    // One line that scripts can parse for the bound addresses.
    info!(
        kafka = %kafka_addr,
        admin = %admin_addr,
        advertised = %format!("{}:{}", advertised.0, advertised.1),
        node_id = broker.config.node_id,
        "strata listening"
    );
    ready.store(true, Ordering::Release);
    server::serve(
        kafka_listener,
        broker.clone(),
        shutdown.clone(),
        drain_timeout,
    )
    .await;

    let started = Instant::now();
    ready.store(false, Ordering::Release);
    tasks.shutdown().await;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "background tasks stopped"
    );
    let flushing = broker.clone();
    tokio::task::spawn_blocking(move || flushing.flush_all())
        .await
        .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "partitions flushed"
    );
    admin_shutdown.cancel();
    let _ = admin.await;
    Ok(())
}
