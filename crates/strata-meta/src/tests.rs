use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use crate::topic_config::ConfigError;
use crate::*;

fn incarnation(broker_id: i32, generation: u8) -> Uuid {
    Uuid::from_u128(((broker_id as u128) << 8) | u128::from(generation) | 1 << 100)
}

fn register(broker_id: i32, generation: u8, rack: Option<&str>) -> MetaCommand {
    MetaCommand::RegisterBroker(RegisterBroker {
        broker_id,
        incarnation: incarnation(broker_id, generation),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + broker_id as u16,
        }],
        rack: rack.map(str::to_string),
        now_ms: 1_000,
        intact_predecessor: None,
        metadata_version: METADATA_VERSION,
    })
}

/// A registration by a build from before metadata versions.
fn register_legacy(broker_id: i32) -> MetaCommand {
    let MetaCommand::RegisterBroker(mut c) = register(broker_id, 0, None) else {
        unreachable!("register builds a registration");
    };
    c.metadata_version = 0;
    MetaCommand::RegisterBroker(c)
}

fn upgrade(min_insync_replicas: u32) -> MetaCommand {
    MetaCommand::UpgradeMetadata(UpgradeMetadata {
        version: METADATA_VERSION,
        min_insync_replicas,
    })
}

/// A restart as generation `generation` that found its log as generation - 1 left it.
fn restart_intact(broker_id: i32, generation: u8) -> MetaCommand {
    let MetaCommand::RegisterBroker(mut c) = register(broker_id, generation, None) else {
        unreachable!("register builds a registration");
    };
    c.intact_predecessor = Some(incarnation(broker_id, generation - 1));
    MetaCommand::RegisterBroker(c)
}

fn fence(broker_id: i32, generation: u8) -> MetaCommand {
    MetaCommand::FenceBroker(FenceBroker {
        broker_id,
        incarnation: incarnation(broker_id, generation),
    })
}

fn create(name: &str, id: u128, assignments: Vec<Vec<i32>>) -> MetaCommand {
    MetaCommand::CreateTopic(CreateTopic {
        name: name.into(),
        topic_id: Uuid::from_u128(id),
        assignments,
        configs: BTreeMap::new(),
    })
}

fn segment(topic: u128, leader_epoch: i32, base_offset: i64, last_offset: i64) -> SegmentCommit {
    SegmentCommit {
        topic_id: Uuid::from_u128(topic),
        partition: 0,
        leader_epoch,
        base_offset,
        last_offset,
        byte_offset: 0,
        byte_len: 100,
        max_timestamp_ms: 0,
    }
}

/// A commit of one segment, in an object named after its base offset.
fn commit(topic: u128, leader_epoch: i32, base_offset: i64, last_offset: i64) -> MetaCommand {
    MetaCommand::CommitSegments(CommitSegments {
        object: format!("segments/{base_offset}"),
        segments: vec![segment(topic, leader_epoch, base_offset, last_offset)],
    })
}

/// Records one segment the way [`MetaCommand::CommitSegments`] does, answering why it was
/// refused if it was.
fn commit_one(
    state: &mut MetadataState,
    topic: u128,
    leader_epoch: i32,
    base_offset: i64,
    last_offset: i64,
) -> Result<(), MetaError> {
    state.commit_segment(
        &format!("segments/{base_offset}"),
        &segment(topic, leader_epoch, base_offset, last_offset),
    )
}

/// A merge of partition 0's segments at `bases` (as [`commit`] names their objects, 100
/// bytes each) into an object named after the first.
fn merge(topic: u128, bases: &[i64]) -> MetaCommand {
    MetaCommand::ReplaceSegments(ReplaceSegments {
        object: format!("merged/{}", bases.first().copied().unwrap_or(-1)),
        merges: vec![SegmentMerge {
            topic_id: Uuid::from_u128(topic),
            partition: 0,
            replaced: bases
                .iter()
                .map(|base| ReplacedSegment {
                    base_offset: *base,
                    object: format!("segments/{base}"),
                })
                .collect(),
            byte_offset: 0,
            byte_len: 100 * bases.len() as u64,
        }],
    })
}

fn segment_bases(state: &MetadataState, topic: u128) -> Vec<i64> {
    state
        .partition_manifest(Uuid::from_u128(topic), 0)
        .map(|m| m.segments.keys().copied().collect())
        .unwrap_or_default()
}

/// A state with `brokers` registered brokers (ids 1..=n), under this build's rules and
/// Kafka's default `min.insync.replicas`, 1.
fn cluster(brokers: i32) -> MetadataState {
    let mut state = registered(brokers, |id| register(id, 0, None));
    state.apply(&upgrade(1)).expect("upgrade");
    state
}

/// A state as a build from before metadata versions left it.
fn legacy_cluster(brokers: i32) -> MetadataState {
    registered(brokers, register_legacy)
}

/// A named cluster with brokers 1..=n, each registered by `registration`.
fn registered(brokers: i32, registration: impl Fn(i32) -> MetaCommand) -> MetadataState {
    let mut state = MetadataState::default();
    state
        .apply(&MetaCommand::InitCluster {
            cluster_id: "test-cluster".into(),
        })
        .expect("init");
    for id in 1..=brokers {
        state.apply(&registration(id)).expect("register");
    }
    state
}

fn apply_all(
    state: &mut MetadataState,
    commands: &[MetaCommand],
) -> Vec<Result<CommandOutcome, MetaError>> {
    commands.iter().map(|c| state.apply(c)).collect()
}

#[test]
fn a_damaged_or_foreign_snapshot_is_refused() {
    let mut state = cluster(2);
    state
        .apply(&create("t", 7, vec![vec![1, 2]]))
        .expect("create");
    let bytes = snapshot::encode_snapshot(&state).expect("encode");
    assert!(matches!(
        snapshot::decode_snapshot(b"hello"),
        Err(snapshot::SnapshotError::NotASnapshot)
    ));
    let mut future = bytes.clone();
    future[8] = 9;
    assert!(matches!(
        snapshot::decode_snapshot(&future),
        Err(snapshot::SnapshotError::UnsupportedVersion(9))
    ));
    for cut in [12, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            snapshot::decode_snapshot(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn concurrent_creates_of_one_name_exactly_one_wins() {
    let mut state = cluster(3);
    // Two controllers' proposals for the same name, with different ids, both committed.
    let results = apply_all(
        &mut state,
        &[
            create("orders", 1, vec![vec![1]]),
            create("orders", 2, vec![vec![2]]),
        ],
    );
    assert!(results[0].is_ok());
    assert_eq!(
        results[1],
        Err(MetaError::TopicAlreadyExists {
            name: "orders".into()
        })
    );
    assert_eq!(state.topics().count(), 1);
    assert_eq!(
        state.topic_by_name("orders").map(|t| t.topic_id),
        Some(Uuid::from_u128(1))
    );
}

#[test]
fn a_manifest_write_with_a_stale_leader_epoch_is_refused() {
    let mut state = cluster(2);
    state
        .apply(&create("t", 7, vec![vec![1, 2]]))
        .expect("create");
    assert_eq!(
        state.apply(&commit(7, 0, 0, 99)),
        Ok(CommandOutcome::SegmentsCommitted {
            committed: 1,
            refused: 0
        }),
        "the current leader commits"
    );
    // Broker 1 is fenced; broker 2 leads under epoch 1.
    state.apply(&fence(1, 0)).expect("fence");
    let partition = &state.topic(Uuid::from_u128(7)).expect("topic").partitions[0];
    assert_eq!((partition.leader, partition.leader_epoch), (2, 1));
    assert_eq!(
        commit_one(&mut state, 7, 0, 100, 199),
        Err(MetaError::FencedLeaderEpoch {
            given: 0,
            current: 1
        })
    );
    assert_eq!(
        state.apply(&commit(7, 0, 100, 199)),
        Ok(CommandOutcome::SegmentsCommitted {
            committed: 0,
            refused: 1
        })
    );
    commit_one(&mut state, 7, 1, 100, 199).expect("the new leader commits");
    assert_eq!(segment_bases(&state, 7), vec![0, 100]);
}

#[test]
fn manifest_entries_never_overlap_and_a_retried_commit_is_accepted() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    commit_one(&mut state, 7, 0, 100, 199).expect("commit");
    commit_one(&mut state, 7, 0, 100, 199).expect("the same commit again");
    for (base, last) in [(150, 250), (0, 100), (199, 300), (120, 130)] {
        assert!(
            matches!(
                commit_one(&mut state, 7, 0, base, last),
                Err(MetaError::InvalidSegment { .. })
            ),
            "{base}..={last} overlaps"
        );
    }
    commit_one(&mut state, 7, 0, 0, 99).expect("adjacent below");
    commit_one(&mut state, 7, 0, 200, 299).expect("adjacent above");
    assert_eq!(segment_bases(&state, 7), vec![0, 100, 200]);
    assert!(
        matches!(
            commit_one(&mut state, 7, 0, 400, 499),
            Err(MetaError::InvalidSegment { .. })
        ),
        "a gap after the committed end"
    );
    state
        .apply(&MetaCommand::AdvanceLogStart {
            topic_id: Uuid::from_u128(7),
            partition: 0,
            log_start_offset: 400,
        })
        .expect("advance");
    commit_one(&mut state, 7, 0, 400, 499).expect("no gap once the log starts there");
}

#[test]
fn one_object_commits_segments_of_many_partitions_each_fenced_on_its_own() {
    let mut state = cluster(2);
    state
        .apply(&create("t", 7, vec![vec![1], vec![2]]))
        .expect("create");
    state
        .apply(&register(2, 1, None))
        .expect("broker 2 restarts");
    let mut second = segment(7, 0, 0, 9);
    second.partition = 1;
    second.byte_offset = 100;
    let outcome = state.apply(&MetaCommand::CommitSegments(CommitSegments {
        object: "o".into(),
        segments: vec![segment(7, 0, 0, 9), second],
    }));
    assert_eq!(
        outcome,
        Ok(CommandOutcome::SegmentsCommitted {
            committed: 1,
            refused: 1
        }),
        "partition 1 moved to epoch 1 when broker 2 restarted"
    );
    assert_eq!(
        state.referenced_objects().into_iter().collect::<Vec<_>>(),
        vec!["o"]
    );
    assert!(matches!(
        state.apply(&MetaCommand::CommitSegments(CommitSegments {
            object: "o".into(),
            segments: vec![],
        })),
        Err(MetaError::InvalidSegment { .. })
    ));
}

#[test]
fn a_merge_swaps_a_run_of_segments_for_one_entry_holding_the_same_offsets() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    for base in [0, 100, 200, 300] {
        state.apply(&commit(7, 0, base, base + 99)).expect("commit");
    }
    let outcome = state.apply(&merge(7, &[100, 200, 300]));
    assert_eq!(
        outcome,
        Ok(CommandOutcome::SegmentsReplaced {
            replaced: 1,
            refused: 0
        })
    );
    assert_eq!(segment_bases(&state, 7), [0, 100]);
    let manifest = state
        .partition_manifest(Uuid::from_u128(7), 0)
        .expect("manifest");
    let merged = &manifest.segments[&100];
    assert_eq!(
        (merged.object.as_str(), merged.last_offset, merged.byte_len),
        ("merged/100", 399, 300)
    );
    assert_eq!(manifest.end_offset(), Some(400));
    assert_eq!(
        state.referenced_objects().into_iter().collect::<Vec<_>>(),
        ["merged/100", "segments/0"],
        "the replaced objects are the sweeper's"
    );
    state
        .apply(&commit(7, 0, 400, 499))
        .expect("commits continue after a merged entry");
}

#[test]
fn a_merge_is_refused_unless_its_run_is_still_exactly_there() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    for base in [0, 100, 200] {
        state.apply(&commit(7, 0, base, base + 99)).expect("commit");
    }
    let refused = |state: &mut MetadataState, command: &MetaCommand, why: &str| {
        let before = state.clone();
        assert_eq!(
            state.apply(command),
            Ok(CommandOutcome::SegmentsReplaced {
                replaced: 0,
                refused: 1
            }),
            "{why}"
        );
        assert_eq!(*state, before, "{why}: nothing changed");
    };
    refused(&mut state, &merge(7, &[0]), "one segment is no merge");
    refused(&mut state, &merge(7, &[0, 200]), "not consecutive");
    refused(&mut state, &merge(7, &[200, 300]), "past the end");
    let mut wrong_length = merge(7, &[0, 100]);
    if let MetaCommand::ReplaceSegments(c) = &mut wrong_length {
        c.merges[0].byte_len = 199;
    }
    refused(&mut state, &wrong_length, "the copy's length differs");
    state
        .apply(&MetaCommand::AdvanceLogStart {
            topic_id: Uuid::from_u128(7),
            partition: 0,
            log_start_offset: 100,
        })
        .expect("retention");
    refused(&mut state, &merge(7, &[0, 100]), "retention took the first");
    state.apply(&merge(7, &[100, 200])).expect("merged");
    refused(&mut state, &merge(7, &[100, 200]), "merged already");

    let mut mixed = cluster(1);
    mixed.apply(&create("t", 7, vec![vec![1]])).expect("create");
    mixed.apply(&commit(7, 0, 0, 99)).expect("commit");
    mixed
        .apply(&register(1, 1, None))
        .expect("a restart: epoch 1");
    mixed.apply(&commit(7, 1, 100, 199)).expect("commit");
    refused(&mut mixed, &merge(7, &[0, 100]), "two leader epochs");
}

/// A partition manifest of entries with these byte lengths and leader epochs, each holding
/// ten offsets.
fn manifest_of(entries: &[(u64, i32)]) -> PartitionManifest {
    let mut manifest = PartitionManifest::default();
    for (i, (byte_len, leader_epoch)) in entries.iter().enumerate() {
        let base = 10 * i as i64;
        manifest.segments.insert(
            base,
            SegmentEntry {
                last_offset: base + 9,
                object: format!("segments/{base}"),
                byte_offset: 0,
                byte_len: *byte_len,
                max_timestamp_ms: 0,
                leader_epoch: *leader_epoch,
            },
        );
    }
    manifest
}

/// The base offsets of each planned run.
fn run_bases(manifest: &PartitionManifest, target: u64, budget: u64) -> Vec<Vec<i64>> {
    let limits = MergeLimits {
        target_bytes: target,
        max_span_ms: i64::MAX,
    };
    manifest
        .merge_runs(limits, budget)
        .iter()
        .map(|run| run.iter().map(|(base, _)| *base).collect())
        .collect()
}

#[test]
fn merge_runs_take_enough_small_entries_of_one_epoch_none_dominating() {
    let bases = |range: std::ops::Range<i64>| range.map(|i| 10 * i).collect::<Vec<_>>();
    let small = manifest_of(&[(100, 0); 20]);
    assert_eq!(run_bases(&small, 10_000, u64::MAX), [bases(0..20)]);
    assert_eq!(
        run_bases(&small, 1_000, u64::MAX),
        [bases(0..10), bases(10..20)],
        "no run past the target"
    );
    assert_eq!(
        run_bases(&small, 1_000, 1),
        [bases(0..10)],
        "enough for the budget"
    );
    assert!(
        run_bases(
            &manifest_of(&[(100, 0); MERGE_FANOUT - 1]),
            10_000,
            u64::MAX
        )
        .is_empty(),
        "too few to be worth a merge"
    );
    let mut after_a_big_one = vec![(5_000, 0)];
    after_a_big_one.extend([(100, 0); 8]);
    assert_eq!(
        run_bases(&manifest_of(&after_a_big_one), 10_000, u64::MAX),
        [bases(1..9)],
        "the big entry is not copied again for a few small ones"
    );
    let mut two_epochs = vec![(100, 0); 8];
    two_epochs.extend([(100, 1); 7]);
    assert_eq!(
        run_bases(&manifest_of(&two_epochs), 10_000, u64::MAX),
        [bases(0..8)]
    );
    let mut spread = manifest_of(&[(100, 0); 12]);
    for (i, entry) in spread.segments.values_mut().enumerate() {
        entry.max_timestamp_ms = 1_000 * i as i64;
    }
    let within = |max_span_ms| MergeLimits {
        target_bytes: 10_000,
        max_span_ms,
    };
    assert_eq!(spread.merge_runs(within(7_000), u64::MAX).len(), 1);
    assert_eq!(
        spread.merge_runs(within(7_000), u64::MAX)[0].len(),
        8,
        "no run spans more than segment.ms"
    );
    assert!(spread.merge_runs(within(6_000), u64::MAX).is_empty());
}

#[test]
fn merges_wait_for_the_metadata_version_that_has_them() {
    let mut state = legacy_cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    for base in [0, 100] {
        state.apply(&commit(7, 0, base, base + 99)).expect("commit");
    }
    assert!(matches!(
        state.apply(&merge(7, &[0, 100])),
        Err(MetaError::MetadataVersionRefused { .. })
    ));
    assert_eq!(segment_bases(&state, 7), [0, 100]);
}

#[test]
fn whole_log_retention_expires_the_oldest_segments_by_time_and_by_size() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    for (base, ts) in [(0, 1_000), (100, 2_000), (200, 3_000)] {
        let mut segment = segment(7, 0, base, base + 99);
        segment.max_timestamp_ms = ts;
        state.commit_segment("o", &segment).expect("commit");
    }
    let manifest = state
        .partition_manifest(Uuid::from_u128(7), 0)
        .expect("manifest");
    // Each segment is 100 bytes.
    assert_eq!(manifest.expired_end(2_500, Some(1_000), None, 0), Some(100));
    assert_eq!(
        manifest.expired_end(10_000, Some(1_000), None, 0),
        Some(300)
    );
    assert_eq!(manifest.expired_end(1_500, Some(1_000), None, 0), None);
    assert_eq!(manifest.expired_end(0, None, Some(150), 0), Some(100));
    assert_eq!(
        manifest.expired_end(0, None, Some(150), 100),
        Some(200),
        "untiered bytes count towards the size"
    );
    assert_eq!(manifest.expired_end(0, None, None, 0), None);
}

#[test]
fn advancing_the_log_start_drops_entries_below_it_and_never_goes_back() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    for base in [0, 100, 200] {
        commit_one(&mut state, 7, 0, base, base + 99).expect("commit");
    }
    let advance = |offset| MetaCommand::AdvanceLogStart {
        topic_id: Uuid::from_u128(7),
        partition: 0,
        log_start_offset: offset,
    };
    state.apply(&advance(150)).expect("advance");
    assert_eq!(
        segment_bases(&state, 7),
        vec![100, 200],
        "100..=199 still holds 150"
    );
    state
        .apply(&advance(50))
        .expect("a smaller start is a no-op");
    let manifest = state
        .partition_manifest(Uuid::from_u128(7), 0)
        .expect("manifest");
    assert_eq!(manifest.log_start_offset, 150);
    assert_eq!(manifest.end_offset(), Some(300));
    assert_eq!(manifest.segment_for(150).map(|(base, _)| base), Some(100));
    assert_eq!(manifest.segment_for(300), None);
    assert!(
        matches!(
            commit_one(&mut state, 7, 0, 0, 99),
            Err(MetaError::InvalidSegment { .. })
        ),
        "below the log start"
    );
    assert!(matches!(
        state.apply(&MetaCommand::AdvanceLogStart {
            topic_id: Uuid::from_u128(7),
            partition: 3,
            log_start_offset: 1,
        }),
        Err(MetaError::UnknownPartition { .. })
    ));
}

#[test]
fn a_fenced_leader_of_a_single_replica_partition_leaves_it_offline_until_it_returns() {
    let mut state = cluster(2);
    state
        .apply(&create("t", 7, vec![vec![1], vec![2]]))
        .expect("create");
    state.apply(&fence(1, 0)).expect("fence");
    let topic = state.topic(Uuid::from_u128(7)).expect("topic");
    assert_eq!(topic.partitions[0].leader, NO_LEADER);
    assert_eq!(
        (
            topic.partitions[0].isr.clone(),
            topic.partitions[0].elr.clone()
        ),
        (vec![], vec![1]),
        "the last ISR member leaves it, and stays eligible"
    );
    assert_eq!(
        topic.partitions[1].leader, 2,
        "other brokers' partitions are untouched"
    );
    assert_eq!(
        state
            .live_brokers()
            .map(|b| b.broker_id)
            .collect::<Vec<_>>(),
        vec![2]
    );

    // A fencing decision about an older process does not touch a restarted one.
    state.apply(&register(1, 1, None)).expect("restart");
    let p0 = state.topic(Uuid::from_u128(7)).expect("topic").partitions[0].clone();
    assert_eq!((p0.leader, p0.leader_epoch), (1, 2));
    assert_eq!(
        state.apply(&fence(1, 0)),
        Err(MetaError::StaleBrokerIncarnation { broker_id: 1 })
    );
    assert!(!state.broker(1).expect("broker").fenced);
}

#[test]
fn a_heartbeat_from_a_fenced_broker_brings_its_partitions_back() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    state.apply(&fence(1, 0)).expect("fence");
    state
        .apply(&MetaCommand::BrokerHeartbeat(BrokerHeartbeat {
            broker_id: 1,
            incarnation: incarnation(1, 0),
            now_ms: 5_000,
        }))
        .expect("heartbeat");
    let broker = state.broker(1).expect("broker");
    assert!(!broker.fenced);
    assert_eq!(broker.last_heartbeat_ms, 5_000);
    assert_eq!(
        state.topic(Uuid::from_u128(7)).expect("topic").partitions[0].leader,
        1
    );
}

#[test]
fn a_restarted_leader_moves_to_a_new_epoch() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    state.apply(&register(1, 1, None)).expect("restart");
    assert_eq!(
        state.topic(Uuid::from_u128(7)).expect("topic").partitions[0].leader_epoch,
        1
    );
    assert!(matches!(
        commit_one(&mut state, 7, 0, 0, 9),
        Err(MetaError::FencedLeaderEpoch { .. })
    ));
    // Registering the same incarnation again is a repeat, not a restart.
    state.apply(&register(1, 1, None)).expect("repeat");
    assert_eq!(
        state.topic(Uuid::from_u128(7)).expect("topic").partitions[0].leader_epoch,
        1
    );
}

fn alter_isr(leader_id: i32, leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> MetaCommand {
    MetaCommand::AlterPartition(AlterPartition {
        topic_id: Uuid::from_u128(7),
        partition: 0,
        leader_id,
        leader_epoch,
        partition_epoch,
        isr: isr.to_vec(),
    })
}

fn partition_0(state: &MetadataState) -> PartitionRecord {
    state.topic(Uuid::from_u128(7)).expect("topic").partitions[0].clone()
}

#[test]
fn an_isr_change_is_a_compare_and_set_by_the_current_leader() {
    let mut state = cluster(3);
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    state.apply(&alter_isr(1, 0, 0, &[1, 2])).expect("shrink");
    let p = partition_0(&state);
    assert_eq!(
        (p.isr.clone(), p.leader_epoch, p.partition_epoch),
        (vec![1, 2], 0, 1)
    );

    let refusals = [
        (alter_isr(1, 0, 0, &[1, 2, 3]), "a stale partition epoch"),
        (
            alter_isr(1, 1, 1, &[1, 2, 3]),
            "a leader epoch from the future",
        ),
        (alter_isr(2, 0, 1, &[2]), "a broker that does not lead"),
        (alter_isr(1, 0, 1, &[2]), "an ISR without its leader"),
        (alter_isr(1, 0, 1, &[1, 1]), "a broker listed twice"),
        (
            alter_isr(1, 0, 1, &[1, 4]),
            "a broker that is not a replica",
        ),
    ];
    for (command, what) in refusals {
        assert!(state.apply(&command).is_err(), "{what} is refused");
    }
    assert_eq!(partition_0(&state), p, "refusals change nothing");

    // A fenced replica cannot be added; once it is back it can.
    state.apply(&fence(3, 0)).expect("fence");
    assert_eq!(
        state.apply(&alter_isr(1, 0, 1, &[1, 2, 3])),
        Err(MetaError::IneligibleReplica { broker_id: 3 })
    );
    state
        .apply(&MetaCommand::BrokerHeartbeat(BrokerHeartbeat {
            broker_id: 3,
            incarnation: incarnation(3, 0),
            now_ms: 2_000,
        }))
        .expect("heartbeat");
    state
        .apply(&alter_isr(1, 0, 1, &[1, 2, 3]))
        .expect("expand");
    assert_eq!(partition_0(&state).isr, vec![1, 2, 3]);

    // A deposed leader's change, decided before it lost the leadership, is refused.
    state.apply(&fence(1, 0)).expect("fence the leader");
    let p = partition_0(&state);
    assert_eq!((p.leader, p.leader_epoch), (2, 1));
    assert_eq!(
        state.apply(&alter_isr(1, 0, p.partition_epoch, &[1])),
        Err(MetaError::FencedLeaderEpoch {
            given: 0,
            current: 1
        })
    );
}

#[test]
fn a_restarted_replica_leaves_the_isr_unless_it_is_the_last_live_member() {
    let mut state = cluster(3);
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    // A follower restarts: it may have lost its unsynced tail, so it leaves the ISR.
    state
        .apply(&register(3, 1, None))
        .expect("restart follower");
    let p = partition_0(&state);
    assert_eq!(
        (p.isr.clone(), p.leader, p.leader_epoch),
        (vec![1, 2], 1, 0)
    );
    // The leader restarts: leadership moves to the other live ISR member.
    state.apply(&register(1, 1, None)).expect("restart leader");
    let p = partition_0(&state);
    assert_eq!((p.isr.clone(), p.leader, p.leader_epoch), (vec![2], 2, 1));
    // The last live member restarts: nobody holds more, so it stays and leads again.
    state.apply(&fence(1, 1)).expect("fence 1");
    state.apply(&register(2, 1, None)).expect("restart 2");
    let p = partition_0(&state);
    assert_eq!((p.isr.clone(), p.leader, p.leader_epoch), (vec![2], 2, 2));
}

fn elect(
    state: &mut MetadataState,
    election: ElectionType,
    partitions: &[(u128, i32)],
) -> Vec<Election> {
    let partitions = partitions
        .iter()
        .map(|&(t, p)| (Uuid::from_u128(t), p))
        .collect();
    match state.apply(&MetaCommand::ElectLeaders(ElectLeaders {
        election,
        partitions,
    })) {
        Ok(CommandOutcome::Elections(outcomes)) => outcomes,
        other => panic!("elections answer per partition: {other:?}"),
    }
}

#[test]
fn a_preferred_election_brings_leadership_back_only_to_a_live_in_sync_first_replica() {
    let mut state = cluster(3);
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    assert_eq!(
        elect(
            &mut state,
            ElectionType::Preferred,
            &[(7, 0), (7, 5), (8, 0)]
        ),
        [
            Election::NotNeeded,
            Election::UnknownPartition,
            Election::UnknownPartition
        ]
    );
    state.apply(&fence(1, 0)).expect("fence 1");
    assert_eq!(partition_0(&state).leader, 2);
    assert_eq!(
        state.imbalanced_leaders(10),
        [],
        "a fenced preferred leader is not a candidate"
    );
    assert_eq!(
        elect(&mut state, ElectionType::Preferred, &[(7, 0)]),
        [Election::PreferredNotAvailable],
        "broker 1 is fenced and out of the ISR"
    );
    // Back, and in the ISR again: the rebalance names it, and the election moves it.
    state
        .apply(&MetaCommand::BrokerHeartbeat(BrokerHeartbeat {
            broker_id: 1,
            incarnation: incarnation(1, 0),
            now_ms: 2_000,
        }))
        .expect("heartbeat");
    let p = partition_0(&state);
    state
        .apply(&alter_isr(2, p.leader_epoch, p.partition_epoch, &[2, 3, 1]))
        .expect("rejoin");
    assert_eq!(state.imbalanced_leaders(10), [(Uuid::from_u128(7), 0)]);
    assert_eq!(
        elect(&mut state, ElectionType::Preferred, &[(7, 0)]),
        [Election::Elected { leader: 1 }]
    );
    let p = partition_0(&state);
    assert_eq!((p.leader, p.leader_epoch), (1, 2));
    assert_eq!(state.imbalanced_leaders(10), []);
}

#[test]
fn an_unclean_election_revives_an_offline_partition_from_any_live_replica() {
    let mut state = cluster(2);
    state
        .apply(&create("t", 7, vec![vec![1, 2]]))
        .expect("create");
    let p = partition_0(&state);
    state
        .apply(&alter_isr(1, p.leader_epoch, p.partition_epoch, &[1]))
        .expect("2 falls behind");
    state.apply(&fence(1, 0)).expect("the last ISR member dies");
    assert_eq!(partition_0(&state).leader, NO_LEADER);
    assert_eq!(
        elect(&mut state, ElectionType::Preferred, &[(7, 0)]),
        [Election::PreferredNotAvailable]
    );
    assert_eq!(
        elect(&mut state, ElectionType::Unclean, &[(7, 0)]),
        [Election::Elected { leader: 2 }]
    );
    let p = partition_0(&state);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert_eq!(
        elect(&mut state, ElectionType::Unclean, &[(7, 0)]),
        [Election::NotNeeded]
    );
}

/// A topic 7 with one partition on brokers 1, 2 and 3, and `min.insync.replicas` 2.
fn min_isr_2_topic(state: &mut MetadataState) {
    let MetaCommand::CreateTopic(mut c) = create("t", 7, vec![vec![1, 2, 3]]) else {
        unreachable!("create builds a topic");
    };
    c.configs.insert("min.insync.replicas".into(), "2".into());
    state.apply(&MetaCommand::CreateTopic(c)).expect("create");
}

fn heartbeat(broker_id: i32, generation: u8) -> MetaCommand {
    MetaCommand::BrokerHeartbeat(BrokerHeartbeat {
        broker_id,
        incarnation: incarnation(broker_id, generation),
        now_ms: 2_000,
    })
}

fn eligibility(p: &PartitionRecord) -> (i32, Vec<i32>, Vec<i32>) {
    (p.leader, p.isr.clone(), p.elr.clone())
}

#[test]
fn a_replica_leaving_an_isr_below_min_isr_stays_eligible_and_leads_once_the_isr_is_gone() {
    let mut state = cluster(3);
    min_isr_2_topic(&mut state);
    state.apply(&fence(3, 0)).expect("fence 3");
    assert_eq!(
        eligibility(&partition_0(&state)),
        (1, vec![1, 2], vec![]),
        "at min ISR the ISR alone holds what commits from now on"
    );
    let p = partition_0(&state);
    state
        .apply(&alter_isr(1, p.leader_epoch, p.partition_epoch, &[1]))
        .expect("2 falls behind");
    assert_eq!(eligibility(&partition_0(&state)), (1, vec![1], vec![2]));
    state.apply(&fence(2, 0)).expect("fence 2");
    assert_eq!(
        eligibility(&partition_0(&state)),
        (1, vec![1], vec![2]),
        "a fenced replica stays eligible"
    );
    state
        .apply(&fence(1, 0))
        .expect("the last ISR member goes too");
    let p = partition_0(&state);
    assert_eq!(eligibility(&p), (NO_LEADER, vec![], vec![2, 1]));

    // Broker 3 is live again but was never eligible: the partition stays offline for it.
    state.apply(&heartbeat(3, 0)).expect("3 returns");
    assert_eq!(partition_0(&state).leader, NO_LEADER);
    // Broker 2 holds every committed record: it leads, alone in the ISR.
    state.apply(&heartbeat(2, 0)).expect("2 returns");
    let led = partition_0(&state);
    assert_eq!(eligibility(&led), (2, vec![2], vec![1]));
    assert_eq!(
        (led.leader_epoch, led.partition_epoch),
        (p.leader_epoch + 1, p.partition_epoch + 1)
    );
    // Back at min ISR, the ELR empties.
    state
        .apply(&alter_isr(
            2,
            led.leader_epoch,
            led.partition_epoch,
            &[2, 3],
        ))
        .expect("3 catches up");
    assert_eq!(eligibility(&partition_0(&state)), (2, vec![2, 3], vec![]));
}

#[test]
fn a_restart_that_may_have_lost_data_is_eligible_only_where_no_other_replica_is() {
    let mut state = cluster(3);
    min_isr_2_topic(&mut state);
    state.apply(&fence(3, 0)).expect("fence 3");
    let p = partition_0(&state);
    state
        .apply(&alter_isr(1, p.leader_epoch, p.partition_epoch, &[1]))
        .expect("2 falls behind");
    state.apply(&fence(2, 0)).expect("fence 2");
    state.apply(&fence(1, 0)).expect("fence 1");
    assert_eq!(
        eligibility(&partition_0(&state)),
        (NO_LEADER, vec![], vec![2, 1])
    );

    // Broker 1 restarts without an intact log while 2 is eligible: 1 is no longer.
    state.apply(&register(1, 1, None)).expect("1 restarts");
    assert_eq!(
        eligibility(&partition_0(&state)),
        (NO_LEADER, vec![], vec![2])
    );
    // Broker 2 restarts with its log intact: it leads.
    state.apply(&restart_intact(2, 1)).expect("2 restarts");
    assert_eq!(eligibility(&partition_0(&state)), (2, vec![2], vec![]));
    // The last live ISR member restarting intact stays and leads under a new epoch.
    let epoch = partition_0(&state).leader_epoch;
    state
        .apply(&restart_intact(2, 2))
        .expect("2 restarts again");
    let p = partition_0(&state);
    assert_eq!(
        (eligibility(&p), p.leader_epoch),
        ((2, vec![2], vec![]), epoch + 1)
    );
    // So does one that may have lost data, when no other replica is eligible.
    state
        .apply(&register(2, 3, None))
        .expect("2 restarts unclean");
    let p = partition_0(&state);
    assert_eq!(
        (eligibility(&p), p.leader_epoch),
        ((2, vec![2], vec![]), epoch + 2)
    );
}

fn set_min_isr(resource: ConfigResource, value: &str) -> MetaCommand {
    MetaCommand::AlterConfigs(AlterConfigs {
        resource,
        set: BTreeMap::from([("min.insync.replicas".into(), value.into())]),
        remove: BTreeSet::new(),
        replace: false,
    })
}

#[test]
fn min_isr_is_set_per_topic_or_cluster_wide_and_changing_it_clears_the_elr() {
    let mut state = legacy_cluster(3);
    state
        .apply(&set_min_isr(ConfigResource::Broker(1), "2"))
        .expect("a broker's own value, under the old rules");
    for id in 1..=3 {
        state.apply(&register(id, 1, None)).expect("upgraded");
    }
    state.apply(&upgrade(3)).expect("upgrade");
    assert_eq!(
        state
            .cluster_configs()
            .get("min.insync.replicas")
            .map(String::as_str),
        Some("3"),
        "the proposer's value becomes the cluster's"
    );
    assert_eq!(state.broker_configs(1), None, "brokers' own values go");
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    state.apply(&fence(3, 1)).expect("fence 3");
    assert_eq!(eligibility(&partition_0(&state)), (1, vec![1, 2], vec![3]));

    // Refused: a broker's own value, and removing the cluster's.
    assert!(matches!(
        state.apply(&set_min_isr(ConfigResource::Broker(1), "1")),
        Err(MetaError::InvalidConfig(ConfigError::NotTaken { .. }))
    ));
    let remove = MetaCommand::AlterConfigs(AlterConfigs {
        resource: ConfigResource::ClusterDefault,
        set: BTreeMap::new(),
        remove: BTreeSet::from(["min.insync.replicas".to_string()]),
        replace: false,
    });
    assert!(matches!(
        state.apply(&remove),
        Err(MetaError::InvalidConfig(ConfigError::NotTaken { .. }))
    ));

    // A new cluster-wide value clears every ELR chosen under the old one.
    let before = partition_0(&state).partition_epoch;
    state
        .apply(&set_min_isr(ConfigResource::ClusterDefault, "1"))
        .expect("cluster-wide");
    let p = partition_0(&state);
    assert_eq!(
        (eligibility(&p), p.partition_epoch),
        ((1, vec![1, 2], vec![]), before + 1)
    );
    // The topic's value comes first, and changing it clears the topic's ELRs.
    state
        .apply(&set_min_isr(ConfigResource::Topic(Uuid::from_u128(7)), "2"))
        .expect("topic override");
    state.apply(&fence(2, 1)).expect("fence 2");
    assert_eq!(eligibility(&partition_0(&state)), (1, vec![1], vec![2]));
    state
        .apply(&set_min_isr(ConfigResource::Topic(Uuid::from_u128(7)), "2"))
        .expect("the same value again");
    assert_eq!(eligibility(&partition_0(&state)), (1, vec![1], vec![]));
}

#[test]
fn the_old_rules_hold_until_every_broker_applies_the_new_ones() {
    let mut state = legacy_cluster(2);
    state
        .apply(&create("t", 7, vec![vec![1, 2]]))
        .expect("create");
    state.apply(&register(1, 1, None)).expect("1 upgraded");
    assert!(matches!(
        state.apply(&upgrade(1)),
        Err(MetaError::MetadataVersionRefused { version, .. }) if version == METADATA_VERSION
    ));
    assert_eq!(state.metadata_version(), 0);
    // Under the old rules a restart is never trusted (1 left the ISR when it restarted),
    // and the last ISR member stays in the ISR: no ELR is kept.
    state.apply(&fence(1, 1)).expect("fence 1");
    state.apply(&fence(2, 0)).expect("fence 2");
    assert_eq!(
        eligibility(&partition_0(&state)),
        (NO_LEADER, vec![2], vec![])
    );

    state.apply(&register(2, 1, None)).expect("2 upgraded");
    state
        .apply(&upgrade(1))
        .expect("every broker applies this build's version");
    assert_eq!(state.metadata_version(), METADATA_VERSION);
    assert_eq!(
        state.apply(&upgrade(1)),
        Ok(CommandOutcome::Applied),
        "a repeat changes nothing"
    );
    let newer = MetaCommand::UpgradeMetadata(UpgradeMetadata {
        version: METADATA_VERSION + 1,
        min_insync_replicas: 1,
    });
    assert!(matches!(
        state.apply(&newer),
        Err(MetaError::MetadataVersionRefused { .. })
    ));
}

#[test]
fn an_unclean_election_prefers_an_eligible_replica_and_clears_the_elr() {
    let mut state = cluster(3);
    min_isr_2_topic(&mut state);
    let p = partition_0(&state);
    state
        .apply(&alter_isr(1, p.leader_epoch, p.partition_epoch, &[1, 2]))
        .expect("3 falls behind");
    state.apply(&fence(2, 0)).expect("fence 2");
    state.apply(&fence(1, 0)).expect("fence 1");
    // 2 lost its disk: with 1 eligible, it is not.
    state
        .apply(&register(2, 1, None))
        .expect("2 restarts empty");
    assert_eq!(
        eligibility(&partition_0(&state)),
        (NO_LEADER, vec![], vec![1])
    );
    assert_eq!(
        elect(&mut state, ElectionType::Unclean, &[(7, 0)]),
        [Election::Elected { leader: 2 }]
    );
    assert_eq!(
        eligibility(&partition_0(&state)),
        (2, vec![2], vec![]),
        "broker 1 may hold records 2 lacks: it is no longer eligible"
    );
}

fn reassign(moves: &[(i32, Option<&[i32]>)], allow_rf_change: bool) -> MetaCommand {
    MetaCommand::ReassignPartitions(ReassignPartitions {
        partitions: moves
            .iter()
            .map(|(partition, target)| PartitionReassignment {
                topic_id: Uuid::from_u128(7),
                partition: *partition,
                target: target.map(<[i32]>::to_vec),
            })
            .collect(),
        allow_replication_factor_change: allow_rf_change,
    })
}

fn reassigned(state: &mut MetadataState, command: &MetaCommand) -> Vec<Result<(), MetaError>> {
    match state
        .apply(command)
        .expect("a reassignment is always applied")
    {
        CommandOutcome::Reassignments(outcomes) => outcomes,
        other => panic!("a reassignment answered {other:?}"),
    }
}

fn leadership(p: &PartitionRecord) -> (Vec<i32>, Vec<i32>, i32, i32) {
    (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch)
}

#[test]
fn a_move_completes_once_the_new_replicas_are_in_sync_and_then_drops_the_old_leader() {
    let mut state = cluster(4);
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    let started = reassigned(&mut state, &reassign(&[(0, Some(&[2, 3, 4]))], true));
    assert_eq!(started, [Ok(())]);
    let p = partition_0(&state);
    assert_eq!(leadership(&p), (vec![2, 3, 4, 1], vec![1, 2, 3], 1, 0));
    // New partitions take the move's target size, not the four replicas it spans for now.
    assert_eq!(state.replication_factor(Uuid::from_u128(7)), Some(3));
    state
        .apply(&MetaCommand::CreatePartitions(CreatePartitions {
            topic_id: Uuid::from_u128(7),
            new_assignments: vec![vec![4, 1, 2]],
        }))
        .expect("a partition of the topic's replication factor");
    assert_eq!(
        state.reassignment(Uuid::from_u128(7), 0),
        Some(&Reassignment {
            original: vec![1, 2, 3],
            target: vec![2, 3, 4],
        })
    );

    // The leader admits the new replica; that completes the move, and leadership leaves 1.
    state
        .apply(&alter_isr(1, 0, p.partition_epoch, &[1, 2, 3, 4]))
        .expect("expand");
    let p = partition_0(&state);
    assert_eq!(leadership(&p), (vec![2, 3, 4], vec![2, 3, 4], 2, 1));
    assert_eq!(state.reassignment(Uuid::from_u128(7), 0), None);
    assert_eq!(state.reassignments().count(), 0);
}

#[test]
fn a_move_that_only_removes_replicas_completes_at_once() {
    let mut state = cluster(3);
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    let outcome = reassigned(&mut state, &reassign(&[(0, Some(&[3, 2]))], true));
    assert_eq!(outcome, [Ok(())]);
    assert_eq!(
        leadership(&partition_0(&state)),
        (vec![3, 2], vec![2, 3], 3, 1)
    );
    assert_eq!(state.reassignment(Uuid::from_u128(7), 0), None);
}

#[test]
fn a_cancelled_or_replaced_move_starts_again_from_the_original_replicas() {
    let mut state = cluster(5);
    state
        .apply(&create("t", 7, vec![vec![1, 2, 3]]))
        .expect("create");
    reassigned(&mut state, &reassign(&[(0, Some(&[1, 2, 4]))], true));
    // Replaced: the new move starts from [1, 2, 3], not [1, 2, 4, 3].
    reassigned(&mut state, &reassign(&[(0, Some(&[1, 5, 3]))], true));
    assert_eq!(partition_0(&state).replicas, [1, 5, 3, 2]);
    assert_eq!(
        state.reassignment(Uuid::from_u128(7), 0),
        Some(&Reassignment {
            original: vec![1, 2, 3],
            target: vec![1, 5, 3],
        })
    );
    let cancelled = reassigned(&mut state, &reassign(&[(0, None)], true));
    assert_eq!(cancelled, [Ok(())]);
    assert_eq!(
        leadership(&partition_0(&state)),
        (vec![1, 2, 3], vec![1, 2, 3], 1, 0)
    );
    assert_eq!(state.reassignment(Uuid::from_u128(7), 0), None);
    let again = reassigned(&mut state, &reassign(&[(0, None)], true));
    assert_eq!(
        again,
        [Err(MetaError::NoReassignmentInProgress {
            topic_id: Uuid::from_u128(7),
            partition: 0,
        })]
    );
}

#[test]
fn each_move_is_validated_on_its_own() {
    let mut state = cluster(4);
    state
        .apply(&create("t", 7, vec![vec![1, 2], vec![2, 3]]))
        .expect("create");
    let before = state.clone();
    let outcomes = reassigned(
        &mut state,
        &reassign(
            &[
                (0, Some(&[1, 9])),
                (0, Some(&[1, 1])),
                (0, Some(&[])),
                (5, Some(&[1, 2])),
                (1, Some(&[2, 3, 4])),
            ],
            false,
        ),
    );
    assert!(matches!(
        outcomes[0],
        Err(MetaError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        outcomes[1],
        Err(MetaError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        outcomes[2],
        Err(MetaError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        outcomes[3],
        Err(MetaError::UnknownPartition { .. })
    ));
    assert!(matches!(
        outcomes[4],
        Err(MetaError::InvalidReplicationFactor { .. })
    ));
    assert_eq!(state, before, "refused moves change nothing");

    let outcomes = reassigned(
        &mut state,
        &reassign(&[(1, Some(&[2, 3, 4])), (0, Some(&[1, 9]))], true),
    );
    assert!(outcomes[0].is_ok() && outcomes[1].is_err());
    assert_eq!(
        state.topic(Uuid::from_u128(7)).expect("topic").partitions[1].replicas,
        [2, 3, 4]
    );

    state
        .apply(&MetaCommand::DeleteTopic {
            topic_id: Uuid::from_u128(7),
        })
        .expect("delete");
    assert_eq!(
        state.reassignments().count(),
        0,
        "a deleted topic's moves go with it"
    );
}

#[test]
fn topics_are_validated_before_anything_changes() {
    let mut state = cluster(2);
    let cases = [
        (create("bad name", 1, vec![vec![1]]), "name"),
        (create("t", 0, vec![vec![1]]), "nil id"),
        (create("t", 1, vec![]), "no partitions"),
        (
            create("t", 1, vec![vec![1], vec![1, 2]]),
            "uneven replication",
        ),
        (create("t", 1, vec![vec![1, 1]]), "duplicate replica"),
        (create("t", 1, vec![vec![9]]), "unknown broker"),
        (
            MetaCommand::CreateTopic(CreateTopic {
                name: "t".into(),
                topic_id: Uuid::from_u128(1),
                assignments: vec![vec![1]],
                configs: BTreeMap::from([("retention.ms".into(), "soon".into())]),
            }),
            "bad config",
        ),
    ];
    for (command, why) in cases {
        let before = state.clone();
        assert!(state.apply(&command).is_err(), "{why} is refused");
        assert_eq!(state, before, "{why} changes nothing");
    }
}

#[test]
fn configs_are_validated_merged_and_replaced() {
    let mut state = cluster(1);
    state.apply(&create("t", 7, vec![vec![1]])).expect("create");
    let topic = ConfigResource::Topic(Uuid::from_u128(7));
    let alter = |resource, set: &[(&str, &str)], remove: &[&str], replace| {
        MetaCommand::AlterConfigs(AlterConfigs {
            resource,
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remove: remove
                .iter()
                .map(|k| k.to_string())
                .collect::<BTreeSet<_>>(),
            replace,
        })
    };
    state
        .apply(&alter(
            topic,
            &[("retention.ms", " 1000"), ("cleanup.policy", "delete")],
            &[],
            false,
        ))
        .expect("set");
    state
        .apply(&alter(topic, &[], &["cleanup.policy"], false))
        .expect("remove");
    let configs = &state.topic(Uuid::from_u128(7)).expect("topic").configs;
    assert_eq!(
        configs,
        &BTreeMap::from([("retention.ms".to_string(), "1000".to_string())])
    );
    state
        .apply(&alter(topic, &[("segment.ms", "60000")], &[], true))
        .expect("replace");
    assert_eq!(
        state
            .topic(Uuid::from_u128(7))
            .expect("topic")
            .configs
            .keys()
            .collect::<Vec<_>>(),
        vec!["segment.ms"]
    );
    assert!(matches!(
        state.apply(&alter(topic, &[("no.such.config", "1")], &[], false)),
        Err(MetaError::InvalidConfig(_))
    ));
    assert!(
        matches!(
            state.apply(&alter(topic, &[("log.retention.ms", "1")], &[], false)),
            Err(MetaError::InvalidConfig(_)),
        ),
        "broker names are not topic names"
    );
    state
        .apply(&alter(
            ConfigResource::ClusterDefault,
            &[("log.retention.ms", "5000")],
            &[],
            false,
        ))
        .expect("cluster default");
    assert_eq!(
        state
            .cluster_configs()
            .get("log.retention.ms")
            .map(String::as_str),
        Some("5000")
    );
    assert_eq!(
        state.apply(&alter(
            ConfigResource::Broker(9),
            &[("log.retention.ms", "1")],
            &[],
            false
        )),
        Err(MetaError::UnknownBroker { broker_id: 9 })
    );
}

#[test]
fn a_broker_setting_strata_does_not_take_is_refused_but_removing_it_is_a_no_op() {
    let mut state = cluster(1);
    let change = |set: &[(&str, &str)], remove: &[&str]| {
        MetaCommand::AlterConfigs(AlterConfigs {
            resource: ConfigResource::Broker(1),
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|k| k.to_string()).collect(),
            replace: false,
        })
    };
    let refused = state.apply(&change(
        &[("leader.replication.throttled.rate", "1000")],
        &[],
    ));
    assert!(
        matches!(
            refused,
            Err(MetaError::InvalidConfig(
                topic_config::ConfigError::NotTaken { .. }
            ))
        ),
        "{refused:?}"
    );
    let before = state.clone();
    state
        .apply(&change(&[], &["leader.replication.throttled.rate"]))
        .expect("removing what cannot be set");
    assert_eq!(state, before);
    assert!(state.apply(&change(&[], &["no.such.setting"])).is_err());
}

#[test]
fn producer_id_blocks_are_disjoint_and_contiguous() {
    let mut state = cluster(2);
    let mut blocks = Vec::new();
    for broker_id in [1, 2, 1] {
        match state.apply(&MetaCommand::AllocateProducerIds {
            broker_id,
            count: 1000,
        }) {
            Ok(CommandOutcome::ProducerIdBlock { first_id, count }) => {
                blocks.push((first_id, count))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(blocks, vec![(0, 1000), (1000, 1000), (2000, 1000)]);
    assert_eq!(
        state.apply(&MetaCommand::AllocateProducerIds {
            broker_id: 5,
            count: 1
        }),
        Err(MetaError::UnknownBroker { broker_id: 5 })
    );
}

#[test]
fn the_cluster_id_never_changes() {
    let mut state = cluster(0);
    let init = |id: &str| MetaCommand::InitCluster {
        cluster_id: id.into(),
    };
    state
        .apply(&init("test-cluster"))
        .expect("the same id again");
    assert!(matches!(
        state.apply(&init("other")),
        Err(MetaError::ClusterIdMismatch { .. })
    ));
    assert_eq!(state.cluster_id(), Some("test-cluster"));
}

#[test]
fn placement_spreads_leaders_over_brokers_and_replicas_over_racks() {
    let mut state = MetadataState::default();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        state.apply(&register(id, 0, Some(rack))).expect("register");
    }
    let rack = |id: i32| state.broker(id).and_then(|b| b.rack.clone());
    let placed = state.place_partitions(6, 3, 0).expect("placement");
    let leaders: BTreeSet<i32> = placed.iter().map(|r| r[0]).collect();
    assert_eq!(
        leaders.len(),
        6,
        "every broker leads one of six partitions: {placed:?}"
    );
    for replicas in &placed {
        let racks: BTreeSet<_> = replicas.iter().map(|&b| rack(b)).collect();
        assert_eq!(
            racks.len(),
            3,
            "three replicas on three racks: {replicas:?}"
        );
    }
    assert!(matches!(
        state.place_partitions(1, 7, 0),
        Err(MetaError::InvalidReplicationFactor { .. })
    ));
    // Fenced brokers get nothing.
    state.apply(&fence(6, 0)).expect("fence");
    let placed = state.place_partitions(10, 1, 3).expect("placement");
    assert!(placed.iter().all(|r| r[0] != 6));
}

/// Commands over a small universe of ids so that sequences collide often.
fn arb_command() -> impl Strategy<Value = MetaCommand> {
    let broker = 0..4i32;
    let topic = 1..4u128;
    prop_oneof![
        (broker.clone(), 0..3u8, any::<bool>(), 0..=METADATA_VERSION).prop_map(
            |(b, g, intact, version)| {
                let mut command = if intact && g > 0 {
                    restart_intact(b, g)
                } else {
                    register(b, g, None)
                };
                if let MetaCommand::RegisterBroker(c) = &mut command {
                    c.metadata_version = version;
                }
                command
            }
        ),
        (broker.clone(), 0..3u8).prop_map(|(b, g)| fence(b, g)),
        (0..=METADATA_VERSION + 1, 1..4u32).prop_map(|(version, min_insync_replicas)| {
            MetaCommand::UpgradeMetadata(UpgradeMetadata {
                version,
                min_insync_replicas,
            })
        }),
        (topic.clone(), 1..4u32).prop_map(|(t, min_isr)| {
            set_min_isr(
                ConfigResource::Topic(Uuid::from_u128(t)),
                &min_isr.to_string(),
            )
        }),
        (broker.clone(), 0..2u8, 0..10_000i64).prop_map(|(b, g, now_ms)| {
            MetaCommand::BrokerHeartbeat(BrokerHeartbeat {
                broker_id: b,
                incarnation: incarnation(b, g),
                now_ms,
            })
        }),
        (
            topic.clone(),
            prop::collection::vec(prop::collection::vec(broker.clone(), 1..3), 0..4)
        )
            .prop_map(|(t, a)| create(&format!("t{}", t % 2), t, a)),
        topic.clone().prop_map(|t| MetaCommand::DeleteTopic {
            topic_id: Uuid::from_u128(t)
        }),
        (
            topic.clone(),
            prop::collection::vec(prop::collection::vec(broker.clone(), 1..3), 0..3)
        )
            .prop_map(|(t, a)| MetaCommand::CreatePartitions(CreatePartitions {
                topic_id: Uuid::from_u128(t),
                new_assignments: a,
            })),
        (topic.clone(), 0..3i32, 0..300i64, 0..100i64).prop_map(|(t, epoch, base, len)| commit(
            t,
            epoch,
            base,
            base + len
        )),
        (topic.clone(), prop::collection::btree_set(0..300i64, 0..4))
            .prop_map(|(t, bases)| { merge(t, &bases.into_iter().collect::<Vec<_>>()) }),
        (topic.clone(), 0..3i32, 0..300i64).prop_map(|(t, partition, offset)| {
            MetaCommand::AdvanceLogStart {
                topic_id: Uuid::from_u128(t),
                partition,
                log_start_offset: offset,
            }
        }),
        (broker.clone(), 0..3u32)
            .prop_map(|(broker_id, count)| MetaCommand::AllocateProducerIds { broker_id, count }),
        (
            topic.clone(),
            0..2i32,
            prop::option::of(prop::collection::vec(broker.clone(), 0..4)),
            any::<bool>()
        )
            .prop_map(|(t, partition, target, allow)| {
                MetaCommand::ReassignPartitions(ReassignPartitions {
                    partitions: vec![PartitionReassignment {
                        topic_id: Uuid::from_u128(t),
                        partition,
                        target,
                    }],
                    allow_replication_factor_change: allow,
                })
            }),
        (
            topic,
            0..2i32,
            broker.clone(),
            0..3i32,
            0..4i32,
            prop::collection::vec(broker, 1..4)
        )
            .prop_map(
                |(t, partition, leader_id, leader_epoch, partition_epoch, isr)| {
                    if leader_epoch == 2 && partition_epoch == 3 {
                        // Now and then an election instead, over the same universe.
                        let election = if leader_id % 2 == 0 {
                            ElectionType::Preferred
                        } else {
                            ElectionType::Unclean
                        };
                        return MetaCommand::ElectLeaders(ElectLeaders {
                            election,
                            partitions: vec![(Uuid::from_u128(t), partition)],
                        });
                    }
                    MetaCommand::AlterPartition(AlterPartition {
                        topic_id: Uuid::from_u128(t),
                        partition,
                        leader_id,
                        leader_epoch,
                        partition_epoch,
                        isr,
                    })
                }
            ),
    ]
}

proptest! {
    #[test]
    fn replaying_the_same_commands_gives_the_same_state(
        commands in prop::collection::vec(arb_command(), 0..60)
    ) {
        let mut first = MetadataState::default();
        let first_results = apply_all(&mut first, &commands);
        // The second replica receives the commands as the log carries them: serialized.
        let wire = serde_json::to_vec(&commands).expect("encode");
        let replayed: Vec<MetaCommand> = serde_json::from_slice(&wire).expect("decode");
        let mut second = MetadataState::default();
        let second_results = apply_all(&mut second, &replayed);
        prop_assert_eq!(first_results, second_results);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn a_snapshot_decodes_to_the_state_it_was_taken_of(
        commands in prop::collection::vec(arb_command(), 0..60)
    ) {
        let mut state = MetadataState::default();
        apply_all(&mut state, &commands);
        let bytes = snapshot::encode_snapshot(&state).expect("encode");
        prop_assert_eq!(snapshot::decode_snapshot(&bytes).expect("decode"), state);
    }

    #[test]
    fn a_refused_command_changes_nothing(commands in prop::collection::vec(arb_command(), 0..60)) {
        let mut state = MetadataState::default();
        for command in &commands {
            let before = state.clone();
            if state.apply(command).is_err() {
                prop_assert_eq!(&state, &before);
            }
        }
    }

    #[test]
    fn invariants_hold_after_any_sequence(commands in prop::collection::vec(arb_command(), 0..60)) {
        let mut state = MetadataState::default();
        apply_all(&mut state, &commands);
        for (topic_id, index, _) in state.reassignments() {
            let partitions = state.topic(topic_id).map_or(0, |t| t.partitions.len());
            prop_assert!((index as usize) < partitions, "a move of a partition that does not exist");
        }
        for topic in state.topics() {
            prop_assert_eq!(state.topic_by_name(&topic.name).map(|t| t.topic_id), Some(topic.topic_id));
            for p in &topic.partitions {
                prop_assert!(!p.isr.is_empty() || p.leader == NO_LEADER);
                prop_assert!(p.isr.iter().all(|b| p.replicas.contains(b)));
                prop_assert!(p.elr.iter().all(|b| p.replicas.contains(b) && !p.isr.contains(b)));
                let distinct: BTreeSet<_> = p.elr.iter().collect();
                prop_assert_eq!(distinct.len(), p.elr.len());
                if p.leader != NO_LEADER {
                    prop_assert!(p.isr.contains(&p.leader));
                    prop_assert!(state.broker(p.leader).is_some_and(|b| !b.fenced));
                }
            }
            for (p, index) in topic.partitions.iter().zip(0..) {
                let Some(moving) = state.reassignment(topic.topic_id, index) else {
                    continue;
                };
                let leaving = moving.removing();
                prop_assert!(!moving.adding().is_empty() || !leaving.is_empty());
                let expected: Vec<i32> = moving.target.iter().copied().chain(leaving).collect();
                prop_assert_eq!(&p.replicas, &expected);
            }
            for index in 0..topic.partitions.len() as i32 {
                let Some(manifest) = state.partition_manifest(topic.topic_id, index) else {
                    continue;
                };
                let mut previous_last = manifest.log_start_offset - 1;
                for (base, segment) in &manifest.segments {
                    prop_assert!(segment.last_offset >= manifest.log_start_offset);
                    prop_assert!(*base > previous_last || previous_last < manifest.log_start_offset);
                    previous_last = segment.last_offset;
                }
            }
        }
    }
}

/// One step of a partition's manifest life: a commit at the end, a merge of the run of
/// `len` entries from the `at`-th (a bad one now and then), or retention.
#[derive(Debug, Clone)]
enum ManifestStep {
    Commit {
        len: i64,
    },
    Merge {
        at: usize,
        len: usize,
        corrupt: bool,
    },
    Retain {
        by: i64,
    },
}

fn arb_manifest_step() -> impl Strategy<Value = ManifestStep> {
    prop_oneof![
        3 => (1..50i64).prop_map(|len| ManifestStep::Commit { len }),
        2 => (0..8usize, 2..5usize, prop::bool::weighted(0.2))
            .prop_map(|(at, len, corrupt)| ManifestStep::Merge { at, len, corrupt }),
        1 => (0..80i64).prop_map(|by| ManifestStep::Retain { by }),
    ]
}

proptest! {
    /// Merges never change which offsets the manifest holds, or how many bytes: a merge
    /// applies whole or not at all, and entries stay contiguous.
    #[test]
    fn merges_keep_the_offsets_and_bytes_the_manifest_holds(
        steps in prop::collection::vec(arb_manifest_step(), 1..60)
    ) {
        let mut state = cluster(1);
        state.apply(&create("t", 7, vec![vec![1]])).expect("create");
        let topic_id = Uuid::from_u128(7);
        let mut end = 0i64;
        for step in steps {
            let before = state.partition_manifest(topic_id, 0).cloned().unwrap_or_default();
            match step {
                ManifestStep::Commit { len } => {
                    state.apply(&commit(7, 0, end, end + len - 1)).expect("contiguous commit");
                    end += len;
                }
                ManifestStep::Merge { at, len, corrupt } => {
                    let run: Vec<(i64, String)> = before
                        .segments
                        .iter()
                        .skip(at)
                        .take(len)
                        .map(|(base, e)| (*base, e.object.clone()))
                        .collect();
                    let byte_len: u64 = before.segments.values().skip(at).take(len).map(|e| e.byte_len).sum();
                    let command = MetaCommand::ReplaceSegments(ReplaceSegments {
                        object: format!("merged/{}/{}", end, at),
                        merges: vec![SegmentMerge {
                            topic_id,
                            partition: 0,
                            replaced: run
                                .iter()
                                .map(|(base, object)| ReplacedSegment {
                                    base_offset: *base,
                                    object: object.clone(),
                                })
                                .collect(),
                            byte_offset: 7,
                            byte_len: byte_len + u64::from(corrupt),
                        }],
                    });
                    let outcome = state.apply(&command).expect("judged per merge");
                    let after = state.partition_manifest(topic_id, 0).cloned().unwrap_or_default();
                    let should = run.len() >= 2 && !corrupt;
                    prop_assert_eq!(
                        outcome,
                        CommandOutcome::SegmentsReplaced {
                            replaced: u32::from(should),
                            refused: u32::from(!should),
                        }
                    );
                    if should {
                        prop_assert_eq!(after.segments.len(), before.segments.len() + 1 - run.len());
                    } else {
                        prop_assert_eq!(&after, &before);
                    }
                    prop_assert_eq!(after.log_start_offset, before.log_start_offset);
                    prop_assert_eq!(after.end_offset(), before.end_offset());
                    prop_assert_eq!(after.size_bytes(), before.size_bytes());
                }
                ManifestStep::Retain { by } => {
                    state
                        .apply(&MetaCommand::AdvanceLogStart {
                            topic_id,
                            partition: 0,
                            log_start_offset: before.log_start_offset + by,
                        })
                        .expect("retention");
                }
            }
            let manifest = state.partition_manifest(topic_id, 0).cloned().unwrap_or_default();
            let mut next = None;
            for (base, entry) in &manifest.segments {
                prop_assert!(next.is_none_or(|n| n == *base), "contiguous at {}", base);
                prop_assert!(entry.last_offset >= manifest.log_start_offset);
                next = Some(entry.last_offset + 1);
            }
        }
    }
}

proptest! {
    /// Every planned run may be merged as planned, and copies each byte into an entry at
    /// least twice the size of the one it leaves.
    #[test]
    fn merge_runs_are_consecutive_bounded_and_at_least_double(
        entries in prop::collection::vec((1..5_000u64, 0..2i32), 0..200),
        target in 1_000..50_000u64,
    ) {
        let manifest = manifest_of(&entries);
        let mut previous_end = i64::MIN;
        let limits = MergeLimits { target_bytes: target, max_span_ms: i64::MAX };
        for run in manifest.merge_runs(limits, u64::MAX) {
            prop_assert!(run.len() >= MERGE_FANOUT && run.len() <= MAX_MERGED_ENTRIES);
            prop_assert!(run[0].0 > previous_end, "runs do not overlap");
            let total: u64 = run.iter().map(|(_, e)| e.byte_len).sum();
            let largest = run.iter().map(|(_, e)| e.byte_len).max().unwrap_or(0);
            prop_assert!(total <= target && largest * 2 <= total);
            prop_assert!(run.iter().all(|(_, e)| e.leader_epoch == run[0].1.leader_epoch));
            for pair in run.windows(2) {
                prop_assert_eq!(pair[0].1.last_offset + 1, pair[1].0, "consecutive");
            }
            previous_end = run.last().map_or(previous_end, |(_, e)| e.last_offset);
        }
    }
}

/// The state the `snapshot-v2.bin` fixture holds (and, with a move, `snapshot-v3.bin`).
fn fixture_state() -> MetadataState {
    let mut state = legacy_cluster(3);
    state
        .apply(&create("orders", 7, vec![vec![1, 2, 3], vec![2, 3, 1]]))
        .expect("create");
    state.apply(&commit(7, 0, 0, 99)).expect("commit");
    state
        .apply(&MetaCommand::AllocateProducerIds {
            broker_id: 1,
            count: 10,
        })
        .expect("ids");
    state
}

#[test]
fn a_version_2_snapshot_still_decodes() {
    let bytes = include_bytes!("../tests/fixtures/snapshot-v2.bin");
    assert_eq!(
        snapshot::decode_snapshot(bytes).expect("a version 2 snapshot converts"),
        fixture_state()
    );
}

#[test]
fn a_version_3_snapshot_still_decodes() {
    let mut state = fixture_state();
    state.apply(&register_legacy(4)).expect("register");
    let moving = reassigned(&mut state, &reassign(&[(1, Some(&[4, 3, 1]))], true));
    assert_eq!(moving, [Ok(())], "the fixture holds a move in progress");
    let bytes = include_bytes!("../tests/fixtures/snapshot-v3.bin");
    assert_eq!(
        snapshot::decode_snapshot(bytes).expect("a version 3 snapshot converts"),
        state
    );
}
