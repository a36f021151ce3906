//! This node's part in the metadata quorum: it runs a controller on its controller listener,
//! forms or joins the quorum, and registers its broker there. Metadata and DescribeCluster
//! read brokers and the cluster id from the node's own replica of the state.
//!
//! With no `--controller-quorum`, the node is a quorum of one (the embedded default). Every
//! voter initializes the quorum with the same voter list; openraft treats the second and later
//! initializations as no-ops, so no node has to be "first". A node that is not a configured
//! voter (a broker-only node, or a controller waiting to be promoted) joins as a raft learner:
//! it receives and applies the log like a voter, so its reads are just as local, but it does
//! not vote.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strata_meta::{CommandOutcome, Endpoint, MetaCommand, MetadataState, RegisterBroker};
use strata_raft::{Controller, ControllerError, NodeId};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::liveness::Registration;
use crate::metrics::Metrics;

/// How long a node waits for its replica to apply what the quorum committed.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a starting broker watches an unknown registration of its node id for a heartbeat:
/// two heartbeat intervals and a margin.
const IDENTITY_WATCH: Duration = Duration::from_secs(5);

/// A running controller and the server its peers reach it through.
pub struct ControlPlane {
    pub controller: Arc<Controller>,
    pub address: SocketAddr,
    /// One of the configured voters (else it joins as a learner).
    voter: bool,
    reconciled: Arc<watch::Sender<u64>>,
    server: JoinHandle<()>,
    stop_server: CancellationToken,
}

/// The process a broker registration announces.
#[derive(Debug, Clone, Copy)]
pub struct ProcessStart {
    pub incarnation: Uuid,
    /// See [`RegisterBroker::intact_predecessor`].
    pub intact_predecessor: Option<Uuid>,
    pub now_ms: i64,
}

impl ControlPlane {
    /// Starts this node's controller under `<data-dir>/raft` and serves it on `listener`. A
    /// voter forms (or rejoins) the quorum at once; any other node joins it as a learner in
    /// [`ControlPlane::join`].
    pub async fn start(config: &BrokerConfig, listener: TcpListener) -> Result<Self, BrokerError> {
        let address = listener.local_addr()?;
        let id = node_id(config.node_id);
        // Where to ask when no leader is known: the voters, this node too (it answers "no
        // leader yet" until an election settles, which keeps a quorum of one retrying).
        let seeds = if config.controller_quorum.is_empty() {
            vec![address.to_string()]
        } else {
            config.controller_quorum.values().cloned().collect()
        };
        let controller = Arc::new(
            Controller::start(id, &config.data_dir.join("raft"), seeds)
                .await
                .map_err(BrokerError::from)?,
        );
        let stop_server = CancellationToken::new();
        let routes = controller.routes();
        let stopping = stop_server.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, routes)
                .with_graceful_shutdown(async move { stopping.cancelled().await });
            if let Err(e) = serve.await {
                warn!(error = %e, "the controller listener failed");
            }
        });
        let voter = config.is_voter();
        if voter {
            let voters: BTreeMap<NodeId, String> = if config.controller_quorum.is_empty() {
                BTreeMap::from([(id, address.to_string())])
            } else {
                config.controller_quorum.clone()
            };
            let single = voters.len() == 1;
            let formed = controller
                .initialize(voters)
                .await
                .map_err(BrokerError::from)?;
            if single && !formed {
                // A restarted quorum of one need not wait out an election timeout.
                let _ = controller.raft.trigger().elect().await;
            }
        }
        Ok(Self {
            controller,
            address,
            voter,
            reconciled: Arc::new(watch::channel(0).0),
            server,
            stop_server,
        })
    }

    /// For a node that is not a configured voter: asks the leader to add it as a learner (or
    /// to update its address), retrying until a leader answers or `shutdown` fires. Voters
    /// are members already.
    pub async fn join(&self, shutdown: &CancellationToken) -> Result<(), BrokerError> {
        if self.voter {
            return Ok(());
        }
        loop {
            let joined = tokio::select! {
                () = shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
                joined = self.controller.join(self.address.to_string()) => joined,
            };
            match joined {
                Ok(()) => {
                    info!(address = %self.address, "joined the metadata quorum as a learner");
                    return Ok(());
                }
                Err(e) => {
                    warn!(error = %e, "no controller quorum yet; retrying the join");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Waits until this node has applied everything the quorum has committed, retrying while
    /// there is no leader, until `shutdown` fires.
    pub async fn catch_up(&self, shutdown: &CancellationToken) -> Result<(), BrokerError> {
        loop {
            let caught_up = tokio::select! {
                () = shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
                caught_up = self.controller.catch_up(CATCH_UP_TIMEOUT) => caught_up,
            };
            match caught_up {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(error = %e, "not caught up with the metadata quorum yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Refuses to register over another live process with this node id (Kafka's
    /// DuplicateBrokerRegistration). A registration under `previous` (this data directory's
    /// own earlier process, which is dead: this one holds the directory's lock) or a fenced
    /// one is free to take over. Any other is watched for a little longer than a heartbeat
    /// interval: if its heartbeat moves, its process is alive and this one must not start;
    /// if not, it is a process that died without being fenced yet (a wiped disk restarted
    /// at once). A quorum of one needs no watch: only this process writes to it.
    ///
    /// Run before [`Self::join`]: a learner joining under a live node's id would take that
    /// node's place in the quorum's replication. The registration is read from the leader.
    pub async fn check_identity_free(
        &self,
        broker_id: i32,
        previous: Option<Uuid>,
        sole_voter: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), BrokerError> {
        if sole_voter {
            return Ok(());
        }
        let Some(first) = self.live_registration(broker_id, shutdown).await? else {
            return Ok(());
        };
        if Some(first.0) == previous {
            return Ok(());
        }
        info!(
            broker_id,
            incarnation = %first.0,
            "another process registered this node id; watching whether it is alive"
        );
        let deadline = tokio::time::Instant::now() + IDENTITY_WATCH;
        while tokio::time::Instant::now() < deadline {
            tokio::select! {
                () = shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            match self.live_registration(broker_id, shutdown).await? {
                Some(now) if now == first => {}
                Some(now) if now.0 == first.0 => {
                    return Err(BrokerError::DuplicateBroker {
                        broker_id,
                        incarnation: first.0,
                    });
                }
                // Fenced, or replaced by yet another registration: registering supersedes
                // whatever that is.
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// The incarnation and last heartbeat of `broker_id`'s registration if it is not fenced,
    /// as the leader knows it; retried while no leader answers.
    async fn live_registration(
        &self,
        broker_id: i32,
        shutdown: &CancellationToken,
    ) -> Result<Option<(Uuid, i64)>, BrokerError> {
        loop {
            let asked = tokio::select! {
                () = shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
                asked = self.controller.registered_broker(broker_id) => asked,
            };
            match asked {
                Ok(record) => {
                    return Ok(record
                        .filter(|b| !b.fenced)
                        .map(|b| (b.incarnation, b.last_heartbeat_ms)));
                }
                Err(e) => {
                    warn!(error = %e, "no controller quorum yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Records the cluster id (the first node's wins) and this broker as the process
    /// `start` describes, retrying until a quorum answers or `shutdown` fires.
    pub async fn register(
        &self,
        cluster_id: &str,
        config: &BrokerConfig,
        advertised: &(String, u16),
        start: ProcessStart,
        shutdown: &CancellationToken,
    ) -> Result<Registration, BrokerError> {
        let broker_id = config.node_id;
        let incarnation = start.incarnation;
        let registration = RegisterBroker {
            broker_id,
            incarnation,
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: advertised.0.clone(),
                port: advertised.1,
            }],
            rack: config.rack.clone(),
            now_ms: start.now_ms,
            intact_predecessor: start.intact_predecessor,
            metadata_version: strata_meta::METADATA_VERSION,
        };
        let commands = [
            MetaCommand::InitCluster {
                cluster_id: cluster_id.to_string(),
            },
            MetaCommand::RegisterBroker(registration),
        ];
        let mut registered_at = 0;
        for command in commands {
            loop {
                let proposal = tokio::select! {
                    () = shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
                    proposal = self.controller.propose(command.clone()) => proposal,
                };
                match proposal {
                    Ok(committed) => match committed.response {
                        // The first node to name the cluster wins; the others adopt its id.
                        Ok(_) | Err(strata_meta::MetaError::ClusterIdMismatch { .. }) => {
                            registered_at = committed.log_index;
                            break;
                        }
                        Err(refused) => {
                            return Err(BrokerError::Registration(refused.to_string()));
                        }
                    },
                    Err(e) => {
                        warn!(error = %e, "no controller quorum yet; retrying registration");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        // Caught up: everything committed before this broker's registration is applied here.
        tokio::select! {
            () = shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
            caught_up = self.controller.wait_applied(registered_at, CATCH_UP_TIMEOUT) => caught_up?,
        }
        info!(
            broker_id,
            cluster_id = self.view().cluster_id().unwrap_or_default(),
            "broker registered with the metadata quorum"
        );
        Ok(Registration {
            broker_id,
            incarnation,
        })
    }

    /// Keeps `metrics` in step with this node's raft until the raft stops.
    pub fn spawn_metrics(&self, metrics: Arc<Metrics>) -> JoinHandle<()> {
        let controller = self.controller.clone();
        tokio::spawn(async move {
            let mut watch = controller.raft.metrics();
            let mut leader = None;
            loop {
                let current = watch.borrow_and_update().clone();
                let quorum = &metrics.quorum;
                let last_log = current.last_log_index.unwrap_or(0);
                let applied = current.last_applied.map_or(0, |id| id.index);
                quorum.term.set(gauge(current.current_term));
                quorum.last_log_index.set(gauge(last_log));
                quorum.last_applied_index.set(gauge(applied));
                quorum
                    .apply_lag
                    .set(gauge(last_log.saturating_sub(applied)));
                quorum
                    .leader
                    .set(i64::from(current.current_leader == Some(controller.id)));
                if current.current_leader != leader {
                    leader = current.current_leader;
                    quorum.leader_changes.inc();
                }
                let (live, version) = controller
                    .state
                    .read(|s| (s.live_brokers().count(), s.metadata_version()));
                quorum
                    .live_brokers
                    .set(i64::try_from(live).unwrap_or(i64::MAX));
                quorum.metadata_version.set(i64::from(version));
                if watch.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// What request handlers read: this node's replica of the metadata.
    pub fn view(&self) -> MetadataView {
        MetadataView {
            controller: self.controller.clone(),
            reconciled: self.reconciled.clone(),
        }
    }

    /// Stops the controller and its listener.
    pub async fn stop(self) {
        self.controller.shutdown().await;
        self.stop_server.cancel();
        let _ = self.server.await;
    }
}

/// A live broker as Metadata and DescribeCluster present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// Reads of the replicated metadata, answered locally without a round trip, and the way
/// request handlers change it.
#[derive(Clone)]
pub struct MetadataView {
    controller: Arc<Controller>,
    /// The applied index the hosted partitions were last brought in line with.
    reconciled: Arc<watch::Sender<u64>>,
}

/// Wakes on every metadata change applied here.
pub struct MetadataChanges {
    metrics: watch::Receiver<strata_raft::RaftMetrics>,
    applied: Option<u64>,
}

impl MetadataChanges {
    /// Waits for the applied index to move; false once the raft has stopped.
    pub async fn next(&mut self) -> bool {
        loop {
            let applied = self
                .metrics
                .borrow_and_update()
                .last_applied
                .map(|id| id.index);
            if applied != self.applied {
                self.applied = applied;
                return true;
            }
            if self.metrics.changed().await.is_err() {
                return false;
            }
        }
    }
}

impl std::fmt::Debug for MetadataView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataView")
            .field("node_id", &self.controller.id)
            .finish()
    }
}

impl MetadataView {
    /// Runs `read` on this node's replica of the metadata.
    pub fn read<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> T {
        self.controller.state.read(read)
    }

    /// Runs `read` on this node's replica once it has applied everything committed when the
    /// call was made (a ReadIndex round trip to the raft leader): for decisions that must not
    /// miss a recent commit.
    pub async fn read_latest<T>(
        &self,
        read: impl FnOnce(&MetadataState) -> T,
    ) -> Result<T, BrokerError> {
        self.controller.catch_up(CATCH_UP_TIMEOUT).await?;
        Ok(self.read(read))
    }

    /// A snapshot of the metadata as applied here now (the raft snapshot format), with the
    /// index it was taken at and what `read` answers of the same state.
    pub fn backup<T>(
        &self,
        read: impl FnOnce(&MetadataState) -> T,
    ) -> std::io::Result<(Vec<u8>, u64, T)> {
        self.controller.state.backup(read)
    }

    /// The index applied here now, with what `read` answers of the state at that index.
    pub fn at_applied<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> (u64, T) {
        self.controller.state.at_applied(read)
    }

    /// This node's raft log after `after` up to `upto`, for a backup (`None` once purged).
    pub fn log_frames(
        &self,
        after: u64,
        upto: u64,
    ) -> std::io::Result<Option<strata_raft::LogFrames>> {
        self.controller.log_frames(after, upto)
    }

    /// The index of the last command applied here.
    pub fn applied_index(&self) -> u64 {
        self.controller
            .state
            .last_applied()
            .map_or(0, |id| id.index)
    }

    /// Subscribes to applied changes.
    pub fn changes(&self) -> MetadataChanges {
        MetadataChanges {
            metrics: self.controller.raft.metrics(),
            applied: None,
        }
    }

    /// Proposes `command` and answers once the quorum committed it: its log index and the
    /// state machine's verdict, whether or not this node has applied it yet.
    pub async fn propose_committed(
        &self,
        command: MetaCommand,
    ) -> Result<(u64, Result<CommandOutcome, strata_meta::MetaError>), BrokerError> {
        let committed = self.controller.propose(command).await?;
        Ok((committed.log_index, committed.response))
    }

    /// Proposes `command` through the quorum and waits until this node has applied it, so
    /// reads here see it; a refusal comes back as [`BrokerError::Metadata`]. Answers the
    /// command's log index with its outcome.
    pub async fn propose(
        &self,
        command: MetaCommand,
    ) -> Result<(u64, CommandOutcome), BrokerError> {
        let (index, response) = self.propose_committed(command).await?;
        self.controller
            .wait_applied(index, CATCH_UP_TIMEOUT)
            .await?;
        let outcome = response.map_err(BrokerError::Metadata)?;
        Ok((index, outcome))
    }

    /// Proposes `command` and waits until this node serves its outcome: applied to the
    /// replica and to the partitions hosted here. For admin requests, so that a client asking
    /// this node next sees the change.
    pub async fn commit(&self, command: MetaCommand) -> Result<CommandOutcome, BrokerError> {
        let (index, outcome) = self.propose(command).await?;
        self.wait_reconciled(index).await;
        Ok(outcome)
    }

    /// Records that the hosted partitions reflect the metadata up to `index`.
    pub fn mark_reconciled(&self, index: u64) {
        self.reconciled.send_if_modified(|current| {
            let newer = index > *current;
            if newer {
                *current = index;
            }
            newer
        });
    }

    /// Waits (up to a bound) until the hosted partitions reflect the metadata up to `index`.
    /// Waits (a bounded time) until the hosted partitions reflect the metadata up to
    /// `index`; answers whether they do.
    pub async fn wait_reconciled(&self, index: u64) -> bool {
        let mut reconciled = self.reconciled.subscribe();
        tokio::time::timeout(CATCH_UP_TIMEOUT, reconciled.wait_for(|done| *done >= index))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// The cluster id the quorum agreed on.
    pub fn cluster_id(&self) -> Option<String> {
        self.controller
            .state
            .read(|s| s.cluster_id().map(str::to_string))
    }

    /// The brokers that are not fenced, by id, where clients reach them.
    pub fn live_brokers(&self) -> Vec<BrokerAddress> {
        self.controller.state.read(|s| {
            s.live_brokers()
                .filter_map(|b| {
                    let endpoint = b.endpoints.first()?;
                    Some(BrokerAddress {
                        id: b.broker_id,
                        host: endpoint.host.clone(),
                        port: endpoint.port,
                        rack: b.rack.clone(),
                    })
                })
                .collect()
        })
    }

    /// The metadata quorum as its leader sees it (DescribeQuorum).
    pub async fn quorum_status(&self) -> Result<strata_raft::QuorumStatus, BrokerError> {
        Ok(self.controller.leader_status().await?)
    }

    /// The controller leader's id as Kafka clients see it, or -1 while there is none.
    pub fn controller_id(&self) -> i32 {
        self.controller
            .leader()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(-1)
    }
}

/// Broker ids are non-negative `i32`s (validated with the config); raft ids are `u64`.
fn node_id(broker_id: i32) -> NodeId {
    u64::try_from(broker_id).unwrap_or_default()
}

impl From<ControllerError> for BrokerError {
    fn from(e: ControllerError) -> Self {
        Self::ControlPlane(e)
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
