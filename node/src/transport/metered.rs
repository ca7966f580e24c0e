//! A transport that counts and times every call it passes on, by peer and kind of call: the
//! `distcache_peer_requests_total`, `_errors_total` and `_request_duration_seconds` of
//! `/metrics`. The cluster wraps whatever transport it is given in one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{HotKeysByKeyspace, PeerError, PeerTransport, RemoteGet, RemoteValue};
use crate::entry::Entry;
use crate::error::Error;
use crate::telemetry::PeerCalls;
use crate::wire::{HandoffEntry, Health, WarmOutcome};

/// `inner`, with every call recorded in `calls`.
pub(crate) struct MeteredTransport {
    inner: Arc<dyn PeerTransport>,
    calls: Arc<PeerCalls>,
}

impl MeteredTransport {
    pub fn new(inner: Arc<dyn PeerTransport>, calls: Arc<PeerCalls>) -> Self {
        MeteredTransport { inner, calls }
    }

    /// Records one finished call. A typed answer from the peer (`Remote`) is not a failed
    /// call: the peer answered, with an error that is the caller's to count.
    fn record<T>(
        &self,
        peer: &str,
        operation: &'static str,
        started: Instant,
        result: &Result<T, PeerError>,
    ) {
        let failed = matches!(result, Err(e) if !matches!(e, PeerError::Remote(_)));
        self.calls.record(peer, operation, started, !failed);
    }
}

/// Calls `$call` on the inner transport, recording it as `$operation` to `$peer`.
macro_rules! metered {
    ($self:ident, $peer:expr, $operation:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.record($peer, $operation, started, &result);
        result
    }};
}

#[async_trait]
impl PeerTransport for MeteredTransport {
    async fn get(
        &self,
        peer: &str,
        keyspace: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<RemoteValue>, PeerError> {
        metered!(
            self,
            peer,
            "get",
            self.inner.get(peer, keyspace, key, timeout)
        )
    }

    async fn get_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError> {
        metered!(
            self,
            peer,
            "get_many",
            self.inner.get_many(peer, keyspace, keys, timeout)
        )
    }

    async fn put_many(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        metered!(
            self,
            peer,
            "put_many",
            self.inner.put_many(peer, keyspace, entries, timeout)
        )
    }

    async fn replicate(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        metered!(
            self,
            peer,
            "replicate",
            self.inner.replicate(peer, keyspace, entries, timeout)
        )
    }

    async fn copies(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError> {
        metered!(
            self,
            peer,
            "copies",
            self.inner.copies(peer, keyspace, keys, timeout)
        )
    }

    async fn delete_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        metered!(
            self,
            peer,
            "delete_many",
            self.inner.delete_many(peer, keyspace, keys, timeout)
        )
    }

    async fn invalidate(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<(), PeerError> {
        metered!(
            self,
            peer,
            "invalidate",
            self.inner.invalidate(peer, keyspace, keys, timeout)
        )
    }

    async fn warm(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<WarmOutcome, PeerError> {
        metered!(
            self,
            peer,
            "warm",
            self.inner.warm(peer, keyspace, keys, timeout)
        )
    }

    async fn hot(&self, peer: &str, timeout: Duration) -> Result<HotKeysByKeyspace, PeerError> {
        metered!(self, peer, "hot", self.inner.hot(peer, timeout))
    }

    async fn flush(&self, peer: &str, timeout: Duration) -> Result<(), PeerError> {
        metered!(self, peer, "flush", self.inner.flush(peer, timeout))
    }

    async fn leaving(&self, peer: &str, me: &Health, timeout: Duration) -> Result<(), PeerError> {
        metered!(self, peer, "leaving", self.inner.leaving(peer, me, timeout))
    }

    async fn probe(&self, peer: &str, timeout: Duration) -> Result<Health, PeerError> {
        metered!(self, peer, "probe", self.inner.probe(peer, timeout))
    }

    async fn handoff(
        &self,
        peer: &str,
        to: &str,
        timeout: Duration,
        sink: tokio::sync::mpsc::Sender<HandoffEntry>,
    ) -> Result<u64, PeerError> {
        metered!(
            self,
            peer,
            "handoff",
            self.inner.handoff(peer, to, timeout, sink)
        )
    }
}
