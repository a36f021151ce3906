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
    dir: tempfile::TempDir,
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
        dir,
    }
}

/// Appends `count` one-record batches, committing them when `commit`.
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
}

/// The segment files (`*.log`) under `dir`, however deep.
fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .map(|path| match path.extension() {
                _ if path.is_dir() => segment_files(&path),
                Some(ext) if ext == "log" => 1,
                _ => 0,
            })
            .sum()
    })
}

/// Runs the uploader until the manifest holds `offset` of the fixture's partition.
async fn upload(f: &Fixture, offset: i64) {
    let uploader = Uploader::start(f);
    uploader.wait_for(f, offset).await;
    uploader.stop().await;
}

/// An uploader running in the background. Keep one for a whole test: this fixture has no
/// reconciler telling a new uploader what the manifest already holds.
struct Uploader {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Uploader {
    fn start(f: &Fixture) -> Self {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(uploader::run(f.tier.clone(), cancel.clone()));
        Self { cancel, task }
    }

    async fn wait_for(&self, f: &Fixture, offset: i64) {
        for _ in 0..1000 {
            if f.tier.manifest.segment_for(f.topic_id, 0, offset).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{offset} was not uploaded in 10 s");
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.expect("uploader stops");
    }
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
    let mut f = fixture().await;
    // Room for everything in one object, and no waiting for the upload lag.
    f.tier.settings.object_target_bytes = u64::MAX;
    f.tier.settings.upload_max_lag = Duration::ZERO;
    append(&f.partition, 5, false);
    let claimed = std::collections::HashMap::new();
    let (candidates, _) = uploader::choose(&f.tier, 0, &claimed).expect("chosen");
    assert!(candidates.is_empty(), "written but not committed");
    f.partition.commit_local(3);
    let (candidates, _) = uploader::choose(&f.tier, 0, &claimed).expect("chosen");
    let uploaded: Vec<_> = candidates
        .iter()
        .map(|c| (c.range.base_offset, c.range.last_offset))
        .collect();
    assert_eq!(uploaded, [(0, 2)], "committed: it may go");
}

#[tokio::test]
async fn uploads_take_the_active_segment_without_rolling_it() {
    let f = fixture().await;
    let uploader = Uploader::start(&f);
    append(&f.partition, 5, true);
    uploader.wait_for(&f, 4).await;
    append(&f.partition, 5, true);
    uploader.wait_for(&f, 9).await;
    uploader.stop().await;
    for offset in [0, 4, 5, 9] {
        assert!(
            f.tier.manifest.segment_for(f.topic_id, 0, offset).is_some(),
            "{offset} is tiered"
        );
    }
    assert_eq!(
        segment_files(f.dir.path()),
        1,
        "one local segment, however many upload rounds"
    );
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

/// Reads the whole tiered log back from offset 0, entry by entry, as fetches below the local
/// log start would.
async fn read_tiered(f: &Fixture, end: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < end {
        let (_, segment) = f
            .tier
            .manifest
            .segment_for(f.topic_id, 0, offset)
            .expect("tiered");
        let bytes = f
            .tier
            .remote
            .read(&segment, offset, 1 << 20, true)
            .await
            .expect("remote read");
        let mut rest = &bytes[..];
        while let Some(header) = strata_log::BatchHeader::parse(rest) {
            let len = header.total_len().expect("whole");
            out.extend_from_slice(&rest[..len]);
            offset = header.last_offset() + 1;
            rest = &rest[len..];
        }
    }
    out
}

#[tokio::test]
async fn small_entries_are_merged_into_one_holding_the_same_bytes_and_the_rest_is_swept() {
    let mut f = fixture().await;
    let uploader = Uploader::start(&f);
    append(&f.partition, 20, true);
    uploader.wait_for(&f, 19).await;
    uploader.stop().await;
    assert_eq!(f.tier.manifest.totals().segments, 20, "an object per batch");
    let before = read_tiered(&f, 20).await;

    // A stray object no commit referenced (an upload that never committed), young.
    let stray = object_store::path::Path::from(format!("{}/stray", sweeper::SEGMENTS_PREFIX));
    object_store::ObjectStoreExt::put(&*f.tier.store, &stray, Bytes::from_static(b"x").into())
        .await
        .expect("put");
    let sweeper = sweeper::Sweeper::default();
    assert_eq!(
        sweeper.sweep(&f.tier).await.expect("swept"),
        0,
        "young objects stay: the referenced ones and the stray one"
    );

    f.tier.settings.object_target_bytes = 1 << 20;
    assert!(
        !merger::round(&f.tier).await.expect("merged"),
        "20 small batches do not fill an object"
    );
    let totals = f.tier.manifest.totals();
    assert_eq!((totals.segments, totals.objects), (1, 1));
    assert_eq!(f.tier.metrics.tiering.merge_runs_replaced.get(), 1);
    assert_eq!(read_tiered(&f, 20).await, before, "the same batches");

    // Still within the grace period, the merged-away objects go: the sweeper saw them
    // referenced, so they were committed and no commit references them again. The stray
    // one waits out the grace (it may be an upload about to commit).
    assert_eq!(sweeper.sweep(&f.tier).await.expect("swept"), 20);
    assert!(
        object_store::ObjectStoreExt::head(&*f.tier.store, &stray)
            .await
            .is_ok(),
        "the stray object stays"
    );
    // Past the grace period it goes too; the merged one is referenced and stays.
    f.tier.settings.orphan_grace = Duration::from_millis(1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(sweeper.sweep(&f.tier).await.expect("swept"), 1);
    assert_eq!(
        read_tiered(&f, 20).await,
        before,
        "read from the merged object"
    );
    assert!(
        !merger::round(&f.tier).await.expect("round"),
        "nothing left to merge"
    );
    assert_eq!(f.tier.metrics.tiering.merge_objects.get(), 1);
}

#[tokio::test]
async fn a_merge_that_cannot_read_its_entries_commits_nothing() {
    use object_store::ObjectStoreExt;

    let f = fixture().await;
    let uploader = Uploader::start(&f);
    append(&f.partition, 10, true);
    uploader.wait_for(&f, 9).await;
    uploader.stop().await;
    let first = f
        .tier
        .manifest
        .segment_for(f.topic_id, 0, 0)
        .expect("tiered")
        .1;
    f.tier
        .store
        .delete(&object_store::path::Path::from(first.object.as_str()))
        .await
        .expect("lose an object under the merger");
    assert!(merger::round(&f.tier).await.is_err(), "a GET failed");
    assert_eq!(f.tier.manifest.totals().segments, 10, "nothing replaced");
}
