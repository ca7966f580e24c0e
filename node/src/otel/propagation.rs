//! W3C trace context (`traceparent`, `tracestate`) in HTTP headers, without global state:
//! [`inject`] before a request leaves (peer calls, the HTTP data source), [`extract`] when
//! one arrives (the server).

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Writes the span context of `cx` into `headers` (`traceparent`, and `tracestate` when it
/// has one). Nothing is written for a context without a valid span.
pub fn inject(cx: &Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// `request` with the current span context on it; unchanged outside a trace (the common
/// case costs one thread-local look).
pub(crate) fn traced_request(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    use opentelemetry::trace::TraceContextExt;
    if !Context::map_current(|cx| cx.span().span_context().is_valid()) {
        return request;
    }
    let mut headers = http::HeaderMap::new();
    inject(&Context::current(), &mut headers);
    request.headers(headers)
}

/// The remote span context that `headers` carry, as the parent for the spans of this
/// request; an empty context when they carry none or a malformed one.
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    #[test]
    fn a_context_survives_inject_then_extract() {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(span.clone());
        let mut headers = http::HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(
            headers["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let back = extract(&headers);
        let got = back.span().span_context().clone();
        assert_eq!(got.trace_id(), span.trace_id());
        assert_eq!(got.span_id(), span.span_id());
        assert!(got.is_remote() && got.is_sampled());
    }

    #[test]
    fn nothing_or_garbage_gives_an_empty_context() {
        let mut headers = http::HeaderMap::new();
        inject(&Context::new(), &mut headers);
        assert!(headers.is_empty());
        headers.insert("traceparent", http::HeaderValue::from_static("00-zz-yy-01"));
        assert!(!extract(&headers).span().span_context().is_valid());
    }
}
