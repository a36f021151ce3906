//! Pieces unit tests build subsystems from, without a quorum or a network: a registry
//! hosting one topic, the cluster metadata holding it, and a read path over an in-memory
//! object store.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata_meta::{CreateTopic, Endpoint, MetaCommand, MetadataState, RegisterBroker};
use uuid::Uuid;

use std::future::Future;
use std::pin::Pin;

use tokio::sync::Semaphore;

use crate::config::{TieringSettings, TopicConfig};
use crate::coordinator::{Record, RecordWriter};
use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::partition::{Partition, RemoteLog, Role};
use crate::tiering::block_cache::BlockCache;
use crate::tiering::remote_read::RemoteReader;
use crate::topics::{HostedPartition, HostedTopic, TopicRegistry};

/// One topic `t` with one partition, led here (broker 1) under `leader_epoch`.
pub struct HostedFixture {
    pub topics: Arc<TopicRegistry>,
    pub topic_id: Uuid,
    pub partition: Arc<Partition>,
    /// The cluster metadata, as the quorum would hold it: broker 1 and the topic.
    pub state: MetadataState,
}

pub fn hosted(dir: &Path, overrides: &[(&str, &str)], leader_epoch: i32) -> HostedFixture {
    let overrides: BTreeMap<String, String> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let topic_id = Uuid::new_v4();
    let mut state = MetadataState::default();
    state
        .apply(&MetaCommand::RegisterBroker(RegisterBroker {
            broker_id: 1,
            incarnation: Uuid::new_v4(),
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
            }],
            rack: None,
            now_ms: 0,
            intact_predecessor: None,
            metadata_version: strata_meta::METADATA_VERSION,
        }))
        .expect("registered");
    state
        .apply(&MetaCommand::UpgradeMetadata(
            strata_meta::UpgradeMetadata {
                version: strata_meta::METADATA_VERSION,
                min_insync_replicas: 1,
            },
        ))
        .expect("this build's rules");
    state
        .apply(&MetaCommand::CreateTopic(CreateTopic {
            name: "t".into(),
            topic_id,
            assignments: vec![vec![1]],
            configs: overrides.clone(),
        }))
        .expect("created");
    let topics = Arc::new(
        TopicRegistry::open(dir, 1, true, crate::partition::test_files()).expect("registry"),
    );
    topics.reconcile(&[HostedTopic {
        id: topic_id,
        name: "t".into(),
        config: TopicConfig::resolve(&TopicConfig::builtin(), &overrides),
        partitions: vec![HostedPartition {
            index: 0,
            role: Role::alone(1, leader_epoch),
            remote: RemoteLog::default(),
        }],
    }]);
    let partition = topics
        .get("t")
        .and_then(|t| t.partition(0).cloned())
        .expect("hosted");
    HostedFixture {
        topics,
        topic_id,
        partition,
        state,
    }
}

/// Reads of tiered objects from `store`, through a block cache under `dir`.
pub async fn remote_reader(
    dir: &Path,
    store: Arc<dyn object_store::ObjectStore>,
    settings: &TieringSettings,
    metrics: &Metrics,
) -> Arc<RemoteReader> {
    let blocks = BlockCache::open(store, &dir.join("cache"), settings, metrics.tiering.clone())
        .await
        .expect("cache");
    Arc::new(RemoteReader::new(
        Arc::new(blocks),
        settings.readahead_blocks,
        metrics.tiering.clone(),
    ))
}

/// Appends `records` as one batch and commits it at once, as a broker with `--durability
/// os` does.
pub fn append_committed(
    partition: &Partition,
    records: Vec<Record>,
    now_ms: i64,
) -> Result<(), BrokerError> {
    let limits = crate::replica::own_batch_limits(now_ms);
    let batch = crate::coordinator::encode_batch(records, now_ms)?;
    let batch = strata_log::validate_produce_batch(batch, &limits)?;
    let appended = partition.append(&batch, now_ms, false)?;
    partition.commit_local(appended.range.last_offset + 1);
    Ok(())
}

/// A coordinator's writer for unit tests: commits each write at once ([`append_committed`])
/// once a permit is given (so a test can hold a write in flight), or fails every write as a
/// partition this broker no longer leads would.
pub struct TestWriter {
    pub permits: Arc<Semaphore>,
    pub failing: bool,
}

impl TestWriter {
    /// Writes at once.
    pub fn direct() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            failing: false,
        }
    }

    /// Refuses every write.
    pub fn failing() -> Self {
        Self {
            failing: true,
            ..Self::direct()
        }
    }
}

impl RecordWriter for TestWriter {
    fn write<'a>(
        &'a self,
        partition: &'a Arc<Partition>,
        records: Vec<Record>,
    ) -> Pin<Box<dyn Future<Output = Result<(), BrokerError>> + Send + 'a>> {
        Box::pin(async move {
            self.permits.acquire().await.expect("never closed").forget();
            if self.failing {
                return Err(BrokerError::NotLeaderOrFollower);
            }
            append_committed(partition, records, 0)
        })
    }
}

/// ISR changes a replica manager proposed, accepted as they come.
#[derive(Debug, Default)]
pub struct RecordedIsrChanges(pub std::sync::Mutex<Vec<strata_meta::AlterPartition>>);

impl crate::replica::IsrWriter for RecordedIsrChanges {
    fn alter_partition(
        &self,
        change: strata_meta::AlterPartition,
    ) -> futures::future::BoxFuture<'static, Result<(), BrokerError>> {
        self.0.lock().expect("never poisoned").push(change);
        Box::pin(std::future::ready(Ok(())))
    }
}
