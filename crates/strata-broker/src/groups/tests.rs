use super::*;
use crate::coordinator::Loader;
use crate::testing::TestWriter;

fn loader() -> Loader<GroupShard> {
    Arc::new(|partition: &Partition| {
        Ok(GroupShard {
            groups: store::replay(partition, Instant::now())?.groups,
        })
    })
}

fn committed(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    }
}

/// A runtime over one led offsets partition, loaded.
async fn runtime(dir: &std::path::Path, failing: bool) -> (CoordinatorRuntime<GroupShard>, Target) {
    let partition = Arc::new(crate::partition::test_partition(
        OFFSETS_TOPIC,
        dir,
        crate::partition::test_files(),
    ));
    let writer = if failing {
        TestWriter::failing()
    } else {
        TestWriter::direct()
    };
    let runtime = CoordinatorRuntime::new("groups", Arc::new(writer), loader());
    let target = Target {
        index: 0,
        partition,
        leader_epoch: 0,
    };
    runtime.follow(HashMap::from([(0, (target.partition.clone(), 0))]));
    for _ in 0..500 {
        if runtime.is_loaded(&target) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (runtime, target)
}

/// Commits `offset` for group `group` on topic `t` partition 0, the way OffsetCommit does.
async fn commit(
    runtime: &CoordinatorRuntime<GroupShard>,
    target: &Target,
    group: &str,
    offset: i64,
) {
    let group = group.to_string();
    runtime
        .write(target, move |_| {
            let record = offset_record(&group, "t", 0, Some(&committed(offset)));
            Write::revert(
                vec![record],
                move |shard: &mut GroupShard| {
                    shard
                        .get_or_create(&group)
                        .offsets
                        .insert(("t".into(), 0), committed(offset));
                },
                |_, _| {},
            )
        })
        .await
        .expect("committed");
}

fn replayed_offset(partition: &Partition, group: &str) -> Option<i64> {
    store::replay(partition, Instant::now())
        .expect("replay")
        .groups
        .get(group)
        .and_then(|g| g.offsets.get(&("t".into(), 0)))
        .map(|o| o.offset)
}

#[tokio::test]
async fn a_checkpoint_rewrites_the_live_state_and_only_then_drops_what_it_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (runtime, target) = runtime(dir.path(), false).await;
    for offset in 0..20 {
        commit(&runtime, &target, "old", offset).await;
    }
    commit(&runtime, &target, "new", 99).await;
    let partition = target.partition.clone();
    let start = runtime
        .submit(0, 0, move |shard| checkpoint(shard, &partition, 0, 0))
        .await
        .expect("checkpointed")
        .expect("due: 21 records hold two live keys");
    target
        .partition
        .delete_segments_below(start)
        .expect("delete");
    assert_eq!(target.partition.offsets().log_start_offset, start);
    assert_eq!(replayed_offset(&target.partition, "old"), Some(19));
    assert_eq!(replayed_offset(&target.partition, "new"), Some(99));
}

#[tokio::test]
async fn a_checkpoint_whose_write_fails_answers_nothing_to_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (runtime, target) = runtime(dir.path(), false).await;
        for offset in 0..20 {
            commit(&runtime, &target, "g", offset).await;
        }
    }
    let (runtime, target) = runtime(dir.path(), true).await;
    let partition = target.partition.clone();
    let rewritten = runtime
        .submit(0, 0, move |shard| checkpoint(shard, &partition, 0, 0))
        .await
        .expect("answered");
    assert_eq!(rewritten, None);
    assert_eq!(target.partition.offsets().log_start_offset, 0);
}

#[tokio::test]
async fn a_tick_that_cannot_write_its_expiry_keeps_the_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (runtime, target) = runtime(dir.path(), false).await;
        commit(&runtime, &target, "g", 3).await;
    }
    let (runtime, target) = runtime(dir.path(), true).await;
    // An empty group whose offsets are past retention: the tick expires them in memory and
    // then cannot write the tombstones.
    let limits = GroupSettings::default().limits;
    let now = Now {
        at: Instant::now(),
        ms: i64::MAX / 2,
    };
    runtime
        .submit(0, 0, move |shard| tick(shard, &limits, Duration::ZERO, now))
        .await
        .expect("answered");
    // The failed write rebuilds the shard from the log.
    for _ in 0..500 {
        if runtime.is_loaded(&target) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let offset = runtime
        .write(&target, |shard| {
            Write::answer(
                shard
                    .get("g")
                    .and_then(|g| g.offsets.get(&("t".into(), 0)))
                    .map(|o| o.offset),
            )
        })
        .await
        .expect("read");
    assert_eq!(offset, Some(3), "the offset the log still holds is kept");
}

#[tokio::test]
async fn an_empty_groups_offsets_expire_once_the_clock_passes_their_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (runtime, target) = runtime(dir.path(), false).await;
    commit(&runtime, &target, "g", 7).await;
    let clock = Arc::new(crate::clock::ManualClock::new(0));
    let retention = Duration::from_secs(3600);
    let limits = GroupSettings::default().limits;
    let tick_at = |clock: Arc<crate::clock::ManualClock>| {
        runtime.submit(0, 0, move |shard| {
            tick(shard, &limits, retention, Now::read(clock.as_ref()))
        })
    };
    tick_at(clock.clone()).await.expect("ticked");
    assert_eq!(replayed_offset(&target.partition, "g"), Some(7), "not yet");
    clock.advance(retention);
    tick_at(clock.clone()).await.expect("ticked");
    assert_eq!(
        replayed_offset(&target.partition, "g"),
        None,
        "the tombstone is in the log"
    );
    let held = runtime
        .write(&target, |shard| {
            Write::answer(shard.get("g").map(|g| g.offsets.len()))
        })
        .await
        .expect("read");
    assert_eq!(held, Some(0), "and the offset is gone from memory");
}

#[test]
fn groups_map_to_the_partitions_kafka_would_choose() {
    // Java's "my-group".hashCode() is -1906497762; Utils.abs maps i32::MIN (the hash of
    // "polygenelubricants") to 0.
    assert_eq!(java_hash(""), 0);
    assert_eq!(java_hash("a"), 97);
    assert_eq!(java_hash("my-group"), -1_906_497_762);
    assert_eq!(partition_for("my-group", 50), 12);
    assert_eq!(partition_for("console-consumer-12345", 50), 6);
    assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
}
