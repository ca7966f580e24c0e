//! The reference server: what a bare axum + `moka::future` cache server does for the GET a
//! distcache node answers, and nothing more, so `scripts/bench.sh` can print the node's
//! throughput as a ratio of it (goal P2 of issue 18: ≥ 0.9 on one node).
//!
//! The hit is the same request and the same answer as a node's: `GET
//! /v1/keyspaces/{ks}/keys/{key}` over HTTP/1.1 keep-alive (TCP_NODELAY, as a node sets it),
//! answered `200` with `content-type: application/octet-stream`, an `x-distcache-node`
//! header of the same length as a node's (`node-1`), and the value's bytes. The server is the
//! idiomatic minimum: `axum::serve`, one `Path<(String, String)>` extractor, one keyspace name
//! compared, one `Cache::get`, the value (a `Bytes`) cloned into the body. No token check, no
//! deadline, no metrics: those are what the node adds and what the ratio prices. It runs on
//! the system allocator (the node binary uses mimalloc, chosen for memory, see
//! `cli/src/main.rs`).
//!
//! To be filled and read the way bench.sh fills and reads a node it also serves `PUT` of one
//! key, `POST …/put-many` and `POST …/get-many` with the node's JSON bodies (values base64),
//! and `/healthz`. With a [`Config::source`] URL template a miss reads through it, one fetch
//! per key at a time (`Cache::try_get_with`), as the node's single-flight does: the reference
//! of the miss path.

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use moka::future::Cache;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::{Error, Result};

/// What the reference server holds and where it reads missing keys from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The one keyspace it serves; others are answered 404.
    pub keyspace: String,
    /// Sent as `x-distcache-node`, as a node sends its id.
    pub node_id: String,
    /// Most bytes (keys plus values) the cache holds.
    pub max_bytes: u64,
    /// A URL template with `{key}` (percent-encoded into it) that misses are read through;
    /// `None`: a miss is a 404.
    pub source: Option<String>,
}

impl Config {
    /// Keyspace `keyspace`, id `node-1`, 1 GiB, no source.
    pub fn new(keyspace: impl Into<String>) -> Self {
        Config {
            keyspace: keyspace.into(),
            node_id: "node-1".into(),
            max_bytes: 1 << 30,
            source: None,
        }
    }
}

/// Serves `config` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(config)?;
    let listener = listener.tap_io(|tcp| {
        // A refused option leaves the connection as it is; the node does the same.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The routes over a fresh cache.
pub fn router(config: Config) -> Result<Router> {
    let node = HeaderValue::from_str(&config.node_id).map_err(|_| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the node id must be printable ASCII",
        ))
    })?;
    let source = config.source.as_deref().map(Source::open).transpose()?;
    let cache = Cache::builder()
        .max_capacity(config.max_bytes)
        .weigher(|key: &String, value: &Bytes| {
            u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
        })
        .build();
    let state = Shared {
        keyspace: config.keyspace,
        node,
        cache,
        source,
    };
    Ok(Router::new()
        .route("/v1/keyspaces/{ks}/keys/{*key}", get(get_key).put(put_key))
        .route("/v1/keyspaces/{ks}/put-many", post(put_many))
        .route("/v1/keyspaces/{ks}/get-many", post(get_many))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(Arc::new(state)))
}

struct Shared {
    keyspace: String,
    node: HeaderValue,
    cache: Cache<String, Bytes>,
    source: Option<Source>,
}

type AppState = State<Arc<Shared>>;

const NODE_HEADER: HeaderName = HeaderName::from_static("x-distcache-node");

async fn get_key(State(s): AppState, Path((ks, key)): Path<(String, String)>) -> Response {
    if ks != s.keyspace {
        return error(StatusCode::NOT_FOUND, "KEYSPACE_NOT_FOUND", &ks);
    }
    let value = match s.cache.get(&key).await {
        Some(value) => value,
        None => match s.read_through(key).await {
            Ok(value) => value,
            Err(response) => return response,
        },
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (NODE_HEADER, s.node.clone()),
        ],
        value,
    )
        .into_response()
}

async fn put_key(
    State(s): AppState,
    Path((ks, key)): Path<(String, String)>,
    value: Bytes,
) -> Response {
    if ks != s.keyspace {
        return error(StatusCode::NOT_FOUND, "KEYSPACE_NOT_FOUND", &ks);
    }
    s.cache.insert(key, value).await;
    StatusCode::NO_CONTENT.into_response()
}

/// The body of a node's `put-many`.
#[derive(Deserialize)]
struct PutMany {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    key: String,
    value: String,
}

/// The body of a node's `get-many`.
#[derive(Deserialize)]
struct Keys {
    keys: Vec<String>,
}

/// One key's result, as a node's batch response has it.
#[derive(Serialize)]
struct Outcome {
    key: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

#[derive(Serialize)]
struct Outcomes {
    results: Vec<Outcome>,
}

async fn put_many(
    State(s): AppState,
    Path(ks): Path<String>,
    Json(body): Json<PutMany>,
) -> Response {
    if ks != s.keyspace {
        return error(StatusCode::NOT_FOUND, "KEYSPACE_NOT_FOUND", &ks);
    }
    let mut results = Vec::with_capacity(body.entries.len());
    for Entry { key, value } in body.entries {
        let status = match STANDARD.decode(value.as_bytes()) {
            Ok(value) => {
                s.cache.insert(key.clone(), Bytes::from(value)).await;
                "ok"
            }
            Err(_) => "error",
        };
        results.push(Outcome {
            key,
            status,
            value: None,
        });
    }
    Json(Outcomes { results }).into_response()
}

async fn get_many(State(s): AppState, Path(ks): Path<String>, Json(body): Json<Keys>) -> Response {
    if ks != s.keyspace {
        return error(StatusCode::NOT_FOUND, "KEYSPACE_NOT_FOUND", &ks);
    }
    let mut results = Vec::with_capacity(body.keys.len());
    for key in body.keys {
        let (status, value) = match s.cache.get(&key).await {
            Some(value) => ("ok", Some(STANDARD.encode(&value))),
            None => ("not_found", None),
        };
        results.push(Outcome { key, status, value });
    }
    Json(Outcomes { results }).into_response()
}

impl Shared {
    /// The value of a key that missed: read through the source (one fetch per key at a time),
    /// or the error response.
    async fn read_through(&self, key: String) -> std::result::Result<Bytes, Response> {
        let Some(source) = &self.source else {
            return Err(error(StatusCode::NOT_FOUND, "KEY_NOT_FOUND", &key));
        };
        let url = source.url(&key);
        match self
            .cache
            .try_get_with(key.clone(), source.fetch(url))
            .await
        {
            Ok(value) => Ok(value),
            Err(e) => Err(match *e {
                FetchError::NotFound => error(StatusCode::NOT_FOUND, "KEY_NOT_FOUND", &key),
                _ => error(StatusCode::BAD_GATEWAY, "DATA_SOURCE_ERROR", &e.to_string()),
            }),
        }
    }
}

/// What a key is percent-encoded with in the source URL: all but RFC 3986's unreserved
/// characters, as the node's `http` source does.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A read-through HTTP source: `GET` of the template with the key in it.
struct Source {
    client: reqwest::Client,
    template: String,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("not found")]
    NotFound,
    #[error("the source answered {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
}

impl Source {
    fn open(template: &str) -> Result<Self> {
        reqwest::Url::parse(&template.replace("{key}", "sample")).map_err(|e| {
            Error::SourceTemplate {
                template: template.to_owned(),
                reason: e.to_string(),
            }
        })?;
        // reqwest is built without a default crypto provider in this workspace; the source is
        // plain http, but the builder wants one installed. Another one already is: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .no_proxy()
            .build()
            .map_err(Error::Client)?;
        Ok(Source {
            client,
            template: template.to_owned(),
        })
    }

    fn url(&self, key: &str) -> String {
        self.template
            .replace("{key}", &utf8_percent_encode(key, KEY).to_string())
    }

    async fn fetch(&self, url: String) -> std::result::Result<Bytes, FetchError> {
        let response = self.client.get(url).send().await?;
        match response.status() {
            reqwest::StatusCode::OK => Ok(response.bytes().await?),
            reqwest::StatusCode::NOT_FOUND => Err(FetchError::NotFound),
            status => Err(FetchError::Status(status.as_u16())),
        }
    }
}

/// An error answer with the node's JSON shape (`code`, `message`).
fn error(status: StatusCode, code: &'static str, what: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": what });
    (status, Json(body)).into_response()
}
