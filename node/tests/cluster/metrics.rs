//! `GET /metrics`: after known operations the exposition, read with a real parser, holds the
//! exact counts; the route needs the admin role unless the node serves it openly.

use std::collections::HashMap;

use distcache_testkit::TestCluster;
use prometheus_parse::{Scrape, Value};

/// The samples of one scrape, by metric name and sorted `key=value` labels.
struct Metrics(HashMap<(String, String), f64>);

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
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let mut samples = HashMap::new();
        for sample in scrape.samples {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            let value = match sample.value {
                Value::Counter(v) | Value::Gauge(v) => v,
                other => panic!(
                    "{} is not typed as a counter or gauge: {other:?}",
                    sample.metric
                ),
            };
            samples.insert((sample.metric, labels.join(",")), value);
        }
        Metrics(samples)
    }

    fn get(&self, name: &str, labels: &str) -> f64 {
        *self
            .0
            .get(&(name.to_owned(), labels.to_owned()))
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {:?}", self.0.keys()))
    }
}

/// Counts follow the operations exactly: misses, hits, shared loads, deletes, sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_known_operations() {
    let cluster = TestCluster::start(1).await;
    let engine = cluster.node(0).engine();
    let addr = &cluster.addrs[0];
    let before = Metrics::scrape(addr, None).await;
    engine.get("ks", "a").await.unwrap();
    engine.get("ks", "a").await.unwrap();
    engine.get("ks", "missing-b").await.unwrap();
    engine.delete("ks", "a").await.unwrap();
    let after = Metrics::scrape(addr, None).await;

    let delta = |name: &str, labels: &str| after.get(name, labels) - before.get(name, labels);
    assert_eq!(delta("distcache_cache_hits_total", "keyspace=ks"), 1.0);
    assert_eq!(delta("distcache_cache_misses_total", "keyspace=ks"), 2.0);
    assert_eq!(
        delta(
            "distcache_engine_requests_total",
            "keyspace=ks,operation=get"
        ),
        3.0
    );
    assert_eq!(
        delta(
            "distcache_engine_requests_total",
            "keyspace=ks,operation=delete"
        ),
        1.0
    );
    assert_eq!(
        delta("distcache_source_fetches_total", "keyspace=ks,outcome=ok"),
        2.0
    );
    assert_eq!(
        delta("distcache_singleflight_shared_total", "keyspace=ks"),
        0.0
    );
    assert_eq!(
        after.get("distcache_cache_entries", "cache=main,keyspace=ks"),
        0.0
    );
    assert!(after.get("distcache_keyspace_max_bytes", "keyspace=ks") > 0.0);
    assert_eq!(after.get("distcache_breaker_state", "keyspace=ks"), 0.0);
    assert_eq!(after.get("distcache_ring_members", ""), 1.0);
    assert!(after.get("distcache_catalog_revision", "") >= 1.0);
    assert_eq!(after.get("distcache_raft_is_leader", ""), 1.0);
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
