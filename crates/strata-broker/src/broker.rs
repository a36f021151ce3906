//! The broker's shared state: configuration, identity, topics, metrics and background tasks.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::{BrokerConfig, Durability};
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::group_commit::GroupCommit;
use crate::groups::GroupCoordinator;
use crate::metrics::Metrics;
use crate::node_meta::NodeMeta;
use crate::partition::Partition;
use crate::producer_ids::ProducerIds;
use crate::tiering::block_cache::BlockCache;
use crate::tiering::metadata_backup::Backups;
use crate::tiering::remote_read::RemoteReader;
use crate::topics::TopicRegistry;
use strata_log::SegmentFiles;

/// How many sealed segments' descriptors stay open: the setting, but never more than a
/// quarter of the process's descriptor limit, which connections and active segments need.
fn segment_files_capacity(configured: usize) -> usize {
    let limit = crate::process::fd_limit()
        .map_or(usize::MAX, |l| usize::try_from(l / 4).unwrap_or(usize::MAX));
    configured.min(limit).max(16)
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node: NodeMeta,
    pub topics: TopicRegistry,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Where clients are told to connect.
    pub advertised: (String, u16),
    /// Where sealed segments are tiered to. Contacted at startup only by an embedded node
    /// with an empty data directory (looking for a metadata backup).
    pub object_store: Arc<dyn object_store::ObjectStore>,
    /// Reads of tiered segments, through the block cache.
    pub remote: RemoteReader,
    /// The embedded node's metadata backups.
    pub backups: Backups,
    /// This node's replica of the cluster metadata.
    pub metadata: MetadataView,
    pub producer_ids: ProducerIds,
    /// The consumer groups this broker coordinates.
    pub groups: GroupCoordinator,
    group_commit: Option<GroupCommit>,
}

/// Background tasks the broker owns, stopped in order on shutdown.
#[derive(Debug)]
pub struct BrokerTasks {
    group_commit: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    retention: (CancellationToken, tokio::task::JoinHandle<()>),
    group_ticker: (CancellationToken, tokio::task::JoinHandle<()>),
    uploader: (CancellationToken, tokio::task::JoinHandle<()>),
    sweeper: (CancellationToken, tokio::task::JoinHandle<()>),
    backup: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    process_report: (CancellationToken, tokio::task::JoinHandle<()>),
    broker: Arc<Broker>,
}

/// How often descriptor counts are exported.
const PROCESS_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Broker {
    /// Opens the data directory (recovering every partition) and starts background tasks.
    /// `advertised` is where clients are told to connect (usually the bound listener).
    pub async fn open(
        config: BrokerConfig,
        advertised: (String, u16),
        object_store: Arc<dyn object_store::ObjectStore>,
        metadata: MetadataView,
        producer_ids: ProducerIds,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Self>, BrokerTasks), BrokerError> {
        let data_dir = config.data_dir.clone();
        let node_id = config.node_id;
        let metadata_replicated = !config.backs_up_metadata();
        let files = Arc::new(SegmentFiles::new(segment_files_capacity(
            config.open_segment_files_max,
        )));
        let (node, topics) = tokio::task::spawn_blocking(move || {
            let _span = info_span!("recover_data_dir", data_dir = %data_dir.display()).entered();
            let node = NodeMeta::open(&data_dir, node_id)?;
            let topics = TopicRegistry::open(&data_dir, metadata_replicated, files)?;
            Ok::<_, BrokerError>((node, topics))
        })
        .await
        .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))??;
        info!(cluster_id = node.cluster_id(), "data directory opened");
        let blocks = BlockCache::open(
            object_store.clone(),
            &config.data_dir.join("cache").join("tiered"),
            &config.tiering,
            metrics.tiering.clone(),
        )
        .await?;
        let remote = RemoteReader::new(
            Arc::new(blocks),
            config.tiering.readahead_blocks,
            metrics.tiering.clone(),
        );

        let group_commit = (config.durability == Durability::Fsync).then(|| {
            let cancel = CancellationToken::new();
            let (handle, task) = GroupCommit::spawn(metrics.clone(), cancel.clone());
            (handle, (cancel, task))
        });
        let (group_commit, group_commit_task) = match group_commit {
            Some((handle, task)) => (Some(handle), Some(task)),
            None => (None, None),
        };
        let broker = Arc::new(Self {
            config,
            node,
            topics,
            metrics,
            clock: Arc::new(SystemClock),
            advertised,
            object_store,
            remote,
            backups: Backups::default(),
            metadata,
            producer_ids,
            groups: GroupCoordinator::default(),
            group_commit,
        });
        let retention_cancel = CancellationToken::new();
        let retention_task = tokio::spawn(retention_loop(broker.clone(), retention_cancel.clone()));
        let ticker_cancel = CancellationToken::new();
        let ticker = crate::groups::spawn_ticker(broker.clone(), ticker_cancel.clone());
        let uploader_cancel = CancellationToken::new();
        let uploader = crate::tiering::uploader::spawn(broker.clone(), uploader_cancel.clone());
        let sweeper_cancel = CancellationToken::new();
        let sweeper = crate::tiering::sweeper::spawn(broker.clone(), sweeper_cancel.clone());
        let backup_cancel = CancellationToken::new();
        let backup = crate::tiering::metadata_backup::spawn(broker.clone(), backup_cancel.clone())
            .map(|task| (backup_cancel, task));
        let process_cancel = CancellationToken::new();
        let process_task =
            tokio::spawn(report_process_loop(broker.clone(), process_cancel.clone()));
        Ok((
            broker.clone(),
            BrokerTasks {
                group_commit: group_commit_task,
                retention: (retention_cancel, retention_task),
                group_ticker: (ticker_cancel, ticker),
                uploader: (uploader_cancel, uploader),
                sweeper: (sweeper_cancel, sweeper),
                backup,
                process_report: (process_cancel, process_task),
                broker,
            },
        ))
    }

    /// Refuses an append to a tiered partition while the data waiting for the object store
    /// exceeds the local budget (as the uploader last measured it).
    pub fn check_tiering_backlog(&self) -> Result<(), BrokerError> {
        let budget = self.config.tiering.local_budget_bytes;
        let pending = u64::try_from(self.metrics.tiering.upload_lag_bytes.get()).unwrap_or(0);
        if budget > 0 && pending >= budget {
            return Err(BrokerError::TieringBacklog { pending, budget });
        }
        Ok(())
    }

    /// Waits until `partition`'s appends are durable per the configured durability.
    pub async fn make_durable(&self, partition: &Arc<Partition>) -> Result<(), BrokerError> {
        match &self.group_commit {
            Some(group_commit) => group_commit.sync(partition.clone()).await,
            None => Ok(()),
        }
    }

    /// Flushes every partition: the last step of an ordered shutdown.
    pub fn flush_all(&self) {
        for topic in self.topics.all() {
            for partition in topic.partitions.values() {
                if let Err(e) = partition.flush() {
                    warn!(topic = %topic.name, partition = partition.index, error = %e, "flush at shutdown failed");
                }
            }
        }
    }
}

impl BrokerTasks {
    /// Stops the background tasks. Call after client connections have drained.
    pub async fn shutdown(self) {
        let stopped_first = [self.uploader, self.sweeper, self.process_report];
        for (cancel, task) in stopped_first.into_iter().chain(self.backup) {
            cancel.cancel();
            let _ = task.await;
        }
        let (cancel, task) = self.group_ticker;
        cancel.cancel();
        let _ = task.await;
        let (cancel, task) = self.retention;
        cancel.cancel();
        let _ = task.await;
        if let Some((cancel, task)) = self.group_commit {
            cancel.cancel();
            let _ = task.await;
        }
        self.broker.remote.blocks().close().await;
    }
}

/// Exports descriptor counts (the process's and the sealed segments'), periodically.
async fn report_process_loop(broker: Arc<Broker>, cancel: CancellationToken) {
    crate::periodic::every(PROCESS_REPORT_INTERVAL, &cancel, || async {
        crate::process::report_fds(&broker.metrics);
        broker
            .metrics
            .open_segment_files
            .set(i64::try_from(broker.topics.open_segment_files()).unwrap_or(i64::MAX));
    })
    .await;
}

/// Applies retention and time-based rolls on every partition, periodically.
async fn retention_loop(broker: Arc<Broker>, cancel: CancellationToken) {
    let period = broker.config.retention_check_interval;
    crate::periodic::every(period, &cancel, || retention_pass(&broker)).await;
}

async fn retention_pass(broker: &Arc<Broker>) {
    let pass = broker.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _span = info_span!("retention_pass").entered();
        let now = pass.clock.now_ms();
        let expiration = i64::try_from(pass.config.producer_id_expiration.as_millis())
            .unwrap_or(i64::MAX);
        let mut deleted = 0;
        for topic in pass.topics.all() {
            for partition in topic.partitions.values() {
                partition.expire_producers(now, expiration);
                match partition.enforce_retention(now) {
                    Ok(n) => deleted += n,
                    Err(e) => warn!(topic = %topic.name, partition = partition.index, error = %e, "retention failed"),
                }
            }
        }
        deleted
    })
    .await;
    if let Ok(deleted) = outcome {
        broker
            .metrics
            .retention_deleted_segments
            .inc_by(deleted as u64);
    }
    crate::tiering::retention::expire(broker).await;
}
