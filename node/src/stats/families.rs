//! The node's metric families — names, help texts, units, labels and values — read from one
//! [`Scrape`]. Both expositions write these and nothing else: `GET /metrics` in the
//! Prometheus text format (`server/metrics`), the OTLP export through OpenTelemetry
//! instruments (`otel/metrics.rs`). Each family has its Prometheus name (counters without
//! the `_total` the encoder adds) and its OpenTelemetry name and unit; label keys are the
//! OpenTelemetry attribute names (`http.route`), which the Prometheus encoder writes with
//! `_` for `.`.

use super::KeySpaceSnapshot;
use crate::protection::BreakerState;
use crate::telemetry::{FetchOutcome, HistogramSnapshot, Op, OpSnapshot, PeerCallSnapshot};

/// What one exposition shows, read before encoding.
#[derive(Debug, Default)]
pub(crate) struct Scrape {
    pub keyspaces: Vec<KeySpaceSnapshot>,
    /// `(keyspace, operation, calls)`: operations on keys of live keyspaces, and operations
    /// counted on the node (keyspace operations; calls for missing keyspaces, keyspace "").
    pub ops: Vec<(String, Op, OpSnapshot)>,
    /// `(keyspace, outcome, durations)` of data-source fetches.
    pub fetches: Vec<(String, FetchOutcome, HistogramSnapshot)>,
    pub peers: Vec<PeerCallSnapshot>,
    pub catalog_commit: HistogramSnapshot,
    /// `(method, route, status, durations)` of the HTTP server's requests (none in an
    /// embedded engine).
    pub http: Vec<(&'static str, String, u16, HistogramSnapshot)>,
    pub ring_members: usize,
    pub revision: u64,
    /// `(term, leading)` of the raft control plane, when the node runs one.
    pub raft: Option<(u64, bool)>,
}

/// Label keys and values of one row.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// The rows of one family.
#[derive(Debug)]
pub(crate) enum Rows<'a> {
    /// Monotonic totals.
    Counters(Vec<(Labels, u64)>),
    /// Values that go up and down.
    Gauges(Vec<(Labels, u64)>),
    /// Durations in seconds.
    Histograms(Vec<(Labels, &'a HistogramSnapshot)>),
}

/// One metric family.
#[derive(Debug)]
pub(crate) struct Family<'a> {
    /// The Prometheus name (`distcache_cache_hits`).
    pub name: &'static str,
    /// The OpenTelemetry name (`distcache.cache.hits`).
    pub otel_name: &'static str,
    /// The UCUM unit the OpenTelemetry instrument carries (`s`, `By`, `{read}`).
    pub unit: &'static str,
    pub help: &'static str,
    pub rows: Rows<'a>,
}

fn keyspace(name: &str) -> Labels {
    vec![("keyspace", name.to_owned())]
}

fn op_labels(keyspace: &str, op: Op) -> Labels {
    vec![
        ("operation", op.name().to_owned()),
        ("keyspace", keyspace.to_owned()),
    ]
}

fn peer_labels(p: &PeerCallSnapshot) -> Labels {
    vec![
        ("peer", p.peer.clone()),
        ("operation", p.operation.to_owned()),
    ]
}

/// 0 closed, 1 half-open, 2 open (the breaker's states in order of trouble).
fn breaker_value(state: Option<BreakerState>) -> u64 {
    match state {
        None | Some(BreakerState::Closed) => 0,
        Some(BreakerState::HalfOpen) => 1,
        Some(BreakerState::Open) => 2,
    }
}

/// A family of rows.
fn family<'a>(
    name: &'static str,
    otel_name: &'static str,
    unit: &'static str,
    help: &'static str,
    rows: Rows<'a>,
) -> Family<'a> {
    Family {
        name,
        otel_name,
        unit,
        help,
        rows,
    }
}

impl Scrape {
    /// Every family, in a fixed order; a family may have no rows (the raft gauges without a
    /// control plane), and the list of names is the same for every scrape.
    pub fn families(&self) -> Vec<Family<'_>> {
        let mut out = self.engine();
        out.extend(self.caches());
        out.extend(self.peer_calls());
        out.extend(self.node());
        out
    }

    /// The engine's operations: calls, errors, durations.
    fn engine(&self) -> Vec<Family<'_>> {
        use Rows::{Counters, Histograms};
        let ops = &self.ops;
        vec![
            family(
                "distcache_engine_requests",
                "distcache.engine.requests",
                "{call}",
                "Engine calls by operation (a batch is one call). Keyspace \"\" for calls naming a keyspace that does not exist.",
                Counters(
                    ops.iter()
                        .map(|(k, op, s)| (op_labels(k, *op), s.requests))
                        .collect(),
                ),
            ),
            family(
                "distcache_engine_errors",
                "distcache.engine.errors",
                "{call}",
                "Failed engine calls by operation and error code (a batch counts each failed key).",
                Counters(
                    ops.iter()
                        .flat_map(|(k, op, s)| {
                            s.errors.iter().map(move |(code, n)| {
                                let mut labels = op_labels(k, *op);
                                labels.push(("code", (*code).to_owned()));
                                (labels, *n)
                            })
                        })
                        .collect(),
                ),
            ),
            family(
                "distcache_engine_duration_seconds",
                "distcache.engine.duration",
                "s",
                "How long engine calls took. Cache hits are timed 1 in engine.hit_timing_every and weighted.",
                Histograms(
                    ops.iter()
                        .map(|(k, op, s)| (op_labels(k, *op), &s.duration))
                        .collect(),
                ),
            ),
        ]
    }

    /// Cache and data-source counters and gauges, per keyspace.
    fn caches(&self) -> Vec<Family<'_>> {
        use Rows::{Counters, Gauges, Histograms};
        let ks = &self.keyspaces;
        let per_keyspace = |f: fn(&KeySpaceSnapshot) -> u64| -> Vec<(Labels, u64)> {
            ks.iter().map(|k| (keyspace(&k.name), f(k))).collect()
        };
        let by = |label: &'static str,
                  rows: fn(&KeySpaceSnapshot) -> Vec<(&'static str, u64)>|
         -> Vec<(Labels, u64)> {
            ks.iter()
                .flat_map(|k| {
                    rows(k).into_iter().map(move |(value, n)| {
                        (
                            vec![(label, value.to_owned()), ("keyspace", k.name.clone())],
                            n,
                        )
                    })
                })
                .collect()
        };
        vec![
            family(
                "distcache_cache_hits",
                "distcache.cache.hits",
                "{read}",
                "Reads answered from this node's caches (main or hot).",
                Counters(per_keyspace(|k| k.stats.cache_hits)),
            ),
            family(
                "distcache_hot_cache_hits",
                "distcache.hot_cache.hits",
                "{read}",
                "Reads answered from the hot cache (copies of keys other nodes own); part of the hits.",
                Counters(per_keyspace(|k| k.stats.hot_cache_hits)),
            ),
            family(
                "distcache_cache_misses",
                "distcache.cache.misses",
                "{read}",
                "Reads that missed both caches and were loaded.",
                Counters(per_keyspace(|k| k.stats.loads)),
            ),
            family(
                "distcache_singleflight_shared",
                "distcache.singleflight.shared",
                "{load}",
                "Loads that joined one already in flight instead of fetching again.",
                Counters(per_keyspace(|k| {
                    k.stats.loads.saturating_sub(k.stats.loads_deduped)
                })),
            ),
            family(
                "distcache_source_fetches",
                "distcache.source.fetches",
                "{key}",
                "Keys fetched from this node's data source, by outcome.",
                Counters(by("outcome", |k| {
                    vec![
                        ("ok", k.stats.local_loads),
                        ("error", k.stats.local_load_errs),
                    ]
                })),
            ),
            family(
                "distcache_source_refused",
                "distcache.source.refused",
                "{load}",
                "Loads refused before reaching the data source, by reason (overloaded: over max_queued_loads, or no call slot within read_timeout).",
                Counters(by("reason", |k| {
                    vec![
                        ("rate_limited", k.stats.rate_limited),
                        ("circuit_open", k.stats.circuit_open),
                        ("overloaded", k.stats.overloaded),
                    ]
                })),
            ),
            family(
                "distcache_source_calls_running",
                "distcache.source.calls.running",
                "{call}",
                "Data-source calls running now (at most max_concurrent_loads).",
                Gauges(per_keyspace(|k| k.loads_running)),
            ),
            family(
                "distcache_source_keys_queued",
                "distcache.source.keys.queued",
                "{key}",
                "Keys waiting for a data-source call now (at most max_queued_loads).",
                Gauges(per_keyspace(|k| k.loads_queued)),
            ),
            family(
                "distcache_cache_fetch_duration_seconds",
                "distcache.cache.fetch.duration",
                "s",
                "How long data-source fetches took, per key, by outcome (a key of a batch fetch counts the batch's time).",
                Histograms(
                    self.fetches
                        .iter()
                        .map(|(k, outcome, h)| {
                            (
                                vec![
                                    ("keyspace", k.clone()),
                                    ("outcome", outcome.name().to_owned()),
                                ],
                                h,
                            )
                        })
                        .collect(),
                ),
            ),
            family(
                "distcache_peer_loads",
                "distcache.peer.loads",
                "{read}",
                "Reads this node loaded through the key's owner.",
                Counters(per_keyspace(|k| k.stats.peer_loads)),
            ),
            family(
                "distcache_peer_served_keys",
                "distcache.peer.served_keys",
                "{key}",
                "Keys other nodes read from this node, the owner.",
                Counters(per_keyspace(|k| k.stats.peer_requests)),
            ),
            family(
                "distcache_cache_entries",
                "distcache.cache.entries",
                "{entry}",
                "Entries held, by cache (main: keys this node owns; hot: copies).",
                Gauges(by("cache", |k| {
                    vec![("main", k.main_cache_entries), ("hot", k.hot_cache_entries)]
                })),
            ),
            family(
                "distcache_cache_bytes",
                "distcache.cache.size",
                "By",
                "Bytes held, by cache, entry overhead included.",
                Gauges(by("cache", |k| {
                    vec![("main", k.main_cache_bytes), ("hot", k.hot_cache_bytes)]
                })),
            ),
            family(
                "distcache_keyspace_max_bytes",
                "distcache.keyspace.max_size",
                "By",
                "The keyspace's byte budget on this node.",
                Gauges(per_keyspace(|k| k.max_bytes)),
            ),
            family(
                "distcache_breaker_state",
                "distcache.breaker.state",
                "1",
                "The circuit breaker around the data source: 0 closed, 1 half-open, 2 open.",
                Gauges(per_keyspace(|k| breaker_value(k.circuit_breaker))),
            ),
        ]
    }

    /// Calls this node made to its peers.
    fn peer_calls(&self) -> Vec<Family<'_>> {
        use Rows::{Counters, Histograms};
        let peers = &self.peers;
        vec![
            family(
                "distcache_peer_requests",
                "distcache.peer.requests",
                "{call}",
                "Calls this node made to a peer, by peer address and call.",
                Counters(peers.iter().map(|p| (peer_labels(p), p.requests)).collect()),
            ),
            family(
                "distcache_peer_errors",
                "distcache.peer.errors",
                "{call}",
                "Calls to a peer that failed (unreachable, timed out, answered badly); a typed error answer is not one.",
                Counters(peers.iter().map(|p| (peer_labels(p), p.errors)).collect()),
            ),
            family(
                "distcache_peer_request_duration_seconds",
                "distcache.peer.request.duration",
                "s",
                "How long calls to a peer took.",
                Histograms(
                    peers
                        .iter()
                        .map(|p| (peer_labels(p), &p.duration))
                        .collect(),
                ),
            ),
        ]
    }

    /// The node: ring, control plane, HTTP server, build.
    fn node(&self) -> Vec<Family<'_>> {
        use Rows::{Gauges, Histograms};
        let one = |value: u64| vec![(Labels::new(), value)];
        let raft = |f: fn((u64, bool)) -> u64| self.raft.map(|r| one(f(r))).unwrap_or_default();
        vec![
            family(
                "distcache_ring_members",
                "distcache.ring.members",
                "{node}",
                "Nodes in this node's ring.",
                Gauges(one(self.ring_members as u64)),
            ),
            family(
                "distcache_catalog_revision",
                "distcache.catalog.revision",
                "1",
                "The catalog revision this node applied.",
                Gauges(one(self.revision)),
            ),
            family(
                "distcache_raft_term",
                "distcache.raft.term",
                "1",
                "The control plane's raft term as this node sees it.",
                Gauges(raft(|(term, _)| term)),
            ),
            family(
                "distcache_raft_is_leader",
                "distcache.raft.is_leader",
                "1",
                "1 while this node leads the control plane.",
                Gauges(raft(|(_, leading)| u64::from(leading))),
            ),
            family(
                "distcache_raft_commit_duration_seconds",
                "distcache.raft.commit.duration",
                "s",
                "How long keyspace changes made through this node took to commit (through raft when the catalog is replicated).",
                Histograms(vec![(Labels::new(), &self.catalog_commit)]),
            ),
            family(
                "http_server_request_duration_seconds",
                "http.server.request.duration",
                "s",
                "How long the node took to answer HTTP requests, by method, route template and status.",
                Histograms(
                    self.http
                        .iter()
                        .map(|(method, route, status, h)| {
                            (
                                vec![
                                    ("http.request.method", (*method).to_owned()),
                                    ("http.route", route.clone()),
                                    ("http.response.status_code", status.to_string()),
                                ],
                                h,
                            )
                        })
                        .collect(),
                ),
            ),
            family(
                "distcache_build_info",
                "distcache.build.info",
                "1",
                "Always 1; the labels say which build this node runs.",
                Gauges(vec![(vec![("version", crate::VERSION.to_owned())], 1)]),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scrape lists the same families, each name once, in both naming schemes.
    #[test]
    fn families_are_fixed_and_unique() {
        let empty = Scrape::default();
        let full = Scrape {
            raft: Some((3, true)),
            ..Scrape::default()
        };
        let names =
            |s: &Scrape| -> Vec<_> { s.families().iter().map(|f| (f.name, f.otel_name)).collect() };
        assert_eq!(names(&empty), names(&full));
        let mut prom: Vec<_> = names(&empty).iter().map(|(p, _)| *p).collect();
        let mut otel: Vec<_> = names(&empty).iter().map(|(_, o)| *o).collect();
        let n = prom.len();
        prom.sort_unstable();
        prom.dedup();
        otel.sort_unstable();
        otel.dedup();
        assert_eq!((prom.len(), otel.len()), (n, n));
        let raft_rows = |s: &Scrape| match &s.families()[s
            .families()
            .iter()
            .position(|f| f.name == "distcache_raft_is_leader")
            .unwrap_or(0)]
        .rows
        {
            Rows::Gauges(rows) => rows.clone(),
            _ => Vec::new(),
        };
        assert!(raft_rows(&empty).is_empty());
        assert_eq!(raft_rows(&full), vec![(Labels::new(), 1)]);
    }
}
