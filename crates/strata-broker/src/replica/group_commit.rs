//! Group commit, the commit rule under `--durability fsync`: an append is committed (the
//! high watermark moves over it) once fsynced. Appends wait here for an fsync, and every
//! request that arrives while one fsync round runs is served by the next round, so a burst
//! of concurrent produces costs one fsync per partition per round, never one per request.
//!
//! Correctness rests on ordering: a request is enqueued only after its append returned, and a
//! round starts its fsyncs only after taking its requests, so each fsync covers every append
//! of the requests it answers. On cancellation, queued requests are answered with
//! `ShuttingDown`; nothing is acknowledged that was not synced.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug_span, warn};

use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::partition::Partition;

const QUEUE_DEPTH: usize = 4096;

struct SyncRequest {
    partition: Arc<Partition>,
    done: oneshot::Sender<Result<(), BrokerError>>,
}

/// A handle to the group-commit task.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<SyncRequest>,
}

impl std::fmt::Debug for SyncRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRequest")
            .field("partition", &self.partition)
            .finish()
    }
}

/// The requests waiting for the next round; [`run`] serves them.
#[derive(Debug)]
pub struct GroupCommitQueue(mpsc::Receiver<SyncRequest>);

impl GroupCommit {
    /// A handle and the queue its requests go to, for [`run`].
    pub fn new() -> (Self, GroupCommitQueue) {
        let (requests, queue) = mpsc::channel(QUEUE_DEPTH);
        (Self { requests }, GroupCommitQueue(queue))
    }

    /// Waits until everything appended to `partition` so far is on stable storage.
    pub async fn sync(&self, partition: Arc<Partition>) -> Result<(), BrokerError> {
        let (done, wait) = oneshot::channel();
        self.requests
            .send(SyncRequest { partition, done })
            .await
            .map_err(|_| BrokerError::ShuttingDown)?;
        wait.await.map_err(|_| BrokerError::ShuttingDown)?
    }
}

/// Runs fsync rounds until `cancel` fires, then answers what is still queued.
pub async fn run(queue: GroupCommitQueue, metrics: Arc<Metrics>, cancel: CancellationToken) {
    let GroupCommitQueue(mut queue) = queue;
    loop {
        let first = tokio::select! {
            biased;
            request = queue.recv() => request,
            () = cancel.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut round = vec![first];
        while let Ok(more) = queue.try_recv() {
            round.push(more);
        }
        let started = Instant::now();
        let waiters = round.len();
        let mut partitions: Vec<Arc<Partition>> =
            round.iter().map(|r| r.partition.clone()).collect();
        partitions.sort_by_key(|p| Arc::as_ptr(p) as usize);
        partitions.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let span = debug_span!("group_commit", partitions = partitions.len(), waiters);
        let outcome = tokio::task::spawn_blocking(move || {
            partitions
                .iter()
                .map(|p| p.sync().map(|durable| p.commit_local(durable)))
                .collect::<Result<Vec<()>, _>>()
        })
        .instrument(span)
        .await;
        let outcome = match outcome {
            Ok(result) => result.map(|_| ()),
            Err(join) => Err(BrokerError::from(std::io::Error::other(join.to_string()))),
        };
        if let Err(e) = &outcome {
            warn!(error = %e, "group commit fsync failed; produces in this round are answered with an error");
        }
        metrics.fsyncs.inc();
        metrics
            .fsync_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.fsync_batch_waiters.observe(waiters as f64);
        for request in round {
            let _ = request.done.send(outcome.clone());
        }
    }
    queue.close();
    while let Ok(request) = queue.try_recv() {
        let _ = request.done.send(Err(BrokerError::ShuttingDown));
    }
}
