//! What DescribeConfigs and CreateTopics say about a setting: the value in force, where it
//! comes from, and the values it takes precedence over (Kafka's "synonyms").
//!
//! A topic-level setting is resolved through layers, highest precedence first: the topic's
//! override, this broker's dynamic setting, the cluster-wide dynamic default, this broker's
//! static configuration (`--config` file), Kafka's built-in default. The dynamic layers come
//! from the quorum's state; the static one is this process's, so a broker describes its own
//! configuration only.

use std::collections::BTreeMap;

use strata_meta::MetadataState;
use strata_meta::topic_config::{ConfigDef, KafkaConfigType, TOPIC_CONFIGS};

use crate::config::TopicConfig;

/// Kafka's config sources (DescribeConfigs v1+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    Topic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// One layer's value for a setting, under the name that layer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

/// A described setting: the value in force and every layer that has one, in force first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub kafka_type: KafkaConfigType,
    pub synonyms: Vec<Synonym>,
}

/// Where a description reads its layers from.
pub struct ConfigLayers<'a> {
    pub state: &'a MetadataState,
    pub broker_id: i32,
    pub static_defaults: &'a TopicConfig,
}

impl ConfigLayers<'_> {
    /// Every topic-level setting of a topic with `overrides`, by topic name.
    pub fn describe_topic(&self, overrides: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let topic = overrides.get(def.name).map(|value| Synonym {
                    name: def.name.to_string(),
                    value: value.clone(),
                    source: ConfigSource::Topic,
                });
                described(
                    def,
                    def.name,
                    topic.into_iter().chain(self.broker_layers(def)),
                )
            })
            .collect()
    }

    /// This broker's topic defaults, by their broker names (`log.retention.ms`).
    pub fn describe_broker(&self) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| described(def, def.broker_name, self.broker_layers(def)))
            .collect()
    }

    /// The cluster-wide dynamic defaults that are set (Kafka's broker resource named "").
    pub fn describe_cluster_defaults(&self) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .filter_map(|def| {
                let value = self.state.cluster_configs().get(def.broker_name)?;
                let layer = Synonym {
                    name: def.broker_name.to_string(),
                    value: value.clone(),
                    source: ConfigSource::DynamicDefaultBroker,
                };
                Some(described(def, def.broker_name, [layer]))
            })
            .collect()
    }

    /// The layers below a topic's override, highest first; the built-in default is always
    /// there.
    fn broker_layers(&self, def: &ConfigDef) -> impl Iterator<Item = Synonym> {
        let layer = |value: Option<&String>, source| {
            value.map(|value| Synonym {
                name: def.broker_name.to_string(),
                value: value.clone(),
                source,
            })
        };
        let own = self
            .state
            .broker_configs(self.broker_id)
            .and_then(|c| c.get(def.broker_name));
        let static_value = self
            .static_defaults
            .get(def.name)
            .filter(|v| *v != def.default)
            .map(str::to_string);
        [
            layer(own, ConfigSource::DynamicBroker),
            layer(
                self.state.cluster_configs().get(def.broker_name),
                ConfigSource::DynamicDefaultBroker,
            ),
            layer(static_value.as_ref(), ConfigSource::StaticBroker),
            layer(Some(&def.default.to_string()), ConfigSource::Default),
        ]
        .into_iter()
        .flatten()
    }
}

fn described(
    def: &ConfigDef,
    name: &str,
    layers: impl IntoIterator<Item = Synonym>,
) -> DescribedConfig {
    let synonyms: Vec<Synonym> = layers.into_iter().collect();
    let in_force = synonyms
        .first()
        .expect("every setting has at least its built-in default");
    DescribedConfig {
        name: name.to_string(),
        value: in_force.value.clone(),
        source: in_force.source,
        kafka_type: def.kafka_type(),
        synonyms,
    }
}

#[cfg(test)]
mod tests {
    use strata_meta::{AlterConfigs, ConfigResource, Endpoint, MetaCommand, RegisterBroker};
    use uuid::Uuid;

    use super::*;

    fn alter(state: &mut MetadataState, resource: ConfigResource, name: &str, value: &str) {
        state
            .apply(&MetaCommand::AlterConfigs(AlterConfigs {
                resource,
                set: BTreeMap::from([(name.to_string(), value.to_string())]),
                remove: Default::default(),
                replace: false,
            }))
            .expect("altered");
    }

    fn find<'a>(configs: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
        configs.iter().find(|c| c.name == name).expect("described")
    }

    #[test]
    fn each_layer_overrides_the_ones_below_it() {
        let mut state = MetadataState::default();
        state
            .apply(&MetaCommand::RegisterBroker(RegisterBroker {
                broker_id: 1,
                incarnation: Uuid::new_v4(),
                endpoints: vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 1,
                }],
                rack: None,
                now_ms: 0,
                intact_predecessor: None,
                metadata_version: strata_meta::METADATA_VERSION,
            }))
            .expect("registered");
        alter(
            &mut state,
            ConfigResource::ClusterDefault,
            "log.retention.ms",
            "2000",
        );
        alter(
            &mut state,
            ConfigResource::Broker(1),
            "log.retention.ms",
            "3000",
        );
        alter(
            &mut state,
            ConfigResource::ClusterDefault,
            "log.segment.bytes",
            "5000",
        );
        let mut static_defaults = TopicConfig::builtin();
        static_defaults = static_defaults.with_broker_settings(&BTreeMap::from([(
            "log.retention.bytes".to_string(),
            "7000".to_string(),
        )]));
        let layers = ConfigLayers {
            state: &state,
            broker_id: 1,
            static_defaults: &static_defaults,
        };
        let overrides = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let topic = layers.describe_topic(&overrides);

        let retention = find(&topic, "retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("1000", ConfigSource::Topic)
        );
        let sources: Vec<_> = retention.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(
            sources,
            [
                ConfigSource::Topic,
                ConfigSource::DynamicBroker,
                ConfigSource::DynamicDefaultBroker,
                ConfigSource::Default
            ]
        );
        let segment = find(&topic, "segment.bytes");
        assert_eq!(
            (segment.value.as_str(), segment.source),
            ("5000", ConfigSource::DynamicDefaultBroker)
        );
        let bytes = find(&topic, "retention.bytes");
        assert_eq!(
            (bytes.value.as_str(), bytes.source),
            ("7000", ConfigSource::StaticBroker)
        );
        assert_eq!(find(&topic, "cleanup.policy").source, ConfigSource::Default);

        let broker = layers.describe_broker();
        let retention = find(&broker, "log.retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("3000", ConfigSource::DynamicBroker)
        );
        let cluster = layers.describe_cluster_defaults();
        let names: Vec<_> = cluster.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["log.segment.bytes", "log.retention.ms"]);
    }
}
