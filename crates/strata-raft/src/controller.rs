//! One node's membership in the metadata quorum: its raft, its replica of the state, and
//! the way it proposes commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use serde::{Deserialize, Serialize};
use strata_meta::MetaCommand;
use tracing::{Instrument, debug, info, info_span};

use crate::network::{HttpNetwork, raft_routes};
use crate::{LogStore, MetaResponse, Node, NodeId, Raft, StateMachineStore, StateReader};

/// How long [`Controller::propose`] keeps trying while leadership is moving.
const PROPOSE_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("opening the raft storage: {0}")]
    Io(String),
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("raft stopped: {0}")]
    Fatal(String),
    #[error("this node is not the controller leader; the leader is {leader:?} at {address:?}")]
    NotLeader {
        leader: Option<NodeId>,
        address: Option<String>,
    },
    #[error("no controller leader answered within {PROPOSE_DEADLINE:?}: {last}")]
    NoLeader { last: String },
}

impl From<std::io::Error> for ControllerError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// The quorum's timing: heartbeats every 250 ms and an election after 1–2 s without one,
/// loose enough for an fsync per append on a slow disk, tight enough that clients notice a
/// dead controller within seconds. Snapshots every 1000 entries, sent in 1 MiB chunks.
fn raft_config() -> Result<Arc<openraft::Config>, ControllerError> {
    let config = openraft::Config {
        cluster_name: "strata".into(),
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        install_snapshot_timeout: 5000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    };
    Ok(Arc::new(
        config
            .validate()
            .map_err(|e| ControllerError::Config(e.to_string()))?,
    ))
}

/// A command the quorum committed: its place in the log, and the state machine's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed {
    pub log_index: u64,
    pub response: MetaResponse,
}

/// A running member of the quorum.
pub struct Controller {
    pub id: NodeId,
    pub raft: Raft,
    pub state: StateReader,
    /// Forwards proposals to the leader.
    client: reqwest::Client,
}

impl Controller {
    /// Opens this node's raft storage under `dir` (recovering it) and starts its raft. Peers
    /// reach it through [`crate::raft_routes`] served on its controller listener.
    pub async fn start(id: NodeId, dir: &Path) -> Result<Self, ControllerError> {
        let log = LogStore::open(&dir.join("log"))?;
        let state_machine = StateMachineStore::open(&dir.join("state"))?;
        let state = state_machine.reader();
        let raft = Raft::new(
            id,
            raft_config()?,
            HttpNetwork::default(),
            log,
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::Fatal(e.to_string()))?;
        Ok(Self {
            id,
            raft,
            state,
            client: reqwest::Client::new(),
        })
    }

    /// Everything this node serves its peers: raft RPCs and forwarded proposals
    /// (`/meta/write`).
    pub fn routes(self: &Arc<Self>) -> Router {
        raft_routes(self.raft.clone()).merge(
            Router::new()
                .route("/meta/write", post(forwarded_write))
                .with_state(self.clone()),
        )
    }

    /// Forms a new quorum of `voters` (id → controller address) and answers true; a node
    /// whose quorum already exists (a restart) is left as it is and answers false.
    pub async fn initialize(
        &self,
        voters: BTreeMap<NodeId, String>,
    ) -> Result<bool, ControllerError> {
        // Asking an initialized raft to initialize again is refused (and logged as an error
        // by openraft), so a restart skips it.
        if self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::Fatal(e.to_string()))?
        {
            return Ok(false);
        }
        let members: BTreeMap<NodeId, Node> = voters
            .into_iter()
            .map(|(id, addr)| (id, Node { addr }))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                info!(node_id = self.id, "formed a new metadata quorum");
                Ok(true)
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(ControllerError::Fatal(e.to_string())),
        }
    }

    /// Proposes `command` and waits until it is committed and applied here; the answer says
    /// whether the state machine took it. Only the leader can propose.
    pub async fn write(&self, command: MetaCommand) -> Result<Committed, ControllerError> {
        let span = info_span!(
            "raft_write",
            node_id = self.id,
            index = tracing::field::Empty
        );
        async {
            match self.raft.client_write(command).await {
                Ok(response) => {
                    tracing::Span::current().record("index", response.log_id.index);
                    Ok(Committed {
                        log_index: response.log_id.index,
                        response: response.data,
                    })
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    Err(ControllerError::NotLeader {
                        leader: forward.leader_id,
                        address: forward.leader_node.map(|n| n.addr),
                    })
                }
                Err(e) => Err(ControllerError::Fatal(e.to_string())),
            }
        }
        .instrument(span)
        .await
    }

    /// Proposes `command` through whichever controller leads, from any node: locally when
    /// this node leads, else forwarded to the leader, retrying while leadership moves.
    ///
    /// A retry after a lost answer can apply a command twice. Commands are made so that a
    /// repeat is harmless (a registration of the same incarnation) or recognisable (a
    /// repeated create answers `TopicAlreadyExists` for the topic id the caller chose).
    pub async fn propose(&self, command: MetaCommand) -> Result<Committed, ControllerError> {
        let started = Instant::now();
        let mut last = ControllerError::NotLeader {
            leader: None,
            address: None,
        };
        while started.elapsed() < PROPOSE_DEADLINE {
            let attempt = match &last {
                ControllerError::NotLeader {
                    address: Some(address),
                    leader: Some(leader),
                } if *leader != self.id => self.forward(address, &command).await,
                _ => self.write(command.clone()).await,
            };
            match attempt {
                Err(e @ (ControllerError::NotLeader { .. } | ControllerError::NoLeader { .. })) => {
                    debug!(error = %e, "proposal not taken yet; retrying");
                    last = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
        Err(ControllerError::NoLeader {
            last: last.to_string(),
        })
    }

    async fn forward(
        &self,
        address: &str,
        command: &MetaCommand,
    ) -> Result<Committed, ControllerError> {
        let unreachable = |e: reqwest::Error| ControllerError::NoLeader {
            last: format!("forwarding to {address}: {e}"),
        };
        self.client
            .post(format!("http://{address}/meta/write"))
            .timeout(PROPOSE_DEADLINE)
            .json(command)
            .send()
            .await
            .map_err(unreachable)?
            .json::<Result<Committed, ControllerError>>()
            .await
            .map_err(unreachable)?
    }

    /// Waits until this node's replica has applied the log up to `log_index`, so a read here
    /// sees a command committed elsewhere.
    pub async fn wait_applied(
        &self,
        log_index: u64,
        timeout: Duration,
    ) -> Result<(), ControllerError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(log_index), "the local replica catches up")
            .await
            .map(drop)
            .map_err(|e| ControllerError::NoLeader {
                last: e.to_string(),
            })
    }

    /// The current controller leader, as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Stops this node's raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// A proposal forwarded by another node: written here if this node leads.
async fn forwarded_write(
    State(controller): State<Arc<Controller>>,
    Json(command): Json<MetaCommand>,
) -> Json<Result<Committed, ControllerError>> {
    Json(controller.write(command).await)
}
