//! Turns flags, `STRATA_*` variables and the TOML file into the broker's settings.
//!
//! The TOML file may hold the flags by name (`kafka-listen = "127.0.0.1:0"`; `_` works for
//! `-` too) and Kafka-named broker settings, written either quoted (`"log.retention.ms" = 1`)
//! or as nested keys (`log.retention.ms = 1`, which TOML reads as tables): both are
//! flattened back to Kafka's dotted names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use strata_broker::BrokerConfig;
use strata_broker::config::{Durability, Roles};

use crate::cli::ServerArgs;

/// Everything `strata server` needs to start.
#[derive(Debug)]
pub struct Settings {
    pub kafka_listen: String,
    pub admin_listen: String,
    pub controller_listen: String,
    pub log_level: String,
    pub broker: BrokerConfig,
}

/// openraft narrates every election at info and warn; its errors (an unreachable peer) stay.
/// aws-config logs every provider of its credential chain that fails, at warn; the broker
/// reports what matters (no credentials at all) itself.
const DEFAULT_LOG_LEVEL: &str = "info,openraft=error,aws_config=error";

const FLAG_KEYS: &[&str] = &[
    "node-id",
    "kafka-listen",
    "advertised-kafka",
    "admin-listen",
    "data-dir",
    "object-store",
    "log-level",
    "durability",
    "controller-listen",
    "controller-quorum",
    "roles",
    "rack",
];

impl Settings {
    pub fn load(mut args: ServerArgs) -> anyhow::Result<Self> {
        let mut kafka_properties = BTreeMap::new();
        if let Some(path) = args.config.clone() {
            let file = read_file(&path)?;
            for (key, value) in file {
                let flag = key.replace('_', "-");
                if FLAG_KEYS.contains(&flag.as_str()) {
                    fill_from_file(&mut args, &flag, value)
                        .with_context(|| format!("in {}", path.display()))?;
                } else {
                    kafka_properties.insert(key, value);
                }
            }
        }
        let data_dir = args.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let mut broker = BrokerConfig::new(data_dir);
        broker
            .apply_kafka_properties(
                kafka_properties
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .context("invalid broker setting")?;
        if let Some(node_id) = args.node_id {
            broker.node_id = node_id;
        }
        if let Some(url) = args.object_store {
            broker.object_store_url = url;
        }
        if let Some(advertised) = args.advertised_kafka {
            broker.advertised_kafka = Some(parse_host_port(&advertised)?);
        }
        if let Some(durability) = args.durability {
            broker.durability = durability
                .parse::<Durability>()
                .map_err(anyhow::Error::msg)
                .context("--durability")?;
        }
        if broker.node_id < 0 {
            bail!("--node-id must be 0 or more, got {}", broker.node_id);
        }
        if let Some(quorum) = args.controller_quorum {
            broker.controller_quorum = strata_broker::config::parse_controller_quorum(&quorum)
                .map_err(anyhow::Error::msg)
                .context("--controller-quorum")?;
        }
        if let Some(rack) = args.rack {
            broker
                .apply_kafka_properties([("broker.rack", rack.as_str())])
                .context("--rack")?;
        }
        if let Some(roles) = args.roles {
            broker.roles = roles
                .parse::<Roles>()
                .map_err(anyhow::Error::msg)
                .context("--roles")?;
        }
        let own_voter_address = broker
            .controller_quorum
            .get(&u64::try_from(broker.node_id).unwrap_or_default());
        if !broker.roles.controller {
            if broker.controller_quorum.is_empty() {
                bail!(
                    "a node without the controller role needs --controller-quorum to find the controllers"
                );
            }
            if own_voter_address.is_some() {
                bail!(
                    "node {} is a voter in --controller-quorum, so it needs the controller role",
                    broker.node_id
                );
            }
        }
        // A quorum of one needs no known address; a voter listens where the others expect it;
        // a node joining as a learner tells the leader where it bound.
        let controller_listen = args.controller_listen.unwrap_or_else(|| {
            own_voter_address.map_or_else(|| "127.0.0.1:0".into(), Clone::clone)
        });
        Ok(Self {
            controller_listen,
            kafka_listen: args.kafka_listen.unwrap_or_else(|| "127.0.0.1:9092".into()),
            admin_listen: args.admin_listen.unwrap_or_else(|| "127.0.0.1:9644".into()),
            log_level: args.log_level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.into()),
            broker,
        })
    }
}

/// A value from the file fills a flag only if neither the command line nor the environment set it.
fn fill_from_file(args: &mut ServerArgs, flag: &str, value: String) -> anyhow::Result<()> {
    fn set<T>(slot: &mut Option<T>, value: T) {
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    match flag {
        "node-id" => set(
            &mut args.node_id,
            value
                .parse()
                .with_context(|| format!("node-id '{value}'"))?,
        ),
        "kafka-listen" => set(&mut args.kafka_listen, value),
        "advertised-kafka" => set(&mut args.advertised_kafka, value),
        "admin-listen" => set(&mut args.admin_listen, value),
        "data-dir" => set(&mut args.data_dir, PathBuf::from(value)),
        "object-store" => set(&mut args.object_store, value),
        "log-level" => set(&mut args.log_level, value),
        "durability" => set(&mut args.durability, value),
        "controller-listen" => set(&mut args.controller_listen, value),
        "controller-quorum" => set(&mut args.controller_quorum, value),
        "roles" => set(&mut args.roles, value),
        "rack" => set(&mut args.rack, value),
        other => bail!("'{other}' is not a setting"),
    }
    Ok(())
}

fn parse_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("'{s}' is not HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("'{s}' has no valid port"))?;
    if host.is_empty() {
        bail!("'{s}' has no host");
    }
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let mut out = BTreeMap::new();
    flatten("", &table, &mut out).with_context(|| format!("in {}", path.display()))?;
    Ok(out)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&name, inner, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => bail!(
                "'{name}' must be a string, number or boolean, not {}",
                other.type_str()
            ),
        };
        out.insert(name, text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("strata.toml");
        std::fs::write(&path, contents).expect("write");
        (dir, path)
    }

    #[test]
    fn no_flags_give_the_embedded_defaults() {
        let settings = Settings::load(ServerArgs::default()).expect("defaults load");
        assert_eq!(settings.kafka_listen, "127.0.0.1:9092");
        assert_eq!(settings.admin_listen, "127.0.0.1:9644");
        assert_eq!(settings.broker.data_dir, PathBuf::from("./data"));
        assert!(settings.broker.object_store_url.starts_with("file:///"));
        assert!(settings.broker.object_store_url.ends_with("/data/objects"));
    }

    #[test]
    fn the_file_sets_flags_and_kafka_names_but_flags_win() {
        let (_dir, path) = write(
            "kafka-listen = \"127.0.0.1:0\"\nnode_id = 7\nnum.partitions = 3\n\"log.retention.ms\" = 1000\n",
        );
        let args = ServerArgs {
            config: Some(path),
            node_id: Some(2),
            ..ServerArgs::default()
        };
        let settings = Settings::load(args).expect("loads");
        assert_eq!(settings.kafka_listen, "127.0.0.1:0");
        assert_eq!(settings.broker.node_id, 2);
        assert_eq!(settings.broker.num_partitions, 3);
        assert_eq!(settings.broker.topic_defaults.retention_ms(), Some(1000));
    }

    #[test]
    fn an_unknown_setting_in_the_file_is_an_error() {
        let (_dir, path) = write("no.such.setting = 1\n");
        let err = Settings::load(ServerArgs {
            config: Some(path),
            ..ServerArgs::default()
        })
        .expect_err("refused");
        assert!(format!("{err:#}").contains("no.such.setting"));
    }

    #[test]
    fn advertised_address_must_be_host_and_port() {
        assert_eq!(
            parse_host_port("broker-0.strata:9092").expect("ok"),
            ("broker-0.strata".into(), 9092)
        );
        assert!(parse_host_port("nohost").is_err());
    }

    #[test]
    fn roles_decide_who_votes_and_where_the_controller_listens() {
        let args = |node_id: i32, roles: &str| ServerArgs {
            node_id: Some(node_id),
            roles: Some(roles.into()),
            controller_quorum: Some("1@127.0.0.1:19093,2@127.0.0.1:19094".into()),
            ..ServerArgs::default()
        };
        let voter = Settings::load(args(2, "both")).expect("a voter");
        assert_eq!(voter.controller_listen, "127.0.0.1:19094");
        let broker = Settings::load(args(4, "broker")).expect("a broker-only learner");
        assert!(!broker.broker.roles.controller && !broker.broker.is_voter());
        assert_eq!(broker.controller_listen, "127.0.0.1:0");
        assert!(
            Settings::load(args(5, "controller")).is_ok(),
            "a controller to promote"
        );
        let err = Settings::load(args(1, "broker")).expect_err("a voter must be a controller");
        assert!(format!("{err:#}").contains("controller role"));
        let alone = ServerArgs {
            roles: Some("broker".into()),
            ..ServerArgs::default()
        };
        assert!(
            Settings::load(alone).is_err(),
            "a broker-only node needs controllers"
        );
        assert!(Settings::load(args(2, "leader")).is_err());
    }
}
