//! Command-line interface. Every server flag can also come from `STRATA_<FLAG>` or the TOML
//! file given by `--config`; the command line wins over the environment, which wins over the
//! file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "A Kafka-compatible broker with its log tiered onto object storage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a broker. With no flags: one embedded node on 127.0.0.1:9092, data under ./data.
    Server(Box<ServerArgs>),
    /// Inspect or change the metadata quorum's membership through any controller.
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// List, describe and reset consumer groups through any Kafka-compatible broker.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Check an object store URL before pointing brokers at it: writes, reads (whole and a
    /// range), lists and deletes one probe object, and prints what each took.
    CheckObjectStore {
        /// The URL as `--object-store` takes it (credentials from the usual AWS variables).
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every consumer group in the cluster, with its state.
    List {
        /// Any broker's Kafka address.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
    },
    /// A group's members and, per partition, its committed offset, the log end and the lag.
    Describe {
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        group: String,
    },
    /// Delete an empty group and its committed offsets.
    Delete {
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        group: String,
    },
    /// Move a group's committed offsets on one topic (refused while it has active members).
    /// Prints the new offsets; commits them only with --execute.
    ResetOffsets {
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        group: String,
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        target: ResetTarget,
        /// Commit the offsets (without it, a dry run).
        #[arg(long)]
        execute: bool,
    },
}

/// Where reset-offsets moves a group to: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// Each partition's first offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Each partition's end: skip everything not yet read.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset, within each partition's range.
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// The first record at or after this time (milliseconds since the epoch).
    #[arg(long, value_name = "MS")]
    pub to_timestamp: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// Print the leader, the voters, the learners and how far the log is (JSON).
    Describe(QuorumTarget),
    /// Make a node that joined as a learner (started with the controller role but not in
    /// --controller-quorum) a voter.
    AddVoter(QuorumChange),
    /// Make a voter a learner: it keeps following the metadata but no longer votes.
    RemoveVoter(QuorumChange),
    /// Forget a learner entirely (a node being decommissioned).
    RemoveNode(QuorumChange),
}

#[derive(Debug, Args)]
pub struct QuorumTarget {
    /// Any node's controller address; requests are forwarded to the leader.
    #[arg(long, value_name = "HOST:PORT")]
    pub controller: String,
}

#[derive(Debug, Args)]
pub struct QuorumChange {
    #[command(flatten)]
    pub target: QuorumTarget,
    /// The node to change.
    #[arg(long)]
    pub node_id: u64,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// A TOML file with any of these flags (as `kafka-listen = "..."`) and Kafka-named broker
    /// settings (`num.partitions = 3`, `log.retention.ms = 86400000`, ...).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id. [default: 1]
    #[arg(long, env = "STRATA_NODE_ID")]
    pub node_id: Option<i32>,
    /// Where Kafka clients connect; port 0 picks a free port. [default: 127.0.0.1:9092]
    #[arg(long, env = "STRATA_KAFKA_LISTEN", value_name = "ADDR")]
    pub kafka_listen: Option<String>,
    /// The host:port clients are told to connect to. [default: the bound Kafka address]
    #[arg(long, env = "STRATA_ADVERTISED_KAFKA", value_name = "HOST:PORT")]
    pub advertised_kafka: Option<String>,
    /// Where the admin HTTP port (/metrics, /healthz, /readyz) listens. [default: 127.0.0.1:9644]
    #[arg(long, env = "STRATA_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Where partition logs and metadata live. [default: ./data]
    #[arg(long, env = "STRATA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// file:///abs/path, memory:// or s3://bucket/prefix. [default: file://<data-dir>/objects]
    #[arg(long, env = "STRATA_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,
    /// A tracing filter such as `info` or `strata_broker=debug,info`. [default:
    /// info,openraft=error]
    #[arg(long, env = "STRATA_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// The metadata quorum's voters as `ID@HOST:PORT,...` (Kafka's `controller.quorum.voters`).
    /// [default: this node alone]
    #[arg(long, env = "STRATA_CONTROLLER_QUORUM", value_name = "VOTERS")]
    pub controller_quorum: Option<String>,
    /// The rack (or availability zone) this broker is in: placement spreads a partition's
    /// replicas over racks (Kafka's `broker.rack`). [default: none]
    #[arg(long, env = "STRATA_RACK")]
    pub rack: Option<String>,
    /// What this node does: `controller` (votes in the metadata quorum), `broker` (serves
    /// Kafka clients, following the metadata as a raft learner) or `both`. [default: both]
    #[arg(long, env = "STRATA_ROLES")]
    pub roles: Option<String>,
    /// Where this node's controller listens for its peers. [default: its address in
    /// --controller-quorum, or an OS-picked loopback port for a quorum of one]
    #[arg(long, env = "STRATA_CONTROLLER_LISTEN", value_name = "ADDR")]
    pub controller_listen: Option<String>,
    /// When produces are acknowledged: `os` (written to the OS, survives kill -9) or `fsync`
    /// (fsynced with group commit, survives power loss). [default: os]
    #[arg(long, env = "STRATA_DURABILITY")]
    pub durability: Option<String>,
}
