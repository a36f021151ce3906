//! The layers against an in-memory store with faults injected underneath.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{
    Counted, FaultPlan, Faults, Layered, ObjectStoreMetrics, RequestLabels, RetryPolicy,
    StoreSettings, decorate,
};

/// A memory store with faults underneath the standard layers; fast retries.
fn faulty(plan: &Arc<FaultPlan>, metrics: &ObjectStoreMetrics) -> Arc<dyn ObjectStore> {
    let backend = Arc::new(Layered::new(
        Arc::new(InMemory::new()),
        Faults(plan.clone()),
    ));
    let settings = StoreSettings {
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        attempt_timeout: Duration::from_millis(200),
    };
    decorate(backend, settings, metrics.clone())
}

fn count(metrics: &ObjectStoreMetrics, family: &str, op: &'static str) -> u64 {
    let labels = RequestLabels {
        op,
        purpose: "segments".into(),
    };
    match family {
        "requests" => metrics.requests.get_or_create(&labels).get(),
        "errors" => metrics.errors.get_or_create(&labels).get(),
        _ => metrics.bytes_sent.get_or_create(&labels).get(),
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_counted_once() {
    let plan = Arc::new(FaultPlan::default());
    let metrics = ObjectStoreMetrics::default();
    let store = faulty(&plan, &metrics);
    let path = Path::from("segments/0001");
    plan.fail_next.store(3, Ordering::Release);
    store
        .put(&path, PutPayload::from_static(b"hello"))
        .await
        .expect("stored after three failures");
    assert_eq!(
        store
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes")
            .as_ref(),
        b"hello"
    );
    assert_eq!(
        count(&metrics, "requests", "put"),
        1,
        "one request asked for"
    );
    assert_eq!(count(&metrics, "sent_bytes", "put"), 5);
    assert_eq!(count(&metrics, "errors", "put"), 0);
}

#[tokio::test]
async fn an_ambiguous_put_is_retried_and_the_object_is_there_once() {
    let plan = Arc::new(FaultPlan::default());
    let metrics = ObjectStoreMetrics::default();
    let store = faulty(&plan, &metrics);
    let path = Path::from("segments/0002");
    plan.ambiguous_puts.store(1, Ordering::Release);
    store
        .put(&path, PutPayload::from_static(b"once"))
        .await
        .expect("the retry succeeds");
    let bytes = store
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.as_ref(), b"once");
}

#[tokio::test]
async fn persistent_failures_give_up_and_answers_on_purpose_are_not_retried() {
    let plan = Arc::new(FaultPlan::default());
    let metrics = ObjectStoreMetrics::default();
    let store = faulty(&plan, &metrics);
    plan.fail_next.store(100, Ordering::Release);
    let refused = store
        .put(&Path::from("segments/0003"), PutPayload::from_static(b"x"))
        .await;
    assert!(refused.is_err(), "five attempts, then the error");
    assert_eq!(
        plan.fail_next.load(Ordering::Acquire),
        95,
        "exactly five attempts"
    );
    assert_eq!(count(&metrics, "errors", "put"), 1);

    plan.fail_next.store(0, Ordering::Release);
    let missing = store.get(&Path::from("segments/nope")).await;
    assert!(matches!(missing, Err(object_store::Error::NotFound { .. })));
    assert_eq!(
        count(&metrics, "requests", "get"),
        1,
        "NotFound is an answer, not retried"
    );
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let plan = Arc::new(FaultPlan::default());
    let metrics = ObjectStoreMetrics::default();
    let store = faulty(&plan, &metrics);
    plan.delay_ms.store(500, Ordering::Release);
    let slow = store
        .put(&Path::from("segments/0004"), PutPayload::from_static(b"x"))
        .await;
    assert!(slow.is_err(), "every attempt times out");
    plan.delay_ms.store(0, Ordering::Release);
    store
        .put(&Path::from("segments/0004"), PutPayload::from_static(b"x"))
        .await
        .expect("fast again");
}

#[tokio::test]
async fn counting_alone_sees_every_request() {
    let metrics = ObjectStoreMetrics::default();
    let store = Layered::new(Arc::new(InMemory::new()), Counted(metrics.clone()));
    for i in 0..3 {
        store
            .put(
                &Path::from(format!("segments/{i}")),
                PutPayload::from_static(b"ab"),
            )
            .await
            .expect("put");
    }
    assert_eq!(count(&metrics, "requests", "put"), 3);
    assert_eq!(count(&metrics, "sent_bytes", "put"), 6);
}
