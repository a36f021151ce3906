//! Writing group records to a `__consumer_offsets` partition and replaying them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_log::{BatchLimits, validate_produce_batch};
use tracing::warn;

use super::group::Group;
use super::records::{RecordKey, decode_group, decode_offset};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::partition::Partition;

/// How much of the partition one replay read brings.
const REPLAY_READ_BYTES: usize = 4 << 20;

/// Appends `records` (key, value or a tombstone) as one batch and waits until it is durable
/// per the broker's durability setting. A partition this broker no longer leads answers
/// NOT_COORDINATOR, so the client looks the coordinator up again.
pub async fn append(
    broker: &Broker,
    partition: &Arc<Partition>,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), ResponseError> {
    let now_ms = broker.clock.now_ms();
    // Offsets relative to the batch; the log assigns the real ones on append.
    let records: Vec<Record> = (0i64..)
        .zip(records)
        .map(|(offset, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder keeps records in one batch while offset minus sequence is constant;
            // this makes the batch's base sequence NO_SEQUENCE (-1), as for any
            // non-idempotent batch.
            sequence: NO_SEQUENCE + i32::try_from(offset).unwrap_or(i32::MAX),
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| {
        warn!(error = %e, "could not encode group records");
        ResponseError::UnknownServerError
    })?;
    let limits = BatchLimits {
        max_message_bytes: usize::MAX,
        max_decompressed_bytes: usize::MAX,
        now_ms,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        log_append_time: false,
    };
    let result = async {
        let batch = validate_produce_batch(buf.freeze(), &limits)?;
        partition.append(&batch, now_ms)?;
        broker.make_durable(partition).await
    }
    .await;
    result.map_err(|e| match e {
        BrokerError::NotLeaderOrFollower | BrokerError::ShuttingDown => {
            ResponseError::NotCoordinator
        }
        other => {
            warn!(error = %other, "could not write group records");
            ResponseError::CoordinatorNotAvailable
        }
    })
}

/// Rebuilds every group of one partition from its records. Blocking: run it off the runtime.
pub fn replay(partition: &Partition, now: Instant) -> Result<HashMap<String, Group>, BrokerError> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let offsets = partition.offsets();
    let mut position = offsets.log_start_offset;
    while position < offsets.high_watermark {
        let mut bytes = partition.read(position, REPLAY_READ_BYTES, true)?;
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
            if let Some(key) = record.key.and_then(RecordKey::decode) {
                apply(&mut groups, key, record.value, now);
            }
        }
    }
    groups.retain(|_, g| !g.is_empty());
    Ok(groups)
}

fn apply(groups: &mut HashMap<String, Group>, key: RecordKey, value: Option<Bytes>, now: Instant) {
    let group = groups
        .entry(key.group().to_string())
        .or_insert_with(|| Group::new(key.group()));
    match key {
        RecordKey::Offset {
            topic, partition, ..
        } => match value.and_then(decode_offset) {
            Some(offset) => {
                group.offsets.insert((topic, partition), offset);
            }
            None => {
                group.offsets.remove(&(topic, partition));
            }
        },
        RecordKey::Group { .. } => match value.and_then(decode_group) {
            Some(stored) => group.restore(stored, now),
            // A tombstone: the group was deleted, offsets and all.
            None => *group = Group::new(&group.group_id),
        },
    }
}
