//! Fetch: read whole batches from each requested partition, long-polling until `min_bytes`
//! are available or `max_wait_ms` passes.
//!
//! A fetch subscribes to each partition's high watermark before reading, so an append that
//! lands between the read and the wait still wakes it. With a fetch session (KIP-227; see
//! [`crate::fetch_sessions`]) the request names only what changed, every partition of the
//! session is read, and the response carries only the partitions with something new.
//!
//! A fetch with a replica id (the top-level field up to v14, `ReplicaState` from v15) is a
//! follower's: it reads up to the log end rather than the high watermark, waits on the log
//! end, and is told where its log diverged (see [`crate::replica::fetcher`]).
//!
//! Records of local segments are not read here: the response carries stand-ins for them and
//! the connection sends them from their files ([`crate::response`]).
//!
//! A consumer that names its rack (v11+, `client.rack`) reads from the closest replica
//! (KIP-392) unless `replica.selector.class` is Kafka's `LeaderSelector`: the leader answers
//! an in-sync replica on that rack as `PreferredReadReplica`, with no records, and that
//! follower serves the consumer up to its own high watermark.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;
use uuid::Uuid;

use super::RequestContext;
use crate::error::BrokerError;
use crate::fetch_sessions::{SessionFetch, TopicKey};
use crate::partition::LogOffsets;
use crate::replica::{FetchAt, FetchRead, LedPartition, Records, TopicRef};
use crate::response::Splices;

const API: &str = "fetch";
const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_index: usize,
    index: i32,
    partition: Result<LedPartition, BrokerError>,
    fetch_offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    /// KIP-392: the in-sync replica on the consumer's rack to read from instead.
    preferred_replica: Option<i32>,
}

impl Wanted {
    fn at(&self) -> FetchAt {
        FetchAt {
            fetch_offset: self.fetch_offset,
            last_fetched_epoch: self.last_fetched_epoch,
            current_leader_epoch: self.current_leader_epoch,
        }
    }
}

pub async fn handle(ctx: &RequestContext<'_>, request: FetchRequest) -> (FetchResponse, Splices) {
    let replica_id = if ctx.version() >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let follower = (replica_id >= 0).then_some(replica_id);
    let client_rack = (ctx.version() >= 11
        && follower.is_none()
        && !request.rack_id.is_empty()
        && ctx.broker.config.replication.rack_aware_reads)
        .then(|| request.rack_id.to_string());
    let sessions = &ctx.broker.fetch_sessions;
    let fetch = match sessions.begin(&request, ctx.version(), std::time::Instant::now()) {
        Ok(fetch) => fetch,
        Err(e) => return (session_error(ctx, e), Splices::default()),
    };
    let (topics, wanted) = resolve(ctx, &fetch, follower, client_rack.as_deref());

    // Kafka's broker-side `fetch.max.bytes` caps whatever the client asks for.
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(ctx.broker.config.fetch_max_bytes);
    let min_bytes = usize::try_from(request.min_bytes)
        .unwrap_or(0)
        .min(max_bytes);
    let deadline =
        Instant::now() + Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let mut watchers: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .filter_map(|w| {
            let led = w.partition.as_ref().ok()?;
            Some(match follower {
                Some(_) => led.partition.watch_log_end(),
                None => led.partition.watch_high_watermark(),
            })
        })
        .collect();
    loop {
        let Round {
            mut partitions,
            splices,
            total,
            any_error,
        } = read_all(ctx, &wanted, follower, max_bytes).await;
        let done = total >= min_bytes
            || any_error
            || watchers.is_empty()
            || Instant::now() >= deadline
            || ctx.shutdown.is_cancelled();
        if done {
            let answered: Vec<&PartitionData> = partitions.iter().map(|(_, data)| data).collect();
            let now = std::time::Instant::now();
            let (session_id, carried) =
                match sessions.finish(&fetch, &answered, follower.is_some(), now) {
                    Ok(finished) => finished,
                    Err(e) => return (session_error(ctx, e), Splices::default()),
                };
            let mut carried = carried.into_iter();
            partitions.retain(|_| carried.next().unwrap_or(true));
            // READ_COMMITTED readers get an explicit empty list: no transactions exist yet.
            if request.isolation_level == READ_COMMITTED {
                for (_, data) in &mut partitions {
                    data.aborted_transactions = Some(Vec::new());
                }
            }
            ctx.broker.metrics.fetch_bytes.inc_by(total as u64);
            return (
                assemble(topics, partitions).with_session_id(session_id),
                splices,
            );
        }
        for w in &mut watchers {
            w.borrow_and_update();
        }
        let woken = futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = woken => debug!("fetch woken by an append"),
            () = tokio::time::sleep_until(deadline) => {}
            () = ctx.shutdown.cancelled() => {}
        }
    }
}

/// The partitions `fetch` reads, resolved, and the topics of its response in order.
fn resolve(
    ctx: &RequestContext<'_>,
    fetch: &SessionFetch,
    follower: Option<i32>,
    client_rack: Option<&str>,
) -> (Vec<(TopicName, Uuid)>, Vec<Wanted>) {
    let mut topics = Vec::new();
    let mut topic_index: HashMap<&TopicKey, usize> = HashMap::new();
    let mut wanted = Vec::with_capacity(fetch.partitions.len());
    for spec in &fetch.partitions {
        let topic_index = *topic_index.entry(&spec.topic).or_insert_with(|| {
            topics.push(match &spec.topic {
                TopicKey::Id(id) => (TopicName::default(), *id),
                TopicKey::Name(name) => (name.clone(), Uuid::nil()),
            });
            topics.len() - 1
        });
        let topic = match &spec.topic {
            TopicKey::Id(id) => TopicRef::Id(*id),
            TopicKey::Name(name) => TopicRef::Name(name),
        };
        let led = match follower {
            Some(_) => ctx.broker.replicas.led_partition(topic, spec.partition),
            None => {
                ctx.broker
                    .replicas
                    .readable_partition(topic, spec.partition, client_rack.is_some())
            }
        };
        let preferred_replica = match (&led, client_rack) {
            (Ok(led), Some(rack)) if led.partition.leader_epoch().is_some() => {
                preferred_read_replica(ctx, led, rack)
            }
            _ => None,
        };
        wanted.push(Wanted {
            topic_index,
            index: spec.partition,
            partition: led,
            fetch_offset: spec.fetch_offset,
            max_bytes: usize::try_from(spec.max_bytes).unwrap_or(0),
            current_leader_epoch: spec.current_leader_epoch,
            last_fetched_epoch: spec.last_fetched_epoch,
            preferred_replica,
        });
    }
    (topics, wanted)
}

/// A session the request cannot use: the whole response is that error (the client then
/// starts over with a full fetch).
fn session_error(ctx: &RequestContext<'_>, error: ResponseError) -> FetchResponse {
    ctx.broker.metrics.count_error(API, error);
    FetchResponse::default().with_error_code(error.code())
}

/// One read of every wanted partition.
struct Round {
    /// By the index of their topic in the response.
    partitions: Vec<(usize, PartitionData)>,
    /// The file ranges the partitions' records stand in for.
    splices: Splices,
    /// Bytes of records.
    total: usize,
    /// Whether a partition answered an error or a diverging epoch (Kafka answers at once
    /// then).
    any_error: bool,
}

/// Reads every wanted partition once.
async fn read_all(
    ctx: &RequestContext<'_>,
    wanted: &[Wanted],
    follower: Option<i32>,
    max_bytes: usize,
) -> Round {
    let mut total = 0usize;
    let mut any_error = false;
    let mut splices = Splices::default();
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        let read = match (follower, w.preferred_replica) {
            (Some(replica), _) => read_for_follower(ctx, w, replica, budget, total == 0)
                .and_then(|read| fetched(w.index, read, &mut splices)),
            (None, Some(replica)) => redirect(w, replica),
            (None, None) => read_partition(ctx, w, budget, total == 0)
                .await
                .and_then(|read| fetched(w.index, read, &mut splices)),
        };
        let data = match read {
            Ok(data) => {
                total += data.records.as_ref().map_or(0, Bytes::len);
                any_error |= data.diverging_epoch.epoch >= 0
                    || data.diverging_epoch.end_offset >= 0
                    || data.preferred_read_replica.0 >= 0;
                data
            }
            Err(e) => {
                any_error = true;
                ctx.broker.metrics.count_error(API, e.response_error());
                let offsets = w.partition.as_ref().ok().map(|led| led.partition.offsets());
                PartitionData::default()
                    .with_partition_index(w.index)
                    .with_error_code(e.code())
                    .with_high_watermark(offsets.map_or(-1, |o| o.high_watermark))
                    .with_last_stable_offset(offsets.map_or(-1, |o| o.last_stable_offset))
                    .with_log_start_offset(offsets.map_or(-1, |o| o.log_start_offset))
                    .with_records(Some(Bytes::new()))
            }
        };
        out.push((w.topic_index, data));
    }
    Round {
        partitions: out,
        splices,
        total,
        any_error,
    }
}

async fn read_partition(
    ctx: &RequestContext<'_>,
    w: &Wanted,
    budget: usize,
    at_least_one: bool,
) -> Result<FetchRead, BrokerError> {
    let led = w.partition.as_ref().map_err(Clone::clone)?;
    ctx.broker
        .replicas
        .read(led, w.at(), budget, at_least_one)
        .await
}

fn read_for_follower(
    ctx: &RequestContext<'_>,
    w: &Wanted,
    replica: i32,
    budget: usize,
    at_least_one: bool,
) -> Result<FetchRead, BrokerError> {
    let led = w.partition.as_ref().map_err(Clone::clone)?;
    ctx.broker
        .replicas
        .read_for_follower(led, replica, w.at(), budget, at_least_one)
}

/// A read as the Fetch response gives it: records (noted in `splices`, a file's behind a
/// stand-in), or where the fetcher's log diverged.
fn fetched(
    index: i32,
    read: FetchRead,
    splices: &mut Splices,
) -> Result<PartitionData, BrokerError> {
    Ok(match read {
        FetchRead::Records(read) => {
            let records = match read.records {
                Records::Memory(bytes) => splices.keep(bytes),
                Records::File(range) => splices.stand_in(range)?,
            };
            partition_data(index, &read.offsets, records)
        }
        FetchRead::Diverging {
            epoch,
            end_offset,
            offsets,
        } => partition_data(index, &offsets, Bytes::new()).with_diverging_epoch(
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        ),
    })
}

/// KIP-392's rack-aware selector: none while the leader shares the consumer's rack; else the
/// first live in-sync follower on it.
fn preferred_read_replica(ctx: &RequestContext<'_>, led: &LedPartition, rack: &str) -> Option<i32> {
    ctx.broker.metadata.read(|state| {
        let p = state
            .topic(led.topic.id)?
            .partitions
            .get(usize::try_from(led.partition.index).ok()?)?;
        let rack_of = |id: i32| {
            state
                .broker(id)
                .filter(|b| !b.fenced)
                .and_then(|b| b.rack.clone())
        };
        if rack_of(p.leader).as_deref() == Some(rack) {
            return None;
        }
        p.isr
            .iter()
            .copied()
            .find(|&id| id != p.leader && rack_of(id).as_deref() == Some(rack))
    })
}

/// The answer that sends a consumer to `replica`: no records, this leader's offsets.
fn redirect(w: &Wanted, replica: i32) -> Result<PartitionData, BrokerError> {
    let led = w.partition.as_ref().map_err(Clone::clone)?;
    Ok(
        partition_data(w.index, &led.partition.offsets(), Bytes::new())
            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(replica)),
    )
}

fn partition_data(index: i32, offsets: &LogOffsets, records: Bytes) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(offsets.high_watermark)
        .with_last_stable_offset(offsets.last_stable_offset)
        .with_log_start_offset(offsets.log_start_offset)
        .with_records(Some(records))
}

fn assemble(
    topics: Vec<(TopicName, Uuid)>,
    partitions: Vec<(usize, PartitionData)>,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .into_iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(id)
        })
        .collect();
    for (topic_index, data) in partitions {
        responses[topic_index].partitions.push(data);
    }
    // An incremental response leaves out the topics with nothing new.
    responses.retain(|topic| !topic.partitions.is_empty());
    FetchResponse::default().with_responses(responses)
}
