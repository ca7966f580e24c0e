//! A keyspace's part in a takeover: while a joining node adopts the entries of its keys from
//! their previous owners, the keys written or removed here meanwhile are remembered, and an
//! adopted entry never replaces them (it is older than the write or the removal).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Space;
use crate::store::Cached;

/// The keys written or removed during a takeover.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    keys: HashSet<String>,
    /// The caches were flushed: nothing may be adopted any more.
    all: bool,
}

impl Space {
    fn touched(&self) -> std::sync::MutexGuard<'_, Option<Touched>> {
        self.touched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts remembering written and removed keys.
    pub(crate) fn begin_takeover(&self) {
        *self.touched() = Some(Touched::default());
    }

    /// Stops remembering them.
    pub(crate) fn end_takeover(&self) {
        *self.touched() = None;
    }

    /// Notes that `key` was written or removed (only during a takeover).
    pub(super) fn touch(&self, key: &str) {
        if let Some(touched) = self.touched().as_mut() {
            touched.keys.insert(key.to_owned());
        }
    }

    /// Notes that every key was removed (only during a takeover).
    pub(super) fn touch_all(&self) {
        if let Some(touched) = self.touched().as_mut() {
            touched.all = true;
        }
    }

    /// Stores an entry handed over by the key's previous owner, unless a takeover is not
    /// running, the key was written or removed since it began, or it is cached already.
    /// Returns whether it was stored.
    pub(crate) async fn adopt(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> bool {
        let expires_at = match ttl {
            Some(ttl) if ttl.is_zero() => return false,
            Some(ttl) => Instant::now().checked_add(ttl),
            None => None,
        };
        // Asked under the key's lock: a removal touches the key before it takes that lock,
        // so it either sees the adopted entry and removes it, or is seen here.
        let untouched = || {
            self.touched()
                .as_ref()
                .is_some_and(|t| !t.all && !t.keys.contains(key))
        };
        self.main
            .insert_if_absent(key, Cached::found(value, expires_at), untouched)
            .await
    }
}
