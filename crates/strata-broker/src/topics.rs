//! The topics this broker hosts and where their data lives on disk.
//!
//! Layout under the data directory:
//! - `meta/topics/<topic id>.json`: a topic's name, id, partition count and config overrides.
//!   Writing it (atomically) is the commit point of a create; removing it is the commit point
//!   of a delete.
//! - `log/<topic name>.<topic id>/<partition>/`: each partition's segments. The id in the
//!   directory name keeps a re-created topic of the same name from inheriting old data.
//!
//! On start, log directories without a metadata file (a delete or create cut short by a crash)
//! are removed. The control plane will move topic metadata into raft; the log layout stays.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::TopicConfig;
use crate::error::BrokerError;
use crate::partition::Partition;
use strata_log::durable_file::write_atomic;
pub use strata_meta::names::{MAX_TOPIC_NAME_LEN, validate_topic_name};
pub use strata_meta::topic_config::validate_overrides;

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    /// The settings the topic set itself; everything else comes from broker defaults.
    pub overrides: BTreeMap<String, String>,
    pub config: TopicConfig,
}

/// What a topic create asks for, already defaulted.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub overrides: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedTopic {
    version: u32,
    name: String,
    id: Uuid,
    partitions: i32,
    overrides: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Topics {
    by_name: HashMap<Arc<str>, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// All topics of this broker, by name and by id.
#[derive(Debug)]
pub struct TopicRegistry {
    meta_dir: PathBuf,
    log_dir: PathBuf,
    broker_defaults: TopicConfig,
    topics: RwLock<Topics>,
    /// Serialises creates and deletes so two creates of one name cannot both commit.
    admin: std::sync::Mutex<()>,
}

impl TopicRegistry {
    /// Loads every topic under `data_dir`, recovering their logs.
    pub fn open(data_dir: &Path, broker_defaults: TopicConfig) -> Result<Self, BrokerError> {
        let meta_dir = data_dir.join("meta").join("topics");
        let log_dir = data_dir.join("log");
        for dir in [&meta_dir, &log_dir] {
            std::fs::create_dir_all(dir).map_err(|e| BrokerError::storage(dir, e))?;
        }
        let registry = Self {
            meta_dir,
            log_dir,
            broker_defaults,
            topics: RwLock::new(Topics::default()),
            admin: std::sync::Mutex::new(()),
        };
        let mut live_dirs = Vec::new();
        for entry in read_dir(&registry.meta_dir)? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| BrokerError::storage(&path, e))?;
            let persisted: PersistedTopic = serde_json::from_slice(&bytes)
                .map_err(|e| BrokerError::storage(&path, std::io::Error::other(e)))?;
            let topic = registry.open_topic(
                persisted.name,
                persisted.id,
                persisted.partitions,
                persisted.overrides,
            )?;
            live_dirs.push(registry.topic_dir(&topic.name, topic.id));
            registry.insert(topic);
        }
        registry.remove_orphan_log_dirs(&live_dirs)?;
        Ok(registry)
    }

    fn topic_dir(&self, name: &str, id: Uuid) -> PathBuf {
        self.log_dir.join(format!("{name}.{}", id.simple()))
    }

    fn meta_path(&self, id: Uuid) -> PathBuf {
        self.meta_dir.join(format!("{}.json", id.simple()))
    }

    fn open_topic(
        &self,
        name: String,
        id: Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Topic, BrokerError> {
        let config = TopicConfig::resolve(&self.broker_defaults, &overrides);
        let name: Arc<str> = name.into();
        let dir = self.topic_dir(&name, id);
        let partitions = (0..partitions)
            .map(|index| {
                Partition::open(name.clone(), index, &dir.join(index.to_string()), &config)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topic {
            name,
            id,
            partitions,
            overrides,
            config,
        })
    }

    fn insert(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        let mut topics = self
            .topics
            .write()
            .expect("topic map lock is never poisoned");
        topics.by_name.insert(topic.name.clone(), topic.clone());
        topics.by_id.insert(topic.id, topic.clone());
        topic
    }

    fn remove_orphan_log_dirs(&self, live: &[PathBuf]) -> Result<(), BrokerError> {
        for entry in read_dir(&self.log_dir)? {
            let path = entry.path();
            if !live.contains(&path) {
                warn!(dir = %path.display(), "removing log directory of a topic that no longer exists");
                std::fs::remove_dir_all(&path).map_err(|e| BrokerError::storage(&path, e))?;
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .expect("topic map lock is never poisoned")
            .by_name
            .get(name)
            .cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .expect("topic map lock is never poisoned")
            .by_id
            .get(&id)
            .cloned()
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self
            .topics
            .read()
            .expect("topic map lock is never poisoned")
            .by_name
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks a create request without creating anything.
    pub fn check_new(&self, new: &NewTopic) -> Result<BTreeMap<String, String>, BrokerError> {
        validate_topic_name(&new.name).map_err(|reason| BrokerError::InvalidTopic {
            name: new.name.clone(),
            reason,
        })?;
        if new.partitions < 1 {
            return Err(BrokerError::InvalidPartitions {
                partitions: new.partitions,
            });
        }
        if self.get(&new.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists {
                name: new.name.clone(),
            });
        }
        Ok(validate_overrides(&new.overrides)?)
    }

    /// Creates a topic: its partitions' directories first, then the metadata file that makes
    /// it exist.
    pub fn create(&self, new: NewTopic) -> Result<Arc<Topic>, BrokerError> {
        let _admin = self.admin.lock().expect("admin lock is never poisoned");
        let overrides = self.check_new(&new)?;
        let id = Uuid::new_v4();
        let topic = self.open_topic(new.name, id, new.partitions, overrides)?;
        let persisted = PersistedTopic {
            version: 1,
            name: topic.name.to_string(),
            id,
            partitions: new.partitions,
            overrides: topic.overrides.clone(),
        };
        let path = self.meta_path(id);
        let bytes = serde_json::to_vec_pretty(&persisted).expect("plain struct serializes");
        write_atomic(&path, &bytes).map_err(|e| BrokerError::storage(&path, e))?;
        info!(topic = %topic.name, topic_id = %id, partitions = new.partitions, "topic created");
        Ok(self.insert(topic))
    }

    /// Deletes a topic: the metadata file goes first (the commit point), then its data.
    pub fn delete(&self, topic: &Topic) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().expect("admin lock is never poisoned");
        let path = self.meta_path(topic.id);
        std::fs::remove_file(&path).map_err(|e| BrokerError::storage(&path, e))?;
        {
            let mut topics = self
                .topics
                .write()
                .expect("topic map lock is never poisoned");
            topics.by_name.remove(&topic.name);
            topics.by_id.remove(&topic.id);
        }
        let dir = self.topic_dir(&topic.name, topic.id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            // The topic is gone either way; the next start removes what is left.
            warn!(dir = %dir.display(), error = %e, "could not remove a deleted topic's data");
        }
        info!(topic = %topic.name, topic_id = %topic.id, "topic deleted");
        Ok(())
    }

    pub fn broker_defaults(&self) -> &TopicConfig {
        &self.broker_defaults
    }
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, BrokerError> {
    std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(|e| BrokerError::storage(dir, e))
}
