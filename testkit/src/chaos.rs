//! Fault injection against real node processes, with a checker: the chaos suite's parts.
//!
//! A [`ChaosRun`] starts a [`ProcCluster`] of `distcache node start` processes reading from a
//! [`ChaosSource`], runs a bounded client load that records every operation with its
//! invocation and completion time in a [`History`] (reads, puts and deletes of a few hot keys
//! on every node; catalog updates through any node; each node's catalog revision polled), and
//! lets a scenario inject faults (kill -9, SIGTERM, SIGSTOP/SIGCONT, restart, a slow or failing
//! source, and — for a cluster started in network namespaces ([`NetLab`]) — partitions) while
//! it runs. [`check`] then reads the history and reports wrong values, stale
//! reads, lost puts, catalog anomalies, late reads and the failure rate of reads to live nodes
//! as one table row ([`Report`]).
//!
//! Used by `cli/tests/chaos.rs` (bounded tests in the suite) and `scripts/chaos.sh` (the same
//! scenarios, longer, printing the table). To look into a run: `CHAOS_LOG` sets the nodes'
//! log filter (e.g. `info,distcache::space=debug`), and `CHAOS_KEEP_LOGS=1` keeps their logs
//! and data when the run ends and prints where.

mod checker;
mod history;
mod memory;
mod netns;
mod procs;
mod source;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use distcache::client::Client;
use distcache::{Error, KeySpaceSpec, SourceSpec};
use futures::future::BoxFuture;

pub use checker::{Report, Rules, check, source_value};
pub use history::{Action, Answer, CatalogView, History, Record};
pub use memory::MemoryRun;
pub use netns::{NetLab, NetnsError};
pub use procs::ProcCluster;
pub use source::ChaosSource;

/// The keyspace the load reads and writes.
pub const KEYSPACE: &str = "chaos";
/// The keyspace the catalog writer updates.
pub const PROBE: &str = "probe";
/// How many distinct keys the load uses: few, so that reads race writes.
pub const KEYS: u64 = 16;
/// The read deadline of the chaos keyspace.
pub const READ_DEADLINE: Duration = Duration::from_secs(1);
/// The client's limit per request: past the deadline, so a late answer is seen as late.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// A cluster under load, with its history.
pub struct ChaosRun {
    /// The node processes.
    pub cluster: ProcCluster,
    /// Their data source.
    pub source: ChaosSource,
    /// Everything recorded so far.
    pub history: Arc<History>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long after a heal the two sides may still act on what they saw while cut off.
const HEAL_GRACE: Duration = Duration::from_secs(1);

impl ChaosRun {
    /// Starts `nodes` processes of `binary` and waits until they form a cluster.
    pub async fn start(binary: &Path, nodes: usize) -> ChaosRun {
        ChaosRun::start_in(binary, nodes, None, 1).await
    }

    /// [`start`](Self::start), with `replicas` nodes holding each put of the load's keyspace.
    pub async fn start_with(binary: &Path, nodes: usize, replicas: u8) -> ChaosRun {
        ChaosRun::start_in(binary, nodes, None, replicas).await
    }

    /// [`start`](Self::start), each node in its own namespace of `net` when it is given: then
    /// the source listens on the hub's address, and the run must be driven from a runtime in
    /// the hub ([`NetLab::runtime`]); `replicas` nodes hold each put of the load's keyspace.
    pub async fn start_in(
        binary: &Path,
        nodes: usize,
        net: Option<NetLab>,
        replicas: u8,
    ) -> ChaosRun {
        let source = match &net {
            Some(net) => ChaosSource::start_on(&net.hub_ip()).await,
            None => ChaosSource::start().await,
        };
        let keyspaces = format!(
            "[[keyspace]]\nname = \"{KEYSPACE}\"\nread_timeout = \"{}\"\nreplicas = {replicas}\nsource = {{ kind = \"http\", url = \"{}\" }}\n\n\
             [[keyspace]]\nname = \"{PROBE}\"\nsource = {{ kind = \"none\" }}\n",
            humantime::format_duration(READ_DEADLINE),
            source.url()
        );
        let cluster = ProcCluster::start_in(binary, nodes, &keyspaces, net).await;
        ChaosRun {
            cluster,
            source,
            history: Arc::new(History::new()),
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        }
    }

    /// Starts the load: `clients` data clients, one catalog writer, one catalog poller.
    pub fn load(&mut self, clients: usize) {
        let all: Vec<usize> = (0..self.cluster.len()).collect();
        self.load_with(clients, &all);
    }

    /// [`load`](Self::load), with the catalog writer sending through `writers` only.
    pub fn load_with(&mut self, clients: usize, writers: &[usize]) {
        let n = self.cluster.len();
        let send = over_http(
            (0..n)
                .map(|i| self.cluster.client(i, CLIENT_TIMEOUT))
                .collect(),
        );
        for c in 0..clients {
            let (send, history, stop) = (
                Arc::clone(&send),
                Arc::clone(&self.history),
                Arc::clone(&self.stop),
            );
            self.tasks
                .push(tokio::spawn(data_client(c, n, send, history, stop)));
        }
        let writer = self.cluster.clients_of(writers, Duration::from_secs(10));
        let (history, stop) = (Arc::clone(&self.history), Arc::clone(&self.stop));
        self.tasks
            .push(tokio::spawn(catalog_writer(writer, history, stop)));
        let pollers: Vec<Client> = (0..n)
            .map(|i| self.cluster.client(i, Duration::from_millis(500)))
            .collect();
        let (history, stop) = (Arc::clone(&self.history), Arc::clone(&self.stop));
        self.tasks
            .push(tokio::spawn(catalog_poller(pollers, history, stop)));
    }

    /// Lets the load run for `period`.
    pub async fn run_for(&self, period: Duration) {
        tokio::time::sleep(period).await;
    }

    /// kill -9 of node `i`.
    pub fn kill(&mut self, i: usize) {
        self.history.down(i);
        self.cluster.kill(i);
    }

    /// SIGTERM of node `i`, waiting for it to end.
    pub async fn stop_node(&mut self, i: usize) {
        self.history.down(i);
        self.cluster.stop(i).await;
    }

    /// SIGSTOP of node `i`.
    pub fn pause(&mut self, i: usize) {
        self.history.down(i);
        self.cluster.pause(i);
    }

    /// SIGCONT of node `i`.
    pub fn resume(&mut self, i: usize) {
        self.cluster.resume(i);
        self.history.up(i);
    }

    /// Cuts `minority` off from the other nodes, both ways (clients still reach everyone).
    pub fn partition(&mut self, minority: &[usize]) {
        let majority: Vec<usize> = (0..self.cluster.len())
            .filter(|i| !minority.contains(i))
            .collect();
        self.history.cut(minority);
        if let Err(e) = self.cluster.partition(minority, &majority) {
            panic!("cannot partition: {e}");
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        if let Err(e) = self.cluster.heal() {
            panic!("cannot heal: {e}");
        }
        self.history.mend();
    }

    /// Sends catalog updates through node `i` alone, one every `every` for `period` (each
    /// waited for up to `timeout`), and returns them as recorded.
    pub async fn catalog_writes_through(
        &self,
        i: usize,
        period: Duration,
        every: Duration,
        timeout: Duration,
    ) -> Vec<Record> {
        let client = Arc::new(self.cluster.client(i, timeout));
        let until = tokio::time::Instant::now() + period;
        let mut writes = Vec::new();
        while tokio::time::Instant::now() < until {
            let (client, history) = (Arc::clone(&client), Arc::clone(&self.history));
            writes.push(tokio::spawn(async move {
                write_marker(&client, i, &history).await
            }));
            tokio::time::sleep(every).await;
        }
        let mut records = Vec::new();
        for write in writes {
            if let Ok(record) = write.await {
                records.push(record);
            }
        }
        records
    }

    /// Starts node `i` again on its data directory and waits until it serves.
    pub async fn restart(&mut self, i: usize) {
        self.cluster.spawn(i);
        self.cluster.wait_ready(&[i]).await;
        self.history.up(i);
    }

    /// Stops the load and checks the history.
    pub async fn finish(mut self, scenario: &str) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        // Every node ends with the catalog's last word: poll each once more.
        let last = self.history.now();
        for i in 0..self.cluster.len() {
            let client = self.cluster.client(i, Duration::from_secs(2));
            if let Ok(list) = client.keyspaces().await {
                self.history.view(view_of(i, last, &list));
            }
        }
        let report = check(scenario, &self.history, &rules());
        if let Some(i) = self.cluster.panicked() {
            panic!("node {i} panicked; its log:\n{}", self.cluster.log(i));
        }
        report
    }
}

impl Drop for ChaosRun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The checker's rules for chaos runs.
pub(crate) fn rules() -> Rules {
    Rules {
        read_deadline: READ_DEADLINE,
        allowance: Duration::from_millis(500),
        restart_grace: Duration::from_secs(1),
        heal_grace: HEAL_GRACE,
    }
}

/// A small, fast, seeded generator (xorshift64*): runs are reproducible per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Sends one data operation to node `n` and says what it answered.
pub(crate) type Dispatch = Arc<dyn Fn(usize, Action) -> BoxFuture<'static, Answer> + Send + Sync>;

/// The data operations of the load, over HTTP to each node's client.
fn over_http(nodes: Vec<Client>) -> Dispatch {
    let nodes = Arc::new(nodes);
    Arc::new(move |node, action| {
        let nodes = Arc::clone(&nodes);
        Box::pin(async move {
            let client = &nodes[node];
            match action {
                Action::Get { key } => read_answer(client.get(KEYSPACE, &key).await),
                Action::Put { key, value } => {
                    write_answer(client.put(KEYSPACE, &key, value.into_bytes(), None).await)
                }
                Action::Delete { key } => write_answer(client.delete(KEYSPACE, &key).await),
                Action::Catalog { .. } => Answer::Failed("not a data operation".into()),
            }
        })
    })
}

/// One data client: reads (70 %), puts (22 %) and deletes of the [`KEYS`] keys on random
/// nodes of `nodes`, each recorded, until `stop`. Like a client behind a health-checking
/// balancer, it sends nothing to a node that is down (killed, stopped or paused) while
/// another is up: the live nodes keep their load while one is gone, so the failure rate of
/// reads to them is measured over as many reads as before.
pub(crate) async fn data_client(
    id: usize,
    nodes: usize,
    send: Dispatch,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut node = (rng.next() % nodes as u64) as usize;
        for _ in 0..nodes {
            if !history.is_down(node) {
                break;
            }
            node = (node + 1) % nodes;
        }
        let key = format!("k{}", rng.next() % KEYS);
        let roll = rng.next() % 100;
        let action = if roll < 70 {
            Action::Get { key }
        } else if roll < 92 {
            seq += 1;
            let value = format!("v:{id}:{seq}");
            Action::Put { key, value }
        } else {
            Action::Delete { key }
        };
        let invoked = history.now();
        let answer = send(node, action.clone()).await;
        history.record(Record {
            node,
            action,
            answer,
            invoked,
            completed: history.now(),
        });
        // Pacing, not synchronisation: keeps the load bounded on a 2-core machine.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn catalog_writer(client: Client, history: Arc<History>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        write_marker(&client, 0, &history).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One catalog update with a fresh marker, recorded as sent to `node`.
async fn write_marker(client: &Client, node: usize, history: &History) -> Record {
    static MARKER: AtomicU64 = AtomicU64::new(0);
    let marker = MARKER.fetch_add(1, Ordering::Relaxed) + 1;
    let mut spec = KeySpaceSpec::new(PROBE, SourceSpec::None);
    spec.default_ttl = Some(Duration::from_secs(marker));
    let invoked = history.now();
    let answer = match client.put_keyspace(&spec, None).await {
        Ok(change) => Answer::Revision(change.revision),
        Err(e) => failed(&e),
    };
    let record = Record {
        node,
        action: Action::Catalog { marker },
        answer,
        invoked,
        completed: history.now(),
    };
    history.record(record.clone());
    record
}

async fn catalog_poller(nodes: Vec<Client>, history: Arc<History>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        for (i, client) in nodes.iter().enumerate() {
            if let Ok(list) = client.keyspaces().await {
                history.view(view_of(i, history.now(), &list));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn view_of(node: usize, at: Duration, list: &distcache::wire::KeySpaceList) -> CatalogView {
    let marker = list
        .keyspaces
        .iter()
        .find(|k| k.name == PROBE)
        .and_then(|k| k.default_ttl)
        .map(|ttl| ttl.as_secs());
    CatalogView {
        node,
        at,
        revision: list.revision,
        marker,
    }
}

/// What a read answered, as the history records it.
pub(crate) fn read_answer<V: AsRef<[u8]>>(read: Result<Option<V>, Error>) -> Answer {
    match read {
        Ok(value) => Answer::Value(value.map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())),
        Err(e) => failed(&e),
    }
}

/// What a put or delete answered, as the history records it.
pub(crate) fn write_answer(write: Result<(), Error>) -> Answer {
    write.map_or_else(|e| failed(&e), |()| Answer::Done)
}

pub(crate) fn failed(e: &Error) -> Answer {
    Answer::Failed(format!("{}: {e}", e.code()))
}
