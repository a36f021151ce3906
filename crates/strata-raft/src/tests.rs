use openraft::testing::{StoreBuilder, Suite};

use crate::{LogStore, StateMachineStore, StorageError, TypeConfig};

/// A fresh, empty log store and state machine in a temporary directory per case.
struct FreshStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for FreshStores {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = LogStore::open(&dir.path().join("log")).expect("open the log");
        let state_machine =
            StateMachineStore::open(&dir.path().join("state")).expect("open the state machine");
        Ok((dir, log, state_machine))
    }
}

/// openraft's own storage suite (it starts its own runtime, so a plain test).
#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(FreshStores) {
        panic!("openraft's storage suite failed: {e}");
    }
}

mod restarts {
    use std::io::Write;

    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder, Vote};
    use strata_meta::MetaCommand;

    use crate::{Entry, LogId, LogStore, StateMachineStore};

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn entries(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        indexes
            .map(|index| Entry {
                log_id: log_id(index),
                payload: EntryPayload::Normal(MetaCommand::InitCluster {
                    cluster_id: format!("cluster-{index}"),
                }),
            })
            .collect()
    }

    async fn indexes(log: &mut LogStore) -> Vec<u64> {
        log.try_get_log_entries(..)
            .await
            .expect("read")
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[tokio::test]
    async fn the_log_and_vote_survive_a_restart_and_only_a_torn_tail_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LogStore::open(dir.path()).expect("open");
        log.blocking_append(entries(1..=5)).await.expect("append");
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        drop(log);
        // A crash in the middle of the next append leaves part of a frame.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("log"))
            .and_then(|mut f| f.write_all(&[0, 0, 0, 50, 1, 2, 3]))
            .expect("torn tail");

        let mut log = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&mut log).await, vec![1, 2, 3, 4, 5]);
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
        log.blocking_append(entries(6..=7))
            .await
            .expect("append after the cut");
        log.truncate(log_id(7)).await.expect("truncate");
        log.purge(log_id(3)).await.expect("purge");
        drop(log);

        let mut log = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&mut log).await, vec![4, 5, 6]);
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(3)));
        assert_eq!(state.last_log_id, Some(log_id(6)));
    }

    #[tokio::test]
    async fn the_state_machine_restarts_from_its_last_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut machine = StateMachineStore::open(dir.path()).expect("open");
        let responses = machine.apply(entries(1..=2)).await.expect("apply");
        assert!(responses[0].is_ok());
        assert!(responses[1].is_err(), "a second cluster id is refused");
        machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        drop(machine);

        let mut machine = StateMachineStore::open(dir.path()).expect("reopen");
        let (applied, _) = machine.applied_state().await.expect("applied");
        assert_eq!(applied, Some(log_id(2)));
        assert_eq!(
            machine
                .reader()
                .read(|s| s.cluster_id().map(str::to_string)),
            Some("cluster-1".to_string())
        );
    }
}

mod backups {
    use std::collections::BTreeMap;

    use strata_meta::{MetaCommand, MetadataState};

    use crate::{Controller, seed_from_backup};

    async fn single_node(dir: &std::path::Path) -> Controller {
        let controller = Controller::start(1, dir, vec![]).await.expect("start");
        controller
            .initialize(BTreeMap::from([(1, "127.0.0.1:1".to_string())]))
            .await
            .expect("initialize");
        controller
    }

    #[tokio::test]
    async fn a_log_of_large_entries_is_snapshotted_and_purged_by_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let controller = single_node(dir.path()).await;
        let init = |cluster_id: String| MetaCommand::InitCluster { cluster_id };
        controller
            .propose(init("sized".into()))
            .await
            .expect("committed");
        // Refused once the cluster is named, but logged: 100 KiB each, 100 of them, far
        // fewer entries than the count policy's 1000.
        for i in 0..100 {
            let large = format!("{i}{}", "x".repeat(100 << 10));
            controller.propose(init(large)).await.expect("committed");
        }
        let log_file = dir.path().join("log").join("log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let snapshot = controller.raft.metrics().borrow().snapshot;
            let log_bytes = std::fs::metadata(&log_file).expect("log").len();
            if snapshot.is_some() && log_bytes < super::super::controller::LOG_BYTES_BEFORE_SNAPSHOT
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no snapshot by size: snapshot {snapshot:?}, log {log_bytes} bytes"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        controller.shutdown().await;
    }

    #[tokio::test]
    async fn a_node_restored_from_a_backup_and_its_log_deltas_has_the_state_and_keeps_writing() {
        let first = tempfile::tempdir().expect("tempdir");
        let controller = single_node(first.path()).await;
        let init = |cluster_id: &str| MetaCommand::InitCluster {
            cluster_id: cluster_id.into(),
        };
        controller
            .propose(init("restored"))
            .await
            .expect("committed");
        let registered = controller
            .propose(MetaCommand::RegisterBroker(strata_meta::RegisterBroker {
                broker_id: 1,
                incarnation: uuid::Uuid::from_u128(1),
                endpoints: vec![strata_meta::Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: None,
                now_ms: 0,
                intact_predecessor: None,
                metadata_version: strata_meta::METADATA_VERSION,
            }))
            .await
            .expect("committed");
        assert!(registered.response.is_ok(), "{:?}", registered.response);
        let (backup, base, cluster) = controller
            .state
            .backup(|s| s.cluster_id().map(str::to_string))
            .expect("backup");
        assert_eq!(cluster.as_deref(), Some("restored"));
        // What changes after the snapshot travels as deltas of the log: two of them, the
        // second overlapping the first (a delta stored whose answer was lost is sent again).
        let ids = || MetaCommand::AllocateProducerIds {
            broker_id: 1,
            count: 10,
        };
        let allocated = controller.propose(ids()).await.expect("committed");
        assert!(allocated.response.is_ok(), "{:?}", allocated.response);
        let middle = controller.state.last_applied().expect("applied").index;
        let first_delta = controller
            .log_frames(base, middle)
            .expect("read")
            .expect("not purged");
        assert!(first_delta.substantive);
        controller.propose(ids()).await.expect("committed");
        let applied = controller.state.last_applied().expect("applied");
        let second_delta = controller
            .log_frames(base, applied.index)
            .expect("read")
            .expect("not purged");
        assert!(
            controller
                .log_frames(applied.index, applied.index)
                .expect("read")
                .is_some_and(|frames| frames.bytes.is_empty()),
            "nothing after the last applied entry"
        );
        assert_eq!(controller.state.read(MetadataState::next_producer_id), 20);
        controller.shutdown().await;

        let second = tempfile::tempdir().expect("tempdir");
        let delta = |frames: &crate::LogFrames| frames.to_delta().expect("compressed");
        let deltas = [delta(&second_delta), delta(&first_delta)];
        let state = seed_from_backup(second.path(), &backup, &deltas)
            .expect("seed")
            .expect("a cluster to restore");
        assert_eq!(state.cluster_id(), Some("restored"));
        assert_eq!(
            state.next_producer_id(),
            20,
            "both allocations applied over the snapshot"
        );
        assert!(
            seed_from_backup(second.path(), &backup, &[]).is_err(),
            "never over existing raft state"
        );
        let empty = || tempfile::tempdir().expect("t");
        assert!(seed_from_backup(empty().path(), b"junk", &[]).is_err());
        let mut torn = first_delta.clone();
        torn.bytes.pop();
        assert!(
            seed_from_backup(empty().path(), &backup, &[delta(&torn)]).is_err(),
            "a torn delta"
        );
        let mut damaged = delta(&first_delta);
        damaged.truncate(damaged.len() / 2);
        assert!(
            seed_from_backup(empty().path(), &backup, &[damaged]).is_err(),
            "a damaged delta"
        );
        let gap = crate::LogFrames {
            bytes: second_delta.bytes[first_delta.bytes.len()..].to_vec(),
            substantive: true,
        };
        assert!(
            seed_from_backup(empty().path(), &backup, &[delta(&gap)]).is_err(),
            "a delta that does not continue the snapshot"
        );

        let restored = Controller::start(1, second.path(), vec![])
            .await
            .expect("start");
        assert!(
            !restored
                .initialize(BTreeMap::from([(1, "127.0.0.1:1".to_string())]))
                .await
                .expect("initialize"),
            "the restored quorum exists already"
        );
        assert_eq!(restored.state.read(MetadataState::next_producer_id), 20);
        let committed = restored
            .propose(init("restored"))
            .await
            .expect("writes go on after the restore");
        assert!(committed.log_index > applied.index);
        restored.shutdown().await;
    }

    #[tokio::test]
    async fn a_backup_taken_before_the_cluster_was_formed_restores_nothing() {
        let first = tempfile::tempdir().expect("tempdir");
        let controller = single_node(first.path()).await;
        let (backup, _, ()) = controller.state.backup(|_| ()).expect("backup");
        controller.shutdown().await;
        let second = tempfile::tempdir().expect("tempdir");
        assert!(
            seed_from_backup(second.path(), &backup, &[])
                .expect("readable")
                .is_none()
        );
        assert_eq!(
            std::fs::read_dir(second.path()).expect("dir").count(),
            0,
            "nothing written"
        );
    }
}
