//! The order of an owner's writes of one key, in a keyspace with replicas: a put stores its
//! value here and on the key's replica, and two writes of a key that overlapped must reach
//! the replica in the order they were applied here, or the two nodes would end up holding
//! different values. Writes of a key take its stripe's lock from their store (or removal) to
//! the replica's confirmation, and so does a read repair from asking the replica to keeping
//! its answer: a repair never brings back a value that a delete in progress is removing
//! from the replica. Keys share one of [`STRIPES`] locks by hash, and a batch takes its
//! stripes in ascending order, so two batches never wait on each other in a circle.

use tokio::sync::{Mutex, MutexGuard};

/// How many locks the keys share.
const STRIPES: usize = 64;

/// Striped per-key write locks.
pub(crate) struct WriteOrder {
    stripes: Vec<Mutex<()>>,
}

impl Default for WriteOrder {
    fn default() -> Self {
        WriteOrder {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl WriteOrder {
    /// Holds the locks of every key in `keys` (of `keyspace`) until the guards are dropped.
    pub(crate) async fn lock<'a, K: AsRef<str>>(
        &'a self,
        keyspace: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<MutexGuard<'a, ()>> {
        let mut stripes: Vec<usize> = keys
            .into_iter()
            .map(|k| (crate::ring::key_hash(keyspace, k.as_ref()) % STRIPES as u64) as usize)
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A key's lock is held until its guard drops; a key listed twice takes its lock once.
    #[tokio::test]
    async fn a_key_waits_for_the_write_before_it() {
        let order = WriteOrder::default();
        let first = order.lock("ks", ["a", "b"]).await;
        let second = tokio::time::timeout(Duration::from_millis(50), order.lock("ks", ["b"]));
        assert!(second.await.is_err(), "b is held by the first batch");
        drop(first);
        let again = tokio::time::timeout(Duration::from_secs(5), order.lock("ks", ["b", "b"]))
            .await
            .expect("free once the first batch is done");
        assert_eq!(again.len(), 1, "one stripe for one key");
    }
}
