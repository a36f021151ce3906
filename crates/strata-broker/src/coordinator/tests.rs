use std::time::Duration;

use tokio::sync::Semaphore;

use super::*;
use crate::testing::TestWriter;

/// The test shard's state: what it has applied, and how many records its log held when it
/// was loaded.
#[derive(Debug, Default)]
struct Log {
    applied: Vec<&'static str>,
    loaded_from: i64,
}

struct Fixture {
    runtime: CoordinatorRuntime<Log>,
    target: Target,
    permits: Arc<Semaphore>,
    _dir: tempfile::TempDir,
}

async fn fixture(failing: bool, permits: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let partition = Arc::new(crate::partition::test_partition(
        "__test",
        dir.path(),
        crate::partition::test_files(),
    ));
    let permits = Arc::new(Semaphore::new(permits));
    let writer = TestWriter {
        permits: permits.clone(),
        failing,
    };
    let loader: Loader<Log> = Arc::new(|partition: &Partition| {
        Ok(Log {
            applied: Vec::new(),
            loaded_from: partition.offsets().high_watermark,
        })
    });
    let runtime = CoordinatorRuntime::new("test", Arc::new(writer), loader);
    let target = Target {
        index: 0,
        partition,
        leader_epoch: 3,
    };
    runtime.follow(HashMap::from([(0, (target.partition.clone(), 3))]));
    wait_loaded(&runtime, &target).await;
    Fixture {
        runtime,
        target,
        permits,
        _dir: dir,
    }
}

async fn wait_loaded(runtime: &CoordinatorRuntime<Log>, target: &Target) {
    for _ in 0..1000 {
        if runtime.is_loaded(target) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the shard never loaded");
}

fn record() -> Vec<Record> {
    vec![(Bytes::from_static(b"k"), Some(Bytes::from_static(b"v")))]
}

/// An operation that applies `name` once its record is committed.
fn apply(name: &'static str) -> impl FnOnce(&mut Log) -> Write<Log, Vec<&'static str>> + Send {
    move |_| {
        Write::revert(
            record(),
            move |log: &mut Log| {
                log.applied.push(name);
                log.applied.clone()
            },
            |log, _| log.applied.clone(),
        )
    }
}

#[tokio::test]
async fn an_answer_is_released_only_once_its_records_are_committed() {
    let f = fixture(false, 0).await;
    let runtime = Arc::new(f.runtime);
    let writing = {
        let (runtime, target) = (runtime.clone(), f.target.clone());
        tokio::spawn(async move { runtime.write(&target, apply("a")).await })
    };
    // Held in the writer: nothing may be answered, and nothing is committed.
    let early = tokio::time::timeout(Duration::from_millis(50), async {
        while !writing.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(early.is_err(), "answered before its write committed");
    assert_eq!(f.target.partition.offsets().high_watermark, 0);
    f.permits.add_permits(1);
    let answer = writing.await.expect("join").expect("written");
    assert_eq!(answer, ["a"]);
    assert_eq!(f.target.partition.offsets().high_watermark, 1);
}

#[tokio::test]
async fn operations_run_one_at_a_time_in_the_order_they_came() {
    let f = fixture(false, 0).await;
    let runtime = Arc::new(f.runtime);
    let mut answers = Vec::new();
    for name in ["first", "second", "third"] {
        let (runtime, target) = (runtime.clone(), f.target.clone());
        answers.push(tokio::spawn(async move {
            runtime.write(&target, apply(name)).await
        }));
        // Each is queued before the next is sent.
        tokio::task::yield_now().await;
    }
    f.permits.add_permits(3);
    let mut last = Vec::new();
    for answer in answers {
        last = answer.await.expect("join").expect("written");
    }
    assert_eq!(last, ["first", "second", "third"]);
}

#[tokio::test]
async fn a_failed_write_is_reverted_by_the_operation() {
    let f = fixture(true, 10).await;
    let answer = f
        .runtime
        .write(&f.target, |log: &mut Log| {
            log.applied.push("tentative");
            Write::revert(
                record(),
                |log: &mut Log| log.applied.clone(),
                |log, _| {
                    log.applied.pop();
                    log.applied.clone()
                },
            )
        })
        .await
        .expect("answered");
    assert!(answer.is_empty(), "the revert undid the change");
    assert!(
        f.runtime.is_loaded(&f.target),
        "a reverted failure keeps the shard"
    );
}

#[tokio::test]
async fn a_failed_write_that_asks_for_a_reload_rebuilds_the_shard_from_the_log() {
    let f = fixture(false, 10).await;
    f.runtime
        .write(&f.target, apply("committed"))
        .await
        .expect("written");
    // Same partition, a writer that fails: a second runtime over it.
    let failing = CoordinatorRuntime::new(
        "test",
        Arc::new(TestWriter::failing()),
        f.runtime.loader.clone(),
    );
    failing.follow(HashMap::from([(0, (f.target.partition.clone(), 3))]));
    wait_loaded(&failing, &f.target).await;
    let failed = failing
        .write(&f.target, |log: &mut Log| {
            log.applied.push("lost");
            Write::reload(record(), |_| "committed", |_| "failed")
        })
        .await
        .expect("answered");
    assert_eq!(failed, "failed");
    wait_loaded(&failing, &f.target).await;
    let state = failing
        .write(&f.target, |log: &mut Log| {
            Write::answer((log.applied.clone(), log.loaded_from))
        })
        .await
        .expect("read");
    assert_eq!(
        state,
        (Vec::<&str>::new(), 1),
        "rebuilt from the one committed record"
    );
}

#[tokio::test]
async fn a_shard_led_under_another_epoch_or_no_longer_led_is_refused() {
    let f = fixture(false, 10).await;
    let old = f.target.clone();
    let newer = Target {
        leader_epoch: 4,
        ..old.clone()
    };
    f.runtime
        .follow(HashMap::from([(0, (old.partition.clone(), 4))]));
    assert!(matches!(
        f.runtime.submit(0, 3, |_| Write::answer(())).await,
        Err(ResponseError::NotCoordinator)
    ));
    wait_loaded(&f.runtime, &newer).await;
    f.runtime.follow(HashMap::new());
    assert!(matches!(
        f.runtime.submit(0, 4, |_| Write::answer(())).await,
        Err(ResponseError::NotCoordinator)
    ));
}
