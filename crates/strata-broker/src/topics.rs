//! The partitions this broker hosts and where their data lives on disk.
//!
//! The metadata quorum decides which topics exist and which broker hosts and leads each
//! partition; [`crate::reconciler`] turns every change into a [`TopicRegistry::reconcile`]
//! call with what this broker should host. Each partition's data is in
//! `log/<topic name>.<topic id>/<partition>/`: the id in the directory name keeps a re-created
//! topic of the same name from inheriting old data.
//!
//! Data is deleted only when the metadata says so: a topic (or partition) this broker hosted
//! and the metadata no longer lists. A partition that fails to open, or to take what the
//! metadata says of it, stays placed here (offline, answering KAFKA_STORAGE_ERROR, reported
//! on `/readyz`) and is retried; a failure never reads as "no longer placed here". A directory the metadata has never heard of, found at
//! startup, is renamed `<dir>.stray` instead: the metadata may have been lost or restored
//! from elsewhere, and whether that data matters is the operator's call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing::{error, info, warn};
use uuid::Uuid;

use strata_log::SegmentFiles;

use crate::config::TopicConfig;
use crate::error::BrokerError;
use crate::partition::{Partition, RemoteLog, Role};

/// A topic as this broker hosts it: the partitions placed here.
#[derive(Debug)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    /// The partitions this broker hosts, by index.
    pub partitions: BTreeMap<i32, Arc<Partition>>,
    pub config: TopicConfig,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions.get(&index)
    }
}

fn now_ms() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_ms()
}

/// What the metadata says this broker hosts of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct HostedTopic {
    pub id: Uuid,
    pub name: String,
    pub config: TopicConfig,
    pub partitions: Vec<HostedPartition>,
}

/// One partition placed on this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedPartition {
    pub index: i32,
    /// Whether this broker leads it, follows it, or neither.
    pub role: Role,
    /// What the manifest says of the partition.
    pub remote: RemoteLog,
}

#[derive(Debug, Default)]
struct Topics {
    by_name: HashMap<Arc<str>, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// All topics this broker hosts, by name and by id.
#[derive(Debug)]
pub struct TopicRegistry {
    log_dir: PathBuf,
    /// Descriptors of sealed segments, shared by every partition.
    files: Arc<SegmentFiles>,
    topics: RwLock<Topics>,
    /// Whether applied metadata survives losing this disk (a replicated quorum); if not, a
    /// metadata backup decides when tiered data may leave the disk.
    metadata_replicated: bool,
    /// This broker's node id, which its partitions' leaders know it as.
    node_id: i32,
    /// Partitions placed here that could not be opened, with why; retried on every pass.
    unopened: std::sync::Mutex<BTreeMap<(Arc<str>, i32), String>>,
}

impl TopicRegistry {
    /// A registry over `<data_dir>/log`, hosting nothing until the first reconcile.
    pub fn open(
        data_dir: &Path,
        node_id: i32,
        metadata_replicated: bool,
        files: Arc<SegmentFiles>,
    ) -> Result<Self, BrokerError> {
        let log_dir = data_dir.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|e| BrokerError::storage(&log_dir, e))?;
        Ok(Self {
            log_dir,
            files,
            topics: RwLock::new(Topics::default()),
            metadata_replicated,
            node_id,
            unopened: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The directory every hosted partition's log is under.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn topic_dir(&self, name: &str, id: Uuid) -> PathBuf {
        self.log_dir.join(format!("{name}.{}", id.simple()))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().by_name.get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read().by_id.get(&id).cloned()
    }

    /// Every hosted topic, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// How many sealed segments' descriptors are open now.
    pub fn open_segment_files(&self) -> usize {
        self.files.len()
    }

    /// Rolled segments waiting to be sealed.
    pub fn segment_seals_queued(&self) -> usize {
        self.files.seals_queued()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        self.topics
            .read()
            .expect("topic map lock is never poisoned")
    }

    fn unopened(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Arc<str>, i32), String>> {
        self.unopened
            .lock()
            .expect("no code panics holding the unopened partitions")
    }

    /// Every partition placed here that cannot serve, and why, for `/readyz`.
    pub fn offline_partitions(&self) -> Vec<String> {
        let mut offline: Vec<String> = self
            .unopened()
            .iter()
            .map(|((topic, index), why)| {
                format!("partition {topic}-{index} could not be opened: {why}")
            })
            .collect();
        for topic in self.all() {
            for partition in topic.partitions.values() {
                if let Some(why) = partition.offline() {
                    offline.push(format!(
                        "partition {}-{} is offline: {why}",
                        topic.name, partition.index
                    ));
                }
            }
        }
        offline
    }

    /// Whether `topic_id`'s partition `index` is placed here but cannot serve.
    pub fn is_offline(&self, topic_id: Uuid, index: i32) -> bool {
        match self.get_by_id(topic_id) {
            Some(topic) => match topic.partition(index) {
                Some(partition) => partition.offline().is_some(),
                None => self.unopened().contains_key(&(topic.name.clone(), index)),
            },
            None => false,
        }
    }

    /// Whether a pass should run again although the metadata did not change: something
    /// placed here failed to open or to take the metadata.
    pub fn needs_retry(&self) -> bool {
        !self.unopened().is_empty()
            || self.all().iter().any(|t| {
                t.partitions.values().any(|p| {
                    matches!(
                        p.offline(),
                        Some(
                            crate::partition::Offline::Reconcile(_)
                                | crate::partition::Offline::RebuildingProducers
                        )
                    )
                })
            })
    }

    /// Brings the hosted partitions in line with `desired`: opens new ones (recovering their
    /// logs), updates leadership and configs, and deletes what is no longer placed here.
    /// A partition that fails to open or to take the metadata is kept (offline) and retried
    /// by the next call. Blocking: call off the async runtime.
    pub fn reconcile(&self, desired: &[HostedTopic]) {
        let current: HashMap<Uuid, Arc<Topic>> = self.read().by_id.clone();
        let mut next = Topics::default();
        for hosted in desired {
            let existing = current.get(&hosted.id);
            let topic = Arc::new(self.reconcile_topic(hosted, existing));
            next.by_name.insert(topic.name.clone(), topic.clone());
            next.by_id.insert(topic.id, topic);
        }
        let gone: Vec<Arc<Topic>> = current
            .values()
            .filter(|t| !next.by_id.contains_key(&t.id))
            .cloned()
            .collect();
        self.unopened()
            .retain(|(topic, _), _| next.by_name.contains_key(topic));
        *self
            .topics
            .write()
            .expect("topic map lock is never poisoned") = next;
        for topic in gone {
            for partition in topic.partitions.values() {
                partition.set_role(&Role::Inactive, now_ms());
            }
            self.remove_dir(&self.topic_dir(&topic.name, topic.id));
            info!(topic = %topic.name, topic_id = %topic.id, "topic deleted or moved off this broker; its local data is removed");
        }
    }

    fn reconcile_topic(&self, hosted: &HostedTopic, existing: Option<&Arc<Topic>>) -> Topic {
        let name: Arc<str> = match existing {
            Some(topic) => topic.name.clone(),
            None => hosted.name.as_str().into(),
        };
        let dir = self.topic_dir(&name, hosted.id);
        let config_changed = existing.is_some_and(|t| t.config != hosted.config);
        let mut partitions = BTreeMap::new();
        let mut unopened = self.unopened();
        unopened.retain(|(topic, index), _| {
            *topic != name || hosted.partitions.iter().any(|p| p.index == *index)
        });
        for wanted in &hosted.partitions {
            let partition = match existing.and_then(|t| t.partition(wanted.index)) {
                Some(partition) => {
                    if config_changed {
                        partition.set_config(&hosted.config);
                    }
                    partition.clone()
                }
                None => {
                    let path = dir.join(wanted.index.to_string());
                    let opened = Partition::open(
                        name.clone(),
                        wanted.index,
                        &path,
                        &hosted.config,
                        self.files.clone(),
                        self.node_id,
                    );
                    match opened {
                        Ok(partition) => Arc::new(partition),
                        Err(e) => {
                            error!(topic = %name, partition = wanted.index, error = %e, "could not open a partition placed on this broker; retrying");
                            unopened.insert((name.clone(), wanted.index), e.to_string());
                            continue;
                        }
                    }
                }
            };
            unopened.remove(&(name.clone(), wanted.index));
            // Before leadership: a log that lost its disk must skip past the tiered offsets
            // before it takes an append; until it has, it is offline.
            let aligned = partition.set_remote(wanted.remote, self.metadata_replicated, now_ms());
            if let Err(e) = &aligned {
                error!(topic = %name, partition = wanted.index, error = %e, "could not align the local log with the tiered log; the partition is offline until a retry succeeds");
            }
            partition.set_reconcile_failure(
                aligned
                    .err()
                    .map(|e| format!("aligning with the tiered log: {e}")),
            );
            partition.set_role(&wanted.role, now_ms());
            partitions.insert(wanted.index, partition);
        }
        drop(unopened);
        if let Some(topic) = existing {
            for (index, partition) in &topic.partitions {
                if !hosted.partitions.iter().any(|p| p.index == *index) {
                    partition.set_role(&Role::Inactive, now_ms());
                    self.remove_dir(&dir.join(index.to_string()));
                }
            }
        }
        Topic {
            name,
            id: hosted.id,
            partitions,
            config: hosted.config.clone(),
        }
    }

    /// Renames every topic directory that `known` (the ids the metadata lists) does not
    /// account for to `<dir>.stray`, so it is neither served nor mistaken for a new topic's.
    pub fn set_aside_strays(&self, known: &HashSet<Uuid>) -> Result<(), BrokerError> {
        let entries = std::fs::read_dir(&self.log_dir)
            .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
            .map_err(|e| BrokerError::storage(&self.log_dir, e))?;
        for entry in entries {
            // Topics are directories; files here are the broker's own (its run record).
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.ends_with(".stray") {
                continue;
            }
            let id = name
                .rsplit_once('.')
                .and_then(|(_, id)| Uuid::try_parse(id).ok());
            if id.is_some_and(|id| known.contains(&id)) {
                continue;
            }
            let stray = self.log_dir.join(format!("{name}.stray"));
            warn!(dir = %path.display(), renamed = %stray.display(), "the metadata does not know this topic directory; setting it aside");
            std::fs::rename(&path, &stray).map_err(|e| BrokerError::storage(&path, e))?;
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) {
        self.files.forget_under(dir);
        if let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(dir = %dir.display(), error = %e, "could not remove data the metadata no longer places here");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &Path) -> TopicRegistry {
        TopicRegistry::open(dir, 1, true, crate::partition::test_files()).expect("open")
    }

    fn hosted(id: Uuid, name: &str, partitions: &[(i32, Option<i32>)]) -> HostedTopic {
        HostedTopic {
            id,
            name: name.into(),
            config: TopicConfig::builtin(),
            partitions: partitions
                .iter()
                .map(|&(index, leader_epoch)| HostedPartition {
                    index,
                    role: leader_epoch.map_or(Role::Inactive, |epoch| Role::alone(1, epoch)),
                    remote: RemoteLog::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn reconcile_opens_leads_and_deletes_what_the_metadata_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(dir.path());
        let id = Uuid::new_v4();
        registry.reconcile(&[hosted(id, "orders", &[(0, Some(3)), (2, None)])]);
        let topic = registry.get("orders").expect("hosted");
        assert_eq!(topic.partitions.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(topic.partition(0).expect("p0").leader_epoch(), Some(3));
        assert_eq!(topic.partition(2).expect("p2").leader_epoch(), None);
        assert!(registry.get_by_id(id).is_some());
        let topic_dir = dir.path().join(format!("log/orders.{}", id.simple()));
        assert!(topic_dir.join("0").is_dir() && topic_dir.join("2").is_dir());

        // The same partition object survives a leadership change.
        let p0 = topic.partition(0).expect("p0").clone();
        registry.reconcile(&[hosted(id, "orders", &[(0, None)])]);
        assert_eq!(p0.leader_epoch(), None, "leadership taken away");
        assert!(Arc::ptr_eq(
            &p0,
            registry
                .get("orders")
                .expect("hosted")
                .partition(0)
                .expect("p0")
        ));
        assert!(
            !topic_dir.join("2").exists(),
            "a partition moved away is deleted"
        );

        registry.reconcile(&[]);
        assert!(registry.get("orders").is_none());
        assert!(!topic_dir.exists(), "a deleted topic's data is removed");
    }

    fn append_and_roll(partition: &Partition, batches: usize) {
        use strata_log::test_util::{NOW, batch, limits, record};
        for _ in 0..batches {
            let bytes = batch(&[record("v")], strata_log::Compression::None, NOW);
            let valid = strata_log::validate_produce_batch(bytes, &limits()).expect("valid");
            partition.append(&valid, NOW, false).expect("append");
            partition.roll(NOW).expect("roll");
        }
        partition.flush().expect("every rolled segment is sealed");
    }

    #[test]
    fn a_partition_that_cannot_take_the_metadata_stays_offline_and_is_never_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(dir.path());
        let id = Uuid::new_v4();
        registry.reconcile(&[hosted(id, "orders", &[(0, Some(1))])]);
        let partition = registry
            .get("orders")
            .and_then(|t| t.partition(0).cloned())
            .expect("hosted");
        append_and_roll(&partition, 3);
        // DeleteRecords moved the log start to 2, but the oldest segment's index cannot be
        // unlinked (a directory stands where it was).
        let partition_dir = dir.path().join(format!("log/orders.{}/0", id.simple()));
        let index = partition_dir
            .join(strata_log::segment::log_file_name(0))
            .with_extension("index");
        std::fs::remove_file(&index).expect("rm");
        std::fs::create_dir(&index).expect("mkdir");
        std::fs::write(index.join("pin"), b"x").expect("pin");
        let mut moved = hosted(id, "orders", &[(0, Some(1))]);
        moved.partitions[0].remote = RemoteLog {
            log_start_offset: 2,
            tiered: None,
        };
        registry.reconcile(std::slice::from_ref(&moved));
        let still = registry
            .get("orders")
            .and_then(|t| t.partition(0).cloned())
            .expect("still hosted");
        assert!(Arc::ptr_eq(&still, &partition), "the same partition, kept");
        assert!(
            partition_dir
                .join(strata_log::segment::log_file_name(1))
                .exists(),
            "nothing deleted"
        );
        assert!(matches!(
            partition.offline(),
            Some(crate::partition::Offline::Reconcile(_))
        ));
        assert!(registry.needs_retry());
        assert_eq!(registry.offline_partitions().len(), 1);
        assert!(registry.is_offline(id, 0));
        assert_eq!(
            partition
                .read(2, crate::partition::ReadBound::HighWatermark, 1 << 20, true)
                .expect_err("offline")
                .response_error(),
            kafka_protocol::error::ResponseError::KafkaStorageError
        );

        // The disk recovers: the retry finishes the job and the partition serves again.
        std::fs::remove_dir_all(&index).expect("unpin");
        registry.reconcile(std::slice::from_ref(&moved));
        assert_eq!(partition.offline(), None);
        assert!(!registry.needs_retry());
        assert_eq!(partition.offsets().log_start_offset, 2);
        assert!(registry.offline_partitions().is_empty());
    }

    #[test]
    fn a_partition_that_fails_to_open_is_reported_and_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(dir.path());
        let id = Uuid::new_v4();
        let topic_dir = dir.path().join(format!("log/orders.{}", id.simple()));
        std::fs::create_dir_all(&topic_dir).expect("mkdir");
        // A file where the partition's directory belongs: it cannot open.
        std::fs::write(topic_dir.join("0"), b"in the way").expect("write");
        let desired = [hosted(id, "orders", &[(0, Some(1))])];
        registry.reconcile(&desired);
        assert!(
            registry
                .get("orders")
                .expect("topic")
                .partition(0)
                .is_none()
        );
        assert!(registry.is_offline(id, 0));
        assert!(registry.needs_retry());
        let offline = registry.offline_partitions();
        assert!(
            offline[0].contains("orders-0 could not be opened"),
            "{offline:?}"
        );
        assert!(
            topic_dir.join("0").is_file(),
            "what was there is left alone"
        );

        std::fs::remove_file(topic_dir.join("0")).expect("rm");
        registry.reconcile(&desired);
        assert!(
            registry
                .get("orders")
                .expect("topic")
                .partition(0)
                .is_some()
        );
        assert!(!registry.needs_retry());
        assert!(registry.offline_partitions().is_empty());
    }

    #[test]
    fn unknown_topic_directories_are_set_aside_not_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(dir.path());
        let kept = Uuid::new_v4();
        let unknown = Uuid::new_v4();
        let log = dir.path().join("log");
        for name in [
            format!("kept.{}", kept.simple()),
            format!("lost.{}", unknown.simple()),
            "not-a-topic".to_string(),
        ] {
            std::fs::create_dir_all(log.join(name).join("0")).expect("mkdir");
        }
        std::fs::write(log.join("last-run.json"), b"{}").expect("a file of the broker's own");
        registry
            .set_aside_strays(&HashSet::from([kept]))
            .expect("set aside");
        let mut names: Vec<String> = std::fs::read_dir(&log)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                format!("kept.{}", kept.simple()),
                "last-run.json".to_string(),
                format!("lost.{}.stray", unknown.simple()),
                "not-a-topic.stray".to_string(),
            ]
        );
    }
}
