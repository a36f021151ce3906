//! The partitions this broker hosts and where their data lives on disk.
//!
//! The metadata quorum decides which topics exist and which broker hosts and leads each
//! partition; [`crate::reconciler`] turns every change into a [`TopicRegistry::reconcile`]
//! call with what this broker should host. Each partition's data is in
//! `log/<topic name>.<topic id>/<partition>/`: the id in the directory name keeps a re-created
//! topic of the same name from inheriting old data.
//!
//! Data is deleted only when the metadata says so: a topic (or partition) this broker hosted
//! and the metadata no longer lists. A directory the metadata has never heard of, found at
//! startup, is renamed `<dir>.stray` instead: the metadata may have been lost or restored
//! from elsewhere, and whether that data matters is the operator's call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing::{error, info, warn};
use uuid::Uuid;

use crate::config::TopicConfig;
use crate::error::BrokerError;
use crate::partition::{Partition, RemoteLog};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostedPartition {
    pub index: i32,
    /// `Some(epoch)` when this broker leads the partition.
    pub leader_epoch: Option<i32>,
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
    topics: RwLock<Topics>,
    /// Whether applied metadata survives losing this disk (a replicated quorum); if not, a
    /// metadata backup decides when tiered data may leave the disk.
    metadata_replicated: bool,
}

impl TopicRegistry {
    /// A registry over `<data_dir>/log`, hosting nothing until the first reconcile.
    pub fn open(data_dir: &Path, metadata_replicated: bool) -> Result<Self, BrokerError> {
        let log_dir = data_dir.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|e| BrokerError::storage(&log_dir, e))?;
        Ok(Self {
            log_dir,
            topics: RwLock::new(Topics::default()),
            metadata_replicated,
        })
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        self.topics
            .read()
            .expect("topic map lock is never poisoned")
    }

    /// Brings the hosted partitions in line with `desired`: opens new ones (recovering their
    /// logs), updates leadership and configs, and deletes what is no longer placed here.
    /// A partition that fails to open is left out (and logged); the next call retries it.
    /// Blocking: call off the async runtime.
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
        *self
            .topics
            .write()
            .expect("topic map lock is never poisoned") = next;
        for topic in gone {
            for partition in topic.partitions.values() {
                partition.set_leadership(None);
            }
            self.remove_dir(&self.topic_dir(&topic.name, topic.id));
            info!(topic = %topic.name, topic_id = %topic.id, "topic deleted");
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
                    match Partition::open(name.clone(), wanted.index, &path, &hosted.config) {
                        Ok(partition) => Arc::new(partition),
                        Err(e) => {
                            error!(topic = %name, partition = wanted.index, error = %e, "could not open a partition placed on this broker");
                            continue;
                        }
                    }
                }
            };
            // Before leadership: a log that lost its disk must skip past the tiered offsets
            // before it takes an append.
            if let Err(e) = partition.set_remote(wanted.remote, self.metadata_replicated, now_ms())
            {
                error!(topic = %name, partition = wanted.index, error = %e, "could not align the local log with the tiered log");
                continue;
            }
            partition.set_leadership(wanted.leader_epoch);
            partitions.insert(wanted.index, partition);
        }
        if let Some(topic) = existing {
            for (index, partition) in &topic.partitions {
                if !partitions.contains_key(index) {
                    partition.set_leadership(None);
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

    fn hosted(id: Uuid, name: &str, partitions: &[(i32, Option<i32>)]) -> HostedTopic {
        HostedTopic {
            id,
            name: name.into(),
            config: TopicConfig::builtin(),
            partitions: partitions
                .iter()
                .map(|&(index, leader_epoch)| HostedPartition {
                    index,
                    leader_epoch,
                    remote: RemoteLog::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn reconcile_opens_leads_and_deletes_what_the_metadata_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = TopicRegistry::open(dir.path(), true).expect("open");
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

    #[test]
    fn unknown_topic_directories_are_set_aside_not_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = TopicRegistry::open(dir.path(), true).expect("open");
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
                format!("lost.{}.stray", unknown.simple()),
                "not-a-topic.stray".to_string(),
            ]
        );
    }
}
