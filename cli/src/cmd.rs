//! The command tree. Each subcommand is a small function in `cmd/<name>.rs` over library APIs.

use clap::{Parser, Subcommand};

mod node;

/// distcache: a distributed read-through cache.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 unavailable or timed out.
#[derive(Debug, Parser)]
#[command(name = "distcache", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter for stderr (tracing-subscriber syntax, e.g. `info` or `distcache=debug`).
    #[arg(long, global = true, env = "DISTCACHE_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a cache node.
    #[command(subcommand)]
    Node(node::NodeCommand),
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(cmd) => node::run(cmd, &cli.log).await,
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
