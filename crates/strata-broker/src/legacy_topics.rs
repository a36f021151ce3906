//! Topics recorded by a data directory from before the metadata quorum.
//!
//! Such a directory described each topic in `meta/topics/<topic id>.json`. On its first start
//! with the quorum, the node proposes each of those topics (same id, same name, every
//! partition on this broker) and, once the quorum holds it, removes the file. A name the
//! quorum already gives to another topic is left alone and logged: its data is then set aside
//! as a stray, never merged into the other topic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use strata_meta::{CreateTopic, MetaCommand, MetaError};
use tracing::{error, info};
use uuid::Uuid;

use crate::control_plane::MetadataView;
use crate::error::BrokerError;

#[derive(Debug, Deserialize)]
struct LegacyTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    overrides: BTreeMap<String, String>,
}

/// Proposes every legacy topic under `data_dir` to the quorum and retires its file.
pub async fn adopt(
    data_dir: &Path,
    broker_id: i32,
    metadata: &MetadataView,
) -> Result<(), BrokerError> {
    let dir = data_dir.join("meta").join("topics");
    for (path, topic) in read_all(&dir)? {
        let create = MetaCommand::CreateTopic(CreateTopic {
            name: topic.name.clone(),
            topic_id: topic.id,
            assignments: (0..topic.partitions).map(|_| vec![broker_id]).collect(),
            configs: topic.overrides,
        });
        match metadata.propose(create).await {
            Ok(_) => {
                info!(topic = %topic.name, topic_id = %topic.id, "moved a topic's metadata into the quorum")
            }
            Err(BrokerError::Metadata(MetaError::TopicAlreadyExists { .. }))
                if metadata.read(|s| s.topic(topic.id).is_some()) =>
            {
                // Adopted before, and the file's removal did not happen.
            }
            Err(BrokerError::Metadata(refused)) => {
                error!(topic = %topic.name, topic_id = %topic.id, error = %refused, "the quorum refused a topic from this data directory; its data will be set aside");
            }
            Err(e) => return Err(e),
        }
        std::fs::remove_file(&path).map_err(|e| BrokerError::storage(&path, e))?;
    }
    if dir.exists() {
        std::fs::remove_dir(&dir).map_err(|e| BrokerError::storage(&dir, e))?;
    }
    Ok(())
}

fn read_all(dir: &Path) -> Result<Vec<(PathBuf, LegacyTopic)>, BrokerError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BrokerError::storage(dir, e)),
    };
    let mut topics = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| BrokerError::storage(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            // A create cut short before it committed.
            std::fs::remove_file(&path).map_err(|e| BrokerError::storage(&path, e))?;
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| BrokerError::storage(&path, e))?;
        let topic = serde_json::from_slice(&bytes)
            .map_err(|e| BrokerError::storage(&path, std::io::Error::other(e)))?;
        topics.push((path, topic));
    }
    Ok(topics)
}
