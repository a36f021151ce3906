//! One node's membership in the metadata quorum: its raft, its replica of the state, and
//! the way it proposes commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use strata_meta::MetaCommand;
use tracing::{Instrument, info, info_span};

use crate::network::HttpNetwork;
use crate::{LogStore, MetaResponse, Node, NodeId, Raft, StateMachineStore, StateReader};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("opening the raft storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("raft stopped: {0}")]
    Fatal(String),
    #[error("this node is not the controller leader; the leader is {leader:?} at {address:?}")]
    NotLeader {
        leader: Option<NodeId>,
        address: Option<String>,
    },
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

/// A running member of the quorum.
pub struct Controller {
    pub id: NodeId,
    pub raft: Raft,
    pub state: StateReader,
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
        Ok(Self { id, raft, state })
    }

    /// Forms a new quorum of `voters` (id → controller address). A node whose quorum already
    /// exists (a restart) is left as it is.
    pub async fn initialize(
        &self,
        voters: BTreeMap<NodeId, String>,
    ) -> Result<(), ControllerError> {
        let members: BTreeMap<NodeId, Node> = voters
            .into_iter()
            .map(|(id, addr)| (id, Node { addr }))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                info!(node_id = self.id, "formed a new metadata quorum");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ControllerError::Fatal(e.to_string())),
        }
    }

    /// Proposes `command` and waits until it is committed and applied here; the answer says
    /// whether the state machine took it. Only the leader can propose.
    pub async fn write(&self, command: MetaCommand) -> Result<MetaResponse, ControllerError> {
        let span = info_span!(
            "raft_write",
            node_id = self.id,
            index = tracing::field::Empty
        );
        async {
            match self.raft.client_write(command).await {
                Ok(response) => {
                    tracing::Span::current().record("index", response.log_id.index);
                    Ok(response.data)
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

    /// The current controller leader, as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Stops this node's raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
