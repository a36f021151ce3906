use std::sync::Mutex;

use strata_log::test_util::{NOW, batch, record};

use super::*;
use crate::clock::SystemClock;
use crate::tiering::manifest::StateManifest;

/// What the metadata says of topics other than the hosted one: `elsewhere` (one partition,
/// led by another broker) exists, nothing else does.
struct Catalog;

impl TopicCatalog for Catalog {
    fn partition_count(&self, topic: TopicRef<'_>) -> Option<usize> {
        match topic {
            TopicRef::Name("t" | "elsewhere") => Some(1),
            _ => None,
        }
    }
}

struct Fixture {
    replicas: ReplicaManager,
    led: LedPartition,
    backlog: UploadBacklog,
    _dir: tempfile::TempDir,
}

const EPOCH: i32 = 3;

async fn fixture(overrides: &[(&str, &str)], local_budget_bytes: u64) -> Fixture {
    fixture_with_lease(
        overrides,
        local_budget_bytes,
        crate::lease::Lease::unneeded(),
    )
    .await
}

async fn fixture_with_lease(
    overrides: &[(&str, &str)],
    local_budget_bytes: u64,
    lease: crate::lease::Lease,
) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosted = crate::testing::hosted(dir.path(), overrides, EPOCH);
    let mut config = BrokerConfig::new(dir.path().to_path_buf());
    config.tiering.local_budget_bytes = local_budget_bytes;
    let metrics = Arc::new(Metrics::new());
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let remote = crate::testing::remote_reader(dir.path(), store, &config.tiering, &metrics).await;
    let backlog = UploadBacklog::default();
    let replicas = ReplicaManager::new(
        &config,
        ReplicaDeps {
            topics: hosted.topics,
            catalog: Arc::new(Catalog),
            manifest: Arc::new(StateManifest(Mutex::new(hosted.state))),
            remote,
            group_commit: None,
            backlog: backlog.clone(),
            isr_writer: Arc::new(crate::testing::RecordedIsrChanges::default()),
            lease,
            metrics,
            clock: Arc::new(SystemClock),
        },
    );
    let led = replicas
        .led_partition(TopicRef::Name("t"), 0)
        .expect("led here");
    Fixture {
        replicas,
        led,
        backlog,
        _dir: dir,
    }
}

fn produced(led: &LedPartition, value: &str) -> ProducedBatch {
    ProducedBatch {
        led: led.clone(),
        records: batch(&[record(value)], strata_log::Compression::None, NOW),
    }
}

async fn produce(
    f: &Fixture,
    value: &str,
    acks: RequiredAcks,
) -> Result<AppendOutcome, BrokerError> {
    let mut outcomes = f
        .replicas
        .append(vec![produced(&f.led, value)], acks, Duration::from_secs(30))
        .await;
    outcomes.pop().expect("one answer per batch")
}

/// A consumer's read from `offset` under the current epoch, which must find records.
async fn read_records(f: &Fixture, offset: i64) -> ReadResult {
    let at = FetchAt {
        fetch_offset: offset,
        last_fetched_epoch: -1,
        current_leader_epoch: EPOCH,
    };
    match f.replicas.read(&f.led, at, 1 << 20, true).await {
        Ok(FetchRead::Records(read)) => read,
        other => panic!("a read from {offset} answered {other:?}"),
    }
}

#[tokio::test]
async fn a_consumer_whose_last_epoch_ended_before_its_offset_is_told_where_it_diverged() {
    let f = fixture(&[], 0).await;
    for _ in 0..3 {
        produce(&f, "v", RequiredAcks::All).await.expect("appended");
    }
    // The log holds epoch EPOCH from offset 0: an earlier epoch ended there.
    let at = |last_fetched_epoch| FetchAt {
        fetch_offset: 2,
        last_fetched_epoch,
        current_leader_epoch: EPOCH,
    };
    let diverged = f.replicas.read(&f.led, at(EPOCH - 1), 1 << 20, true).await;
    assert!(
        matches!(
            diverged,
            Ok(FetchRead::Diverging {
                epoch,
                end_offset: 0,
                ..
            }) if epoch == EPOCH - 1
        ),
        "{diverged:?}"
    );
    let read = f.replicas.read(&f.led, at(EPOCH), 1 << 20, true).await;
    assert!(matches!(read, Ok(FetchRead::Records(_))), "{read:?}");
}

#[tokio::test]
async fn an_acknowledged_append_is_committed_and_readable() {
    let f = fixture(&[], 0).await;
    for acks in [RequiredAcks::All, RequiredAcks::Leader, RequiredAcks::None] {
        produce(&f, "v", acks).await.expect("appended");
    }
    let read = read_records(&f, 0).await;
    assert_eq!(read.offsets.high_watermark, 3);
    assert_eq!(read.offsets.log_end_offset, 3);
    let (_, last) =
        strata_log::batch::complete_batches(&read.records.to_bytes().expect("read"), i64::MAX);
    assert_eq!(last.map(|h| h.last_offset()), Some(2));
}

#[tokio::test]
async fn a_leader_whose_lease_ran_out_acknowledges_nothing_until_it_is_renewed() {
    let lease = crate::lease::Lease::new(Duration::from_secs(7));
    let f = fixture_with_lease(&[], 0, lease.clone()).await;
    for acks in [RequiredAcks::Leader, RequiredAcks::All] {
        assert!(matches!(
            produce(&f, "refused", acks).await,
            Err(BrokerError::LeaseExpired { .. })
        ));
    }
    assert_eq!(
        f.led.partition.offsets().log_end_offset,
        0,
        "nothing was written"
    );
    lease.renew(std::time::Instant::now());
    produce(&f, "accepted", RequiredAcks::Leader)
        .await
        .expect("appended");
    assert_eq!(f.led.partition.offsets().log_end_offset, 1);
}

#[tokio::test]
async fn an_acks_all_append_waiting_for_followers_gives_up_when_the_lease_runs_out() {
    let lease = crate::lease::Lease::new(Duration::from_millis(200));
    lease.renew(std::time::Instant::now());
    let f = fixture_with_lease(&[], 0, lease).await;
    // A follower that never fetches: nothing can commit.
    f.led.partition.set_role(
        &crate::partition::Role::Leader(crate::leader_state::Assignment {
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader_epoch: EPOCH,
            partition_epoch: 1,
            live: [(1, uuid::Uuid::from_u128(1)), (2, uuid::Uuid::from_u128(2))].into(),
        }),
        NOW,
    );
    // The append's own timeout is 30 s: only the lease can answer this.
    assert!(matches!(
        produce(&f, "stranded", RequiredAcks::All).await,
        Err(BrokerError::LeaseExpired { .. })
    ));
}

#[tokio::test]
async fn a_read_never_returns_what_is_not_committed() {
    let f = fixture(&[], 0).await;
    produce(&f, "committed", RequiredAcks::All)
        .await
        .expect("appended");
    // Written to the log, but (as a follower that has not caught up would leave it) not
    // committed: only the replica manager's commit rule moves the high watermark.
    let uncommitted = strata_log::validate_produce_batch(
        batch(&[record("pending")], strata_log::Compression::None, NOW),
        &strata_log::test_util::limits(),
    )
    .expect("valid");
    f.led
        .partition
        .append(&uncommitted, NOW, false)
        .expect("append");
    let read = read_records(&f, 0).await;
    assert_eq!(
        (read.offsets.high_watermark, read.offsets.log_end_offset),
        (1, 2)
    );
    let (_, last) =
        strata_log::batch::complete_batches(&read.records.to_bytes().expect("read"), i64::MAX);
    assert_eq!(last.map(|h| h.last_offset()), Some(0));
    let at_the_bound = read_records(&f, 1).await;
    assert!(at_the_bound.records.is_empty());
}

#[tokio::test]
async fn partitions_not_led_here_are_told_apart_from_unknown_ones() {
    let f = fixture(&[], 0).await;
    let refused = |topic, index| f.replicas.led_partition(topic, index).map(drop);
    assert!(matches!(
        refused(TopicRef::Name("elsewhere"), 0),
        Err(BrokerError::NotLeaderOrFollower)
    ));
    assert!(matches!(
        refused(TopicRef::Name("nowhere"), 0),
        Err(BrokerError::UnknownTopicOrPartition)
    ));
    assert!(matches!(
        refused(TopicRef::Name("elsewhere"), 5),
        Err(BrokerError::UnknownTopicOrPartition)
    ));
    assert!(matches!(
        refused(TopicRef::Id(uuid::Uuid::new_v4()), 0),
        Err(BrokerError::UnknownTopicId)
    ));
}

#[tokio::test]
async fn a_read_with_another_leader_epoch_is_fenced_or_unknown() {
    let f = fixture(&[], 0).await;
    let read = |epoch| {
        let at = FetchAt {
            fetch_offset: 0,
            last_fetched_epoch: -1,
            current_leader_epoch: epoch,
        };
        f.replicas.read(&f.led, at, 1 << 20, true)
    };
    assert!(matches!(
        read(EPOCH - 1).await,
        Err(BrokerError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        read(EPOCH + 1).await,
        Err(BrokerError::UnknownLeaderEpoch { .. })
    ));
    assert!(
        read(-1).await.is_ok(),
        "a client without an epoch is served"
    );
}

#[tokio::test]
async fn a_tiered_partition_over_its_local_budget_refuses_appends_until_the_backlog_drains() {
    let f = fixture(&[("remote.storage.enable", "true")], 1000).await;
    f.backlog.set(1000);
    assert!(matches!(
        produce(&f, "v", RequiredAcks::All).await,
        Err(BrokerError::TieringBacklog { .. })
    ));
    f.backlog.set(999);
    produce(&f, "v", RequiredAcks::All)
        .await
        .expect("under the budget again");
}

#[tokio::test]
async fn a_coordinators_batch_is_committed_before_append_internal_returns() {
    let f = fixture(&[], 0).await;
    let records = vec![(
        bytes::Bytes::from_static(b"key"),
        Some(bytes::Bytes::from_static(b"value")),
    )];
    let batch = crate::coordinator::encode_batch(records, NOW).expect("encodes");
    let appended = f
        .replicas
        .append_internal(&f.led.partition, batch)
        .await
        .expect("appended");
    assert_eq!(
        f.led.partition.offsets().high_watermark,
        appended.range.last_offset + 1
    );
}
