//! The event loops a node serves its connections on: one thread each, with a
//! single-threaded tokio runtime of its own (thread per core, as Redis' I/O threads,
//! memcached's workers and Dragonfly do).
//!
//! On a work-stealing runtime, the answer to a small request often woke a parked worker
//! thread through a futex: for GET hits over RESP, a fifth of the CPU went to switching
//! threads (perf, redis-benchmark -P16). A connection that lives on one loop from accept to
//! close is woken by that loop's own epoll and, on a cache hit, touches no other thread.
//! Accept loops stay on the node's runtime and hand each accepted socket to the loop serving
//! the fewest connections. Loads run on the engine's runtime (`space/tasks.rs`), not here.
//!
//! A task handed over is a future that registers its socket with the loop when first
//! polled (`TcpStream::from_std` inside it), so that the socket's readiness comes from the
//! loop it lives on.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One loop: where to send it tasks, how many it runs, and its end.
struct Loop {
    inbox: mpsc::UnboundedSender<Task>,
    running: Arc<AtomicUsize>,
}

/// A node's event loops. Dropping them (or [`stop`](Self::stop)) ends each loop once it has
/// no more tasks; what a task left behind (a timer, a spawned task) is dropped with it.
pub(crate) struct EventLoops {
    /// Empty once stopped. Locked once per connection, never per request.
    loops: std::sync::Mutex<Vec<Loop>>,
    ends: tokio::sync::Mutex<Vec<oneshot::Receiver<()>>>,
    threads: usize,
}

impl std::fmt::Debug for EventLoops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoops")
            .field("threads", &self.threads)
            .finish()
    }
}

impl EventLoops {
    /// Starts `threads` loops (at least one), named `<name>-<i>`.
    pub fn start(name: &str, threads: usize) -> io::Result<EventLoops> {
        let mut loops = Vec::with_capacity(threads.max(1));
        let mut ends = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (inbox, tasks) = mpsc::unbounded_channel();
            let (finished, end) = oneshot::channel();
            let running = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&running);
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    runtime.block_on(run(tasks, counted));
                    runtime.shutdown_background();
                    let _ = finished.send(());
                })?;
            loops.push(Loop { inbox, running });
            ends.push(end);
        }
        Ok(EventLoops {
            threads: loops.len(),
            loops: std::sync::Mutex::new(loops),
            ends: tokio::sync::Mutex::new(ends),
        })
    }

    /// Runs `task` on the loop running the fewest tasks. A task handed over after
    /// [`stop`](Self::stop) is dropped.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.spawn_within(usize::MAX, task);
    }

    /// Runs `task` on whichever of the first `width` loops (at least one) runs the fewest
    /// tasks: a front whose connections do better on fewer loops than the node runs.
    pub fn spawn_within(&self, width: usize, task: impl Future<Output = ()> + Send + 'static) {
        let loops = self.lock();
        let Some(chosen) = loops
            .iter()
            .take(width.max(1))
            .min_by_key(|l| l.running.load(Ordering::Relaxed))
        else {
            return;
        };
        chosen.running.fetch_add(1, Ordering::Relaxed);
        if chosen.inbox.send(Box::pin(task)).is_err() {
            chosen.running.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!("an event loop has stopped; task dropped");
        }
    }

    /// Loops in all.
    pub fn len(&self) -> usize {
        self.threads
    }

    /// Ends every loop once its tasks are done, and waits for that. Callers end their own
    /// tasks first (each front closes its connections at shutdown).
    pub async fn stop(&self) {
        drop(std::mem::take(&mut *self.lock()));
        let mut ends = self.ends.lock().await;
        for end in ends.drain(..) {
            let _ = end.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Loop>> {
        self.loops.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts one connection of `front` (`"HTTP"`, `"RESP"`) on `listener`, with `TCP_NODELAY`,
/// taken off this runtime's reactor so that a loop can register it with its own. `None`
/// when the accept failed: about one connection (reset before accept), or about the process
/// (out of file descriptors), which gets a pause so the caller does not spin while nothing
/// can be accepted. Neither ends the caller's accept loop.
pub(crate) async fn accept(
    listener: &TcpListener,
    front: &str,
) -> Option<(std::net::TcpStream, SocketAddr)> {
    use std::io::ErrorKind;
    let (stream, peer) = match listener.accept().await {
        Ok(accepted) => accepted,
        Err(e) => {
            match e.kind() {
                ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset
                | ErrorKind::Interrupted => {
                    tracing::debug!(error = %e, front, "a connection failed before it was accepted");
                }
                _ => {
                    tracing::warn!(error = %e, front, "cannot accept connections; retrying in 100ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            return None;
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, front, "cannot set TCP_NODELAY");
    }
    match stream.into_std() {
        Ok(stream) => Some((stream, peer)),
        Err(e) => {
            tracing::debug!(%peer, error = %e, front, "cannot hand a connection over to a loop");
            None
        }
    }
}

/// One loop: runs the tasks it is handed until no sender is left and they are all done.
async fn run(mut tasks: mpsc::UnboundedReceiver<Task>, running: Arc<AtomicUsize>) {
    let mut set = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            task = tasks.recv() => match task {
                Some(task) => {
                    let running = Arc::clone(&running);
                    set.spawn(async move {
                        task.await;
                        running.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                None => break,
            },
            Some(_) = set.join_next(), if !set.is_empty() => {}
        }
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks run on the loops' own threads, spread over them, and `stop` waits for them.
    #[test]
    fn tasks_run_on_the_loops_and_stop_waits_for_them() {
        let loops = EventLoops::start("test-loop", 2).expect("loops start");
        assert_eq!(loops.len(), 2);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        for _ in 0..4 {
            let tx = tx.clone();
            let gate = Arc::clone(&gate);
            loops.spawn(async move {
                let _pass = gate.acquire().await;
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            });
        }
        drop(tx);
        let spread: Vec<usize> = loops
            .lock()
            .iter()
            .map(|l| l.running.load(Ordering::Relaxed))
            .collect();
        assert_eq!(spread, vec![2, 2], "the fewest-tasks rule spreads them");
        gate.add_permits(4);
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        main.block_on(async {
            let mut names = Vec::new();
            while let Some(name) = rx.recv().await {
                names.push(name.unwrap_or_default());
            }
            names.sort();
            assert_eq!(
                names,
                ["test-loop-0", "test-loop-0", "test-loop-1", "test-loop-1"]
            );
            loops.stop().await;
        });
    }

    /// `spawn_within` keeps to the first loops, spread over those; `spawn` spreads over all.
    #[test]
    fn spawn_within_keeps_to_the_first_loops() {
        let loops = EventLoops::start("test-within", 3).expect("loops start");
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let waiting = || {
            let gate = Arc::clone(&gate);
            async move {
                let _pass = gate.acquire().await;
            }
        };
        for _ in 0..4 {
            loops.spawn_within(2, waiting());
        }
        loops.spawn_within(0, waiting());
        let running = |loops: &EventLoops| -> Vec<usize> {
            loops
                .lock()
                .iter()
                .map(|l| l.running.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(running(&loops), vec![3, 2, 0], "width 0 counts as 1");
        loops.spawn(waiting());
        assert_eq!(running(&loops), vec![3, 2, 1]);
        gate.add_permits(6);
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        main.block_on(loops.stop());
        assert_eq!(
            running(&loops),
            Vec::<usize>::new(),
            "stopped loops are gone"
        );
    }
}
