//! One node's membership in the metadata quorum: its raft, its replica of the state, and
//! the way it proposes commands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::{ChangeMembers, Membership};
use serde::{Deserialize, Serialize};
use strata_meta::MetaCommand;
use tracing::{Instrument, info, info_span, warn};

use crate::leader::{
    Committed, LEADER_DEADLINE, LeaderAnswer, LeaderClient, LeaderRequest, QuorumStatus,
};
use crate::network::{HttpNetwork, raft_routes};
use crate::{LogStore, Node, NodeId, Raft, StateMachineStore, StateReader};

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
    #[error("no controller leader answered within {LEADER_DEADLINE:?}: {last}")]
    NoLeader { last: String },
    #[error("membership change refused: {0}")]
    Membership(String),
}

impl From<std::io::Error> for ControllerError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// The quorum's timing: heartbeats every 250 ms and an election after 1–2 s without one,
/// loose enough for an fsync per append on a slow disk, tight enough that clients notice a
/// dead controller within seconds. Snapshots every 1000 entries (and by size, see
/// [`snapshot_by_size`]), sent in 1 MiB chunks; a snapshot purges the log but for the last
/// [`ENTRIES_KEPT_AFTER_SNAPSHOT`], which a follower just behind can still fetch.
/// Entries a snapshot leaves in the log.
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 16;

/// Log bytes after the last snapshot that bring the next one, whatever the entry count: a
/// manifest commit can be tens of KiB, so counting entries alone lets the log (held in
/// memory too) grow without bound.
pub(crate) const LOG_BYTES_BEFORE_SNAPSHOT: u64 = 8 << 20;

/// Asks for a snapshot whenever the log after the last one passes
/// [`LOG_BYTES_BEFORE_SNAPSHOT`]; once per snapshot, until the raft stops.
async fn snapshot_by_size(raft: Raft, log: LogStore) {
    let mut metrics = raft.metrics();
    let mut asked_after: Option<Option<u64>> = None;
    while metrics.changed().await.is_ok() {
        let snapshot = metrics.borrow_and_update().snapshot.map(|id| id.index);
        if asked_after == Some(snapshot) || log.bytes_after(snapshot) < LOG_BYTES_BEFORE_SNAPSHOT {
            continue;
        }
        asked_after = Some(snapshot);
        if let Err(e) = raft.trigger().snapshot().await {
            warn!(error = %e, "could not ask for a snapshot of the metadata");
        }
    }
}

fn raft_config() -> Result<Arc<openraft::Config>, ControllerError> {
    let config = openraft::Config {
        cluster_name: "strata".into(),
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        install_snapshot_timeout: 5000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT,
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    };
    Ok(Arc::new(
        config
            .validate()
            .map_err(|e| ControllerError::Config(e.to_string()))?,
    ))
}

/// A running member of the quorum: a voter, or a learner that only follows the log.
pub struct Controller {
    pub id: NodeId,
    pub raft: Raft,
    pub state: StateReader,
    /// This node's raft log, for backups of it.
    log: LogStore,
    /// Reaches the leader from here.
    leader_client: LeaderClient,
}

impl Controller {
    /// Opens this node's raft storage under `dir` (recovering it) and starts its raft. Peers
    /// reach it through [`Controller::routes`] served on its controller listener; `seeds` are
    /// the configured voters' addresses, tried when no leader is known.
    pub async fn start(
        id: NodeId,
        dir: &Path,
        seeds: Vec<String>,
    ) -> Result<Self, ControllerError> {
        let log = LogStore::open(&dir.join("log"))?;
        let state_machine = StateMachineStore::open(&dir.join("state"))?;
        let state = state_machine.reader();
        let raft = Raft::new(
            id,
            raft_config()?,
            HttpNetwork::default(),
            log.clone(),
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::Fatal(e.to_string()))?;
        // Ends with the raft: its metrics channel closes.
        tokio::spawn(snapshot_by_size(raft.clone(), log.clone()));
        Ok(Self {
            id,
            raft,
            state,
            log,
            leader_client: LeaderClient::new(seeds),
        })
    }

    /// The stored entries `after + 1..=upto` of this node's log, for a backup of what changed
    /// since one covering `after` (see [`LogStore::frames`]).
    pub fn log_frames(&self, after: u64, upto: u64) -> std::io::Result<Option<crate::LogFrames>> {
        self.log.frames(after, upto)
    }

    /// Everything this node serves its peers: raft RPCs and leader requests
    /// (`/meta/leader`).
    pub fn routes(self: &Arc<Self>) -> Router {
        raft_routes(self.raft.clone()).merge(
            Router::new()
                .route("/meta/leader", post(serve_leader_request))
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
    /// whether the state machine took it. Only the leader can write.
    pub async fn write(&self, command: MetaCommand) -> Result<Committed, ControllerError> {
        let span = info_span!(
            "raft_write",
            node_id = self.id,
            index = tracing::field::Empty
        );
        async {
            let response = self.raft.client_write(command).await.map_err(write_error)?;
            tracing::Span::current().record("index", response.log_id.index);
            Ok(Committed {
                log_index: response.log_id.index,
                response: response.data,
            })
        }
        .instrument(span)
        .await
    }

    /// Proposes `command` through whichever controller leads, from any node.
    pub async fn propose(&self, command: MetaCommand) -> Result<Committed, ControllerError> {
        match self.ask_leader(LeaderRequest::Write(command)).await? {
            LeaderAnswer::Committed(committed) => Ok(committed),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the leader to add this node as a learner at `address` (or to update its address),
    /// so it receives the log. For nodes that are not voters.
    pub async fn join(&self, address: String) -> Result<(), ControllerError> {
        let request = LeaderRequest::Join {
            node_id: self.id,
            address,
        };
        self.ask_leader(request).await.map(drop)
    }

    /// Broker `broker_id`'s registration as the leader knows it, from any node (joined or
    /// not).
    pub async fn registered_broker(
        &self,
        broker_id: i32,
    ) -> Result<Option<strata_meta::BrokerRecord>, ControllerError> {
        match self.ask_leader(LeaderRequest::Broker { broker_id }).await? {
            LeaderAnswer::Broker(record) => Ok(record),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits until this node has applied everything the quorum had committed when it was
    /// called: a read here afterwards is linearizable.
    pub async fn catch_up(&self, timeout: Duration) -> Result<(), ControllerError> {
        match self.ask_leader(LeaderRequest::ReadIndex).await? {
            LeaderAnswer::ReadIndex(index) => self.wait_applied(index, timeout).await,
            other => Err(unexpected(&other)),
        }
    }

    /// Serves `request` here if this node leads, else forwards it to the leader.
    pub async fn ask_leader(
        &self,
        request: LeaderRequest,
    ) -> Result<LeaderAnswer, ControllerError> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(self.id) {
            match self.serve(&request).await {
                Err(ControllerError::NotLeader { address, .. }) => {
                    self.leader_client.call(&request, address).await
                }
                other => other,
            }
        } else {
            let address = leader.and_then(|id| self.address_of(id));
            self.leader_client.call(&request, address).await
        }
    }

    /// Serves a leader request if this node leads; otherwise answers who does.
    pub async fn serve(&self, request: &LeaderRequest) -> Result<LeaderAnswer, ControllerError> {
        match request {
            LeaderRequest::Write(command) => self
                .write(command.clone())
                .await
                .map(LeaderAnswer::Committed),
            LeaderRequest::ReadIndex => {
                let read = self.raft.ensure_linearizable().await.map_err(|e| match e {
                    RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => {
                        not_leader(forward)
                    }
                    other => ControllerError::NoLeader {
                        last: other.to_string(),
                    },
                })?;
                Ok(LeaderAnswer::ReadIndex(read.map_or(0, |id| id.index)))
            }
            LeaderRequest::Join { node_id, address } => {
                let node = Node {
                    addr: address.clone(),
                };
                let known = self
                    .membership()
                    .nodes()
                    .any(|(id, n)| id == node_id && *n == node);
                if known {
                    return Ok(self.membership_answer(0));
                }
                // A learner back under a new address may be a new process with an empty
                // log (a wiped disk, or another process taking the id over): the leader's
                // replication progress for the old one would read that as a log going
                // backwards. Removing the learner first starts its replication afresh.
                let returning_learner = self.membership().nodes().any(|(id, _)| id == node_id)
                    && !self.membership().voter_ids().any(|id| id == *node_id);
                if returning_learner {
                    self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*node_id])))
                        .await?;
                }
                // SetNodes adds a new learner and updates a voter's address alike.
                self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(*node_id, node)])))
                    .await
            }
            LeaderRequest::AddVoter { node_id } => {
                self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*node_id])))
                    .await
            }
            LeaderRequest::RemoveVoter { node_id } => {
                self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([*node_id])))
                    .await
            }
            LeaderRequest::RemoveNode { node_id } => {
                if self.membership().voter_ids().any(|id| id == *node_id) {
                    return Err(ControllerError::Membership(format!(
                        "node {node_id} is a voter; remove it as a voter first"
                    )));
                }
                self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*node_id])))
                    .await
            }
            LeaderRequest::Status => {
                self.check_leading()?;
                Ok(LeaderAnswer::Status(self.status()))
            }
            LeaderRequest::Broker { broker_id } => {
                self.check_leading()?;
                let record = self.state.read(|s| s.broker(*broker_id).cloned());
                Ok(LeaderAnswer::Broker(record))
            }
        }
    }

    /// Answers who leads unless this node does.
    fn check_leading(&self) -> Result<(), ControllerError> {
        if self.leader() == Some(self.id) {
            return Ok(());
        }
        let leader = self.leader();
        Err(ControllerError::NotLeader {
            leader,
            address: leader.and_then(|id| self.address_of(id)),
        })
    }

    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, Node>,
    ) -> Result<LeaderAnswer, ControllerError> {
        info!(change = ?change, "changing the quorum's membership");
        // Members dropped as voters stay learners: a node with both roles keeps following
        // the metadata as a broker.
        let response = self
            .raft
            .change_membership(change, true)
            .await
            .map_err(write_error)?;
        Ok(self.membership_answer(response.log_id.index))
    }

    fn membership_answer(&self, log_index: u64) -> LeaderAnswer {
        LeaderAnswer::Membership {
            log_index,
            status: self.status(),
        }
    }

    fn membership(&self) -> Membership<NodeId, Node> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    /// The quorum as this node sees it.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let address = |id: NodeId| {
            membership
                .get_node(&id)
                .map(|n| n.addr.clone())
                .unwrap_or_default()
        };
        QuorumStatus {
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            last_applied_index: metrics.last_applied.map_or(0, |id| id.index),
            voters: membership.voter_ids().map(|id| (id, address(id))).collect(),
            learners: membership
                .learner_ids()
                .map(|id| (id, address(id)))
                .collect(),
            matched: metrics
                .replication
                .iter()
                .flat_map(|replication| replication.iter())
                .filter_map(|(id, matched)| Some((*id, matched.as_ref()?.index)))
                .chain(
                    metrics
                        .replication
                        .is_some()
                        .then(|| (self.id, metrics.last_log_index.unwrap_or(0))),
                )
                .collect(),
        }
    }

    /// The quorum as its leader sees it, asked of the leader.
    pub async fn leader_status(&self) -> Result<QuorumStatus, ControllerError> {
        match self.ask_leader(LeaderRequest::Status).await? {
            LeaderAnswer::Status(status) => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    fn address_of(&self, id: NodeId) -> Option<String> {
        self.membership().get_node(&id).map(|n| n.addr.clone())
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

fn not_leader(forward: ForwardToLeader<NodeId, Node>) -> ControllerError {
    ControllerError::NotLeader {
        leader: forward.leader_id,
        address: forward.leader_node.map(|n| n.addr),
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ControllerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => not_leader(forward),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(refused)) => {
            ControllerError::Membership(refused.to_string())
        }
        RaftError::Fatal(fatal) => ControllerError::Fatal(fatal.to_string()),
    }
}

fn unexpected(answer: &LeaderAnswer) -> ControllerError {
    ControllerError::Fatal(format!("the leader answered out of turn: {answer:?}"))
}

/// A leader request from another node: served here if this node leads.
async fn serve_leader_request(
    State(controller): State<Arc<Controller>>,
    Json(request): Json<LeaderRequest>,
) -> Json<Result<LeaderAnswer, ControllerError>> {
    Json(controller.serve(&request).await)
}
