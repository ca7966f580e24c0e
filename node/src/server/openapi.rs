//! The HTTP API described once: an OpenAPI 3.1 document of every public route, generated from
//! the handlers' `#[utoipa::path]` annotations and the wire types' schemas, so that clients in
//! other languages can be generated rather than written by hand.
//!
//! Registering a public route and documenting it are one act: `server::api_routes` adds each
//! handler with utoipa-axum's `routes!`, which takes the method and the path from the
//! handler's annotation. What the annotations cannot say is added here, to every operation:
//! the errors any route can answer (`400 INVALID_REQUEST` for a bad path or query string,
//! `401 UNAUTHORIZED` and `403 FORBIDDEN` where a token applies, `500 INTERNAL`, `504 TIMEOUT`
//! for the request deadline, and on the client API (`/v1/…`) `503 OVERLOADED` with
//! `Retry-After` past `server.max_in_flight`); the `code` of the error body lists every code the API can answer
//! ([`all_codes`](crate::wire::all_codes)). Wildcard paths (`{*key}`, axum's syntax) are
//! written as plain parameters (`{key}`): a client sends the key percent-encoded as one
//! segment.
//!
//! The document is served at `GET /openapi.json` without the bearer token, like `/healthz`:
//! it holds no secrets, and a client needs it before it is configured. A copy is kept in
//! `docs/openapi.json`; a test fails when the two differ, and `UPDATE_OPENAPI=1 cargo test
//! -p distcache --test cluster openapi` rewrites the copy.
//!
//! Left out on purpose, being internal to one cluster of one version: the node-to-node routes
//! (`/_distcache/peer/…`), the control plane's raft routes (`/_distcache/raft/…`), and
//! `/v1/keyspaces/{ks}/keys/` (any method), which only answers `EMPTY_KEY` to a key path with
//! no key. The completeness test (`tests/cluster/openapi.rs`) names the same list.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Paths, Ref, RefOr};
use utoipa::{Modify, OpenApi as _, PartialSchema, ToSchema};

use super::AppState;
use crate::error::{Error, Result};

/// The parts of the document no handler states: title, tags, the bearer scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "distcache",
        description = "The HTTP API of a distcache node: read-through data access, the keyspace \
                       catalog, admin views and health. Any node answers any request. Every \
                       error is a JSON `ErrorBody` with a stable `code`."
    ),
    tags(
        (name = "data", description = "Values: read-through get, put, delete, and their batch forms."),
        (name = "catalog", description = "Keyspaces: the replicated catalog of specs."),
        (name = "admin", description = "What one node sees: members, keyspace stats, owners, warmups."),
        (name = "health", description = "Probes and this document; no token needed."),
    ),
    components(schemas(crate::wire::ErrorBody)),
    modifiers(&BearerToken),
)]
struct Base;

/// Declares the bearer token: required by every route but the open ones, when the cluster
/// has one (`server.token`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The cluster's token (`server.token`, `--token`, `DISTCACHE_TOKEN`) or \
                         one of its tokens file (`server.tokens_file`), whose role and \
                         keyspaces decide what it may do; needed only when the cluster has \
                         tokens.",
                    ))
                    .build(),
            ),
        );
        // The token or nothing: which one depends on the cluster's configuration.
        doc.security = Some(vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

const BEARER: &str = "bearer";

/// The raw bytes of a value, in a single-key request or answer.
pub(super) struct RawValue;

impl PartialSchema for RawValue {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream")
            .description(Some("Any bytes."))
            .into()
    }
}

impl ToSchema for RawValue {}

/// The document skeleton that `server::api_routes` fills in.
pub(super) fn base() -> OpenApi {
    Base::openapi()
}

/// The finished document: `doc` (from the routes) with wildcards as plain parameters and the
/// errors every operation can answer.
pub(super) fn finish(mut doc: OpenApi) -> OpenApi {
    let mut paths = Paths::new();
    for (path, mut item) in std::mem::take(&mut doc.paths.paths) {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_common_errors(op);
            if path.starts_with("/v1/") {
                add_overloaded(op);
            }
        }
        paths.paths.insert(path.replace("{*", "{"), item);
    }
    doc.paths = paths;
    doc
}

/// Adds to `op` the error answers any route can give, unless it names them itself.
fn add_common_errors(op: &mut Operation) {
    let open = op
        .security
        .as_ref()
        .is_some_and(|s| s.contains(&SecurityRequirement::default()));
    let mut common = vec![
        (
            "500",
            "`INTERNAL`: an invariant broke; the message says which.",
        ),
        (
            "504",
            "`TIMEOUT`: the request ran past the node's `request_timeout`.",
        ),
    ];
    if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        common.push(("400", "`INVALID_REQUEST`: a bad path or query string."));
    }
    if !open {
        common.push((
            "401",
            "`UNAUTHORIZED`: the cluster has tokens and the request lacks one or has another.",
        ));
        common.push((
            "403",
            "`FORBIDDEN`: the token lacks the role or the keyspace the request needs; the \
             message names which.",
        ));
    }
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// Adds to `op`, a route of the client API, the 503 `OVERLOADED` that the front layer answers
/// past `server.max_in_flight`, with its `Retry-After`: to the route's own 503 if it has one.
fn add_overloaded(op: &mut Operation) {
    const OVERLOADED: &str = "`OVERLOADED` (with `Retry-After`): the node has \
        `server.max_in_flight` requests in progress";
    let response = op
        .responses
        .responses
        .entry("503".to_owned())
        .or_insert_with(|| error_response(&format!("{OVERLOADED}.")));
    if let RefOr::T(response) = response {
        if !response.description.contains("max_in_flight") {
            response.description = format!("{} {OVERLOADED}.", response.description);
        }
        let retry_after = utoipa::openapi::header::HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some(
                "With `OVERLOADED`: seconds to wait before trying again.",
            ))
            .build();
        response
            .headers
            .insert("Retry-After".to_owned(), retry_after);
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// `doc` as pretty JSON with a trailing newline, the form `docs/openapi.json` keeps.
pub(super) fn render(doc: &OpenApi) -> Result<String> {
    doc.to_pretty_json()
        .map(|json| json + "\n")
        .map_err(|e| Error::Internal(format!("cannot write the OpenAPI document: {e}")))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object,
            content_type = "application/json"),
    ),
)]
pub(super) async fn document(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
        .into_response()
}
