//! A data source of fixed latency for the miss-path rows of `scripts/bench.sh`: an HTTP server
//! that a keyspace's `http` source (and the reference server's read-through) points at.
//!
//! `GET /v/{key}` waits, then answers `200` with `value_bytes` bytes; the wait is the
//! `delay_ms` query parameter when the URL has one (so one server gives keyspaces of
//! different latencies: `…/v/{key}?delay_ms=1`, `…?delay_ms=200`), else the configured
//! delay. The wait is a tokio timer, so its resolution is a millisecond. Every fetch is
//! counted, in total and per key: `GET /fetches` answers `{"total": n}`, `GET
//! /fetches/{key}` `{"key": …, "fetches": n}` — how bench.sh checks that N concurrent misses of
//! one key cost exactly one fetch.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::Result;

/// The value every key has and how long a fetch takes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Length of every value, in bytes.
    pub value_bytes: usize,
    /// The wait before each answer when the URL names none.
    pub delay: Duration,
}

/// Serves `config` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The routes, with fresh counts.
pub fn router(config: Config) -> Router {
    let state = Shared {
        value: Bytes::from(vec![b'v'; config.value_bytes]),
        delay: config.delay,
        total: AtomicU64::new(0),
        per_key: Mutex::new(HashMap::new()),
    };
    Router::new()
        .route("/v/{key}", get(fetch))
        .route("/fetches", get(total))
        .route("/fetches/{key}", get(of_key))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(state))
}

struct Shared {
    value: Bytes,
    delay: Duration,
    total: AtomicU64,
    per_key: Mutex<HashMap<String, u64>>,
}

type AppState = State<Arc<Shared>>;

#[derive(Deserialize)]
struct Delay {
    delay_ms: Option<u64>,
}

async fn fetch(
    State(s): AppState,
    Path(key): Path<String>,
    Query(delay): Query<Delay>,
) -> impl IntoResponse {
    let wait = delay.delay_ms.map_or(s.delay, Duration::from_millis);
    tokio::time::sleep(wait).await;
    s.total.fetch_add(1, Ordering::Relaxed);
    // A poisoned map only means a panic elsewhere mid-insert; the counts are still counts.
    let mut per_key = s.per_key.lock().unwrap_or_else(|p| p.into_inner());
    *per_key.entry(key).or_insert(0) += 1;
    drop(per_key);
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        s.value.clone(),
    )
}

async fn total(State(s): AppState) -> impl IntoResponse {
    Json(serde_json::json!({ "total": s.total.load(Ordering::Relaxed) }))
}

async fn of_key(State(s): AppState, Path(key): Path<String>) -> impl IntoResponse {
    let fetches = s
        .per_key
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .copied()
        .unwrap_or(0);
    Json(serde_json::json!({ "key": key, "fetches": fetches }))
}
