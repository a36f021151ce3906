//! The state machine openraft drives: committed commands applied to a [`MetadataState`],
//! snapshots taken, stored in `snapshot` under the raft directory and installed.
//!
//! The state itself lives in memory. What makes it durable is the raft log plus the last
//! snapshot: on start the snapshot is loaded, and openraft re-applies the committed entries
//! after it. The snapshot file is `[meta length u32 LE][meta JSON][snapshot]`, the snapshot in
//! the versioned format of [`strata_meta::snapshot`], replaced atomically.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};
use strata_log::durable_file::{read_optional, write_atomic};
use strata_meta::snapshot::{decode_snapshot, encode_snapshot};
use strata_meta::{CommandOutcome, MetadataState};
use tracing::debug_span;

use crate::{Entry, LogId, MetaResponse, Node, NodeId, StorageError, TypeConfig};

type Meta = SnapshotMeta<NodeId, Node>;

/// The state machine and what raft needs to know about it.
#[derive(Debug, Clone, Default)]
struct Applied {
    state: MetadataState,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, Node>,
}

impl Applied {
    /// Applies one committed entry.
    fn apply(&mut self, entry: Entry) -> MetaResponse {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => Ok(CommandOutcome::Applied),
            EntryPayload::Normal(command) => {
                let _span = debug_span!("apply", index = entry.log_id.index).entered();
                self.state.apply(&command)
            }
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(entry.log_id), membership);
                Ok(CommandOutcome::Applied)
            }
        }
    }

    /// The state encoded as a snapshot named `snapshot_id`.
    fn snapshot(&self, snapshot_id: String) -> io::Result<StoredSnapshot> {
        Ok(StoredSnapshot {
            meta: Meta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data: encode_snapshot(&self.state).map_err(io::Error::other)?,
        })
    }
}

/// A snapshot as stored: its meta and its encoded bytes.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

/// The state machine store. Reads of the metadata go through [`StateReader`]s. The current
/// snapshot is only on disk (`snapshot` in its directory): it is read again in the rare
/// case a follower needs it, rather than kept in memory beside the state.
pub struct StateMachineStore {
    dir: PathBuf,
    applied: Arc<RwLock<Applied>>,
}

/// A read-only view of the applied metadata, for the broker's request handlers.
#[derive(Clone)]
pub struct StateReader {
    applied: Arc<RwLock<Applied>>,
}

impl StateReader {
    /// Runs `read` on the metadata as applied so far.
    pub fn read<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> T {
        read(
            &self
                .applied
                .read()
                .expect("the state lock holder never panics")
                .state,
        )
    }

    /// A snapshot of the state as applied now, in the stored snapshot format (what
    /// [`seed_from_backup`] takes), with the index it was taken at and what `read` answers
    /// of that same state.
    pub fn backup<T>(
        &self,
        read: impl FnOnce(&MetadataState) -> T,
    ) -> io::Result<(Vec<u8>, u64, T)> {
        let applied = self
            .applied
            .read()
            .expect("the state lock holder never panics");
        let index = applied.last_applied.map_or(0, |id| id.index);
        let snapshot = applied.snapshot(format!("backup-{index}"))?;
        let answer = read(&applied.state);
        Ok((encode_stored(&snapshot)?, index, answer))
    }

    /// The index applied now, with what `read` answers of the state at that index: the
    /// point a backup of the log up to it covers.
    pub fn at_applied<T>(&self, read: impl FnOnce(&MetadataState) -> T) -> (u64, T) {
        let applied = self
            .applied
            .read()
            .expect("the state lock holder never panics");
        let index = applied.last_applied.map_or(0, |id| id.index);
        (index, read(&applied.state))
    }

    /// The log id of the last applied command.
    pub fn last_applied(&self) -> Option<LogId> {
        self.applied
            .read()
            .expect("the state lock holder never panics")
            .last_applied
    }
}

impl StateMachineStore {
    /// Opens the state machine in `dir`, starting from the stored snapshot if there is one.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let current = read_optional(&dir.join("snapshot"))?
            .map(|bytes| decode_stored(&bytes))
            .transpose()?;
        let applied = match &current {
            Some(snapshot) => Applied {
                state: decode_snapshot(&snapshot.data).map_err(io::Error::other)?,
                last_applied: snapshot.meta.last_log_id,
                membership: snapshot.meta.last_membership.clone(),
            },
            None => Applied::default(),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            applied: Arc::new(RwLock::new(applied)),
        })
    }

    pub fn reader(&self) -> StateReader {
        StateReader {
            applied: self.applied.clone(),
        }
    }
}

/// A snapshot of the state as it was when the builder was made: openraft builds it while
/// later entries are being applied. It is encoded at once, under the state's read lock,
/// which costs the encoded bytes rather than a copy of the whole state.
pub struct SnapshotBuilder {
    encoded: Option<io::Result<StoredSnapshot>>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshot = self
            .encoded
            .take()
            .unwrap_or_else(|| Err(io::Error::other("this builder already built its snapshot")))
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        store_snapshot(&self.dir, &snapshot)
            .map_err(|e| StorageIOError::write_snapshot(Some(snapshot.meta.signature()), &e))?;
        Ok(to_openraft(snapshot))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, Node>), StorageError> {
        let applied = self
            .applied
            .read()
            .expect("the state lock holder never panics");
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self
            .applied
            .write()
            .expect("the state lock holder never panics");
        Ok(entries
            .into_iter()
            .map(|entry| applied.apply(entry))
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let _span = debug_span!("build_snapshot").entered();
        let applied = self
            .applied
            .read()
            .expect("the state lock holder never panics");
        let snapshot_id = match applied.last_applied {
            Some(id) => format!("{}-{}", id.leader_id.term, id.index),
            None => "empty".to_string(),
        };
        SnapshotBuilder {
            encoded: Some(applied.snapshot(snapshot_id)),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = decode_snapshot(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        store_snapshot(&self.dir, &stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        *self
            .applied
            .write()
            .expect("the state lock holder never panics") = Applied {
            state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = read_optional(&self.dir.join("snapshot"))
            .and_then(|bytes| bytes.map(|b| decode_stored(&b)).transpose())
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(to_openraft))
    }
}

fn to_openraft(snapshot: StoredSnapshot) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: snapshot.meta,
        snapshot: Box::new(Cursor::new(snapshot.data)),
    }
}

fn store_snapshot(dir: &Path, snapshot: &StoredSnapshot) -> io::Result<()> {
    write_atomic(&dir.join("snapshot"), &encode_stored(snapshot)?)
}

fn encode_stored(snapshot: &StoredSnapshot) -> io::Result<Vec<u8>> {
    let meta = serde_json::to_vec(&snapshot.meta)?;
    let meta_len = u32::try_from(meta.len()).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(4 + meta.len() + snapshot.data.len());
    bytes.extend_from_slice(&meta_len.to_le_bytes());
    bytes.extend_from_slice(&meta);
    bytes.extend_from_slice(&snapshot.data);
    Ok(bytes)
}

/// Prepares an empty raft directory `dir` to start from `backup` (made by
/// [`StateReader::backup`]) and the log `deltas` backed up after it
/// ([`crate::LogFrames::to_delta`], in any order, overlapping or older than the snapshot
/// allowed), as a node that applied all of it and purged its log up to there: the state
/// machine starts from the result, the log continues after it, and the vote is the term of
/// its last entry, so the next election moves to a later term. Entries are applied from the
/// snapshot on in index order while they continue it; a delta that would leave a gap is
/// refused. Answers the restored state, or `None` (writing nothing) for a backup taken
/// before the cluster was formed, which holds nothing to restore. Refuses a damaged backup
/// and a directory that already holds raft state.
pub fn seed_from_backup(
    dir: &Path,
    backup: &[u8],
    deltas: &[Vec<u8>],
) -> io::Result<Option<MetadataState>> {
    let snapshot = decode_stored(backup)?;
    let mut applied = Applied {
        state: decode_snapshot(&snapshot.data).map_err(io::Error::other)?,
        last_applied: snapshot.meta.last_log_id,
        membership: snapshot.meta.last_membership.clone(),
    };
    if applied.state.cluster_id().is_none() {
        // Written before the cluster was formed: nothing in it is worth a restore.
        return Ok(None);
    }
    let mut entries = BTreeMap::new();
    for delta in deltas {
        for entry in crate::decode_backup_delta(delta)? {
            entries.insert(entry.log_id.index, entry);
        }
    }
    let from = applied.last_applied.map_or(0, |id| id.index + 1);
    for (index, entry) in entries.range(from..) {
        if applied.last_applied.map_or(0, |id| id.index + 1) != *index {
            return Err(io::Error::other(format!(
                "the backed-up raft log skips from {:?} to {index}",
                applied.last_applied.map(|id| id.index)
            )));
        }
        // A refused command is still applied (refused the same way as when it was first).
        let _ = applied.apply(entry.clone());
    }
    let last = applied
        .last_applied
        .ok_or_else(|| io::Error::other("the backup holds no applied entry"))?;
    let state_dir = dir.join("state");
    let log_dir = dir.join("log");
    if state_dir.join("snapshot").exists() || log_dir.join("log").exists() {
        return Err(io::Error::other(
            "the raft directory already holds state; a backup is only restored into an empty one",
        ));
    }
    std::fs::create_dir_all(&state_dir)?;
    std::fs::create_dir_all(&log_dir)?;
    store_snapshot(
        &state_dir,
        &applied.snapshot(format!("restored-{}", last.index))?,
    )?;
    write_atomic(&log_dir.join("purged.json"), &serde_json::to_vec(&last)?)?;
    let vote = openraft::Vote::new_committed(last.leader_id.term, last.leader_id.node_id);
    write_atomic(&log_dir.join("vote.json"), &serde_json::to_vec(&vote)?)?;
    Ok(Some(applied.state))
}

fn decode_stored(bytes: &[u8]) -> io::Result<StoredSnapshot> {
    let corrupt = || io::Error::other("the stored metadata snapshot is corrupt");
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = u32::from_le_bytes(*len) as usize;
    let (meta, data) = (rest.get(..len).ok_or_else(corrupt)?, &rest[len..]);
    Ok(StoredSnapshot {
        meta: serde_json::from_slice(meta).map_err(io::Error::other)?,
        data: data.to_vec(),
    })
}
