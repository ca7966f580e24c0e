//! `distcache warmup KS [--keys …]`: a cluster-wide warmup, followed to the end — with a
//! progress bar on a terminal, a JSON summary otherwise.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use distcache::{Error, WarmupRun};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Global, parse_duration};
use crate::output::{self, Format};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  distcache warmup users                 # its warm keys and hot keys\n  distcache warmup users --keys user:1,user:2 -o json\n\nEvery owner loads its own keys, so each key is fetched once. Exit code 1 when keys failed."
)]
pub struct WarmupArgs {
    /// The keyspace.
    pub keyspace: String,
    /// Keys to warm, comma-separated (default: the keyspace's warm keys and hot keys).
    #[arg(long, value_delimiter = ',')]
    pub keys: Option<Vec<String>>,
    /// Give up following the run after this long (it goes on in the cluster).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

pub async fn run(args: WarmupArgs, global: &Global) -> anyhow::Result<()> {
    let client = global.client()?;
    let keys: Option<Vec<String>> = args.keys.map(|k| {
        k.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if keys.as_ref().is_some_and(Vec::is_empty) {
        bail!("--keys names no key (give them comma-separated, e.g. --keys user:1,user:2)");
    }
    let (started, follower) = client.start_warmup(&args.keyspace, keys.as_deref()).await?;
    let bar = (output::interactive() && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(
        || {
            let bar = ProgressBar::new(started.planned as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} warming {msg} [{bar:30}] {pos}/{len} keys ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(args.keyspace.clone());
            bar
        },
    );
    let deadline = Instant::now() + args.timeout;
    let run = loop {
        let run = match follower.poll().await {
            Ok(run) => run,
            Err(e) => {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                return Err(e.into());
            }
        };
        if let Some(bar) = &bar {
            bar.set_position((run.warmed + run.failed + run.skipped) as u64);
        }
        if run.done {
            break run;
        }
        if Instant::now() >= deadline {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            return Err(Error::Timeout {
                operation: format!(
                    "following warmup {} ({} of {} keys done)",
                    run.id,
                    run.warmed + run.failed + run.skipped,
                    run.planned
                ),
                after: args.timeout,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    report(global, &run)?;
    if run.failed > 0 {
        bail!("{} of {} keys failed to warm", run.failed, run.planned);
    }
    Ok(())
}

/// Polls of a run that may fail in a row before following it gives up.
fn report(global: &Global, run: &WarmupRun) -> anyhow::Result<()> {
    match global.output {
        Format::Json => output::json(run),
        Format::Table => {
            println!(
                "warmed {} keys of {} ({} failed, {} skipped: cached already or not at the source) in {:.1}s",
                run.warmed,
                run.keyspace,
                run.failed,
                run.skipped,
                run.duration_ms as f64 / 1000.0
            );
            for f in &run.failures {
                println!("  failed {}: {}", f.key, f.error);
            }
            Ok(())
        }
    }
}
