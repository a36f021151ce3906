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

use strata_meta::MetadataState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, warn};

use crate::broker::Broker;
use crate::config::TopicConfig;
use crate::error::BrokerError;
use crate::topics::{HostedPartition, HostedTopic};

/// The topic defaults in force on `broker_id`: its static ones, then the cluster's dynamic
/// settings, then its own.
pub fn effective_defaults(
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

/// What `broker_id` should host according to `state`, sorted by topic id.
pub fn hosted_topics(
    state: &MetadataState,
    broker_id: i32,
    static_defaults: &TopicConfig,
) -> Vec<HostedTopic> {
    let defaults = effective_defaults(state, broker_id, static_defaults);
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
                    leader_epoch: (p.leader == broker_id).then_some(p.leader_epoch),
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

/// Reconciles once, setting aside topic directories the metadata does not place here. Run at
/// startup, once this node has caught up with the quorum.
pub async fn first_pass(broker: &Arc<Broker>) -> Result<Vec<HostedTopic>, BrokerError> {
    let (index, hosted) = snapshot(broker);
    let pass = broker.clone();
    let hosted = tokio::task::spawn_blocking(move || {
        let _span = info_span!("reconcile", index, startup = true).entered();
        let known: HashSet<_> = hosted.iter().map(|t| t.id).collect();
        pass.topics.set_aside_strays(&known)?;
        pass.topics.reconcile(&hosted);
        Ok::<_, BrokerError>(hosted)
    })
    .await
    .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))??;
    broker.metadata.mark_reconciled(index);
    Ok(hosted)
}

/// Reconciles after every metadata change until `shutdown` fires.
pub fn spawn(
    broker: Arc<Broker>,
    mut last: Vec<HostedTopic>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = broker.metadata.changes();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.next() => if !changed { return },
            }
            let (index, hosted) = snapshot(&broker);
            if hosted != last {
                let pass = broker.clone();
                let desired = hosted.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let _span = info_span!("reconcile", index).entered();
                    pass.topics.reconcile(&desired);
                })
                .await;
                if let Err(e) = done {
                    warn!(error = %e, "a reconcile pass failed");
                    continue;
                }
                last = hosted;
            }
            broker.metadata.mark_reconciled(index);
        }
    })
}

/// The applied index and what it places here; the state read is at least that recent.
fn snapshot(broker: &Broker) -> (u64, Vec<HostedTopic>) {
    let index = broker.metadata.applied_index();
    let hosted = broker
        .metadata
        .read(|state| hosted_topics(state, broker.config.node_id, &broker.config.topic_defaults));
    (index, hosted)
}
