//! The event loops the Redis-protocol front serves its connections on: one thread each,
//! with a single-threaded tokio runtime of its own (thread per core, as Redis' I/O threads
//! and Dragonfly do).
//!
//! On the node's work-stealing runtime, every reply to a small command woke a parked worker
//! thread through a futex: a fifth of the front's CPU went to switching threads (perf, GET
//! at -P16). A connection that lives on one loop from accept to close is woken by that
//! loop's own epoll, and touches no other thread on a hit. The accept loop stays on the
//! node's runtime and hands each accepted socket to the loop with the fewest connections.
//! Loads a command starts run on the engine's runtime (`space/tasks.rs`), not here.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::Front;
use crate::tls::NodeTls;

/// An accepted connection on its way to a loop; the permit counts it against
/// `max_connections` until it closes.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// One loop: where to send it connections, how many it serves, and its end.
struct Shard {
    inbox: mpsc::UnboundedSender<Accepted>,
    open: Arc<AtomicUsize>,
    done: oneshot::Receiver<()>,
}

/// The front's loops.
pub(crate) struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// Starts `threads` loops (at least one) serving connections of `front`, over TLS
    /// with `tls`; they close their connections when `shutdown` fires.
    pub fn start(
        threads: usize,
        front: &Arc<Front>,
        tls: Option<Arc<NodeTls>>,
        shutdown: &watch::Receiver<bool>,
    ) -> io::Result<Shards> {
        let mut shards = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (inbox, arrivals) = mpsc::unbounded_channel();
            let (finished, done) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let front = Arc::clone(front);
            let tls = tls.clone();
            let shutdown = shutdown.clone();
            let counted = Arc::clone(&open);
            std::thread::Builder::new()
                .name(format!("resp-{index}"))
                .spawn(move || {
                    runtime.block_on(run(arrivals, front, tls, shutdown, counted));
                    // Whatever a connection left behind (a timer, a peer call) ends here,
                    // without waiting.
                    runtime.shutdown_background();
                    let _ = finished.send(());
                })?;
            shards.push(Shard { inbox, open, done });
        }
        Ok(Shards { shards })
    }

    /// Hands `stream` to the loop serving the fewest connections.
    pub fn hand(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot hand a RESP connection over");
                return;
            }
        };
        let Some(shard) = self
            .shards
            .iter()
            .min_by_key(|s| s.open.load(Ordering::Relaxed))
        else {
            return;
        };
        shard.open.fetch_add(1, Ordering::Relaxed);
        if shard
            .inbox
            .send(Accepted {
                stream,
                peer,
                permit,
            })
            .is_err()
        {
            shard.open.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%peer, "a RESP loop has stopped; connection dropped");
        }
    }

    /// Takes no more connections and waits until every loop has closed its own: idle ones
    /// at once, busy ones once they have answered what they read (at most the request
    /// deadline and a second).
    pub async fn finish(self) {
        let mut ends = Vec::with_capacity(self.shards.len());
        for shard in self.shards {
            drop(shard.inbox);
            ends.push(shard.done);
        }
        for end in ends {
            let _ = end.await;
        }
    }
}

/// One loop: serves the connections it is handed until the node stops, then drains them.
async fn run(
    mut arrivals: mpsc::UnboundedReceiver<Accepted>,
    front: Arc<Front>,
    tls: Option<Arc<NodeTls>>,
    shutdown: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            arrived = arrivals.recv() => match arrived {
                Some(accepted) => {
                    let front = Arc::clone(&front);
                    let acceptor = tls.as_ref().map(|tls| tls.acceptor());
                    let stop = shutdown.clone();
                    let open = Arc::clone(&open);
                    connections.spawn(async move {
                        let Accepted { stream, peer, permit } = accepted;
                        super::connection(stream, peer, &front, acceptor, stop).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // The accept loop has stopped: connections saw the same signal, idle ones close and
    // busy ones finish what they read.
    let limit = front.request_timeout + Duration::from_secs(1);
    let drained = tokio::time::timeout(limit, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "RESP connections still busy after the request deadline; closing them"
        );
        connections.shutdown().await;
    }
}
