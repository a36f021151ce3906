//! The Strata broker: Kafka request handlers over local partition logs, the connection
//! server and the admin HTTP port.
//!
//! [`run`] takes already-bound listeners (so tests bind port 0) and a cancellation token, and
//! performs the ordered shutdown when the token fires: stop accepting, drain in-flight
//! requests, stop background tasks, flush every partition.

mod admin_http;
mod blocking;
mod broker;
mod clock;
pub mod config;
mod config_view;
mod control_plane;
mod coordinator;
mod data_dir_lock;
pub mod error;
mod fetch_sessions;
mod frame_reader;
mod groups;
mod handlers;
mod health;
mod last_run;
mod leader_balance;
mod leader_state;
mod lease;
mod legacy_topics;
mod liveness;
mod metrics;
mod node;
mod node_meta;
mod partition;
mod periodic;
pub mod process;
mod producer_ids;
mod producer_snapshots;
mod producer_state;
mod quorum_chores;
mod reconciler;
mod replica;
mod response;
mod retention;
mod server;
mod supervisor;
#[cfg(test)]
mod testing;
mod tiering;
mod topic_admin;
mod topics;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use broker::Broker;
pub use config::BrokerConfig;
use control_plane::ControlPlane;
pub use error::BrokerError;
use health::Health;
use metrics::Metrics;

/// The sockets a node serves, bound by the caller (so port 0 works and errors come early).
pub struct Listeners {
    /// Where Kafka clients connect; `None` on a controller-only node.
    pub kafka: Option<TcpListener>,
    pub admin: TcpListener,
    /// Where the node's controller serves its peers (raft RPCs, leader requests).
    pub controller: TcpListener,
}

/// Runs a node on the given listeners until `shutdown` fires, then shuts down in order.
pub async fn run(
    config: BrokerConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let Listeners {
        kafka,
        admin: admin_listener,
        controller: controller_listener,
    } = listeners;
    if config.roles.broker != kafka.is_some() {
        return Err(BrokerError::Setup(
            "a node serves Kafka clients exactly when it has the broker role".into(),
        ));
    }
    // Before anything under the data directory is read or written.
    let _lock = data_dir_lock::DataDirLock::acquire(&config.data_dir)?;
    let admin_addr = admin_listener.local_addr()?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let admin_shutdown = CancellationToken::new();
    // First, so a node that takes long to start (or never does) says why on /readyz.
    let admin = tokio::spawn(admin_http::serve(
        admin_listener,
        metrics.clone(),
        health.clone(),
        admin_shutdown.clone(),
    ));
    let listeners = NodeListeners {
        kafka,
        controller: controller_listener,
        admin_addr,
    };
    let started = run_node(config, listeners, metrics, &health, &shutdown).await;
    admin_shutdown.cancel();
    let _ = admin.await;
    started
}

/// The listeners a node runs on, once the admin port serves.
struct NodeListeners {
    kafka: Option<TcpListener>,
    controller: TcpListener,
    admin_addr: std::net::SocketAddr,
}

/// Everything after the lock and the admin port: the quorum, then the node's role, then the
/// ordered stop.
async fn run_node(
    config: BrokerConfig,
    listeners: NodeListeners,
    metrics: Arc<Metrics>,
    health: &Arc<Health>,
    shutdown: &CancellationToken,
) -> Result<(), BrokerError> {
    let NodeListeners {
        kafka,
        controller: controller_listener,
        admin_addr,
    } = listeners;
    if !config.controller_quorum.is_empty() && config.object_store_is_node_local() {
        tracing::warn!(
            url = %config.object_store_url,
            "this node is part of a multi-node quorum but tiers into its own data directory: give every node the same --object-store, or tiered data will not be readable after a leadership change"
        );
    }
    let object_store = open_object_store(&config, &metrics)?;
    strata_objects::check_credentials(&config.object_store_url)
        .await
        .map_err(|e| BrokerError::ObjectStoreUrl(Arc::new(e)))?;
    let restored = if config.roles.broker {
        health.phase("restoring the metadata backup, if the data directory is empty");
        tiering::metadata_backup::restore_if_empty(&config, &object_store).await?
    } else {
        false
    };
    health.phase("starting the metadata quorum");
    let control_plane = ControlPlane::start(&config, controller_listener).await?;
    // Ends by itself when the controller stops.
    let _quorum_metrics = control_plane.spawn_metrics(metrics.clone());
    // Stops the node's own tasks when it fails before `shutdown` fires.
    let stopping = shutdown.child_token();
    let fencer = config.roles.controller.then(|| {
        let clock = Arc::new(clock::SystemClock);
        liveness::spawn_fencer(control_plane.controller.clone(), clock, stopping.clone())
    });
    let chores = config.roles.controller.then(|| {
        let settings = quorum_chores::StaticSettings {
            min_insync_replicas: config.static_min_isr(),
            unclean_leader_election: config.topic_defaults.unclean_leader_election(),
        };
        quorum_chores::spawn(
            control_plane.controller.clone(),
            settings,
            metrics.replication.unclean_elections.clone(),
            stopping.clone(),
        )
    });
    let balancer = config
        .roles
        .controller
        .then(|| {
            leader_balance::spawn(
                control_plane.controller.clone(),
                &config.replication,
                stopping.clone(),
            )
        })
        .flatten();
    let outcome = match kafka {
        Some(kafka) => {
            let node = node::BrokerNode {
                control_plane: &control_plane,
                object_store,
                metrics,
                health,
                restored,
                shutdown: &stopping,
            };
            node.run(config, kafka, admin_addr).await
        }
        None => run_controller_only(&config, &control_plane, admin_addr, health, &stopping).await,
    };
    health.phase("stopping");
    stopping.cancel();
    if let Some(fencer) = fencer {
        let _ = fencer.await;
    }
    if let Some(balancer) = balancer {
        let _ = balancer.await;
    }
    if let Some(chores) = chores {
        let _ = chores.await;
    }
    control_plane.stop().await;
    outcome
}

/// The object store `--object-store` names, behind the standard layers (and the configured
/// fault injection, if any, under them).
fn open_object_store(
    config: &BrokerConfig,
    metrics: &Metrics,
) -> Result<Arc<dyn object_store::ObjectStore>, BrokerError> {
    let backend = strata_objects::open_backend(&config.object_store_url)
        .map_err(|e| BrokerError::ObjectStoreUrl(Arc::new(e)))?;
    let backend: Arc<dyn object_store::ObjectStore> = match &config.object_store_faults {
        Some(plan) => Arc::new(strata_objects::Layered::new(
            backend,
            strata_objects::Faults(plan.clone()),
        )),
        None => backend,
    };
    Ok(strata_objects::decorate(
        backend,
        strata_objects::StoreSettings::default(),
        metrics.object_store.clone(),
    ))
}

/// A controller-only node: it votes, fences silent brokers while it leads, and serves its
/// admin port; it is ready once it has caught up with the quorum.
async fn run_controller_only(
    config: &BrokerConfig,
    control_plane: &ControlPlane,
    admin_addr: std::net::SocketAddr,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<(), BrokerError> {
    info!(
        kafka = "none",
        admin = %admin_addr,
        controller = %control_plane.address,
        node_id = config.node_id,
        roles = "controller",
        "strata listening"
    );
    health.phase("joining the metadata quorum");
    control_plane.join(shutdown).await?;
    health.phase("catching up with the metadata quorum");
    control_plane.catch_up(shutdown).await?;
    health.serving();
    shutdown.cancelled().await;
    Ok(())
}
