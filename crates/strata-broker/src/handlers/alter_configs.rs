//! AlterConfigs (replace a resource's overrides) and IncrementalAlterConfigs (set, delete,
//! append to or subtract from single settings) for topics, one broker, or every broker (the
//! broker resource named ""), committed through the metadata quorum. The state machine
//! validates every name and value; `validate_only` runs the same checks without proposing.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_meta::topic_config::{
    ConfigError, KafkaConfigType, broker_config_def, topic_config_def,
};
use strata_meta::{AlterConfigs, ConfigResource, MetaCommand, MetaError};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{RequestContext, str_bytes};
use crate::config_view::ConfigLayers;
use crate::error::BrokerError;

/// What to do with one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Set,
    Delete,
    Append,
    Subtract,
}

/// One resource's requested change, in either request's terms.
struct Change {
    resource_type: i8,
    resource_name: StrBytes,
    /// (name, operation, value)
    settings: Vec<(String, Operation, Option<String>)>,
    /// AlterConfigs: everything not named goes back to its default.
    replace: bool,
}

/// The outcome for one resource, as both responses carry it.
struct Outcome {
    resource_type: i8,
    resource_name: StrBytes,
    error_code: i16,
    error_message: Option<StrBytes>,
}

impl Outcome {
    fn new(change: Change, error: Option<&BrokerError>) -> Self {
        Self {
            resource_type: change.resource_type,
            resource_name: change.resource_name,
            error_code: error.map_or(0, BrokerError::code),
            error_message: error.map(|e| str_bytes(e.to_string())),
        }
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let changes = request.resources.into_iter().map(|r| Change {
        resource_type: r.resource_type,
        resource_name: r.resource_name,
        settings: r
            .configs
            .into_iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    Operation::Set,
                    c.value.map(|v| v.to_string()),
                )
            })
            .collect(),
        replace: true,
    });
    let responses = apply_all(ctx, changes, request.validate_only, "alter_configs")
        .await
        .into_iter()
        .map(|o| {
            AlterConfigsResourceResponse::default()
                .with_resource_type(o.resource_type)
                .with_resource_name(o.resource_name)
                .with_error_code(o.error_code)
                .with_error_message(o.error_message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn handle_incremental(
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut unknown_operation = Vec::new();
    let changes: Vec<Change> = request
        .resources
        .into_iter()
        .map(|r| Change {
            resource_type: r.resource_type,
            resource_name: r.resource_name,
            settings: r
                .configs
                .into_iter()
                .map(|c| {
                    let operation = match c.config_operation {
                        0 => Operation::Set,
                        1 => Operation::Delete,
                        2 => Operation::Append,
                        3 => Operation::Subtract,
                        other => {
                            unknown_operation.push(other);
                            Operation::Set
                        }
                    };
                    (
                        c.name.to_string(),
                        operation,
                        c.value.map(|v| v.to_string()),
                    )
                })
                .collect(),
            replace: false,
        })
        .collect();
    let outcomes = if let Some(op) = unknown_operation.first() {
        let e = BrokerError::InvalidRequest {
            reason: format!("unknown config operation {op}"),
        };
        changes
            .into_iter()
            .map(|c| Outcome::new(c, Some(&e)))
            .collect()
    } else {
        apply_all(
            ctx,
            changes.into_iter(),
            request.validate_only,
            "incremental_alter_configs",
        )
        .await
    };
    let responses = outcomes
        .into_iter()
        .map(|o| {
            IncrementalResourceResponse::default()
                .with_resource_type(o.resource_type)
                .with_resource_name(o.resource_name)
                .with_error_code(o.error_code)
                .with_error_message(o.error_message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn apply_all(
    ctx: &RequestContext<'_>,
    changes: impl Iterator<Item = Change>,
    validate_only: bool,
    api: &'static str,
) -> Vec<Outcome> {
    let mut seen = HashSet::new();
    let mut outcomes = Vec::new();
    for change in changes {
        // Kafka refuses a request naming one resource twice, for each mention.
        let result = if seen.insert((change.resource_type, change.resource_name.clone())) {
            apply(ctx, &change, validate_only).await
        } else {
            Err(BrokerError::InvalidRequest {
                reason: "the resource is named more than once in the request".into(),
            })
        };
        let error = result.err();
        if let Some(e) = &error {
            ctx.broker.metrics.count_error(api, e.response_error());
        }
        outcomes.push(Outcome::new(change, error.as_ref()));
    }
    outcomes
}

async fn apply(
    ctx: &RequestContext<'_>,
    change: &Change,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let broker = ctx.broker;
    let command = broker.metadata.read(|state| {
        let name = change.resource_name.as_str();
        let resource = match change.resource_type {
            RESOURCE_TOPIC => ConfigResource::Topic(
                state
                    .topic_by_name(name)
                    .ok_or(BrokerError::UnknownTopicOrPartition)?
                    .topic_id,
            ),
            RESOURCE_BROKER if name.is_empty() => ConfigResource::ClusterDefault,
            RESOURCE_BROKER => {
                ConfigResource::Broker(name.parse().map_err(|_| BrokerError::InvalidRequest {
                    reason: format!("'{name}' is not a broker id"),
                })?)
            }
            other => {
                return Err(BrokerError::InvalidRequest {
                    reason: format!("resource type {other} has no configuration here"),
                });
            }
        };
        let layers = ConfigLayers {
            state,
            broker_id: match resource {
                ConfigResource::Broker(id) => id,
                _ => broker.config.node_id,
            },
            static_defaults: &broker.config.topic_defaults,
        };
        let current = |setting: &str| -> Option<String> {
            let described = match resource {
                ConfigResource::Topic(id) => layers.describe_topic(&state.topic(id)?.configs),
                ConfigResource::Broker(_) | ConfigResource::ClusterDefault => {
                    layers.describe_broker()
                }
            };
            described
                .into_iter()
                .find(|c| c.name == setting)
                .map(|c| c.value)
        };
        let mut set = BTreeMap::new();
        let mut remove = BTreeSet::new();
        let mut named = HashSet::new();
        for (setting, operation, value) in &change.settings {
            if !named.insert(setting.as_str()) {
                return Err(BrokerError::InvalidRequest {
                    reason: format!("config '{setting}' is named more than once"),
                });
            }
            match (operation, value) {
                (Operation::Delete, _) => {
                    remove.insert(setting.clone());
                }
                (_, None) => {
                    return Err(BrokerError::InvalidRequest {
                        reason: format!("config '{setting}' needs a value"),
                    });
                }
                (Operation::Set, Some(value)) => {
                    set.insert(setting.clone(), value.clone());
                }
                (list_operation, Some(value)) => {
                    let list =
                        edit_list(resource, setting, *list_operation, value, current(setting))?;
                    set.insert(setting.clone(), list);
                }
            }
        }
        Ok(AlterConfigs {
            resource,
            set,
            remove,
            replace: change.replace,
        })
    })?;
    if validate_only {
        broker
            .metadata
            .read(|state| state.check_alter_configs(&command))?;
        return Ok(());
    }
    broker
        .metadata
        .commit(MetaCommand::AlterConfigs(command))
        .await?;
    Ok(())
}

/// APPEND and SUBTRACT on a list-valued setting (`cleanup.policy`), from its value in force.
/// Two concurrent edits of one list can lose one of them: the new list is computed here and
/// committed whole.
fn edit_list(
    resource: ConfigResource,
    setting: &str,
    operation: Operation,
    value: &str,
    current: Option<String>,
) -> Result<String, BrokerError> {
    let def = match resource {
        ConfigResource::Topic(_) => topic_config_def(setting),
        ConfigResource::Broker(_) | ConfigResource::ClusterDefault => broker_config_def(setting),
    }
    .ok_or_else(|| {
        MetaError::from(ConfigError::Unknown {
            name: setting.to_string(),
        })
    })?;
    if def.kafka_type() != KafkaConfigType::List {
        return Err(MetaError::from(ConfigError::Invalid {
            name: setting.to_string(),
            value: value.to_string(),
            reason: "APPEND and SUBTRACT apply only to list-valued configs".into(),
        })
        .into());
    }
    let mut items: Vec<String> = current
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match operation {
            Operation::Append if !items.iter().any(|i| i == item) => items.push(item.to_string()),
            Operation::Subtract => items.retain(|i| i != item),
            _ => {}
        }
    }
    Ok(items.join(","))
}
