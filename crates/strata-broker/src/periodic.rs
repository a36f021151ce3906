//! The shape of every background chore: do something every so often until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `chore` every `period`, the first time at once, until `cancel` fires (also in the
/// middle of a run). A run that overruns delays the next one instead of bunching them up.
pub async fn every<F, Fut>(period: Duration, cancel: &CancellationToken, mut chore: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = chore() => {}
        }
    }
}
