//! Identity of this node that must survive restarts: its node id and the cluster id it
//! proposes when it first joins the metadata quorum (the first one committed names the
//! cluster).
//!
//! Data directories written before producer ids came from the quorum also hold the end of
//! the last producer-id block this node reserved; the broker moves the quorum's counter past
//! it once, so no id is ever handed out twice.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use strata_log::durable_file::{read_optional, write_atomic};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PersistedMeta {
    version: u32,
    cluster_id: String,
    node_id: i32,
    /// Ids below this were handed out by this node before the quorum kept producer ids.
    producer_id_block_end: i64,
    /// The incarnation the last process on this directory registered as: a registration of
    /// this node id under it is this directory's own earlier process, not another broker.
    #[serde(default)]
    incarnation: Option<uuid::Uuid>,
}

/// The node's persisted identity.
#[derive(Debug)]
pub struct NodeMeta {
    path: std::path::PathBuf,
    meta: std::sync::Mutex<PersistedMeta>,
}

impl NodeMeta {
    /// Loads `meta/node.json` under `data_dir`, creating it (and a new cluster id) on first start.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<Self, BrokerError> {
        let path = data_dir.join("meta").join("node.json");
        let existing = read_optional(&path).map_err(|e| BrokerError::storage(&path, e))?;
        let meta = match existing {
            Some(bytes) => serde_json::from_slice::<PersistedMeta>(&bytes)
                .map_err(|e| BrokerError::storage(&path, std::io::Error::other(e)))?,
            // Persisted at once so the cluster id is fixed from the first start on.
            None => create(&path, node_id, &new_cluster_id())?,
        };
        if meta.node_id != node_id {
            return Err(BrokerError::storage(
                &path,
                std::io::Error::other(format!(
                    "data directory belongs to node {} but this is node {node_id}",
                    meta.node_id
                )),
            ));
        }
        Ok(Self {
            path,
            meta: std::sync::Mutex::new(meta),
        })
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, PersistedMeta> {
        self.meta
            .lock()
            .expect("no code panics holding the node identity")
    }

    /// Writes `meta/node.json` naming `cluster_id`, for a data directory being restored from
    /// a metadata backup; an existing identity is left alone.
    pub fn adopt(data_dir: &Path, node_id: i32, cluster_id: &str) -> Result<(), BrokerError> {
        let path = data_dir.join("meta").join("node.json");
        if read_optional(&path)
            .map_err(|e| BrokerError::storage(&path, e))?
            .is_none()
        {
            create(&path, node_id, cluster_id)?;
        }
        Ok(())
    }

    pub fn cluster_id(&self) -> String {
        self.meta().cluster_id.clone()
    }

    /// The end of the producer ids this node handed out on its own (0 for a new node).
    pub fn legacy_producer_id_end(&self) -> i64 {
        self.meta().producer_id_block_end
    }

    /// The incarnation this directory's previous process registered as, if any.
    pub fn previous_incarnation(&self) -> Option<uuid::Uuid> {
        self.meta().incarnation
    }

    /// Records the incarnation this process is about to register as.
    pub fn record_incarnation(&self, incarnation: uuid::Uuid) -> Result<(), BrokerError> {
        let mut meta = self.meta();
        meta.incarnation = Some(incarnation);
        let bytes = serde_json::to_vec_pretty(&*meta).expect("plain struct serializes");
        write_atomic(&self.path, &bytes).map_err(|e| BrokerError::storage(&self.path, e))
    }
}

/// Writes a new identity to `path`.
fn create(path: &Path, node_id: i32, cluster_id: &str) -> Result<PersistedMeta, BrokerError> {
    let meta = PersistedMeta {
        version: 1,
        cluster_id: cluster_id.to_string(),
        node_id,
        producer_id_block_end: 0,
        incarnation: None,
    };
    let bytes = serde_json::to_vec_pretty(&meta).expect("plain struct serializes");
    write_atomic(path, &bytes).map_err(|e| BrokerError::storage(path, e))?;
    Ok(meta)
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = uuid::Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_id_persists_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeMeta::open(dir.path(), 1).expect("open");
        assert_eq!(first.cluster_id().len(), 22);
        assert_eq!(first.legacy_producer_id_end(), 0);
        let second = NodeMeta::open(dir.path(), 1).expect("reopen");
        assert_eq!(second.cluster_id(), first.cluster_id());
        assert_eq!(second.previous_incarnation(), None);
        let incarnation = uuid::Uuid::new_v4();
        second.record_incarnation(incarnation).expect("record");
        let third = NodeMeta::open(dir.path(), 1).expect("reopen");
        assert_eq!(third.previous_incarnation(), Some(incarnation));
        assert_eq!(third.cluster_id(), first.cluster_id());
    }

    #[test]
    fn a_data_dir_of_another_node_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        NodeMeta::open(dir.path(), 1).expect("open");
        assert!(NodeMeta::open(dir.path(), 2).is_err());
    }
}
