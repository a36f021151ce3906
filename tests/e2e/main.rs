//! End-to-end tests: real Kafka clients (librdkafka through the `rdkafka` crate, and the
//! Python, JavaScript, Java and kcat runners under `tests/clients`) against Strata brokers.

mod admin_tools;
mod bench_smoke;
mod clients;
mod cluster;
mod crash;
mod differential;
mod eligible_leaders;
mod fetch_sessions;
mod group_state;
mod group_versions;
mod groups;
mod hostile;
mod identity;
mod object_store;
mod produce_fetch;
mod raw;
mod replication;
mod run_contract;
mod scale;
mod telemetry;
mod tiering;
mod upgrade;
mod uptime;
mod versions;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;

/// A metric's value from the admin port's Prometheus text (a metric not exported is a
/// failure, not a zero).
pub fn metric(admin: &str, name: &str) -> f64 {
    let (_, body) = strata_e2e::http_get(admin, "/metrics").expect("metrics");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not exported"))
}

/// How many descriptors process `pid` holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .count()
}

/// A small runtime for client futures (the in-process broker has its own).
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

pub fn producer(bootstrap: &str, settings: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

pub fn consumer(bootstrap: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group id; nothing is committed to it.
        .set("group.id", "strata-e2e")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// A topic's config value as DescribeConfigs reports it through the Kafka admin API.
pub fn topic_config(bootstrap: &str, topic: &str, name: &str) -> Option<String> {
    let described = client_runtime().block_on(async {
        admin(bootstrap)
            .describe_configs(
                &[ResourceSpecifier::Topic(topic)],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
            )
            .await
    });
    let resource = described
        .expect("describe_configs request")
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the topic is described");
    resource.get(name).and_then(|e| e.value.clone())
}

/// Creates a topic through the Kafka admin API and fails the test if the broker refuses.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_replicated_topic(bootstrap, name, partitions, 1, configs).await;
}

/// Creates a topic with `replicas` replicas of each partition, as [`create_topic`].
pub async fn create_replicated_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replicas: i32,
    configs: &[(&str, &str)],
) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&[topic], &options)
        .await
        .expect("create_topics request");
    for result in results {
        result.expect("topic created");
    }
}
