//! Requests only the controller leader can serve, and the way any node (or the `strata quorum`
//! command) gets them there.
//!
//! Every controller serves `POST /meta/leader`: a [`LeaderRequest`] answered with a
//! [`LeaderAnswer`] when it leads, or [`ControllerError::NotLeader`] naming the leader it knows.
//! [`LeaderClient`] follows those redirects, and when nobody is known to lead (an election, or
//! a node that has not joined yet) tries the configured voters in turn, until a deadline.
//!
//! A retry after a lost answer can apply a write twice. Commands are made so that a repeat is
//! harmless (a registration of the same incarnation) or recognisable (a repeated create
//! answers `TopicAlreadyExists` for the topic id the caller chose); membership changes are
//! idempotent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_meta::MetaCommand;
use tracing::debug;

use crate::{ControllerError, MetaResponse, NodeId};

/// How long a request keeps trying while leadership is moving.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(15);
/// How long one attempt at one address may take before the next is tried. A leader cut off
/// mid-request (its packets dropped) never answers; waiting the whole deadline on it would
/// outlast a successor's election by far, and a broker's lease (7 s) with it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection may take to open, for the same reason.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What a node asks of the controller leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderRequest {
    /// Commit a command.
    Write(MetaCommand),
    /// The index a read must have applied to be linearizable (raft's ReadIndex).
    ReadIndex,
    /// Add a node, or update its address, as a learner: it receives the log but does not vote.
    Join { node_id: NodeId, address: String },
    /// Make a learner a voter.
    AddVoter { node_id: NodeId },
    /// Make a voter a learner again.
    RemoveVoter { node_id: NodeId },
    /// Remove a learner from the quorum altogether.
    RemoveNode { node_id: NodeId },
    /// Who leads, who votes, who learns, how far the log is.
    Status,
    /// A broker's registration as the leader has applied it (a node that has not joined yet
    /// has no replica to read it from).
    Broker { broker_id: i32 },
}

impl LeaderRequest {
    /// How long one attempt may take: membership changes wait for a new member to catch up,
    /// everything else is answered within milliseconds by a live leader.
    fn attempt_timeout(&self) -> Duration {
        match self {
            Self::Join { .. }
            | Self::AddVoter { .. }
            | Self::RemoveVoter { .. }
            | Self::RemoveNode { .. } => LEADER_DEADLINE,
            Self::Write(_) | Self::ReadIndex | Self::Status | Self::Broker { .. } => {
                ATTEMPT_TIMEOUT
            }
        }
    }
}

/// The leader's answer to a [`LeaderRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderAnswer {
    Committed(Committed),
    ReadIndex(u64),
    /// The membership after a change, with the log index it was committed at.
    Membership {
        log_index: u64,
        status: QuorumStatus,
    },
    Status(QuorumStatus),
    Broker(Option<strata_meta::BrokerRecord>),
}

/// A command the quorum committed: its place in the log, and the state machine's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed {
    pub log_index: u64,
    pub response: MetaResponse,
}

/// The quorum as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub last_applied_index: u64,
    /// Voters by id, at their controller addresses.
    pub voters: BTreeMap<NodeId, String>,
    /// Learners (broker-only nodes, and controllers not yet promoted) likewise.
    pub learners: BTreeMap<NodeId, String>,
    /// The last log index each node is known to hold, the leader's own included. Only a
    /// leader knows it; elsewhere it is empty.
    #[serde(default)]
    pub matched: BTreeMap<NodeId, u64>,
}

/// Sends [`LeaderRequest`]s to whichever controller leads.
#[derive(Debug, Clone)]
pub struct LeaderClient {
    http: reqwest::Client,
    /// Controller addresses to try when no leader is known.
    seeds: Vec<String>,
}

impl LeaderClient {
    pub fn new(seeds: Vec<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http, seeds }
    }

    /// Sends `request` over HTTP, following redirects to the leader until it answers, refuses
    /// for another reason, or [`LEADER_DEADLINE`] passes. `first` is where to start (a
    /// known leader's address); without it, the seeds are tried in turn.
    pub async fn call(
        &self,
        request: &LeaderRequest,
        first: Option<String>,
    ) -> Result<LeaderAnswer, ControllerError> {
        let started = Instant::now();
        let mut next = first;
        let mut seed = 0;
        let mut last = String::from("no controller address to try");
        // The address that just failed to answer: the seeds are tried past it.
        let mut unreachable: Option<String> = None;
        while started.elapsed() < LEADER_DEADLINE {
            let address = match next.take() {
                Some(address) => address,
                None if self.seeds.is_empty() => break,
                None => {
                    seed += 1;
                    let candidate = &self.seeds[(seed - 1) % self.seeds.len()];
                    if self.seeds.len() > 1 && unreachable.as_ref() == Some(candidate) {
                        seed += 1;
                    }
                    self.seeds[(seed - 1) % self.seeds.len()].clone()
                }
            };
            match self.send(&address, request).await {
                Err(ControllerError::NotLeader {
                    address: leader, ..
                }) => {
                    // Follow a named leader at once; with none named, wait out the election.
                    last = format!("{address} does not lead");
                    if leader.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    next = leader;
                }
                Err(ControllerError::NoLeader { last: reason }) => {
                    debug!(address, reason, "controller unreachable; trying another");
                    last = reason;
                    unreachable = Some(address);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
        Err(ControllerError::NoLeader { last })
    }

    async fn send(
        &self,
        address: &str,
        request: &LeaderRequest,
    ) -> Result<LeaderAnswer, ControllerError> {
        let unreachable = |e: reqwest::Error| ControllerError::NoLeader {
            last: format!("asking {address}: {e}"),
        };
        self.http
            .post(format!("http://{address}/meta/leader"))
            .timeout(request.attempt_timeout())
            .json(request)
            .send()
            .await
            .map_err(unreachable)?
            .json::<Result<LeaderAnswer, ControllerError>>()
            .await
            .map_err(unreachable)?
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use axum::Json;
    use axum::routing::post;

    use super::*;

    /// A controller that always answers ReadIndex 7.
    async fn answering_controller() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let app = axum::Router::new().route(
            "/meta/leader",
            post(|| async {
                Json(Ok::<LeaderAnswer, ControllerError>(
                    LeaderAnswer::ReadIndex(7),
                ))
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    #[tokio::test]
    async fn a_controller_that_never_answers_is_left_after_one_attempt() {
        // Bound but never accepting: connections open (the kernel's backlog) and then
        // nothing comes back, as from a leader whose packets are dropped.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let silent = silent.local_addr().expect("address").to_string();
        let live = answering_controller().await;
        let client = LeaderClient::new(vec![silent.clone(), live]);
        let started = Instant::now();
        let answer = client
            .call(&LeaderRequest::ReadIndex, Some(silent))
            .await
            .expect("the live controller answers");
        assert!(matches!(answer, LeaderAnswer::ReadIndex(7)), "{answer:?}");
        let took = started.elapsed();
        assert!(
            took < ATTEMPT_TIMEOUT + Duration::from_secs(3),
            "took {took:?}: the silent address held the call past one attempt"
        );
    }
}
