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
//! `stats/families.rs` names the families; `metrics/encode.rs` writes them in the text
//! format; this module gathers one [`Scrape`] and answers the route.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ApiError;
use distcache_control::ControlPlane;

use crate::error::Error;
use crate::stats::Scrape;
use crate::wire::WireCode;

mod encode;

/// Everything the node's metrics show: the engine's, with its caches settled so that
/// sizes are exact, the HTTP server's and the control plane's.
pub(crate) async fn gather(state: &AppState) -> Scrape {
    let engine = &state.engine;
    let mut scrape = engine.scrape_now();
    scrape.keyspaces = engine.stats().await;
    scrape.http = state.http.snapshot();
    scrape.raft = raft_status(state.control.as_ref(), &state.node_id);
    scrape
}

/// `(term, leading)` of the control plane, when the node runs one.
pub(crate) fn raft_status(control: Option<&ControlPlane>, node_id: &str) -> Option<(u64, bool)> {
    control.map(|control| {
        let status = control.status();
        (status.term, status.leader.as_deref() == Some(node_id))
    })
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
        (status = 404, description = "The node keeps no metrics (`server.metrics = false`).", body = crate::wire::ErrorBody),
    ),
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    if !state.config.metrics {
        return Err(ApiError::plain(
            StatusCode::NOT_FOUND,
            WireCode::NotFound,
            "metrics are off on this node (server.metrics = false, --no-metrics)",
        ));
    }
    let scrape = gather(&state).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(encode::Exposition(scrape)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(|e| Error::Internal(format!("cannot encode the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
