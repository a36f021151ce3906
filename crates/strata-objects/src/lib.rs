//! The object store layer. [`open`] turns an `--object-store` URL into an
//! `Arc<dyn ObjectStore>` with every request going, in order, through [`Counted`] (metrics
//! and a span per request the application makes), [`Retries`] (backoff and jitter for
//! transient failures) and [`Timeouts`] (a limit per attempt); tests can put [`Faults`]
//! underneath. Everything above this crate sees only `Arc<dyn ObjectStore>`.

mod aws_credentials;
mod counted;
mod faults;
mod layer;
mod local_files;
mod retries;
mod timeouts;
mod url;

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

pub use aws_credentials::AwsConfigCredentials;
pub use counted::{Counted, ObjectStoreMetrics, RequestLabels};
pub use faults::{FaultPlan, Faults, Injected};
pub use layer::{Call, Layer, Layered, Op, Request};
pub use retries::{Retries, RetryPolicy, is_transient};
pub use timeouts::{TimedOut, Timeouts};
pub use url::{ObjectStoreUrlError, check_credentials, open_backend};

/// How requests are retried and bounded.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    pub retry: RetryPolicy,
    /// The limit on one attempt.
    pub attempt_timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// Opens the store for `url` with the standard layers around it.
pub fn open(
    url: &str,
    settings: StoreSettings,
    metrics: ObjectStoreMetrics,
) -> Result<Arc<dyn ObjectStore>, ObjectStoreUrlError> {
    Ok(decorate(open_backend(url)?, settings, metrics))
}

/// Puts the standard layers around `backend`.
pub fn decorate(
    backend: Arc<dyn ObjectStore>,
    settings: StoreSettings,
    metrics: ObjectStoreMetrics,
) -> Arc<dyn ObjectStore> {
    let bounded = Arc::new(Layered::new(backend, Timeouts(settings.attempt_timeout)));
    let retried = Arc::new(Layered::new(bounded, Retries(settings.retry)));
    Arc::new(Layered::new(retried, Counted(metrics)))
}

#[cfg(test)]
mod tests;
