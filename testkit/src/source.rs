//! A scriptable data source that counts its fetches, and the spec of a keyspace over it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use distcache::{
    DataSource, FetchResult, Fetched, KeySpaceSpec, SourceError, SourceSpec, async_trait,
};
use tokio::sync::watch;

/// A data source whose behaviour follows the key's prefix:
/// `missing…` → not found, `fail…` → error, `slow…` → waits for the gate, anything else →
/// `v:<key>`. Every fetch is counted, per key and in total, and so are the fetches running at
/// once (now and at most).
pub struct TestSource {
    fetches: AtomicUsize,
    batches: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    per_key: Mutex<HashMap<String, usize>>,
    gate: watch::Sender<bool>,
    failing: AtomicBool,
    delay: Mutex<Duration>,
    ttl: Mutex<Option<Duration>>,
    batching: bool,
}

impl TestSource {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::build(false))
    }

    /// Overrides `fetch_many` with a real batch call (counted in `batches`).
    pub fn batching() -> Arc<Self> {
        Arc::new(Self::build(true))
    }

    fn build(batching: bool) -> Self {
        TestSource {
            fetches: AtomicUsize::new(0),
            batches: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            per_key: Mutex::new(HashMap::new()),
            gate: watch::Sender::new(false),
            failing: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            ttl: Mutex::new(None),
            batching,
        }
    }

    /// Lets `slow…` keys answer.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Makes every fetch fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Delays every fetch.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Gives every fetched value this TTL.
    pub fn set_ttl(&self, ttl: Option<Duration>) {
        *self.ttl.lock().unwrap() = ttl;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }

    /// Fetches of keys running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most fetches of keys that ever ran at once.
    pub fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    pub fn fetches_of(&self, key: &str) -> usize {
        self.per_key.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    async fn answer(&self, key: &str) -> FetchResult {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        // Counted down however the fetch ends, cancelled by a deadline too.
        let _running = Running(&self.running);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        *self
            .per_key
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if key.starts_with("slow") {
            let mut gate = self.gate.subscribe();
            let _ = gate.wait_for(|open| *open).await;
        }
        if self.failing.load(Ordering::SeqCst) || key.starts_with("fail") {
            return Err(SourceError::new(format!("cannot load {key}")));
        }
        if key.starts_with("missing") {
            return Ok(None);
        }
        let value = format!("v:{key}");
        Ok(Some(match *self.ttl.lock().unwrap() {
            Some(ttl) => Fetched::with_ttl(value, ttl),
            None => Fetched::new(value),
        }))
    }
}

/// One running fetch, counted down when dropped.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl DataSource for TestSource {
    async fn fetch(&self, key: &str) -> FetchResult {
        self.answer(key).await
    }

    async fn fetch_many(&self, keys: &[String]) -> Vec<FetchResult> {
        if self.batching {
            self.batches.fetch_add(1, Ordering::SeqCst);
        }
        futures::future::join_all(keys.iter().map(|k| self.answer(k))).await
    }
}

/// The spec of keyspace `name` reading from the source registered as `test`.
pub fn spec(name: &str) -> KeySpaceSpec {
    KeySpaceSpec::new(
        name,
        SourceSpec::Registered {
            name: "test".into(),
        },
    )
}
