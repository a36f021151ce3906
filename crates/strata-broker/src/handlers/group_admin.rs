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
use crate::coordinator::Write;
use crate::groups::group::GroupState;
use crate::groups::{GroupShard, deletion_records, write_error};

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
    let shards = ctx
        .broker
        .groups
        .read_all(|shard| {
            shard
                .groups()
                .filter(|g| g.state != GroupState::Dead)
                .map(|g| {
                    let protocol_type = g.protocol_type.clone().unwrap_or_default();
                    (g.group_id.clone(), g.state.name(), protocol_type)
                })
                .collect::<Vec<_>>()
        })
        .await;
    let mut groups = Vec::new();
    for (group_id, state, protocol_type) in shards.into_iter().flatten() {
        let listed = classic_wanted
            && (wanted_states.is_empty() || wanted_states.contains(&state.to_lowercase()));
        if !listed {
            continue;
        }
        let mut entry = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_protocol_type(str_bytes(protocol_type));
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
        let id = group_id.to_string();
        let version = ctx.version();
        let found = broker
            .groups
            .write(&group_id, move |shard: &mut GroupShard, _| {
                Write::answer(shard.get(&id).map(|group| {
                    let protocol = group.protocol_name.clone().unwrap_or_default();
                    let stable = group.state == GroupState::Stable;
                    let members = group
                        .members
                        .values()
                        .map(|m| {
                            let member = DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id.clone()))
                                .with_client_id(str_bytes(m.client_id.clone()))
                                .with_client_host(str_bytes(m.client_host.clone()));
                            let member = if version >= 4 {
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
                        .collect::<Vec<_>>();
                    (
                        group.state.name(),
                        group.protocol_type.clone().unwrap_or_default(),
                        if stable { protocol } else { String::new() },
                        members,
                    )
                }))
            })
            .await;
        described.push(match found {
            Err(e) => answer.with_error_code(e.code()),
            Ok(None) => answer.with_group_state(str_bytes(GroupState::Dead.name())),
            Ok(Some((state, protocol_type, protocol_data, members))) => answer
                .with_group_state(str_bytes(state))
                .with_protocol_type(str_bytes(protocol_type))
                .with_protocol_data(str_bytes(protocol_data))
                .with_members(members),
        });
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
        let id = group_id.to_string();
        let outcome = broker
            .groups
            .write(&group_id, move |shard: &mut GroupShard, _| {
                let Some(group) = shard.get(&id) else {
                    return Write::answer(Err(ResponseError::GroupIdNotFound));
                };
                match group.state {
                    GroupState::Dead => return Write::answer(Err(ResponseError::GroupIdNotFound)),
                    GroupState::Empty => {}
                    _ => return Write::answer(Err(ResponseError::NonEmptyGroup)),
                }
                let records = deletion_records(group);
                Write::revert(
                    records,
                    move |shard: &mut GroupShard| {
                        shard.remove(&id);
                        Ok(())
                    },
                    |_, e| Err(write_error(e)),
                )
            })
            .await
            .and_then(|deleted| deleted);
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
