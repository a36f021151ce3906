//! SIGTERM/SIGINT: the first starts the ordered shutdown, a second (or the shutdown taking
//! longer than its timeout) exits at once.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Exit status for a forced exit, as shells report a SIGINT death.
const FORCED_EXIT: i32 = 130;

pub fn spawn_handler(shutdown: CancellationToken, timeout: Duration) {
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("could not install signal handlers; stop the broker with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
            _ = int.recv() => info!(signal = "SIGINT", "shutting down"),
        }
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => warn!("second signal: exiting now"),
            _ = int.recv() => warn!("second signal: exiting now"),
            () = tokio::time::sleep(timeout + Duration::from_secs(5)) => warn!("shutdown timed out: exiting now"),
        }
        std::process::exit(FORCED_EXIT);
    });
}
