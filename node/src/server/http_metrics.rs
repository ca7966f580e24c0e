//! `http_server_request_duration_seconds`: every request the node answers, timed and kept by
//! method, route template and status (the OpenTelemetry HTTP semantic conventions). Routes
//! are templates such as `/v1/keyspaces/{ks}/keys/{*key}`, never the path a client sent,
//! and unknown methods are `_OTHER`, so the label set stays bounded whatever clients send.
//! The request layer (`front.rs`) records into these; `/metrics` reads them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::Method;

use crate::telemetry::{Histogram, HistogramSnapshot};

/// `(method, status)`: what the durations of one route are kept by.
type MethodStatus = (&'static str, u16);

/// Durations of the requests of one route, by method and status. Read without a lock (a
/// route sees a handful of methods and statuses; a new one copies the short list).
#[derive(Debug, Default)]
pub(crate) struct RouteStats(ArcSwap<Vec<(MethodStatus, Arc<Histogram>)>>);

impl RouteStats {
    /// Records one request of `method` answered with `status`.
    pub fn record(&self, method: &'static str, status: u16, elapsed: Duration) {
        let key = (method, status);
        if let Some((_, h)) = self.0.load().iter().find(|(k, _)| *k == key) {
            h.record(elapsed);
            return;
        }
        let fresh = Arc::new(Histogram::default());
        self.0.rcu(|all| {
            let mut all = Vec::clone(all);
            if !all.iter().any(|(k, _)| *k == key) {
                all.push((key, Arc::clone(&fresh)));
            }
            all
        });
        if let Some((_, h)) = self.0.load().iter().find(|(k, _)| *k == key) {
            h.record(elapsed);
        }
    }
}

/// Request durations by route template, method and status.
#[derive(Debug, Default)]
pub(crate) struct HttpStats(ArcSwap<HashMap<String, Arc<RouteStats>>>);

/// One series: `(method, route, status, durations)`.
pub(crate) type HttpSeries = (&'static str, String, u16, HistogramSnapshot);

impl HttpStats {
    /// The durations of `route` (a template, or "" when no route matched).
    pub fn route(&self, route: &str) -> Arc<RouteStats> {
        if let Some(r) = self.0.load().get(route) {
            return Arc::clone(r);
        }
        self.0.rcu(|all| {
            let mut all = HashMap::clone(all);
            all.entry(route.to_owned()).or_default();
            all
        });
        let all = self.0.load();
        all.get(route).map(Arc::clone).unwrap_or_default()
    }

    /// Every series seen, by route, method and status.
    pub fn snapshot(&self) -> Vec<HttpSeries> {
        let routes = self.0.load();
        let mut out = Vec::new();
        for (route, stats) in routes.iter() {
            for ((method, status), h) in stats.0.load().iter() {
                out.push((*method, route.clone(), *status, h.snapshot()));
            }
        }
        out.sort_by(|a, b| (&a.1, a.0, a.2).cmp(&(&b.1, b.0, b.2)));
        out
    }
}

/// The stats of the one route a layered service serves, found on its first request (a
/// router layer wraps each route's service on its own), so that later requests look up
/// nothing. A request of another template (not expected) is looked up in [`HttpStats`].
#[derive(Debug, Default)]
pub(crate) struct RouteCache(OnceLock<(Box<str>, Arc<RouteStats>)>);

impl RouteCache {
    /// The stats of `route`.
    pub fn get(&self, http: &HttpStats, route: &str) -> Arc<RouteStats> {
        let (cached, stats) = self.0.get_or_init(|| (route.into(), http.route(route)));
        if **cached == *route {
            Arc::clone(stats)
        } else {
            http.route(route)
        }
    }
}

/// The method as the conventions name it: the standard ones, else `_OTHER`.
pub(crate) fn method_name(method: &Method) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_kept_by_route_method_and_status() {
        let stats = HttpStats::default();
        let d = std::time::Duration::from_millis(1);
        let cache = RouteCache::default();
        cache.get(&stats, "/a").record("GET", 200, d);
        cache.get(&stats, "/a").record("GET", 200, d);
        stats.route("/a").record("GET", 404, d);
        cache.get(&stats, "/b").record("_OTHER", 405, d);
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
