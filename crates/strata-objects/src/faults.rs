//! Injects the failures a real object store produces, for tests: transient errors (S3's 503
//! SlowDown and 500s), slow answers, and ambiguous PUTs (the object is stored but the answer
//! is lost). The plan can be changed while requests run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::Error;

use crate::layer::{Call, Layer, Op, Request};

/// What to inject; every field may be changed at any time.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// The next this many requests fail with a transient error, without reaching the store.
    pub fail_next: AtomicU32,
    /// Every this many-th request fails that way (0: none).
    pub fail_every: AtomicU32,
    /// The next this many PUTs reach the store and then answer a transient error.
    pub ambiguous_puts: AtomicU32,
    /// Milliseconds added before every request.
    pub delay_ms: AtomicU64,
    /// Requests seen, for `fail_every`.
    seen: AtomicU32,
}

/// The error an injected failure answers.
#[derive(Debug, thiserror::Error)]
#[error("injected: {0}")]
pub struct Injected(&'static str);

fn injected(what: &'static str) -> Error {
    Error::Generic {
        store: "faults",
        source: Box::new(Injected(what)),
    }
}

/// Takes one from `counter` if it is above zero.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

/// The fault-injecting layer.
#[derive(Debug, Clone, Default)]
pub struct Faults(pub Arc<FaultPlan>);

impl Layer for Faults {
    fn around<'a, T: Send + 'a>(
        &'a self,
        request: Request<'a>,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, object_store::Result<T>> {
        async move {
            let plan = &self.0;
            let delay = plan.delay_ms.load(Ordering::Acquire);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let seen = plan.seen.fetch_add(1, Ordering::AcqRel) + 1;
            let every = plan.fail_every.load(Ordering::Acquire);
            if take(&plan.fail_next) || (every > 0 && seen.is_multiple_of(every)) {
                return Err(injected("503 SlowDown"));
            }
            let result = call().await;
            if request.op == Op::Put && result.is_ok() && take(&plan.ambiguous_puts) {
                return Err(injected("the PUT's answer was lost"));
            }
            result
        }
        .boxed()
    }
}
