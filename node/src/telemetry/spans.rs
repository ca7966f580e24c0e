//! OpenTelemetry spans of the engine: `distcache.<operation>` with its keyspace and outcome,
//! and the children of a load — the single-flight wait, the call to the owning peer and the
//! data-source fetch.
//!
//! Spans go to the tracer the engine was built with (the node's OTLP pipeline, or an
//! embedder's provider); without one, [`Spans`] is empty and every method returns at its first
//! instruction. Context travels with the futures (`FutureExt::with_context`), so a span started
//! on the HTTP server (from an incoming `traceparent`) is the parent of the engine's, and the
//! transport and the HTTP data source put the current one on their requests.
//!
//! A hit starts a span only inside a trace that is sampled already: a root span for every hit
//! would cost each one a sampler call, and a cache's hits are the one path that must stay as
//! cheap as a map lookup. Misses, writes and keyspace operations always start one (the
//! sampler decides whether it is recorded).

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

use crate::error::Error;

/// The engine's tracer, if it has one. Cheap to clone.
#[derive(Clone, Default)]
pub struct Spans(Option<Arc<BoxedTracer>>);

impl std::fmt::Debug for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Spans(on)"
        } else {
            "Spans(off)"
        })
    }
}

impl Spans {
    /// Spans from `provider`'s tracer for distcache.
    pub fn from_provider<P>(provider: &P) -> Spans
    where
        P: TracerProvider + ObjectSafeTracerProvider,
    {
        let scope = InstrumentationScope::builder("distcache")
            .with_version(crate::VERSION)
            .build();
        Spans(Some(Arc::new(BoxedTracer::new(
            provider.boxed_tracer(scope),
        ))))
    }

    /// Whether spans are made at all.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the current context is a sampled trace (a hit gets a span only then).
    #[inline]
    pub fn in_sampled_trace(&self) -> bool {
        self.0.is_some() && Context::map_current(|cx| cx.span().span_context().is_sampled())
    }

    /// Starts span `name` as a child of the current context (from `started`, when given) and
    /// returns the context that holds it; `None` without a tracer.
    pub fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        started: Option<SystemTime>,
    ) -> Option<Context> {
        self.0.as_ref()?;
        self.start_under(&Context::current(), name, kind, attributes, started)
    }

    /// Starts span `name` as a child of `parent` and returns the context that holds it;
    /// `None` without a tracer.
    pub fn start_under(
        &self,
        parent: &Context,
        name: impl Into<std::borrow::Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        started: Option<SystemTime>,
    ) -> Option<Context> {
        let tracer = self.0.as_ref()?;
        let mut builder = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes);
        if let Some(at) = started {
            builder = builder.with_start_time(at);
        }
        let span = builder.start_with_context(tracer.as_ref(), parent);
        Some(parent.with_span(span))
    }

    /// `distcache.<operation>` on `keyspace`, a child of the current context.
    pub fn operation(
        &self,
        name: &'static str,
        operation: &'static str,
        keyspace: &str,
        started: Option<SystemTime>,
    ) -> Option<Context> {
        self.0.as_ref()?;
        self.start(
            name,
            SpanKind::Internal,
            vec![
                KeyValue::new("distcache.operation", operation),
                KeyValue::new("distcache.keyspace", keyspace.to_owned()),
            ],
            started,
        )
    }
}

/// Runs `future` with `cx` as its current context (in its span), or as it is without one.
pub async fn within<F: std::future::Future>(cx: Option<&Context>, future: F) -> F::Output {
    use opentelemetry::context::FutureExt;
    match cx {
        Some(cx) => future.with_context(cx.clone()).await,
        None => future.await,
    }
}

/// Ends the span of `cx` with `outcome` (when given) and an error status if `result` failed.
pub fn end<T>(cx: Option<&Context>, outcome: Option<&'static str>, result: &Result<T, Error>) {
    let Some(cx) = cx else { return };
    let span = cx.span();
    if let Some(outcome) = outcome {
        span.set_attribute(KeyValue::new("distcache.outcome", outcome));
    }
    if let Err(e) = result {
        span.set_attribute(KeyValue::new("error.type", e.code().as_str()));
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}

/// The name of the span of an operation (`distcache.<operation>`).
pub fn span_name(operation: super::Op) -> &'static str {
    use super::Op;
    match operation {
        Op::Get => "distcache.get",
        Op::GetMany => "distcache.get_many",
        Op::Put => "distcache.put",
        Op::PutMany => "distcache.put_many",
        Op::Delete => "distcache.delete",
        Op::DeleteMany => "distcache.delete_many",
        Op::CreateKeyspace => "distcache.create_keyspace",
        Op::UpdateKeyspace => "distcache.update_keyspace",
        Op::DeleteKeyspace => "distcache.delete_keyspace",
        Op::DeleteKeyspaces => "distcache.delete_keyspaces",
    }
}
