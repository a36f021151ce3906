//! Replaying a `__consumer_offsets` partition into its groups.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use tracing::warn;

use super::group::Group;
use super::records::{RecordKey, decode_group, decode_offset};
use crate::error::BrokerError;
use crate::partition::{Partition, ReadBound};

/// How much of the partition one replay read brings.
const REPLAY_READ_BYTES: usize = 4 << 20;

/// What replaying a partition rebuilt.
pub struct Replayed {
    pub groups: HashMap<String, Group>,
    /// Records whose key names a group but whose value does not decode: damaged, or written
    /// by something other than a coordinator. They are skipped, never read as deletions.
    pub skipped: u64,
}

/// Rebuilds every group of one partition from its records, up to the log end: a new
/// leader's log may hold the previous coordinator's last writes above its high watermark
/// (its followers have yet to report them), and as the leader's they will commit. Replaying
/// only to the high watermark would forget them: a member that left, an offset committed.
/// Blocking: run it off the runtime.
pub fn replay(partition: &Partition, now: Instant) -> Result<Replayed, BrokerError> {
    let mut replayed = Replayed {
        groups: HashMap::new(),
        skipped: 0,
    };
    let offsets = partition.offsets();
    let mut position = offsets.log_start_offset;
    while position < offsets.log_end_offset {
        let mut bytes = partition.read(position, ReadBound::LogEnd, REPLAY_READ_BYTES, true)?;
        if bytes.is_empty() {
            break;
        }
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))?;
        for record in sets.into_iter().flat_map(|set| set.records) {
            position = position.max(record.offset + 1);
            if record.control {
                continue;
            }
            let Some(key) = record.key.and_then(RecordKey::decode) else {
                continue;
            };
            if !apply(&mut replayed.groups, key, record.value, now) {
                replayed.skipped += 1;
                warn!(
                    partition = partition.index,
                    offset = record.offset,
                    "skipping a consumer offsets record whose value does not decode"
                );
            }
        }
    }
    replayed.groups.retain(|_, g| !g.is_empty());
    Ok(replayed)
}

/// Applies one record; false when its value is present but does not decode (and nothing
/// changed). Only a record with no value at all is a tombstone.
fn apply(
    groups: &mut HashMap<String, Group>,
    key: RecordKey,
    value: Option<Bytes>,
    now: Instant,
) -> bool {
    let group = groups
        .entry(key.group().to_string())
        .or_insert_with(|| Group::new(key.group()));
    match key {
        RecordKey::Offset {
            topic, partition, ..
        } => match value.map(decode_offset) {
            Some(Some(offset)) => {
                group.offsets.insert((topic, partition), offset);
            }
            Some(None) => return false,
            None => {
                group.offsets.remove(&(topic, partition));
            }
        },
        RecordKey::Group { .. } => match value.map(decode_group) {
            Some(Some(stored)) => group.restore(stored, now),
            Some(None) => return false,
            // A tombstone: the group was deleted, offsets and all.
            None => *group = Group::new(&group.group_id),
        },
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group::CommittedOffset;
    use crate::groups::records::encode_offset;

    fn write(partition: &Partition, records: Vec<(Bytes, Option<Bytes>)>) {
        crate::testing::append_committed(partition, records, 0).expect("appends");
    }

    #[test]
    fn a_value_that_does_not_decode_is_skipped_not_read_as_a_tombstone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = crate::partition::test_partition(
            "__consumer_offsets",
            dir.path(),
            crate::partition::test_files(),
        );
        let key = |p: i32| {
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: p,
            }
            .encode()
        };
        let committed = CommittedOffset {
            offset: 42,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        };
        write(
            &partition,
            vec![
                (key(0), Some(encode_offset(&committed))),
                (key(1), Some(encode_offset(&committed))),
            ],
        );
        // What a client could have produced before internal topics were refused: garbage for
        // partition 0, and a real tombstone for partition 1.
        write(
            &partition,
            vec![(key(0), Some(Bytes::from_static(b"\xff"))), (key(1), None)],
        );
        let replayed = replay(&partition, Instant::now()).expect("replays");
        assert_eq!(replayed.skipped, 1);
        let group = replayed.groups.get("g").expect("the group survives");
        assert_eq!(
            group.offsets.get(&("t".into(), 0)).map(|o| o.offset),
            Some(42)
        );
        assert!(
            !group.offsets.contains_key(&("t".into(), 1)),
            "a tombstone deletes"
        );
    }
}
