//! The metric families of `/metrics`, written from one [`Scrape`]: names, help texts, types
//! and labels. Counter names get their `_total` from the encoder.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Scrape;
use crate::protection::BreakerState;
use crate::stats::KeySpaceSnapshot;
use crate::telemetry::HistogramSnapshot;

type Labels = Vec<(&'static str, String)>;

/// A histogram read at scrape time.
#[derive(Debug)]
struct ConstHistogram<'a>(&'a HistogramSnapshot);

impl EncodeMetric for ConstHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = self.0;
        encoder.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One labelled family: `(labels, value)` rows under one name; nothing at all without rows
/// (a family with no samples says nothing, and some parsers refuse it).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let rows = rows.into_iter().map(|(l, n)| (l, ConstCounter::new(n)));
    family(encoder, name, help, MetricType::Counter, rows)
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let rows = rows
        .into_iter()
        .map(|(l, n)| (l, ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))));
    family(encoder, name, help, MetricType::Gauge, rows)
}

fn histograms<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, &'a HistogramSnapshot)>,
) -> Result<(), std::fmt::Error> {
    let rows = rows.into_iter().map(|(l, h)| (l, ConstHistogram(h)));
    family(encoder, name, help, MetricType::Histogram, rows)
}

fn keyspace(name: &str) -> Labels {
    vec![("keyspace", name.to_owned())]
}

/// 0 closed, 1 half-open, 2 open (the breaker's states in order of trouble).
fn breaker_value(state: Option<BreakerState>) -> u64 {
    match state {
        None | Some(BreakerState::Closed) => 0,
        Some(BreakerState::HalfOpen) => 1,
        Some(BreakerState::Open) => 2,
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.engine(&mut encoder)?;
        self.caches(&mut encoder)?;
        self.peers(&mut encoder)?;
        self.node(&mut encoder)
    }
}

impl Scrape {
    /// The engine's operations: calls, errors, durations.
    fn engine(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let op_labels = |keyspace: &str, op: crate::telemetry::Op| -> Labels {
            vec![
                ("operation", op.name().to_owned()),
                ("keyspace", keyspace.to_owned()),
            ]
        };
        counters(
            encoder,
            "distcache_engine_requests",
            "Engine calls by operation (a batch is one call). Keyspace \"\" for calls naming a keyspace that does not exist.",
            self.ops
                .iter()
                .map(|(k, op, s)| (op_labels(k, *op), s.requests)),
        )?;
        counters(
            encoder,
            "distcache_engine_errors",
            "Failed engine calls by operation and error code (a batch counts each failed key).",
            self.ops.iter().flat_map(|(k, op, s)| {
                s.errors.iter().map(move |(code, n)| {
                    let mut labels = op_labels(k, *op);
                    labels.push(("code", (*code).to_owned()));
                    (labels, *n)
                })
            }),
        )?;
        histograms(
            encoder,
            "distcache_engine_duration_seconds",
            "How long engine calls took. Cache hits are timed 1 in engine.hit_timing_every and weighted.",
            self.ops
                .iter()
                .map(|(k, op, s)| (op_labels(k, *op), &s.duration)),
        )
    }

    /// Cache and data-source counters and gauges, per keyspace.
    fn caches(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ks = &self.keyspaces;
        let per_keyspace =
            |f: fn(&KeySpaceSnapshot) -> u64| ks.iter().map(move |k| (keyspace(&k.name), f(k)));
        let by = |label: &'static str, rows: fn(&KeySpaceSnapshot) -> Vec<(&'static str, u64)>| {
            ks.iter().flat_map(move |k| {
                rows(k).into_iter().map(move |(value, n)| {
                    (
                        vec![(label, value.to_owned()), ("keyspace", k.name.clone())],
                        n,
                    )
                })
            })
        };
        counters(
            encoder,
            "distcache_cache_hits",
            "Reads answered from this node's caches (main or hot).",
            per_keyspace(|k| k.stats.cache_hits),
        )?;
        counters(
            encoder,
            "distcache_hot_cache_hits",
            "Reads answered from the hot cache (copies of keys other nodes own); part of the hits.",
            per_keyspace(|k| k.stats.hot_cache_hits),
        )?;
        counters(
            encoder,
            "distcache_cache_misses",
            "Reads that missed both caches and were loaded.",
            per_keyspace(|k| k.stats.loads),
        )?;
        counters(
            encoder,
            "distcache_singleflight_shared",
            "Loads that joined one already in flight instead of fetching again.",
            per_keyspace(|k| k.stats.loads.saturating_sub(k.stats.loads_deduped)),
        )?;
        counters(
            encoder,
            "distcache_source_fetches",
            "Keys fetched from this node's data source, by outcome.",
            by("outcome", |k| {
                vec![
                    ("ok", k.stats.local_loads),
                    ("error", k.stats.local_load_errs),
                ]
            }),
        )?;
        counters(
            encoder,
            "distcache_source_refused",
            "Loads refused before reaching the data source, by reason.",
            by("reason", |k| {
                vec![
                    ("rate_limited", k.stats.rate_limited),
                    ("circuit_open", k.stats.circuit_open),
                ]
            }),
        )?;
        histograms(
            encoder,
            "distcache_cache_fetch_duration_seconds",
            "How long data-source fetches took, per key, by outcome (a key of a batch fetch counts the batch's time).",
            self.fetches.iter().map(|(k, outcome, h)| {
                (
                    vec![
                        ("keyspace", k.clone()),
                        ("outcome", outcome.name().to_owned()),
                    ],
                    h,
                )
            }),
        )?;
        counters(
            encoder,
            "distcache_peer_loads",
            "Reads this node loaded through the key's owner.",
            per_keyspace(|k| k.stats.peer_loads),
        )?;
        counters(
            encoder,
            "distcache_peer_served_keys",
            "Keys other nodes read from this node, the owner.",
            per_keyspace(|k| k.stats.peer_requests),
        )?;
        gauges(
            encoder,
            "distcache_cache_entries",
            "Entries held, by cache (main: keys this node owns; hot: copies).",
            by("cache", |k| {
                vec![("main", k.main_cache_entries), ("hot", k.hot_cache_entries)]
            }),
        )?;
        gauges(
            encoder,
            "distcache_cache_bytes",
            "Bytes held, by cache, entry overhead included.",
            by("cache", |k| {
                vec![("main", k.main_cache_bytes), ("hot", k.hot_cache_bytes)]
            }),
        )?;
        gauges(
            encoder,
            "distcache_keyspace_max_bytes",
            "The keyspace's byte budget on this node.",
            per_keyspace(|k| k.max_bytes),
        )?;
        gauges(
            encoder,
            "distcache_breaker_state",
            "The circuit breaker around the data source: 0 closed, 1 half-open, 2 open.",
            per_keyspace(|k| breaker_value(k.circuit_breaker)),
        )
    }

    /// Calls this node made to its peers.
    fn peers(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = |p: &crate::telemetry::PeerCallSnapshot| -> Labels {
            vec![
                ("peer", p.peer.clone()),
                ("operation", p.operation.to_owned()),
            ]
        };
        counters(
            encoder,
            "distcache_peer_requests",
            "Calls this node made to a peer, by peer address and call.",
            self.peers.iter().map(|p| (labels(p), p.requests)),
        )?;
        counters(
            encoder,
            "distcache_peer_errors",
            "Calls to a peer that failed (unreachable, timed out, answered badly); a typed error answer is not one.",
            self.peers.iter().map(|p| (labels(p), p.errors)),
        )?;
        histograms(
            encoder,
            "distcache_peer_request_duration_seconds",
            "How long calls to a peer took.",
            self.peers.iter().map(|p| (labels(p), &p.duration)),
        )
    }

    /// The node: ring, control plane, HTTP server, build.
    fn node(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauges(
            encoder,
            "distcache_ring_members",
            "Nodes in this node's ring.",
            [(Labels::new(), self.ring_members as u64)],
        )?;
        gauges(
            encoder,
            "distcache_catalog_revision",
            "The catalog revision this node applied.",
            [(Labels::new(), self.revision)],
        )?;
        if let Some((term, leading)) = self.raft {
            gauges(
                encoder,
                "distcache_raft_term",
                "The control plane's raft term as this node sees it.",
                [(Labels::new(), term)],
            )?;
            gauges(
                encoder,
                "distcache_raft_is_leader",
                "1 while this node leads the control plane.",
                [(Labels::new(), u64::from(leading))],
            )?;
        }
        histograms(
            encoder,
            "distcache_raft_commit_duration_seconds",
            "How long keyspace changes made through this node took to commit (through raft when the catalog is replicated).",
            [(Labels::new(), &self.catalog_commit)],
        )?;
        histograms(
            encoder,
            "http_server_request_duration_seconds",
            "How long the node took to answer HTTP requests, by method, route template and status.",
            self.http.iter().map(|(method, route, status, h)| {
                (
                    vec![
                        ("http_request_method", (*method).to_owned()),
                        ("http_route", route.clone()),
                        ("http_response_status_code", status.to_string()),
                    ],
                    h,
                )
            }),
        )?;
        gauges(
            encoder,
            "distcache_build_info",
            "Always 1; the labels say which build this node runs.",
            [(vec![("version", crate::VERSION.to_owned())], 1)],
        )
    }
}
