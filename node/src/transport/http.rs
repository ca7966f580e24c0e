//! The HTTP peer transport: reqwest with a keep-alive pool against the peer routes of
//! `server` (`/_distcache/peer/…`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use tokio::sync::watch;

use super::{HotKeysByKeyspace, PeerError, PeerTransport, RemoteGet, RemoteValue};
use crate::entry::Entry;
use crate::error::Error;
use crate::net;
use crate::wire::{
    BatchResponse, ErrorBody, HOP_HEADER, HOPS_HEADER, HandoffEntry, Health, KeysRequest,
    PutManyRequest, REVISION_HEADER, TTL_HEADER, WarmOutcome,
};

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
}

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
        })
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
        request
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
    ) -> Result<T, PeerError> {
        if !response.status().is_success() {
            return Err(remote_error(peer, response, timeout).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| classify(peer, timeout, e))?;
        serde_json::from_slice(&body).map_err(|e| PeerError::Protocol {
            peer: peer.to_owned(),
            reason: format!("bad JSON: {e}"),
        })
    }

    async fn batch(
        &self,
        peer: &str,
        segments: &[&str],
        body: Vec<u8>,
        timeout: Duration,
        expected: usize,
    ) -> Result<BatchResponse, PeerError> {
        let batch: BatchResponse = self.post_json(peer, segments, body, timeout).await?;
        if batch.results.len() != expected {
            return Err(PeerError::Protocol {
                peer: peer.to_owned(),
                reason: format!("{} results for {expected} keys", batch.results.len()),
            });
        }
        Ok(batch)
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
    ) -> Result<T, PeerError> {
        let url = self.url(peer, segments)?;
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = self.send(peer, request, timeout).await?;
        self.json(peer, response, timeout).await
    }
}

fn classify(peer: &str, timeout: Duration, e: reqwest::Error) -> PeerError {
    if e.is_timeout() {
        PeerError::Timeout {
            peer: peer.to_owned(),
            after: timeout,
        }
    } else if e.is_decode() || e.is_builder() {
        PeerError::Protocol {
            peer: peer.to_owned(),
            reason: e.to_string(),
        }
    } else {
        // Connect failures and connections that died before an answer.
        PeerError::Unreachable {
            peer: peer.to_owned(),
            reason: crate::error::with_causes(&e),
        }
    }
}

async fn remote_error(peer: &str, response: reqwest::Response, timeout: Duration) -> PeerError {
    let status = response.status();
    match response.bytes().await {
        Ok(body) => match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => PeerError::Remote(err.into_error()),
            Err(_) => PeerError::Protocol {
                peer: peer.to_owned(),
                reason: format!(
                    "status {status} without an error body: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            },
        },
        Err(e) => classify(peer, timeout, e),
    }
}

fn ttl_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(TTL_HEADER)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

fn encode(peer: &str, value: &impl serde::Serialize) -> Result<Vec<u8>, PeerError> {
    serde_json::to_vec(value).map_err(|e| PeerError::Protocol {
        peer: peer.to_owned(),
        reason: format!("cannot encode the request: {e}"),
    })
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
                let value: Bytes = response
                    .bytes()
                    .await
                    .map_err(|e| classify(peer, timeout, e))?;
                Ok(Some(RemoteValue { value, ttl }))
            }
            StatusCode::NOT_FOUND => {
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| classify(peer, timeout, e))?;
                match serde_json::from_slice::<ErrorBody>(&body) {
                    Ok(err) if err.is_key_not_found() => Ok(None),
                    Ok(err) => Err(PeerError::Remote(err.into_error())),
                    Err(e) => Err(PeerError::Protocol {
                        peer: peer.to_owned(),
                        reason: format!("404 without an error body: {e}"),
                    }),
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
        let request = PutManyRequest::of(entries);
        let body = encode(peer, &request)?;
        let batch = self
            .batch(
                peer,
                &["_distcache", "peer", "keyspaces", keyspace, "put-many"],
                body,
                timeout,
                entries.len(),
            )
            .await?;
        Ok(batch.results.into_iter().map(|o| o.into_write()).collect())
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
        self.post_json(
            peer,
            &["_distcache", "peer", "keyspaces", keyspace, "warm"],
            body,
            timeout,
        )
        .await
    }

    async fn hot(&self, peer: &str, timeout: Duration) -> Result<HotKeysByKeyspace, PeerError> {
        let url = self.url(peer, &["_distcache", "peer", "hot"])?;
        let response = self.send(peer, self.client.get(url), timeout).await?;
        self.json(peer, response, timeout).await
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
        self.json(peer, response, timeout).await
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
        let bad_line = |e: serde_json::Error| PeerError::Protocol {
            peer: peer.to_owned(),
            reason: format!("bad handoff line: {e}"),
        };
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
