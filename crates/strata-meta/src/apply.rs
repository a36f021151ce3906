//! Validating and applying commands. Every check runs before the first change, so a refused
//! command leaves the state exactly as it was.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::command::{
    AlterConfigs, AlterPartition, BrokerHeartbeat, CommitSegments, ConfigResource,
    CreatePartitions, CreateTopic, ElectLeaders, ElectionType, FenceBroker, MetaCommand,
    RegisterBroker, SegmentCommit, UpgradeMetadata,
};
use crate::eligibility::{self, MIN_ISR, min_isr};
use crate::error::MetaError;
use crate::names::validate_topic_name;
use crate::state::{
    BrokerRecord, CommandOutcome, Election, MetadataState, NO_LEADER, PartitionRecord,
    SegmentEntry, TopicRecord,
};
use crate::topic_config::{
    ConfigError, broker_config_def, broker_config_not_taken, topic_config_def, validate_overrides,
};
use crate::{ELIGIBLE_LEADERS, METADATA_VERSION, legacy};

/// One partition's election among the `live` brokers, by the ELR's rules if `eligible`.
fn elect(
    p: &mut PartitionRecord,
    election: ElectionType,
    live: &BTreeSet<i32>,
    eligible: bool,
) -> Election {
    let chosen = match election {
        ElectionType::Preferred => {
            let Some(&preferred) = p.replicas.first() else {
                return Election::PreferredNotAvailable;
            };
            if p.leader == preferred {
                return Election::NotNeeded;
            }
            if !live.contains(&preferred) || !p.isr.contains(&preferred) {
                return Election::PreferredNotAvailable;
            }
            p.leader = preferred;
            preferred
        }
        ElectionType::Unclean if p.leader != NO_LEADER => return Election::NotNeeded,
        ElectionType::Unclean if !eligible => match legacy::elect_unclean(p, live) {
            Some(leader) => leader,
            None => return Election::NoEligibleLeader,
        },
        ElectionType::Unclean => {
            if !p.elect_eligible(live) {
                let Some(&any) = p.replicas.iter().find(|b| live.contains(b)) else {
                    return Election::NoEligibleLeader;
                };
                // It may lack acknowledged records: it alone is in sync with itself now,
                // and nobody else is known to hold what it holds.
                p.leader = any;
                p.isr = vec![any];
                p.elr.clear();
            }
            p.leader
        }
    };
    p.leader_epoch += 1;
    p.partition_epoch += 1;
    Election::Elected { leader: chosen }
}

/// With eligible leader replicas, `min.insync.replicas` is set per topic or cluster-wide
/// only, and the cluster-wide value cannot be removed (see [`eligibility`]).
fn check_min_isr_scope(c: &AlterConfigs) -> Result<(), ConfigError> {
    let refused = |reason: &str| ConfigError::NotTaken {
        name: MIN_ISR.to_string(),
        reason: reason.to_string(),
    };
    match c.resource {
        ConfigResource::Broker(_) if c.set.contains_key(MIN_ISR) => Err(refused(
            "set it per topic or cluster-wide: every leader and the quorum must agree on it to keep eligible leader replicas (as in Kafka)",
        )),
        ConfigResource::ClusterDefault
            if c.remove.contains(MIN_ISR) || (c.replace && !c.set.contains_key(MIN_ISR)) =>
        {
            Err(refused(
                "the cluster-wide value can be changed but not removed while eligible leader replicas are kept (as in Kafka)",
            ))
        }
        _ => Ok(()),
    }
}

/// The most partitions a topic may have.
pub const MAX_PARTITIONS: usize = 1 << 16;

fn too_many_partitions() -> MetaError {
    MetaError::InvalidPartitions {
        reason: format!("a topic has at most {MAX_PARTITIONS} partitions"),
    }
}

impl MetadataState {
    /// Applies one committed command, or refuses it without changing anything.
    pub fn apply(&mut self, command: &MetaCommand) -> Result<CommandOutcome, MetaError> {
        let applied = |result: Result<(), MetaError>| result.map(|()| CommandOutcome::Applied);
        match command {
            MetaCommand::InitCluster { cluster_id } => applied(self.init_cluster(cluster_id)),
            MetaCommand::RegisterBroker(c) => applied(self.register_broker(c)),
            MetaCommand::BrokerHeartbeat(c) => applied(self.heartbeat(c)),
            MetaCommand::FenceBroker(c) => applied(self.fence_broker(c)),
            MetaCommand::CreateTopic(c) => applied(self.create_topic(c)),
            MetaCommand::DeleteTopic { topic_id } => applied(self.delete_topic(*topic_id)),
            MetaCommand::CreatePartitions(c) => applied(self.create_partitions(c)),
            MetaCommand::AlterConfigs(c) => applied(self.alter_configs(c)),
            MetaCommand::AllocateProducerIds { broker_id, count } => {
                self.allocate_producer_ids(*broker_id, *count)
            }
            MetaCommand::CommitSegments(c) => self.commit_segments(c),
            MetaCommand::ReplaceSegments(c) => self.replace_segments(c),
            MetaCommand::AdvanceLogStart {
                topic_id,
                partition,
                log_start_offset,
            } => applied(self.advance_log_start(*topic_id, *partition, *log_start_offset)),
            MetaCommand::AlterPartition(c) => applied(self.alter_partition(c)),
            MetaCommand::ElectLeaders(c) => Ok(CommandOutcome::Elections(self.elect_leaders(c))),
            MetaCommand::ReassignPartitions(c) => {
                Ok(CommandOutcome::Reassignments(self.reassign_partitions(c)))
            }
            MetaCommand::UpgradeMetadata(c) => applied(self.upgrade_metadata(c)),
        }
    }

    fn init_cluster(&mut self, cluster_id: &str) -> Result<(), MetaError> {
        match &self.cluster_id {
            None => self.cluster_id = Some(cluster_id.to_string()),
            Some(existing) if existing == cluster_id => {}
            Some(existing) => {
                return Err(MetaError::ClusterIdMismatch {
                    existing: existing.clone(),
                    requested: cluster_id.to_string(),
                });
            }
        }
        Ok(())
    }

    fn register_broker(&mut self, c: &RegisterBroker) -> Result<(), MetaError> {
        let invalid = |reason: &str| MetaError::InvalidRegistration {
            reason: reason.to_string(),
        };
        if c.broker_id < 0 {
            return Err(invalid("broker ids are non-negative"));
        }
        if c.endpoints.is_empty() {
            return Err(invalid("a broker needs at least one endpoint"));
        }
        if c.endpoints.iter().any(|e| e.port == 0 || e.host.is_empty()) {
            return Err(invalid("every endpoint needs a host and a non-zero port"));
        }
        let predecessor = self
            .brokers
            .get(&c.broker_id)
            .map(|b| b.incarnation)
            .filter(|&previous| previous != c.incarnation);
        self.brokers.insert(
            c.broker_id,
            BrokerRecord {
                broker_id: c.broker_id,
                incarnation: c.incarnation,
                endpoints: c.endpoints.clone(),
                rack: c.rack.clone(),
                fenced: false,
                last_heartbeat_ms: c.now_ms,
                metadata_version: c.metadata_version,
            },
        );
        if let Some(previous) = predecessor {
            let intact = c.intact_predecessor == Some(previous);
            self.forget_restarted_replica(c.broker_id, intact);
        }
        self.elect_offline_leaders(c.broker_id);
        Ok(())
    }

    fn heartbeat(&mut self, c: &BrokerHeartbeat) -> Result<(), MetaError> {
        let broker = self.current_broker_mut(c.broker_id, c.incarnation)?;
        // The latest, not the largest: the controller watches it change, so a broker whose
        // clock stepped back must not look silent.
        broker.last_heartbeat_ms = c.now_ms;
        if broker.fenced {
            broker.fenced = false;
            self.elect_offline_leaders(c.broker_id);
        }
        Ok(())
    }

    fn fence_broker(&mut self, c: &FenceBroker) -> Result<(), MetaError> {
        let broker = self.current_broker_mut(c.broker_id, c.incarnation)?;
        if broker.fenced {
            return Ok(());
        }
        broker.fenced = true;
        let live = self.live_broker_ids();
        let fenced = c.broker_id;
        if self.eligible_leaders() {
            self.for_each_partition_mut(|p, min_isr| {
                eligibility::fence(p, fenced, min_isr, &live);
            });
        } else {
            self.for_each_partition_mut(|p, _| legacy::fence(p, fenced, &live));
        }
        Ok(())
    }

    /// A broker came back as a new process, with an `intact` log or not (see
    /// [`eligibility::forget_restarted`]).
    fn forget_restarted_replica(&mut self, broker_id: i32, intact: bool) {
        let live: BTreeSet<i32> = self
            .live_brokers()
            .map(|b| b.broker_id)
            .filter(|&b| b != broker_id)
            .collect();
        if self.eligible_leaders() {
            self.for_each_partition_mut(|p, min_isr| {
                eligibility::forget_restarted(p, broker_id, intact, min_isr, &live);
            });
        } else {
            self.for_each_partition_mut(|p, _| legacy::forget_restarted(p, broker_id, &live));
        }
    }

    /// Kafka's AlterPartition: the leader replaces its ISR, if it still leads under the epoch
    /// it names and saw the current partition epoch. A member it adds must be a live replica.
    fn alter_partition(&mut self, c: &AlterPartition) -> Result<(), MetaError> {
        let partition = self.known_partition(c.topic_id, c.partition)?;
        if c.leader_epoch != partition.leader_epoch {
            return Err(MetaError::FencedLeaderEpoch {
                given: c.leader_epoch,
                current: partition.leader_epoch,
            });
        }
        if c.leader_id != partition.leader {
            return Err(MetaError::NotLeader {
                broker_id: c.leader_id,
            });
        }
        if c.partition_epoch != partition.partition_epoch {
            return Err(MetaError::InvalidUpdateVersion {
                given: c.partition_epoch,
                current: partition.partition_epoch,
            });
        }
        if !c.isr.contains(&c.leader_id) {
            return Err(MetaError::InvalidIsr {
                reason: "the ISR must hold its leader".into(),
            });
        }
        let distinct: BTreeSet<_> = c.isr.iter().collect();
        if distinct.len() != c.isr.len() {
            return Err(MetaError::InvalidIsr {
                reason: format!("{:?} lists a broker twice", c.isr),
            });
        }
        let ineligible = c.isr.iter().copied().find(|b| {
            !partition.isr.contains(b)
                && (!partition.replicas.contains(b)
                    || self.broker(*b).is_none_or(|broker| broker.fenced))
        });
        if let Some(broker_id) = ineligible {
            return Err(MetaError::IneligibleReplica { broker_id });
        }
        let min_isr = self
            .eligible_leaders()
            .then(|| self.topic_min_isr(c.topic_id));
        let isr = c.isr.clone();
        self.for_partition_mut(c.topic_id, c.partition, |p| {
            match min_isr {
                Some(min_isr) => p.replace_isr(isr, min_isr),
                None => p.isr = isr,
            }
            p.partition_epoch += 1;
        });
        self.complete_reassignment_if_ready(c.topic_id, c.partition);
        Ok(())
    }

    /// Runs each named partition's election on its own.
    fn elect_leaders(&mut self, c: &ElectLeaders) -> Vec<Election> {
        let live = self.live_broker_ids();
        let eligible = self.eligible_leaders();
        c.partitions
            .iter()
            .map(|&(topic_id, index)| {
                if self.known_partition(topic_id, index).is_err() {
                    return Election::UnknownPartition;
                }
                let mut outcome = Election::NotNeeded;
                self.for_partition_mut(topic_id, index, |p| {
                    outcome = elect(p, c.election, &live, eligible);
                });
                outcome
            })
            .collect()
    }

    fn create_topic(&mut self, c: &CreateTopic) -> Result<(), MetaError> {
        validate_topic_name(&c.name).map_err(|reason| MetaError::InvalidTopicName {
            name: c.name.clone(),
            reason,
        })?;
        if self.topic_ids.contains_key(&c.name) || self.topics.contains_key(&c.topic_id) {
            return Err(MetaError::TopicAlreadyExists {
                name: c.name.clone(),
            });
        }
        if c.topic_id.is_nil() {
            return Err(MetaError::InvalidTopicId);
        }
        if c.assignments.is_empty() {
            return Err(MetaError::InvalidPartitions {
                reason: "a topic needs at least one partition".into(),
            });
        }
        let replication_factor = c.assignments[0].len();
        self.check_assignments(&c.assignments, replication_factor)?;
        let configs = validate_overrides(&c.configs)?;
        let partitions = c
            .assignments
            .iter()
            .map(|replicas| self.new_partition(replicas))
            .collect();
        self.topic_ids.insert(c.name.clone(), c.topic_id);
        self.topics.insert(
            c.topic_id,
            TopicRecord {
                topic_id: c.topic_id,
                name: c.name.clone(),
                configs,
                partitions,
            },
        );
        Ok(())
    }

    fn delete_topic(&mut self, topic_id: Uuid) -> Result<(), MetaError> {
        let topic = self
            .topics
            .remove(&topic_id)
            .ok_or(MetaError::UnknownTopicId { topic_id })?;
        self.topic_ids.remove(&topic.name);
        self.manifest.remove(&topic_id);
        self.reassignments.remove(&topic_id);
        Ok(())
    }

    fn create_partitions(&mut self, c: &CreatePartitions) -> Result<(), MetaError> {
        let topic = self.known_topic(c.topic_id)?;
        if c.new_assignments.is_empty() {
            return Err(MetaError::InvalidPartitions {
                reason: format!(
                    "topic '{}' already has {} partitions; the new count must be larger",
                    topic.name,
                    topic.partitions.len()
                ),
            });
        }
        let replication_factor = self.replication_factor(c.topic_id).unwrap_or(0);
        if topic.partitions.len() + c.new_assignments.len() > MAX_PARTITIONS {
            return Err(too_many_partitions());
        }
        self.check_assignments(&c.new_assignments, replication_factor)?;
        let added: Vec<_> = c
            .new_assignments
            .iter()
            .map(|replicas| self.new_partition(replicas))
            .collect();
        if let Some(topic) = self.topics.get_mut(&c.topic_id) {
            topic.partitions.extend(added);
        }
        Ok(())
    }

    /// Checks a configuration change without making it: every name known for the resource's
    /// kind, every value valid, the resource existing. Answers the normalised values to set.
    pub fn check_alter_configs(
        &self,
        c: &AlterConfigs,
    ) -> Result<BTreeMap<String, String>, MetaError> {
        let validate = |name: &str, value: &str| -> Result<String, ConfigError> {
            let def = match c.resource {
                ConfigResource::Topic(_) => topic_config_def(name),
                ConfigResource::Broker(_) | ConfigResource::ClusterDefault => {
                    if let Some(reason) = broker_config_not_taken(name) {
                        return Err(ConfigError::NotTaken {
                            name: name.to_string(),
                            reason: reason.to_string(),
                        });
                    }
                    broker_config_def(name)
                }
            };
            def.ok_or_else(|| ConfigError::Unknown {
                name: name.to_string(),
            })?
            .validate(value)
        };
        let set = c
            .set
            .iter()
            .map(|(name, value)| Ok((name.clone(), validate(name, value)?)))
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
        for name in &c.remove {
            // Removing an override is valid for any known name, set or not, and for a name
            // Strata does not take (it cannot be set).
            if let Err(ConfigError::Unknown { .. }) = validate(name, "") {
                return Err(ConfigError::Unknown { name: name.clone() }.into());
            }
        }
        match c.resource {
            ConfigResource::Topic(topic_id) => {
                self.known_topic(topic_id)?;
            }
            ConfigResource::Broker(broker_id) if !self.brokers.contains_key(&broker_id) => {
                return Err(MetaError::UnknownBroker { broker_id });
            }
            ConfigResource::Broker(_) | ConfigResource::ClusterDefault => {}
        }
        if self.eligible_leaders() {
            check_min_isr_scope(c)?;
        }
        Ok(set)
    }

    fn alter_configs(&mut self, c: &AlterConfigs) -> Result<(), MetaError> {
        let set = self.check_alter_configs(c)?;
        let configs = match c.resource {
            ConfigResource::Topic(topic_id) => {
                &mut self
                    .topics
                    .get_mut(&topic_id)
                    .ok_or(MetaError::UnknownTopicId { topic_id })?
                    .configs
            }
            ConfigResource::Broker(broker_id) => self.broker_configs.entry(broker_id).or_default(),
            ConfigResource::ClusterDefault => &mut self.cluster_configs,
        };
        if c.replace {
            configs.clear();
        }
        for name in &c.remove {
            configs.remove(name);
        }
        configs.extend(set);
        if let ConfigResource::Broker(broker_id) = c.resource {
            self.broker_configs
                .retain(|id, configs| *id != broker_id || !configs.is_empty());
        }
        let min_isr_changed =
            c.replace || c.set.contains_key(MIN_ISR) || c.remove.contains(MIN_ISR);
        if self.eligible_leaders() && min_isr_changed {
            self.clear_elrs_under(c.resource);
        }
        Ok(())
    }

    /// Empties the ELRs whose min ISR `resource` sets: they were chosen under another value.
    fn clear_elrs_under(&mut self, resource: ConfigResource) {
        let topics: Vec<&mut TopicRecord> = match resource {
            ConfigResource::Topic(topic_id) => self.topics.get_mut(&topic_id).into_iter().collect(),
            ConfigResource::ClusterDefault => self.topics.values_mut().collect(),
            ConfigResource::Broker(_) => Vec::new(),
        };
        for topic in topics {
            topic
                .partitions
                .iter_mut()
                .for_each(PartitionRecord::clear_elr);
        }
    }

    fn allocate_producer_ids(
        &mut self,
        broker_id: i32,
        count: u32,
    ) -> Result<CommandOutcome, MetaError> {
        if !self.brokers.contains_key(&broker_id) {
            return Err(MetaError::UnknownBroker { broker_id });
        }
        if count == 0 {
            return Err(MetaError::InvalidProducerIdBlock);
        }
        let first_id = self.next_producer_id;
        self.next_producer_id = first_id
            .checked_add(i64::from(count))
            .ok_or(MetaError::ProducerIdsExhausted)?;
        Ok(CommandOutcome::ProducerIdBlock { first_id, count })
    }

    fn commit_segments(&mut self, c: &CommitSegments) -> Result<CommandOutcome, MetaError> {
        if c.object.is_empty() || c.segments.is_empty() {
            return Err(MetaError::InvalidSegment {
                reason: "a commit names an object and at least one segment".into(),
            });
        }
        let (mut committed, mut refused) = (0, 0);
        for segment in &c.segments {
            match self.commit_segment(&c.object, segment) {
                Ok(()) => committed += 1,
                Err(_) => refused += 1,
            }
        }
        Ok(CommandOutcome::SegmentsCommitted { committed, refused })
    }

    /// Records one segment of an object, or refuses it without changing anything.
    pub(crate) fn commit_segment(
        &mut self,
        object: &str,
        c: &SegmentCommit,
    ) -> Result<(), MetaError> {
        let partition = self.known_partition(c.topic_id, c.partition)?;
        if c.leader_epoch != partition.leader_epoch {
            return Err(MetaError::FencedLeaderEpoch {
                given: c.leader_epoch,
                current: partition.leader_epoch,
            });
        }
        let invalid = |reason: String| Err(MetaError::InvalidSegment { reason });
        if c.base_offset < 0 || c.last_offset < c.base_offset {
            return invalid(format!(
                "offsets {}..={} are not a range",
                c.base_offset, c.last_offset
            ));
        }
        if c.byte_len == 0 {
            return invalid("a segment needs a non-empty byte range".into());
        }
        let entry = SegmentEntry {
            last_offset: c.last_offset,
            object: object.to_string(),
            byte_offset: c.byte_offset,
            byte_len: c.byte_len,
            max_timestamp_ms: c.max_timestamp_ms,
            leader_epoch: c.leader_epoch,
        };
        let manifest = self
            .manifest
            .entry(c.topic_id)
            .or_default()
            .entry(c.partition)
            .or_default();
        // A retried commit of the same segment (its answer was lost) is already done.
        if manifest.segments.get(&c.base_offset) == Some(&entry) {
            return Ok(());
        }
        if c.last_offset < manifest.log_start_offset {
            return invalid(format!(
                "offsets {}..={} are below the log start offset {}",
                c.base_offset, c.last_offset, manifest.log_start_offset
            ));
        }
        // Entries never overlap, so only the last one starting at or before our end can.
        if let Some((base, existing)) = manifest.segments.range(..=c.last_offset).next_back()
            && existing.last_offset >= c.base_offset
        {
            return invalid(format!(
                "offsets {}..={} overlap the committed segment {}..={}",
                c.base_offset, c.last_offset, base, existing.last_offset
            ));
        }
        // Tiered data is contiguous: a segment may not start past the committed end (an
        // uploader committing out of order), unless the log start moved past that end.
        if let Some(end) = manifest.end_offset()
            && c.base_offset > end.max(manifest.log_start_offset)
        {
            return invalid(format!(
                "offsets {}..={} would leave a gap after the committed end {end}",
                c.base_offset, c.last_offset
            ));
        }
        manifest.segments.insert(c.base_offset, entry);
        Ok(())
    }

    fn advance_log_start(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        log_start_offset: i64,
    ) -> Result<(), MetaError> {
        self.known_partition(topic_id, partition)?;
        let manifest = self
            .manifest
            .entry(topic_id)
            .or_default()
            .entry(partition)
            .or_default();
        manifest.log_start_offset = manifest.log_start_offset.max(log_start_offset);
        let start = manifest.log_start_offset;
        manifest.segments.retain(|_, s| s.last_offset >= start);
        Ok(())
    }

    pub(crate) fn known_partition(
        &self,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<&PartitionRecord, MetaError> {
        self.known_topic(topic_id)?
            .partitions
            .get(usize::try_from(partition).unwrap_or(usize::MAX))
            .ok_or(MetaError::UnknownPartition {
                topic_id,
                partition,
            })
    }

    fn known_topic(&self, topic_id: Uuid) -> Result<&TopicRecord, MetaError> {
        self.topics
            .get(&topic_id)
            .ok_or(MetaError::UnknownTopicId { topic_id })
    }

    /// The registered broker `broker_id`, if `incarnation` is its current process.
    fn current_broker_mut(
        &mut self,
        broker_id: i32,
        incarnation: Uuid,
    ) -> Result<&mut BrokerRecord, MetaError> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or(MetaError::UnknownBroker { broker_id })?;
        if broker.incarnation != incarnation {
            return Err(MetaError::StaleBrokerIncarnation { broker_id });
        }
        Ok(broker)
    }

    /// Checks placements: `replication_factor` distinct registered brokers per partition.
    fn check_assignments(
        &self,
        assignments: &[Vec<i32>],
        replication_factor: usize,
    ) -> Result<(), MetaError> {
        if assignments.len() > MAX_PARTITIONS {
            return Err(too_many_partitions());
        }
        for (index, replicas) in assignments.iter().enumerate() {
            if replicas.is_empty() || replicas.len() != replication_factor {
                return Err(MetaError::InvalidReplicationFactor {
                    reason: format!(
                        "partition {index} has {} replicas; every partition needs {replication_factor} (and at least one)",
                        replicas.len()
                    ),
                });
            }
            self.check_replica_list(replicas).map_err(|reason| {
                MetaError::InvalidReplicaAssignment {
                    reason: format!("partition {index}: {reason}"),
                }
            })?;
        }
        Ok(())
    }

    /// Checks one partition's replicas: at least one, no broker twice, each registered.
    pub(crate) fn check_replica_list(&self, replicas: &[i32]) -> Result<(), String> {
        if replicas.is_empty() {
            return Err("a partition needs at least one replica".into());
        }
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return Err(format!("{replicas:?} lists a broker twice"));
        }
        match replicas.iter().find(|b| !self.brokers.contains_key(b)) {
            Some(unknown) => Err(format!("broker {unknown} is not registered")),
            None => Ok(()),
        }
    }

    /// A new partition: its ISR is its live replicas, led by the first of them.
    fn new_partition(&self, replicas: &[i32]) -> PartitionRecord {
        let live: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|b| self.brokers.get(b).is_some_and(|b| !b.fenced))
            .collect();
        let isr = if live.is_empty() {
            replicas.to_vec()
        } else {
            live.clone()
        };
        PartitionRecord {
            replicas: replicas.to_vec(),
            isr,
            elr: Vec::new(),
            leader: live.first().copied().unwrap_or(NO_LEADER),
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// Offline partitions get a leader now that `returning` is live: a live eligible one
    /// (under metadata version 0, `returning` itself where it is in the ISR).
    fn elect_offline_leaders(&mut self, returning: i32) {
        let live = self.live_broker_ids();
        let eligible = self.eligible_leaders();
        let partitions = self.topics.values_mut().flat_map(|t| &mut t.partitions);
        for p in partitions {
            if !eligible {
                legacy::elect_returning(p, returning);
            } else if p.elect_eligible(&live) {
                p.leader_epoch += 1;
                p.partition_epoch += 1;
            }
        }
    }

    /// Whether the rules of eligible leader replicas are in force.
    pub(crate) fn eligible_leaders(&self) -> bool {
        self.metadata_version >= ELIGIBLE_LEADERS
    }

    /// A topic's `min.insync.replicas` (see [`min_isr`]).
    fn topic_min_isr(&self, topic_id: Uuid) -> u32 {
        let no_overrides = BTreeMap::new();
        let topic = self
            .topics
            .get(&topic_id)
            .map_or(&no_overrides, |t| &t.configs);
        min_isr(topic, &self.cluster_configs)
    }

    /// Moves to metadata version `c.version` once every registered broker applies it.
    /// Turning on eligible leader replicas makes `min.insync.replicas` cluster-wide: the
    /// proposer's value becomes the cluster's setting unless one is set, and brokers' own
    /// settings are removed (a leader and the quorum must agree on the value).
    fn upgrade_metadata(&mut self, c: &UpgradeMetadata) -> Result<(), MetaError> {
        let refused = |reason: String| MetaError::MetadataVersionRefused {
            version: c.version,
            reason,
        };
        if c.version > METADATA_VERSION {
            return Err(refused(format!(
                "this build applies versions up to {METADATA_VERSION}"
            )));
        }
        if c.version <= self.metadata_version {
            return Ok(());
        }
        if let Some(behind) = self
            .brokers
            .values()
            .find(|b| b.metadata_version < c.version)
        {
            return Err(refused(format!(
                "broker {} applies only up to {}",
                behind.broker_id, behind.metadata_version
            )));
        }
        if c.version >= ELIGIBLE_LEADERS && !self.eligible_leaders() {
            self.cluster_configs
                .entry(MIN_ISR.to_string())
                .or_insert_with(|| c.min_insync_replicas.max(1).to_string());
            for configs in self.broker_configs.values_mut() {
                configs.remove(MIN_ISR);
            }
            self.broker_configs.retain(|_, configs| !configs.is_empty());
        }
        self.metadata_version = c.version;
        Ok(())
    }

    pub(crate) fn for_partition_mut(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        f: impl FnOnce(&mut PartitionRecord),
    ) {
        let found = self.topics.get_mut(&topic_id).and_then(|t| {
            t.partitions
                .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
        });
        if let Some(p) = found {
            f(p);
        }
    }

    /// Runs `f` on every partition with its topic's `min.insync.replicas` (see [`min_isr`]).
    fn for_each_partition_mut(&mut self, mut f: impl FnMut(&mut PartitionRecord, u32)) {
        for topic in self.topics.values_mut() {
            let min_isr = min_isr(&topic.configs, &self.cluster_configs);
            for p in &mut topic.partitions {
                f(p, min_isr);
            }
        }
    }
}
