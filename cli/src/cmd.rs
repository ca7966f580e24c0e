//! The command tree. Each subcommand is a small function in `cmd/<name>.rs` over library APIs;
//! this file holds the global options and the dispatch.

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use distcache::ClientTls;
use distcache::client::Client;

use crate::output::Format;

mod admin;
mod cert;
mod completions;
mod dashboard;
mod data;
mod keyspace;
mod node;
mod stats;
mod warmup;

/// distcache: a distributed read-through cache.
///
/// Client commands talk to any node of a cluster over HTTP (--endpoint); `node start` runs a
/// node. Data goes to stdout, diagnostics to stderr.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 unavailable, overloaded or timed out,
/// 5 denied (no token, a wrong one, or one without the role or keyspace).
#[derive(Debug, Parser)]
#[command(
    name = "distcache",
    version,
    propagate_version = true,
    verbatim_doc_comment
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Node(s) to talk to, `host:port`, `http://host:port` or `https://host:port`,
    /// comma-separated: tried in turn until one answers.
    #[arg(
        long,
        global = true,
        env = "DISTCACHE_ENDPOINT",
        value_delimiter = ',',
        default_value = "127.0.0.1:3320"
    )]
    pub endpoint: Vec<String>,

    /// Output format: `table` for people, `json` for scripts (a stable schema, see README).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    /// The cluster's bearer token (nodes started with one require it).
    #[arg(long, global = true, env = "DISTCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Deadline of each request to a node.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,

    /// PEM file of the CA certificate(s) to trust for https endpoints [default: the Mozilla
    /// roots built into the binary]. With any TLS option, a bare `host:port` endpoint is https.
    #[arg(long, global = true, env = "DISTCACHE_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// PEM file of a client certificate to present (for nodes that require one); needs --key.
    #[arg(
        long = "cert",
        id = "client_cert",
        global = true,
        env = "DISTCACHE_CERT",
        value_name = "FILE"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key; needs --cert.
    #[arg(
        long = "key",
        id = "client_key",
        global = true,
        env = "DISTCACHE_KEY",
        value_name = "FILE"
    )]
    pub client_key: Option<PathBuf>,

    /// Accept any server certificate. INSECURE: anyone on the path can read and change the
    /// traffic, token included. For a first test only.
    #[arg(long, global = true)]
    pub insecure_skip_verify: bool,

    /// Log filter for stderr (tracing-subscriber syntax, e.g. `info` or `distcache=debug`)
    /// [default: `info` for `node start`, `warn` for the rest].
    #[arg(long, global = true, env = "DISTCACHE_LOG")]
    pub log: Option<String>,
}

impl Global {
    /// The TLS settings of the options. Warns on stderr (once) when verification is off.
    pub fn tls(&self) -> ClientTls {
        if self.insecure_skip_verify {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "WARNING: --insecure-skip-verify: server certificates are NOT verified; \
                     anyone on the path can read and change this traffic, token included"
                );
            });
        }
        ClientTls {
            ca: self.cacert.clone(),
            cert: self.client_cert.clone(),
            key: self.client_key.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
        }
    }

    /// A client of the endpoints.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(
            Client::with_tls(self.endpoint.iter().cloned(), &self.tls())?
                .with_token(self.token.clone())
                .with_timeout(self.request_timeout),
        )
    }
}

/// Parses a humantime duration for clap.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    distcache::units::parse_duration(text)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a cache node.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Create a cluster CA and issue node and client certificates for TLS.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// List, inspect, create, update, delete keyspaces, or apply a file of them.
    #[command(subcommand)]
    Keyspace(keyspace::KeyspaceCommand),
    /// Read keys (through the cache: a miss loads from the data source).
    Get(data::GetArgs),
    /// Write a key.
    Put(data::PutArgs),
    /// Remove keys from every node's cache.
    Delete(data::DeleteArgs),
    /// Show which node owns a key.
    Owner(data::OwnerArgs),
    /// Show the members as the answering node sees them.
    Peers,
    /// Show per-keyspace counters of every node; with --cluster, summed over the members
    /// with per-second rates.
    Stats(stats::StatsArgs),
    /// Print one node's metrics in the Prometheus text format (for scripts).
    Metrics,
    /// Inspect the cluster's control plane.
    #[command(subcommand)]
    Cluster(admin::ClusterCommand),
    /// Wait until the cluster is ready (for scripts and CI).
    Wait(admin::WaitArgs),
    /// Warm a keyspace across the cluster: its warm and hot keys, or the keys given.
    Warmup(warmup::WarmupArgs),
    /// Open the live terminal dashboard of the cluster.
    Dashboard(dashboard::DashboardArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Node(cmd) => node::run(cmd, &global).await,
        Command::Cert(cmd) => cert::run(cmd),
        Command::Keyspace(cmd) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            keyspace::run(cmd, &global).await
        }
        Command::Get(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            data::get(args, &global).await
        }
        Command::Put(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            data::put(args, &global).await
        }
        Command::Delete(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            data::delete(args, &global).await
        }
        Command::Owner(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            data::owner(args, &global).await
        }
        Command::Metrics => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            admin::metrics(&global).await
        }
        Command::Peers => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            admin::peers(&global).await
        }
        Command::Stats(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            stats::run(args, &global).await
        }
        Command::Cluster(cmd) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            admin::cluster(cmd, &global).await
        }
        Command::Wait(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            admin::wait(args, &global).await
        }
        Command::Warmup(args) => {
            init_logging(global.log.as_deref().unwrap_or("warn"))?;
            warmup::run(args, &global).await
        }
        Command::Dashboard(args) => dashboard::run(args, &global).await,
        Command::Completions(args) => completions::run(args),
    }
}

/// Installs the stderr log subscriber with `filter`.
pub fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("--log `{filter}` is not a log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install logging: {e}"))
}
