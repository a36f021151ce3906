//! A data directory written before the metadata quorum existed: its topics are described by
//! `meta/topics/<id>.json` files and there is no raft directory. The first start adopts them.

use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use strata_e2e::InProcessBroker;

use crate::produce_fetch::{consume_and_check, produce_records};
use crate::raw::{Client, s};
use crate::{client_runtime, create_topic, topic_config};

#[test]
fn a_pre_quorum_data_directory_keeps_its_topics_ids_configs_and_records() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = InProcessBroker::start_in(dir.path(), |_| {})?;
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        "legacy",
        2,
        &[("retention.ms", "86400000")],
    ));
    let sent = produce_records(&broker.bootstrap, "legacy", 2, 20, &[]);
    broker.stop()?;

    // Rewind to the old layout: no raft state, the topic described by its metadata file, and
    // a directory of a topic nothing describes.
    let log = dir.path().join("log");
    let topic_dir = std::fs::read_dir(&log)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|name| name.starts_with("legacy."))
        .expect("the topic's log directory");
    let id = uuid::Uuid::try_parse(topic_dir.trim_start_matches("legacy."))?;
    std::fs::remove_dir_all(dir.path().join("raft"))?;
    let meta = dir.path().join("meta/topics");
    std::fs::create_dir_all(&meta)?;
    let legacy = serde_json::json!({
        "version": 1,
        "name": "legacy",
        "id": id,
        "partitions": 2,
        "overrides": { "retention.ms": "86400000" },
    });
    std::fs::write(
        meta.join(format!("{}.json", id.simple())),
        serde_json::to_vec(&legacy)?,
    )?;
    let orphan = format!("gone.{}", uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(log.join(&orphan).join("0"))?;

    let broker = InProcessBroker::start_in(dir.path(), |_| {})?;
    consume_and_check(&broker.bootstrap, "legacy", 2, &sent);
    let metadata = Client::connect(&broker.bootstrap).send(
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(kafka_protocol::messages::TopicName(s("legacy")))),
        ])),
        12,
    );
    assert_eq!(metadata.topics[0].topic_id, id, "the topic keeps its id");
    assert_eq!(
        topic_config(&broker.bootstrap, "legacy", "retention.ms").as_deref(),
        Some("86400000")
    );
    assert!(
        !meta.exists(),
        "the metadata files are retired once adopted"
    );
    assert!(
        log.join(format!("{orphan}.stray")).is_dir(),
        "unknown data is set aside"
    );
    broker.stop()?;
    Ok(())
}
