//! The warmup manager: one background task per engine that warms after keyspace updates and
//! topology changes, ages and shares hot keys, refreshes hot keys ahead of expiry, and drops
//! entries a joining peer took over.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::cluster::{TopologyChange, TopologyEvents};
use crate::engine::{Engine, Inner};
use crate::space::hot_keys::random;
use crate::units::deadline_after;
use crate::warmup::WarmupTrigger;

/// Runs the warmup duties of `engine` until it stops: keyspace updates (`applied`), topology
/// changes, hot-key aging and sharing, refresh-ahead.
pub(crate) fn spawn_manager(
    inner: &Arc<Inner>,
    mut applied: broadcast::Receiver<String>,
    mut topology: Option<TopologyEvents>,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let config = inner.config.warmup.clone();
    let (warm_on_join, warm_on_leave) = config.on_join_and_leave();
    tokio::spawn(async move {
        let mut aging = tokio::time::interval(config.hot_key_halflife);
        let mut sharing = tokio::time::interval(config.share_interval);
        // After a long duty, one catch-up tick, not a burst.
        aging.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sharing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        aging.tick().await;
        sharing.tick().await;
        let refresh_every = config.refresh_interval;
        // A deadline, not a sleep: other wake-ups must not postpone the next refresh.
        let mut next_refresh =
            jittered(refresh_every).map(|d| deadline_after(tokio::time::Instant::now(), d));
        loop {
            // Wait holding only the weak reference, so an engine dropped without `stop` is freed.
            let duty = tokio::select! {
                name = applied.recv() => match name {
                    Ok(name) if config.warm_on_update => Duty::Warm(Some(name), WarmupTrigger::Update),
                    // Which keyspaces changed is lost: warm them all.
                    Err(RecvError::Lagged(_)) if config.warm_on_update => {
                        Duty::Warm(None, WarmupTrigger::Update)
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
                event = async {
                    match topology.as_mut() {
                        Some(t) => t.recv().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Some(e) if e.change == TopologyChange::Joined && warm_on_join => {
                        Duty::Warm(None, WarmupTrigger::Join)
                    }
                    Some(e) if e.change == TopologyChange::Left && warm_on_leave => {
                        Duty::Warm(None, WarmupTrigger::Leave)
                    }
                    Some(e) if e.change == TopologyChange::Owning => Duty::DropHandedOver,
                    Some(_) => continue,
                    None => {
                        topology = None;
                        continue;
                    }
                },
                _ = aging.tick() => Duty::Age,
                _ = sharing.tick() => Duty::Share,
                _ = async {
                    match next_refresh {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    next_refresh = jittered(refresh_every).map(|d| deadline_after(tokio::time::Instant::now(), d));
                    Duty::Warm(None, WarmupTrigger::Refresh)
                }
            };
            let engine = match weak.upgrade() {
                Some(inner) => Engine::from_inner(inner),
                None => return,
            };
            if !engine.is_running() {
                return;
            }
            match duty {
                Duty::Warm(Some(name), trigger) => {
                    if let Err(e) = engine.warm_local(&name, trigger).await {
                        tracing::debug!(keyspace = %name, error = %e, "warmup skipped");
                    }
                }
                Duty::Warm(None, trigger) => {
                    if trigger == WarmupTrigger::Join {
                        engine.exchange_hot_keys().await;
                    }
                    engine.warm_all(trigger).await;
                }
                Duty::Age => {
                    for space in engine.inner.spaces_now().values() {
                        space.hot_keys.age();
                    }
                }
                Duty::Share => engine.exchange_hot_keys().await,
                Duty::DropHandedOver => engine.drop_handed_over().await,
            }
        }
    })
}

/// What the warmup manager was woken for.
enum Duty {
    /// Warm one keyspace, or (`None`) every keyspace.
    Warm(Option<String>, WarmupTrigger),
    /// Halve the hot-key counts.
    Age,
    /// Exchange hot keys with the peers.
    Share,
    /// Drop the entries a peer that is now owning took over.
    DropHandedOver,
}

/// `every` ± 10%, so nodes do not refresh in step (`None` when refresh is off).
fn jittered(every: Duration) -> Option<Duration> {
    if every.is_zero() {
        return None;
    }
    let tenth = every.as_secs_f64() / 10.0;
    let offset = (random() % 2001) as f64 / 1000.0 - 1.0; // -1.0 ..= 1.0
    Some(
        Duration::try_from_secs_f64((every.as_secs_f64() + offset * tenth).max(0.001))
            .unwrap_or(every),
    )
}
