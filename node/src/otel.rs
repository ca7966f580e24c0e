//! OpenTelemetry export: the plumbing that the engine's spans and instruments use.
//!
//! - `otel/config.rs`: [`OtelConfig`], the `[otel]` table of node.toml;
//! - `otel/env.rs`: [`OtelConfig::resolve`], the standard `OTEL_*` variables over it (given
//!   as a lookup: the library never reads the process environment);
//! - `otel/pipeline.rs`: [`OtelPipeline`], tracer and meter providers exporting over OTLP
//!   (gRPC, HTTP protobuf or HTTP JSON), off the request path, flushed and shut down within
//!   a bound;
//! - `otel/metrics.rs`: the node's metric families as instruments of a meter (observed
//!   counters and gauges, replayed histograms);
//! - `otel/grpc_tls.rs`: gRPC to `https://` collectors over rustls with `[otel.tls]`;
//! - `otel/client.rs`: the HTTP client of OTLP/HTTP, sending on the node's runtime;
//! - `otel/propagation.rs`: W3C `traceparent` in and out of HTTP headers ([`inject`],
//!   [`extract`]).
//!
//! Nothing here is global: no provider or propagator is installed process-wide.

use std::time::Duration;

use crate::error::Problems;

mod client;
mod config;
mod env;
mod grpc_tls;
pub(crate) mod metrics;
mod pipeline;
mod propagation;

pub use config::{Exporter, OtelConfig, OtlpProtocol, SignalConfig, TracesSampler};
pub use pipeline::{OtelPipeline, SPAN_QUEUE};
pub(crate) use propagation::traced_request;
pub use propagation::{extract, inject};

/// What went wrong setting up or stopping the export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// Bad settings, each named by its `[otel]` key or `OTEL_*` variable.
    #[error("invalid OpenTelemetry settings: {0}")]
    Invalid(Problems),
    /// The SDK refused to build an exporter.
    #[error("cannot build the OTLP {signal} exporter: {message}")]
    Exporter {
        /// `traces`, `metrics` or `http` (the HTTP client).
        signal: &'static str,
        /// Why.
        message: String,
    },
    /// [`OtelPipeline::start`] was called outside a tokio runtime.
    #[error("OpenTelemetry export needs a tokio runtime: {0}")]
    NoRuntime(String),
    /// A flush or shutdown did not finish in time (it goes on behind).
    #[error("OpenTelemetry {what} did not finish within {}", humantime::format_duration(*.after))]
    Timeout {
        /// `flush` or `shutdown`.
        what: &'static str,
        /// The bound.
        after: Duration,
    },
    /// A flush or shutdown failed (the collector refused, could not be reached, …).
    #[error("OpenTelemetry {what} failed: {message}")]
    Sdk {
        /// `flush` or `shutdown`.
        what: &'static str,
        /// The SDK's reason.
        message: String,
    },
}
