//! `distcache-bench`: the servers `scripts/bench.sh` measures distcache against.
//!
//! ```text
//! distcache-bench reference --listen ADDR [--keyspace scratch] [--node-id node-1]
//!                           [--max-bytes 1GiB] [--source URL-with-{key}]
//! distcache-bench delay-source --listen ADDR [--value-bytes 64] [--delay-ms 1]
//! ```
//!
//! Each prints `listening on ADDR` once bound (port 0 picks a free one) and serves until
//! SIGTERM or Ctrl-C, then exits at once. This file only parses the arguments and runs the server on the
//! node-shaped runtime; the servers live in the library.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use distcache_bench::{delay_source, reference, runtime};
use tokio::net::TcpListener;

/// The servers `scripts/bench.sh` measures distcache against.
#[derive(Parser)]
#[command(name = "distcache-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A bare axum + moka::future server answering distcache's key routes for one keyspace.
    Reference(ReferenceArgs),
    /// An HTTP data source answering every key after a fixed delay.
    DelaySource(DelaySourceArgs),
}

#[derive(Args)]
struct ReferenceArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long)]
    listen: String,
    /// The one keyspace it serves; others are answered 404.
    #[arg(long, default_value = "scratch")]
    keyspace: String,
    /// Sent as `x-distcache-node`, as a node sends its id.
    #[arg(long, default_value = "node-1")]
    node_id: String,
    /// Most bytes (keys plus values) the cache holds: N, or N with a unit (KiB, MiB, GiB).
    #[arg(long, default_value = "1GiB", value_parser = byte_size)]
    max_bytes: u64,
    /// A URL template with `{key}` that misses are read through; without it a miss is a 404.
    #[arg(long)]
    source: Option<String>,
}

#[derive(Args)]
struct DelaySourceArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long)]
    listen: String,
    /// Length of every value: N, or N with a unit (KiB, MiB).
    #[arg(long, default_value = "64", value_parser = byte_size)]
    value_bytes: u64,
    /// The wait before each answer, in milliseconds, when the URL names none.
    #[arg(long, default_value_t = 1)]
    delay_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    runtime::node_shaped()
        .context("cannot start the async runtime")?
        .block_on(run(command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    let listen = match &command {
        Command::Reference(args) => args.listen.clone(),
        Command::DelaySource(args) => args.listen.clone(),
    };
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    // Exits at once on a stop, without dropping the cache: freeing millions of entries one by
    // one takes longer than the bench waits (10–14 s for 2M keys), and nothing needs saving.
    tokio::spawn(async {
        stopped().await;
        std::process::exit(0)
    });
    match command {
        Command::Reference(args) => {
            let mut config = reference::Config::new(args.keyspace);
            config.node_id = args.node_id;
            config.max_bytes = args.max_bytes;
            config.source = args.source;
            reference::serve(listener, config, std::future::pending()).await?
        }
        Command::DelaySource(args) => {
            let config = delay_source::Config {
                value_bytes: usize::try_from(args.value_bytes)
                    .context("--value-bytes does not fit this machine's memory")?,
                delay: Duration::from_millis(args.delay_ms),
            };
            delay_source::serve(listener, config, std::future::pending()).await?
        }
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn stopped() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("cannot watch SIGTERM ({e}); Ctrl-C still stops");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A byte size: `N`, or `N` with a unit (`KiB`, `MiB`, `GiB`, `KB`, …).
fn byte_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("`{text}` is not a byte size ({e}); try 1048576 or 1MiB"))
}
