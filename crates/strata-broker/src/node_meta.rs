//! Identity of this node that must survive restarts: the cluster id (created once) and the
//! producer-id high-water mark, so ids handed to idempotent producers are never reused.
//!
//! Producer ids are reserved in blocks: the end of the current block is persisted before any
//! id from it is handed out, so after a crash allocation resumes past every id ever given.
//! (The control plane will replace this with cluster-wide blocks recorded in raft.)

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use strata_log::durable_file::{read_optional, write_atomic};

const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PersistedMeta {
    version: u32,
    cluster_id: String,
    node_id: i32,
    producer_id_block_end: i64,
}

/// The node's persisted identity and its producer-id allocator.
#[derive(Debug)]
pub struct NodeMeta {
    path: PathBuf,
    cluster_id: String,
    state: Mutex<ProducerIdState>,
}

#[derive(Debug)]
struct ProducerIdState {
    next: i64,
    block_end: i64,
    node_id: i32,
}

impl NodeMeta {
    /// Loads `meta/node.json` under `data_dir`, creating it (and a new cluster id) on first start.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<Self, BrokerError> {
        let path = data_dir.join("meta").join("node.json");
        let existing = read_optional(&path).map_err(|e| BrokerError::storage(&path, e))?;
        let meta = match existing {
            Some(bytes) => serde_json::from_slice::<PersistedMeta>(&bytes)
                .map_err(|e| BrokerError::storage(&path, std::io::Error::other(e)))?,
            None => PersistedMeta {
                version: 1,
                cluster_id: new_cluster_id(),
                node_id,
                producer_id_block_end: 0,
            },
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
        let this = Self {
            path,
            cluster_id: meta.cluster_id.clone(),
            state: Mutex::new(ProducerIdState {
                next: meta.producer_id_block_end,
                block_end: meta.producer_id_block_end,
                node_id,
            }),
        };
        // Persist at once so the cluster id is fixed from the first start on.
        this.persist(meta.producer_id_block_end)?;
        Ok(this)
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Hands out a producer id never given before by this data directory.
    pub fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        let mut state = self
            .state
            .lock()
            .expect("producer id lock is never poisoned");
        if state.next >= state.block_end {
            let block_end = state.block_end + PRODUCER_ID_BLOCK;
            self.persist_locked(&state, block_end)?;
            state.block_end = block_end;
        }
        let id = state.next;
        state.next += 1;
        Ok(id)
    }

    /// Whether `producer_id` is one this node handed out (and may have its epoch bumped).
    pub fn issued_producer_id(&self, producer_id: i64) -> bool {
        let state = self
            .state
            .lock()
            .expect("producer id lock is never poisoned");
        (0..state.block_end).contains(&producer_id)
    }

    fn persist(&self, block_end: i64) -> Result<(), BrokerError> {
        let state = self
            .state
            .lock()
            .expect("producer id lock is never poisoned");
        self.persist_locked(&state, block_end)
    }

    fn persist_locked(&self, state: &ProducerIdState, block_end: i64) -> Result<(), BrokerError> {
        let meta = PersistedMeta {
            version: 1,
            cluster_id: self.cluster_id.clone(),
            node_id: state.node_id,
            producer_id_block_end: block_end,
        };
        let bytes = serde_json::to_vec_pretty(&meta).expect("plain struct serializes");
        write_atomic(&self.path, &bytes).map_err(|e| BrokerError::storage(&self.path, e))
    }
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
    fn cluster_id_persists_and_producer_ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeMeta::open(dir.path(), 1).expect("open");
        let a = first.allocate_producer_id().expect("id");
        let b = first.allocate_producer_id().expect("id");
        assert_eq!(b, a + 1);
        assert!(first.issued_producer_id(a));
        assert!(!first.issued_producer_id(1_000_000) && !first.issued_producer_id(-1));
        let cluster = first.cluster_id().to_string();
        drop(first);
        let second = NodeMeta::open(dir.path(), 1).expect("reopen");
        assert_eq!(second.cluster_id(), cluster);
        assert!(second.allocate_producer_id().expect("id") > b);
    }

    #[test]
    fn a_data_dir_of_another_node_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        NodeMeta::open(dir.path(), 1).expect("open");
        assert!(NodeMeta::open(dir.path(), 2).is_err());
    }
}
