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
pub mod config_view;
pub mod control_plane;
pub mod error;
pub mod frame_reader;
mod group_commit;
pub mod handlers;
mod legacy_topics;
mod liveness;
pub mod metrics;
pub mod node_meta;
pub mod object_store_url;
pub mod partition;
pub mod producer_ids;
pub mod producer_state;
pub mod reconciler;
pub mod server;
pub mod topic_admin;
pub mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use broker::Broker;
pub use config::BrokerConfig;
use control_plane::ControlPlane;
pub use error::BrokerError;
use producer_ids::ProducerIds;

/// The sockets a node serves, bound by the caller (so port 0 works and errors come early).
pub struct Listeners {
    pub kafka: TcpListener,
    pub admin: TcpListener,
    /// Where the node's controller serves its peers (raft RPCs, forwarded proposals).
    pub controller: TcpListener,
}

/// Runs a node on the given listeners until `shutdown` fires, then shuts down in order.
pub async fn run(
    config: BrokerConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let Listeners {
        kafka: kafka_listener,
        admin: admin_listener,
        controller: controller_listener,
    } = listeners;
    let kafka_addr = kafka_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let advertised = config.advertised_address(kafka_addr);
    let drain_timeout = config.shutdown_timeout;
    let ready = Arc::new(AtomicBool::new(false));
    let admin_shutdown = CancellationToken::new();
    let control_plane = ControlPlane::start(&config, controller_listener).await?;
    let producer_ids = ProducerIds::new(control_plane.controller.clone(), config.node_id);
    let (broker, tasks) = Broker::open(
        config,
        advertised.clone(),
        control_plane.view(),
        producer_ids,
    )
    .await?;
    // Ends by itself when the controller stops.
    let _quorum_metrics = control_plane.spawn_metrics(broker.metrics.clone());
    let admin = tokio::spawn(admin_http::serve(
        admin_listener,
        broker.clone(),
        ready.clone(),
        admin_shutdown.clone(),
    ));
    // One line that scripts can parse for the bound addresses, logged before joining the
    // quorum: the other voters may still be starting.
    info!(
        kafka = %kafka_addr,
        admin = %admin_addr,
        controller = %control_plane.address,
        advertised = %format!("{}:{}", advertised.0, advertised.1),
        node_id = broker.config.node_id,
        "strata listening"
    );
    let registration = control_plane
        .register(
            broker.node.cluster_id(),
            broker.config.node_id,
            &advertised,
            broker.clock.now_ms(),
            &shutdown,
        )
        .await?;
    let liveness = liveness::spawn(
        control_plane.controller.clone(),
        registration,
        broker.clock.clone(),
        shutdown.clone(),
    );
    legacy_topics::adopt(
        &broker.config.data_dir,
        broker.config.node_id,
        &broker.metadata,
    )
    .await?;
    let hosted = reconciler::first_pass(&broker).await?;
    let reconciler = reconciler::spawn(broker.clone(), hosted, shutdown.clone());
    broker
        .producer_ids
        .adopt_local_ids(broker.node.legacy_producer_id_end())
        .await?;
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
    let _ = reconciler.await;
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
    let _ = liveness.await;
    control_plane.stop().await;
    admin_shutdown.cancel();
    let _ = admin.await;
    Ok(())
}
