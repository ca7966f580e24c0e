//! distcache-tui: the live terminal dashboard of a distcache cluster.
//!
//! It polls every node's public HTTP API (through `distcache::client`) and draws the cluster,
//! its keyspaces and their counters with ratatui; `distcache dashboard` runs it.
//!
//! # Layout
//! - [`model`]: snapshots of the cluster, per-keyspace rows, rates and history (pure data);
//! - [`app`]: the state, the key → command mapping and `App::apply` (no terminal);
//! - `ui`: `impl Widget for &App`, one file per panel;
//! - [`poller`]: polls every node concurrently, once per interval, with one client per node
//!   kept across polls (`distcache::client::Fleet`);
//! - `terminal`: raw mode and the alternate screen, restored on every way out;
//! - [`run`]: the event loop tying them together.

#![deny(missing_docs)]

use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc;

pub mod app;
pub mod model;
pub mod poller;
mod terminal;
mod ui;

pub use app::{App, Command, Effect, LookupResult, View, WarmupProgress, command_for};
pub use model::{KeyspaceRow, NodeView, Snapshot};
pub use poller::PollConfig;

/// Why the dashboard stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuiError {
    /// The terminal could not be set up or drawn to.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// Standard output is not a terminal.
    #[error("the dashboard needs a terminal (stdout is not one); use `distcache stats` in scripts")]
    NotATerminal,
    /// The endpoints or TLS settings cannot be used (a CA file that cannot be read, …).
    #[error("{0}")]
    Client(#[from] distcache::Error),
}

/// Runs the dashboard until the user quits (q, Ctrl-C) or the process is told to stop.
pub async fn run(config: PollConfig) -> Result<(), TuiError> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(TuiError::NotATerminal);
    }
    // Bad endpoints or TLS files are reported now, not as a dashboard of failed polls.
    config.client()?;
    let mut app = App::new(config.endpoints.join(","), config.interval);
    let (snapshots_tx, mut snapshots) = mpsc::channel(4);
    let (lookups_tx, mut lookups) = mpsc::channel::<LookupResult>(4);
    let (warmups_tx, mut warmups) = mpsc::channel::<WarmupProgress>(16);
    let poller = tokio::spawn(poller::run(config.clone(), snapshots_tx));
    let mut guard = terminal::TerminalGuard::enter()?;
    let mut keys = EventStream::new();
    let mut frames = tokio::time::interval(Duration::from_millis(250));
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = Box::pin(stop_signal());
    let mut dirty = true;
    let result = loop {
        if dirty {
            if let Err(e) = guard
                .terminal
                .draw(|frame| frame.render_widget(&app, frame.area()))
            {
                break Err(TuiError::Terminal(e));
            }
            dirty = false;
        }
        tokio::select! {
            _ = frames.tick() => {}
            _ = &mut stop => break Ok(()),
            Some(snapshot) = snapshots.recv() => {
                app.on_snapshot(snapshot);
                dirty = true;
            }
            Some(found) = lookups.recv() => {
                app.on_lookup(found);
                dirty = true;
            }
            Some(progress) = warmups.recv() => {
                app.on_warmup(progress);
                dirty = true;
            }
            event = keys.next() => match event {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    if let Some(command) = command_for(&app, key) {
                        if let Some(effect) = app.apply(command) {
                            perform(effect, &config, lookups_tx.clone(), warmups_tx.clone());
                        }
                        dirty = true;
                    }
                    if app.quit {
                        break Ok(());
                    }
                }
                Some(Ok(TermEvent::Resize(_, _))) => {
                    let _ = guard.terminal.autoresize();
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(TuiError::Terminal(e)),
                None => break Ok(()),
            },
        }
    };
    poller.abort();
    drop(guard);
    result
}

/// Runs a side effect in the background; its answer comes back as an event.
fn perform(
    effect: Effect,
    config: &PollConfig,
    answers: mpsc::Sender<LookupResult>,
    progress: mpsc::Sender<WarmupProgress>,
) {
    match effect {
        Effect::Warmup { keyspace, ticket } => {
            let config = config.clone();
            tokio::spawn(follow_warmup(keyspace, ticket, config, progress));
        }
        Effect::Lookup { keyspace, key } => {
            let client = config.client().map(|c| {
                c.with_token(config.token.clone())
                    .with_timeout(Duration::from_secs(10))
            });
            tokio::spawn(async move {
                let result = match client {
                    Ok(client) => {
                        let (value, owner) = tokio::join!(
                            client.get(&keyspace, &key),
                            client.owner(&keyspace, &key)
                        );
                        let owner = owner.ok().map(|o| (o.owner, o.addr));
                        match value {
                            Ok(v) => LookupResult {
                                keyspace,
                                key,
                                value: v.map(|b| b.to_vec()),
                                owner,
                                error: None,
                            },
                            Err(e) => LookupResult {
                                keyspace,
                                key,
                                value: None,
                                owner,
                                error: Some(e.to_string()),
                            },
                        }
                    }
                    Err(e) => LookupResult {
                        keyspace,
                        key,
                        value: None,
                        owner: None,
                        error: Some(e.to_string()),
                    },
                };
                let _ = answers.send(result).await;
            });
        }
    }
}

/// Starts a warmup and reports its progress until it is done.
async fn follow_warmup(
    keyspace: String,
    ticket: u64,
    config: PollConfig,
    progress: mpsc::Sender<WarmupProgress>,
) {
    let report = |run: Option<distcache::WarmupRun>, error: Option<String>| WarmupProgress {
        keyspace: keyspace.clone(),
        ticket,
        run,
        error,
    };
    let client = match config.client() {
        Ok(c) => c
            .with_token(config.token.clone())
            .with_timeout(Duration::from_secs(10)),
        Err(e) => {
            let _ = progress.send(report(None, Some(e.to_string()))).await;
            return;
        }
    };
    let (run, follower) = match client.start_warmup(&keyspace, None).await {
        Ok(started) => started,
        Err(e) => {
            let _ = progress.send(report(None, Some(e.to_string()))).await;
            return;
        }
    };
    let _ = progress.send(report(Some(run), None)).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        match follower.poll().await {
            Ok(run) => {
                let done = run.done;
                if progress.send(report(Some(run), None)).await.is_err() || done {
                    return;
                }
            }
            Err(e) => {
                let _ = progress
                    .send(report(None, Some(format!("lost track of the run: {e}"))))
                    .await;
                return;
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM sent to the process (Ctrl-C in raw mode arrives as a key).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
