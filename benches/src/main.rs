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

use anyhow::{Context, bail};
use distcache_bench::{delay_source, reference, runtime};
use tokio::net::TcpListener;

const USAGE: &str = "usage: distcache-bench reference --listen ADDR [--keyspace KS] [--node-id ID] [--max-bytes N[KiB|MiB|GiB]] [--source URL]
       distcache-bench delay-source --listen ADDR [--value-bytes N] [--delay-ms N]";

enum Command {
    Reference(String, reference::Config),
    DelaySource(String, delay_source::Config),
}

fn main() -> anyhow::Result<()> {
    let command = parse(std::env::args().skip(1).collect())?;
    runtime::node_shaped()
        .context("cannot start the async runtime")?
        .block_on(run(command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    let listen = match &command {
        Command::Reference(listen, _) | Command::DelaySource(listen, _) => listen.clone(),
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
        Command::Reference(_, config) => {
            reference::serve(listener, config, std::future::pending()).await?
        }
        Command::DelaySource(_, config) => {
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

fn parse(args: Vec<String>) -> anyhow::Result<Command> {
    let Some((name, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    if rest.len() % 2 != 0 {
        bail!("every option takes a value\n{USAGE}");
    }
    let mut listen = None;
    let mut reference = reference::Config::new("scratch");
    let mut delay = delay_source::Config {
        value_bytes: 64,
        delay: Duration::from_millis(1),
    };
    for pair in rest.chunks(2) {
        let (flag, value) = (pair[0].as_str(), pair[1].clone());
        match (name.as_str(), flag) {
            (_, "--listen") => listen = Some(value),
            ("reference", "--keyspace") => reference.keyspace = value,
            ("reference", "--node-id") => reference.node_id = value,
            ("reference", "--max-bytes") => reference.max_bytes = bytes(&value)?,
            ("reference", "--source") => reference.source = Some(value),
            ("delay-source", "--value-bytes") => {
                delay.value_bytes = usize::try_from(bytes(&value)?)?;
            }
            ("delay-source", "--delay-ms") => {
                delay.delay = Duration::from_millis(value.parse().context("--delay-ms")?);
            }
            _ => bail!("unknown option {flag} for `{name}`\n{USAGE}"),
        }
    }
    let Some(listen) = listen else {
        bail!("--listen is required\n{USAGE}");
    };
    Ok(match name.as_str() {
        "reference" => Command::Reference(listen, reference),
        "delay-source" => Command::DelaySource(listen, delay),
        other => bail!("unknown command `{other}`\n{USAGE}"),
    })
}

/// `N`, `NKiB`, `NMiB` or `NGiB`.
fn bytes(text: &str) -> anyhow::Result<u64> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => bail!("`{text}`: a size is N, NKiB, NMiB or NGiB"),
    };
    let n: u64 = digits.parse().with_context(|| format!("`{text}`"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("`{text}` is too large"))
}
