//! The load bound of one keyspace on one node: at most `max_concurrent_loads` data-source
//! calls at once, at most `max_queued_loads` keys waiting for one, and no wait longer than
//! the keyspace's `read_timeout`. What does not fit is refused at once with
//! [`Error::Overloaded`], so a source slower than the arrival rate costs a bounded number of
//! tasks, keys and source connections, never a queue that grows until memory runs out.
//!
//! A gate is asked once per new load (a single-flight leader), never by the readers that join
//! a load already running, and never on the cache-hit path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::units::format_duration;

/// The call slots and the waiting room of one keyspace.
#[derive(Clone)]
pub(crate) struct LoadGate(Arc<Shared>);

struct Shared {
    keyspace: String,
    slots: Arc<Semaphore>,
    max_running: usize,
    /// Keys admitted to wait for a slot and still waiting.
    queued: AtomicUsize,
    max_queued: usize,
}

/// What an admitted load holds until its data-source call starts.
pub(crate) enum Pass {
    /// A call slot, taken at admission: the call may start at once.
    Running(OwnedSemaphorePermit),
    /// Places in the waiting room for this many keys.
    Queued(Waiting),
}

/// Keys waiting for a slot; leaving the room (slot granted, timed out, or abandoned) frees
/// their places.
pub(crate) struct Waiting {
    gate: LoadGate,
    keys: usize,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.gate.0.queued.fetch_sub(self.keys, Ordering::AcqRel);
    }
}

impl LoadGate {
    /// The gate of `keyspace`: `max_running` calls at once (at least one), `max_queued` keys
    /// waiting.
    pub fn new(keyspace: &str, max_running: usize, max_queued: usize) -> LoadGate {
        let max_running = max_running.clamp(1, Semaphore::MAX_PERMITS);
        LoadGate(Arc::new(Shared {
            keyspace: keyspace.to_owned(),
            slots: Arc::new(Semaphore::new(max_running)),
            max_running,
            queued: AtomicUsize::new(0),
            max_queued,
        }))
    }

    /// Admits a load of `keys` keys made by one data-source call: with a free slot, all of
    /// them; else as many as the waiting room still holds (the first ones). Returns the pass
    /// and how many keys it covers; `None` when none fit.
    pub fn admit(&self, keys: usize) -> Option<(Pass, usize)> {
        if keys == 0 {
            return None;
        }
        if let Ok(slot) = Arc::clone(&self.0.slots).try_acquire_owned() {
            return Some((Pass::Running(slot), keys));
        }
        let shared = &self.0;
        let mut queued = shared.queued.load(Ordering::Acquire);
        loop {
            let room = shared.max_queued.saturating_sub(queued);
            let taken = keys.min(room);
            if taken == 0 {
                return None;
            }
            match shared.queued.compare_exchange_weak(
                queued,
                queued + taken,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let waiting = Waiting {
                        gate: self.clone(),
                        keys: taken,
                    };
                    return Some((Pass::Queued(waiting), taken));
                }
                Err(now) => queued = now,
            }
        }
    }

    /// The error of a load the gate refused at admission.
    pub fn refusal(&self) -> Error {
        let s = &self.0;
        Error::Overloaded(format!(
            "keyspace `{}` has {} data-source calls running and {} keys waiting \
             (max_concurrent_loads {}, max_queued_loads {})",
            s.keyspace,
            self.running(),
            self.queued(),
            s.max_running,
            s.max_queued
        ))
    }

    /// Data-source calls running now.
    pub fn running(&self) -> usize {
        self.0
            .max_running
            .saturating_sub(self.0.slots.available_permits())
    }

    /// Keys waiting for a call now.
    pub fn queued(&self) -> usize {
        self.0.queued.load(Ordering::Acquire)
    }
}

impl Pass {
    /// The call slot: at once for a running pass, else the first slot that frees within
    /// `wait` (slots go to waiters in arrival order). A slot that does not free in time is an
    /// [`Error::Overloaded`].
    pub async fn slot(self, wait: Duration) -> Result<OwnedSemaphorePermit> {
        match self {
            Pass::Running(slot) => Ok(slot),
            Pass::Queued(waiting) => {
                let gate = waiting.gate.clone();
                let slots = Arc::clone(&gate.0.slots);
                let granted = tokio::time::timeout(wait, slots.acquire_owned()).await;
                drop(waiting);
                match granted {
                    Ok(Ok(slot)) => Ok(slot),
                    // The semaphore is never closed; say what happened if it ever is.
                    Ok(Err(_)) => Err(Error::Internal(format!(
                        "the load slots of keyspace `{}` were closed",
                        gate.0.keyspace
                    ))),
                    Err(_) => Err(Error::Overloaded(format!(
                        "keyspace `{}`: no data-source call slot freed within {} \
                         (max_concurrent_loads {})",
                        gate.0.keyspace,
                        format_duration(wait),
                        gate.0.max_running
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Free slots admit whole batches; then the waiting room fills key by key, a batch that
    /// does not fit is admitted in part, and a full room refuses.
    #[tokio::test]
    async fn admits_up_to_the_slots_and_the_room() {
        let gate = LoadGate::new("ks", 2, 3);
        let (a, n) = gate.admit(5).expect("a free slot");
        assert!(matches!(a, Pass::Running(_)));
        assert_eq!(n, 5);
        let (_b, _) = gate.admit(1).expect("the second slot");
        assert_eq!(gate.running(), 2);
        let (c, n) = gate.admit(2).expect("room for two");
        assert!(matches!(c, Pass::Queued(_)));
        assert_eq!((n, gate.queued()), (2, 2));
        let (_d, n) = gate.admit(4).expect("room for one more");
        assert_eq!((n, gate.queued()), (1, 3));
        assert!(gate.admit(1).is_none(), "the room is full");
        assert!(matches!(gate.refusal(), Error::Overloaded(m) if m.contains("`ks`")));
        drop(c);
        assert_eq!(gate.queued(), 1, "a dropped pass leaves the room");
    }

    /// A waiting pass gets the slot another load frees, and leaves the room when it does.
    #[tokio::test]
    async fn a_waiting_pass_gets_the_next_slot() {
        let gate = LoadGate::new("ks", 1, 1);
        let (Pass::Running(first), _) = gate.admit(1).expect("slot") else {
            panic!("expected a slot")
        };
        let (second, _) = gate.admit(1).expect("room");
        let waiter = tokio::spawn(second.slot(Duration::from_secs(10)));
        drop(first);
        let slot = waiter.await.expect("task").expect("a slot");
        assert_eq!((gate.running(), gate.queued()), (1, 0));
        drop(slot);
        assert_eq!(gate.running(), 0);
    }

    /// A pass that waits longer than its deadline is refused and leaves the room.
    #[tokio::test(start_paused = true)]
    async fn a_wait_past_its_deadline_is_overloaded() {
        let gate = LoadGate::new("ks", 1, 1);
        let (_held, _) = gate.admit(1).expect("slot");
        let (waiting, _) = gate.admit(1).expect("room");
        let err = waiting
            .slot(Duration::from_millis(50))
            .await
            .expect_err("no slot frees");
        assert!(
            matches!(err, Error::Overloaded(ref m) if m.contains("50ms")),
            "{err}"
        );
        assert_eq!(gate.queued(), 0);
    }
}
