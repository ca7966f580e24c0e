//! Where a node's loads (and the work a request leaves running, such as a demand warmup)
//! run: on the runtime the engine was built in, whichever thread asks.
//!
//! The HTTP and Redis-protocol fronts serve their connections on event loops of their own
//! (`net/loops.rs`). A load started by one of them must not belong to that loop: it would
//! stop with it at shutdown while other callers wait on the same single-flight load, and a
//! busy connection would delay it. So every load is spawned on the engine's runtime, and
//! tracked so that `stop` can wait for them.

use std::future::Future;

use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

/// The tracked tasks of a node's loads and the runtime they run on.
#[derive(Clone, Debug)]
pub(crate) struct LoadTasks {
    tracker: TaskTracker,
    /// `None` when the engine was built outside a runtime: tasks run where they are started.
    runtime: Option<Handle>,
}

impl LoadTasks {
    /// Tasks on the runtime of the caller, if it runs in one.
    pub fn on_current_runtime() -> Self {
        LoadTasks {
            tracker: TaskTracker::new(),
            runtime: Handle::try_current().ok(),
        }
    }

    /// Starts `task` on the engine's runtime and tracks it.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => drop(self.tracker.spawn_on(task, runtime)),
            None => drop(self.tracker.spawn(task)),
        }
    }

    /// Starts `task` on the engine's runtime without tracking it: work a request starts that
    /// may outlive it (a demand warmup, a slot held until a load ends), which must not run on
    /// the event loop that served the request, and which `stop` does not wait for.
    pub fn spawn_detached<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
    }

    /// No more tasks are expected: [`wait`](Self::wait) ends once the running ones do.
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Waits for every task once [`close`](Self::close)d.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task started from a thread with a runtime of its own runs on the engine's runtime,
    /// tracked or not.
    #[test]
    fn tasks_run_on_the_runtime_they_were_made_in() {
        let engine_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("engine-rt")
            .enable_all()
            .build()
            .expect("a runtime");
        let tasks = engine_rt.block_on(async { LoadTasks::on_current_runtime() });
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (detached_tx, detached_rx) = tokio::sync::oneshot::channel();
        other.block_on(async {
            tasks.spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            });
            tasks.spawn_detached(async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = detached_tx.send(name);
            });
            let ran_on = rx.await.expect("the task ran");
            assert_eq!(ran_on.as_deref(), Some("engine-rt"));
            let ran_on = detached_rx.await.expect("the detached task ran");
            assert_eq!(ran_on.as_deref(), Some("engine-rt"));
        });
        tasks.close();
        engine_rt.block_on(tasks.wait());
        assert_eq!(tasks.len(), 0);
    }
}
