//! A typed async client for a node's public HTTP API, used by the CLI, the dashboard and
//! tests, and by any program that talks to a cluster it does not embed.
//!
//! Several endpoints may be given: a request goes to the last one that answered and moves on
//! to the next only when an endpoint cannot be reached (an HTTP error is an answer). Catalog
//! changes carry an `Idempotency-Key`, so one whose answer was lost and that is tried again on
//! the next endpoint commits once. Errors come back as the same typed [`Error`] the node
//! raised, rebuilt from the wire code.
//!
//! To ask every member of a cluster rather than any one, use a [`Fleet`] (`client/fleet.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::cluster::MemberStatus;
use crate::entry::{Entry, KeyResult};
use crate::error::{Error, Result};
use crate::net;
use crate::net::tls::ClientTls;
use crate::spec::KeySpaceSpec;
use crate::stats::KeySpaceSnapshot;
use crate::warmup::WarmupRun;
use crate::wire::{
    BatchResponse, ChangeResponse, ClusterInfo, ErrorBody, Health, KeySpaceList, KeysRequest,
    Owner, PutManyRequest,
};

mod endpoint;
mod fleet;

pub(crate) use endpoint::{default_scheme, http_client, scheme_of};
pub use fleet::{Answer, Answers, Fleet, Member};

use endpoint::endpoint_url;

/// A client of one cluster (any of its nodes).
pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    current: AtomicUsize,
    token: Option<String>,
    timeout: Duration,
}

/// A request: method, path segments (each percent-encoded), query, body.
struct Call<'a> {
    method: Method,
    path: Vec<&'a str>,
    query: Vec<(&'a str, String)>,
    body: Option<(Bytes, &'static str)>,
    /// Sent as `Idempotency-Key`: the same on every endpoint the call is tried on.
    idempotency_key: Option<String>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &[&'a str]) -> Self {
        Call {
            method,
            path: path.to_vec(),
            query: Vec::new(),
            body: None,
            idempotency_key: None,
        }
    }

    /// Marks a catalog change as one change: tried on another endpoint after a lost answer,
    /// it commits once and answers what the first attempt did.
    fn once(mut self) -> Self {
        self.idempotency_key = Some(distcache_control::fresh_request_id());
        self
    }

    /// A call on one key under `prefix` (`…/keys`): the key as the last path segment, or as
    /// `?key=` when it is `.` or `..`, which no URL can carry as a segment (it would be
    /// resolved as "this" or "parent" directory on the way).
    fn on_key(method: Method, prefix: &[&'a str], key: &'a str) -> Self {
        let mut call = Call::new(method, prefix);
        if net::is_dot_segment(key) {
            call.query.push(("key", key.to_owned()));
        } else {
            call.path.push(key);
        }
        call
    }

    fn query(mut self, name: &'a str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn json(mut self, value: &impl serde::Serialize) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::InvalidRequest(format!("cannot encode the request: {e}")))?;
        self.body = Some((Bytes::from(body), "application/json"));
        Ok(self)
    }

    fn bytes(mut self, value: Bytes) -> Self {
        self.body = Some((value, "application/octet-stream"));
        self
    }
}

impl Client {
    /// A client of the nodes at `endpoints` (`host:port`, `http://host:port` or
    /// `https://host:port`; bare `host:port` is http). TLS trusts the bundled Mozilla roots;
    /// use [`with_tls`](Self::with_tls) for a private CA or a client certificate.
    pub fn new<I, S>(endpoints: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Client::with_tls(endpoints, &ClientTls::default())
    }

    /// A client of the nodes at `endpoints` with the TLS settings `tls` (files are read now;
    /// a problem names the file). A bare `host:port` endpoint means `https://` when `tls`
    /// sets anything ([`ClientTls::is_configured`]), else `http://`.
    pub fn with_tls<I, S>(endpoints: I, tls: &ClientTls) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let http = http_client(tls)?;
        Client::over(endpoints, http, default_scheme(tls))
    }

    /// A client of `endpoints` sending over `http` (shared, with its pool); bare `host:port`
    /// endpoints get `scheme`.
    pub(crate) fn over<I, S>(endpoints: I, http: reqwest::Client, scheme: &str) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|e| endpoint_url(e.into().trim().trim_end_matches('/'), scheme))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<String>>>()?;
        if endpoints.is_empty() {
            return Err(Error::InvalidRequest("no endpoint given".into()));
        }
        Ok(Client {
            http,
            endpoints,
            current: AtomicUsize::new(0),
            token: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Deadline of each request (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoints, in the order they are tried.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    async fn send(&self, call: Call<'_>) -> Result<reqwest::Response> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let index = (start + i) % n;
            let base = &self.endpoints[index];
            let mut url = reqwest::Url::parse(base)
                .map_err(|e| Error::InvalidRequest(format!("endpoint `{base}`: {e}")))?;
            url.path_segments_mut()
                .map_err(|_| {
                    Error::InvalidRequest(format!("endpoint `{base}` cannot have a path"))
                })?
                .pop_if_empty()
                .extend(&call.path);
            if !call.query.is_empty() {
                url.query_pairs_mut()
                    .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
            }
            let mut request = self
                .http
                .request(call.method.clone(), url)
                .timeout(self.timeout);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(key) = &call.idempotency_key {
                request = request.header("idempotency-key", key);
            }
            if let Some((body, content_type)) = &call.body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(body.clone());
            }
            match request.send().await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(e) if e.is_timeout() => {
                    return Err(Error::timeout(format!("request to {base}"), self.timeout));
                }
                Err(e) => failures.push(format!("{base} ({})", net::tls::describe(&e))),
            }
        }
        Err(Error::Unavailable(format!(
            "cannot reach any endpoint: {}",
            failures.join("; ")
        )))
    }

    async fn expect_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let response = self.send(call).await?;
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("reading the answer failed: {e}")))?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::Internal(format!("the node answered unexpected JSON: {e}")))
    }

    async fn expect_empty(&self, call: Call<'_>) -> Result<()> {
        let response = self.send(call).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(error_of(response).await)
        }
    }

    /// Reads `key`; `Ok(None)` when the data source does not have it.
    pub async fn get(&self, keyspace: &str, key: &str) -> Result<Option<Bytes>> {
        let response = self
            .send(Call::on_key(
                Method::GET,
                &["v1", "keyspaces", keyspace, "keys"],
                key,
            ))
            .await?;
        match response.status() {
            StatusCode::OK => response
                .bytes()
                .await
                .map(Some)
                .map_err(|e| Error::Unavailable(format!("reading the value failed: {e}"))),
            _ => {
                let err = body_of(response).await;
                match err {
                    Ok(body) if body.is_key_not_found() => Ok(None),
                    Ok(body) => Err(body.into_error()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Stores `value` under `key`, optionally for `ttl`.
    pub async fn put(
        &self,
        keyspace: &str,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let mut call = Call::on_key(Method::PUT, &["v1", "keyspaces", keyspace, "keys"], key)
            .bytes(value.into());
        if let Some(ttl) = ttl {
            call = call.query("ttl", humantime::format_duration(ttl));
        }
        self.expect_empty(call).await
    }

    /// Removes `key` on every node.
    pub async fn delete(&self, keyspace: &str, key: &str) -> Result<()> {
        self.expect_empty(Call::on_key(
            Method::DELETE,
            &["v1", "keyspaces", keyspace, "keys"],
            key,
        ))
        .await
    }

    /// Reads many keys: one result per key, in order.
    pub async fn get_many<K: AsRef<str>>(
        &self,
        keyspace: &str,
        keys: &[K],
    ) -> Result<Vec<KeyResult<Option<Bytes>>>> {
        let request = KeysRequest {
            keys: keys.iter().map(|k| k.as_ref().to_owned()).collect(),
        };
        let call =
            Call::new(Method::POST, &["v1", "keyspaces", keyspace, "get-many"]).json(&request)?;
        let batch: BatchResponse = self.expect_json(call).await?;
        Ok(batch
            .results
            .into_iter()
            .map(|o| KeyResult {
                key: o.key.clone(),
                result: o.into_get().map(|f| f.map(|(v, _)| v)),
            })
            .collect())
    }

    /// Stores many entries: one result per entry, in order.
    pub async fn put_many(&self, keyspace: &str, entries: &[Entry]) -> Result<Vec<KeyResult<()>>> {
        let request = PutManyRequest::of(entries);
        let call =
            Call::new(Method::POST, &["v1", "keyspaces", keyspace, "put-many"]).json(&request)?;
        self.writes(call).await
    }

    /// Removes many keys: one result per key, in order.
    pub async fn delete_many<K: AsRef<str>>(
        &self,
        keyspace: &str,
        keys: &[K],
    ) -> Result<Vec<KeyResult<()>>> {
        let request = KeysRequest {
            keys: keys.iter().map(|k| k.as_ref().to_owned()).collect(),
        };
        let call = Call::new(Method::POST, &["v1", "keyspaces", keyspace, "delete-many"])
            .json(&request)?;
        self.writes(call).await
    }

    async fn writes(&self, call: Call<'_>) -> Result<Vec<KeyResult<()>>> {
        let batch: BatchResponse = self.expect_json(call).await?;
        Ok(batch
            .results
            .into_iter()
            .map(|o| KeyResult {
                key: o.key.clone(),
                result: o.into_write(),
            })
            .collect())
    }

    /// Every keyspace and the revision the answering node applied.
    pub async fn keyspaces(&self) -> Result<KeySpaceList> {
        self.expect_json(Call::new(Method::GET, &["v1", "keyspaces"]))
            .await
    }

    /// One keyspace's definition.
    pub async fn keyspace(&self, name: &str) -> Result<KeySpaceSpec> {
        self.expect_json(Call::new(Method::GET, &["v1", "keyspaces", name]))
            .await
    }

    /// Creates a keyspace (fails if it exists).
    pub async fn create_keyspace(&self, spec: &KeySpaceSpec) -> Result<ChangeResponse> {
        let call = Call::new(Method::POST, &["v1", "keyspaces"])
            .json(spec)?
            .once();
        self.expect_json(call).await
    }

    /// Creates or replaces a keyspace, optionally only at `expected_revision`.
    pub async fn put_keyspace(
        &self,
        spec: &KeySpaceSpec,
        expected_revision: Option<u64>,
    ) -> Result<ChangeResponse> {
        let mut call = Call::new(Method::PUT, &["v1", "keyspaces", &spec.name])
            .json(spec)?
            .once();
        if let Some(rev) = expected_revision {
            call = call.query("expected_revision", rev);
        }
        self.expect_json(call).await
    }

    /// Deletes keyspaces, all or none.
    pub async fn delete_keyspaces<N: AsRef<str>>(&self, names: &[N]) -> Result<ChangeResponse> {
        let joined = names
            .iter()
            .map(|n| n.as_ref())
            .collect::<Vec<_>>()
            .join(",");
        self.expect_json(
            Call::new(Method::DELETE, &["v1", "keyspaces"])
                .query("names", joined)
                .once(),
        )
        .await
    }

    /// The members as the answering node sees them.
    pub async fn peers(&self) -> Result<Vec<MemberStatus>> {
        self.expect_json(Call::new(Method::GET, &["_distcache", "admin", "peers"]))
            .await
    }

    /// Definition, sizes and counters of every keyspace on the answering node.
    pub async fn stats(&self) -> Result<Vec<KeySpaceSnapshot>> {
        self.expect_json(Call::new(
            Method::GET,
            &["_distcache", "admin", "keyspaces"],
        ))
        .await
    }

    /// The control plane as the answering node sees it.
    pub async fn cluster(&self) -> Result<ClusterInfo> {
        self.expect_json(Call::new(Method::GET, &["_distcache", "admin", "cluster"]))
            .await
    }

    /// Which node owns `key` of `keyspace`, as the answering node sees the ring.
    pub async fn owner(&self, keyspace: &str, key: &str) -> Result<Owner> {
        self.expect_json(Call::on_key(
            Method::GET,
            &["_distcache", "admin", "owner", keyspace],
            key,
        ))
        .await
    }

    /// Starts a cluster-wide warmup of `keyspace` (of `keys`, or else of its warm and hot
    /// keys); returns the run at once. Follow it with [`warmup_run`](Self::warmup_run) on the
    /// same node.
    pub async fn warmup(&self, keyspace: &str, keys: Option<&[String]>) -> Result<WarmupRun> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            keys: Option<&'a [String]>,
        }
        let call = Call::new(
            Method::POST,
            &["_distcache", "admin", "keyspaces", keyspace, "warmup"],
        )
        .json(&Body { keys })?;
        self.expect_json(call).await
    }

    /// Warmup run `id` of the node that answers (use a client of that one node).
    pub async fn warmup_run(&self, id: u64) -> Result<WarmupRun> {
        let id = id.to_string();
        self.expect_json(Call::new(
            Method::GET,
            &["_distcache", "admin", "warmups", &id],
        ))
        .await
    }

    /// The warmup runs of the node that answers.
    pub async fn warmup_runs(&self) -> Result<Vec<WarmupRun>> {
        self.expect_json(Call::new(Method::GET, &["_distcache", "admin", "warmups"]))
            .await
    }

    /// Starts a cluster-wide warmup of `keyspace` (like [`warmup`](Self::warmup)) and returns
    /// the run with a follower bound to the node that took it, where the run is kept.
    pub async fn start_warmup(
        &self,
        keyspace: &str,
        keys: Option<&[String]>,
    ) -> Result<(WarmupRun, WarmupFollower)> {
        let run = self.warmup(keyspace, keys).await?;
        let node = Client::over([self.current_endpoint()], self.http.clone(), "http")?
            .with_token(self.token.clone())
            .with_timeout(self.timeout);
        let id = run.id;
        Ok((run, WarmupFollower { node, id }))
    }

    /// The endpoint that answered last (where a warmup started by [`warmup`](Self::warmup)
    /// runs).
    pub fn current_endpoint(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// The answering node's identity and readiness.
    pub async fn health(&self) -> Result<Health> {
        self.expect_json(Call::new(Method::GET, &["healthz"])).await
    }

    /// The answering node's metrics, in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        let response = self.send(Call::new(Method::GET, &["metrics"])).await?;
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        response
            .text()
            .await
            .map_err(|e| Error::Unavailable(format!("reading the metrics failed: {e}")))
    }
}

/// A warmup run followed on the node that runs it (runs are kept per node): the CLI's
/// `distcache warmup` and the dashboard's `w` both follow one this way.
pub struct WarmupFollower {
    node: Client,
    id: u64,
}

impl WarmupFollower {
    /// Failed asks in a row (node busy, connection dropped) before [`poll`](Self::poll) gives up.
    const MAX_FAILED_POLLS: u32 = 5;

    /// The run's id on its node.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The run as its node sees it now. A node briefly busy or a dropped connection is asked
    /// again, up to five times, half a second apart.
    pub async fn poll(&self) -> Result<WarmupRun> {
        let mut failed = 0;
        loop {
            match self.node.warmup_run(self.id).await {
                Ok(run) => return Ok(run),
                Err(Error::Unavailable(_) | Error::Timeout { .. })
                    if failed < Self::MAX_FAILED_POLLS =>
                {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

async fn body_of(response: reqwest::Response) -> Result<ErrorBody> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::Unavailable(format!("reading the answer failed: {e}")))?;
    serde_json::from_slice::<ErrorBody>(&body).map_err(|_| {
        Error::Internal(format!(
            "status {status} without an error body: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })
}

async fn error_of(response: reqwest::Response) -> Error {
    match body_of(response).await {
        Ok(body) => body.into_error(),
        Err(e) => e,
    }
}
