//! The data source of chaos runs: an HTTP server (on loopback, or on a lab's hub address)
//! answering `src:<key>` for every key, which a scenario can slow down, make fail, or make
//! flap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::checker::source_value;

#[derive(Default)]
struct Behaviour {
    delay_ms: AtomicU64,
    failing: AtomicBool,
    /// When set, the source fails on every other request.
    flapping: AtomicBool,
    requests: AtomicUsize,
}

/// A running chaos source; stops when dropped.
pub struct ChaosSource {
    addr: String,
    behaviour: Arc<Behaviour>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosSource {
    /// Starts the source on a free loopback port.
    pub async fn start() -> ChaosSource {
        ChaosSource::start_on("127.0.0.1").await
    }

    /// Starts the source on a free port of `ip`.
    pub async fn start_on(ip: &str) -> ChaosSource {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let behaviour = Arc::new(Behaviour::default());
        let app = axum::Router::new()
            .route("/items/{key}", axum::routing::get(item))
            .with_state(Arc::clone(&behaviour));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ChaosSource {
            addr,
            behaviour,
            task,
        }
    }

    /// The keyspace's `source.url` template.
    pub fn url(&self) -> String {
        format!("http://{}/items/{{key}}", self.addr)
    }

    /// Answers every request after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.behaviour
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Answers every request with 500 while `failing`.
    pub fn set_failing(&self, failing: bool) {
        self.behaviour.failing.store(failing, Ordering::Relaxed);
    }

    /// Fails every other request while `flapping`.
    pub fn set_flapping(&self, flapping: bool) {
        self.behaviour.flapping.store(flapping, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.behaviour.requests.load(Ordering::Relaxed)
    }
}

impl Drop for ChaosSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn item(State(b): State<Arc<Behaviour>>, Path(key): Path<String>) -> impl IntoResponse {
    let n = b.requests.fetch_add(1, Ordering::Relaxed);
    let delay = b.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let flap = b.flapping.load(Ordering::Relaxed) && n % 2 == 1;
    if b.failing.load(Ordering::Relaxed) || flap {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "chaos: failing".to_owned(),
        );
    }
    (StatusCode::OK, source_value(&key))
}
