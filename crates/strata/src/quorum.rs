//! `strata quorum`: the metadata quorum's membership, read and changed through any
//! controller (requests are forwarded to the leader).

use strata_raft::{LeaderAnswer, LeaderClient, LeaderRequest};

use crate::cli::QuorumCommand;

/// Runs one quorum command and prints the quorum's status afterwards, as JSON.
pub fn run(command: QuorumCommand) -> anyhow::Result<()> {
    let (target, request) = match command {
        QuorumCommand::Describe(target) => (target, LeaderRequest::Status),
        QuorumCommand::AddVoter(change) => (
            change.target,
            LeaderRequest::AddVoter {
                node_id: change.node_id,
            },
        ),
        QuorumCommand::RemoveVoter(change) => (
            change.target,
            LeaderRequest::RemoveVoter {
                node_id: change.node_id,
            },
        ),
        QuorumCommand::RemoveNode(change) => (
            change.target,
            LeaderRequest::RemoveNode {
                node_id: change.node_id,
            },
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = LeaderClient::new(vec![target.controller]);
    let answer = runtime.block_on(client.call(&request, None))?;
    let status = match answer {
        LeaderAnswer::Status(status) | LeaderAnswer::Membership { status, .. } => status,
        other => anyhow::bail!("unexpected answer from the controller: {other:?}"),
    };
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}
