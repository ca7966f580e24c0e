//! OpenTelemetry export on a node: the node starts its pipeline from `[otel]`, its spans
//! carry the node's id, its stop flushes them; and a collector that never answers changes
//! nothing for clients (issue 15).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distcache::otel::OtlpProtocol;
use distcache::{KeySpaceSpec, SourceSpec};
use distcache_testkit::{OtlpReceiver, TestCluster, hanging_collector};
use opentelemetry::trace::{Span, Tracer, TracerProvider};

/// A node exports with its own id as `service.instance.id`, and its stop exports the spans
/// still waiting.
#[tokio::test]
async fn a_node_exports_with_its_id_and_flushes_on_stop() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let cluster = TestCluster::builder(1)
        .edit(move |_, c| c.otel.endpoint = Some(endpoint.clone()))
        .build()
        .await;
    let otel = cluster.node(0).otel().expect("export is on");
    assert!(otel.exports_traces() && otel.exports_metrics());
    otel.tracer_provider()
        .tracer("test")
        .start("waiting.at.stop")
        .end();
    assert!(
        receiver.spans().is_empty(),
        "exported before the batch delay"
    );
    cluster.shutdown().await;
    let span = receiver
        .wait_for_span(Duration::from_secs(5), "the span of the stop", |s| {
            s.name == "waiting.at.stop"
        })
        .await;
    assert_eq!(span.instance_id(), Some("node-0"));
    assert_eq!(span.service_name(), Some("distcache"));
}

/// No `[otel]` endpoint: the node builds no pipeline.
#[tokio::test]
async fn a_node_without_an_endpoint_exports_nothing() {
    let cluster = TestCluster::start(1).await;
    assert!(cluster.node(0).otel().is_none());
    cluster.shutdown().await;
}

/// With a collector that accepts connections and never answers (metrics exported every
/// 50 ms, spans queued), puts and gets are served as usual and the node stops promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_collector_changes_nothing_for_clients() {
    for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc] {
        let (url, hang) = hanging_collector().await;
        let cluster = TestCluster::builder(2)
            .edit(move |_, c| {
                c.otel.endpoint = Some(url.clone());
                c.otel.protocol = protocol;
                c.otel.export_timeout = Duration::from_millis(500);
                c.otel.metrics_export_interval = Duration::from_millis(50);
            })
            .build()
            .await;
        for i in 0..2 {
            let otel = cluster.node(i).otel().expect("export is on");
            let tracer = otel.tracer_provider().tracer("test");
            for _ in 0..(distcache::otel::SPAN_QUEUE + 10) {
                tracer.start("never.exported").end();
            }
        }
        let started = Instant::now();
        for n in 0..40 {
            let client = cluster.client(n % 2);
            let key = format!("k{n}");
            client.put("ks", &key, format!("v{n}"), None).await.unwrap();
            let other = cluster.client((n + 1) % 2);
            let got = other.get("ks", &key).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(format!("v{n}").as_bytes()),
                "{protocol:?}"
            );
        }
        let serving = started.elapsed();
        assert!(
            serving < Duration::from_secs(5),
            "{protocol:?}: 40 puts and gets took {serving:?}"
        );
        let started = Instant::now();
        cluster.shutdown().await;
        let stopping = started.elapsed();
        assert!(
            stopping < Duration::from_secs(10),
            "{protocol:?}: stopping took {stopping:?}"
        );
        hang.abort();
    }
}

/// An HTTP data source that answers every key and keeps the `traceparent` of each request.
async fn traced_source() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/items/{key}",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let kept = Arc::clone(&kept);
            async move {
                if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                    kept.lock().unwrap().push(tp.to_owned());
                }
                "value"
            }
        }),
    );
    let (listener, addr) = distcache_testkit::loopback_listener().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/items/{{key}}"), seen)
}

/// A get through a non-owner that carries a `traceparent` is one trace: the client's span →
/// node 0's server span → `distcache.get` (outcome peer) → the single-flight wait → the peer
/// call → node 1's server span → its fetch → the HTTP data source's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_two_nodes_and_into_the_source() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let (url, source_saw) = traced_source().await;
    let cluster = TestCluster::builder(2)
        .specs(vec![KeySpaceSpec::new("ks", SourceSpec::Http { url })])
        .edit(move |_, c| c.otel.endpoint = Some(endpoint.clone()))
        .build()
        .await;
    let key = cluster.key_owned_by("ks", 1, "traced-");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/keyspaces/ks/keys/{key}",
            cluster.addrs[0]
        ))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "value");
    for i in 0..2 {
        cluster.node(i).otel().unwrap().force_flush().await.unwrap();
    }
    let limit = Duration::from_secs(10);
    let in_trace = |name: &'static str| {
        move |s: &distcache_testkit::ReceivedSpan| s.trace_id == trace_id && s.name == name
    };
    let server0 = receiver
        .wait_for_span(limit, "node 0's server span", |s| {
            s.trace_id == trace_id && s.name == "GET /v1/keyspaces/{ks}/keys/{*key}"
        })
        .await;
    let get = receiver
        .wait_for_span(limit, "distcache.get", in_trace("distcache.get"))
        .await;
    let wait = receiver
        .wait_for_span(limit, "the wait", in_trace("distcache.singleflight.wait"))
        .await;
    let peer = receiver
        .wait_for_span(limit, "the peer call", in_trace("distcache.peer"))
        .await;
    let server1 = receiver
        .wait_for_span(limit, "node 1's server span", |s| {
            s.trace_id == trace_id && s.name.starts_with("GET /_distcache/peer/")
        })
        .await;
    let fetch = receiver
        .wait_for_span(limit, "the fetch", in_trace("distcache.fetch"))
        .await;

    assert_eq!(server0.parent_span_id.as_deref(), Some(client_span));
    assert_eq!(server0.instance_id(), Some("node-0"));
    assert_eq!(server0.kind, 2, "server");
    assert_eq!(server0.attributes["http.response.status_code"], "200");
    assert_eq!(get.parent_span_id, Some(server0.span_id.clone()));
    assert_eq!(get.attributes["distcache.operation"], "get");
    assert_eq!(get.attributes["distcache.keyspace"], "ks");
    assert_eq!(get.attributes["distcache.outcome"], "peer");
    assert_eq!(wait.parent_span_id, Some(get.span_id.clone()));
    assert_eq!(peer.parent_span_id, Some(wait.span_id.clone()));
    assert_eq!(peer.kind, 3, "client");
    assert_eq!(peer.instance_id(), Some("node-0"));
    assert_eq!(server1.parent_span_id, Some(peer.span_id.clone()));
    assert_eq!(server1.instance_id(), Some("node-1"));
    assert_eq!(fetch.parent_span_id, Some(server1.span_id.clone()));
    assert_eq!(fetch.instance_id(), Some("node-1"));
    assert_eq!(fetch.attributes["distcache.outcome"], "found");
    assert_eq!(
        source_saw.lock().unwrap().clone(),
        vec![format!("00-{trace_id}-{}-01", fetch.span_id)],
        "the source's request carries the fetch span"
    );

    // A second read is a hit on node 0's hot copy: inside the trace, a span says so.
    reqwest::Client::new()
        .get(format!(
            "http://{}/v1/keyspaces/ks/keys/{key}",
            cluster.addrs[0]
        ))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .send()
        .await
        .unwrap();
    cluster.node(0).otel().unwrap().force_flush().await.unwrap();
    receiver
        .wait_for_span(limit, "the hot hit", |s| {
            s.trace_id == trace_id
                && s.name == "distcache.get"
                && s.attributes.get("distcache.outcome").map(String::as_str) == Some("hot")
        })
        .await;
    cluster.shutdown().await;
}

/// A node exports every metric family over OTLP, the HTTP server's durations and the
/// control plane's gauges included, with the values `/metrics` shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_exports_its_metrics_over_otlp() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let cluster = TestCluster::builder(1)
        .edit(move |_, c| {
            c.otel.endpoint = Some(endpoint.clone());
            // Collected by the flush below only.
            c.otel.metrics_export_interval = Duration::from_secs(3600);
        })
        .build()
        .await;
    let addr = &cluster.addrs[0];
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let got = http
            .get(format!("http://{addr}/v1/keyspaces/ks/keys/h1"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
    }
    cluster
        .node(0)
        .engine()
        .create_keyspace(KeySpaceSpec::new("other", SourceSpec::None))
        .await
        .unwrap();
    let otel = cluster.node(0).otel().expect("export is on");
    otel.force_flush().await.unwrap();

    let wait = Duration::from_secs(10);
    let route = [
        ("http.route", "/v1/keyspaces/{ks}/keys/{*key}"),
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
    ];
    let has = |m: &distcache_testkit::ReceivedMetric, want: &[(&str, &str)]| {
        m.points
            .iter()
            .find(|p| {
                want.iter()
                    .all(|(k, v)| p.attributes.get(*k).map(String::as_str) == Some(*v))
            })
            .cloned()
    };
    let durations = receiver
        .wait_for_metric(wait, "http.server.request.duration", |m| {
            has(m, &route).and_then(|p| p.count) == Some(2)
        })
        .await;
    assert_eq!(durations.unit, "s");
    receiver
        .wait_for_metric(wait, "distcache.engine.requests", |m| {
            has(m, &[("operation", "get"), ("keyspace", "ks")]).and_then(|p| p.value) == Some(2.0)
        })
        .await;
    receiver
        .wait_for_metric(wait, "distcache.raft.is_leader", |m| {
            has(m, &[]).and_then(|p| p.value) == Some(1.0)
        })
        .await;
    let names = receiver.metric_names();
    for name in [
        "distcache.engine.requests",
        "distcache.engine.duration",
        "distcache.cache.hits",
        "distcache.cache.misses",
        "distcache.cache.fetch.duration",
        "distcache.cache.entries",
        "distcache.cache.size",
        "distcache.keyspace.max_size",
        "distcache.breaker.state",
        "distcache.ring.members",
        "distcache.catalog.revision",
        "distcache.raft.term",
        "distcache.raft.commit.duration",
        "distcache.build.info",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    cluster.shutdown().await;
}
