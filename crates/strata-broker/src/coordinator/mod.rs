//! The coordinator runtime: what the group coordinator (and the transaction coordinator, when
//! it comes) runs on. Kafka 4's `CoordinatorRuntime` is the model.
//!
//! - **One shard per internal-topic partition this broker leads.** A shard is loaded when
//!   this broker starts leading the partition (under a leader epoch): its state is rebuilt by
//!   replaying the committed records. It is dropped when the broker stops leading it, or when
//!   a newer epoch replaces it. Until it is loaded, client operations answer
//!   COORDINATOR_LOAD_IN_PROGRESS. For a partition not led here (or a shard that went away
//!   while an operation waited) the answer is NOT_COORDINATOR.
//! - **Each shard is a serial event loop.** An operation is a plain function of the shard's
//!   state. It returns the records to write and the response to send (a [`Write`]). The
//!   runtime writes the records through the replica manager and waits until they are
//!   committed before it releases the response or runs the next operation. So no response
//!   tells a client about state the log does not hold, and no operation sees uncommitted
//!   state.
//! - **A failed write rolls the state back.** The operation either reverts its own change
//!   ([`Write::revert`]) or asks for the shard to be rebuilt from the committed log
//!   ([`Write::reload`]); then the failure is answered.
//!
//! Crash: the state is only ever what the committed records say, so a restart (or a new
//! leader) rebuilds exactly what clients were told.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument, info, info_span, warn};

use crate::error::BrokerError;
use crate::partition::Partition;
use crate::replica::ReplicaManager;

/// One record a coordinator writes: a key, and a value or (`None`) a tombstone.
pub type Record = (Bytes, Option<Bytes>);

/// The most records one coordinator batch holds.
const MAX_BATCH_RECORDS: usize = 1000;

/// How many operations may wait for one shard; senders wait beyond that.
const SHARD_QUEUE: usize = 1024;

/// Where a shard's records go: appended as one batch, and committed before this returns.
pub trait RecordWriter: Send + Sync + 'static {
    fn write<'a>(
        &'a self,
        partition: &'a Arc<Partition>,
        records: Vec<Record>,
    ) -> Pin<Box<dyn Future<Output = Result<(), BrokerError>> + Send + 'a>>;
}

impl RecordWriter for ReplicaManager {
    fn write<'a>(
        &'a self,
        partition: &'a Arc<Partition>,
        records: Vec<Record>,
    ) -> Pin<Box<dyn Future<Output = Result<(), BrokerError>> + Send + 'a>> {
        Box::pin(async move {
            // A checkpoint rewrites a whole partition's state: in batches of bounded size.
            let mut records = records.into_iter().peekable();
            while records.peek().is_some() {
                let chunk: Vec<Record> = records.by_ref().take(MAX_BATCH_RECORDS).collect();
                let batch = encode_batch(chunk, self.now_ms())?;
                self.append_internal(partition, batch).await?;
            }
            Ok(())
        })
    }
}

/// One uncompressed batch of `records`, as a coordinator writes it.
pub fn encode_batch(records: Vec<Record>, now_ms: i64) -> Result<Bytes, BrokerError> {
    // Offsets relative to the batch; the log assigns the real ones on append.
    let records: Vec<kafka_protocol::records::Record> = (0i64..)
        .zip(records)
        .map(|(offset, (key, value))| kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder keeps records in one batch while offset minus sequence is constant;
            // this makes the batch's base sequence NO_SEQUENCE (-1), as for any
            // non-idempotent batch.
            sequence: NO_SEQUENCE + i32::try_from(offset).unwrap_or(i32::MAX),
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| {
        BrokerError::InvalidRequest {
            reason: format!("coordinator records do not encode: {e}"),
        }
    })?;
    Ok(buf.freeze())
}

/// What an operation leaves the runtime to do: records to write, what to answer once they
/// are committed (`on_commit` may change the state too: it runs before the next operation),
/// and how to roll back if the write fails.
pub struct Write<S, R> {
    records: Vec<Record>,
    on_commit: Box<dyn FnOnce(&mut S) -> R + Send>,
    on_failure: Option<OnFailure<S, R>>,
}

/// Undoes an operation's change to the state after its write failed, and answers.
type Revert<S, R> = Box<dyn FnOnce(&mut S, &BrokerError) -> R + Send>;

enum OnFailure<S, R> {
    /// Undo the operation's change to the state, and answer.
    Revert(Revert<S, R>),
    /// Rebuild the shard from the committed log, and answer.
    Reload(Box<dyn FnOnce(&BrokerError) -> R + Send>),
}

impl<S, R: Send + 'static> Write<S, R> {
    /// Nothing to write: `response` is sent at once.
    pub fn answer(response: R) -> Self {
        Self {
            records: Vec::new(),
            on_commit: Box::new(move |_| response),
            on_failure: None,
        }
    }

    /// `records` to write, then `on_commit`'s answer. If the write fails, `revert` undoes
    /// what the operation changed and gives the answer.
    pub fn revert(
        records: Vec<Record>,
        on_commit: impl FnOnce(&mut S) -> R + Send + 'static,
        revert: impl FnOnce(&mut S, &BrokerError) -> R + Send + 'static,
    ) -> Self {
        Self {
            records,
            on_commit: Box::new(on_commit),
            on_failure: Some(OnFailure::Revert(Box::new(revert))),
        }
    }

    /// `records` to write, then `on_commit`'s answer. If the write fails, the shard is
    /// rebuilt from the committed log (for changes too entangled to undo piecewise) and
    /// `failed` gives the answer.
    pub fn reload(
        records: Vec<Record>,
        on_commit: impl FnOnce(&mut S) -> R + Send + 'static,
        failed: impl FnOnce(&BrokerError) -> R + Send + 'static,
    ) -> Self {
        Self {
            records,
            on_commit: Box::new(on_commit),
            on_failure: Some(OnFailure::Reload(Box::new(failed))),
        }
    }
}

/// Answers an operation's caller once its write committed (`None`) or failed; `true` when
/// the shard must be rebuilt.
type Complete<S> = Box<dyn FnOnce(&mut S, Option<&BrokerError>) -> bool + Send>;

/// An operation as the shard loop runs it: records, and the completion that answers.
struct Pending<S> {
    records: Vec<Record>,
    complete: Complete<S>,
}

type Op<S> = Box<dyn FnOnce(&mut S) -> Pending<S> + Send>;

/// Rebuilds a shard from its partition's committed records. Blocking: it runs off the
/// async runtime.
pub type Loader<S> = Arc<dyn Fn(&Partition) -> Result<S, BrokerError> + Send + Sync>;

/// The partition an operation is for, as the caller found it led here.
#[derive(Debug, Clone)]
pub struct Target {
    pub index: i32,
    pub partition: Arc<Partition>,
    pub leader_epoch: i32,
}

struct Shard<S> {
    id: u64,
    leader_epoch: i32,
    partition: Arc<Partition>,
    ops: mpsc::Sender<Op<S>>,
    loaded: Arc<AtomicBool>,
    /// Stops the loop when the shard is dropped from the map.
    _stop: DropGuard,
}

type Shards<S> = Arc<Mutex<HashMap<i32, Shard<S>>>>;

/// The shards of one internal topic this broker leads.
pub struct CoordinatorRuntime<S> {
    /// What the shards coordinate, for logs and spans (`groups`).
    name: &'static str,
    shards: Shards<S>,
    next_id: AtomicU64,
    writer: Arc<dyn RecordWriter>,
    loader: Loader<S>,
}

impl<S> std::fmt::Debug for CoordinatorRuntime<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorRuntime")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S: Send + 'static> CoordinatorRuntime<S> {
    pub fn new(name: &'static str, writer: Arc<dyn RecordWriter>, loader: Loader<S>) -> Self {
        Self {
            name,
            shards: Arc::default(),
            next_id: AtomicU64::new(0),
            writer,
            loader,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Shard<S>>> {
        self.shards
            .lock()
            .expect("no code panics holding the shard map")
    }

    /// Follows the partitions this broker leads (`index → (partition, epoch)`): loads the
    /// ones newly led and drops the ones no longer led (or led under another epoch).
    /// Answers the partitions whose shards started loading.
    pub fn follow(&self, led: HashMap<i32, (Arc<Partition>, i32)>) -> Vec<Target> {
        self.lock().retain(|index, shard| {
            led.get(index)
                .is_some_and(|(_, epoch)| *epoch == shard.leader_epoch)
        });
        led.into_iter()
            .filter_map(|(index, (partition, leader_epoch))| {
                let target = Target {
                    index,
                    partition,
                    leader_epoch,
                };
                self.ensure_started(&target).then_some(target)
            })
            .collect()
    }

    /// Starts loading `target`'s shard unless it runs under that epoch; answers whether it
    /// started one.
    fn ensure_started(&self, target: &Target) -> bool {
        let mut shards = self.lock();
        if shards
            .get(&target.index)
            .is_some_and(|s| s.leader_epoch == target.leader_epoch)
        {
            return false;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (ops, queue) = mpsc::channel(SHARD_QUEUE);
        let loaded = Arc::new(AtomicBool::new(false));
        let cancel = CancellationToken::new();
        let shard_loop = ShardLoop {
            name: self.name,
            id,
            target: target.clone(),
            shards: self.shards.clone(),
            writer: self.writer.clone(),
            loader: self.loader.clone(),
            loaded: loaded.clone(),
        };
        tokio::spawn(shard_loop.run(queue, cancel.clone()));
        shards.insert(
            target.index,
            Shard {
                id,
                leader_epoch: target.leader_epoch,
                partition: target.partition.clone(),
                ops,
                loaded,
                _stop: cancel.drop_guard(),
            },
        );
        true
    }

    /// Whether `target`'s shard is loaded (starting it if it is not running).
    pub fn is_loaded(&self, target: &Target) -> bool {
        self.ensure_started(target);
        self.lock().get(&target.index).is_some_and(|s| {
            s.leader_epoch == target.leader_epoch && s.loaded.load(Ordering::Acquire)
        })
    }

    /// Runs `op` on `target`'s shard for a client: COORDINATOR_LOAD_IN_PROGRESS until the
    /// shard is loaded (starting it if it is not running).
    pub async fn write<R: Send + 'static>(
        &self,
        target: &Target,
        op: impl FnOnce(&mut S) -> Write<S, R> + Send + 'static,
    ) -> Result<R, ResponseError> {
        if !self.is_loaded(target) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        self.submit(target.index, target.leader_epoch, op).await
    }

    /// Runs `op` on shard `index` once it is loaded, if it runs under `leader_epoch` (the
    /// runtime's own work: timers, cleanups).
    pub async fn submit<R: Send + 'static>(
        &self,
        index: i32,
        leader_epoch: i32,
        op: impl FnOnce(&mut S) -> Write<S, R> + Send + 'static,
    ) -> Result<R, ResponseError> {
        let ops = {
            let shards = self.lock();
            let shard = shards
                .get(&index)
                .filter(|s| s.leader_epoch == leader_epoch)
                .ok_or(ResponseError::NotCoordinator)?;
            shard.ops.clone()
        };
        let (answer, answered) = oneshot::channel();
        let op: Op<S> = Box::new(move |state: &mut S| {
            let Write {
                records,
                on_commit,
                on_failure,
            } = op(state);
            Pending {
                records,
                complete: Box::new(move |state: &mut S, failure: Option<&BrokerError>| {
                    let (response, reload) = match (failure, on_failure) {
                        (None, _) | (Some(_), None) => (on_commit(state), false),
                        (Some(e), Some(OnFailure::Revert(revert))) => (revert(state, e), false),
                        (Some(e), Some(OnFailure::Reload(failed))) => (failed(e), true),
                    };
                    let _ = answer.send(response);
                    reload
                }),
            }
        });
        ops.send(op)
            .await
            .map_err(|_| ResponseError::NotCoordinator)?;
        answered.await.map_err(|_| ResponseError::NotCoordinator)
    }

    /// The shards loaded now, as targets for [`Self::submit`].
    pub fn loaded(&self) -> Vec<Target> {
        self.lock()
            .iter()
            .filter(|(_, s)| s.loaded.load(Ordering::Acquire))
            .map(|(index, s)| Target {
                index: *index,
                partition: s.partition.clone(),
                leader_epoch: s.leader_epoch,
            })
            .collect()
    }
}

/// One shard's loop: load, then run operations one at a time.
struct ShardLoop<S> {
    name: &'static str,
    id: u64,
    target: Target,
    shards: Shards<S>,
    writer: Arc<dyn RecordWriter>,
    loader: Loader<S>,
    loaded: Arc<AtomicBool>,
}

impl<S: Send + 'static> ShardLoop<S> {
    async fn run(self, mut queue: mpsc::Receiver<Op<S>>, cancel: CancellationToken) {
        let Target {
            index,
            leader_epoch,
            ..
        } = self.target;
        let Some(mut state) = self.load().await else {
            self.leave();
            return;
        };
        self.loaded.store(true, Ordering::Release);
        loop {
            let op = tokio::select! {
                () = cancel.cancelled() => return,
                op = queue.recv() => op,
            };
            let Some(op) = op else { return };
            let Pending { records, complete } = op(&mut state);
            if records.is_empty() {
                complete(&mut state, None);
                continue;
            }
            let span = info_span!(
                "coordinator_write",
                coordinator = self.name,
                partition = index,
                leader_epoch,
                records = records.len()
            );
            let written = tokio::select! {
                () = cancel.cancelled() => Err(BrokerError::NotLeaderOrFollower),
                written = self.writer.write(&self.target.partition, records).instrument(span) => written,
            };
            let failure = written.err();
            if let Some(e) = &failure {
                warn!(coordinator = self.name, partition = index, error = %e, "a coordinator write failed; its change is rolled back");
            }
            if complete(&mut state, failure.as_ref()) {
                // Queued operations are answered NOT_COORDINATOR as the queue drops; the
                // next request loads the shard again from what is committed.
                self.leave();
                return;
            }
        }
    }

    async fn load(&self) -> Option<S> {
        let loader = self.loader.clone();
        let partition = self.target.partition.clone();
        let (index, leader_epoch) = (self.target.index, self.target.leader_epoch);
        let name = self.name;
        let started = std::time::Instant::now();
        let loaded = tokio::task::spawn_blocking(move || {
            let _span = info_span!(
                "coordinator_load",
                coordinator = name,
                partition = index,
                leader_epoch
            )
            .entered();
            loader(&partition)
        })
        .await;
        match loaded {
            Ok(Ok(state)) => {
                info!(
                    coordinator = name,
                    partition = index,
                    leader_epoch,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "coordinator shard loaded"
                );
                Some(state)
            }
            Ok(Err(e)) => {
                warn!(coordinator = name, partition = index, error = %e, "could not load a coordinator shard; the next request retries");
                None
            }
            Err(e) => {
                warn!(coordinator = name, partition = index, error = %e, "loading a coordinator shard panicked; the next request retries");
                None
            }
        }
    }

    /// Removes this shard from the map, unless a newer one replaced it.
    fn leave(&self) {
        let mut shards = self
            .shards
            .lock()
            .expect("no code panics holding the shard map");
        if shards
            .get(&self.target.index)
            .is_some_and(|s| s.id == self.id)
        {
            shards.remove(&self.target.index);
        }
    }
}

#[cfg(test)]
mod tests;
