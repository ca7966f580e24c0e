//! The in-process twin of the partition scenarios, for machines where network namespaces
//! cannot be created: the nodes run in the test's process on an in-memory network
//! ([`TestCluster::in_memory`]), a partition makes every call across it lost
//! ([`Fault::Drop`](distcache::memnet::Fault)), and the same load and checker as
//! [`ChaosRun`](super::ChaosRun) judge the history.
//!
//! What it cannot show: the in-memory nodes share one catalog instead of raft, so catalog
//! writes on either side of the partition succeed; only the data path is partitioned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use distcache::{KeySpaceSpec, SourceSpec};

use super::checker::{Report, check};
use super::history::{Action, Answer, History};
use super::source::ChaosSource;
use super::{Dispatch, KEYSPACE, READ_DEADLINE, data_client, read_answer, rules, write_answer};
use crate::TestCluster;

/// An in-memory cluster under load, with its history.
pub struct MemoryRun {
    /// The nodes.
    pub cluster: Arc<TestCluster>,
    /// Their data source (over loopback: the in-memory network carries peer calls only).
    pub source: ChaosSource,
    /// Everything recorded so far.
    pub history: Arc<History>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MemoryRun {
    /// Starts `nodes` in-memory nodes reading from a fresh source, and waits until they form
    /// a cluster.
    pub async fn start(nodes: usize) -> MemoryRun {
        let source = ChaosSource::start().await;
        let mut spec = KeySpaceSpec::new(KEYSPACE, SourceSpec::Http { url: source.url() });
        spec.read_timeout = Some(READ_DEADLINE);
        let cluster = TestCluster::builder(nodes)
            .in_memory()
            .specs(vec![spec])
            .build()
            .await;
        cluster.wait_converged().await;
        MemoryRun {
            cluster: Arc::new(cluster),
            source,
            history: Arc::new(History::new()),
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        }
    }

    /// Starts `clients` data clients calling the nodes' engines directly.
    pub fn load(&mut self, clients: usize) {
        let cluster = Arc::clone(&self.cluster);
        let send: Dispatch = Arc::new(move |node, action| {
            let cluster = Arc::clone(&cluster);
            Box::pin(async move {
                let engine = cluster.node(node).engine();
                match action {
                    Action::Get { key } => read_answer(engine.get(KEYSPACE, &key).await),
                    Action::Put { key, value } => {
                        write_answer(engine.put(KEYSPACE, &key, value.into_bytes()).await)
                    }
                    Action::Delete { key } => write_answer(engine.delete(KEYSPACE, &key).await),
                    Action::Catalog { .. } => Answer::Failed("not a data operation".into()),
                }
            })
        });
        let n = self.cluster.ids.len();
        for c in 0..clients {
            let (send, history, stop) = (
                Arc::clone(&send),
                Arc::clone(&self.history),
                Arc::clone(&self.stop),
            );
            self.tasks
                .push(tokio::spawn(data_client(c, n, send, history, stop)));
        }
    }

    /// Lets the load run for `period`.
    pub async fn run_for(&self, period: Duration) {
        tokio::time::sleep(period).await;
    }

    /// Cuts `minority` off from the other nodes: every call across is lost, both ways.
    pub fn partition(&self, minority: &[usize]) {
        let network = self.cluster.network().expect("an in-memory cluster");
        let side = |cut: bool| -> Vec<&str> {
            (self.cluster.ids.iter().enumerate())
                .filter(|(i, _)| minority.contains(i) == cut)
                .map(|(_, id)| id.as_str())
                .collect()
        };
        let (a, b) = (side(true), side(false));
        self.history.cut(minority);
        network.partition(&a, &b);
    }

    /// Heals every partition.
    pub fn heal(&self) {
        if let Some(network) = self.cluster.network() {
            network.heal();
        }
        self.history.mend();
    }

    /// Stops the load and checks the history.
    pub async fn finish(mut self, scenario: &str) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        check(scenario, &self.history, &rules())
    }
}

impl Drop for MemoryRun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}
