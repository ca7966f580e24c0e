//! The one layer every request passes through, in this order: it is timed into
//! `http_server_request_duration_seconds` (when the node keeps metrics), answered inside a
//! server span whose parent is its `traceparent` (when the engine makes spans), counted
//! against `max_in_flight` (requests of the client API, `/v1/…`: past the bound it is
//! answered at once with `OVERLOADED`), its token is checked (when the node has tokens), and
//! it is bounded by the request deadline. Client API requests are refused with `UNAVAILABLE`
//! while the node is not ready (starting or stopping); health, metrics, admin, peer and raft
//! routes are always served.
//!
//! One hand-written tower service instead of a middleware per duty: each axum middleware
//! boxes and clones the service below it for every request, and a hit costs little more
//! than that. The deadline shares the clock read of the timing, and its timer is registered
//! only if the handler does not answer on its first poll (a hit answers at once).
//!
//! An HTTP/1 error answer to a request that came with a body says `Connection: close`: the
//! node may have answered before reading that body (a value over the limit, a bad query, a
//! refused token), and hyper then closes the connection without saying so. A client that put
//! the connection back in its pool would send its next request into a closing socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Version, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::AppState;
use super::error::ApiError;
use super::http_metrics::{RouteCache, RouteStats, method_name};
use crate::error::Error;

/// Makes a [`Front`] of each route's service.
#[derive(Clone)]
pub(super) struct FrontLayer {
    state: AppState,
}

impl FrontLayer {
    pub fn new(state: AppState) -> Self {
        FrontLayer { state }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            inner,
            state: self.state.clone(),
            route: Arc::new(RouteCache::default()),
        }
    }
}

/// One route's service behind the front duties.
#[derive(Clone)]
pub(super) struct Front<S> {
    inner: S,
    state: AppState,
    route: Arc<RouteCache>,
}

/// What is recorded when the answer is ready.
struct Timing {
    started: Instant,
    method: &'static str,
    route: Arc<RouteStats>,
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let state = &self.state;
        let started = Instant::now();
        let method = method_name(request.method());
        let template = request.extensions().get::<MatchedPath>().cloned();
        let template = template.as_ref().map_or("", MatchedPath::as_str);
        let timing = state.config.metrics.then(|| Timing {
            started,
            method,
            route: self.route.get(&state.http, template),
        });
        let span = server_span(state, &request, method, template);
        let limit = state.config.request_timeout;
        let close_on_error = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11)
            && !request.body().is_end_stream();
        let slot = InFlight::enter(state, &request);
        let admitted = match &slot {
            _ if template.starts_with("/v1/") && !state.readiness.is_ready() => {
                Err(not_serving(&state.readiness))
            }
            Err(overloaded) => Err(overloaded.clone()),
            Ok(_) => super::auth::admit(state, &mut request),
        };
        let answer = match admitted {
            Ok(()) => {
                // The service that was made ready answers; a fresh clone waits for the next.
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                let deadline = tokio::time::Instant::from_std(started) + limit;
                Answer::Running {
                    inner: tokio::time::timeout_at(deadline, inner.call(request)),
                    limit,
                }
            }
            Err(refusal) => Answer::Refused {
                response: Some(ApiError::from(refusal).into_response()),
            },
        };
        FrontFuture {
            answer,
            timing,
            span,
            slot: slot.ok().flatten(),
            close_on_error,
        }
    }
}

/// Why a data or catalog request is refused before the node is ready or once it is stopping:
/// until its engine started, a node knows no keyspace and would answer "not found" for each.
fn not_serving(readiness: &super::Readiness) -> Error {
    let what = if readiness.is_stopping() {
        "this node is stopping"
    } else {
        "this node is starting: it serves data once it has joined the cluster"
    };
    Error::Unavailable(format!("{what}; retry, or ask another node"))
}

/// A request of the client API in progress: counted in `in_flight` from admission until its
/// answer is ready or it is dropped.
struct InFlight(AppState);

impl InFlight {
    /// Counts `request` if it belongs to the client API (`None` for the other routes); an
    /// [`Error::Overloaded`] when `max_in_flight` are in progress already. One atomic add, no
    /// lock: a hit pays next to nothing for it.
    fn enter(state: &AppState, request: &Request) -> Result<Option<InFlight>, Error> {
        if !request.uri().path().starts_with("/v1/") {
            return Ok(None);
        }
        let before = state.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = InFlight(state.clone());
        let max = state.config.max_in_flight;
        if before >= max {
            drop(slot);
            return Err(Error::Overloaded(format!(
                "{max} requests in progress on this node (server.max_in_flight)"
            )));
        }
        Ok(Some(slot))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// With spans on: the request's server span, child of its `traceparent` (if any).
fn server_span(
    state: &AppState,
    request: &Request,
    method: &'static str,
    template: &str,
) -> Option<Context> {
    let spans = &state.engine.inner.telemetry.spans;
    if !spans.is_on() {
        return None;
    }
    let parent = crate::otel::extract(request.headers());
    let mut attributes = vec![KeyValue::new("http.request.method", method)];
    let name = if template.is_empty() {
        method.to_owned()
    } else {
        attributes.push(KeyValue::new("http.route", template.to_owned()));
        format!("{method} {template}")
    };
    spans.start_under(&parent, name, SpanKind::Server, attributes, None)
}

pin_project! {
    #[project = AnswerProj]
    enum Answer<F> {
        Running {
            #[pin]
            inner: tokio::time::Timeout<F>,
            limit: Duration,
        },
        Refused {
            response: Option<Response>,
        },
    }
}

pin_project! {
    /// The answer of a [`Front`]: the route's, a refusal, or a deadline error.
    pub(super) struct FrontFuture<F> {
        #[pin]
        answer: Answer<F>,
        timing: Option<Timing>,
        span: Option<Context>,
        slot: Option<InFlight>,
        // An HTTP/1 request with a body: an error answer closes the connection.
        close_on_error: bool,
    }
}

impl<F, E> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = {
            // The handler runs inside the server span, so that its spans are children.
            let _in_span = this.span.clone().map(Context::attach);
            match this.answer.project() {
                AnswerProj::Running { inner, limit } => match ready!(inner.poll(cx)) {
                    Ok(Ok(response)) => response,
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_) => ApiError::from(Error::timeout("request", *limit)).into_response(),
                },
                AnswerProj::Refused { response } => match response.take() {
                    Some(response) => response,
                    None => {
                        ApiError::from(Error::Internal("the refusal was already answered".into()))
                            .into_response()
                    }
                },
            }
        };
        this.slot.take();
        let status = response.status();
        if *this.close_on_error && (status.is_client_error() || status.is_server_error()) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(span) = this.span.take() {
            let span = span.span();
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            if status.is_server_error() {
                span.set_status(Status::error(status.to_string()));
            }
            span.end();
        }
        if let Some(timing) = this.timing.take() {
            timing
                .route
                .record(timing.method, status.as_u16(), timing.started.elapsed());
        }
        Poll::Ready(Ok(response))
    }
}
