//! The records groups keep in `__consumer_offsets`, in Kafka's own layout so Kafka's tools can
//! read them: an offset commit is keyed by (group, topic, partition) (key version 1, value
//! version 3), a group's metadata by its id (key version 2, value version 3). A record with no
//! value is a tombstone. The topic is compacted: the last record of each key is the state.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::group::{CommittedOffset, StoredGroup, StoredMember};

const OFFSET_COMMIT_KEY: i16 = 1;
const GROUP_METADATA_KEY: i16 = 2;
const OFFSET_COMMIT_VALUE: i16 = 3;
const GROUP_METADATA_VALUE: i16 = 3;

/// What a record's key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            Self::Offset { group, .. } | Self::Group { group } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            Self::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_COMMIT_KEY);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            Self::Group { group } => {
                buf.put_i16(GROUP_METADATA_KEY);
                put_string(&mut buf, group);
            }
        }
        buf.freeze()
    }

    /// Decodes a key; `None` for a key of a kind this broker does not keep (Kafka also
    /// stores share-group and other records here), or a damaged one.
    pub fn decode(mut buf: Bytes) -> Option<Self> {
        let version = get_i16(&mut buf)?;
        match version {
            0 | OFFSET_COMMIT_KEY => Some(Self::Offset {
                group: get_string(&mut buf)?,
                topic: get_string(&mut buf)?,
                partition: get_i32(&mut buf)?,
            }),
            GROUP_METADATA_KEY => Some(Self::Group {
                group: get_string(&mut buf)?,
            }),
            _ => None,
        }
    }
}

pub fn encode_offset(offset: &CommittedOffset) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_COMMIT_VALUE);
    buf.put_i64(offset.offset);
    buf.put_i32(offset.leader_epoch);
    put_string(&mut buf, &offset.metadata);
    buf.put_i64(offset.commit_timestamp_ms);
    buf.freeze()
}

pub fn decode_offset(mut buf: Bytes) -> Option<CommittedOffset> {
    let version = get_i16(&mut buf)?;
    let offset = get_i64(&mut buf)?;
    let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
    let metadata = get_string(&mut buf)?;
    let commit_timestamp_ms = get_i64(&mut buf)?;
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

pub fn encode_group(group: &StoredGroup) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_METADATA_VALUE);
    put_string(&mut buf, group.protocol_type.as_deref().unwrap_or(""));
    buf.put_i32(group.generation);
    put_nullable_string(&mut buf, group.protocol_name.as_deref());
    put_nullable_string(&mut buf, group.leader.as_deref());
    buf.put_i64(group.state_timestamp_ms);
    buf.put_i32(i32::try_from(group.members.len()).unwrap_or(i32::MAX));
    for m in &group.members {
        put_string(&mut buf, &m.member_id);
        put_nullable_string(&mut buf, m.instance_id.as_deref());
        put_string(&mut buf, &m.client_id);
        put_string(&mut buf, &m.client_host);
        buf.put_i32(millis(m.rebalance_timeout));
        buf.put_i32(millis(m.session_timeout));
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

pub fn decode_group(mut buf: Bytes) -> Option<StoredGroup> {
    let version = get_i16(&mut buf)?;
    let protocol_type = get_string(&mut buf)?;
    let generation = get_i32(&mut buf)?;
    let protocol_name = get_nullable_string(&mut buf)?;
    let leader = get_nullable_string(&mut buf)?;
    let state_timestamp_ms = if version >= 2 { get_i64(&mut buf)? } else { -1 };
    let count = usize::try_from(get_i32(&mut buf)?).ok()?;
    // Each member takes at least 20 bytes: a count beyond the bytes present is damage.
    if count > buf.remaining() / 20 + 1 {
        return None;
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = get_string(&mut buf)?;
        let instance_id = if version >= 3 {
            get_nullable_string(&mut buf)?
        } else {
            None
        };
        let client_id = get_string(&mut buf)?;
        let client_host = get_string(&mut buf)?;
        let rebalance_timeout = if version >= 1 { get_i32(&mut buf)? } else { -1 };
        let session_timeout = get_i32(&mut buf)?;
        let subscription = get_bytes(&mut buf)?;
        let assignment = get_bytes(&mut buf)?;
        let session = duration(session_timeout);
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            session_timeout: session,
            rebalance_timeout: if rebalance_timeout < 0 {
                session
            } else {
                duration(rebalance_timeout)
            },
            subscription,
            assignment,
        });
    }
    Some(StoredGroup {
        protocol_type: (!protocol_type.is_empty()).then_some(protocol_type),
        generation,
        protocol_name,
        leader,
        state_timestamp_ms,
        members,
    })
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn duration(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    buf.put_slice(b);
}

fn get_i16(buf: &mut Bytes) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

fn get_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn get_i64(buf: &mut Bytes) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64())
}

fn get_nullable_string(buf: &mut Bytes) -> Option<Option<String>> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok().map(Some)
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    get_nullable_string(buf)?
}

fn get_bytes(buf: &mut Bytes) -> Option<Bytes> {
    let len = usize::try_from(get_i32(buf)?).ok()?;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_and_damage_is_none() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(RecordKey::decode(key.encode()), Some(key));
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(RecordKey::decode(key.encode()), Some(key));

        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(decode_offset(encode_offset(&offset)), Some(offset));

        let group = StoredGroup {
            protocol_type: Some("consumer".into()),
            generation: 4,
            protocol_name: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 5,
            members: vec![StoredMember {
                member_id: "m-1".into(),
                instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout: Duration::from_secs(10),
                rebalance_timeout: Duration::from_secs(30),
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assign"),
            }],
        };
        let encoded = encode_group(&group);
        assert_eq!(decode_group(encoded.clone()), Some(group));
        for cut in 0..encoded.len() {
            assert_eq!(decode_group(encoded.slice(..cut)), None, "cut at {cut}");
        }
        assert_eq!(RecordKey::decode(Bytes::from_static(&[0, 9, 0, 0])), None);
    }
}
