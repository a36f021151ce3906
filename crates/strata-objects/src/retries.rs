//! Retries a failed request with exponential backoff and full jitter, for errors a retry can
//! fix (throttling, 5xx, timeouts, dropped connections), and only for idempotent requests.
//! The S3 client's own retries are switched off where the store is opened, so a request is
//! retried in exactly one place.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::Error;
use rand::Rng;
use tracing::debug;

use crate::layer::{Call, Layer, Request};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// The retrying layer.
#[derive(Debug, Clone, Copy)]
pub struct Retries(pub RetryPolicy);

/// Whether an error may go away on its own. Answers the store gives on purpose (missing,
/// already there, precondition failed, unsupported, bad configuration) do not.
pub fn is_transient(error: &Error) -> bool {
    !matches!(
        error,
        Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::Precondition { .. }
            | Error::NotModified { .. }
            | Error::NotSupported { .. }
            | Error::NotImplemented { .. }
            | Error::InvalidPath { .. }
            | Error::UnknownConfigurationKey { .. }
            | Error::PermissionDenied { .. }
            | Error::Unauthenticated { .. }
    )
}

impl Layer for Retries {
    fn around<'a, T: Send + 'a>(
        &'a self,
        request: Request<'a>,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, object_store::Result<T>> {
        async move {
            let policy = self.0;
            let mut attempt = 1;
            loop {
                match call().await {
                    Err(e)
                        if attempt < policy.max_attempts
                            && request.op.is_idempotent()
                            && is_transient(&e) =>
                    {
                        // Full jitter: anywhere up to the exponential ceiling.
                        let ceiling = policy
                            .base_delay
                            .saturating_mul(1 << attempt.min(16))
                            .min(policy.max_delay);
                        let pause = rand::rng().random_range(Duration::ZERO..=ceiling);
                        debug!(op = request.op.name(), path = %request.path, attempt, error = %e, ?pause, "object store request failed; retrying");
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        }
        .boxed()
    }
}
