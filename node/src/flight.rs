//! Single-flight: at most one load per key at a time, shared by every caller that wants it.
//!
//! The first caller of a cold key becomes the leader and receives a [`Ticket`]; the load runs
//! in its own task, so no caller's disappearance (dropped future, deadline) cancels it. Later
//! callers join the flight and await the same outcome, value or error. The registry's lock is
//! held only to look up, insert or remove a flight, never across I/O.
//!
//! A put or delete of a key [`invalidate`](Flights::invalidate)s its flight: the load still
//! answers the callers that were waiting for it, but no longer stores its (now stale) result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::store::{Cached, CancelFlag};

/// What a load answers: a value with its expiry, not found (an entry without a value), or an
/// error.
pub(crate) type Outcome = Result<Cached>;

/// A load's outcome, awaitable by any number of callers.
pub(crate) type Pending = Shared<BoxFuture<'static, Outcome>>;

struct Flight {
    id: u64,
    cancelled: CancelFlag,
    pending: Pending,
}

#[derive(Default)]
struct Registry {
    flights: Mutex<HashMap<String, Flight>>,
    next_id: AtomicU64,
}

/// The flights of one keyspace.
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Registry>);

/// The leader's duty for one key: resolve the flight exactly once. Dropping a ticket without
/// resolving it (a panicking data source) fails the flight's callers with an error rather
/// than leaving them waiting, and frees the key for the next load.
pub(crate) struct Ticket {
    key: String,
    id: u64,
    cancelled: CancelFlag,
    sender: Option<oneshot::Sender<Outcome>>,
    registry: Flights,
}

/// How a caller takes part in a key's load.
pub(crate) enum Claim {
    /// A load was already running: await it.
    Joined(Pending),
    /// This caller starts the load: run the ticket, await the pending outcome.
    Leader(Ticket, Pending),
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        // Every critical section is a single map operation: a poisoned map is consistent.
        self.0.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the running load of `key`, or starts a new one.
    pub fn claim(&self, key: &str) -> Claim {
        let mut flights = self.lock();
        if let Some(flight) = flights.get(key) {
            return Claim::Joined(flight.pending.clone());
        }
        let (sender, receiver) = oneshot::channel();
        let pending: Pending = receiver
            .map(|received| {
                received.unwrap_or_else(|_| {
                    Err(Error::Internal(
                        "the load was abandoned before it answered (did the data source panic?)"
                            .into(),
                    ))
                })
            })
            .boxed()
            .shared();
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let cancelled: CancelFlag = Arc::new(AtomicBool::new(false));
        flights.insert(
            key.to_owned(),
            Flight {
                id,
                cancelled: cancelled.clone(),
                pending: pending.clone(),
            },
        );
        let ticket = Ticket {
            key: key.to_owned(),
            id,
            cancelled,
            sender: Some(sender),
            registry: self.clone(),
        };
        Claim::Leader(ticket, pending)
    }

    /// Stops the running load of `key` (if any) from storing its result, and detaches it so
    /// the next caller starts a fresh load.
    pub fn invalidate(&self, key: &str) {
        if let Some(flight) = self.lock().remove(key) {
            flight.cancelled.store(true, Ordering::Release);
        }
    }

    /// Stops every running load from storing its result (the caches are being emptied).
    pub fn invalidate_all(&self) {
        for (_, flight) in self.lock().drain() {
            flight.cancelled.store(true, Ordering::Release);
        }
    }

    /// Number of keys being loaded (each one flight, however many callers wait on it).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn finish(&self, key: &str, id: u64) {
        let mut flights = self.lock();
        if flights.get(key).is_some_and(|f| f.id == id) {
            flights.remove(key);
        }
    }
}

impl Ticket {
    /// The key this ticket loads.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Set once a writer replaced or removed the key: the result must not be stored.
    pub fn cancelled(&self) -> &AtomicBool {
        &self.cancelled
    }

    /// Ends the flight with `outcome`: later callers start a new load (or hit the cache).
    pub fn resolve(mut self, outcome: Outcome) {
        self.registry.finish(&self.key, self.id);
        if let Some(sender) = self.sender.take() {
            // Nobody waiting is fine: the value is cached for them anyway.
            let _ = sender.send(outcome);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.registry.finish(&self.key, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn leader(claim: Claim) -> (Ticket, Pending) {
        match claim {
            Claim::Leader(t, p) => (t, p),
            Claim::Joined(_) => panic!("expected to lead"),
        }
    }

    /// The second caller joins; both see the leader's outcome; the key is free afterwards.
    #[tokio::test]
    async fn second_caller_joins_the_first() {
        let flights = Flights::default();
        let (ticket, first) = leader(flights.claim("k"));
        let Claim::Joined(second) = flights.claim("k") else {
            panic!("expected to join")
        };
        ticket.resolve(Ok(Cached::found(Bytes::from_static(b"v"), None)));
        assert_eq!(
            first.await.ok().and_then(|c| c.value).as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            second.await.ok().and_then(|c| c.value).as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.claim("k"), Claim::Leader(..)));
    }

    /// A dropped ticket fails its waiters instead of hanging them, and frees the key.
    #[tokio::test]
    async fn dropped_ticket_fails_waiters() {
        let flights = Flights::default();
        let (ticket, pending) = leader(flights.claim("k"));
        drop(ticket);
        assert!(matches!(pending.await, Err(Error::Internal(_))));
        assert_eq!(flights.len(), 0);
    }

    /// Invalidation cancels storing and detaches the flight; the old ticket cannot remove the
    /// new flight when it finishes.
    #[tokio::test]
    async fn invalidate_detaches_and_cancels() {
        let flights = Flights::default();
        let (old, _) = leader(flights.claim("k"));
        flights.invalidate("k");
        assert!(old.cancelled().load(Ordering::Acquire));
        let (new, _) = leader(flights.claim("k"));
        old.resolve(Ok(Cached::missing()));
        assert_eq!(
            flights.len(),
            1,
            "the new flight survives the old one's end"
        );
        assert!(!new.cancelled().load(Ordering::Acquire));
        new.resolve(Ok(Cached::missing()));
        assert_eq!(flights.len(), 0);
    }
}
