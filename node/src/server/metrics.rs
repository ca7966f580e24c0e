//! `GET /metrics`: the node's counters and gauges in the Prometheus text format (0.0.4).
//!
//! Everything here is read at scrape time from what the node keeps anyway — the per-keyspace
//! counters, cache sizes and breaker states, the ring, the control plane's status — so a
//! request served between scrapes pays nothing for it. Labels are keyspace names and fixed
//! words only, never keys: the number of series stays bounded by the number of keyspaces.
//! The route needs the admin role like the other admin routes.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ApiError;
use crate::error::Error;
use crate::protection::BreakerState;
use crate::stats::KeySpaceSnapshot;

/// What one scrape shows, read before encoding.
#[derive(Debug)]
struct Scrape {
    keyspaces: Vec<KeySpaceSnapshot>,
    ring_members: usize,
    revision: u64,
    raft: Option<(u64, bool)>,
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
        (status = 200, description = "Counters and gauges in the Prometheus text format (0.0.4).", body = String, content_type = "text/plain"),
    ),
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let scrape = Scrape {
        keyspaces: state.engine.stats().await,
        ring_members: state
            .engine
            .cluster()
            .map_or(1, |cluster| cluster.ring_ids().len()),
        revision: state.engine.revision(),
        raft: state.control.as_ref().map(|control| {
            let status = control.status();
            let leading = status.leader.as_deref() == Some(state.node_id.as_str());
            (status.term, leading)
        }),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(|e| Error::Internal(format!("cannot encode the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// One labelled family: `(labels, value)` rows under one name.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn keyspace(name: &str) -> Vec<(&'static str, String)> {
    vec![("keyspace", name.to_owned())]
}

/// 0 closed, 1 half-open, 2 open (the breaker's states in order of trouble).
fn breaker_value(state: Option<BreakerState>) -> i64 {
    match state {
        None | Some(BreakerState::Closed) => 0,
        Some(BreakerState::HalfOpen) => 1,
        Some(BreakerState::Open) => 2,
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ks = &self.keyspaces;
        let counter = |f: fn(&KeySpaceSnapshot) -> u64| {
            ks.iter()
                .map(move |k| (keyspace(&k.name), ConstCounter::new(f(k))))
        };
        family(
            &mut encoder,
            "distcache_engine_requests",
            "Keys asked for, by operation (a batch counts each key).",
            MetricType::Counter,
            ks.iter().flat_map(|k| {
                [
                    ("get", k.stats.gets),
                    ("delete", k.stats.remove_keys_requests),
                ]
                .map(|(op, n)| {
                    (
                        vec![("operation", op.to_owned()), ("keyspace", k.name.clone())],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "distcache_cache_hits",
            "Reads answered from this node's caches (main or hot).",
            MetricType::Counter,
            counter(|k| k.stats.cache_hits),
        )?;
        family(
            &mut encoder,
            "distcache_cache_misses",
            "Reads that missed both caches and were loaded.",
            MetricType::Counter,
            counter(|k| k.stats.loads),
        )?;
        family(
            &mut encoder,
            "distcache_singleflight_shared",
            "Loads that joined one already in flight instead of fetching again.",
            MetricType::Counter,
            counter(|k| k.stats.loads.saturating_sub(k.stats.loads_deduped)),
        )?;
        family(
            &mut encoder,
            "distcache_source_fetches",
            "Fetches from this node's data source, by outcome.",
            MetricType::Counter,
            ks.iter().flat_map(|k| {
                [
                    ("ok", k.stats.local_loads),
                    ("error", k.stats.local_load_errs),
                ]
                .map(|(outcome, n)| {
                    (
                        vec![
                            ("outcome", outcome.to_owned()),
                            ("keyspace", k.name.clone()),
                        ],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "distcache_peer_loads",
            "Reads this node loaded through the key's owner.",
            MetricType::Counter,
            counter(|k| k.stats.peer_loads),
        )?;
        family(
            &mut encoder,
            "distcache_peer_errors",
            "Loads through the owner that failed.",
            MetricType::Counter,
            counter(|k| k.stats.peer_errors),
        )?;
        family(
            &mut encoder,
            "distcache_peer_requests",
            "Keys other nodes read from this node, the owner.",
            MetricType::Counter,
            counter(|k| k.stats.peer_requests),
        )?;
        family(
            &mut encoder,
            "distcache_engine_errors",
            "Loads refused or failed, by code.",
            MetricType::Counter,
            ks.iter().flat_map(|k| {
                [
                    ("DATA_SOURCE_RATE_LIMITED", k.stats.rate_limited),
                    ("DATA_SOURCE_CIRCUIT_OPEN", k.stats.circuit_open),
                    ("TIMEOUT", k.stats.timeouts),
                ]
                .map(|(code, n)| {
                    (
                        vec![("code", code.to_owned()), ("keyspace", k.name.clone())],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "distcache_cache_entries",
            "Entries held, by cache (main: keys this node owns; hot: copies).",
            MetricType::Gauge,
            ks.iter().flat_map(|k| {
                [("main", k.main_cache_entries), ("hot", k.hot_cache_entries)].map(|(cache, n)| {
                    (
                        vec![("cache", cache.to_owned()), ("keyspace", k.name.clone())],
                        ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "distcache_cache_bytes",
            "Bytes held, by cache, entry overhead included.",
            MetricType::Gauge,
            ks.iter().flat_map(|k| {
                [("main", k.main_cache_bytes), ("hot", k.hot_cache_bytes)].map(|(cache, n)| {
                    (
                        vec![("cache", cache.to_owned()), ("keyspace", k.name.clone())],
                        ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "distcache_keyspace_max_bytes",
            "The keyspace's byte budget on this node.",
            MetricType::Gauge,
            ks.iter().map(|k| {
                let max = i64::try_from(k.max_bytes).unwrap_or(i64::MAX);
                (keyspace(&k.name), ConstGauge::new(max))
            }),
        )?;
        family(
            &mut encoder,
            "distcache_breaker_state",
            "The circuit breaker around the data source: 0 closed, 1 half-open, 2 open.",
            MetricType::Gauge,
            ks.iter().map(|k| {
                (
                    keyspace(&k.name),
                    ConstGauge::new(breaker_value(k.circuit_breaker)),
                )
            }),
        )?;
        gauge(
            &mut encoder,
            "distcache_ring_members",
            "Nodes in this node's ring.",
            i64::try_from(self.ring_members).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut encoder,
            "distcache_catalog_revision",
            "The catalog revision this node applied.",
            i64::try_from(self.revision).unwrap_or(i64::MAX),
        )?;
        if let Some((term, leading)) = self.raft {
            gauge(
                &mut encoder,
                "distcache_raft_term",
                "The control plane's raft term as this node sees it.",
                i64::try_from(term).unwrap_or(i64::MAX),
            )?;
            gauge(
                &mut encoder,
                "distcache_raft_is_leader",
                "1 while this node leads the control plane.",
                i64::from(leading),
            )?;
        }
        Ok(())
    }
}
