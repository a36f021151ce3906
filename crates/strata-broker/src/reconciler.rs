//! Keeps the partitions this broker hosts in step with the replicated metadata.
//!
//! After every applied metadata change, the reconciler works out what this broker should
//! host (each partition whose replicas name it, led here when its leader is this broker),
//! with each topic's effective configuration (static defaults, then the cluster's and this
//! broker's dynamic settings, then the topic's overrides), and hands that to
//! [`TopicRegistry::reconcile`] when it differs from the last pass. It then marks the applied
//! index as reconciled, which is what lets an admin request answer only once its change is
//! served here.
//!
//! [`TopicRegistry::reconcile`]: crate::topics::TopicRegistry::reconcile

use std::collections::HashSet;
use std::sync::Arc;

use strata_meta::{MetadataState, NO_LEADER, PartitionRecord};
use tokio_util::sync::CancellationToken;
use tracing::{info_span, warn};
use uuid::Uuid;

use crate::config::TopicConfig;
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::groups::GroupCoordinator;
use crate::leader_state::Assignment;
use crate::partition::{RemoteLog, Role, TieredRange};
use crate::replica::fetcher::FetcherWake;
use crate::tiering::TieringContext;
use crate::topics::{HostedPartition, HostedTopic, TopicRegistry};

/// The topic defaults in force on `broker_id`: its static ones, then the cluster's dynamic
/// settings, then its own.
fn effective_defaults(
    state: &MetadataState,
    broker_id: i32,
    static_defaults: &TopicConfig,
) -> TopicConfig {
    let defaults = static_defaults.with_broker_settings(state.cluster_configs());
    match state.broker_configs(broker_id) {
        Some(own) => defaults.with_broker_settings(own),
        None => defaults,
    }
}

/// What `broker_id` should host according to `state`, sorted by topic id. It leads only while
/// `incarnation` is the registered one: once another process registered under this node id,
/// the partitions' leader is that process, not this one.
pub fn hosted_topics(
    state: &MetadataState,
    broker_id: i32,
    incarnation: Uuid,
    static_defaults: &TopicConfig,
) -> Vec<HostedTopic> {
    let defaults = effective_defaults(state, broker_id, static_defaults);
    let current = state
        .broker(broker_id)
        .is_some_and(|b| b.incarnation == incarnation);
    state
        .topics()
        .filter_map(|topic| {
            let partitions: Vec<HostedPartition> = topic
                .partitions
                .iter()
                .zip(0..)
                .filter(|(p, _)| p.replicas.contains(&broker_id))
                .map(|(p, index)| HostedPartition {
                    index,
                    role: role(state, p, broker_id, current),
                    remote: remote_log(state, topic.topic_id, index),
                })
                .collect();
            (!partitions.is_empty()).then(|| HostedTopic {
                id: topic.topic_id,
                name: topic.name.clone(),
                config: TopicConfig::resolve(&defaults, &topic.configs),
                partitions,
            })
        })
        .collect()
}

/// What `broker_id` does for partition `p`: leads it, follows its leader, or (with no
/// leader, or while another process holds its registration) neither.
fn role(state: &MetadataState, p: &PartitionRecord, broker_id: i32, current: bool) -> Role {
    if !current || p.leader == NO_LEADER {
        Role::Inactive
    } else if p.leader == broker_id {
        Role::Leader(Assignment {
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            live: p
                .replicas
                .iter()
                .filter_map(|id| {
                    let broker = state.broker(*id).filter(|b| !b.fenced)?;
                    Some((*id, broker.incarnation))
                })
                .collect(),
        })
    } else {
        Role::Follower {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
        }
    }
}

/// What the manifest says of a partition.
fn remote_log(state: &MetadataState, topic_id: uuid::Uuid, partition: i32) -> RemoteLog {
    let Some(manifest) = state.partition_manifest(topic_id, partition) else {
        return RemoteLog::default();
    };
    let tiered = manifest
        .segments
        .first_key_value()
        .zip(manifest.end_offset())
        .map(|((first_base, _), end)| TieredRange {
            start: manifest.log_start_offset.max(*first_base),
            end,
        });
    RemoteLog {
        log_start_offset: manifest.log_start_offset,
        tiered,
    }
}

/// What the reconciler works with.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pub node_id: i32,
    /// The static topic defaults (`log.*` settings).
    pub topic_defaults: TopicConfig,
    /// This process's registration: it leads only while this is the registered one.
    pub incarnation: Uuid,
    pub topics: Arc<TopicRegistry>,
    pub metadata: MetadataView,
    /// Told after every pass, to follow the `__consumer_offsets` partitions led here.
    pub groups: Arc<GroupCoordinator>,
    /// For the producer state of a log that restarts at the tiered end.
    pub tier: TieringContext,
    /// Told after every pass, to fetch for the partitions followed here.
    pub fetchers: FetcherWake,
}

/// How soon a pass that left a partition unopened or offline is retried.
const RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Reconciler {
    /// Reconciles once, setting aside topic directories the metadata does not place here.
    /// Run at startup, once this node has caught up with the quorum.
    pub async fn first_pass(&self) -> Result<Vec<HostedTopic>, BrokerError> {
        let (index, hosted) = self.snapshot();
        let topics = self.topics.clone();
        let hosted = tokio::task::spawn_blocking(move || {
            let _span = info_span!("reconcile", index, startup = true).entered();
            let known: HashSet<_> = hosted.iter().map(|t| t.id).collect();
            topics.set_aside_strays(&known)?;
            topics.reconcile(&hosted);
            Ok::<_, BrokerError>(hosted)
        })
        .await
        .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))??;
        self.groups.follow_leadership();
        self.fetchers.wake();
        self.groups.forget_deleted_topics();
        crate::tiering::producer_state::rebuild_where_needed(&self.tier).await;
        self.metadata.mark_reconciled(index);
        Ok(hosted)
    }

    /// Reconciles after every metadata change, and again every [`RETRY_INTERVAL`] while a
    /// partition placed here failed to open or to take the metadata, until `shutdown`
    /// fires. `last` is what the previous pass hosted.
    pub async fn run(self, mut last: Vec<HostedTopic>, shutdown: CancellationToken) {
        let mut changes = self.metadata.changes();
        let mut retries = tokio::time::interval(RETRY_INTERVAL);
        retries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry = tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.next() => if changed { false } else { return },
                _ = retries.tick() => true,
            };
            if retry && !self.topics.needs_retry() {
                continue;
            }
            if !retry {
                self.groups.forget_deleted_topics();
            }
            let (index, hosted) = self.snapshot();
            if hosted != last || retry {
                let topics = self.topics.clone();
                let desired = hosted.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let _span = info_span!("reconcile", index).entered();
                    topics.reconcile(&desired);
                })
                .await;
                if let Err(e) = done {
                    warn!(error = %e, "a reconcile pass failed");
                    continue;
                }
                self.groups.follow_leadership();
                self.fetchers.wake();
                crate::tiering::producer_state::rebuild_where_needed(&self.tier).await;
                last = hosted;
            }
            self.metadata.mark_reconciled(index);
        }
    }

    /// The applied index and what it places here; the state read is at least that recent.
    fn snapshot(&self) -> (u64, Vec<HostedTopic>) {
        let index = self.metadata.applied_index();
        let hosted = self.metadata.read(|state| {
            hosted_topics(state, self.node_id, self.incarnation, &self.topic_defaults)
        });
        (index, hosted)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strata_meta::{
        AlterConfigs, ConfigResource, CreateTopic, Endpoint, FenceBroker, MetaCommand,
        RegisterBroker,
    };
    use uuid::Uuid;

    use super::*;

    fn register(state: &mut MetadataState, broker_id: i32) -> Uuid {
        let incarnation = Uuid::new_v4();
        state
            .apply(&MetaCommand::RegisterBroker(RegisterBroker {
                broker_id,
                incarnation,
                endpoints: vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9000 + u16::try_from(broker_id).expect("small id"),
                }],
                rack: None,
                now_ms: 0,
                intact_predecessor: None,
                metadata_version: strata_meta::METADATA_VERSION,
            }))
            .expect("registered");
        incarnation
    }

    #[test]
    fn a_broker_hosts_its_replicas_and_leads_where_the_metadata_says() {
        let mut state = MetadataState::default();
        let one = register(&mut state, 1);
        let two = register(&mut state, 2);
        let topic_id = Uuid::new_v4();
        state
            .apply(&MetaCommand::CreateTopic(CreateTopic {
                name: "t".into(),
                topic_id,
                assignments: vec![vec![1], vec![2], vec![1]],
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            }))
            .expect("created");
        let defaults = TopicConfig::builtin();
        let on_one = hosted_topics(&state, 1, one, &defaults);
        assert_eq!(on_one.len(), 1);
        let hosted_on_two = |state: &MetadataState| {
            hosted_topics(state, 2, two, &defaults)
                .into_iter()
                .find(|t| t.id == topic_id)
                .expect("hosted")
        };
        let indexes: Vec<_> = on_one[0].partitions.iter().map(|p| p.index).collect();
        assert_eq!(indexes, [0, 2]);
        assert!(on_one[0].partitions.iter().all(|p| matches!(
            &p.role,
            Role::Leader(a) if a.leader_epoch == 0 && a.isr == a.replicas
        )));
        state
            .apply(&MetaCommand::CreateTopic(CreateTopic {
                name: "replicated".into(),
                topic_id: Uuid::new_v4(),
                assignments: vec![vec![1, 2]],
                configs: BTreeMap::new(),
            }))
            .expect("created");
        let on_two = hosted_topics(&state, 2, two, &defaults);
        let replicated = on_two.iter().find(|t| t.name == "replicated");
        assert_eq!(
            replicated.expect("hosted").partitions[0].role,
            Role::Follower {
                leader: 1,
                leader_epoch: 0
            },
            "a replica led elsewhere is followed"
        );
        assert_eq!(on_one[0].config.retention_ms(), Some(1000));
        assert!(hosted_topics(&state, 3, Uuid::new_v4(), &defaults).is_empty());
        // Another process registered as broker 1: this one hosts the same replicas but
        // leads none of them.
        let stale = hosted_topics(&state, 1, Uuid::new_v4(), &defaults);
        let stale = stale.iter().find(|t| t.id == topic_id).expect("hosted");
        assert_eq!(stale.partitions.len(), 2);
        assert!(stale.partitions.iter().all(|p| p.role == Role::Inactive));

        // Fencing broker 2 takes its leadership away (its partition goes offline), and a
        // cluster-wide default reaches every topic that does not override it.
        state
            .apply(&MetaCommand::FenceBroker(FenceBroker {
                broker_id: 2,
                incarnation: two,
            }))
            .expect("fenced");
        state
            .apply(&MetaCommand::AlterConfigs(AlterConfigs {
                resource: ConfigResource::ClusterDefault,
                set: BTreeMap::from([("log.segment.bytes".into(), "4096".into())]),
                remove: Default::default(),
                replace: false,
            }))
            .expect("altered");
        let on_two = hosted_on_two(&state);
        assert_eq!(on_two.partitions[0].role, Role::Inactive);
        assert_eq!(on_two.config.segment_bytes(), 4096);
        assert_eq!(on_two.config.retention_ms(), Some(1000));
    }
}
