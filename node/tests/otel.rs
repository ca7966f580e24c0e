//! OpenTelemetry export over real sockets: spans and metrics reach a collector over
//! http/protobuf, http/json and gRPC with the node's resource; `[otel]` and the `OTEL_*`
//! variables resolve with environment winning and every bad value named; nothing is built
//! without an endpoint; an unreachable or hanging collector costs callers nothing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use distcache::otel::{Exporter, OtelConfig, OtelError, OtelPipeline, OtlpProtocol};
use distcache::{Engine, EngineConfig};
use distcache_testkit::{
    OtlpReceiver, ReceivedMetric, ReceivedPoint, ReceivedSpan, TestSource, hanging_collector,
    refusing_collector, spec, wait_until,
};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};

#[path = "otel/config.rs"]
mod config;

const WAIT: Duration = Duration::from_secs(15);

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn config_for(endpoint: &str, protocol: OtlpProtocol) -> OtelConfig {
    OtelConfig {
        endpoint: Some(endpoint.to_owned()),
        protocol,
        export_timeout: Duration::from_secs(5),
        resource_attributes: [("deployment.environment".to_owned(), "test".to_owned())].into(),
        ..OtelConfig::default()
    }
}

/// Sends a parent and a child span and a counter and a histogram through a pipeline to a
/// receiver over `protocol`, and checks what arrived.
async fn exports_over(protocol: OtlpProtocol) {
    let receiver = OtlpReceiver::start().await;
    let config = config_for(&receiver.endpoint(), protocol);
    let pipeline = OtelPipeline::start(&config, "node-a").unwrap().unwrap();
    assert!(pipeline.exports_traces() && pipeline.exports_metrics());

    let tracer = pipeline.tracer_provider().tracer("distcache-test");
    let mut parent = tracer
        .span_builder("distcache.get")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("distcache.keyspace", "users"),
            KeyValue::new("distcache.operation", "get"),
        ])
        .start(&tracer);
    let parent_id = parent.span_context().span_id();
    let trace_id = parent.span_context().trace_id();
    let cx = Context::new().with_remote_span_context(parent.span_context().clone());
    let mut child = tracer.start_with_context("distcache.fetch", &cx);
    child.set_status(Status::error("source down"));
    child.end();
    parent.set_attribute(KeyValue::new("distcache.outcome", "miss"));
    parent.end();

    let meter = pipeline.meter_provider().meter("distcache-test");
    let requests = meter.u64_counter("distcache.test.requests").build();
    requests.add(2, &[KeyValue::new("operation", "get")]);
    requests.add(1, &[KeyValue::new("operation", "get")]);
    let duration = meter
        .f64_histogram("distcache.test.duration")
        .with_unit("s")
        .build();
    duration.record(0.25, &[]);
    duration.record(1.5, &[]);

    pipeline.force_flush().await.unwrap();

    let name = protocol.name();
    let get: ReceivedSpan = receiver
        .wait_for_span(WAIT, "distcache.get", |s| s.name == "distcache.get")
        .await;
    assert_eq!(get.transport, name);
    assert_eq!(get.trace_id, trace_id.to_string());
    assert_eq!(get.span_id, parent_id.to_string());
    assert_eq!(get.parent_span_id, None);
    assert_eq!(get.kind, 2, "server");
    assert_eq!(get.attributes["distcache.keyspace"], "users");
    assert_eq!(get.attributes["distcache.operation"], "get");
    assert_eq!(get.attributes["distcache.outcome"], "miss");
    assert_eq!(get.service_name(), Some("distcache"));
    assert_eq!(get.instance_id(), Some("node-a"));
    assert_eq!(get.resource["deployment.environment"], "test");
    assert_eq!(get.resource["service.version"], env!("CARGO_PKG_VERSION"));
    let fetch = receiver
        .wait_for_span(WAIT, "distcache.fetch", |s| s.name == "distcache.fetch")
        .await;
    assert_eq!(fetch.trace_id, get.trace_id);
    assert_eq!(fetch.parent_span_id.as_deref(), Some(get.span_id.as_str()));
    assert_eq!(
        (fetch.status_code, fetch.status_message.as_str()),
        (2, "source down")
    );

    let counter = receiver
        .wait_for_metric(WAIT, "distcache.test.requests", |_| true)
        .await;
    assert_eq!(counter.transport, name);
    assert_eq!(counter.kind, "sum");
    assert_eq!(counter.points.len(), 1);
    assert_eq!(counter.points[0].value, Some(3.0));
    assert_eq!(counter.points[0].attributes["operation"], "get");
    assert_eq!(counter.resource["service.instance.id"], "node-a");
    let histogram = receiver
        .wait_for_metric(WAIT, "distcache.test.duration", |_| true)
        .await;
    assert_eq!(histogram.kind, "histogram");
    assert_eq!(histogram.unit, "s");
    assert_eq!(histogram.points[0].count, Some(2));
    assert_eq!(histogram.points[0].sum, Some(1.75));

    pipeline.shutdown().await.unwrap();
}

/// Spans and metrics reach the collector as protobuf over HTTP, with the node's resource.
#[tokio::test]
async fn exports_over_http_protobuf() {
    exports_over(OtlpProtocol::HttpProtobuf).await;
}

/// The same as JSON over HTTP.
#[tokio::test]
async fn exports_over_http_json() {
    exports_over(OtlpProtocol::HttpJson).await;
}

/// The same over gRPC (tonic), on a multi-threaded runtime as a node runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_grpc() {
    exports_over(OtlpProtocol::Grpc).await;
}

/// gRPC export works on a single-threaded runtime too (the channel lives on it).
#[tokio::test]
async fn exports_over_grpc_on_a_current_thread_runtime() {
    exports_over(OtlpProtocol::Grpc).await;
}

/// No endpoint, `disabled`, or both signals set to `none`: nothing is built.
#[tokio::test]
async fn nothing_is_built_without_an_endpoint() {
    assert!(
        OtelPipeline::start(&OtelConfig::default(), "n")
            .unwrap()
            .is_none()
    );
    let mut disabled = config_for("http://127.0.0.1:1", OtlpProtocol::HttpProtobuf);
    disabled.disabled = true;
    assert!(OtelPipeline::start(&disabled, "n").unwrap().is_none());
    let mut neither = config_for("http://127.0.0.1:1", OtlpProtocol::HttpProtobuf);
    neither.traces.exporter = Exporter::None;
    neither.metrics.exporter = Exporter::None;
    assert!(OtelPipeline::start(&neither, "n").unwrap().is_none());
    let resolved = OtelConfig::default()
        .resolve(env(&[("OTEL_SERVICE_NAME", "x")]))
        .unwrap();
    assert!(!resolved.exports_anything());
}

/// One signal can go alone to its own endpoint, used as it is.
#[tokio::test]
async fn a_signal_goes_alone_to_its_own_endpoint() {
    let receiver = OtlpReceiver::start().await;
    let config = OtelConfig::default()
        .resolve(env(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                &format!("{}/v1/traces", receiver.endpoint()),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]))
        .unwrap();
    let pipeline = OtelPipeline::start(&config, "solo").unwrap().unwrap();
    assert!(pipeline.exports_traces());
    assert!(!pipeline.exports_metrics());
    let tracer = pipeline.tracer_provider().tracer("t");
    tracer.start("alone").end();
    pipeline.force_flush().await.unwrap();
    let span = receiver
        .wait_for_span(WAIT, "alone", |s| s.name == "alone")
        .await;
    assert_eq!(span.transport, "http/json");
    pipeline.shutdown().await.unwrap();
}

/// Starts a pipeline to `endpoint` with short deadlines; checks that making more spans than
/// the queue holds costs callers nothing, that the runtime keeps running while a flush
/// waits, and that flush and shutdown return within their bound.
async fn unreachable_costs_nothing(endpoint: &str, protocol: OtlpProtocol) {
    let mut config = config_for(endpoint, protocol);
    config.export_timeout = Duration::from_millis(300);
    let pipeline = OtelPipeline::start(&config, "lonely").unwrap().unwrap();
    let tracer = pipeline.tracer_provider().tracer("t");
    let counter = pipeline
        .meter_provider()
        .meter("t")
        .u64_counter("c")
        .build();
    let started = Instant::now();
    for i in 0..(distcache::otel::SPAN_QUEUE * 2) {
        let mut span = tracer.start("busy");
        span.set_attribute(KeyValue::new("i", i as i64));
        span.end();
        counter.add(1, &[]);
    }
    let making = started.elapsed();
    assert!(
        making < Duration::from_secs(2),
        "making spans took {making:?}"
    );

    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let limit = pipeline.bound() + Duration::from_secs(2);
    let started = Instant::now();
    let flushed = pipeline.force_flush().await;
    let flushing = started.elapsed();
    assert!(flushed.is_err(), "a flush to nowhere succeeded");
    assert!(flushing < limit, "flush took {flushing:?}");
    assert!(
        ticks.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the runtime stood still during the flush ({flushing:?})"
    );
    ticker.abort();
    let started = Instant::now();
    let _ = pipeline.shutdown().await;
    let stopping = started.elapsed();
    assert!(stopping < limit, "shutdown took {stopping:?}");
    drop(pipeline);
}

/// Nothing listens at the collector's port (HTTP).
#[tokio::test]
async fn a_refused_collector_costs_nothing_over_http() {
    let (url, _port) = refusing_collector();
    unreachable_costs_nothing(&url, OtlpProtocol::HttpProtobuf).await;
}

/// Nothing listens at the collector's port (gRPC).
#[tokio::test]
async fn a_refused_collector_costs_nothing_over_grpc() {
    let (url, _port) = refusing_collector();
    unreachable_costs_nothing(&url, OtlpProtocol::Grpc).await;
}

/// The collector accepts connections and never answers (HTTP).
#[tokio::test]
async fn a_hanging_collector_costs_nothing_over_http() {
    let (url, hang) = hanging_collector().await;
    unreachable_costs_nothing(&url, OtlpProtocol::HttpJson).await;
    hang.abort();
}

/// The collector accepts connections and never answers (gRPC).
#[tokio::test]
async fn a_hanging_collector_costs_nothing_over_grpc() {
    let (url, hang) = hanging_collector().await;
    unreachable_costs_nothing(&url, OtlpProtocol::Grpc).await;
    hang.abort();
}

/// Outside a tokio runtime the pipeline says so instead of panicking.
#[test]
fn starting_outside_a_runtime_is_an_error() {
    let config = config_for("http://127.0.0.1:1", OtlpProtocol::HttpProtobuf);
    let err = OtelPipeline::start(&config, "n").unwrap_err();
    assert!(matches!(err, OtelError::NoRuntime(_)), "{err}");
}

/// The point of `metric` whose attributes include every pair of `want`.
fn point<'a>(metric: &'a ReceivedMetric, want: &[(&str, &str)]) -> Option<&'a ReceivedPoint> {
    metric.points.iter().find(|p| {
        want.iter()
            .all(|(k, v)| p.attributes.get(*k).map(String::as_str) == Some(*v))
    })
}

/// An embedder's meter provider (`EngineBuilder::meter_provider`) gets the engine's metrics
/// under their OpenTelemetry names: counters with exact values, and duration histograms
/// whose counts follow the calls from one collection to the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedders_meter_provider_gets_the_engine_metrics() {
    let receiver = OtlpReceiver::start().await;
    let config = OtelConfig {
        // Collected by the flushes below only.
        metrics_export_interval: Duration::from_secs(3600),
        ..config_for(&receiver.endpoint(), OtlpProtocol::HttpProtobuf)
    };
    let pipeline = OtelPipeline::start(&config, "embedded").unwrap().unwrap();
    let engine = Engine::builder(EngineConfig::for_test())
        .register_source("test", TestSource::new())
        .keyspace_spec(spec("users"))
        .meter_provider(pipeline.meter_provider())
        .build()
        .unwrap();
    engine.start().await.unwrap();
    engine.get("users", "a").await.unwrap(); // miss, loaded
    engine.get("users", "a").await.unwrap(); // hit
    engine.get("nope", "a").await.unwrap_err(); // no such keyspace
    engine.put("users", "b", "v").await.unwrap();
    pipeline.force_flush().await.unwrap();

    let gets = [("operation", "get"), ("keyspace", "users")];
    let counted = |name: &'static str, want: &'static [(&'static str, &'static str)], n: f64| {
        receiver.wait_for_metric(WAIT, name, move |m| {
            point(m, want).and_then(|p| p.value) == Some(n)
        })
    };
    let requests = counted(
        "distcache.engine.requests",
        &[("operation", "get"), ("keyspace", "users")],
        2.0,
    )
    .await;
    assert_eq!((requests.kind, requests.unit.as_str()), ("sum", "{call}"));
    counted(
        "distcache.engine.requests",
        &[("operation", "put"), ("keyspace", "users")],
        1.0,
    )
    .await;
    counted(
        "distcache.engine.errors",
        &[
            ("operation", "get"),
            ("keyspace", ""),
            ("code", "KEYSPACE_NOT_FOUND"),
        ],
        1.0,
    )
    .await;
    counted("distcache.cache.hits", &[("keyspace", "users")], 1.0).await;
    counted("distcache.cache.misses", &[("keyspace", "users")], 1.0).await;
    // Cache sizes are read as moka has them: they catch up with its pending work, which a
    // later collection sees.
    let main_entries = [("keyspace", "users"), ("cache", "main")];
    wait_until(WAIT, "the main cache holds 2 entries", || async {
        pipeline.force_flush().await.unwrap();
        receiver
            .last_metric("distcache.cache.entries")
            .is_some_and(|m| {
                m.kind == "gauge" && point(&m, &main_entries).and_then(|p| p.value) == Some(2.0)
            })
    })
    .await;
    let durations = receiver
        .wait_for_metric(WAIT, "distcache.engine.duration", |m| {
            point(m, &gets).and_then(|p| p.count) == Some(2)
        })
        .await;
    assert_eq!(
        (durations.kind, durations.unit.as_str()),
        ("histogram", "s")
    );
    let sum = point(&durations, &gets).and_then(|p| p.sum).unwrap();
    assert!(sum > 0.0 && sum < 5.0, "{sum}");

    // The next collection adds only what came after the last one.
    for _ in 0..3 {
        engine.get("users", "a").await.unwrap();
    }
    pipeline.force_flush().await.unwrap();
    receiver
        .wait_for_metric(WAIT, "distcache.engine.duration", |m| {
            point(m, &gets).and_then(|p| p.count) == Some(5)
        })
        .await;
    counted(
        "distcache.engine.requests",
        &[("operation", "get"), ("keyspace", "users")],
        5.0,
    )
    .await;

    // Once the engine is gone the callbacks observe nothing, and collecting still works.
    engine.stop().await.unwrap();
    drop(engine);
    pipeline.force_flush().await.unwrap();
    pipeline.shutdown().await.unwrap();
}

/// A collector behind TLS with a private CA that requires a client certificate: with
/// `[otel.tls]` naming the CA and the client certificate, spans and metrics arrive over
/// gRPC and over HTTP; without the client certificate the export fails and nothing arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_tls_with_a_private_ca_and_a_client_certificate() {
    use distcache_testkit::tls::{TestPki, server_config};
    let pki = TestPki::new();
    let server = pki.server("collector");
    let client = pki.client("node-a");
    for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
        let receiver = OtlpReceiver::start_tls(server_config(&server, Some(pki.ca()))).await;
        let mut config = config_for(&receiver.endpoint(), protocol);
        config.metrics_export_interval = Duration::from_secs(3600);
        config.tls.ca = Some(pki.ca().to_owned());
        config.tls.cert = Some(client.cert.clone());
        config.tls.key = Some(client.key.clone());
        let pipeline = OtelPipeline::start(&config, "node-a").unwrap().unwrap();
        pipeline
            .tracer_provider()
            .tracer("test")
            .start("over.tls")
            .end();
        pipeline
            .meter_provider()
            .meter("test")
            .u64_counter("distcache.test.tls")
            .build()
            .add(1, &[]);
        pipeline.force_flush().await.unwrap();
        let span = receiver
            .wait_for_span(WAIT, "the span over TLS", |s| s.name == "over.tls")
            .await;
        assert_eq!(span.instance_id(), Some("node-a"), "{protocol:?}");
        receiver
            .wait_for_metric(WAIT, "distcache.test.tls", |_| true)
            .await;
        pipeline.shutdown().await.unwrap();

        // The same collector refuses a client without a certificate.
        let refused_receiver =
            OtlpReceiver::start_tls(server_config(&server, Some(pki.ca()))).await;
        let mut anonymous = config_for(&refused_receiver.endpoint(), protocol);
        anonymous.export_timeout = Duration::from_secs(2);
        anonymous.tls.ca = Some(pki.ca().to_owned());
        let pipeline = OtelPipeline::start(&anonymous, "node-b").unwrap().unwrap();
        pipeline
            .tracer_provider()
            .tracer("test")
            .start("refused")
            .end();
        assert!(
            pipeline.force_flush().await.is_err(),
            "{protocol:?}: an export without a client certificate succeeded"
        );
        assert!(refused_receiver.spans().is_empty(), "{protocol:?}");
        pipeline.shutdown().await.ok();
    }
}
