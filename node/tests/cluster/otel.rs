//! OpenTelemetry export on a node: the node starts its pipeline from `[otel]`, its spans
//! carry the node's id, its stop flushes them; and a collector that never answers changes
//! nothing for clients (issue 15).

use std::time::{Duration, Instant};

use distcache::otel::OtlpProtocol;
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
