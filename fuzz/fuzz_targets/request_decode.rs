//! Any bytes as a request frame: the bounds walk must never panic, and whatever it accepts
//! must decode with kafka-protocol without aborting (an error is fine). The blobs a group
//! request nests (members' subscriptions, assignments) go through the broker's bounded
//! decoders too, as the coordinator would read them.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if strata_wire::check_request(data).is_err() {
        return;
    }
    let Ok(start) = strata_wire::peek_header(data) else { return };
    let Ok(api_key) = ApiKey::try_from(start.api_key) else { return };
    let mut body = Bytes::copy_from_slice(data);
    if RequestHeader::decode(&mut body, api_key.request_header_version(start.api_version)).is_err() {
        return;
    }
    let v = start.api_version;
    let _ = match api_key {
        ApiKey::Produce => ProduceRequest::decode(&mut body, v).map(drop),
        ApiKey::Fetch => FetchRequest::decode(&mut body, v).map(drop),
        ApiKey::ListOffsets => ListOffsetsRequest::decode(&mut body, v).map(drop),
        ApiKey::Metadata => MetadataRequest::decode(&mut body, v).map(drop),
        ApiKey::ApiVersions => ApiVersionsRequest::decode(&mut body, v).map(drop),
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut body, v).map(drop),
        ApiKey::DeleteTopics => DeleteTopicsRequest::decode(&mut body, v).map(drop),
        ApiKey::InitProducerId => InitProducerIdRequest::decode(&mut body, v).map(drop),
        ApiKey::DescribeCluster => DescribeClusterRequest::decode(&mut body, v).map(drop),
        ApiKey::OffsetCommit => OffsetCommitRequest::decode(&mut body, v).map(drop),
        ApiKey::OffsetFetch => OffsetFetchRequest::decode(&mut body, v).map(drop),
        ApiKey::FindCoordinator => FindCoordinatorRequest::decode(&mut body, v).map(drop),
        ApiKey::JoinGroup => JoinGroupRequest::decode(&mut body, v).map(|request| {
            for protocol in &request.protocols {
                let _ = strata_wire::embedded::consumer_subscription(&protocol.metadata);
            }
        }),
        ApiKey::Heartbeat => HeartbeatRequest::decode(&mut body, v).map(drop),
        ApiKey::LeaveGroup => LeaveGroupRequest::decode(&mut body, v).map(drop),
        ApiKey::SyncGroup => SyncGroupRequest::decode(&mut body, v).map(|request| {
            for assignment in &request.assignments {
                let _ = strata_wire::embedded::consumer_assignment(&assignment.assignment);
            }
        }),
        ApiKey::DescribeGroups => DescribeGroupsRequest::decode(&mut body, v).map(drop),
        ApiKey::ListGroups => ListGroupsRequest::decode(&mut body, v).map(drop),
        ApiKey::DeleteGroups => DeleteGroupsRequest::decode(&mut body, v).map(drop),
        ApiKey::OffsetDelete => OffsetDeleteRequest::decode(&mut body, v).map(drop),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::decode(&mut body, v).map(drop),
        ApiKey::AlterConfigs => AlterConfigsRequest::decode(&mut body, v).map(drop),
        ApiKey::CreatePartitions => CreatePartitionsRequest::decode(&mut body, v).map(drop),
        ApiKey::IncrementalAlterConfigs => {
            IncrementalAlterConfigsRequest::decode(&mut body, v).map(drop)
        }
        _ => Ok(()),
    };
});
