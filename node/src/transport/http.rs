//! The HTTP peer transport: reqwest with a keep-alive pool against the peer routes of
//! `server` (`/_distcache/peer/…`).
//!
//! A peer is not trusted: every answer is read under a size cap for its kind of call (from the
//! engine's [`Limits`] and the length of what was asked) and checked against what was asked.
//! An answer that breaks either is a [`PeerError::Protocol`] (the caller treats the peer as
//! failed), logged with the peer's address (`http/answer.rs` reads answers that way).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use tokio::sync::watch;

use super::{HotKeysByKeyspace, PeerError, PeerTransport, RemoteGet, RemoteValue};
use crate::entry::Entry;
use crate::error::Error;
use crate::limits::Limits;
use crate::net;
use crate::wire::{
    BatchResponse, ErrorBody, HOP_HEADER, HOPS_HEADER, HandoffEntry, Health, KeysRequest,
    PutManyRequest, REVISION_HEADER, WarmOutcome,
};
use answer::{ERROR_BODY_CAP, classify, encode, nonsense, read_capped, remote_error, ttl_of};

/// Peer calls over HTTP/1.1 with pooled connections.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    /// Sent as the hop marker, so the receiver knows who asks.
    from: String,
    /// `https` when the cluster speaks TLS, else `http`.
    scheme: &'static str,
    /// The catalog revision this node applied, sent with every request once known.
    revision: Arc<OnceLock<watch::Receiver<u64>>>,
    /// Sizes answers are capped and checked by.
    limits: Limits,
}

/// Largest `/healthz` or warm summary read from a peer, before the per-key failures.
const SMALL_ANSWER_CAP: usize = 1 << 20;
/// Most hot keys a valid node lists per keyspace: the ceiling `warmup.max_hot_keys`
/// validates against.
const MAX_HOT_KEYS: usize = 10_000;
/// Largest hot-keys answer. With the default 100 keys per keyspace of at most 1 KiB (up to
/// 6 KiB as escaped JSON), 32 MiB holds over 50 keyspaces at worst and thousands in practice;
/// keyspaces past that are shared next round by nobody, which only costs warmth.
const HOT_ANSWER_CAP: usize = 32 << 20;
/// JSON framing of one result or line besides its key and value (status, ttl, error body).
const PER_RESULT_OVERHEAD: usize = 1024;

impl HttpTransport {
    /// A transport for the node named `from`, sending the cluster's `token` when it has one,
    /// and dialling peers over TLS with `tls` (which presents this node's certificate).
    pub fn new(
        from: &str,
        token: Option<&str>,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Self, Error> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut builder = net::client_builder();
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let client = net::with_token(builder, token)
            .map_err(|e| {
                Error::InvalidConfig({
                    let mut p = crate::error::Problems::new();
                    p.push("server.token", e);
                    p
                })
            })?
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpTransport {
            client,
            from: from.to_owned(),
            scheme,
            revision: Arc::new(OnceLock::new()),
            limits: Limits::default(),
        })
    }

    /// Caps and checks answers by `limits` (the engine's) instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Most bytes one key's result or handoff line can take as JSON: the key escaped, the
    /// value in base64, the framing.
    fn per_result_cap(&self) -> usize {
        let key = self.limits.max_key_bytes.saturating_mul(6);
        let value = self.limits.max_value_bytes.div_ceil(3).saturating_mul(4);
        key.saturating_add(value)
            .saturating_add(PER_RESULT_OVERHEAD)
    }

    /// Sends the revision `applied` holds with every later request (set once; later calls
    /// are ignored).
    pub fn follow_revision(&self, applied: watch::Receiver<u64>) {
        let _ = self.revision.set(applied);
    }

    fn url(&self, peer: &str, segments: &[&str]) -> Result<reqwest::Url, PeerError> {
        net::url(self.scheme, peer, segments).map_err(|reason| PeerError::Protocol {
            peer: peer.to_owned(),
            reason,
        })
    }

    async fn send(
        &self,
        peer: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, PeerError> {
        let request = match self.revision.get() {
            Some(applied) => request.header(REVISION_HEADER, *applied.borrow()),
            None => request,
        };
        crate::otel::traced_request(request)
            .header(HOP_HEADER, &self.from)
            .header(HOPS_HEADER, u16::from(super::hops()) + 1)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| classify(peer, timeout, e))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        peer: &str,
        response: reqwest::Response,
        timeout: Duration,
        cap: usize,
    ) -> Result<T, PeerError> {
        if !response.status().is_success() {
            return Err(remote_error(peer, response, timeout).await);
        }
        let body = read_capped(peer, response, cap, timeout).await?;
        serde_json::from_slice(&body).map_err(|e| nonsense(peer, format!("bad JSON: {e}")))
    }

    async fn batch(
        &self,
        peer: &str,
        segments: &[&str],
        body: Vec<u8>,
        timeout: Duration,
        expected: usize,
    ) -> Result<BatchResponse, PeerError> {
        let cap = expected
            .saturating_mul(self.per_result_cap())
            .saturating_add(PER_RESULT_OVERHEAD);
        let batch: BatchResponse = self.post_json(peer, segments, body, timeout, cap).await?;
        if batch.results.len() != expected {
            return Err(nonsense(
                peer,
                format!("{} results for {expected} keys", batch.results.len()),
            ));
        }
        Ok(batch)
    }

    /// POSTs `entries` to the keyspace route `op` of `peer` (a put or a replica write); one
    /// write outcome per entry.
    async fn entries_batch(
        &self,
        peer: &str,
        keyspace: &str,
        op: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        let body = encode(peer, &PutManyRequest::of(entries))?;
        let batch = self
            .batch(
                peer,
                &["_distcache", "peer", "keyspaces", keyspace, op],
                body,
                timeout,
                entries.len(),
            )
            .await?;
        Ok(batch.results.into_iter().map(|o| o.into_write()).collect())
    }

    /// POSTs `{"keys": keys}` to the keyspace route `op` of `peer`; one outcome per key.
    async fn keys_batch(
        &self,
        peer: &str,
        keyspace: &str,
        op: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<BatchResponse, PeerError> {
        let body = encode(
            peer,
            &KeysRequest {
                keys: keys.to_vec(),
            },
        )?;
        self.batch(
            peer,
            &["_distcache", "peer", "keyspaces", keyspace, op],
            body,
            timeout,
            keys.len(),
        )
        .await
    }

    /// POSTs a JSON `body` to `segments` of `peer` and decodes the JSON answer.
    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        peer: &str,
        segments: &[&str],
        body: Vec<u8>,
        timeout: Duration,
        cap: usize,
    ) -> Result<T, PeerError> {
        let url = self.url(peer, segments)?;
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = self.send(peer, request, timeout).await?;
        self.json(peer, response, timeout, cap).await
    }

    /// Rejects a hot-keys answer no valid node sends: too many keys in a keyspace, an empty
    /// key or one over `max_key_bytes`, an empty keyspace name.
    fn check_hot(&self, peer: &str, hot: &HotKeysByKeyspace) -> Result<(), PeerError> {
        for (keyspace, keys) in hot {
            if keyspace.is_empty() || keyspace.len() > self.limits.max_key_bytes {
                return Err(nonsense(
                    peer,
                    "hot keys of a keyspace with a bad name".into(),
                ));
            }
            if keys.len() > MAX_HOT_KEYS {
                return Err(nonsense(
                    peer,
                    format!(
                        "{} hot keys for `{keyspace}`, over {MAX_HOT_KEYS}",
                        keys.len()
                    ),
                ));
            }
            if let Some((key, _)) = keys
                .iter()
                .find(|(key, _)| self.limits.check_key(key).is_err())
            {
                return Err(nonsense(
                    peer,
                    format!("hot key of {} bytes in `{keyspace}`", key.len()),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PeerTransport for HttpTransport {
    async fn get(
        &self,
        peer: &str,
        keyspace: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<RemoteValue>, PeerError> {
        // The key rides in the query string: any bytes, `.` and `..` included, arrive as sent.
        let mut url = self.url(peer, &["_distcache", "peer", "keyspaces", keyspace, "keys"])?;
        url.query_pairs_mut().append_pair("key", key);
        let response = self.send(peer, self.client.get(url), timeout).await?;
        match response.status() {
            StatusCode::OK => {
                let ttl = ttl_of(&response);
                let value =
                    read_capped(peer, response, self.limits.max_value_bytes, timeout).await?;
                Ok(Some(RemoteValue { value, ttl }))
            }
            StatusCode::NOT_FOUND => {
                let body = read_capped(peer, response, ERROR_BODY_CAP, timeout).await?;
                match serde_json::from_slice::<ErrorBody>(&body) {
                    Ok(err) if err.is_key_not_found() => Ok(None),
                    Ok(err) => Err(PeerError::Remote(err.into_error())),
                    Err(e) => Err(nonsense(peer, format!("404 without an error body: {e}"))),
                }
            }
            _ => Err(remote_error(peer, response, timeout).await),
        }
    }

    async fn get_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError> {
        let batch = self
            .keys_batch(peer, keyspace, "get-many", keys, timeout)
            .await?;
        Ok(batch
            .results
            .into_iter()
            .map(|outcome| {
                outcome
                    .into_get()
                    .map(|found| found.map(|(value, ttl)| RemoteValue { value, ttl }))
            })
            .collect())
    }

    async fn put_many(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        self.entries_batch(peer, keyspace, "put-many", entries, timeout)
            .await
    }

    async fn copies(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError> {
        let batch = self
            .keys_batch(peer, keyspace, "copies", keys, timeout)
            .await?;
        Ok(batch
            .results
            .into_iter()
            .map(|outcome| {
                outcome
                    .into_get()
                    .map(|found| found.map(|(value, ttl)| RemoteValue { value, ttl }))
            })
            .collect())
    }

    async fn replicate(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        self.entries_batch(peer, keyspace, "replicate", entries, timeout)
            .await
    }

    async fn delete_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        let batch = self
            .keys_batch(peer, keyspace, "delete-many", keys, timeout)
            .await?;
        Ok(batch.results.into_iter().map(|o| o.into_write()).collect())
    }

    async fn invalidate(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<(), PeerError> {
        self.keys_batch(peer, keyspace, "invalidate", keys, timeout)
            .await
            .map(|_| ())
    }

    async fn warm(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<WarmOutcome, PeerError> {
        let body = encode(
            peer,
            &KeysRequest {
                keys: keys.to_vec(),
            },
        )?;
        let cap = keys
            .len()
            .saturating_mul(self.limits.max_key_bytes.saturating_mul(6) + PER_RESULT_OVERHEAD)
            .saturating_add(SMALL_ANSWER_CAP);
        let outcome: WarmOutcome = self
            .post_json(
                peer,
                &["_distcache", "peer", "keyspaces", keyspace, "warm"],
                body,
                timeout,
                cap,
            )
            .await?;
        let counted = outcome
            .warmed
            .saturating_add(outcome.failed)
            .saturating_add(outcome.skipped);
        if counted > keys.len() || outcome.failures.len() > keys.len() {
            return Err(nonsense(
                peer,
                format!("a warm outcome counting {counted} keys of {}", keys.len()),
            ));
        }
        Ok(outcome)
    }

    async fn hot(&self, peer: &str, timeout: Duration) -> Result<HotKeysByKeyspace, PeerError> {
        let url = self.url(peer, &["_distcache", "peer", "hot"])?;
        let response = self.send(peer, self.client.get(url), timeout).await?;
        let hot = self.json(peer, response, timeout, HOT_ANSWER_CAP).await?;
        self.check_hot(peer, &hot)?;
        Ok(hot)
    }

    async fn flush(&self, peer: &str, timeout: Duration) -> Result<(), PeerError> {
        let url = self.url(peer, &["_distcache", "peer", "flush"])?;
        let response = self.send(peer, self.client.post(url), timeout).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(remote_error(peer, response, timeout).await)
        }
    }

    async fn leaving(&self, peer: &str, me: &Health, timeout: Duration) -> Result<(), PeerError> {
        let body = encode(peer, me)?;
        let url = self.url(peer, &["_distcache", "peer", "leaving"])?;
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = self.send(peer, request, timeout).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(remote_error(peer, response, timeout).await)
        }
    }

    async fn probe(&self, peer: &str, timeout: Duration) -> Result<Health, PeerError> {
        let url = self.url(peer, &["healthz"])?;
        let response = self.send(peer, self.client.get(url), timeout).await?;
        self.json(peer, response, timeout, SMALL_ANSWER_CAP).await
    }

    async fn handoff(
        &self,
        peer: &str,
        to: &str,
        timeout: Duration,
        sink: tokio::sync::mpsc::Sender<HandoffEntry>,
    ) -> Result<u64, PeerError> {
        let mut url = self.url(peer, &["_distcache", "peer", "handoff"])?;
        url.query_pairs_mut().append_pair("to", to);
        let mut response = self.send(peer, self.client.get(url), timeout).await?;
        if !response.status().is_success() {
            return Err(remote_error(peer, response, timeout).await);
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut count = 0u64;
        let bad_line = |e: serde_json::Error| nonsense(peer, format!("bad handoff line: {e}"));
        // A line holds one entry: its keyspace name and key, its value, the framing.
        let line_cap = self
            .per_result_cap()
            .saturating_add(self.limits.max_key_bytes.saturating_mul(6));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(peer, timeout, e))?
        {
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(len) = pending[start..].iter().position(|b| *b == b'\n') {
                let line = &pending[start..start + len];
                start += len + 1;
                let entry: HandoffEntry = serde_json::from_slice(line).map_err(bad_line)?;
                count += 1;
                if sink.send(entry).await.is_err() {
                    // The receiver gave up: stop reading.
                    return Ok(count);
                }
            }
            pending.drain(..start);
            if pending.len() > line_cap {
                return Err(nonsense(
                    peer,
                    format!("a handoff line over {line_cap} bytes"),
                ));
            }
        }
        if pending.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(PeerError::Protocol {
                peer: peer.to_owned(),
                reason: "the handoff stream ended in the middle of a line".into(),
            });
        }
        Ok(count)
    }
}

mod answer;
#[cfg(test)]
mod tests;
