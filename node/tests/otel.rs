//! OpenTelemetry export over real sockets: spans and metrics reach a collector over
//! http/protobuf, http/json and gRPC with the node's resource; `[otel]` and the `OTEL_*`
//! variables resolve with environment winning and every bad value named; nothing is built
//! without an endpoint; an unreachable or hanging collector costs callers nothing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use distcache::otel::{Exporter, OtelConfig, OtelError, OtelPipeline, OtlpProtocol, TracesSampler};
use distcache::{Engine, EngineConfig};
use distcache_testkit::{
    OtlpReceiver, ReceivedMetric, ReceivedPoint, ReceivedSpan, TestSource, hanging_collector,
    refusing_collector, spec, wait_until,
};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};

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

/// Variables win over the `[otel]` table; the table's values stay where no variable is set.
#[test]
fn variables_win_over_the_file() {
    let file: OtelConfig = toml::from_str(
        r#"
        endpoint = "http://collector.file:4318"
        protocol = "http/json"
        service_name = "from-file"
        traces_sampler = "always_off"
        metrics_export_interval = "30s"
        export_timeout = "3s"
        resource_attributes = { region = "eu", team = "cache" }
        headers = { x-tenant = "file" }
        [metrics]
        exporter = "none"
        "#,
    )
    .unwrap();
    let resolved = file
        .clone()
        .resolve(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "from-env"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "region=us%20east,k8s.pod.name=p-1",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=env"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_SDK_DISABLED", ""), // empty: unset
        ]))
        .unwrap();
    assert_eq!(
        resolved.endpoint.as_deref(),
        Some("http://collector.env:4317")
    );
    assert_eq!(resolved.protocol, OtlpProtocol::Grpc);
    assert_eq!(resolved.service_name.as_deref(), Some("from-env"));
    assert_eq!(resolved.resource_attributes["region"], "us east");
    assert_eq!(resolved.resource_attributes["team"], "cache");
    assert_eq!(resolved.resource_attributes["k8s.pod.name"], "p-1");
    assert_eq!(
        resolved.traces_sampler,
        TracesSampler::ParentBasedTraceIdRatio
    );
    assert_eq!(resolved.traces_sampler_arg, Some(0.25));
    assert_eq!(
        resolved.metrics_export_interval,
        Duration::from_millis(1500)
    );
    assert_eq!(resolved.export_timeout, Duration::from_secs(3));
    assert_eq!(resolved.headers["authorization"], "Bearer abc");
    assert_eq!(resolved.headers["x-tenant"], "file");
    assert_eq!(resolved.traces.headers["x-tenant"], "env");
    assert_eq!(resolved.metrics.exporter, Exporter::Otlp);
    assert!(!resolved.disabled);
    // Without variables the file stands.
    let alone = file.clone().resolve(env(&[])).unwrap();
    assert_eq!(alone, file);
    assert_eq!(alone.effective_service_name(), "from-file");
}

/// `service.name` comes from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else
/// `distcache`.
#[test]
fn the_service_name_falls_back_as_the_specification_says() {
    let from_attrs = OtelConfig::default()
        .resolve(env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=cache-eu",
        )]))
        .unwrap();
    assert_eq!(from_attrs.effective_service_name(), "cache-eu");
    assert_eq!(OtelConfig::default().effective_service_name(), "distcache");
}

/// Every bad variable is an error naming it, all at once.
#[test]
fn every_bad_variable_is_named() {
    let bad = [
        ("OTEL_SDK_DISABLED", "yes please"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
        ("OTEL_RESOURCE_ATTRIBUTES", "region"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60s"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "bad header=secret-value"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "udp"),
        ("OTEL_TRACES_EXPORTER", "jaeger"),
    ];
    for (var, value) in bad {
        let err = OtelConfig::default()
            .resolve(env(&[(var, value)]))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OtelError::Invalid(_)), "{var}: {text}");
        assert!(text.contains(var), "{var} not named: {text}");
        if var.ends_with("HEADERS") {
            assert!(
                !text.contains("secret-value"),
                "a header value leaked: {text}"
            );
        } else {
            assert!(text.contains(value), "{value} not shown: {text}");
        }
    }
    let Err(OtelError::Invalid(all)) = OtelConfig::default().resolve(env(&bad)) else {
        panic!("bad variables accepted");
    };
    assert_eq!(all.0.len(), bad.len(), "{all}");
}

/// Bad values in the `[otel]` table are named by their key; unknown keys are refused.
#[test]
fn bad_file_values_are_named_by_key() {
    let file: OtelConfig = toml::from_str(
        r#"
        endpoint = "not a url"
        traces_sampler_arg = -1.0
        export_timeout = "0s"
        [traces]
        endpoint = "ftp://collector:4317"
        protocol = "grpc"
        [tls]
        cert = "/etc/node.pem"
        "#,
    )
    .unwrap();
    let text = file.resolve(env(&[])).unwrap_err().to_string();
    for key in [
        "otel.endpoint",
        "otel.traces_sampler_arg",
        "otel.export_timeout",
        "otel.traces.endpoint",
        "otel.tls.key",
    ] {
        assert!(text.contains(key), "{key} not named: {text}");
    }
    let unknown = toml::from_str::<OtelConfig>("endpoint_url = \"http://x\"").unwrap_err();
    assert!(unknown.to_string().contains("endpoint_url"), "{unknown}");
    let sampler = toml::from_str::<OtelConfig>("traces_sampler = \"sometimes\"").unwrap_err();
    assert!(sampler.to_string().contains("sometimes"), "{sampler}");
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

/// The example node files carry an `[otel]` table that parses, with the defaults.
#[test]
fn the_example_node_files_have_a_valid_otel_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster");
    for n in 1..=3 {
        let text = std::fs::read_to_string(dir.join(format!("node-{n}.toml"))).unwrap();
        let config: distcache::NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.otel, OtelConfig::default(), "node-{n}.toml");
        assert!(config.problems().is_empty(), "{}", config.problems());
    }
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

/// `OTEL_EXPORTER_OTLP_CERTIFICATE` and the client pair are read; half a pair is named.
#[test]
fn tls_variables_are_read_and_half_a_pair_is_named() {
    let config = OtelConfig::default()
        .resolve(env(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/node.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/node-key.pem"),
        ]))
        .unwrap();
    assert_eq!(
        config.tls.ca.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert_eq!(
        config.tls.key.as_deref(),
        Some(std::path::Path::new("/etc/node-key.pem"))
    );
    let err = OtelConfig::default()
        .resolve(env(&[(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/etc/node.pem",
        )]))
        .unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{err}"
    );
}
