//! Work that blocks (disk reads and writes, fsyncs, CPU-heavy validation) run off the async
//! runtime's threads, so that requests on them do not wait behind it.

use crate::error::BrokerError;

/// Runs `work` on the blocking pool. A panic in it comes back as an I/O error, never as a
/// panic of the caller.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))
}
