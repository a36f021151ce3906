//! Followers copy their leaders' logs here: one fetch task per source broker, each sending
//! Kafka Fetch requests (v13, with this broker's replica id) for every partition this broker
//! follows from that leader, as Kafka's replica fetcher threads do.
//!
//! Each task keeps a fetch session with its leader (KIP-227, [`super::fetch_session`]): after
//! the first full fetch a request names only the partitions that moved or were dropped.
//! Per partition, a fetch starts at the follower's log end and names the epoch of its last
//! batch; the leader answers batches (stored byte for byte, see
//! [`Partition::append_as_follower`]) or a diverging epoch (the tail is cut, then the fetch
//! is retried). Under `--durability fsync` a follower fsyncs what it appended before its
//! next fetch reports it, so a leader never counts an unsynced copy as committed.
//!
//! The set of followed partitions comes from the partitions' roles: after every reconcile
//! pass the manager regroups them by leader, starts tasks for new leaders and stops those
//! no longer followed. Cancellation stops every task between requests; nothing is lost,
//! because a follower holds nothing a leader still waits for once it stops fetching.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use strata_wire::client::{decode_response, encode_request, response_length};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use super::fetch_session::{SessionClient, Wanted};
use crate::blocking::blocking;
use crate::clock::Clock;
use crate::config::ReplicationSettings;
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::partition::Partition;
use crate::topics::TopicRegistry;

/// The Fetch version followers send: topic ids, `LastFetchedEpoch`, `DivergingEpoch`, and
/// the replica id as a top-level field.
const FETCH_VERSION: i16 = 13;
/// How long a connection attempt to a leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than its wait a fetch may take to be answered.
const ANSWER_MARGIN: Duration = Duration::from_secs(15);

/// A partition this broker follows.
#[derive(Debug, Clone)]
struct Followed {
    topic_id: Uuid,
    partition: Arc<Partition>,
    leader_epoch: i32,
}

/// Where the leaders are: broker id to `host:port` of its Kafka listener.
pub trait LeaderDirectory: Send + Sync {
    fn address(&self, broker_id: i32) -> Option<String>;
}

impl LeaderDirectory for MetadataView {
    fn address(&self, broker_id: i32) -> Option<String> {
        self.live_brokers()
            .into_iter()
            .find(|b| b.id == broker_id)
            .map(|b| format!("{}:{}", b.host, b.port))
    }
}

/// Tells the fetcher manager that roles may have changed.
#[derive(Debug, Clone, Default)]
pub struct FetcherWake(Arc<Notify>);

impl FetcherWake {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What every fetch task shares.
struct FetchContext {
    node_id: i32,
    settings: ReplicationSettings,
    /// `--durability fsync`: fsync what was appended before reporting it.
    fsync: bool,
    directory: Arc<dyn LeaderDirectory>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

/// Starts and stops one fetch task per leader this broker follows partitions of.
pub struct FetcherManager {
    context: Arc<FetchContext>,
    topics: Arc<TopicRegistry>,
    wake: FetcherWake,
}

struct LeaderTask {
    partitions: watch::Sender<Vec<Followed>>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl FetcherManager {
    pub fn new(
        node_id: i32,
        settings: ReplicationSettings,
        fsync: bool,
        topics: Arc<TopicRegistry>,
        directory: Arc<dyn LeaderDirectory>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> (Self, FetcherWake) {
        let wake = FetcherWake::default();
        let manager = Self {
            context: Arc::new(FetchContext {
                node_id,
                settings,
                fsync,
                directory,
                metrics,
                clock,
            }),
            topics,
            wake: wake.clone(),
        };
        (manager, wake)
    }

    /// Keeps one task per leader in step with the followed partitions until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tasks: BTreeMap<i32, LeaderTask> = BTreeMap::new();
        loop {
            let mut wanted = self.followed_by_leader();
            tasks.retain(|leader, task| {
                let keep = wanted.contains_key(leader) && !task.handle.is_finished();
                if !keep {
                    task.cancel.cancel();
                }
                keep
            });
            for (leader, partitions) in std::mem::take(&mut wanted) {
                match tasks.get(&leader) {
                    Some(task) => {
                        task.partitions.send_replace(partitions);
                    }
                    None => {
                        let (sender, receiver) = watch::channel(partitions);
                        let task_cancel = cancel.child_token();
                        let span = info_span!("replica_fetcher", leader);
                        let handle = tokio::spawn(
                            fetch_from(leader, receiver, self.context.clone(), task_cancel.clone())
                                .instrument(span),
                        );
                        tasks.insert(
                            leader,
                            LeaderTask {
                                partitions: sender,
                                cancel: task_cancel,
                                handle,
                            },
                        );
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.0.notified() => {}
            }
        }
        for task in tasks.into_values() {
            task.cancel.cancel();
            let _ = task.handle.await;
        }
    }

    /// Every partition this broker follows, by its leader.
    fn followed_by_leader(&self) -> BTreeMap<i32, Vec<Followed>> {
        let mut by_leader: BTreeMap<i32, Vec<Followed>> = BTreeMap::new();
        for topic in self.topics.all() {
            for partition in topic.partitions.values() {
                if let Some((leader, leader_epoch)) = partition.followed_leader() {
                    by_leader.entry(leader).or_default().push(Followed {
                        topic_id: topic.id,
                        partition: partition.clone(),
                        leader_epoch,
                    });
                }
            }
        }
        by_leader
    }
}

/// One connection to a leader, one request at a time.
struct LeaderConnection {
    stream: TcpStream,
    correlation_id: i32,
}

impl LeaderConnection {
    async fn open(address: &str) -> Result<Self, BrokerError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    async fn fetch(
        &mut self,
        request: &FetchRequest,
        max_response_bytes: usize,
    ) -> Result<FetchResponse, BrokerError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(
            request,
            FETCH_VERSION,
            self.correlation_id,
            "strata-replica",
        )
        .map_err(wire_error)?;
        self.stream.write_all(&frame).await?;
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).await?;
        let len = response_length(prefix, max_response_bytes).map_err(wire_error)?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await?;
        decode_response::<FetchRequest>(Bytes::from(body), FETCH_VERSION, self.correlation_id)
            .map_err(wire_error)
    }
}

fn wire_error(e: strata_wire::client::ExchangeError) -> BrokerError {
    BrokerError::from(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        e.to_string(),
    ))
}

/// Fetches from `leader` for the partitions `partitions` names until `cancel`.
async fn fetch_from(
    leader: i32,
    mut partitions: watch::Receiver<Vec<Followed>>,
    context: Arc<FetchContext>,
    cancel: CancellationToken,
) {
    let backoff = context.settings.fetch_backoff;
    let mut connection: Option<LeaderConnection> = None;
    // Partitions whose last fetch failed rest until then.
    let mut resting: HashMap<(Uuid, i32), Instant> = HashMap::new();
    let mut session = SessionClient::default();
    info!("following partitions led by broker {leader}");
    while !cancel.is_cancelled() {
        let followed = partitions.borrow_and_update().clone();
        let now = Instant::now();
        resting.retain(|_, until| *until > now);
        let wanted: Vec<_> = followed
            .iter()
            .filter(|f| !resting.contains_key(&(f.topic_id, f.partition.index)))
            .filter_map(|f| {
                let at = f.partition.follower_position(f.leader_epoch).ok()?;
                Some((f, at))
            })
            .collect();
        if wanted.is_empty() {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = partitions.changed() => {}
                () = tokio::time::sleep(backoff) => {}
            }
            continue;
        }
        let partitions_wanted = wanted_partitions(&context, &wanted);
        let request = session.request(fetch_request(&context), &partitions_wanted);
        if connection.is_none() {
            connection = match context.directory.address(leader) {
                Some(address) => match LeaderConnection::open(&address).await {
                    Ok(opened) => Some(opened),
                    Err(e) => {
                        debug!(address, error = %e, "cannot reach the leader yet");
                        None
                    }
                },
                None => None,
            };
        }
        let Some(open) = connection.as_mut() else {
            context.metrics.replication.fetch_errors.inc();
            pause(&cancel, backoff).await;
            continue;
        };
        let max_response = usize::try_from(context.settings.fetch_response_max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(1 << 20);
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            answer = tokio::time::timeout(
                context.settings.fetch_wait_max + ANSWER_MARGIN,
                open.fetch(&request, max_response),
            ) => answer,
        };
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                warn!(error = %e, "a fetch from the leader failed; reconnecting");
                context.metrics.replication.fetch_errors.inc();
                connection = None;
                session.reset();
                pause(&cancel, backoff).await;
                continue;
            }
            Err(_) => {
                warn!("a fetch from the leader was not answered in time; reconnecting");
                context.metrics.replication.fetch_errors.inc();
                connection = None;
                session.reset();
                continue;
            }
        };
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            session.reset();
            // A session the leader evicted or lost (it restarted) is no fault: start over.
            if !matches!(
                error,
                ResponseError::FetchSessionIdNotFound | ResponseError::InvalidFetchSessionEpoch
            ) {
                warn!(%error, "the leader refused a fetch");
                context.metrics.replication.fetch_errors.inc();
                pause(&cancel, backoff).await;
            }
            continue;
        }
        session.answered(response.session_id, &partitions_wanted);
        let by_key: HashMap<(Uuid, i32), &Followed> = wanted
            .iter()
            .map(|(f, _)| ((f.topic_id, f.partition.index), *f))
            .collect();
        for topic in response.responses {
            for data in topic.partitions {
                let key = (topic.topic_id, data.partition_index);
                let Some(followed) = by_key.get(&key) else {
                    continue;
                };
                if let Err(e) = apply(&context, followed, data).await {
                    debug!(topic = %followed.partition.topic, partition = followed.partition.index, error = %e, "a partition's fetch failed; it rests");
                    context.metrics.replication.fetch_errors.inc();
                    resting.insert(key, Instant::now() + backoff);
                }
            }
        }
    }
}

async fn pause(cancel: &CancellationToken, backoff: Duration) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = tokio::time::sleep(backoff) => {}
    }
}

/// The partitions of one fetch, by topic, as a full fetch names them.
fn wanted_partitions(
    context: &FetchContext,
    wanted: &[(&Followed, crate::partition::FollowerPosition)],
) -> Wanted {
    let mut topics = Wanted::new();
    for (followed, at) in wanted {
        topics.entry(followed.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(followed.partition.index)
                .with_current_leader_epoch(followed.leader_epoch)
                .with_fetch_offset(at.log_end_offset)
                .with_last_fetched_epoch(at.last_fetched_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(
                    i32::try_from(context.settings.fetch_max_bytes).unwrap_or(i32::MAX),
                ),
        );
    }
    topics
}

/// A fetch request without its partitions (the session adds them).
fn fetch_request(context: &FetchContext) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(context.node_id))
        .with_max_wait_ms(
            i32::try_from(context.settings.fetch_wait_max.as_millis()).unwrap_or(i32::MAX),
        )
        .with_min_bytes(1)
        .with_max_bytes(
            i32::try_from(context.settings.fetch_response_max_bytes).unwrap_or(i32::MAX),
        )
}

/// Applies one partition's part of a fetch response to the follower's log.
async fn apply(
    context: &FetchContext,
    followed: &Followed,
    data: PartitionData,
) -> Result<(), BrokerError> {
    let partition = &followed.partition;
    let epoch = followed.leader_epoch;
    if let Some(error) = ResponseError::try_from_code(data.error_code) {
        if error == ResponseError::OffsetOutOfRange {
            // Restarting the log reads its producer state back: off the runtime's threads.
            let (partition, start, high_watermark) = (
                partition.clone(),
                data.log_start_offset,
                data.high_watermark,
            );
            return blocking(move || partition.follower_out_of_range(epoch, start, high_watermark))
                .await?;
        }
        return Err(BrokerError::InvalidRequest {
            reason: format!("the leader answered {error}"),
        });
    }
    if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
        let diverging = &data.diverging_epoch;
        let (own_epoch, own_end) = partition.end_offset_for_epoch(diverging.epoch)?;
        let offset = if diverging.epoch < 0 || own_epoch < 0 {
            partition.offsets().high_watermark
        } else if own_epoch == diverging.epoch {
            own_end.min(diverging.end_offset)
        } else {
            own_end
        };
        // Truncating rebuilds producer state from the log: off the runtime's threads.
        let truncated = partition.clone();
        blocking(move || truncated.truncate_as_follower(epoch, offset)).await??;
        context.metrics.replication.truncations.inc();
        return Ok(());
    }
    let records = data.records.unwrap_or_default();
    let batches = strata_log::validate_replicated_batches(&records)?;
    let bytes: usize = batches.iter().map(|b| b.bytes().len()).sum();
    partition.append_as_follower(
        epoch,
        &batches,
        data.high_watermark,
        context.clock.now_ms(),
        !context.fsync,
    )?;
    context
        .metrics
        .replication
        .fetched_bytes
        .inc_by(bytes as u64);
    if context.fsync && !batches.is_empty() {
        let synced = partition.clone();
        let durable = blocking(move || synced.sync()).await??;
        partition.commit_local(durable);
    }
    Ok(())
}
