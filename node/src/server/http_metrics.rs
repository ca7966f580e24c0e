//! `http_server_request_duration_seconds`: every request the node answers, timed and kept by
//! method, route template and status (the OpenTelemetry HTTP semantic conventions). Routes
//! are templates such as `/v1/keyspaces/{ks}/keys/{*key}`, never the path a client sent,
//! and unknown methods are `_OTHER`, so the label set stays bounded whatever clients send.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};

use super::AppState;
use crate::telemetry::{Histogram, HistogramSnapshot};

/// `(method, status)`: what the durations of one route are kept by.
type MethodStatus = (&'static str, u16);

/// Durations of the requests of one route, by method and status.
#[derive(Debug, Default)]
struct RouteStats(RwLock<Vec<(MethodStatus, Arc<Histogram>)>>);

impl RouteStats {
    fn of(&self, method: &'static str, status: u16) -> Arc<Histogram> {
        let key = (method, status);
        let found = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, h)| Arc::clone(h));
        if let Some(h) = found {
            return h;
        }
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = all.iter().find(|(k, _)| *k == key) {
            return Arc::clone(h);
        }
        let h = Arc::new(Histogram::default());
        all.push((key, Arc::clone(&h)));
        h
    }
}

/// Request durations by route template, method and status.
#[derive(Debug, Default)]
pub(crate) struct HttpStats(RwLock<HashMap<String, Arc<RouteStats>>>);

/// One series: `(method, route, status, durations)`.
pub(crate) type HttpSeries = (&'static str, String, u16, HistogramSnapshot);

impl HttpStats {
    fn route(&self, route: &str) -> Arc<RouteStats> {
        if let Some(r) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(route) {
            return Arc::clone(r);
        }
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry(route.to_owned()).or_default())
    }

    /// Every series seen, by route, method and status.
    pub fn snapshot(&self) -> Vec<HttpSeries> {
        let routes = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (route, stats) in routes.iter() {
            for ((method, status), h) in stats.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
                out.push((*method, route.clone(), *status, h.snapshot()));
            }
        }
        out.sort_by(|a, b| (&a.1, a.0, a.2).cmp(&(&b.1, b.0, b.2)));
        out
    }
}

/// The method as the conventions name it: the standard ones, else `_OTHER`.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Times the request and records it under its route template (empty when no route matched);
/// when the engine makes spans, answers it inside a server span whose parent is the
/// request's `traceparent` (if any), so that the engine's spans, and the peers' and the data
/// source's after them, join the caller's trace.
pub(super) async fn record(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_name(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let spans = &state.engine.inner.telemetry.spans;
    let cx = if spans.is_on() {
        let template = route.as_ref().map_or("", MatchedPath::as_str);
        let parent = crate::otel::extract(request.headers());
        let mut attributes = vec![KeyValue::new("http.request.method", method)];
        let name = if template.is_empty() {
            method.to_owned()
        } else {
            attributes.push(KeyValue::new("http.route", template.to_owned()));
            format!("{method} {template}")
        };
        spans.start_under(&parent, name, SpanKind::Server, attributes, None)
    } else {
        None
    };
    let response = crate::telemetry::within(cx.as_ref(), next.run(request)).await;
    if let Some(cx) = cx {
        let status = response.status();
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
        span.end();
    }
    let route = route.as_ref().map_or("", MatchedPath::as_str);
    state
        .http
        .route(route)
        .of(method, response.status().as_u16())
        .record(started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_kept_by_route_method_and_status() {
        let stats = HttpStats::default();
        let d = std::time::Duration::from_millis(1);
        stats.route("/a").of("GET", 200).record(d);
        stats.route("/a").of("GET", 200).record(d);
        stats.route("/a").of("GET", 404).record(d);
        stats.route("/b").of("_OTHER", 405).record(d);
        let s = stats.snapshot();
        let counts: Vec<_> = s
            .iter()
            .map(|(m, r, st, h)| (*m, r.as_str(), *st, h.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("GET", "/a", 200, 2),
                ("GET", "/a", 404, 1),
                ("_OTHER", "/b", 405, 1)
            ]
        );
        assert_eq!(
            method_name(&Method::from_bytes(b"BREW").unwrap_or(Method::GET)),
            "_OTHER"
        );
    }
}
