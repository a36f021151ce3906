//! ListGroups, DescribeGroups and DeleteGroups: the groups this broker coordinates, as admin
//! tools see them (clients ask every broker and merge the answers).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};

use super::{RequestContext, str_bytes};
use crate::groups::group::GroupState;
use crate::groups::persist_deletion;

/// Kafka's "operations not requested" sentinel for authorized-operations fields.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn list(ctx: &RequestContext<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    let wanted_states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    // Only classic groups exist here.
    let classic_wanted = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let mut groups = Vec::new();
    for (_, group) in ctx.broker.groups.loaded() {
        let group = group.lock().await;
        let state = group.state.name();
        let listed = classic_wanted
            && (wanted_states.is_empty() || wanted_states.contains(&state.to_lowercase()))
            && group.state != GroupState::Dead;
        if !listed {
            continue;
        }
        let mut entry = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(group.group_id.clone())))
            .with_protocol_type(str_bytes(group.protocol_type.clone().unwrap_or_default()));
        if ctx.version() >= 4 {
            entry = entry.with_group_state(str_bytes(state));
        }
        if ctx.version() >= 5 {
            entry = entry.with_group_type(str_bytes("classic"));
        }
        groups.push(entry);
    }
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe(
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let broker = ctx.broker;
    let mut described = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let answer = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        let coordinated = match broker.groups.group(broker, &group_id, false) {
            Ok(c) => c,
            Err(e) => {
                described.push(answer.with_error_code(e.code()));
                continue;
            }
        };
        // An unknown group is described as dead, with no error (Kafka does the same).
        let Some(coordinated) = coordinated else {
            described.push(answer.with_group_state(str_bytes(GroupState::Dead.name())));
            continue;
        };
        let group = coordinated.group.lock().await;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        // Kafka lists members with their metadata and assignment only once stable.
        let stable = group.state == GroupState::Stable;
        let members = group
            .members
            .values()
            .map(|m| {
                let member = DescribedGroupMember::default()
                    .with_member_id(str_bytes(m.member_id.clone()))
                    .with_client_id(str_bytes(m.client_id.clone()))
                    .with_client_host(str_bytes(m.client_host.clone()));
                let member = if ctx.version() >= 4 {
                    member.with_group_instance_id(m.instance_id.clone().map(str_bytes))
                } else {
                    member
                };
                if stable {
                    member
                        .with_member_metadata(
                            m.protocols
                                .iter()
                                .find(|(name, _)| *name == protocol)
                                .map(|(_, metadata)| metadata.clone())
                                .unwrap_or_default(),
                        )
                        .with_member_assignment(m.assignment.clone())
                } else {
                    member
                }
            })
            .collect();
        described.push(
            answer
                .with_group_state(str_bytes(group.state.name()))
                .with_protocol_type(str_bytes(group.protocol_type.clone().unwrap_or_default()))
                .with_protocol_data(str_bytes(if stable { protocol } else { String::new() }))
                .with_members(members),
        );
    }
    DescribeGroupsResponse::default().with_groups(described)
}

pub async fn delete(
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let broker = ctx.broker;
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let outcome = async {
            let coordinated = broker
                .groups
                .group(broker, &group_id, false)?
                .ok_or(ResponseError::GroupIdNotFound)?;
            let mut group = coordinated.group.lock().await;
            match group.state {
                GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
                GroupState::Empty => {}
                _ => return Err(ResponseError::NonEmptyGroup),
            }
            persist_deletion(broker, &coordinated.partition, &group).await?;
            group.state = GroupState::Dead;
            group.offsets.clear();
            broker.groups.forget(&group_id);
            Ok(())
        }
        .await;
        let result = DeletableGroupResult::default().with_group_id(group_id);
        results.push(match outcome {
            Ok(()) => result,
            Err(e) => {
                broker.metrics.count_error("delete_groups", e);
                result.with_error_code(e.code())
            }
        });
    }
    DeleteGroupsResponse::default().with_results(results)
}
