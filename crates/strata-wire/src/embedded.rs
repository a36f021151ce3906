//! Byte blobs that travel inside requests and that the broker itself decodes: the consumer
//! protocol's subscription (a member's JoinGroup metadata) and assignment (SyncGroup).
//!
//! They reach the broker as opaque `bytes` fields, so the request walk only bounds their
//! total length; their contents are as hostile as any frame and `kafka-protocol`'s decoders
//! pre-allocate from the counts inside them. Each is walked by its layout (Kafka's
//! `ConsumerProtocolSubscription.json` and `ConsumerProtocolAssignment.json`, never flexible)
//! before it is decoded, and the only way to decode one is through this module.

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

use crate::BoundsError;
use crate::cursor::Cursor;
use crate::schema::{ANY, Field, INT32, Ty, f};
use crate::walk::Walk;

const TOPIC_PARTITION: &[Field] = &[
    f("topic", 0, ANY, Ty::Str),
    f("partitions", 0, ANY, Ty::Array(&INT32)),
];
const SUBSCRIPTION: &[Field] = &[
    f("topics", 0, ANY, Ty::Array(&Ty::Str)),
    f("user_data", 0, ANY, Ty::Bytes),
    f(
        "owned_partitions",
        1,
        ANY,
        Ty::Array(&Ty::Struct(TOPIC_PARTITION)),
    ),
    f("generation_id", 2, ANY, INT32),
    f("rack_id", 3, ANY, Ty::Str),
];
const ASSIGNMENT: &[Field] = &[
    f(
        "assigned_partitions",
        0,
        ANY,
        Ty::Array(&Ty::Struct(TOPIC_PARTITION)),
    ),
    f("user_data", 0, ANY, Ty::Bytes),
];

/// The newest version of either layout this broker knows. A newer version is read as this
/// one, as Kafka's clients do: later versions only append fields.
const HIGHEST_VERSION: i16 = 3;

/// Reads a consumer-protocol subscription (JoinGroup member metadata).
pub fn consumer_subscription(blob: &Bytes) -> Result<ConsumerProtocolSubscription, BoundsError> {
    decode(blob, SUBSCRIPTION, "subscription")
}

/// Reads a consumer-protocol assignment (a SyncGroup assignment).
pub fn consumer_assignment(blob: &Bytes) -> Result<ConsumerProtocolAssignment, BoundsError> {
    decode(blob, ASSIGNMENT, "assignment")
}

fn decode<T: Decodable>(
    blob: &Bytes,
    fields: &'static [Field],
    what: &'static str,
) -> Result<T, BoundsError> {
    let mut cursor = Cursor::new(blob);
    let version = cursor.i16(what)?;
    if version < 0 {
        return Err(BoundsError::Undecodable {
            what,
            reason: format!("negative version {version}"),
        });
    }
    let version = version.min(HIGHEST_VERSION);
    Walk::new(version).fields(&mut cursor, fields, false)?;
    let mut body = blob.slice(2..);
    T::decode(&mut body, version).map_err(|e| BoundsError::Undecodable {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    fn encoded(version: i16, message: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        message.encode(&mut buf, version).expect("encodes");
        buf.freeze()
    }

    fn subscription() -> ConsumerProtocolSubscription {
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("orders")])
            .with_user_data(Some(Bytes::from_static(b"u")))
            .with_owned_partitions(vec![
                OwnedTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_partitions(vec![0, 2]),
            ])
            .with_generation_id(4)
            .with_rack_id(Some(StrBytes::from_static_str("a")))
    }

    #[test]
    fn every_version_a_client_writes_is_read_back() {
        for version in 0..=HIGHEST_VERSION {
            let blob = encoded(version, &subscription());
            let read = consumer_subscription(&blob).expect("reads");
            assert_eq!(read.topics, subscription().topics, "v{version}");
            // Cut anywhere, it is refused rather than misread.
            for cut in 0..blob.len() {
                assert!(
                    consumer_subscription(&blob.slice(..cut)).is_err(),
                    "v{version} cut at {cut}"
                );
            }
        }
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![1]),
        ]);
        for version in 0..=HIGHEST_VERSION {
            let blob = encoded(version, &assignment);
            assert_eq!(consumer_assignment(&blob).expect("reads"), assignment);
        }
    }

    #[test]
    fn a_newer_version_reads_as_the_newest_known() {
        let mut blob = BytesMut::from(&encoded(3, &subscription())[..]);
        blob[..2].copy_from_slice(&7i16.to_be_bytes());
        assert_eq!(
            consumer_subscription(&blob.freeze())
                .expect("reads")
                .rack_id,
            subscription().rack_id
        );
    }

    #[test]
    fn counts_the_bytes_cannot_back_are_refused_before_decoding() {
        // Version 0, then a topics array claiming 2^31-1 entries: kafka-protocol alone would
        // try to allocate tens of GiB for it.
        let hostile = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            consumer_subscription(&hostile),
            Err(BoundsError::BadLength { .. })
        ));
        let hostile = Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff]);
        assert!(consumer_assignment(&hostile).is_err());
        assert!(consumer_subscription(&Bytes::from_static(&[0xff, 0xff])).is_err());
        assert!(consumer_subscription(&Bytes::new()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_blobs_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let blob = Bytes::from(bytes);
            let _ = consumer_subscription(&blob);
            let _ = consumer_assignment(&blob);
        }
    }
}
