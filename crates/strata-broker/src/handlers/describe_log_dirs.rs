//! DescribeLogDirs (`kafka-log-dirs.sh`, and `kafka-reassign-partitions.sh` before it moves
//! anything): the one directory this broker keeps partition logs in, each hosted partition's
//! bytes there (the hot tail: what is only in the object store is not counted), and the
//! directory's filesystem capacity.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{RequestContext, str_bytes};

pub fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let asked = |topic: &str, partition: i32| {
        request.topics.as_ref().is_none_or(|topics| {
            topics
                .iter()
                .any(|t| *t.topic == *topic && t.partitions.contains(&partition))
        })
    };
    let topics = ctx
        .broker
        .topics
        .all()
        .into_iter()
        .filter_map(|topic| {
            let partitions: Vec<DescribeLogDirsPartition> = topic
                .partitions
                .iter()
                .filter(|(index, _)| asked(&topic.name, **index))
                .map(|(index, partition)| {
                    let offsets = partition.offsets();
                    DescribeLogDirsPartition::default()
                        .with_partition_index(*index)
                        .with_partition_size(
                            i64::try_from(partition.local_size_bytes()).unwrap_or(i64::MAX),
                        )
                        // Kafka's definition: how far the log end trails the high watermark.
                        .with_offset_lag((offsets.high_watermark - offsets.log_end_offset).max(0))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name.to_string())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let log_dir = ctx.broker.topics.log_dir();
    // Unknown capacity is -1, as Kafka answers it.
    let (total, usable) = rustix::fs::statvfs(log_dir).map_or((-1, -1), |fs| {
        let bytes =
            |blocks: u64| i64::try_from(blocks.saturating_mul(fs.f_frsize)).unwrap_or(i64::MAX);
        (bytes(fs.f_blocks), bytes(fs.f_bavail))
    });
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(log_dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable),
    ])
}
