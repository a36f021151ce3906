//! The raft log and vote on the local disk.
//!
//! Layout under the raft directory:
//! - `log`: entries in index order, each framed as `[length u32 BE][crc32c u32 BE][entry as
//!   JSON]`. Appends are one write and one fsync; a truncate cuts the file at the first
//!   dropped entry's frame.
//! - `vote.json` and `purged.json`: replaced atomically (temporary file, fsync, rename).
//!
//! A purge records the purge point first and then rewrites `log` without the purged entries,
//! so a crash in between leaves entries that opening skips. Opening reads frames until the
//! first torn or corrupt one and cuts the file there: a frame is only ever torn by a crash in
//! the middle of an append that was never acknowledged.
//!
//! The metadata log is small (snapshots purge it, by entry count and by size: see
//! `controller::snapshot_by_size`), so its entries are also kept in memory.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError, Vote};
use strata_log::durable_file::{read_optional, write_atomic};
use tracing::warn;

use crate::{Entry, LogId, NodeId, StorageError, TypeConfig};

const FRAME_HEADER_LEN: usize = 8;
/// No metadata command comes near this; a larger length is corruption.
const MAX_ENTRY_LEN: usize = 64 << 20;

/// The raft log store. Clones share one log (openraft reads through a clone while it writes).
#[derive(Clone)]
pub struct LogStore {
    log: Arc<Mutex<Log>>,
}

struct Log {
    dir: PathBuf,
    file: File,
    /// Entries after the purge point, with the file offset of each one's frame.
    entries: BTreeMap<u64, (Entry, u64)>,
    file_len: u64,
    last_purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let vote = read_json(&dir.join("vote.json"))?;
        let last_purged: Option<LogId> = read_json(&dir.join("purged.json"))?;
        let path = dir.join("log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let bytes = std::fs::read(&path)?;
        let (frames, valid_len) = decode_frames(&bytes);
        if valid_len < bytes.len() as u64 {
            warn!(
                path = %path.display(),
                valid_len,
                file_len = bytes.len(),
                "cutting a torn or corrupt tail off the raft log"
            );
            file.set_len(valid_len)?;
            file.sync_data()?;
        }
        let purged_index = last_purged.map(|id: LogId| id.index);
        let entries = frames
            .into_iter()
            .filter(|(entry, _)| Some(entry.log_id.index) > purged_index)
            .map(|(entry, offset)| (entry.log_id.index, (entry, offset)))
            .collect();
        Ok(Self {
            log: Arc::new(Mutex::new(Log {
                dir: dir.to_path_buf(),
                file,
                entries,
                file_len: valid_len,
                last_purged,
                vote,
            })),
        })
    }

    /// Bytes of the log file holding the entries after `index` (all of them for `None`).
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        let log = self.lock();
        let from = index.map_or(0, |i| i.saturating_add(1));
        log.entries
            .range(from..)
            .next()
            .map_or(0, |(_, (_, offset))| log.file_len - offset)
    }

    /// The stored frames of the entries `after + 1..=upto`, byte for byte, and whether any of them changes more than
    /// brokers' liveness (a heartbeat or a blank entry restores nothing worth keeping).
    /// `None` once a purge took any of them: the caller backs up a snapshot instead.
    pub fn frames(&self, after: u64, upto: u64) -> io::Result<Option<LogFrames>> {
        if after >= upto {
            return Ok(Some(LogFrames::default()));
        }
        let log = self.lock();
        let Some((&first, &(_, start))) = log.entries.range(after + 1..=upto).next() else {
            return Ok(None);
        };
        if first != after + 1 {
            return Ok(None);
        }
        let end = log
            .entries
            .range(upto.saturating_add(1)..)
            .next()
            .map_or(log.file_len, |(_, (_, offset))| *offset);
        let substantive =
            log.entries
                .range(first..=upto)
                .any(|(_, (entry, _))| match &entry.payload {
                    openraft::EntryPayload::Blank => false,
                    openraft::EntryPayload::Normal(command) => {
                        !matches!(command, strata_meta::MetaCommand::BrokerHeartbeat(_))
                    }
                    openraft::EntryPayload::Membership(_) => true,
                });
        let mut bytes = vec![0; usize::try_from(end - start).map_err(io::Error::other)?];
        log.file.read_exact_at(&mut bytes, start)?;
        Ok(Some(LogFrames { bytes, substantive }))
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log
            .lock()
            .expect("the raft log lock holder never panics")
    }
}

/// The most bytes a backed-up delta decompresses to: far more than the log holds between
/// two backups (it is purged past about 8 MiB), so only a damaged or foreign object hits it.
const MAX_DELTA_BYTES: u64 = 256 << 20;

/// Entries as the log stores them, for a backup (see [`LogStore::frames`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogFrames {
    pub bytes: Vec<u8>,
    /// Whether any entry changes more than brokers' liveness.
    pub substantive: bool,
}

impl LogFrames {
    /// The frames as a backup stores them: zstd-compressed (the entries are JSON, which
    /// shrinks several times over).
    pub fn to_delta(&self) -> io::Result<Vec<u8>> {
        zstd::encode_all(&self.bytes[..], 1)
    }
}

/// The entries of a backed-up delta (see [`LogFrames::to_delta`]), refusing a damaged or
/// torn one (a backup object is written whole, so unlike the log's own tail it is never
/// legitimately cut short) and one that decompresses past [`MAX_DELTA_BYTES`].
pub fn decode_backup_delta(delta: &[u8]) -> io::Result<Vec<Entry>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    zstd::Decoder::new(delta)?
        .take(MAX_DELTA_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DELTA_BYTES {
        return Err(io::Error::other(format!(
            "a backed-up raft log delta decompresses past {MAX_DELTA_BYTES} bytes"
        )));
    }
    let (frames, valid_len) = decode_frames(&bytes);
    if valid_len != bytes.len() as u64 {
        return Err(io::Error::other(format!(
            "a backed-up raft log delta is damaged at byte {valid_len}"
        )));
    }
    Ok(frames.into_iter().map(|(entry, _)| entry).collect())
}

impl Log {
    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        // An index appended again replaces that entry and everything after it.
        self.truncate_from(first.log_id.index)?;
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in &entries {
            offsets.push(self.file_len + buf.len() as u64);
            encode_frame(entry, &mut buf)?;
        }
        let written = self
            .file
            .write_all_at(&buf, self.file_len)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut what may have been written, so the file ends at the last whole entry.
            let _ = self.file.set_len(self.file_len);
            return Err(e);
        }
        self.file_len += buf.len() as u64;
        for (entry, offset) in entries.into_iter().zip(offsets) {
            self.entries.insert(entry.log_id.index, (entry, offset));
        }
        Ok(())
    }

    /// Drops the entries from `index` on, from memory and from the file.
    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some(&(_, offset)) = self.entries.range(index..).next().map(|(_, e)| e) else {
            return Ok(());
        };
        self.file.set_len(offset)?;
        self.file.sync_data()?;
        self.file_len = offset;
        self.entries.split_off(&index);
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        if self.last_purged >= Some(upto) {
            return Ok(());
        }
        write_json(&self.dir.join("purged.json"), &upto)?;
        self.last_purged = Some(upto);
        self.entries = self.entries.split_off(&(upto.index + 1));
        self.rewrite()
    }

    /// Rewrites the log file with just the entries in memory.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        for (entry, offset) in self.entries.values_mut() {
            *offset = buf.len() as u64;
            encode_frame(entry, &mut buf)?;
        }
        let path = self.dir.join("log");
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().read(true).write(true).open(&path)?;
        self.file_len = buf.len() as u64;
        Ok(())
    }

    fn state(&self) -> LogState<TypeConfig> {
        let last = self.entries.values().next_back().map(|(e, _)| e.log_id);
        LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: last.or(self.last_purged),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, (entry, _))| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(self.lock().state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut log = self.lock();
        write_json(&log.dir.join("vote.json"), vote).map_err(|e| StorageIOError::write_vote(&e))?;
        log.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let result = self.lock().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(e));
                Err(error.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock()
            .truncate_from(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock()
            .purge(log_id)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

fn encode_frame(entry: &Entry, buf: &mut Vec<u8>) -> io::Result<()> {
    let payload = serde_json::to_vec(entry)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= MAX_ENTRY_LEN)
        .ok_or_else(|| io::Error::other("raft log entry too large"))?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    buf.extend_from_slice(&payload);
    Ok(())
}

/// Every whole, intact frame with its offset, and the length they span.
fn decode_frames(bytes: &[u8]) -> (Vec<(Entry, u64)>, u64) {
    let mut frames = Vec::new();
    let mut offset = 0usize;
    while let Some(header) = bytes
        .get(offset..)
        .and_then(|rest| rest.first_chunk::<FRAME_HEADER_LEN>())
    {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let start = offset + FRAME_HEADER_LEN;
        let Some(payload) = (len <= MAX_ENTRY_LEN)
            .then(|| bytes.get(start..start + len))
            .flatten()
        else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(payload) else {
            break;
        };
        frames.push((entry, offset as u64));
        offset = start + len;
    }
    (frames, offset as u64)
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_atomic(path, &serde_json::to_vec(value)?)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    read_optional(path)?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(io::Error::other))
        .transpose()
}
