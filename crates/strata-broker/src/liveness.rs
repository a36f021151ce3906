//! Broker liveness: every broker heartbeats through the metadata quorum, and the controller
//! leader fences a broker whose heartbeats stopped, so Metadata stops sending clients to it.
//!
//! The leader judges silence by its own clock only: it notes when it last saw each broker's
//! recorded heartbeat change, and fences a broker after [`SESSION_TIMEOUT`] without a change.
//! A broker's own timestamps are never compared with the leader's clock (no skew problem),
//! and a new leader starts every broker's silence from its own election, so a change of
//! leader never fences a healthy broker. The fencing names the broker's incarnation: a
//! broker that restarted meanwhile is not touched. A fenced broker that is alive (a healed
//! partition) is unfenced by its next heartbeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::MetaError;
use strata_meta::{BrokerHeartbeat, FenceBroker, MetaCommand};
use strata_raft::Controller;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::lease::Lease;

/// Kafka's `broker.heartbeat.interval.ms` default.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Kafka's `broker.session.timeout.ms` default.
const SESSION_TIMEOUT: Duration = Duration::from_secs(9);
/// How long a heartbeat's lease lasts from its send (see [`crate::lease`]): the session
/// timeout less a heartbeat interval, the margin for clocks that run at slightly different
/// rates and for an append already past its check.
pub const LEASE_DURATION: Duration = SESSION_TIMEOUT.saturating_sub(HEARTBEAT_INTERVAL);

/// What identifies this broker's process to the quorum.
pub struct Registration {
    pub broker_id: i32,
    pub incarnation: Uuid,
}

/// Heartbeats for this broker until `shutdown` fires, renewing `lease` with each heartbeat
/// once the partitions here reflect the metadata up to it. A heartbeat refused because
/// another process has registered under this node id since means this process must stop
/// serving: the task then fires `shutdown` itself and answers [`BrokerError::Superseded`].
pub fn spawn_heartbeat(
    metadata: MetadataView,
    me: Registration,
    lease: Lease,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> JoinHandle<Option<BrokerError>> {
    let superseded = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let broker_id = me.broker_id;
    let flag = superseded.clone();
    let stop = shutdown.clone();
    let beats = every_interval(shutdown, move || {
        let metadata = metadata.clone();
        let lease = lease.clone();
        let sent_at = clock.now();
        let heartbeat = MetaCommand::BrokerHeartbeat(BrokerHeartbeat {
            broker_id: me.broker_id,
            incarnation: me.incarnation,
            now_ms: clock.now_ms(),
        });
        let flag = flag.clone();
        let stop = stop.clone();
        async move {
            // The quorum's answer, not this node's application of it: a superseded process's
            // replica may never see the entry, but it must hear the refusal.
            match metadata.propose_committed(heartbeat).await {
                Ok((index, Ok(_))) => {
                    // Off the heartbeat's path: a slow reconcile must not delay the next one.
                    tokio::spawn(async move {
                        if metadata.wait_reconciled(index).await {
                            lease.renew(sent_at);
                        }
                    });
                }
                Ok((_, Err(MetaError::StaleBrokerIncarnation { .. }))) => {
                    error!(
                        broker_id,
                        "another process registered under this node id; this one stops serving"
                    );
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    stop.cancel();
                }
                Ok((_, Err(refused))) => warn!(error = %refused, "heartbeat refused"),
                Err(e) => debug!(error = %e, "heartbeat not delivered"),
            }
        }
    });
    tokio::spawn(async move {
        let _ = beats.await;
        superseded
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(BrokerError::Superseded { broker_id })
    })
}

/// While this node leads the quorum, fences brokers that stopped heartbeating; until
/// `shutdown` fires. Runs on every node with the controller role.
pub fn spawn_fencer(
    controller: Arc<Controller>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let mut watch = SilenceWatch::default();
    every_interval(shutdown, move || {
        let silent = watch.silent_brokers(&controller, clock.now());
        let controller = controller.clone();
        async move {
            for (broker_id, incarnation) in silent {
                info!(broker_id, "fencing a broker that stopped heartbeating");
                let fence = MetaCommand::FenceBroker(FenceBroker {
                    broker_id,
                    incarnation,
                });
                if let Err(e) = controller.write(fence).await {
                    debug!(error = %e, broker_id, "fencing not committed");
                }
            }
        }
    })
}

/// Runs `round` every heartbeat interval until `shutdown` fires, abandoning a round in
/// progress (a proposal may wait for a leader for a while; shutdown does not).
fn every_interval<F, R>(shutdown: CancellationToken, mut round: R) -> JoinHandle<()>
where
    R: FnMut() -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = round() => {}
            }
        }
    })
}

/// The leader's view of when each live broker last showed a sign of life.
#[derive(Default)]
struct SilenceWatch {
    /// Per broker: its incarnation and recorded heartbeat, and when the leader saw them change.
    seen: HashMap<i32, (Uuid, i64, Instant)>,
}

impl SilenceWatch {
    /// The live brokers silent for longer than the session timeout; nothing unless this node
    /// leads (and forgets what it saw when it does not, so a new term starts afresh).
    fn silent_brokers(&mut self, controller: &Controller, now: Instant) -> Vec<(i32, Uuid)> {
        if controller.leader() != Some(controller.id) {
            self.seen.clear();
            return Vec::new();
        }
        let live: Vec<(i32, Uuid, i64)> = controller.state.read(|s| {
            s.live_brokers()
                .map(|b| (b.broker_id, b.incarnation, b.last_heartbeat_ms))
                .collect()
        });
        self.silent_among(live, now)
    }

    /// Of the `live` brokers (id, incarnation, last recorded heartbeat), those whose record
    /// has not changed for longer than the session timeout as of `now`.
    fn silent_among(&mut self, live: Vec<(i32, Uuid, i64)>, now: Instant) -> Vec<(i32, Uuid)> {
        self.seen
            .retain(|id, _| live.iter().any(|(b, _, _)| b == id));
        let mut silent = Vec::new();
        for (broker_id, incarnation, heartbeat) in live {
            let entry = self
                .seen
                .entry(broker_id)
                .or_insert((incarnation, heartbeat, now));
            if (entry.0, entry.1) != (incarnation, heartbeat) {
                *entry = (incarnation, heartbeat, now);
            } else if now.duration_since(entry.2) > SESSION_TIMEOUT {
                silent.push((broker_id, incarnation));
            }
        }
        silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_broker_is_silent_only_once_its_record_stood_still_past_the_session_timeout() {
        let clock = ManualClock::new(0);
        let mut watch = SilenceWatch::default();
        let (quiet, chatty) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let live = |beat: i64| vec![(1, quiet, 100), (2, chatty, beat)];
        assert!(watch.silent_among(live(100), clock.now()).is_empty());
        clock.advance(SESSION_TIMEOUT);
        assert!(
            watch.silent_among(live(101), clock.now()).is_empty(),
            "exactly the timeout is not past it"
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(watch.silent_among(live(102), clock.now()), [(1, quiet)]);
        // A new incarnation under the same id starts its own clock.
        let restarted = Uuid::from_u128(3);
        assert!(
            watch
                .silent_among(vec![(1, restarted, 100)], clock.now())
                .is_empty()
        );
    }
}
