//! Three controllers on loopback: a quorum forms, commands replicate to every replica, a new
//! leader takes over when the leader stops, and a restarted node catches up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use strata_meta::{CreateTopic, Endpoint, MetaCommand, MetaError, RegisterBroker};
use strata_raft::{Controller, LeaderAnswer, LeaderRequest, NodeId};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

struct Member {
    controller: Arc<Controller>,
    server: JoinHandle<()>,
}

async fn start(id: NodeId, dir: PathBuf, listener: TcpListener) -> Member {
    start_with_seeds(id, dir, listener, Vec::new()).await
}

async fn start_with_seeds(
    id: NodeId,
    dir: PathBuf,
    listener: TcpListener,
    seeds: Vec<String>,
) -> Member {
    let controller = Arc::new(
        Controller::start(id, &dir, seeds)
            .await
            .expect("start controller"),
    );
    let routes = controller.routes();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    Member { controller, server }
}

async fn stop(member: Member) {
    member.controller.shutdown().await;
    member.server.abort();
    let _ = member.server.await;
}

async fn leader_among(members: &[&Member]) -> NodeId {
    let first = &members[0].controller;
    first
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("a leader is elected");
    first.leader().expect("leader")
}

async fn write_at_leader(members: &[&Member], command: MetaCommand) -> u64 {
    let leader = leader_among(members).await;
    let member = members
        .iter()
        .find(|m| m.controller.id == leader)
        .expect("the leader is a member");
    let committed = member.controller.write(command).await.expect("committed");
    committed.response.expect("applied");
    committed.log_index
}

async fn wait_applied(member: &Member, index: u64) {
    member
        .controller
        .raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "caught up")
        .await
        .expect("the member applies the entry");
}

fn register(id: i32) -> MetaCommand {
    MetaCommand::RegisterBroker(RegisterBroker {
        broker_id: id,
        incarnation: uuid::Uuid::from_u128(id as u128 + 1),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
        }],
        rack: None,
        now_ms: 0,
        intact_predecessor: None,
        metadata_version: strata_meta::METADATA_VERSION,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut members, voters, index) = three_voters(root.path()).await;
    let all: Vec<&Member> = members.iter().collect();
    for member in &members {
        wait_applied(member, index).await;
        assert_eq!(
            member
                .controller
                .state
                .read(|s| s.cluster_id().map(str::to_string)),
            Some("c1".to_string())
        );
    }

    // The leader stops: the other two elect a new one and keep committing.
    let old_leader = leader_among(&all).await;
    let position = members
        .iter()
        .position(|m| m.controller.id == old_leader)
        .expect("leader");
    let stopped = members.remove(position);
    let old_dir = root.path().join(old_leader.to_string());
    stop(stopped).await;
    let survivors: Vec<&Member> = members.iter().collect();
    for member in &survivors {
        member
            .controller
            .raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != Some(old_leader),
                "a new leader",
            )
            .await
            .expect("a new leader is elected");
    }
    // Any node can propose: a follower forwards to the leader.
    let follower = survivors
        .iter()
        .find(|m| Some(m.controller.id) != m.controller.leader())
        .expect("a follower");
    follower
        .controller
        .propose(register(7))
        .await
        .expect("forwarded")
        .response
        .expect("applied");
    assert_eq!(
        follower
            .controller
            .propose(MetaCommand::InitCluster {
                cluster_id: "c2".into()
            })
            .await
            .expect("forwarded")
            .response,
        Err(MetaError::ClusterIdMismatch {
            existing: "c1".into(),
            requested: "c2".into()
        }),
        "the state machine's verdict comes back to the proposer"
    );
    let index = write_at_leader(
        &survivors,
        MetaCommand::CreateTopic(CreateTopic {
            name: "orders".into(),
            topic_id: uuid::Uuid::from_u128(42),
            assignments: vec![vec![7]],
            configs: BTreeMap::new(),
        }),
    )
    .await;

    // The stopped node restarts from its directory on its old address and catches up.
    let listener = TcpListener::bind(&voters[&old_leader])
        .await
        .expect("rebind");
    let restarted = start(old_leader, old_dir, listener).await;
    wait_applied(&restarted, index).await;
    assert!(
        restarted
            .controller
            .state
            .read(|s| s.topic_by_name("orders").is_some())
    );
    stop(restarted).await;
    for member in members {
        stop(member).await;
    }
}

/// Starts voters 1..=3, forms their quorum and names the cluster "c1"; answers them with
/// their addresses and the index the cluster id was committed at.
async fn three_voters(root: &std::path::Path) -> (Vec<Member>, BTreeMap<NodeId, String>, u64) {
    let mut members = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        voters.insert(id, listener.local_addr().expect("addr").to_string());
        members.push(start(id, root.join(id.to_string()), listener).await);
    }
    members[0]
        .controller
        .initialize(voters.clone())
        .await
        .expect("initialize");
    let all: Vec<&Member> = members.iter().collect();
    let index = write_at_leader(
        &all,
        MetaCommand::InitCluster {
            cluster_id: "c1".into(),
        },
    )
    .await;
    (members, voters, index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_follows_the_log_and_is_promoted_and_demoted() {
    let root = tempfile::tempdir().expect("tempdir");
    let (members, voters, index) = three_voters(root.path()).await;

    // Node 4 knows only the voters' addresses; it joins as a learner and catches up.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let seeds = voters.values().cloned().collect();
    let learner = start_with_seeds(4, root.path().join("4"), listener, seeds).await;
    learner
        .controller
        .join(address.clone())
        .await
        .expect("joined");
    learner.controller.catch_up(WAIT).await.expect("caught up");
    assert!(
        learner
            .controller
            .state
            .last_applied()
            .expect("applied")
            .index
            >= index
    );
    assert_eq!(
        learner
            .controller
            .state
            .read(|s| s.cluster_id().map(str::to_string)),
        Some("c1".into())
    );
    // A learner proposes through the leader like anyone else.
    learner
        .controller
        .propose(register(4))
        .await
        .expect("forwarded")
        .response
        .expect("applied");

    let membership = |answer: LeaderAnswer| match answer {
        LeaderAnswer::Membership { status, .. } => status,
        other => panic!("not a membership answer: {other:?}"),
    };
    let status = membership(
        learner
            .controller
            .ask_leader(LeaderRequest::AddVoter { node_id: 4 })
            .await
            .expect("promoted"),
    );
    assert_eq!(
        status.voters.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(status.voters[&4], address);

    let status = membership(
        members[1]
            .controller
            .ask_leader(LeaderRequest::RemoveVoter { node_id: 4 })
            .await
            .expect("demoted"),
    );
    assert_eq!(status.voters.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(status.learners.keys().copied().collect::<Vec<_>>(), [4]);
    let refused = members[1]
        .controller
        .ask_leader(LeaderRequest::RemoveNode { node_id: 1 })
        .await;
    assert!(refused.is_err(), "a voter is not removed outright");
    let status = membership(
        members[2]
            .controller
            .ask_leader(LeaderRequest::RemoveNode { node_id: 4 })
            .await
            .expect("removed"),
    );
    assert!(status.learners.is_empty());
    stop(learner).await;
    for member in members {
        stop(member).await;
    }
}
