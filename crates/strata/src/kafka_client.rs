//! A small blocking Kafka client for the CLI: one request at a time per connection, encoded
//! and decoded by `kafka-protocol`, and the cluster lookups the group commands need (brokers,
//! partition leaders, a group's coordinator). It speaks the fixed, widely supported API
//! versions below, so it works against Strata and Apache Kafka alike.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{FindCoordinatorRequest, MetadataRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use strata_wire::client::{decode_response, encode_request, response_length};

/// The largest response the CLI accepts.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(15);

/// One connection to one broker.
pub struct Connection {
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    pub fn open(address: &str) -> anyhow::Result<Self> {
        let stream =
            TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and reads its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let frame = encode_request(request, version, self.correlation_id, "strata-cli")?;
        self.stream.write_all(&frame)?;
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix)?;
        let mut body = vec![0u8; response_length(prefix, MAX_RESPONSE_BYTES)?];
        self.stream.read_exact(&mut body)?;
        Ok(decode_response::<R>(
            Bytes::from(body),
            version,
            self.correlation_id,
        )?)
    }
}

/// The cluster as one Metadata request shows it, with connections opened on demand.
pub struct Cluster {
    brokers: HashMap<i32, String>,
    /// (topic, partition) → leader
    pub leaders: HashMap<(String, i32), i32>,
    connections: HashMap<i32, Connection>,
}

impl Cluster {
    /// Asks `bootstrap` for the brokers and the leaders of `topics` (all topics if `None`).
    pub fn discover(bootstrap: &str, topics: Option<&[String]>) -> anyhow::Result<Self> {
        let mut first = Connection::open(bootstrap)?;
        let request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|name| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(kafka_protocol::messages::TopicName(
                            StrBytes::from_string(name.clone()),
                        )))
                })
                .collect()
        }));
        let metadata = first.send(&request, 12)?;
        let brokers = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        let mut leaders = HashMap::new();
        for topic in &metadata.topics {
            if let Some(error) = ResponseError::try_from_code(topic.error_code) {
                let name = topic
                    .name
                    .as_ref()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                bail!("topic '{name}': {error}");
            }
            let name = topic
                .name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default();
            for partition in &topic.partitions {
                leaders.insert(
                    (name.clone(), partition.partition_index),
                    partition.leader_id.0,
                );
            }
        }
        Ok(Self {
            brokers,
            leaders,
            connections: HashMap::new(),
        })
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// A connection to broker `id`.
    pub fn broker(&mut self, id: i32) -> anyhow::Result<&mut Connection> {
        if !self.connections.contains_key(&id) {
            let address = self
                .brokers
                .get(&id)
                .with_context(|| format!("broker {id} is not in the cluster's metadata"))?;
            self.connections.insert(id, Connection::open(address)?);
        }
        Ok(self.connections.get_mut(&id).expect("just inserted"))
    }

    /// The broker coordinating `group`.
    pub fn coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let any = *self
            .brokers
            .keys()
            .next()
            .context("the cluster lists no brokers")?;
        let request = FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
        let response = self.broker(any)?.send(&request, 4)?;
        let found = response
            .coordinators
            .first()
            .context("FindCoordinator answered no coordinator")?;
        if let Some(error) = ResponseError::try_from_code(found.error_code) {
            bail!("finding the coordinator of group '{group}': {error}");
        }
        Ok(found.node_id.0)
    }
}
