//! The classic group membership APIs: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, served
//! by the group's coordinator (see [`crate::groups`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
use crate::groups::group::{JoinRequest, JoinResponse, Reply, SyncStep};
use crate::groups::{Coordinated, persist, persist_assignments, write_metadata};

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

/// The group named by a request, if this broker coordinates it.
fn coordinated(
    ctx: &RequestContext<'_>,
    group_id: &str,
    create: bool,
) -> Result<Coordinated, ResponseError> {
    ctx.broker
        .groups
        .group(ctx.broker, group_id, create)?
        .ok_or(ResponseError::UnknownMemberId)
}

pub async fn join(ctx: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version();
    let group_id = request.group_id.0.to_string();
    let span = info_span!("join_group", group = %group_id, member = %request.member_id);
    let response = async {
        let coordinated = match coordinated(ctx, &group_id, true) {
            Ok(c) => c,
            Err(e) => return JoinResponse::error_for(e, &request.member_id),
        };
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
        let broker = ctx.broker;
        let mut group = coordinated.group.lock().await;
        let reply = group.join(
            join,
            &broker.config.groups.limits,
            Instant::now(),
            broker.clock.now_ms(),
        );
        if let Some(replaced) = group.take_unpersisted_replacement() {
            let stored = group.stored();
            if let Err(e) = write_metadata(broker, &coordinated.partition, &mut group, stored).await
            {
                group.revert_replacement(replaced);
                return JoinResponse::error_for(e, "");
            }
        }
        drop(group);
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
    let broker = ctx.broker;
    let coordinated = coordinated(ctx, group_id, false)?;
    let mut group = coordinated.group.lock().await;
    let mismatch = |asked: Option<&StrBytes>, have: &Option<String>| {
        asked.is_some_and(|a| have.as_deref() != Some(a.as_str()))
    };
    if mismatch(request.protocol_type.as_ref(), &group.protocol_type)
        || mismatch(request.protocol_name.as_ref(), &group.protocol_name)
    {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let protocols = (group.protocol_type.clone(), group.protocol_name.clone());
    let member_id = request.member_id.as_str();
    let instance_id = request.group_instance_id.as_ref().map(StrBytes::as_str);
    let step = group.sync(
        member_id,
        instance_id,
        request.generation_id,
        Instant::now(),
    )?;
    let assignment = match step {
        SyncStep::Done(assignment) => assignment,
        SyncStep::Leader => {
            let assignments: HashMap<String, bytes::Bytes> = request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            let persisted =
                persist_assignments(broker, &coordinated.partition, &mut group, &assignments).await;
            if let Err(e) = persisted {
                // Everyone waiting hears it now, not at the rebalance timeout.
                let limits = &broker.config.groups.limits;
                group.fail_sync(e, limits, Instant::now(), broker.clock.now_ms());
                return Err(e);
            }
            group.complete_sync(assignments.clone(), broker.clock.now_ms());
            assignments.get(member_id).cloned().unwrap_or_default()
        }
        SyncStep::Wait(rx) => {
            drop(group);
            wait(ctx, rx, Err(ResponseError::NotCoordinator)).await?
        }
    };
    Ok((assignment, protocols.0, protocols.1))
}

pub async fn heartbeat(ctx: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let outcome = async {
        let coordinated = coordinated(ctx, &request.group_id, false)?;
        let instance_id = request.group_instance_id.as_ref().map(StrBytes::as_str);
        coordinated.group.lock().await.heartbeat(
            &request.member_id,
            instance_id,
            request.generation_id,
            Instant::now(),
        )
    }
    .await;
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
    let coordinated = match coordinated(ctx, &request.group_id, false) {
        Ok(c) => c,
        Err(error) => {
            broker.metrics.count_error("leave_group", error);
            return LeaveGroupResponse::default().with_error_code(error.code());
        }
    };
    let mut group = coordinated.group.lock().await;
    let mut members = Vec::with_capacity(leaving.len());
    let mut first_error = None;
    for (member_id, instance_id) in leaving {
        let outcome = group.leave(
            &member_id,
            instance_id.as_ref().map(StrBytes::as_str),
            &broker.config.groups.limits,
            Instant::now(),
            broker.clock.now_ms(),
        );
        let outcome = match outcome {
            Ok(effects) => persist(broker, &coordinated.partition, &mut group, effects).await,
            Err(e) => Err(e),
        };
        let code = outcome.err().map_or(0, |e| {
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
