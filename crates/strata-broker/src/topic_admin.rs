//! Topic changes through the metadata quorum, shared by CreateTopics, CreatePartitions,
//! DeleteTopics and Metadata's auto-creation.
//!
//! The handler's node checks the request against its replica of the metadata (so
//! `validate_only` answers like a real create), places new partitions over the live brokers
//! and proposes the change; the state machine checks it again when it applies it, which is
//! what settles two concurrent creates of one name. A change is answered once this node has
//! applied it and brought its own partitions in line, so a client that asks this node next
//! sees it.

use std::collections::BTreeMap;

use strata_meta::names::validate_topic_name;
use strata_meta::topic_config::validate_overrides;
use strata_meta::{
    CommandOutcome, CreatePartitions, CreateTopic, ElectLeaders, Election, ElectionType,
    MAX_PARTITIONS, MetaCommand, MetaError, MetadataState, PartitionReassignment,
    ReassignPartitions,
};
use uuid::Uuid;

use crate::control_plane::MetadataView;
use crate::error::BrokerError;

/// A topic create as a request gives it; `None` means the broker default.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    /// Explicit replica lists per partition, instead of a count and a replication factor.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub overrides: BTreeMap<String, String>,
}

/// A created (or, with `validate_only`, creatable) topic.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    /// Nil for a validation.
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// The validated overrides.
    pub overrides: BTreeMap<String, String>,
}

/// Creates a topic, or with `validate_only` checks that it could be created.
/// Topic changes, made through the metadata quorum.
#[derive(Clone)]
pub struct TopicAdmin {
    pub metadata: MetadataView,
    /// `num.partitions`: a new topic's partitions when the request names none.
    pub default_partitions: i32,
    /// `default.replication.factor`: its replicas when the request names none.
    pub default_replication_factor: u16,
}

impl std::fmt::Debug for TopicAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicAdmin").finish_non_exhaustive()
    }
}

impl TopicAdmin {
    pub async fn create_topic(
        &self,
        new: NewTopic,
        validate_only: bool,
    ) -> Result<CreatedTopic, BrokerError> {
        let overrides = validate_overrides(&new.overrides).map_err(MetaError::from)?;
        let defaults = (self.default_partitions, self.default_replication_factor);
        let assignments = self
            .metadata
            .read(|state| plan_topic(state, defaults, &new))?;
        let created = CreatedTopic {
            id: Uuid::nil(),
            partitions: count(assignments.len()),
            replication_factor: assignments
                .first()
                .map_or(0, |r| i16::try_from(r.len()).unwrap_or(i16::MAX)),
            overrides: overrides.clone(),
        };
        if validate_only {
            return Ok(created);
        }
        let topic_id = Uuid::new_v4();
        let command = MetaCommand::CreateTopic(CreateTopic {
            name: new.name,
            topic_id,
            assignments,
            configs: overrides,
        });
        self.metadata.commit(command).await?;
        Ok(CreatedTopic {
            id: topic_id,
            ..created
        })
    }

    /// Grows `name` to `total` partitions, placed like a create's unless `assignments` are given.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let command = self.metadata.read(|state| {
        let topic = state
            .topic_by_name(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        check_partition_count(total)?;
        let existing = topic.partitions.len();
        let added = usize::try_from(total)
            .ok()
            .and_then(|total| total.checked_sub(existing))
            .filter(|added| *added > 0)
            .ok_or_else(|| MetaError::InvalidPartitions {
                reason: format!(
                    "topic '{name}' has {existing} partitions; the new count must be larger, got {total}"
                ),
            })?;
        let new_assignments = match assignments {
            Some(given) if given.len() != added => {
                return Err(MetaError::InvalidReplicaAssignment {
                    reason: format!(
                        "{} assignments given for {added} new partitions",
                        given.len()
                    ),
                }
                .into());
            }
            Some(given) => given,
            None => {
                let replication_factor = state.replication_factor(topic.topic_id).unwrap_or(1);
                state.place_partitions(added, replication_factor, placement_start())?
            }
        };
        Ok::<_, BrokerError>(MetaCommand::CreatePartitions(CreatePartitions {
            topic_id: topic.topic_id,
            new_assignments,
        }))
    })?;
        if !validate_only {
            self.metadata.commit(command).await?;
        }
        Ok(())
    }

    /// Elections for `partitions`, answered in order.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Vec<(Uuid, i32)>,
    ) -> Result<Vec<Election>, BrokerError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let command = MetaCommand::ElectLeaders(ElectLeaders {
            election,
            partitions,
        });
        self.commit_per_partition(command, |outcome| match outcome {
            CommandOutcome::Elections(outcomes) => Ok(outcomes),
            other => Err(other),
        })
        .await
    }

    /// Starts, replaces or cancels replica moves, answered per partition in order.
    pub async fn reassign_partitions(
        &self,
        partitions: Vec<PartitionReassignment>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<Result<(), MetaError>>, BrokerError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let command = MetaCommand::ReassignPartitions(ReassignPartitions {
            partitions,
            allow_replication_factor_change,
        });
        self.commit_per_partition(command, |outcome| match outcome {
            CommandOutcome::Reassignments(outcomes) => Ok(outcomes),
            other => Err(other),
        })
        .await
    }

    /// Commits a command answered per partition, and takes those answers out of its outcome.
    async fn commit_per_partition<T>(
        &self,
        command: MetaCommand,
        answers: impl FnOnce(CommandOutcome) -> Result<Vec<T>, CommandOutcome>,
    ) -> Result<Vec<T>, BrokerError> {
        answers(self.metadata.commit(command).await?).map_err(|other| BrokerError::InvalidRequest {
            reason: format!("a per-partition command answered {other:?}"),
        })
    }

    /// Deletes the topic with id `topic_id`.
    pub async fn delete_topic(&self, topic_id: Uuid) -> Result<(), BrokerError> {
        self.metadata
            .commit(MetaCommand::DeleteTopic { topic_id })
            .await
            .map(drop)
    }
}

/// Checks a create against `state` and decides where its partitions go.
fn plan_topic(
    state: &MetadataState,
    (default_partitions, default_replication_factor): (i32, u16),
    new: &NewTopic,
) -> Result<Vec<Vec<i32>>, BrokerError> {
    validate_topic_name(&new.name).map_err(|reason| MetaError::InvalidTopicName {
        name: new.name.clone(),
        reason,
    })?;
    if state.topic_by_name(&new.name).is_some() {
        return Err(MetaError::TopicAlreadyExists {
            name: new.name.clone(),
        }
        .into());
    }
    let assignments = match &new.assignments {
        Some(given) => {
            if new.num_partitions.is_some() || new.replication_factor.is_some() {
                return Err(MetaError::InvalidReplicaAssignment {
                    reason: "give either replica assignments or a partition count and replication factor".into(),
                }
                .into());
            }
            given.clone()
        }
        None => {
            let partitions = new.num_partitions.unwrap_or(default_partitions);
            check_partition_count(partitions)?;
            let replication_factor = new
                .replication_factor
                .unwrap_or(i16::try_from(default_replication_factor).unwrap_or(i16::MAX));
            let replication_factor = usize::try_from(replication_factor).map_err(|_| {
                MetaError::InvalidReplicationFactor {
                    reason: format!("must be at least 1, got {replication_factor}"),
                }
            })?;
            state.place_partitions(
                usize::try_from(partitions).unwrap_or_default(),
                replication_factor,
                placement_start(),
            )?
        }
    };
    Ok(assignments)
}

/// Bounds a requested partition count before anything is allocated for it.
fn check_partition_count(partitions: i32) -> Result<(), MetaError> {
    if partitions < 1 || partitions as usize > MAX_PARTITIONS {
        return Err(MetaError::InvalidPartitions {
            reason: format!(
                "a topic has between 1 and {MAX_PARTITIONS} partitions, got {partitions}"
            ),
        });
    }
    Ok(())
}

/// Where round-robin placement starts: random, as in Kafka, so that many small topics do not
/// all lead on the same broker.
fn placement_start() -> usize {
    (Uuid::new_v4().as_u128() % (1 << 16)) as usize
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
