//! Bounds each attempt of a request: a store that stops answering becomes an error a retry
//! can act on instead of a hung upload or read.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::Error;

use crate::layer::{Call, Layer, Request};

/// The per-attempt time limit.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts(pub Duration);

/// The error a timed-out attempt becomes.
#[derive(Debug, thiserror::Error)]
#[error("{op} of {path} took longer than {limit:?}")]
pub struct TimedOut {
    op: &'static str,
    path: String,
    limit: Duration,
}

impl Layer for Timeouts {
    fn around<'a, T: Send + 'a>(
        &'a self,
        request: Request<'a>,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, object_store::Result<T>> {
        async move {
            match tokio::time::timeout(self.0, call()).await {
                Ok(result) => result,
                Err(_) => Err(Error::Generic {
                    store: "timeout",
                    source: Box::new(TimedOut {
                        op: request.op.name(),
                        path: request.path.to_string(),
                        limit: self.0,
                    }),
                }),
            }
        }
        .boxed()
    }
}
