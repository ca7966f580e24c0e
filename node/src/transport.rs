//! Node-to-node calls: the [`PeerTransport`] trait and its HTTP implementation.
//!
//! A transport separates three kinds of failure, because the caller reacts differently:
//! **unreachable** (nothing answered: load the key here instead, suspect the peer),
//! **network** (it answered badly or too late), and **remote** (the peer answered with a typed
//! error, which is passed on as it is).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::entry::Entry;
use crate::error::Error;
use crate::wire::{HandoffEntry, Health, WarmOutcome};

mod http;
mod metered;

pub use http::HttpTransport;
pub(crate) use metered::MeteredTransport;

/// Most times a request between nodes is passed on to another node. A node that does not
/// own a key passes a peer's request for it to the owner it knows, and a joining owner passes
/// it to the previous one; nodes whose views of the ring differ could pass it round in a
/// circle, and this ends that.
pub(crate) const MAX_HOPS: u8 = 3;

tokio::task_local! {
    /// How many nodes the peer request being served has passed through (0: none, the work
    /// comes from this node's own client). Requests sent while serving it count one more.
    pub(crate) static HOPS: u8;
}

/// Hops of the peer request this task serves (0 outside one).
pub(crate) fn hops() -> u8 {
    HOPS.try_with(|h| *h).unwrap_or(0)
}

/// A value read from a peer, with its remaining time to live there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteValue {
    /// The value.
    pub value: Bytes,
    /// How long the owner keeps it; a copy must not outlive that.
    pub ttl: Option<Duration>,
}

/// Hot keys with their counts, by keyspace.
pub type HotKeysByKeyspace = std::collections::HashMap<String, Vec<(String, u32)>>;

/// What a peer answered for one key of a batch.
pub type RemoteGet = Result<Option<RemoteValue>, Error>;

/// Why a peer call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Nothing answered (connection refused or reset, name not resolved).
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        peer: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The call took longer than its deadline.
    #[error("call to peer {peer} timed out after {}", humantime::format_duration(*.after))]
    Timeout {
        /// The peer's address.
        peer: String,
        /// The deadline.
        after: Duration,
    },
    /// The peer answered something that is not the protocol.
    #[error("peer {peer} answered badly: {reason}")]
    Protocol {
        /// The peer's address.
        peer: String,
        /// What was wrong.
        reason: String,
    },
    /// The peer answered with a typed error.
    #[error(transparent)]
    Remote(Error),
}

impl PeerError {
    /// True when the peer could not serve the call at all, so the caller should do the work
    /// itself: nothing answered, it answered garbage, or it is not running yet.
    pub fn calls_for_fallback(&self) -> bool {
        matches!(
            self,
            PeerError::Unreachable { .. }
                | PeerError::Protocol { .. }
                | PeerError::Remote(Error::NotRunning)
        )
    }

    /// The error a client of this node should see.
    pub fn into_error(self) -> Error {
        match self {
            PeerError::Remote(e) => e,
            PeerError::Timeout { after, peer } => {
                Error::timeout(format!("call to peer {peer}"), after)
            }
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// How one node calls another. Implementations must pool connections: a remote get should
/// cost one round trip.
#[async_trait]
pub trait PeerTransport: Send + Sync + 'static {
    /// Reads `key` from the owner at `peer` (served there, never forwarded).
    async fn get(
        &self,
        peer: &str,
        keyspace: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<RemoteValue>, PeerError>;

    /// Reads `keys` from the owner at `peer`, one result per key in order.
    async fn get_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError>;

    /// Stores `entries` on the owner at `peer`, one result per entry in order.
    async fn put_many(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError>;

    /// Stores `entries` on `peer` as the replica of their owner (this node): kept in its main
    /// cache as they are, never passed on; one result per entry in order.
    async fn replicate(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError>;

    /// The values the node at `peer` holds for `keys` in its main cache — as their owner, or
    /// as their replica — from memory only: never loaded, never passed on. One result per key
    /// in order; `Ok(None)` for a key it holds no value of (or while its caches may not
    /// answer).
    async fn copies(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError>;

    /// Deletes `keys` on their owner at `peer`, which drops every other node's copies; one
    /// result per key in order.
    async fn delete_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError>;

    /// Removes `keys` from every cache of the node at `peer`.
    async fn invalidate(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<(), PeerError>;

    /// Asks the node at `peer` to load `keys` of `keyspace` into its cache (it owns them).
    async fn warm(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<WarmOutcome, PeerError>;

    /// The hot keys of every keyspace on the node at `peer`.
    async fn hot(&self, peer: &str, timeout: Duration) -> Result<HotKeysByKeyspace, PeerError>;

    /// Empties every cache of the node at `peer` (it missed changes while unreachable).
    async fn flush(&self, peer: &str, timeout: Duration) -> Result<(), PeerError>;

    /// Tells the node at `peer` that this node (`me`) is shutting down.
    async fn leaving(&self, peer: &str, me: &Health, timeout: Duration) -> Result<(), PeerError>;

    /// Asks the node at `peer` who it is and whether it serves.
    async fn probe(&self, peer: &str, timeout: Duration) -> Result<Health, PeerError>;

    /// Streams into `sink` the entries the node at `peer` caches for keys that node `to`
    /// owns in its ring (a joining `to` taking its keys over); returns how many came. Fails
    /// when `to` is not in that node's ring yet.
    async fn handoff(
        &self,
        peer: &str,
        to: &str,
        timeout: Duration,
        sink: tokio::sync::mpsc::Sender<HandoffEntry>,
    ) -> Result<u64, PeerError>;
}
