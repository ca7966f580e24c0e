//! `GET /metrics`: the node's counters, gauges and histograms in the Prometheus text format
//! (0.0.4).
//!
//! Everything is read at scrape time from what the node records anyway — the per-keyspace
//! counters and histograms (`telemetry`), cache sizes and breaker states, calls to peers, the
//! HTTP server's request durations, the ring and the control plane's status — so a request
//! served between scrapes pays only its atomic adds. Labels are keyspace names, peer
//! addresses, route templates and fixed words, never keys: the number of series stays
//! bounded. The route needs the admin role like the other admin routes, unless the node
//! serves it openly (`server.metrics_open`, `--metrics-open`).
//!
//! `metrics/families.rs` writes the families; this module gathers one [`Scrape`].

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ApiError;
use super::http_metrics::HttpSeries;
use crate::error::Error;
use crate::stats::KeySpaceSnapshot;
use crate::telemetry::{FetchOutcome, HistogramSnapshot, Op, OpSnapshot, PeerCallSnapshot};

mod families;

/// What one scrape shows, read before encoding.
#[derive(Debug)]
pub(crate) struct Scrape {
    pub keyspaces: Vec<KeySpaceSnapshot>,
    /// `(keyspace, operation, calls)`: operations on keys of live keyspaces, and operations
    /// counted on the node (keyspace operations; calls for missing keyspaces, keyspace "").
    pub ops: Vec<(String, Op, OpSnapshot)>,
    /// `(keyspace, outcome, durations)` of data-source fetches.
    pub fetches: Vec<(String, FetchOutcome, HistogramSnapshot)>,
    pub peers: Vec<PeerCallSnapshot>,
    pub catalog_commit: HistogramSnapshot,
    pub http: Vec<HttpSeries>,
    pub ring_members: usize,
    pub revision: u64,
    pub raft: Option<(u64, bool)>,
}

impl Scrape {
    /// Reads everything the node's metrics show.
    pub async fn gather(state: &AppState) -> Scrape {
        let engine = &state.engine;
        let telemetry = &engine.inner.telemetry;
        let mut ops = Vec::new();
        let mut fetches = Vec::new();
        let mut spaces: Vec<_> = engine.inner.spaces_now().values().cloned().collect();
        spaces.sort_by(|a, b| a.name().cmp(b.name()));
        for space in &spaces {
            let name = space.name();
            for (op, snapshot) in space.stats.ops() {
                ops.push((name.to_owned(), op, snapshot));
            }
            for (outcome, durations) in space.stats.fetches.snapshot() {
                fetches.push((name.to_owned(), outcome, durations));
            }
        }
        for (op, keyspace, snapshot) in telemetry.ops.snapshot() {
            ops.push((keyspace, op, snapshot));
        }
        Scrape {
            keyspaces: engine.stats().await,
            ops,
            fetches,
            peers: engine
                .cluster()
                .map(|c| c.peer_calls().snapshot())
                .unwrap_or_default(),
            catalog_commit: telemetry.catalog_commit.snapshot(),
            http: state.http.snapshot(),
            ring_members: engine
                .cluster()
                .map_or(1, |cluster| cluster.ring_ids().len()),
            revision: engine.revision(),
            raft: state.control.as_ref().map(|control| {
                let status = control.status();
                let leading = status.leader.as_deref() == Some(state.node_id.as_str());
                (status.term, leading)
            }),
        }
    }
}

/// The exposition content type: the Prometheus text format.
const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The node's metrics for Prometheus. Needs the admin role, unless the node serves them
/// openly (`server.metrics_open`, `--metrics-open`) for scrapers without a token.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "admin",
    responses(
        (status = 200, description = "Counters, gauges and histograms in the Prometheus text format (0.0.4).", body = String, content_type = "text/plain"),
    ),
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let scrape = Scrape::gather(&state).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(|e| Error::Internal(format!("cannot encode the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
