//! An OTLP collector for tests: [`OtlpReceiver`] listens on a loopback port and accepts
//! traces and metrics over OTLP/HTTP (`POST /v1/traces`, `POST /v1/metrics`, protobuf or
//! JSON bodies) and over OTLP/gRPC, on the same port. It keeps what it decoded, in the form
//! tests assert on: ids as hex, attributes as strings.
//!
//! [`hanging_collector`] is its opposite: a port that accepts connections and never answers;
//! [`refusing_collector`], a port that refuses them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::wait::holds_within;

/// One span as the receiver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The span's name.
    pub name: String,
    /// OTLP's `SpanKind` number (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// Attributes, values as strings.
    pub attributes: BTreeMap<String, String>,
    /// OTLP's status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// The status message (set with an error).
    pub status_message: String,
    /// The resource's attributes (`service.name`, `service.instance.id`, …).
    pub resource: BTreeMap<String, String>,
    /// How it arrived: `http/protobuf`, `http/json` or `grpc`.
    pub transport: &'static str,
}

impl ReceivedSpan {
    /// `service.name` of its resource.
    pub fn service_name(&self) -> Option<&str> {
        self.resource.get("service.name").map(String::as_str)
    }

    /// `service.instance.id` of its resource.
    pub fn instance_id(&self) -> Option<&str> {
        self.resource.get("service.instance.id").map(String::as_str)
    }
}

/// One data point of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPoint {
    /// The point's attributes, values as strings.
    pub attributes: BTreeMap<String, String>,
    /// A sum's or gauge's value.
    pub value: Option<f64>,
    /// A histogram's count.
    pub count: Option<u64>,
    /// A histogram's sum.
    pub sum: Option<f64>,
}

/// One metric of one export.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMetric {
    /// The metric's name.
    pub name: String,
    /// `sum`, `gauge`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: &'static str,
    /// Its unit.
    pub unit: String,
    /// Its data points.
    pub points: Vec<ReceivedPoint>,
    /// The resource's attributes.
    pub resource: BTreeMap<String, String>,
    /// How it arrived: `http/protobuf`, `http/json` or `grpc`.
    pub transport: &'static str,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
    requests: usize,
}

type Shared = Arc<Mutex<Received>>;

/// An OTLP collector on a loopback port (see the module docs). Stops when dropped.
pub struct OtlpReceiver {
    addr: std::net::SocketAddr,
    received: Shared,
    task: Serving,
}

/// How a receiver serves: plain HTTP in a task, or a TLS server (which stops when dropped).
enum Serving {
    Plain(JoinHandle<()>),
    Tls { _server: crate::tls::TlsServer },
}

/// The OTLP routes: gRPC services and the HTTP paths, keeping what arrives in `received`.
fn app(received: &Shared) -> Router {
    let grpc = tonic::service::Routes::new(TraceServiceServer::new(Grpc(received.clone())))
        .add_service(MetricsServiceServer::new(Grpc(received.clone())))
        .into_axum_router();
    let http = Router::new()
        .route("/v1/traces", post(http_traces))
        .route("/v1/metrics", post(http_metrics))
        .with_state(received.clone());
    grpc.merge(http)
}

impl OtlpReceiver {
    /// Starts listening on a free loopback port.
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let received = Shared::default();
        let app = app(&received);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver {
            addr,
            received,
            task: Serving::Plain(task),
        }
    }

    /// Starts listening over TLS (HTTP/1.1 and h2, for OTLP/HTTP and gRPC) with `config`
    /// (e.g. `tls::server_config`, which may require a client certificate). Its
    /// [`endpoint`](Self::endpoint) is then `https://localhost:<port>`.
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> OtlpReceiver {
        let received = Shared::default();
        let server = crate::tls::TlsServer::start(config, app(&received)).await;
        OtlpReceiver {
            addr: server.addr,
            received,
            task: Serving::Tls { _server: server },
        }
    }

    /// The base URL to give an exporter: `http://127.0.0.1:<port>`, or
    /// `https://localhost:<port>` over TLS (HTTP appends `/v1/…`; gRPC uses it as it is).
    pub fn endpoint(&self) -> String {
        match self.task {
            Serving::Plain(_) => format!("http://{}", self.addr),
            Serving::Tls { .. } => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// Every span received so far, in order of arrival.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Every metric of every export so far, in order of arrival (a metric exported twice is
    /// here twice).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.lock().metrics.clone()
    }

    /// The names of the metrics received, each once, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().metrics.iter().map(|m| m.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The last export of metric `name`, if any.
    pub fn last_metric(&self, name: &str) -> Option<ReceivedMetric> {
        self.lock()
            .metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .cloned()
    }

    /// How many export requests were accepted (of any signal and transport).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Waits until a span satisfies `pred` and returns it; fails the test, naming `what`
    /// and the spans seen, after `limit`.
    pub async fn wait_for_span(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&ReceivedSpan) -> bool,
    ) -> ReceivedSpan {
        let found = || self.lock().spans.iter().find(|s| pred(s)).cloned();
        let seen = holds_within(limit, Duration::from_millis(5), || {
            std::future::ready(found().is_some())
        })
        .await;
        match (seen, found()) {
            (true, Some(span)) => span,
            _ => panic!(
                "timed out after {limit:?} waiting for a span: {what}; received {:?}",
                self.spans()
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// Waits until an export of metric `name` satisfies `pred` and returns it; fails the
    /// test, naming the metrics seen, after `limit`.
    pub async fn wait_for_metric(
        &self,
        limit: Duration,
        name: &str,
        pred: impl Fn(&ReceivedMetric) -> bool,
    ) -> ReceivedMetric {
        let found = || {
            self.lock()
                .metrics
                .iter()
                .rev()
                .find(|m| m.name == name && pred(m))
                .cloned()
        };
        let seen = holds_within(limit, Duration::from_millis(5), || {
            std::future::ready(found().is_some())
        })
        .await;
        match (seen, found()) {
            (true, Some(metric)) => metric,
            _ => panic!(
                "timed out after {limit:?} waiting for metric {name}; received {:?}",
                self.metric_names()
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        // A TLS server stops when dropped with the receiver.
        if let Serving::Plain(task) = &self.task {
            task.abort();
        }
    }
}

/// A loopback port that accepts connections and never answers (nor closes them): a
/// collector that hangs. Returns its base URL; stops when the task is aborted or the
/// runtime ends.
pub async fn hanging_collector() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (url, task)
}

/// A loopback port that is taken but not listening, so every connection to it is refused
/// (and no other test can bind it meanwhile). Returns its base URL and the socket holding it.
pub fn refusing_collector() -> (String, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a loopback port");
    let url = format!("http://{}", socket.local_addr().expect("bound address"));
    (url, socket)
}

/// Whether the body is JSON (else protobuf), from its content type.
fn is_json(headers: &HeaderMap) -> Option<bool> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let ct = ct.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json" => Some(true),
        "application/x-protobuf" => Some(false),
        _ => None,
    }
}

/// Decodes the body as its content type says, and the answer in the same encoding.
fn decode<Req>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Req, &'static str), (StatusCode, String)>
where
    Req: Message + Default + serde::de::DeserializeOwned,
{
    match is_json(headers) {
        Some(true) => serde_json::from_slice(body)
            .map(|r| (r, "http/json"))
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string())),
        Some(false) => Req::decode(body.as_ref())
            .map(|r| (r, "http/protobuf"))
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string())),
        None => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-protobuf or application/json".into(),
        )),
    }
}

/// The empty success answer, encoded as the request was.
fn answer<Resp: Message + Default + serde::Serialize>(transport: &str) -> Response {
    if transport == "http/json" {
        let body = serde_json::to_vec(&Resp::default()).unwrap_or_else(|_| b"{}".to_vec());
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Resp::default().encode_to_vec(),
        )
            .into_response()
    }
}

async fn http_traces(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match decode::<ExportTraceServiceRequest>(&headers, &body) {
        Ok((request, transport)) => {
            keep_spans(&received, request, transport);
            answer::<ExportTraceServiceResponse>(transport)
        }
        Err(refused) => refused.into_response(),
    }
}

async fn http_metrics(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match decode::<ExportMetricsServiceRequest>(&headers, &body) {
        Ok((request, transport)) => {
            keep_metrics(&received, request, transport);
            answer::<ExportMetricsServiceResponse>(transport)
        }
        Err(refused) => refused.into_response(),
    }
}

/// The gRPC services, keeping what they receive in the same place.
struct Grpc(Shared);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep_spans(&self.0, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        keep_metrics(&self.0, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn keep_spans(received: &Shared, request: ExportTraceServiceRequest, transport: &'static str) {
    let mut spans = Vec::new();
    for rs in request.resource_spans {
        let resource = resource_map(rs.resource.as_ref());
        for ss in rs.scope_spans {
            for span in ss.spans {
                let status = span.status.unwrap_or_default();
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    status_code: status.code,
                    status_message: status.message,
                    resource: resource.clone(),
                    transport,
                });
            }
        }
    }
    let mut r = received.lock().unwrap_or_else(|e| e.into_inner());
    r.requests += 1;
    r.spans.extend(spans);
}

fn keep_metrics(received: &Shared, request: ExportMetricsServiceRequest, transport: &'static str) {
    let mut metrics = Vec::new();
    for rm in request.resource_metrics {
        let resource = resource_map(rm.resource.as_ref());
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let (kind, points) = points(m.data);
                metrics.push(ReceivedMetric {
                    name: m.name,
                    kind,
                    unit: m.unit,
                    points,
                    resource: resource.clone(),
                    transport,
                });
            }
        }
    }
    let mut r = received.lock().unwrap_or_else(|e| e.into_inner());
    r.requests += 1;
    r.metrics.extend(metrics);
}

fn points(data: Option<metric::Data>) -> (&'static str, Vec<ReceivedPoint>) {
    let number = |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| ReceivedPoint {
        attributes: attributes(&p.attributes),
        value: p.value.map(|v| match v {
            number_data_point::Value::AsDouble(d) => d,
            number_data_point::Value::AsInt(i) => i as f64,
        }),
        count: None,
        sum: None,
    };
    match data {
        Some(metric::Data::Sum(s)) => ("sum", s.data_points.iter().map(number).collect()),
        Some(metric::Data::Gauge(g)) => ("gauge", g.data_points.iter().map(number).collect()),
        Some(metric::Data::Histogram(h)) => (
            "histogram",
            h.data_points
                .iter()
                .map(|p| ReceivedPoint {
                    attributes: attributes(&p.attributes),
                    value: None,
                    count: Some(p.count),
                    sum: p.sum,
                })
                .collect(),
        ),
        Some(metric::Data::ExponentialHistogram(h)) => (
            "exponential_histogram",
            h.data_points
                .iter()
                .map(|p| ReceivedPoint {
                    attributes: attributes(&p.attributes),
                    value: None,
                    count: Some(p.count),
                    sum: p.sum,
                })
                .collect(),
        ),
        Some(metric::Data::Summary(_)) => ("summary", Vec::new()),
        None => ("none", Vec::new()),
    }
}

fn resource_map(resource: Option<&Resource>) -> BTreeMap<String, String> {
    resource
        .map(|r| attributes(&r.attributes))
        .unwrap_or_default()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

/// A value as a string (arrays and maps in a debug form).
fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
