//! The classic group membership APIs: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, served
//! by the group's coordinator (see [`crate::groups`]).

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tracing::{Instrument, info_span};

use super::{RequestContext, str_bytes};
use crate::coordinator::Write;
use crate::groups::group::{JoinRequest, JoinResponse, Reply, SyncResponse, SyncStep};
use crate::groups::{GroupShard, group_record, write_error};

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn text(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

/// Waits for a parked request's answer; shutdown or a lost coordinator answers `gone`.
async fn wait<T>(ctx: &RequestContext<'_>, rx: oneshot::Receiver<T>, gone: T) -> T {
    tokio::select! {
        answer = rx => answer.unwrap_or(gone),
        () = ctx.shutdown.cancelled() => gone,
    }
}

pub async fn join(ctx: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version();
    let group_id = request.group_id.0.to_string();
    let span = info_span!("join_group", group = %group_id, member = %request.member_id);
    let response = async {
        let join = JoinRequest {
            member_id: request.member_id.to_string(),
            instance_id: text(request.group_instance_id.as_ref()),
            client_id: text(ctx.header.client_id.as_ref()).unwrap_or_default(),
            client_host: format!("/{}", ctx.peer.ip()),
            session_timeout: millis(request.session_timeout_ms),
            rebalance_timeout: millis(if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            }),
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let groups = &ctx.broker.groups;
        let limits = groups.settings.limits;
        let id = group_id.clone();
        let joined = groups
            .write(&group_id, move |shard: &mut GroupShard, now| {
                let group = shard.get_or_create(&id);
                let reply = group.join(join, &limits, now.at, now.ms);
                // A static member that took over another's place without a rebalance: its
                // new member id must be in the log before anyone is told.
                let Some(replaced) = group.take_unpersisted_replacement() else {
                    return Write::answer(Ok(reply));
                };
                let stored = group.stored();
                let records = vec![group_record(&id, &stored)];
                let previous = group.last_stored.replace(stored);
                let reverted = id.clone();
                Write::revert(
                    records,
                    move |_| Ok(reply),
                    move |shard: &mut GroupShard, e| {
                        if let Some(group) = shard.get_mut(&reverted) {
                            group.revert_replacement(replaced);
                            group.last_stored = previous;
                        }
                        // As Kafka answers a static member whose replacement failed: with
                        // no member id.
                        Ok(Reply::Now(JoinResponse::error_for(write_error(e), "")))
                    },
                )
            })
            .await
            .and_then(|joined| joined);
        let reply = match joined {
            Ok(reply) => reply,
            Err(e) => return JoinResponse::error_for(e, &request.member_id),
        };
        match reply {
            Reply::Now(response) => response,
            Reply::Wait(rx) => {
                let gone =
                    JoinResponse::error_for(ResponseError::NotCoordinator, &request.member_id);
                wait(ctx, rx, gone).await
            }
        }
    }
    .instrument(span)
    .await;
    if let Some(error) = response.error {
        ctx.broker.metrics.count_error("join_group", error);
    }
    JoinGroupResponse::default()
        .with_error_code(response.error.map_or(0, |e| e.code()))
        .with_generation_id(response.generation)
        .with_protocol_type(if version >= 7 {
            response.protocol_type.map(str_bytes)
        } else {
            None
        })
        .with_protocol_name(match (response.protocol_name, version >= 7) {
            (Some(name), _) => Some(str_bytes(name)),
            (None, true) => None,
            // Before v7 the name is not nullable.
            (None, false) => Some(StrBytes::default()),
        })
        .with_leader(str_bytes(response.leader))
        .with_member_id(str_bytes(response.member_id))
        .with_members(
            response
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.instance_id.map(str_bytes)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn sync(ctx: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let group_id = request.group_id.0.to_string();
    let span = info_span!("sync_group", group = %group_id, member = %request.member_id);
    let outcome = sync_member(ctx, &group_id, &request).instrument(span).await;
    let response = SyncGroupResponse::default();
    match outcome {
        Ok((assignment, protocol_type, protocol_name)) => {
            let response = response.with_assignment(assignment);
            if ctx.version() >= 5 {
                response
                    .with_protocol_type(protocol_type.map(str_bytes))
                    .with_protocol_name(protocol_name.map(str_bytes))
            } else {
                response
            }
        }
        Err(error) => {
            ctx.broker.metrics.count_error("sync_group", error);
            response.with_error_code(error.code())
        }
    }
}

type Synced = (bytes::Bytes, Option<String>, Option<String>);

async fn sync_member(
    ctx: &RequestContext<'_>,
    group_id: &str,
    request: &SyncGroupRequest,
) -> Result<Synced, ResponseError> {
    let groups = &ctx.broker.groups;
    let limits = groups.settings.limits;
    let id = group_id.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let (asked_type, asked_name) = (
        text(request.protocol_type.as_ref()),
        text(request.protocol_name.as_ref()),
    );
    let generation = request.generation_id;
    let assignments: HashMap<String, bytes::Bytes> = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let step = groups
        .write(group_id, move |shard: &mut GroupShard, now| {
            let Some(group) = shard.get_mut(&id) else {
                return Write::answer(Err(ResponseError::UnknownMemberId));
            };
            let mismatch =
                |asked: &Option<String>, have: &Option<String>| asked.is_some() && asked != have;
            if mismatch(&asked_type, &group.protocol_type)
                || mismatch(&asked_name, &group.protocol_name)
            {
                return Write::answer(Err(ResponseError::InconsistentGroupProtocol));
            }
            let protocols = (group.protocol_type.clone(), group.protocol_name.clone());
            let step = group.sync(&member_id, instance_id.as_deref(), generation, now.at);
            match step {
                Err(e) => Write::answer(Err(e)),
                Ok(SyncStep::Done(assignment)) => {
                    Write::answer(Ok((SyncAnswer::Now(assignment), protocols)))
                }
                Ok(SyncStep::Wait(rx)) => Write::answer(Ok((SyncAnswer::Wait(rx), protocols))),
                Ok(SyncStep::Leader) => {
                    // The assignments are installed (and every waiting member answered)
                    // only once the group's record holding them is committed.
                    let stored = group.stored_with(&assignments);
                    let records = vec![group_record(&id, &stored)];
                    let failed_id = id.clone();
                    Write::revert(
                        records,
                        move |shard: &mut GroupShard| {
                            let Some(group) = shard.get_mut(&id) else {
                                return Err(ResponseError::UnknownMemberId);
                            };
                            group.last_stored = Some(stored);
                            let mine = assignments.get(&member_id).cloned().unwrap_or_default();
                            group.complete_sync(assignments, now.ms);
                            Ok((SyncAnswer::Now(mine), protocols))
                        },
                        move |shard: &mut GroupShard, e| {
                            let error = write_error(e);
                            // Everyone waiting hears it now, not at the rebalance timeout.
                            if let Some(group) = shard.get_mut(&failed_id) {
                                group.fail_sync(error, &limits, now.at, now.ms);
                            }
                            Err(error)
                        },
                    )
                }
            }
        })
        .await
        .and_then(|step| step)?;
    let (answer, protocols) = step;
    let assignment = match answer {
        SyncAnswer::Now(assignment) => assignment,
        SyncAnswer::Wait(rx) => wait(ctx, rx, Err(ResponseError::NotCoordinator)).await?,
    };
    Ok((assignment, protocols.0, protocols.1))
}

/// A SyncGroup's assignment, now or once the leader's arrives.
enum SyncAnswer {
    Now(bytes::Bytes),
    Wait(tokio::sync::oneshot::Receiver<SyncResponse>),
}

pub async fn heartbeat(ctx: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = request.generation_id;
    let outcome = ctx
        .broker
        .groups
        .write(&request.group_id, move |shard: &mut GroupShard, now| {
            Write::answer(match shard.get_mut(&id) {
                Some(group) => {
                    group.heartbeat(&member_id, instance_id.as_deref(), generation, now.at)
                }
                None => Err(ResponseError::UnknownMemberId),
            })
        })
        .await
        .and_then(|beat| beat);
    match outcome {
        Ok(()) => HeartbeatResponse::default(),
        Err(error) => {
            ctx.broker.metrics.count_error("heartbeat", error);
            HeartbeatResponse::default().with_error_code(error.code())
        }
    }
}

pub async fn leave(ctx: &RequestContext<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = ctx.version() >= 3;
    let leaving: Vec<(StrBytes, Option<StrBytes>)> = if batched {
        request
            .members
            .into_iter()
            .map(|m| (m.member_id, m.group_instance_id))
            .collect()
    } else {
        vec![(request.member_id, None)]
    };
    let broker = ctx.broker;
    let groups = &broker.groups;
    let limits = groups.settings.limits;
    let id = request.group_id.to_string();
    let leavers: Vec<(String, Option<String>)> = leaving
        .iter()
        .map(|(m, i)| (m.to_string(), i.as_ref().map(|i| i.to_string())))
        .collect();
    let outcomes = groups
        .write(&request.group_id, move |shard: &mut GroupShard, now| {
            let Some(group) = shard.get_mut(&id) else {
                return Write::answer(Err(ResponseError::UnknownMemberId));
            };
            let mut persist = false;
            let outcomes: Vec<Option<ResponseError>> = leavers
                .iter()
                .map(|(member_id, instance_id)| {
                    match group.leave(member_id, instance_id.as_deref(), &limits, now.at, now.ms) {
                        Ok(effects) => {
                            persist |= effects.persist_metadata;
                            None
                        }
                        Err(e) => Some(e),
                    }
                })
                .collect();
            if !persist {
                return Write::answer(Ok(outcomes));
            }
            // Leaving changes the group in ways (a rebalance, answered waiters) that cannot
            // be undone piecewise: a failed write rebuilds it from the log.
            let stored = group.stored();
            let records = vec![group_record(&id, &stored)];
            let failed = outcomes.clone();
            Write::reload(
                records,
                move |shard: &mut GroupShard| {
                    if let Some(group) = shard.get_mut(&id) {
                        group.last_stored = Some(stored);
                    }
                    Ok(outcomes)
                },
                move |e| {
                    let error = write_error(e);
                    Ok(failed.into_iter().map(|o| o.or(Some(error))).collect())
                },
            )
        })
        .await
        .and_then(|left| left);
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            broker.metrics.count_error("leave_group", error);
            return LeaveGroupResponse::default().with_error_code(error.code());
        }
    };
    let mut members = Vec::with_capacity(leaving.len());
    let mut first_error = None;
    for ((member_id, instance_id), outcome) in leaving.into_iter().zip(outcomes) {
        let code = outcome.map_or(0, |e| {
            broker.metrics.count_error("leave_group", e);
            first_error.get_or_insert(e);
            e.code()
        });
        members.push(
            MemberResponse::default()
                .with_member_id(member_id)
                .with_group_instance_id(instance_id)
                .with_error_code(code),
        );
    }
    if batched {
        LeaveGroupResponse::default().with_members(members)
    } else {
        LeaveGroupResponse::default().with_error_code(first_error.map_or(0, |e| e.code()))
    }
}
