//! A keyspace's part in a takeover: a joining node adopts the entries of its keys that their
//! previous owners hand over. Every write of those keys goes through the joining node, which
//! holds them back during the takeover, and the previous owners finish their own writes
//! before they collect the entries (`engine/writes.rs`): an adopted entry is never older than
//! a write. A flush during the takeover (the node missed changes) voids it.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Space;
use crate::store::Cached;

/// A takeover in progress.
#[derive(Debug, Default)]
pub(crate) struct Takeover {
    /// The caches were flushed since it began: nothing may be adopted.
    flushed: bool,
}

impl Space {
    fn takeover(&self) -> std::sync::MutexGuard<'_, Option<Takeover>> {
        self.takeover.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a takeover.
    pub(crate) fn begin_takeover(&self) {
        *self.takeover() = Some(Takeover::default());
    }

    /// Ends the takeover; returns whether it held (no flush voided it).
    pub(crate) fn end_takeover(&self) -> bool {
        self.takeover().take().is_some_and(|t| !t.flushed)
    }

    /// Notes a flush (only during a takeover).
    pub(super) fn note_flush(&self) {
        if let Some(takeover) = self.takeover().as_mut() {
            takeover.flushed = true;
        }
    }

    /// Stores an entry handed over by the key's previous owner, unless no takeover holds or
    /// the key is cached already. Returns whether it was stored.
    pub(crate) async fn adopt(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> bool {
        let expires_at = match ttl {
            Some(ttl) if ttl.is_zero() => return false,
            Some(ttl) => Instant::now().checked_add(ttl),
            None => None,
        };
        let holds = || self.takeover().as_ref().is_some_and(|t| !t.flushed);
        self.main
            .insert_if_absent(key, Cached::found(value, expires_at), holds)
            .await
    }
}
