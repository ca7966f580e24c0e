//! `GET /metrics`: after known operations the exposition, read with a real parser, holds the
//! exact counts and histogram counts; the route needs the admin role unless the node serves it
//! openly.

use std::collections::HashMap;

use distcache::{Entry, KeySpaceSpec, SourceSpec};
use distcache_testkit::TestCluster;
use prom_text_format_parser::{Scrape, Type, ValueType};

/// The samples of one scrape, by sample name and sorted `key=value` labels. Histograms are
/// checked (cumulative buckets ending in `+Inf` = `_count`) and kept by `_count` and `_sum`.
struct Metrics(HashMap<(String, String), f64>);

/// One histogram series: `(le, cumulative count)` in order, and its `_count`.
type Buckets = (Vec<(f64, f64)>, Option<f64>);

impl Metrics {
    async fn scrape(addr: &str, token: Option<&str>) -> Metrics {
        let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        let scrape = Scrape::parse(&text).unwrap_or_else(|e| panic!("{e:?} in:\n{text}"));
        let mut samples = HashMap::new();
        for metric in scrape.metrics {
            assert!(
                matches!(metric.kind, Type::Counter | Type::Gauge | Type::Histogram),
                "{} is typed {:?}",
                metric.name,
                metric.kind
            );
            if metric.kind == Type::Counter {
                assert!(metric.name.ends_with("_total"), "{}", metric.name);
            }
            // Per label set (without `le`): the buckets, in order, and `_count`.
            let mut histograms: HashMap<String, Buckets> = HashMap::new();
            for sample in metric.samples {
                let mut le = None;
                let mut labels: Vec<String> = Vec::new();
                for label in sample.labels.iter() {
                    if metric.kind == Type::Histogram && label.key == "le" {
                        le = Some(label.value.parse::<f64>().unwrap());
                    } else {
                        labels.push(format!("{}={}", label.key, label.value));
                    }
                }
                labels.sort();
                let labels = labels.join(",");
                let value = sample.value.value.as_f64();
                let name = match sample.value.value_type {
                    ValueType::Sample if metric.kind == Type::Histogram => {
                        let le =
                            le.unwrap_or_else(|| panic!("a bucket of {} has no le", metric.name));
                        histograms.entry(labels).or_default().0.push((le, value));
                        continue;
                    }
                    ValueType::Sample => metric.name.clone(),
                    ValueType::Sum => format!("{}_sum", metric.name),
                    ValueType::Count => {
                        histograms.entry(labels.clone()).or_default().1 = Some(value);
                        format!("{}_count", metric.name)
                    }
                };
                samples.insert((name, labels), value);
            }
            for (labels, (buckets, count)) in histograms {
                let what = format!("{}{{{labels}}}", metric.name);
                assert!(
                    buckets
                        .windows(2)
                        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                    "{what}"
                );
                let last = buckets
                    .last()
                    .unwrap_or_else(|| panic!("{what} has no buckets"));
                assert!(last.0.is_infinite(), "{what} ends at {}", last.0);
                assert_eq!(Some(last.1), count, "{what}: +Inf bucket and _count");
            }
        }
        Metrics(samples)
    }

    fn get(&self, name: &str, labels: &str) -> f64 {
        *self
            .0
            .get(&(name.to_owned(), labels.to_owned()))
            .unwrap_or_else(|| {
                let mut known: Vec<_> = self.0.keys().filter(|(n, _)| n == name).collect();
                known.sort();
                panic!("no {name}{{{labels}}}; {name} has {known:?}")
            })
    }

    /// The value, or 0 when the series does not exist (yet).
    fn get_or_zero(&self, name: &str, labels: &str) -> f64 {
        self.0
            .get(&(name.to_owned(), labels.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }
}

/// Counts follow the operations exactly: calls by operation, errors by code, durations,
/// hits and misses, fetches by outcome, keyspace changes, HTTP requests by route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_known_operations() {
    let cluster = TestCluster::start(1).await;
    let engine = cluster.node(0).engine();
    let addr = &cluster.addrs[0];
    let before = Metrics::scrape(addr, None).await;
    engine.get("ks", "a").await.unwrap(); // miss, found
    engine.get("ks", "a").await.unwrap(); // hit
    engine.get("ks", "missing-b").await.unwrap(); // miss, not found
    engine.get("ks", "fail-c").await.unwrap_err(); // miss, source error
    engine.get("nope", "a").await.unwrap_err(); // no such keyspace
    engine.put("ks", "p", "v").await.unwrap();
    engine.put("ks", "", "v").await.unwrap_err(); // empty key
    engine
        .put_many("ks", [Entry::new("q", "1"), Entry::new("", "2")])
        .await
        .unwrap();
    engine.get_many("ks", &["a", "p", "x"]).await.unwrap(); // 2 hits, 1 miss
    engine.delete("ks", "a").await.unwrap();
    engine.delete_many("ks", &["p", "q"]).await.unwrap();
    engine
        .create_keyspace(KeySpaceSpec::new("other", SourceSpec::None))
        .await
        .unwrap();
    engine
        .create_keyspace(KeySpaceSpec::new("other", SourceSpec::None))
        .await
        .unwrap_err(); // exists
    let http = reqwest::Client::new();
    for path in [
        "/v1/keyspaces/ks/keys/h1",
        "/v1/keyspaces/ks/keys/h1",
        "/no/such/route",
    ] {
        http.get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
    }
    let after = Metrics::scrape(addr, None).await;

    let delta =
        |name: &str, labels: &str| after.get(name, labels) - before.get_or_zero(name, labels);
    let requests = |op: &str, ks: &str| {
        delta(
            "distcache_engine_requests_total",
            &format!("keyspace={ks},operation={op}"),
        )
    };
    let timed = |op: &str, ks: &str| {
        delta(
            "distcache_engine_duration_seconds_count",
            &format!("keyspace={ks},operation={op}"),
        )
    };
    // Engine calls (the HTTP get of h1 twice is two more gets of ks).
    assert_eq!(requests("get", "ks"), 6.0);
    assert_eq!(requests("get", ""), 1.0);
    assert_eq!(requests("put", "ks"), 2.0);
    assert_eq!(requests("put_many", "ks"), 1.0);
    assert_eq!(requests("get_many", "ks"), 1.0);
    assert_eq!(requests("delete", "ks"), 1.0);
    assert_eq!(requests("delete_many", "ks"), 1.0);
    assert_eq!(requests("create_keyspace", "other"), 2.0);
    for op in [
        "get",
        "put",
        "put_many",
        "get_many",
        "delete",
        "delete_many",
    ] {
        assert_eq!(
            timed(op, "ks"),
            requests(op, "ks"),
            "{op}: every call timed"
        );
    }
    assert_eq!(timed("create_keyspace", "other"), 2.0);
    let errors = |op: &str, ks: &str, code: &str| {
        delta(
            "distcache_engine_errors_total",
            &format!("code={code},keyspace={ks},operation={op}"),
        )
    };
    assert_eq!(errors("get", "ks", "DATA_SOURCE_ERROR"), 1.0);
    assert_eq!(errors("get", "", "KEYSPACE_NOT_FOUND"), 1.0);
    assert_eq!(errors("put", "ks", "EMPTY_KEY"), 1.0);
    assert_eq!(errors("put_many", "ks", "EMPTY_KEY"), 1.0);
    assert_eq!(errors("create_keyspace", "other", "KEYSPACE_EXISTS"), 1.0);

    // Reads: a, missing-b, fail-c, x, h1 missed; a, a and p (get_many), h1 hit.
    assert_eq!(delta("distcache_cache_hits_total", "keyspace=ks"), 4.0);
    assert_eq!(delta("distcache_hot_cache_hits_total", "keyspace=ks"), 0.0);
    assert_eq!(delta("distcache_cache_misses_total", "keyspace=ks"), 5.0);
    assert_eq!(
        delta("distcache_source_fetches_total", "keyspace=ks,outcome=ok"),
        4.0
    );
    assert_eq!(
        delta(
            "distcache_source_fetches_total",
            "keyspace=ks,outcome=error"
        ),
        1.0
    );
    let fetched = |outcome: &str| {
        delta(
            "distcache_cache_fetch_duration_seconds_count",
            &format!("keyspace=ks,outcome={outcome}"),
        )
    };
    assert_eq!(
        (fetched("found"), fetched("not_found"), fetched("error")),
        (3.0, 1.0, 1.0)
    );
    assert_eq!(
        delta("distcache_singleflight_shared_total", "keyspace=ks"),
        0.0
    );

    // Keyspace changes commit through raft: one create committed.
    assert_eq!(
        delta("distcache_raft_commit_duration_seconds_count", ""),
        1.0
    );
    let route = |route: &str, status: u16| {
        delta(
            "http_server_request_duration_seconds_count",
            &format!(
                "http_request_method=GET,http_response_status_code={status},http_route={route}"
            ),
        )
    };
    assert_eq!(route("/v1/keyspaces/{ks}/keys/{*key}", 200), 2.0);
    assert_eq!(route("", 404), 1.0);
    assert_eq!(route("/metrics", 200), 1.0, "the first scrape");

    // x and h1 (a, p and q were deleted; not-found and failed keys are not kept).
    assert_eq!(
        after.get("distcache_cache_entries", "cache=main,keyspace=ks"),
        2.0
    );
    assert!(after.get("distcache_keyspace_max_bytes", "keyspace=ks") > 0.0);
    assert_eq!(after.get("distcache_breaker_state", "keyspace=ks"), 0.0);
    assert_eq!(after.get("distcache_ring_members", ""), 1.0);
    assert!(after.get("distcache_catalog_revision", "") >= 2.0);
    assert_eq!(after.get("distcache_raft_is_leader", ""), 1.0);
    assert_eq!(
        after.get(
            "distcache_build_info",
            &format!("version={}", env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );
    cluster.shutdown().await;
}

/// Through a non-owner: the first read is a call to the owner (counted per peer, and as a key
/// the owner served), the second a hit on the non-owner's hot copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_calls_and_hot_hits_are_counted() {
    let cluster = TestCluster::start(2).await;
    let key = cluster.key_owned_by("ks", 1, "far");
    let (reader, owner) = (&cluster.addrs[0], &cluster.addrs[1]);
    let reader_before = Metrics::scrape(reader, None).await;
    let owner_before = Metrics::scrape(owner, None).await;
    let engine = cluster.node(0).engine();
    engine.get("ks", &key).await.unwrap();
    engine.get("ks", &key).await.unwrap();
    let reader_after = Metrics::scrape(reader, None).await;
    let owner_after = Metrics::scrape(owner, None).await;
    let on_reader = |name: &str, labels: &str| {
        reader_after.get(name, labels) - reader_before.get_or_zero(name, labels)
    };
    let peer = format!("operation=get,peer={owner}");
    assert_eq!(on_reader("distcache_peer_requests_total", &peer), 1.0);
    assert_eq!(on_reader("distcache_peer_errors_total", &peer), 0.0);
    assert_eq!(
        on_reader("distcache_peer_request_duration_seconds_count", &peer),
        1.0
    );
    assert_eq!(on_reader("distcache_peer_loads_total", "keyspace=ks"), 1.0);
    assert_eq!(
        on_reader("distcache_hot_cache_hits_total", "keyspace=ks"),
        1.0
    );
    assert_eq!(on_reader("distcache_cache_hits_total", "keyspace=ks"), 1.0);
    let served = owner_after.get("distcache_peer_served_keys_total", "keyspace=ks")
        - owner_before.get("distcache_peer_served_keys_total", "keyspace=ks");
    assert_eq!(served, 1.0);
    assert_eq!(
        owner_after.get(
            "distcache_engine_requests_total",
            "keyspace=ks,operation=get"
        ) - owner_before.get(
            "distcache_engine_requests_total",
            "keyspace=ks,operation=get"
        ),
        0.0,
        "a peer's read is not a client get on the owner"
    );
    cluster.shutdown().await;
}

/// With a token, `/metrics` needs it (an admin route), unless `metrics_open`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_unless_open() {
    let guarded = TestCluster::builder(1)
        .edit(|_, c| c.server.token = Some("s3cret".into()))
        .build()
        .await;
    let url = format!("http://{}/metrics", guarded.addrs[0]);
    let refused = reqwest::get(&url).await.unwrap();
    assert_eq!(refused.status(), 401);
    Metrics::scrape(&guarded.addrs[0], Some("s3cret")).await;
    guarded.shutdown().await;

    let open = TestCluster::builder(1)
        .edit(|_, c| {
            c.server.token = Some("s3cret".into());
            c.server.metrics_open = true;
        })
        .build()
        .await;
    Metrics::scrape(&open.addrs[0], None).await;
    let data = reqwest::get(format!(
        "http://{}/v1/keyspaces/ks/keys?key=k",
        open.addrs[0]
    ))
    .await
    .unwrap();
    assert_eq!(data.status(), 401, "only /metrics is open");
    open.shutdown().await;
}

/// With metrics off the node serves as before, `/metrics` is a 404 that says why, and the
/// engine's counters (which `stats` shows) still count while no hit is timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_serves_without_them() {
    let cluster = TestCluster::builder(1)
        .edit(|_, c| {
            c.server.metrics = false;
            c.engine.hit_timing_every = 0;
        })
        .build()
        .await;
    let addr = &cluster.addrs[0];
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let got = http
            .get(format!("http://{addr}/v1/keyspaces/ks/keys/a"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
    }
    let refused = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("metrics are off"),
        "{body}"
    );
    let stats = cluster.node(0).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!((stats.stats.gets, stats.stats.cache_hits), (3, 2));
    cluster.shutdown().await;
}
