//! Counts every request by operation and purpose (the first segment of the object's path,
//! e.g. `segments` or `metadata`), with the bytes it sent and whether it failed, and wraps it
//! in a span: the numbers behind the object-request bill and the traces behind a slow read.

use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tracing::{Instrument, info_span};

use crate::layer::{Call, Layer, Op, Request};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub op: &'static str,
    pub purpose: String,
}

/// Object store request metrics.
#[derive(Debug, Default, Clone)]
pub struct ObjectStoreMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<RequestLabels, Counter>,
    pub bytes_sent: Family<RequestLabels, Counter>,
}

impl ObjectStoreMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let store = registry.sub_registry_with_prefix("object_store");
        store.register(
            "requests",
            "Object store requests, by operation and purpose",
            self.requests.clone(),
        );
        store.register(
            "errors",
            "Object store requests that failed (after retries), by operation and purpose",
            self.errors.clone(),
        );
        store.register(
            "sent_bytes",
            "Bytes written to the object store, by operation and purpose",
            self.bytes_sent.clone(),
        );
    }
}

/// The counting layer. Put it above the retries to count what the application asked for,
/// below them to count what the store billed.
#[derive(Debug, Clone)]
pub struct Counted(pub ObjectStoreMetrics);

fn purpose(path: &object_store::path::Path) -> String {
    path.parts()
        .next()
        .map(|p| p.as_ref().to_string())
        .unwrap_or_default()
}

impl Layer for Counted {
    fn around<'a, T: Send + 'a>(
        &'a self,
        request: Request<'a>,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, object_store::Result<T>> {
        let labels = RequestLabels {
            op: request.op.name(),
            purpose: purpose(request.path),
        };
        let span = info_span!("object_store", op = request.op.name(), path = %request.path, bytes = request.bytes);
        async move {
            self.0.requests.get_or_create(&labels).inc();
            self.0
                .bytes_sent
                .get_or_create(&labels)
                .inc_by(request.bytes);
            let result = call().await;
            if result.is_err() {
                self.0.errors.get_or_create(&labels).inc();
            }
            result
        }
        .instrument(span)
        .boxed()
    }

    fn on_stream(&self, op: Op) {
        let labels = RequestLabels {
            op: op.name(),
            purpose: String::new(),
        };
        self.0.requests.get_or_create(&labels).inc();
    }
}
