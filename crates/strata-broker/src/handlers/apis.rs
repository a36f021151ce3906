//! The one table of the APIs this broker serves: for each, its key, the name its metrics and
//! spans carry, the versions served and its handler. Dispatch, ApiVersions and the names all
//! come from it, so adding an API is one line here plus its handler (and, for a request Kafka
//! added after the specs `strata-wire` was generated from, regenerating those).
//!
//! Handlers come in four shapes: `now` (synchronous, always answers), `later` (async, always
//! answers), `full` (async; may answer nothing, as an `acks=0` produce, or fail the
//! connection) and `spliced` (async, always answers, with file ranges sent from their files:
//! see [`crate::response`]).

use bytes::Bytes;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, ApiKey, ApiVersionsRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeLogDirsRequest, DescribeQuorumRequest, ElectLeadersRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, ListPartitionReassignmentsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest,
    SyncGroupRequest,
};

use super::{
    RequestContext, RequestError, alter_configs, api_versions, create_partitions, create_topics,
    delete_records, delete_topics, describe_cluster, describe_configs, describe_log_dirs,
    describe_quorum, elect_leaders, fetch, find_coordinator, group_admin, init_producer_id,
    list_offsets, membership, metadata, offset_for_leader_epoch, offsets, produce, reassignments,
    run,
};
use crate::response::{Response, Splices};

/// One API this broker serves.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub key: ApiKey,
    /// The name on metrics and spans.
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
}

impl Api {
    pub fn serves(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

macro_rules! served_apis {
    ($($key:ident $name:literal $min:literal ..= $max:literal,
       $request:ty => $shape:ident $handler:path;)*) => {
        /// Every served API, by key.
        pub const APIS: &[Api] = &[
            $(Api { key: ApiKey::$key, name: $name, min: $min, max: $max },)*
        ];

        /// Decodes `body` as the request `api` names, runs its handler and encodes the answer.
        pub async fn route(
            ctx: &RequestContext<'_>,
            api: &Api,
            body: Bytes,
        ) -> Result<Option<Response>, RequestError> {
            match api.key {
                $(ApiKey::$key => {
                    run::<$request, _>(ctx, body, |r| served_apis!(@call $shape $handler, ctx, r))
                        .await
                })*
                other => Err(RequestError::Internal(format!("{other:?} has no handler"))),
            }
        }

        /// The versions the codec knows of each served request.
        #[cfg(test)]
        fn codec_versions(key: ApiKey) -> (i16, i16) {
            use kafka_protocol::protocol::Message;
            match key {
                $(ApiKey::$key => (<$request>::VERSIONS.min, <$request>::VERSIONS.max),)*
                other => panic!("{other:?} is not served"),
            }
        }

        /// A default request of `key` at `version`, as a client would frame it.
        #[cfg(test)]
        fn default_request(key: ApiKey, version: i16) -> Bytes {
            match key {
                $(ApiKey::$key => tests::frame(&<$request>::default(), version),)*
                other => panic!("{other:?} is not served"),
            }
        }
    };
    (@call now $handler:path, $ctx:ident, $r:ident) => {
        async move { Ok(Some(($handler($ctx, $r), Splices::default()))) }
    };
    (@call later $handler:path, $ctx:ident, $r:ident) => {
        async move { Ok(Some(($handler($ctx, $r).await, Splices::default()))) }
    };
    (@call full $handler:path, $ctx:ident, $r:ident) => {
        async move { Ok($handler($ctx, $r).await?.map(|r| (r, Splices::default()))) }
    };
    (@call spliced $handler:path, $ctx:ident, $r:ident) => {
        async move { Ok(Some($handler($ctx, $r).await)) }
    };
}

served_apis! {
    Produce "produce" 3..=13, ProduceRequest => full produce::handle;
    Fetch "fetch" 4..=18, FetchRequest => spliced fetch::handle;
    ListOffsets "list_offsets" 1..=10, ListOffsetsRequest => later list_offsets::handle;
    Metadata "metadata" 0..=13, MetadataRequest => later metadata::handle;
    OffsetCommit "offset_commit" 2..=9, OffsetCommitRequest => later offsets::commit;
    OffsetFetch "offset_fetch" 1..=9, OffsetFetchRequest => later offsets::fetch;
    FindCoordinator "find_coordinator" 0..=6, FindCoordinatorRequest => later find_coordinator::handle;
    JoinGroup "join_group" 0..=9, JoinGroupRequest => later membership::join;
    Heartbeat "heartbeat" 0..=4, HeartbeatRequest => later membership::heartbeat;
    LeaveGroup "leave_group" 0..=5, LeaveGroupRequest => later membership::leave;
    SyncGroup "sync_group" 0..=5, SyncGroupRequest => later membership::sync;
    DescribeGroups "describe_groups" 0..=5, DescribeGroupsRequest => later group_admin::describe;
    ListGroups "list_groups" 0..=5, ListGroupsRequest => later group_admin::list;
    ApiVersions "api_versions" 0..=4, ApiVersionsRequest => now api_versions::handle;
    CreateTopics "create_topics" 2..=7, CreateTopicsRequest => later create_topics::handle;
    DeleteTopics "delete_topics" 1..=6, DeleteTopicsRequest => later delete_topics::handle;
    DeleteRecords "delete_records" 0..=2, DeleteRecordsRequest => later delete_records::handle;
    InitProducerId "init_producer_id" 0..=5, InitProducerIdRequest => later init_producer_id::handle;
    OffsetForLeaderEpoch "offset_for_leader_epoch" 2..=4, OffsetForLeaderEpochRequest => now offset_for_leader_epoch::handle;
    DescribeConfigs "describe_configs" 1..=4, DescribeConfigsRequest => now describe_configs::handle;
    AlterConfigs "alter_configs" 0..=2, AlterConfigsRequest => later alter_configs::handle;
    DescribeLogDirs "describe_log_dirs" 1..=4, DescribeLogDirsRequest => now describe_log_dirs::handle;
    CreatePartitions "create_partitions" 0..=3, CreatePartitionsRequest => later create_partitions::handle;
    DeleteGroups "delete_groups" 0..=2, DeleteGroupsRequest => later group_admin::delete;
    ElectLeaders "elect_leaders" 0..=2, ElectLeadersRequest => later elect_leaders::handle;
    IncrementalAlterConfigs "incremental_alter_configs" 0..=1, IncrementalAlterConfigsRequest => later alter_configs::handle_incremental;
    AlterPartitionReassignments "alter_partition_reassignments" 0..=1, AlterPartitionReassignmentsRequest => later reassignments::alter;
    ListPartitionReassignments "list_partition_reassignments" 0..=0, ListPartitionReassignmentsRequest => now reassignments::list;
    OffsetDelete "offset_delete" 0..=0, OffsetDeleteRequest => later offsets::delete;
    DescribeQuorum "describe_quorum" 0..=2, DescribeQuorumRequest => later describe_quorum::handle;
    DescribeCluster "describe_cluster" 0..=2, DescribeClusterRequest => now describe_cluster::handle;
}

/// The served API with this key, if it is served.
pub fn served(key: ApiKey) -> Option<&'static Api> {
    APIS.iter().find(|api| api.key == key)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Encodable, HeaderVersion, Request};

    use super::*;

    pub(super) fn frame<R: Request + Encodable + HeaderVersion>(
        request: &R,
        version: i16,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut buf, R::header_version(version))
            .expect("header encodes");
        request.encode(&mut buf, version).expect("request encodes");
        buf.freeze()
    }

    #[test]
    fn apis_are_listed_once_by_key() {
        let keys: Vec<i16> = APIS.iter().map(|api| api.key as i16).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn every_served_version_is_one_kafka_defines_and_the_codec_knows() {
        for api in APIS {
            let (kafka_min, kafka_max) =
                strata_wire::request_versions(api.key as i16).expect("a request Kafka defines");
            let (codec_min, codec_max) = codec_versions(api.key);
            assert!(
                api.min >= kafka_min.max(codec_min) && api.max <= kafka_max.min(codec_max),
                "{} serves {}..={}, Kafka defines {kafka_min}..={kafka_max}, the codec knows {codec_min}..={codec_max}",
                api.name,
                api.min,
                api.max
            );
        }
    }

    #[test]
    fn every_served_version_of_every_api_passes_the_bounds_walk() {
        for api in APIS {
            for version in api.min..=api.max {
                let frame = default_request(api.key, version);
                strata_wire::check_request(&frame)
                    .unwrap_or_else(|e| panic!("{} v{version}: {e}", api.name));
            }
        }
    }
}
