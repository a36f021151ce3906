//! DescribeConfigs: a topic's settings, this broker's topic defaults, or the cluster-wide
//! dynamic defaults (the broker resource named ""), from this node's replica of the metadata.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{RequestContext, str_bytes};
use crate::config_view::{ConfigLayers, DescribedConfig};
use crate::error::BrokerError;

const API: &str = "describe_configs";

/// Kafka's resource types.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

pub fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match describe(ctx, &resource) {
                Ok(configs) => {
                    let wanted = |c: &DescribedConfig| {
                        resource
                            .configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
                    };
                    let configs = configs
                        .into_iter()
                        .filter(wanted)
                        .map(|c| entry(ctx, c, request.include_synonyms))
                        .collect();
                    result.with_configs(configs)
                }
                Err(e) => {
                    ctx.broker.metrics.count_error(API, e.response_error());
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(e.to_string())))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    ctx: &RequestContext<'_>,
    resource: &DescribeConfigsResource,
) -> Result<Vec<DescribedConfig>, BrokerError> {
    let broker = ctx.broker;
    let name = resource.resource_name.as_str();
    broker.metadata.read(|state| {
        let layers = ConfigLayers {
            state,
            broker_id: broker.config.node_id,
            static_defaults: &broker.config.topic_defaults,
        };
        match resource.resource_type {
            RESOURCE_TOPIC => state
                .topic_by_name(name)
                .map(|topic| layers.describe_topic(&topic.configs))
                .ok_or(BrokerError::UnknownTopicOrPartition),
            RESOURCE_BROKER if name.is_empty() => Ok(layers.describe_cluster_defaults()),
            RESOURCE_BROKER if name.parse() == Ok(broker.config.node_id) => {
                Ok(layers.describe_broker())
            }
            RESOURCE_BROKER => Err(BrokerError::InvalidRequest {
                reason: format!(
                    "broker {name}'s configuration is described by broker {name} itself; this is broker {}",
                    broker.config.node_id
                ),
            }),
            other => Err(BrokerError::InvalidRequest {
                reason: format!("resource type {other} has no configuration here"),
            }),
        }
    })
}

fn entry(
    ctx: &RequestContext<'_>,
    config: DescribedConfig,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        config
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(s.name))
                    .with_value(Some(str_bytes(s.value)))
                    .with_source(s.source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    let entry = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(config.name))
        .with_value(Some(str_bytes(config.value)))
        .with_config_source(config.source as i8)
        .with_synonyms(synonyms);
    // The type exists from v3 on.
    if ctx.version() >= 3 {
        entry.with_config_type(config.kafka_type as i8)
    } else {
        entry
    }
}
