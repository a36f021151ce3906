//! One consumer group under the classic protocol: its members, generation and committed
//! offsets, and the rebalance state machine Kafka's group coordinator runs.
//!
//! States: `Empty` (no members; offsets may still be committed), `PreparingRebalance`
//! (members are rejoining; the join completes when every known member has rejoined, or at the
//! rebalance deadline), `CompletingRebalance` (the new generation is formed; waiting for the
//! leader's assignments in SyncGroup), `Stable`, and `Dead` (deleted).
//!
//! The group is driven by requests and by [`Group::tick`]; time is passed in, never read, so
//! the logic is testable. Requests that must wait (a JoinGroup until the join completes, a
//! follower's SyncGroup until the leader's) get a oneshot receiver.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use crate::config::GroupLimits;
use uuid::Uuid;

/// Where a group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// A JoinGroup as the group sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets its id back with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

/// A member as the leader's JoinGroup response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members (with their subscriptions).
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// A refusal for `member_id`.
    pub fn error_for(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A JoinGroup or SyncGroup answered now, or once the rebalance gets there.
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// A static member's place taken over by a new member id without a rebalance, kept until its
/// record is written (see [`Group::take_unpersisted_replacement`]).
#[derive(Debug)]
pub struct StaticReplacement {
    old_id: String,
    new_id: String,
    old: ReplacedFields,
    was_leader: bool,
}

/// What a static replacement changed of the member.
#[derive(Debug)]
struct ReplacedFields {
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    session_deadline: Instant,
}

/// The answer to a SyncGroup: the member's assignment, or why not.
pub type SyncResponse = Result<Bytes, ResponseError>;

/// One member of the group.
#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// When the member is expired unless it is heard from.
    session_deadline: Instant,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Answers the member's parked JoinGroup or SyncGroup with `error`.
    fn dismiss(&mut self, error: ResponseError) {
        if let Some(waiter) = self.join_waiter.take() {
            let _ = waiter.send(JoinResponse::error_for(error, &self.member_id));
        }
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(Err(error));
        }
    }

    /// A member waiting for a join or sync is not expired: it is blocked on us.
    fn is_awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A consumer group.
#[derive(Debug)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member becomes leader when there is none.
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they rejoin or time out.
    pending: HashMap<String, Instant>,
    /// Static members: instance id → member id.
    static_members: HashMap<String, String>,
    /// When the current join completes at the latest.
    join_deadline: Option<Instant>,
    /// The latest a delayed initial join may be pushed to (its rebalance timeout).
    initial_join_limit: Option<Instant>,
    /// When members that have not synced are removed.
    sync_deadline: Option<Instant>,
    pub offsets: HashMap<(String, i32), CommittedOffset>,
    /// When the state last changed (milliseconds since the epoch), for DescribeGroups.
    pub state_timestamp_ms: i64,
    /// The metadata record last written (or replayed): what a checkpoint rewrites.
    pub last_stored: Option<StoredGroup>,
    /// A static replacement not yet written (see [`Group::take_unpersisted_replacement`]).
    unpersisted_replacement: Option<StaticReplacement>,
}

/// What a change requires of the caller: persisting the group's metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Effects {
    pub persist_metadata: bool,
}

impl Group {
    pub fn new(group_id: &str) -> Self {
        Self {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial_join_limit: None,
            sync_deadline: None,
            offsets: HashMap::new(),
            state_timestamp_ms: 0,
            last_stored: None,
            unpersisted_replacement: None,
        }
    }

    /// Restores a group from its stored metadata: stable with its members (who keep
    /// heartbeating with their generation), or empty.
    pub fn restore(&mut self, stored: StoredGroup, now: Instant) {
        self.last_stored = Some(stored.clone());
        self.generation = stored.generation;
        self.protocol_type = stored.protocol_type;
        self.protocol_name = stored.protocol_name;
        self.leader = stored.leader;
        self.state_timestamp_ms = stored.state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        for m in stored.members {
            if let Some(instance) = &m.instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let protocol = self.protocol_name.clone().unwrap_or_default();
            let member = Member {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: m.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                protocols: vec![(protocol, m.subscription)],
                assignment: m.assignment,
                session_deadline: now + m.session_timeout,
                join_waiter: None,
                sync_waiter: None,
            };
            self.members.insert(m.member_id, member);
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// What the metadata record stores of the group.
    pub fn stored(&self) -> StoredGroup {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        StoredGroup {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: m.session_timeout,
                    rebalance_timeout: m.rebalance_timeout,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Handles a JoinGroup.
    pub fn join(
        &mut self,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResponse> {
        let member_id = request.member_id.clone();
        if let Err(error) = self.check_join(&request, limits) {
            return Reply::Now(JoinResponse::error_for(error, &member_id));
        }
        if member_id.is_empty() {
            return self.join_unknown_member(request, limits, now, now_ms);
        }
        if self.pending.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(request, limits, now, now_ms);
        }
        let Some(member) = self.members.get(&member_id) else {
            return Reply::Now(JoinResponse::error_for(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        };
        if member.instance_id != request.instance_id {
            return Reply::Now(JoinResponse::error_for(
                ResponseError::FencedInstanceId,
                &member_id,
            ));
        }
        let unchanged = member.protocols == request.protocols;
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(request, now);
                self.await_join(&member_id, now, now_ms)
            }
            // A member that missed its join response asks again: tell it the same.
            GroupState::CompletingRebalance if unchanged => {
                Reply::Now(self.join_response(&member_id))
            }
            GroupState::Stable if unchanged && self.leader.as_deref() != Some(&member_id) => {
                Reply::Now(self.join_response(&member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(request, now);
                self.prepare_rebalance(limits, now, now_ms);
                self.await_join(&member_id, now, now_ms)
            }
            GroupState::Empty | GroupState::Dead => Reply::Now(JoinResponse::error_for(
                ResponseError::UnknownMemberId,
                &member_id,
            )),
        }
    }

    fn check_join(&self, request: &JoinRequest, limits: &GroupLimits) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if request.session_timeout < limits.min_session_timeout
            || request.session_timeout > limits.max_session_timeout
        {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        if self.state != GroupState::Empty {
            let same_type = self.protocol_type.as_deref() == Some(&request.protocol_type);
            let common = request
                .protocols
                .iter()
                .any(|(name, _)| self.supported_by_all(name));
            if !same_type || !common {
                return Err(ResponseError::InconsistentGroupProtocol);
            }
        }
        Ok(())
    }

    fn supported_by_all(&self, protocol: &str) -> bool {
        self.members
            .values()
            .all(|m| m.protocols.iter().any(|(name, _)| name == protocol))
    }

    fn join_unknown_member(
        &mut self,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResponse> {
        let new_id = format!("{}-{}", request.client_id, Uuid::new_v4());
        if let Some(instance) = request.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old_id, new_id, request, limits, now, now_ms);
            }
            let request = JoinRequest {
                member_id: new_id,
                ..request
            };
            return self.add_member_and_rebalance(request, limits, now, now_ms);
        }
        if request.require_known_member_id {
            // KIP-394: the member must come back with this id; until then it holds no place.
            self.pending
                .insert(new_id.clone(), now + request.session_timeout);
            return Reply::Now(JoinResponse::error_for(
                ResponseError::MemberIdRequired,
                &new_id,
            ));
        }
        let request = JoinRequest {
            member_id: new_id,
            ..request
        };
        self.add_member_and_rebalance(request, limits, now, now_ms)
    }

    /// KIP-345: a static member that restarted takes over its old place under a new member
    /// id; the old id is fenced. A stable group keeps its assignment and does not rebalance.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResponse> {
        let Some(mut member) = self.members.shift_remove(old_id) else {
            return Reply::Now(JoinResponse::error_for(
                ResponseError::UnknownMemberId,
                &new_id,
            ));
        };
        member.dismiss(ResponseError::FencedInstanceId);
        let unchanged = member.protocols == request.protocols;
        let old = ReplacedFields {
            client_id: member.client_id.clone(),
            client_host: member.client_host.clone(),
            session_timeout: member.session_timeout,
            rebalance_timeout: member.rebalance_timeout,
            session_deadline: member.session_deadline,
        };
        member.member_id = new_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.protocols = request.protocols.clone();
        member.session_deadline = now + request.session_timeout;
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if self.state == GroupState::Stable && unchanged {
            // No rebalance, so nothing else will write the new member id: it must reach the
            // log before the member hears it, or a reload would fence the live member.
            self.unpersisted_replacement = Some(StaticReplacement {
                old_id: old_id.to_string(),
                new_id: new_id.clone(),
                old,
                was_leader,
            });
            return Reply::Now(self.join_response(&new_id));
        }
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(limits, now, now_ms);
        }
        self.await_join(&new_id, now, now_ms)
    }

    /// A static member replacement that must be written before it is answered, if the last
    /// JoinGroup made one.
    pub fn take_unpersisted_replacement(&mut self) -> Option<StaticReplacement> {
        self.unpersisted_replacement.take()
    }

    /// Undoes a static member replacement whose record could not be written: the old
    /// member id is the member again (its parked requests were fenced and stay so).
    pub fn revert_replacement(&mut self, replaced: StaticReplacement) {
        let Some(mut member) = self.members.shift_remove(&replaced.new_id) else {
            return;
        };
        member.member_id = replaced.old_id.clone();
        member.client_id = replaced.old.client_id;
        member.client_host = replaced.old.client_host;
        member.session_timeout = replaced.old.session_timeout;
        member.rebalance_timeout = replaced.old.rebalance_timeout;
        member.session_deadline = replaced.old.session_deadline;
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), replaced.old_id.clone());
        }
        if replaced.was_leader {
            self.leader = Some(replaced.old_id.clone());
        }
        self.members.insert(replaced.old_id, member);
    }

    fn add_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResponse> {
        let member_id = request.member_id.clone();
        if self.members.len() >= limits.max_size {
            return Reply::Now(JoinResponse::error_for(
                ResponseError::GroupMaxSizeReached,
                &member_id,
            ));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            instance_id: request.instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout: request.session_timeout,
            rebalance_timeout: request.rebalance_timeout,
            protocols: request.protocols,
            assignment: Bytes::new(),
            session_deadline: now + request.session_timeout,
            join_waiter: None,
            sync_waiter: None,
        };
        self.members.insert(member_id.clone(), member);
        match self.state {
            GroupState::PreparingRebalance => self.extend_initial_join(limits, now),
            _ => self.prepare_rebalance(limits, now, now_ms),
        }
        self.await_join(&member_id, now, now_ms)
    }

    fn update_member(&mut self, request: JoinRequest, now: Instant) {
        if let Some(member) = self.members.get_mut(&request.member_id) {
            member.protocols = request.protocols;
            member.session_timeout = request.session_timeout;
            member.rebalance_timeout = request.rebalance_timeout;
            member.session_deadline = now + request.session_timeout;
        }
    }

    /// Parks a member's JoinGroup until the join completes (which may be now).
    fn await_join(&mut self, member_id: &str, now: Instant, now_ms: i64) -> Reply<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(member_id) {
            member.join_waiter = Some(tx);
        }
        // A join completing here has this member in it, so the group is not left empty and
        // there is nothing to persist yet (the leader's sync persists the generation).
        let _ = self.maybe_complete_join(now, now_ms);
        Reply::Wait(rx)
    }

    /// Starts a rebalance: every member must rejoin, by the longest rebalance timeout.
    fn prepare_rebalance(&mut self, limits: &GroupLimits, now: Instant, now_ms: i64) {
        // Syncs waiting for an assignment of the generation being abandoned start over.
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::RebalanceInProgress));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if self.state == GroupState::Empty && !limits.initial_rebalance_delay.is_zero() {
            // Kafka's initial delay: let the first members of a new group arrive together.
            self.join_deadline = Some(now + limits.initial_rebalance_delay.min(timeout));
            self.initial_join_limit = Some(now + timeout);
        } else {
            self.join_deadline = Some(now + timeout);
            self.initial_join_limit = None;
        }
        self.sync_deadline = None;
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    /// A member arriving during the initial delay pushes it back, up to the limit.
    fn extend_initial_join(&mut self, limits: &GroupLimits, now: Instant) {
        if let (Some(limit), Some(deadline)) = (self.initial_join_limit, self.join_deadline) {
            self.join_deadline = Some(
                (now + limits.initial_rebalance_delay)
                    .min(limit)
                    .max(deadline),
            );
        }
    }

    /// Completes the join once every member has rejoined (and no initial delay runs).
    fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) -> Effects {
        if self.state != GroupState::PreparingRebalance {
            return Effects::default();
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let delayed = self.initial_join_limit.is_some();
        let due = self.join_deadline.is_some_and(|d| now >= d);
        if (all_joined && !delayed) || due {
            return self.complete_join(now, now_ms);
        }
        Effects::default()
    }

    /// Forms the next generation from the members that rejoined.
    fn complete_join(&mut self, now: Instant, now_ms: i64) -> Effects {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in gone {
            self.remove_member(&member_id);
        }
        self.generation += 1;
        self.join_deadline = None;
        self.initial_join_limit = None;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return Effects {
                persist_metadata: true,
            };
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.sync_deadline = Some(now + timeout);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in ids {
            let response = self.join_response(&member_id);
            if let Some(member) = self.members.get_mut(&member_id) {
                member.session_deadline = now + member.session_timeout;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(response);
                }
            }
        }
        Effects::default()
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.supported_by_all(name))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        // Ties go to the first member's preference order.
        candidates
            .iter()
            .max_by_key(|name| {
                let position = candidates.iter().position(|c| c == *name).unwrap_or(0);
                (
                    votes.get(*name).copied().unwrap_or(0),
                    usize::MAX - position,
                )
            })
            .map(|name| name.to_string())
    }

    fn join_response(&self, member_id: &str) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Checks that `member_id` (with `instance_id`) is a member of `generation`.
    pub fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id
            && let Some(current) = self.static_members.get(instance)
            && current != member_id
        {
            return Err(ResponseError::FencedInstanceId);
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if member.instance_id.as_deref() != instance_id && instance_id.is_some() {
            return Err(ResponseError::FencedInstanceId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Checks an OffsetCommit's sender: a member of the current generation, or (generation
    /// -1) a consumer committing for an empty group it does not join.
    pub fn check_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        // Kafka's ClassicGroup.validateOffsetCommit: who and which generation first, the
        // state last, so a commit from an older generation is ILLEGAL_GENERATION whatever
        // the group is doing.
        match self.state {
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty if generation < 0 => Ok(()),
            state => {
                self.check_member(member_id, instance_id, generation)?;
                if state == GroupState::CompletingRebalance {
                    return Err(ResponseError::RebalanceInProgress);
                }
                Ok(())
            }
        }
    }

    /// The topics the members subscribe to, when the group runs the consumer protocol;
    /// `None` when a subscription cannot be read (treat every topic as subscribed).
    pub fn subscribed_topics(&self) -> Option<std::collections::HashSet<String>> {
        let mut topics = std::collections::HashSet::new();
        if self.protocol_type.as_deref() != Some("consumer") {
            return Some(topics);
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        for member in self.members.values() {
            // A member's metadata is whatever its client sent: bounded before it is decoded.
            let subscription =
                strata_wire::embedded::consumer_subscription(&member.metadata_for(&protocol))
                    .ok()?;
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// A request from a member of the current generation: checks it is one, and restarts its
    /// session.
    fn hear_from(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, instance_id, generation)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline = now + member.session_timeout;
        }
        Ok(())
    }

    /// Handles a SyncGroup. The leader's assignments are returned for the caller to persist
    /// (then [`Group::complete_sync`]); a follower waits for them.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<SyncStep, ResponseError> {
        self.hear_from(member_id, instance_id, generation, now)?;
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Stable => Ok(SyncStep::Done(
                self.members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default(),
            )),
            _ if self.leader.as_deref() == Some(member_id) => Ok(SyncStep::Leader),
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(member_id) {
                    member.sync_waiter = Some(tx);
                }
                Ok(SyncStep::Wait(rx))
            }
        }
    }

    /// The leader's assignments could not be written: every member waiting in SyncGroup is
    /// answered `error` now (not at the rebalance timeout), and the group rebalances again,
    /// as Kafka's coordinator does.
    pub fn fail_sync(
        &mut self,
        error: ResponseError,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(error));
            }
        }
        self.prepare_rebalance(limits, now, now_ms);
    }

    /// Installs the leader's assignments (members it left out get none) and makes the group
    /// stable, answering every waiting SyncGroup. Call once they are persisted.
    pub fn complete_sync(&mut self, assignments: HashMap<String, Bytes>, now_ms: i64) {
        for member in self.members.values_mut() {
            member.assignment = assignments
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Ok(member.assignment.clone()));
            }
        }
        self.sync_deadline = None;
        self.set_state(GroupState::Stable, now_ms);
    }

    /// The group's metadata as it will be once `assignments` are installed, for persisting.
    pub fn stored_with(&self, assignments: &HashMap<String, Bytes>) -> StoredGroup {
        let mut stored = self.stored();
        for member in &mut stored.members {
            member.assignment = assignments
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
        }
        stored
    }

    /// Whether the group is still in the generation a leader's sync was for.
    pub fn awaits_assignment(&self, generation: i32) -> bool {
        self.state == GroupState::CompletingRebalance && self.generation == generation
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.hear_from(member_id, instance_id, generation, now)?;
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Handles one member of a LeaveGroup, by member id or (static members) instance id.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Result<Effects, ResponseError> {
        let resolved = match instance_id {
            Some(instance) => {
                let current = self
                    .static_members
                    .get(instance)
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && current != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
                current.clone()
            }
            None => member_id.to_string(),
        };
        if self.pending.remove(&resolved).is_some() {
            return Ok(Effects::default());
        }
        if !self.members.contains_key(&resolved) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(self.member_gone(&resolved, limits, now, now_ms))
    }

    /// Removes a member that left or expired, and rebalances the rest.
    fn member_gone(
        &mut self,
        member_id: &str,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Effects {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(limits, now, now_ms);
                self.maybe_complete_join(now, now_ms)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, now_ms),
            GroupState::Empty | GroupState::Dead => Effects::default(),
        }
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut member) = self.members.shift_remove(member_id) {
            if let Some(instance) = &member.instance_id {
                self.static_members.remove(instance);
            }
            member.dismiss(ResponseError::UnknownMemberId);
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    /// Advances time: expires silent members and pending ids, completes a join whose time
    /// has come, and gives up on members that never synced.
    pub fn tick(&mut self, limits: &GroupLimits, now: Instant, now_ms: i64) -> Effects {
        self.pending.retain(|_, deadline| *deadline > now);
        let mut effects = Effects::default();
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting() && m.session_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            effects.persist_metadata |= self
                .member_gone(&member_id, limits, now, now_ms)
                .persist_metadata;
        }
        if self.state == GroupState::PreparingRebalance {
            if self.join_deadline.is_some_and(|d| now >= d) {
                self.initial_join_limit = None;
            }
            effects.persist_metadata |= self.maybe_complete_join(now, now_ms).persist_metadata;
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            let unsynced: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none() && self.leader.as_ref() != Some(&m.member_id))
                .map(|m| m.member_id.clone())
                .collect();
            let leader = self.leader.clone();
            for member_id in unsynced.into_iter().chain(leader) {
                self.remove_member(&member_id);
            }
            self.prepare_rebalance(limits, now, now_ms);
            effects.persist_metadata |= self.maybe_complete_join(now, now_ms).persist_metadata;
        }
        effects
    }

    /// Kafka's `offsets.retention.minutes`: the offsets of a group that has been empty for
    /// `retention` that were also committed at least that long ago.
    pub fn expired_offsets(&self, retention: Duration, now_ms: i64) -> Vec<(String, i32)> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let empty_long_enough = self.state == GroupState::Empty
            && now_ms.saturating_sub(self.state_timestamp_ms) >= retention_ms;
        if !empty_long_enough {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|(_, o)| now_ms.saturating_sub(o.commit_timestamp_ms) >= retention_ms)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether the group holds anything worth keeping: members or offsets.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.offsets.is_empty() && self.pending.is_empty()
    }
}

/// The next step of a SyncGroup.
pub enum SyncStep {
    /// The assignment, at once (a stable group).
    Done(Bytes),
    /// The leader: the caller persists its assignments, then completes the sync.
    Leader,
    /// A follower: its assignment arrives when the leader's does.
    Wait(oneshot::Receiver<SyncResponse>),
}

/// A group as its metadata record stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

/// A member as the group's metadata record stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: GroupLimits = GroupLimits {
        min_session_timeout: Duration::from_secs(1),
        max_session_timeout: Duration::from_secs(60),
        initial_rebalance_delay: Duration::ZERO,
        max_size: 3,
    };

    fn request(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: instance.map(str::to_string),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(20),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("{p}-meta"))))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn now_response(reply: Reply<JoinResponse>) -> JoinResponse {
        match reply {
            Reply::Now(response) => response,
            Reply::Wait(_) => panic!("expected an immediate answer"),
        }
    }

    fn waiting(reply: Reply<JoinResponse>) -> oneshot::Receiver<JoinResponse> {
        match reply {
            Reply::Wait(rx) => rx,
            Reply::Now(response) => panic!("expected to wait, got {response:?}"),
        }
    }

    /// Joins a new dynamic member through the KIP-394 round trip; answers its receiver.
    fn join_new(
        group: &mut Group,
        protocols: &[&str],
        now: Instant,
    ) -> oneshot::Receiver<JoinResponse> {
        let first = now_response(group.join(request("", None, protocols), &LIMITS, now, 0));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        waiting(group.join(request(&first.member_id, None, protocols), &LIMITS, now, 0))
    }

    fn joined(rx: &mut oneshot::Receiver<JoinResponse>) -> JoinResponse {
        rx.try_recv().expect("the join completed")
    }

    #[test]
    fn two_members_form_a_generation_the_leader_assigns_and_the_group_is_stable() {
        let now = Instant::now();
        let mut group = Group::new("g");
        let mut first = join_new(&mut group, &["range", "roundrobin"], now);
        let one = joined(&mut first);
        assert_eq!((one.error, one.generation), (None, 1));
        assert_eq!(one.leader, one.member_id);
        // A second member joins: a rebalance; the first rejoins and both get generation 2.
        let mut second = join_new(&mut group, &["roundrobin", "range"], now);
        assert_eq!(group.state, GroupState::PreparingRebalance);
        assert!(
            second.try_recv().is_err(),
            "waits for the first member to rejoin"
        );
        let mut again = waiting(group.join(
            request(&one.member_id, None, &["range", "roundrobin"]),
            &LIMITS,
            now,
            0,
        ));
        let (leader, follower) = (joined(&mut again), joined(&mut second));
        assert_eq!((leader.generation, follower.generation), (2, 2));
        assert_eq!(leader.leader, one.member_id, "the leader stays");
        assert_eq!(leader.members.len(), 2);
        assert!(
            follower.members.is_empty(),
            "only the leader sees the members"
        );
        // One vote each: the tie goes to the first member's preference.
        assert_eq!(leader.protocol_name.as_deref(), Some("range"));

        let Ok(SyncStep::Wait(mut follower_sync)) = group.sync(&follower.member_id, None, 2, now)
        else {
            panic!("a follower waits for the leader");
        };
        assert!(matches!(
            group.sync(&leader.member_id, None, 2, now),
            Ok(SyncStep::Leader)
        ));
        let assignments = HashMap::from([
            (leader.member_id.clone(), Bytes::from_static(b"a")),
            (follower.member_id.clone(), Bytes::from_static(b"b")),
        ]);
        group.complete_sync(assignments, 0);
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(
            follower_sync.try_recv().expect("synced"),
            Ok(Bytes::from_static(b"b"))
        );
        assert_eq!(group.heartbeat(&follower.member_id, None, 2, now), Ok(()));
        assert_eq!(
            group.heartbeat(&follower.member_id, None, 1, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            group.heartbeat("stranger", None, 2, now),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn a_silent_member_expires_and_the_rest_rebalance() {
        let now = Instant::now();
        let mut group = Group::new("g");
        let one = joined(&mut join_new(&mut group, &["range"], now));
        let mut two = join_new(&mut group, &["range"], now);
        let mut again =
            waiting(group.join(request(&one.member_id, None, &["range"]), &LIMITS, now, 0));
        let (one, two) = (joined(&mut again), joined(&mut two));
        assert!(matches!(
            group.sync(&one.member_id, None, 2, now),
            Ok(SyncStep::Leader)
        ));
        group.complete_sync(HashMap::new(), 0);
        // Member two stops heartbeating; one keeps going.
        let later = now + Duration::from_secs(8);
        assert_eq!(group.heartbeat(&one.member_id, None, 2, later), Ok(()));
        let _ = group.tick(&LIMITS, now + Duration::from_secs(11), 0);
        assert!(!group.members.contains_key(&two.member_id), "expired");
        assert_eq!(group.state, GroupState::PreparingRebalance);
        assert_eq!(
            group.heartbeat(&one.member_id, None, 2, later),
            Err(ResponseError::RebalanceInProgress)
        );
    }

    #[test]
    fn a_static_member_returns_to_a_stable_group_without_a_rebalance_and_fences_its_old_self() {
        let now = Instant::now();
        let (mut group, first) = stable_static_group(now);
        // The process restarts: same instance id, no member id.
        let back = now_response(group.join(request("", Some("i-1"), &["range"]), &LIMITS, now, 0));
        assert_eq!(
            (back.error, back.generation),
            (None, 1),
            "same generation, no rebalance"
        );
        assert_ne!(back.member_id, first.member_id);
        assert_eq!(group.state, GroupState::Stable);
        let Ok(SyncStep::Done(assignment)) = group.sync(&back.member_id, Some("i-1"), 1, now)
        else {
            panic!("the returning member gets its assignment at once");
        };
        assert_eq!(assignment, Bytes::from_static(b"mine"));
        assert_eq!(
            group.heartbeat(&first.member_id, Some("i-1"), 1, now),
            Err(ResponseError::FencedInstanceId),
            "the old process is fenced"
        );
    }

    #[test]
    fn joins_are_checked_and_the_group_size_is_capped() {
        let now = Instant::now();
        let mut group = Group::new("g");
        let mut short = request("", None, &["range"]);
        short.session_timeout = Duration::from_millis(10);
        assert_eq!(
            now_response(group.join(short, &LIMITS, now, 0)).error,
            Some(ResponseError::InvalidSessionTimeout)
        );
        for _ in 0..3 {
            drop(join_new(&mut group, &["range"], now));
        }
        let refused = now_response(group.join(request("", None, &["range"]), &LIMITS, now, 0));
        let pending = refused.member_id;
        assert_eq!(
            now_response(group.join(request(&pending, None, &["range"]), &LIMITS, now, 0)).error,
            Some(ResponseError::GroupMaxSizeReached)
        );
        assert_eq!(
            now_response(group.join(request("", None, &["sticky"]), &LIMITS, now, 0)).error,
            Some(ResponseError::InconsistentGroupProtocol),
            "no protocol in common with the members"
        );
    }

    #[test]
    fn only_an_empty_groups_old_offsets_expire() {
        let retention = Duration::from_secs(60);
        let committed = |at: i64| CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: at,
        };
        let mut group = Group::new("g");
        group.offsets.insert(("old".into(), 0), committed(0));
        group.offsets.insert(("new".into(), 0), committed(50_000));
        group.state_timestamp_ms = 10_000;
        assert!(
            group.expired_offsets(retention, 65_000).is_empty(),
            "not empty long enough"
        );
        assert_eq!(
            group.expired_offsets(retention, 70_000),
            [("old".to_string(), 0)]
        );
        let now = Instant::now();
        drop(join_new(&mut group, &["range"], now));
        assert!(
            group.expired_offsets(retention, 1_000_000).is_empty(),
            "a group with members keeps its offsets"
        );
    }

    #[test]
    fn commits_need_the_current_generation_unless_the_group_is_empty() {
        let now = Instant::now();
        let mut group = Group::new("g");
        assert_eq!(
            group.check_commit("", None, -1),
            Ok(()),
            "a simple consumer commits"
        );
        let member = joined(&mut join_new(&mut group, &["range"], now));
        assert_eq!(
            group.check_commit(&member.member_id, None, 1),
            Err(ResponseError::RebalanceInProgress),
            "not before the assignment"
        );
        assert!(matches!(
            group.sync(&member.member_id, None, 1, now),
            Ok(SyncStep::Leader)
        ));
        group.complete_sync(HashMap::new(), 0);
        assert_eq!(group.check_commit(&member.member_id, None, 1), Ok(()));
        assert_eq!(
            group.check_commit(&member.member_id, None, 0),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            group.check_commit("", None, -1),
            Err(ResponseError::UnknownMemberId),
            "a group with members takes commits only from them"
        );
    }

    /// A stable group of one static member ("i-1") whose assignment is "mine".
    fn stable_static_group(now: Instant) -> (Group, JoinResponse) {
        let mut group = Group::new("g");
        let mut rx = waiting(group.join(request("", Some("i-1"), &["range"]), &LIMITS, now, 0));
        let first = joined(&mut rx);
        assert!(matches!(
            group.sync(&first.member_id, Some("i-1"), 1, now),
            Ok(SyncStep::Leader)
        ));
        group.complete_sync(
            HashMap::from([(first.member_id.clone(), Bytes::from_static(b"mine"))]),
            0,
        );
        (group, first)
    }

    #[test]
    fn a_static_replacement_is_persisted_before_it_is_answered_and_undone_if_that_fails() {
        let now = Instant::now();
        let (mut group, first) = stable_static_group(now);
        assert!(group.take_unpersisted_replacement().is_none());
        let back = now_response(group.join(request("", Some("i-1"), &["range"]), &LIMITS, now, 0));
        let replaced = group
            .take_unpersisted_replacement()
            .expect("the new member id must be written first");
        let stored = group.stored();
        assert_eq!(
            stored.members[0].member_id, back.member_id,
            "what is written"
        );
        assert_eq!(stored.members[0].assignment, Bytes::from_static(b"mine"));
        // The write failed: the old member id is the member again.
        group.revert_replacement(replaced);
        assert_eq!(
            group.heartbeat(&first.member_id, Some("i-1"), 1, now),
            Ok(())
        );
        assert_eq!(
            group.heartbeat(&back.member_id, Some("i-1"), 1, now),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(group.leader.as_deref(), Some(first.member_id.as_str()));
        assert_eq!(group.state, GroupState::Stable);
    }

    #[test]
    fn a_failed_sync_write_answers_every_waiting_member_and_rebalances() {
        let now = Instant::now();
        let mut group = Group::new("g");
        let mut first = join_new(&mut group, &["range"], now);
        let one = joined(&mut first);
        let mut second = join_new(&mut group, &["range"], now);
        let mut again =
            waiting(group.join(request(&one.member_id, None, &["range"]), &LIMITS, now, 0));
        let (leader, follower) = (joined(&mut again), joined(&mut second));
        let Ok(SyncStep::Wait(mut parked)) = group.sync(&follower.member_id, None, 2, now) else {
            panic!("the follower waits");
        };
        assert!(matches!(
            group.sync(&leader.member_id, None, 2, now),
            Ok(SyncStep::Leader)
        ));
        group.fail_sync(ResponseError::CoordinatorNotAvailable, &LIMITS, now, 0);
        assert_eq!(
            parked
                .try_recv()
                .expect("answered at once, not at the rebalance timeout"),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(group.state, GroupState::PreparingRebalance);
    }

    #[test]
    fn a_commit_from_an_older_generation_is_illegal_even_while_the_group_rebalances() {
        let now = Instant::now();
        let mut group = Group::new("g");
        let one = joined(&mut join_new(&mut group, &["range"], now));
        assert!(matches!(
            group.sync(&one.member_id, None, 1, now),
            Ok(SyncStep::Leader)
        ));
        group.complete_sync(HashMap::new(), 0);
        // A second member joins and the first rejoins: generation 2 is being assigned.
        let mut second = join_new(&mut group, &["range"], now);
        let mut again =
            waiting(group.join(request(&one.member_id, None, &["range"]), &LIMITS, now, 0));
        joined(&mut again);
        joined(&mut second);
        assert_eq!(group.state, GroupState::CompletingRebalance);
        assert_eq!(
            group.check_commit(&one.member_id, None, 1),
            Err(ResponseError::IllegalGeneration),
            "Kafka checks the generation before the state"
        );
        assert_eq!(
            group.check_commit(&one.member_id, None, 2),
            Err(ResponseError::RebalanceInProgress)
        );
        assert_eq!(
            group.check_commit("stranger", None, 2),
            Err(ResponseError::UnknownMemberId)
        );
    }
}
