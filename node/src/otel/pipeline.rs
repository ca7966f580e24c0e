//! The export pipeline: a tracer provider (batch span processor, bounded queue) and a meter
//! provider (periodic reader) exporting over OTLP, with one resource naming the node.
//!
//! Exports run off the request path, on the SDK's own threads: a span ends into a bounded
//! queue (full: the span is dropped), metrics are read every interval. HTTP exports are sent
//! on the tokio runtime the pipeline was started in (`otel/client.rs`); gRPC's channel lives
//! there too. Flush and shutdown block in the SDK, so they run on a thread of their own and
//! are given up after a bound: an unreachable collector never holds up a caller for longer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tokio::runtime::Handle;

use super::OtelError;
use super::client::RuntimeClient;
use super::config::{OtelConfig, OtlpProtocol, Signal, Target, TracesSampler};

/// Spans waiting for export at most; more are dropped (never waited for).
pub const SPAN_QUEUE: usize = 2048;
/// Spans sent in one export request at most.
const SPAN_BATCH: usize = 512;
/// How long a span waits in the queue before its batch goes out.
const SPAN_DELAY: Duration = Duration::from_secs(2);

/// A running OpenTelemetry export of one node's traces and metrics (see the module docs).
/// Drop it after [`shutdown`](Self::shutdown); dropped without one, it shuts down on a
/// thread of its own.
pub struct OtelPipeline {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    traces: bool,
    metrics: bool,
    resource: Resource,
    /// The bound of a flush or a shutdown.
    bound: Duration,
}

impl std::fmt::Debug for OtelPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelPipeline")
            .field("traces", &self.traces)
            .field("metrics", &self.metrics)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl OtelPipeline {
    /// Starts exporting as a (resolved) `config` says, for the node `node_id`
    /// (`service.instance.id`). `None` when nothing is to be exported: no endpoint, or
    /// disabled — then nothing is built. Must be called within a tokio runtime, which then
    /// carries the exports: it must outlive the pipeline.
    pub fn start(config: &OtelConfig, node_id: &str) -> Result<Option<OtelPipeline>, OtelError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(OtelError::Invalid(problems));
        }
        let traces = config.target(Signal::Traces);
        let metrics = config.target(Signal::Metrics);
        if traces.is_none() && metrics.is_none() {
            return Ok(None);
        }
        let runtime = Handle::try_current().map_err(|e| OtelError::NoRuntime(e.to_string()))?;
        let resource = resource(config, node_id);
        let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource.clone());
        match &traces {
            Some(target) => {
                let exporter = span_exporter(target, &runtime)?;
                let batch = BatchConfigBuilder::default()
                    .with_max_queue_size(SPAN_QUEUE)
                    .with_max_export_batch_size(SPAN_BATCH)
                    .with_scheduled_delay(SPAN_DELAY)
                    .build();
                tracer_provider = tracer_provider
                    .with_sampler(sampler(config))
                    .with_span_processor(
                        BatchSpanProcessor::builder(exporter)
                            .with_batch_config(batch)
                            .build(),
                    );
            }
            // Traces are not exported: record none.
            None => tracer_provider = tracer_provider.with_sampler(Sampler::AlwaysOff),
        }
        let mut meter_provider = SdkMeterProvider::builder().with_resource(resource.clone());
        if let Some(target) = &metrics {
            let exporter = metric_exporter(target, &runtime)?;
            meter_provider = meter_provider.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(config.metrics_export_interval)
                    .build(),
            );
        }
        let bound = [&traces, &metrics]
            .into_iter()
            .flatten()
            .map(|t| t.timeout)
            .max()
            .unwrap_or(config.export_timeout);
        tracing::info!(
            traces = traces.as_ref().map(|t| t.url.as_str()),
            metrics = metrics.as_ref().map(|t| t.url.as_str()),
            "exporting OpenTelemetry"
        );
        Ok(Some(OtelPipeline {
            tracer_provider: tracer_provider.build(),
            meter_provider: meter_provider.build(),
            traces: traces.is_some(),
            metrics: metrics.is_some(),
            resource,
            bound,
        }))
    }

    /// The tracer provider (`opentelemetry::trace::TracerProvider`). When traces are not
    /// exported it samples nothing.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider (`opentelemetry::metrics::MeterProvider`). When metrics are not
    /// exported it has no reader, and its instruments record nothing.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.traces
    }

    /// Whether metrics are exported.
    pub fn exports_metrics(&self) -> bool {
        self.metrics
    }

    /// The resource every span and metric carries.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// How long [`force_flush`](Self::force_flush) and [`shutdown`](Self::shutdown) wait at
    /// most: the longest export timeout.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Exports what is waiting now: ended spans, and metrics read now. Gives up after
    /// [`bound`](Self::bound) (the export goes on behind).
    pub async fn force_flush(&self) -> Result<(), OtelError> {
        let (traces, metrics) = self.providers();
        off_thread("flush", self.bound, move || {
            let t = traces.force_flush();
            let m = metrics.force_flush();
            t.and(m)
        })
        .await
    }

    /// Exports what is waiting and stops both providers (further spans and metrics are
    /// dropped). Gives up after [`bound`](Self::bound).
    pub async fn shutdown(&self) -> Result<(), OtelError> {
        let (traces, metrics) = self.providers();
        let bound = self.bound;
        off_thread("shutdown", bound, move || {
            let t = traces.shutdown_with_timeout(bound);
            let m = metrics.shutdown_with_timeout(bound);
            t.and(m)
        })
        .await
    }

    fn providers(&self) -> (SdkTracerProvider, SdkMeterProvider) {
        (self.tracer_provider.clone(), self.meter_provider.clone())
    }
}

impl Drop for OtelPipeline {
    /// The SDK shuts a provider down when its last handle drops, blocking for up to seconds:
    /// never on the caller's (maybe a runtime's) thread.
    fn drop(&mut self) {
        // Taken out, so that the thread holds the last handles (empty providers stay).
        let providers = (
            std::mem::replace(
                &mut self.tracer_provider,
                SdkTracerProvider::builder().build(),
            ),
            std::mem::replace(
                &mut self.meter_provider,
                SdkMeterProvider::builder().build(),
            ),
        );
        let _ = std::thread::Builder::new()
            .name("otel-drop".into())
            .spawn(move || drop(providers));
    }
}

/// Runs the blocking `work` on a new thread; its result, or a time-out after `bound`.
async fn off_thread(
    what: &'static str,
    bound: Duration,
    work: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> Result<(), OtelError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("otel-{what}"))
        .spawn(move || {
            let _ = done.send(work());
        })
        .map_err(|e| OtelError::Sdk {
            what,
            message: format!("cannot start a thread: {e}"),
        })?;
    // Margin for the SDK's own waits, which end at `bound` too.
    match tokio::time::timeout(bound + Duration::from_millis(500), result).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(OtelError::Sdk {
            what,
            message: e.to_string(),
        }),
        Ok(Err(_)) => Err(OtelError::Sdk {
            what,
            message: "the thread ended without an answer".into(),
        }),
        Err(_) => Err(OtelError::Timeout { what, after: bound }),
    }
}

/// service.name, service.version, service.instance.id, the SDK's telemetry.sdk.*, and the
/// configured attributes (without reading the process environment, as `Resource::builder`
/// would).
fn resource(config: &OtelConfig, node_id: &str) -> Resource {
    let mut attrs: Vec<KeyValue> = TelemetryResourceDetector
        .detect()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attrs.push(KeyValue::new("service.instance.id", node_id.to_owned()));
    attrs.extend(
        config
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    attrs.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    Resource::builder_empty()
        .with_attributes(attrs)
        .with_service_name(config.effective_service_name())
        .build()
}

fn sampler(config: &OtelConfig) -> Sampler {
    let ratio = config.traces_sampler_arg.unwrap_or(1.0);
    match config.traces_sampler {
        TracesSampler::AlwaysOn => Sampler::AlwaysOn,
        TracesSampler::AlwaysOff => Sampler::AlwaysOff,
        TracesSampler::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        TracesSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TracesSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TracesSampler::ParentBasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

fn span_exporter(target: &Target, runtime: &Handle) -> Result<SpanExporter, OtelError> {
    let built = match target.protocol {
        OtlpProtocol::Grpc if target.is_https() => SpanExporter::builder()
            .with_tonic()
            .with_channel(super::grpc_tls::channel(target, &target.tls)?)
            .with_timeout(target.timeout)
            .with_metadata(metadata(target))
            .build(),
        OtlpProtocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(target.url.clone())
            .with_timeout(target.timeout)
            .with_metadata(metadata(target))
            .build(),
        http => SpanExporter::builder()
            .with_http()
            .with_endpoint(target.url.clone())
            .with_protocol(protocol(http))
            .with_timeout(target.timeout)
            .with_headers(headers(target))
            .with_shared_http_client(http_client(target, runtime)?)
            .build(),
    };
    built.map_err(|e| OtelError::Exporter {
        signal: Signal::Traces.name(),
        message: crate::error::with_causes(&e),
    })
}

fn metric_exporter(target: &Target, runtime: &Handle) -> Result<MetricExporter, OtelError> {
    let built = match target.protocol {
        OtlpProtocol::Grpc if target.is_https() => MetricExporter::builder()
            .with_tonic()
            .with_channel(super::grpc_tls::channel(target, &target.tls)?)
            .with_timeout(target.timeout)
            .with_metadata(metadata(target))
            .build(),
        OtlpProtocol::Grpc => MetricExporter::builder()
            .with_tonic()
            .with_endpoint(target.url.clone())
            .with_timeout(target.timeout)
            .with_metadata(metadata(target))
            .build(),
        http => MetricExporter::builder()
            .with_http()
            .with_endpoint(target.url.clone())
            .with_protocol(protocol(http))
            .with_timeout(target.timeout)
            .with_headers(headers(target))
            .with_shared_http_client(http_client(target, runtime)?)
            .build(),
    };
    built.map_err(|e| OtelError::Exporter {
        signal: Signal::Metrics.name(),
        message: crate::error::with_causes(&e),
    })
}

fn protocol(p: OtlpProtocol) -> Protocol {
    match p {
        OtlpProtocol::Grpc => Protocol::Grpc,
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    }
}

fn headers(target: &Target) -> HashMap<String, String> {
    target
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The headers as gRPC metadata (names lowercased; all were checked by `problems`).
fn metadata(target: &Target) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in &target.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.insert(name, value);
        }
    }
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map)
}

fn http_client(
    target: &Target,
    runtime: &Handle,
) -> Result<Arc<dyn opentelemetry_http::HttpClient>, OtelError> {
    RuntimeClient::new(target.timeout, &target.tls, runtime.clone())
        .map(|c| Arc::new(c) as Arc<dyn opentelemetry_http::HttpClient>)
}
