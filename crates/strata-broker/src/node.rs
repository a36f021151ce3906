//! Wiring and lifecycle of a node with the broker role: every subsystem is built here, in
//! order, from the dependencies it names; its background work is started under one
//! [`Supervisor`]; and on shutdown everything stops in the reverse order (drain requests,
//! stop background tasks, close the cache, flush every partition).

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_log::SegmentFiles;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

use crate::broker::Broker;
use crate::clock::{Clock, SystemClock};
use crate::config::{BrokerConfig, Durability};
use crate::control_plane::{ControlPlane, ProcessStart};
use crate::error::BrokerError;
use crate::fetch_sessions::FetchSessions;
use crate::groups::{GroupCoordinator, GroupDeps};
use crate::health::Health;
use crate::last_run::RunRecord;
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::node_meta::NodeMeta;
use crate::producer_ids::ProducerIds;
use crate::reconciler::Reconciler;
use crate::replica::fetcher::{FetcherManager, FetcherWake};
use crate::replica::group_commit::GroupCommit;
use crate::replica::{ReplicaDeps, ReplicaManager};
use crate::retention::Retention;
use crate::supervisor::Supervisor;
use crate::tiering::block_cache::BlockCache;
use crate::tiering::manifest::{ManifestStore, StateManifest};
use crate::tiering::metadata_backup::Backups;
use crate::tiering::remote_read::RemoteReader;
use crate::tiering::{TieringContext, UploadBacklog};
use crate::topic_admin::TopicAdmin;
use crate::topics::TopicRegistry;

/// How often descriptor counts are exported.
const PROCESS_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// How many sealed segments' descriptors stay open: the setting, but never more than a
/// quarter of the process's descriptor limit, which connections and active segments need.
fn segment_files_capacity(configured: usize) -> usize {
    let limit = crate::process::fd_limit()
        .map_or(usize::MAX, |l| usize::try_from(l / 4).unwrap_or(usize::MAX));
    configured.min(limit).max(16)
}

/// A node with the broker role, while it runs.
pub(crate) struct BrokerNode<'a> {
    pub control_plane: &'a ControlPlane,
    pub object_store: Arc<dyn object_store::ObjectStore>,
    pub metrics: Arc<Metrics>,
    pub health: &'a Arc<Health>,
    /// The metadata came from a backup: it may predate producer ids handed out since.
    pub restored: bool,
    pub shutdown: &'a CancellationToken,
}

/// The subsystems, built and with their background work started.
struct Opened {
    broker: Arc<Broker>,
    supervisor: Supervisor,
    blocks: Arc<BlockCache>,
    /// Tells the follower fetchers that roles changed.
    fetchers: FetcherWake,
    /// Renewed by the heartbeats; appends wait for it.
    lease: Lease,
}

impl BrokerNode<'_> {
    /// Opens the data directory, registers with the quorum, serves Kafka clients until
    /// shutdown, then stops in order: drain requests, stop background tasks, flush.
    pub async fn run(
        self,
        config: BrokerConfig,
        kafka_listener: TcpListener,
        admin_addr: std::net::SocketAddr,
    ) -> Result<(), BrokerError> {
        let kafka_addr = kafka_listener.local_addr()?;
        let advertised = config.advertised_address(kafka_addr);
        let drain_timeout = config.shutdown_timeout;
        self.health.phase("opening the data directory");
        let Opened {
            broker,
            mut supervisor,
            blocks,
            fetchers,
            lease,
        } = self.open(config, advertised.clone()).await?;
        let (control_plane, health, shutdown) = (self.control_plane, self.health, self.shutdown);
        let failures = supervisor.failures();
        health.add_check(move || failures.list());
        // One line that scripts can parse for the bound addresses, logged before joining the
        // quorum: the other voters may still be starting.
        info!(
            kafka = %kafka_addr,
            admin = %admin_addr,
            controller = %control_plane.address,
            advertised = %format!("{}:{}", advertised.0, advertised.1),
            node_id = broker.config.node_id,
            "strata listening"
        );
        health.phase("checking that no other live process uses this node id");
        control_plane
            .check_identity_free(
                broker.config.node_id,
                broker.node.previous_incarnation(),
                broker.config.controller_quorum.is_empty(),
                shutdown,
            )
            .await?;
        health.phase("joining the metadata quorum");
        control_plane.join(shutdown).await?;
        health.phase("registering with the metadata quorum");
        let incarnation = uuid::Uuid::new_v4();
        broker.node.record_incarnation(incarnation)?;
        let log_dir = broker.topics.log_dir().to_path_buf();
        let fsync = broker.config.durability == Durability::Fsync;
        let (run_record, intact_predecessor) =
            crate::blocking::blocking(move || RunRecord::begin(&log_dir, incarnation, fsync))
                .await??;
        let registering_at = broker.clock.now();
        let start = ProcessStart {
            incarnation,
            intact_predecessor,
            now_ms: broker.clock.now_ms(),
        };
        let registration = control_plane
            .register(
                &broker.node.cluster_id(),
                &broker.config,
                &advertised,
                start,
                shutdown,
            )
            .await?;
        lease.renew(registering_at);
        let heartbeat = crate::liveness::spawn_heartbeat(
            broker.metadata.clone(),
            registration,
            lease,
            broker.clock.clone(),
            shutdown.clone(),
        );
        crate::legacy_topics::adopt(
            &broker.config.data_dir,
            broker.config.node_id,
            &broker.metadata,
        )
        .await?;
        health.phase("opening the partitions placed on this broker");
        let reconciler = Reconciler {
            node_id: broker.config.node_id,
            topic_defaults: broker.config.topic_defaults.clone(),
            incarnation,
            topics: broker.topics.clone(),
            metadata: broker.metadata.clone(),
            groups: broker.groups.clone(),
            tier: broker.tier.clone(),
            fetchers,
        };
        let hosted = reconciler.first_pass().await?;
        supervisor.spawn("reconciler", move |cancel| reconciler.run(hosted, cancel));
        broker
            .producer_ids
            .adopt_local_ids(broker.node.legacy_producer_id_end())
            .await?;
        if self.restored {
            broker.producer_ids.skip_ids_a_backup_may_miss().await?;
        }
        let checked = broker.clone();
        health.add_check(move || checked.topics.offline_partitions());
        health.serving();
        // On shutdown, leadership moves off this broker while it still answers (clients are
        // told NOT_LEADER_OR_FOLLOWER and find the new leaders); then it stops serving.
        let serving = CancellationToken::new();
        let handoff = tokio::spawn(hand_off_then_stop(
            broker.clone(),
            incarnation,
            shutdown.clone(),
            serving.clone(),
        ));
        let drained =
            crate::server::serve(kafka_listener, broker.clone(), serving, drain_timeout).await;
        // Done already unless serving ended by itself.
        handoff.abort();

        let started = Instant::now();
        health.phase("stopping");
        supervisor.shutdown().await;
        blocks.close().await;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "background tasks stopped"
        );
        let topics = broker.topics.clone();
        let flushed = crate::blocking::blocking(move || flush_all(&topics)).await?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            flushed, "partitions flushed"
        );
        // Clean only if nothing can have written since the flush.
        if drained && flushed {
            crate::blocking::blocking(move || run_record.stopped_cleanly()).await??;
        }
        match heartbeat.await {
            Ok(Some(superseded)) => Err(superseded),
            _ => Ok(()),
        }
    }

    /// Opens the data directory (recovering every partition), builds the subsystems and
    /// starts their background work. `advertised` is where clients are told to connect.
    async fn open(
        &self,
        config: BrokerConfig,
        advertised: (String, u16),
    ) -> Result<Opened, BrokerError> {
        let metrics = self.metrics.clone();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metadata = self.control_plane.view();
        let data_dir = config.data_dir.clone();
        let node_id = config.node_id;
        let metadata_replicated = !config.backs_up_metadata();
        let files = Arc::new(SegmentFiles::new(segment_files_capacity(
            config.open_segment_files_max,
        )));
        let (node, topics) = crate::blocking::blocking(move || {
            let _span = info_span!("recover_data_dir", data_dir = %data_dir.display()).entered();
            let node = NodeMeta::open(&data_dir, node_id)?;
            let topics =
                TopicRegistry::open(&data_dir, config.node_id, metadata_replicated, files)?;
            Ok::<_, BrokerError>((node, Arc::new(topics)))
        })
        .await??;
        info!(cluster_id = node.cluster_id(), "data directory opened");
        let blocks = Arc::new(
            BlockCache::open(
                self.object_store.clone(),
                &config.data_dir.join("cache").join("tiered"),
                &config.tiering,
                metrics.tiering.clone(),
            )
            .await?,
        );
        let remote = Arc::new(RemoteReader::new(
            blocks.clone(),
            config.tiering.readahead_blocks,
            metrics.tiering.clone(),
        ));
        let backups = config.backs_up_metadata().then(|| {
            Arc::new(Backups::new(
                metadata.clone(),
                self.object_store.clone(),
                topics.clone(),
                metrics.tiering.clone(),
            ))
        });
        let manifest: Arc<dyn ManifestStore> = Arc::new(StateManifest(metadata.clone()));
        let tier = TieringContext {
            settings: config.tiering.for_store(&config.object_store_url),
            node_id: config.node_id,
            topics: topics.clone(),
            manifest: manifest.clone(),
            store: self.object_store.clone(),
            remote,
            backups,
            backlog: UploadBacklog::default(),
            metrics: metrics.clone(),
            clock: clock.clone(),
        };

        let mut supervisor = Supervisor::default();
        // First started, last stopped: everything that appends waits on it.
        let group_commit = (config.durability == Durability::Fsync).then(|| {
            let (handle, queue) = GroupCommit::new();
            let commit_metrics = metrics.clone();
            supervisor.spawn("group_commit", move |cancel| {
                crate::replica::group_commit::run(queue, commit_metrics, cancel)
            });
            handle
        });
        let retention = Retention {
            topics: topics.clone(),
            producer_id_expiration: config.producer_id_expiration,
            tier: tier.clone(),
        };
        let retention_interval = config.retention_check_interval;
        let admin = TopicAdmin {
            metadata: metadata.clone(),
            default_partitions: config.num_partitions,
            default_replication_factor: config.replication.default_replication_factor,
        };
        let lease = if config.controller_quorum.is_empty() {
            Lease::unneeded()
        } else {
            Lease::new(crate::liveness::LEASE_DURATION)
        };
        let replicas = Arc::new(ReplicaManager::new(
            &config,
            ReplicaDeps {
                topics: topics.clone(),
                catalog: Arc::new(metadata.clone()),
                manifest,
                remote: tier.remote.clone(),
                group_commit,
                backlog: tier.backlog.clone(),
                isr_writer: Arc::new(metadata.clone()),
                lease: lease.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
            },
        ));
        let (fetcher_manager, fetchers) = FetcherManager::new(
            config.node_id,
            config.replication.clone(),
            config.durability == Durability::Fsync,
            topics.clone(),
            Arc::new(metadata.clone()),
            metrics.clone(),
            clock.clone(),
        );
        supervisor.spawn("replica_fetchers", move |cancel| {
            fetcher_manager.run(cancel)
        });
        let groups = Arc::new(GroupCoordinator::new(GroupDeps {
            writer: replicas.clone(),
            topics: topics.clone(),
            metadata: metadata.clone(),
            admin: admin.clone(),
            settings: config.groups.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
        }));
        let fetch_sessions =
            FetchSessions::new(config.fetch_session_slots, metrics.fetch_sessions.clone());
        let broker = Arc::new(Broker {
            fetch_sessions,
            config,
            node,
            topics,
            metrics,
            clock,
            advertised,
            metadata,
            producer_ids: ProducerIds::new(self.control_plane.controller.clone(), node_id),
            groups,
            admin,
            replicas,
            tier,
        });
        start_background_work(&mut supervisor, &broker, retention, retention_interval);
        Ok(Opened {
            broker,
            supervisor,
            blocks,
            fetchers,
            lease,
        })
    }
}

/// How often the replication gauges are refreshed.
const REPLICATION_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// How long a stopping broker waits for its leadership to move before it stops anyway.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(15);

/// Kafka's controlled shutdown: once `shutdown` fires, a broker in a multi-node quorum takes
/// itself out of service through the quorum (fenced: its partitions get leaders from their
/// ISRs, and it leaves them), waits until its own partitions reflect that, then fires
/// `serving`. Its heartbeats stopped with `shutdown`, so nothing unfences it; a restart
/// registers it afresh.
async fn hand_off_then_stop(
    broker: Arc<Broker>,
    incarnation: uuid::Uuid,
    shutdown: CancellationToken,
    serving: CancellationToken,
) {
    shutdown.cancelled().await;
    if !broker.config.controller_quorum.is_empty() {
        let started = Instant::now();
        let leave = strata_meta::MetaCommand::FenceBroker(strata_meta::FenceBroker {
            broker_id: broker.config.node_id,
            incarnation,
        });
        let handed_off = tokio::time::timeout(HANDOFF_TIMEOUT, async {
            let (index, _) = broker.metadata.propose(leave).await?;
            Ok::<_, BrokerError>(broker.metadata.wait_reconciled(index).await)
        })
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match handed_off {
            Ok(Ok(true)) => info!(elapsed_ms, "leadership handed off; stopping"),
            Ok(Ok(false)) | Err(_) => {
                warn!(
                    elapsed_ms,
                    "leadership hand-off not confirmed in time; stopping anyway"
                );
            }
            Ok(Err(e)) => {
                warn!(elapsed_ms, error = %e, "leadership hand-off failed; stopping anyway")
            }
        }
    }
    serving.cancel();
}

/// Starts the broker's periodic work; it stops in the reverse order.
fn start_background_work(
    supervisor: &mut Supervisor,
    broker: &Arc<Broker>,
    retention: Retention,
    retention_interval: Duration,
) {
    let retention = Arc::new(retention);
    supervisor.every("retention", retention_interval, move || {
        let retention = retention.clone();
        async move { retention.round().await }
    });
    let groups = broker.groups.clone();
    supervisor.spawn("group_ticker", move |cancel| groups.run_ticker(cancel));
    let tier = &broker.tier;
    let uploading = tier.clone();
    supervisor.spawn("uploader", move |cancel| {
        crate::tiering::uploader::run(uploading, cancel)
    });
    let merging = tier.clone();
    supervisor.spawn("merger", move |cancel| {
        crate::tiering::merger::run(merging, cancel)
    });
    let lag = tier.clone();
    supervisor.every(
        "upload_lag_report",
        crate::tiering::uploader::LAG_REPORT_INTERVAL,
        move || {
            crate::tiering::uploader::report_lag(&lag);
            std::future::ready(())
        },
    );
    let manifest = tier.clone();
    supervisor.every(
        "manifest_report",
        crate::tiering::uploader::MANIFEST_REPORT_INTERVAL,
        move || {
            crate::tiering::uploader::report_manifest(&manifest);
            std::future::ready(())
        },
    );
    let sweeping = Arc::new(tier.clone());
    let sweeper = Arc::new(crate::tiering::sweeper::Sweeper::default());
    let (metadata, node_id) = (broker.metadata.clone(), broker.config.node_id);
    supervisor.every("sweeper", tier.settings.sweep_interval, move || {
        let (sweeping, sweeper) = (sweeping.clone(), sweeper.clone());
        // The live broker with the lowest id sweeps, so the store is listed once per round.
        let here = metadata.read(|state| state.live_brokers().next().map(|b| b.broker_id))
            == Some(node_id);
        async move {
            if here {
                sweeper.round(&sweeping).await;
            }
        }
    });
    if let Some(backups) = &tier.backups {
        let backups = backups.clone();
        supervisor.every(
            "metadata_backup",
            tier.settings.metadata_backup_interval,
            move || {
                let backups = backups.clone();
                async move { crate::tiering::metadata_backup::round(&backups).await }
            },
        );
    }
    let replicas = broker.replicas.clone();
    supervisor.every(
        "isr_check",
        broker.config.replication.lag_time_max / 2,
        move || {
            replicas.check_isrs();
            std::future::ready(())
        },
    );
    let replicas = broker.replicas.clone();
    supervisor.every(
        "replication_report",
        REPLICATION_REPORT_INTERVAL,
        move || {
            replicas.report_replication();
            std::future::ready(())
        },
    );
    let reported = broker.clone();
    supervisor.every("process_report", PROCESS_REPORT_INTERVAL, move || {
        crate::process::report_fds(&reported.metrics);
        reported
            .metrics
            .open_segment_files
            .set(i64::try_from(reported.topics.open_segment_files()).unwrap_or(i64::MAX));
        reported
            .metrics
            .segment_seals_queued
            .set(i64::try_from(reported.topics.segment_seals_queued()).unwrap_or(i64::MAX));
        std::future::ready(())
    });
}

/// Flushes every partition: the last step of an ordered shutdown. Answers whether every
/// flush succeeded (only then did this process stop cleanly).
fn flush_all(topics: &TopicRegistry) -> bool {
    let mut flushed = true;
    for topic in topics.all() {
        for partition in topic.partitions.values() {
            if let Err(e) = partition.flush() {
                warn!(topic = %topic.name, partition = partition.index, error = %e, "flush at shutdown failed");
                flushed = false;
            }
        }
    }
    flushed
}
