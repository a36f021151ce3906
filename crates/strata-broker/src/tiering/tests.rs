//! Tiering without a quorum or a network: one tiered partition led here, the manifest in
//! memory under the real state machine, objects in an in-memory store.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::manifest::StateManifest;
use super::*;
use crate::clock::SystemClock;
use crate::partition::Partition;

struct Fixture {
    tier: TieringContext,
    topic_id: Uuid,
    partition: Arc<Partition>,
    _dir: tempfile::TempDir,
}

/// The leader epoch the metadata gives the partition, and this broker leads it under.
const EPOCH: i32 = 0;

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosted = crate::testing::hosted(dir.path(), &[("remote.storage.enable", "true")], EPOCH);
    // Any sealed batch fills an object: nothing waits for an object to fill or for the
    // upload lag to pass.
    let settings = TieringSettings {
        upload_interval: Duration::from_millis(20),
        object_target_bytes: 1,
        ..TieringSettings::default()
    };
    let metrics = Arc::new(Metrics::new());
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let remote =
        crate::testing::remote_reader(dir.path(), store.clone(), &settings, &metrics).await;
    let tier = TieringContext {
        settings,
        node_id: 1,
        topics: hosted.topics,
        manifest: Arc::new(StateManifest(Mutex::new(hosted.state))),
        store,
        remote,
        backups: None,
        backlog: UploadBacklog::default(),
        metrics,
        clock: Arc::new(SystemClock),
    };
    Fixture {
        tier,
        topic_id: hosted.topic_id,
        partition: hosted.partition,
        _dir: dir,
    }
}

/// Appends `count` one-record batches, committing them when `commit`, then seals them.
fn append(partition: &Partition, count: usize, commit: bool) {
    use strata_log::test_util::{NOW, batch, limits, record};
    for i in 0..count {
        let bytes = batch(
            &[record(&format!("v{i}"))],
            strata_log::Compression::None,
            NOW,
        );
        let batch = strata_log::validate_produce_batch(bytes, &limits()).expect("valid");
        let appended = partition.append(&batch, NOW, false).expect("append");
        if commit {
            partition.commit_local(appended.range.last_offset + 1);
        }
    }
    partition.roll(NOW).expect("roll");
}

/// Runs the uploader until the manifest holds `offset` of the fixture's partition.
async fn upload(f: &Fixture, offset: i64) {
    let tier = &f.tier;
    let cancel = CancellationToken::new();
    let uploading = tokio::spawn(uploader::run(tier.clone(), cancel.clone()));
    for _ in 0..1000 {
        if tier.manifest.segment_for(f.topic_id, 0, offset).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    uploading.await.expect("uploader stops");
}

#[tokio::test]
async fn a_committed_segment_is_uploaded_and_reads_back_byte_for_byte() {
    let f = fixture().await;
    append(&f.partition, 10, true);
    upload(&f, 9).await;
    let (base, segment) = f
        .tier
        .manifest
        .segment_for(f.topic_id, 0, 0)
        .expect("committed to the manifest");
    assert_eq!(base, 0);
    let local = f
        .partition
        .read(0, crate::partition::ReadBound::HighWatermark, 1 << 20, true)
        .expect("local read");
    let remote = f
        .tier
        .remote
        .read(&segment, 0, 1 << 20, true)
        .await
        .expect("remote read");
    let upto = strata_log::batch::complete_batches(&remote, i64::MAX).0;
    assert!(upto > 0 && remote.len() == upto, "whole batches");
    assert_eq!(
        remote,
        local.slice(..remote.len()),
        "the bytes the log holds"
    );
}

#[tokio::test]
async fn a_remote_read_from_the_middle_starts_at_the_batch_holding_the_offset() {
    let f = fixture().await;
    append(&f.partition, 10, true);
    upload(&f, 9).await;
    let (_, segment) = f
        .tier
        .manifest
        .segment_for(f.topic_id, 0, 7)
        .expect("committed");
    let bytes: Bytes = f
        .tier
        .remote
        .read(&segment, 7, 1, true)
        .await
        .expect("remote read");
    let header = strata_log::BatchHeader::parse(&bytes).expect("a whole batch");
    assert_eq!(header.base_offset, 7);
    assert_eq!(
        bytes.len(),
        header.total_len().expect("length"),
        "at least one batch, and no more than the budget allows"
    );
}

#[tokio::test]
async fn nothing_above_the_high_watermark_leaves_the_broker() {
    let f = fixture().await;
    append(&f.partition, 5, false);
    let claimed = std::collections::HashMap::new();
    let (candidates, _) = uploader::choose(&f.tier, 0, &claimed).expect("chosen");
    assert!(candidates.is_empty(), "sealed but not committed");
    f.partition.commit_local(5);
    let (candidates, _) = uploader::choose(&f.tier, 0, &claimed).expect("chosen");
    assert!(!candidates.is_empty(), "committed: it may go");
}

#[tokio::test]
async fn the_backlog_produce_reads_is_what_the_upload_lag_measured() {
    let f = fixture().await;
    append(&f.partition, 5, true);
    uploader::report_lag(&f.tier);
    let (pending, _) = f.partition.pending_from(0);
    assert!(pending > 0);
    assert_eq!(f.tier.backlog.bytes(), pending);
    assert_eq!(
        f.tier.metrics.tiering.upload_lag_bytes.get(),
        i64::try_from(pending).expect("small")
    );
}
