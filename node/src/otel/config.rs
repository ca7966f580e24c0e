//! What OpenTelemetry export is configured to do: the `[otel]` table of node.toml, its
//! defaults, and the check of its values. The standard `OTEL_*` variables are laid over it by
//! [`OtelConfig::resolve`] (`otel/env.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::net::tls::ClientTls;

/// OpenTelemetry export of traces and metrics over OTLP (`[otel]` in node.toml). Nothing is
/// exported unless an endpoint is set, here or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
///
/// Keys mirror the standard `OTEL_*` variables, which override them
/// ([`resolve`](Self::resolve)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// Base URL of the OTLP collector, e.g. `http://127.0.0.1:4318` (HTTP) or
    /// `http://127.0.0.1:4317` (gRPC). For HTTP, `/v1/traces` and `/v1/metrics` are appended;
    /// for gRPC it is used as it is. Default: none, and then nothing is exported (except a
    /// signal that has its own endpoint in `[otel.traces]` / `[otel.metrics]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `grpc`, `http/protobuf` or `http/json`. Default `http/protobuf` (the OTel default).
    pub protocol: OtlpProtocol,
    /// `service.name` of the resource. Default: `service.name` of `resource_attributes` if it
    /// is there, else `distcache`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// More resource attributes (`deployment.environment = "prod"`, …). `service.instance.id`
    /// here wins over the node id.
    pub resource_attributes: BTreeMap<String, String>,
    /// Which spans are recorded and exported. Default `parentbased_always_on`.
    pub traces_sampler: TracesSampler,
    /// The ratio (0 to 1) of the `traceidratio` samplers. Default 1. Ignored by the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces_sampler_arg: Option<f64>,
    /// How often metrics are exported. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub metrics_export_interval: Duration,
    /// The deadline of one export request, and the bound of a flush or shutdown. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub export_timeout: Duration,
    /// Headers sent with every export (an API key of a hosted collector, …).
    pub headers: BTreeMap<String, String>,
    /// TLS of `https://` endpoints (`[otel.tls]`): `ca`, the PEM file of the CAs that verify
    /// the collector instead of the bundled Mozilla roots (`OTEL_EXPORTER_OTLP_CERTIFICATE`);
    /// `cert` and `key`, a client certificate for collectors that ask for one
    /// (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY`). For gRPC
    /// and HTTP alike. Default: the Mozilla roots, no client certificate.
    pub tls: ClientTls,
    /// Switches all export off, whatever else is set (`OTEL_SDK_DISABLED=true`). Default false.
    pub disabled: bool,
    /// Settings of the traces export alone (`OTEL_EXPORTER_OTLP_TRACES_*`, `OTEL_TRACES_EXPORTER`).
    pub traces: SignalConfig,
    /// Settings of the metrics export alone (`OTEL_EXPORTER_OTLP_METRICS_*`,
    /// `OTEL_METRICS_EXPORTER`).
    pub metrics: SignalConfig,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            endpoint: None,
            protocol: OtlpProtocol::HttpProtobuf,
            service_name: None,
            resource_attributes: BTreeMap::new(),
            traces_sampler: TracesSampler::ParentBasedAlwaysOn,
            traces_sampler_arg: None,
            metrics_export_interval: Duration::from_secs(60),
            export_timeout: Duration::from_secs(10),
            headers: BTreeMap::new(),
            tls: ClientTls::default(),
            disabled: false,
            traces: SignalConfig::default(),
            metrics: SignalConfig::default(),
        }
    }
}

/// One signal's own settings (`[otel.traces]`, `[otel.metrics]`); each unset one falls back
/// to the general setting of `[otel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// `otlp` (default) or `none`: `none` exports nothing of this signal.
    pub exporter: Exporter,
    /// The full URL of this signal's export, used as it is (no `/v1/…` appended), as the
    /// OTel specification says of `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// This signal's protocol. Default: `protocol` of `[otel]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// Headers of this signal's exports, added to (and winning over) `headers` of `[otel]`.
    pub headers: BTreeMap<String, String>,
    /// This signal's export deadline. Default: `export_timeout` of `[otel]`.
    #[serde(
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub timeout: Option<Duration>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            exporter: Exporter::Otlp,
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            timeout: None,
        }
    }
}

/// Whether a signal is exported (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exporter {
    /// Over OTLP.
    Otlp,
    /// Not at all.
    None,
}

/// The OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// gRPC (HTTP/2), usually on port 4317.
    #[serde(rename = "grpc")]
    Grpc,
    /// Protobuf bodies over HTTP, usually on port 4318.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// JSON bodies over HTTP, usually on port 4318.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// The name used in configuration and variables.
    pub fn name(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }

    /// The protocol called `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Grpc, Self::HttpProtobuf, Self::HttpJson]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// Which spans are sampled (`OTEL_TRACES_SAMPLER`), with the specification's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracesSampler {
    /// Every span.
    #[serde(rename = "always_on")]
    AlwaysOn,
    /// No span.
    #[serde(rename = "always_off")]
    AlwaysOff,
    /// A ratio of traces, by trace id (`traces_sampler_arg`).
    #[serde(rename = "traceidratio")]
    TraceIdRatio,
    /// As the parent span was; every root span.
    #[serde(rename = "parentbased_always_on")]
    ParentBasedAlwaysOn,
    /// As the parent span was; no root span.
    #[serde(rename = "parentbased_always_off")]
    ParentBasedAlwaysOff,
    /// As the parent span was; a ratio of root spans.
    #[serde(rename = "parentbased_traceidratio")]
    ParentBasedTraceIdRatio,
}

impl TracesSampler {
    const ALL: [TracesSampler; 6] = [
        Self::AlwaysOn,
        Self::AlwaysOff,
        Self::TraceIdRatio,
        Self::ParentBasedAlwaysOn,
        Self::ParentBasedAlwaysOff,
        Self::ParentBasedTraceIdRatio,
    ];

    /// The name used in configuration and variables.
    pub fn name(self) -> &'static str {
        match self {
            Self::AlwaysOn => "always_on",
            Self::AlwaysOff => "always_off",
            Self::TraceIdRatio => "traceidratio",
            Self::ParentBasedAlwaysOn => "parentbased_always_on",
            Self::ParentBasedAlwaysOff => "parentbased_always_off",
            Self::ParentBasedTraceIdRatio => "parentbased_traceidratio",
        }
    }

    /// The sampler called `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Every name, for error messages.
    pub(crate) fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Whether `traces_sampler_arg` means something to it.
    pub fn uses_ratio(self) -> bool {
        matches!(self, Self::TraceIdRatio | Self::ParentBasedTraceIdRatio)
    }
}

/// The signals exported: traces and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    /// The path appended to a base endpoint for OTLP/HTTP.
    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Where and how one signal is exported, all fallbacks applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) timeout: Duration,
    /// TLS of an `https://` URL.
    pub(crate) tls: ClientTls,
}

impl Target {
    /// Whether the export goes over TLS.
    pub(crate) fn is_https(&self) -> bool {
        self.url.starts_with("https://")
    }
}

/// The longest export deadline and metrics interval accepted (a typo guard).
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

impl OtelConfig {
    /// Where `signal` goes, or `None` when it is not exported.
    pub(crate) fn target(&self, signal: Signal) -> Option<Target> {
        if self.disabled {
            return None;
        }
        let own = self.signal(signal);
        if own.exporter == Exporter::None {
            return None;
        }
        let protocol = own.protocol.unwrap_or(self.protocol);
        let url = match (&own.endpoint, &self.endpoint) {
            (Some(url), _) => url.clone(),
            (None, Some(base)) if protocol == OtlpProtocol::Grpc => base.clone(),
            (None, Some(base)) => format!("{}{}", base.trim_end_matches('/'), signal.http_path()),
            (None, None) => return None,
        };
        let mut headers = self.headers.clone();
        headers.extend(own.headers.clone());
        Some(Target {
            url,
            protocol,
            headers,
            timeout: own.timeout.unwrap_or(self.export_timeout),
            tls: self.tls.clone(),
        })
    }

    fn signal(&self, signal: Signal) -> &SignalConfig {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
        }
    }

    /// Whether anything is exported at all.
    pub fn exports_anything(&self) -> bool {
        self.target(Signal::Traces).is_some() || self.target(Signal::Metrics).is_some()
    }

    /// The `service.name` of the resource.
    pub fn effective_service_name(&self) -> String {
        self.service_name
            .clone()
            .or_else(|| self.resource_attributes.get("service.name").cloned())
            .unwrap_or_else(|| "distcache".to_owned())
    }

    /// Every problem of these values, fields named as in the `[otel]` table (header values
    /// are never repeated: they may be secrets).
    pub fn problems(&self) -> Problems {
        let mut p = Problems::new();
        if let Some(url) = &self.endpoint
            && let Err(m) = check_endpoint(url, self.protocol)
        {
            p.push("endpoint", m);
        }
        if let Some(name) = &self.service_name
            && name.trim().is_empty()
        {
            p.push("service_name", "must not be empty");
        }
        for key in self.resource_attributes.keys() {
            if key.trim().is_empty() {
                p.push("resource_attributes", "a key is empty");
            }
        }
        if let Some(arg) = self.traces_sampler_arg
            && let Err(m) = check_ratio(arg)
        {
            p.push("traces_sampler_arg", m);
        }
        p.duration_within(
            "metrics_export_interval",
            self.metrics_export_interval,
            MAX_DURATION,
        );
        p.duration_within("export_timeout", self.export_timeout, MAX_DURATION);
        check_headers(&mut p, "headers", &self.headers);
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => p.push("tls.key", "is needed with tls.cert"),
            (None, Some(_)) => p.push("tls.cert", "is needed with tls.key"),
            _ => {}
        }
        for signal in [Signal::Traces, Signal::Metrics] {
            let own = self.signal(signal);
            let prefix = signal.name();
            let protocol = own.protocol.unwrap_or(self.protocol);
            if let Some(url) = &own.endpoint
                && let Err(m) = check_endpoint(url, protocol)
            {
                p.push(format!("{prefix}.endpoint"), m);
            } else if own.endpoint.is_none()
                && own.protocol.is_some()
                && let Some(url) = &self.endpoint
                && let Err(m) = check_endpoint(url, protocol)
            {
                p.push(format!("{prefix}.protocol"), m);
            }
            if let Some(t) = own.timeout {
                p.duration_within(&format!("{prefix}.timeout"), t, MAX_DURATION);
            }
            check_headers(&mut p, &format!("{prefix}.headers"), &own.headers);
        }
        p
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn check_endpoint(url: &str, protocol: OtlpProtocol) -> Result<(), String> {
    let example = match protocol {
        OtlpProtocol::Grpc => "http://127.0.0.1:4317",
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => "http://127.0.0.1:4318",
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("`{url}` is not a URL ({e}); expected e.g. {example}"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "`{url}` has scheme `{other}`; expected http or https"
            ));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// A sampling ratio: a number from 0 to 1.
pub(crate) fn check_ratio(arg: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&arg) {
        Ok(())
    } else {
        Err(format!("{arg} is not a ratio from 0 to 1"))
    }
}

/// Header names and values that HTTP and gRPC metadata accept (values are not echoed).
fn check_headers(p: &mut Problems, field: &str, headers: &BTreeMap<String, String>) {
    for (name, value) in headers {
        if let Err(m) = check_header(name, value) {
            p.push(field, m);
        }
    }
}

/// One header: a valid lowercase-able name and a printable value.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("`{name}` is not a valid header name"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header `{name}` is not printable ASCII"
        ));
    }
    Ok(())
}
