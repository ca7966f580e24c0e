//! The node's HTTP server: the public data and catalog API, the admin API, health, and the
//! peer routes, on one listener.
//!
//! ```text
//! /v1/keyspaces                       GET list · POST create · DELETE ?names=a,b
//! /v1/keyspaces/{ks}                  GET · PUT create-or-replace (?expected_revision=) · DELETE
//! /v1/keyspaces/{ks}/keys/{key}       GET read-through · PUT (?ttl=5m) · DELETE
//! /v1/keyspaces/{ks}/keys?key=…       the same, the key in the query (any key, `.` and `..` too)
//! /v1/keyspaces/{ks}/get-many|put-many|delete-many    POST, JSON (values base64)
//! /_distcache/admin/peers|keyspaces|cluster   GET
//! /_distcache/admin/owner/{ks}/{key}  GET which node owns a key
//! /_distcache/admin/keyspaces/{ks}/warmup   POST start a cluster-wide warmup ({"keys": [..]}?)
//! /_distcache/admin/warmups[/{id}]    GET warmup runs of this node
//! /_distcache/peer/…                  node-to-node (hop-marked: served here, or by an owning
//!                                     member while this node joins); /_distcache/peer/handoff
//!                                     streams the entries a joining node takes over
//! /_distcache/raft/…                  control plane (raft RPC, forwarded writes, joins)
//! /healthz  /readyz  /openapi.json
//! ```
//!
//! Every request has a body limit and a deadline; every error is JSON with a stable `code`.
//! The public routes are registered in [`api_routes`], each with its OpenAPI description
//! (see the `openapi` module).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use distcache_control::ControlPlane;

use crate::engine::Engine;
use crate::error::{Error, Problems, Result};
use crate::tls::NodeTls;
use crate::wire::{Health, WireCode};

mod admin;
pub mod auth;
mod catalog;
mod data;
mod error;
mod extract;
mod front;
mod head_errors;
mod http_metrics;
mod linger;

pub(crate) use http_metrics::HttpStats;
pub(crate) use metrics::raft_status;
mod listen;
mod metrics;
mod openapi;
mod peer;

use error::ApiError;

/// Limits and deadlines of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest request body of batch and catalog routes. Default 32 MiB. (Single-key puts
    /// are bounded by the engine's `max_value_bytes`.)
    #[serde(with = "crate::units::usize_bytes")]
    pub max_request_bytes: usize,
    /// Deadline of any request, whatever it waits on. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a client may take to send a whole request head (request line and headers),
    /// and how long a keep-alive connection may stay idle. Default 10 s, at most 1 h.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Most connections open at once; at the cap the node stops accepting until one closes.
    /// Default 4096.
    pub max_connections: usize,
    /// Most requests of the client API (`/v1/…`) in progress at once; past it a request is
    /// answered at once with 503 `OVERLOADED` and `Retry-After`. Node-to-node, control-plane,
    /// admin, health and metrics routes are not counted, so an overloaded node stays visible
    /// and in its cluster. Default 8192.
    pub max_in_flight: usize,
    /// The cluster's bearer token (`Authorization: Bearer …`): nodes send it to each other,
    /// and it is an admin token for every keyspace. With it (or a tokens file) every request
    /// must carry a known token; `/healthz`, `/readyz` and `/openapi.json` stay open.
    /// Default: none.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// A TOML file of named tokens with roles (`read`, `write`, `admin`) and optional
    /// keyspace patterns, read at start (see the README, "Tokens and roles"). Needs `token`
    /// too, for the nodes. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// Serve `GET /metrics` without a token, for scrapers (it shows keyspace names and
    /// counters, no data). Default false: the admin role, like the other admin routes.
    pub metrics_open: bool,
    /// Keep metrics: time every request into `http_server_request_duration_seconds` and
    /// serve `GET /metrics`. Default true. Off, `/metrics` answers 404 (`NOT_FOUND`, "metrics are off") and
    /// requests pay nothing for it (the engine's counters, which `stats` shows, stay).
    pub metrics: bool,
    /// Address of the Redis-protocol (RESP2/RESP3) listener, e.g. `127.0.0.1:6380`: every
    /// Redis client can then read and write the cache (`GET users:42`). Default: none (no
    /// RESP front). Its connections count against `max_connections` of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_listen: Option<String>,
    /// The keyspace of RESP keys without a `:` (`GET 42` reads `42` of it). Default: none
    /// (such keys are refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_default_keyspace: Option<String>,
    /// Threads the node serves its HTTP and RESP connections on, each an event loop of its
    /// own (a connection stays on one from accept to close; loads and background work run
    /// on the node's runtime). Default 0: one per core the node may use, plus one, with RESP
    /// connections on one per core of them (see [`io_threads_in_use`](Self::io_threads_in_use)).
    /// A number other than 0 is the loops of both fronts.
    pub io_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: 32 << 20,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_in_flight: 8192,
            token: None,
            tokens_file: None,
            metrics_open: false,
            metrics: true,
            resp_listen: None,
            resp_default_keyspace: None,
            io_threads: 0,
        }
    }
}

/// The most threads `io_threads` may ask for.
const MAX_IO_THREADS: usize = 256;

/// The cores this process may use (at least 1).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl ServerConfig {
    /// The event loops the node runs, the HTTP front's connections spread over all of them:
    /// `io_threads`, or when it is 0 one per core plus one.
    ///
    /// The one more than cores is measured (`scripts/bench.sh`, P2 on 2 cores, wrk in the
    /// same machine): each answer wakes a client thread, which the kernel often runs at once
    /// in place of the loop that woke it; with a loop per core, that loop's connections then
    /// all wait, and with one loop more the others go on. GET hits over HTTP went from 0.94×
    /// to 1.19× the reference server, and CPU per request from 11.3 to 9.6 µs.
    pub fn io_threads_in_use(&self) -> usize {
        match self.io_threads {
            0 => cores() + 1,
            n => n,
        }
    }

    /// How many of the event loops (the first ones) the RESP front's connections spread
    /// over: `io_threads`, or when it is 0 one per core. A RESP command costs a few
    /// microseconds, so a loop with fewer connections finds less to do at each wakeup and
    /// sleeps more: over one loop more than cores, unpipelined GET hits went from 1.33× to
    /// 0.85× redis-server and their CPU per request doubled (`ONLY=resp scripts/bench.sh`).
    pub fn resp_io_threads_in_use(&self) -> usize {
        match self.io_threads {
            0 => cores(),
            n => n,
        }
    }

    /// Every problem, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if self.max_request_bytes == 0 {
            problems.push("max_request_bytes", "must be greater than zero");
        }
        problems.duration_within(
            "request_timeout",
            self.request_timeout,
            crate::units::MAX_TIMEOUT,
        );
        problems.duration_within(
            "header_read_timeout",
            self.header_read_timeout,
            crate::units::MAX_TIMEOUT,
        );
        if let Some(addr) = &self.resp_listen
            && crate::discovery::check_addr(addr).is_err()
        {
            problems.push(
                "resp_listen",
                format!("`{addr}` is not a host:port address (e.g. 127.0.0.1:6380)"),
            );
        }
        if let Some(keyspace) = &self.resp_default_keyspace
            && let Err(message) = crate::spec::validate::name(keyspace)
        {
            problems.push("resp_default_keyspace", message);
        }
        if self.io_threads > MAX_IO_THREADS {
            problems.push(
                "io_threads",
                format!("must be at most {MAX_IO_THREADS} (0 = one per core)"),
            );
        }
        if self.max_connections == 0 {
            problems.push("max_connections", "must be at least 1");
        }
        if self.max_in_flight == 0 {
            problems.push("max_in_flight", "must be at least 1");
        }
        // Reads the tokens file, so that its problems are found with the others.
        if let Err(p) =
            auth::Tokens::from_config(self.tokens_file.as_deref(), self.token.as_deref())
        {
            problems.0.extend(p.0);
        }
        if self.tokens_file.is_some() && self.token.is_none() {
            problems.push(
                "token",
                "is required with tokens_file: nodes send it to each other",
            );
        }
        problems
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    pub engine: Engine,
    pub control: Option<ControlPlane>,
    pub node_id: String,
    pub addr: String,
    pub readiness: Arc<Readiness>,
    pub config: ServerConfig,
    /// The tokens requests must carry; `None`: the node is open. Behind an `Arc` so a reload
    /// could swap the set.
    pub tokens: Option<Arc<auth::Tokens>>,
    /// The OpenAPI document, rendered once.
    pub openapi: Bytes,
    /// Request durations by route, method and status.
    pub http: Arc<HttpStats>,
    /// Requests of the client API in progress (bounded by `config.max_in_flight`).
    pub in_flight: std::sync::atomic::AtomicUsize,
}

/// Where a node is in its life — starting, serving, stopping — as `/healthz` tells its peers.
#[derive(Debug, Default)]
pub(crate) struct Readiness(AtomicU8);

impl Readiness {
    const READY: u8 = 1;
    const STOPPING: u8 = 2;

    /// Start-up finished: the node serves.
    pub fn set_ready(&self) {
        self.0.store(Self::READY, Ordering::Release);
    }

    /// Shutdown began: the node serves no more and will not be back as it is.
    pub fn set_stopping(&self) {
        self.0.store(Self::STOPPING, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::READY
    }

    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::STOPPING
    }
}

/// What node `node_id` at `addr` says of itself on `/healthz` (and to probes).
pub(crate) fn health(engine: &Engine, readiness: &Readiness, node_id: &str, addr: &str) -> Health {
    let (owning, ring, agreed, discovery) = match engine.cluster() {
        Some(cluster) => (
            cluster.is_owning(),
            cluster.ring_ids(),
            cluster.agreed(),
            cluster.discovery_source(),
        ),
        None => (true, vec![node_id.to_owned()], true, None),
    };
    Health {
        status: "ok".into(),
        node_id: node_id.to_owned(),
        addr: addr.to_owned(),
        ready: readiness.is_ready(),
        stopping: readiness.is_stopping(),
        owning,
        ring,
        agreed,
        discovery,
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The public routes, each registered with its OpenAPI description: the handler's
/// `#[utoipa::path]` gives both the method and path it is served at and what the document says
/// of it. Single-key values may be up to `value_limit` bytes.
fn api_routes(value_limit: usize) -> OpenApiRouter<AppState> {
    // One byte over the limit, so the engine names the exact sizes.
    let value_body = DefaultBodyLimit::max(value_limit.saturating_add(1));
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(
            catalog::list,
            catalog::create,
            catalog::delete_many
        ))
        .routes(routes!(catalog::get, catalog::put, catalog::delete))
        .routes(
            routes!(
                data::get_by_query,
                data::put_by_query,
                data::delete_by_query
            )
            .layer(value_body),
        )
        .routes(routes!(data::get, data::put, data::delete).layer(value_body))
        .routes(routes!(data::get_many))
        .routes(routes!(data::put_many))
        .routes(routes!(data::delete_many))
        .routes(routes!(admin::peers))
        .routes(routes!(admin::keyspaces))
        .routes(routes!(admin::cluster))
        .routes(routes!(admin::owner_by_query))
        .routes(routes!(admin::owner))
        .routes(routes!(admin::start_warmup))
        .routes(routes!(admin::warmups))
        .routes(routes!(admin::warmup))
        .routes(routes!(metrics::metrics))
        .routes(routes!(admin::healthz))
        .routes(routes!(admin::readyz))
        .routes(routes!(openapi::document))
}

/// The OpenAPI 3.1 document of the public HTTP API, as pretty JSON: what a node serves at
/// `GET /openapi.json` and `docs/openapi.json` keeps.
pub fn openapi_json() -> Result<String> {
    let (_, doc) = api_routes(0).split_for_parts();
    openapi::render(&openapi::finish(doc))
}

/// What the routes serve: the node's parts.
pub(crate) struct Served {
    pub engine: Engine,
    pub control: Option<ControlPlane>,
    pub node_id: String,
    pub addr: String,
    pub readiness: Arc<Readiness>,
    pub config: ServerConfig,
    /// Where request durations are recorded (the node's metrics read them too).
    pub http: Arc<HttpStats>,
    /// The tokens requests must carry ([`tokens`]).
    pub tokens: Option<Arc<auth::Tokens>>,
}

/// The tokens requests must carry under `config` (`None`: the node is open), read once and
/// shared by the HTTP API and the Redis-protocol front.
pub(crate) fn tokens(config: &ServerConfig) -> Result<Option<Arc<auth::Tokens>>> {
    let tokens = auth::Tokens::from_config(config.tokens_file.as_deref(), config.token.as_deref())
        .map_err(|p| {
            let mut problems = Problems::new();
            problems.extend_prefixed("server", p);
            Error::InvalidConfig(problems)
        })?;
    Ok(tokens.map(Arc::new))
}

/// Builds every route over `served`; `peer_certificates`: the node-to-node routes need a
/// client certificate of the cluster CA.
pub(crate) fn router(served: Served, peer_certificates: bool) -> Result<Router> {
    let Served {
        engine,
        control,
        node_id,
        addr,
        readiness,
        config,
        http,
        tokens,
    } = served;
    let value_limit = engine.config().limits.max_value_bytes;
    let request_limit = config.max_request_bytes;
    let raft_routes = control.as_ref().map(ControlPlane::router);
    let (api, doc) = api_routes(value_limit).split_for_parts();
    let state = AppState(Arc::new(Shared {
        engine,
        control,
        node_id,
        addr,
        readiness,
        config,
        tokens,
        openapi: Bytes::from(openapi::render(&openapi::finish(doc))?),
        http,
        in_flight: std::sync::atomic::AtomicUsize::new(0),
    }));
    let mut peers = peer_routes(state.clone());
    if peer_certificates {
        peers = peers.route_layer(middleware::from_fn(require_peer_certificate));
    }
    let mut router = api
        // Not an operation: the answer to a key path with no key.
        .route("/v1/keyspaces/{ks}/keys/", any(data::empty_key))
        .merge(peers)
        .with_state(state.clone());
    if let Some(mut raft) = raft_routes {
        if peer_certificates {
            raft = raft.route_layer(middleware::from_fn(require_peer_certificate));
        }
        router = router.merge(raft);
    }
    Ok(router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(request_limit))
        .layer(front::FrontLayer::new(state)))
}

/// The node-to-node routes. Each first catches up with the sender's catalog revision.
fn peer_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/_distcache/peer/keyspaces/{ks}/keys",
            get(peer::get_by_query),
        )
        .route(
            "/_distcache/peer/keyspaces/{ks}/keys/{*key}",
            get(peer::get),
        )
        .route(
            "/_distcache/peer/keyspaces/{ks}/get-many",
            post(peer::get_many),
        )
        .route(
            "/_distcache/peer/keyspaces/{ks}/put-many",
            post(peer::put_many),
        )
        .route(
            "/_distcache/peer/keyspaces/{ks}/replicate",
            post(peer::replicate),
        )
        .route("/_distcache/peer/keyspaces/{ks}/copies", post(peer::copies))
        .route(
            "/_distcache/peer/keyspaces/{ks}/delete-many",
            post(peer::delete_many),
        )
        .route(
            "/_distcache/peer/keyspaces/{ks}/invalidate",
            post(peer::invalidate),
        )
        .route("/_distcache/peer/keyspaces/{ks}/warm", post(peer::warm))
        .route("/_distcache/peer/hot", get(peer::hot))
        .route("/_distcache/peer/flush", post(peer::flush))
        .route("/_distcache/peer/leaving", post(peer::leaving))
        .route("/_distcache/peer/handoff", get(peer::handoff))
        .route_layer(middleware::from_fn_with_state(state, peer::peer_context))
}

/// Lets a node-to-node request through only on a TLS connection whose client presented a
/// certificate that chains to the cluster CA: a token alone does not make a peer.
async fn require_peer_certificate(request: Request, next: Next) -> Response {
    if request
        .extensions()
        .get::<listen::ClientCertificate>()
        .is_some()
    {
        return next.run(request).await;
    }
    ApiError::plain(
        StatusCode::FORBIDDEN,
        WireCode::PeerCertificateRequired,
        "node-to-node routes need a client certificate that chains to the cluster CA (tls.ca)",
    )
    .into_response()
}

/// Serves `router` on `listener` under `config`'s connection limits until `shutdown`
/// resolves, then finishes requests in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    tls: Option<Arc<NodeTls>>,
    loops: Arc<crate::net::loops::EventLoops>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = listen::ConnectionLimits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
    };
    listen::serve(listener, router, limits, tls, loops, shutdown).await
}

async fn not_found(request: Request) -> ApiError {
    ApiError::plain(
        StatusCode::NOT_FOUND,
        WireCode::NotFound,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::plain(
        StatusCode::METHOD_NOT_ALLOWED,
        WireCode::MethodNotAllowed,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
