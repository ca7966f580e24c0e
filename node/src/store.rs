//! One byte-weighed cache of a keyspace (main or hot), on moka.
//!
//! An entry weighs what it really costs: `len(key) + len(value)` plus [`ENTRY_OVERHEAD`] bytes
//! of bookkeeping (moka's entry, its queue and timer nodes, the key's and value's headers), so
//! `max_bytes` bounds the memory a keyspace takes, small values included, once moka's
//! maintenance has run. A stored value owns an allocation of exactly its length: a value that
//! arrived as a slice of a larger buffer (a request read buffer, a decoded batch) is copied,
//! so a 16-byte value can never keep kilobytes of someone else's buffer alive. Each entry carries its own deadline,
//! which moka's per-entry expiry honours. A remembered not-found is an entry without a value.
//! Writes go through moka's per-key compute so that a put or delete and a finishing load of the
//! same key are ordered, never interleaved. A thread that reads a key again and again is
//! answered from its own copy of the entry (`store/copies.rs`), which every write and every
//! eviction of the key makes stale at once.

mod copies;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;

use crate::spec::Eviction;
use copies::{Lookup, Versions};

/// Bytes an entry costs beyond its key and value: moka's entry record, access-order and
/// timer-wheel nodes, hash-table slot and frequency-sketch share, the key's `String` and the
/// value's `Bytes` headers, and the allocator's rounding. Measured by the `memory` test,
/// which fails when the real cost outgrows this figure.
pub const ENTRY_OVERHEAD: usize = 384;

/// A cached answer: a value, or a remembered not-found.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    /// `None` is a negative entry (the source said not found).
    pub value: Option<Bytes>,
    /// When the entry stops being served; `None` lives until evicted.
    pub expires_at: Option<Instant>,
}

impl Cached {
    /// A found value expiring at `expires_at`.
    pub fn found(value: Bytes, expires_at: Option<Instant>) -> Self {
        Cached {
            value: Some(value),
            expires_at,
        }
    }

    /// A not-found answer (not to be stored unless negative caching is on).
    pub fn missing() -> Self {
        Cached {
            value: None,
            expires_at: None,
        }
    }

    /// Time left before the entry expires (`None`: never).
    pub fn remaining(&self) -> Option<Duration> {
        self.expires_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Bytes of the value (0 for a not-found).
    pub fn value_len(&self) -> usize {
        self.value.as_ref().map_or(0, Bytes::len)
    }

    fn weight(key: &str, value: &Cached) -> u32 {
        let len = ENTRY_OVERHEAD + key.len() + value.value_len();
        u32::try_from(len).unwrap_or(u32::MAX)
    }

    /// This entry with its value in an allocation of its own, exactly as long as the value
    /// (so it pins no larger buffer, and shares no reference count with another copy).
    fn compacted(&self) -> Cached {
        Cached {
            value: self.value.as_deref().map(Bytes::copy_from_slice),
            expires_at: self.expires_at,
        }
    }

    /// Weight of this entry under `key`, in bytes.
    pub fn weight_with(&self, key: &str) -> u64 {
        u64::from(Cached::weight(key, self))
    }
}

struct PerEntryExpiry;

impl PerEntryExpiry {
    fn remaining(value: &Cached, now: Instant) -> Option<Duration> {
        value
            .expires_at
            .map(|deadline| deadline.saturating_duration_since(now))
    }
}

impl Expiry<String, Cached> for PerEntryExpiry {
    fn expire_after_create(&self, _key: &String, value: &Cached, now: Instant) -> Option<Duration> {
        PerEntryExpiry::remaining(value, now)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Cached,
        now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        PerEntryExpiry::remaining(value, now)
    }
}

/// A byte-bounded cache of one keyspace.
pub(crate) struct Store {
    cache: Cache<String, Cached>,
    capacity: u64,
    /// Names this store in threads' copies.
    id: u64,
    /// Bumped by every write and eviction, so threads' copies of what changed are not
    /// served.
    versions: Arc<Versions>,
}

/// The id the next store takes.
static NEXT_STORE: AtomicU64 = AtomicU64::new(1);

impl Store {
    /// A cache holding at most `capacity` bytes, evicting by `eviction`.
    pub fn new(capacity: u64, eviction: Eviction) -> Store {
        let policy = match eviction {
            Eviction::TinyLfu => EvictionPolicy::tiny_lfu(),
            Eviction::Lru => EvictionPolicy::lru(),
        };
        let versions = Arc::new(Versions::new());
        let evicted = Arc::clone(&versions);
        let cache = Cache::builder()
            .max_capacity(capacity)
            .weigher(|key: &String, value: &Cached| Cached::weight(key, value))
            .expire_after(PerEntryExpiry)
            .eviction_policy(policy)
            // Writes bump their own keys; moka's evictions and expiries are bumped here, so
            // an evicted entry's copies are not served either.
            .eviction_listener(move |key: Arc<String>, _, cause: RemovalCause| {
                if cause.was_evicted() {
                    evicted.bump(evicted.hash(&key));
                }
            })
            .build();
        Store {
            cache,
            capacity,
            id: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            versions,
        }
    }

    /// Bytes this cache may hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// True when an entry of this weight can be held at all.
    pub fn fits(&self, key: &str, value: &Cached) -> bool {
        value.weight_with(key) <= self.capacity
    }

    /// The live entry for `key`, if any: the calling thread's copy when it has a current
    /// one, else moka's entry.
    #[inline]
    pub async fn get(&self, key: &str) -> Option<Cached> {
        let hash = self.versions.hash(key);
        match copies::lookup(self.id, hash, key, &self.versions) {
            Lookup::Hit(copy) => Some(copy),
            Lookup::Miss { keep: false } => self.cache.get(key).await,
            Lookup::Miss { keep: true } => {
                // Read before moka: a write that lands in between leaves the copy stale.
                let version = self.versions.current(hash);
                let found = self.cache.get(key).await;
                copies::keep(self.id, hash, key, found.as_ref(), version);
                found
            }
        }
    }

    /// Stores `value` if `store` (asked under the key's lock, so ordered with every other
    /// write of the key, and told whether a live entry is there) says so, and the entry fits.
    /// Returns whether it was stored.
    async fn put_if(&self, key: &str, value: Cached, store: impl FnOnce(bool) -> bool) -> bool {
        if !self.fits(key, &value) {
            return false;
        }
        let value = value.compacted();
        let stored = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|existing| async move {
                if store(existing.is_some()) {
                    Op::Put(value)
                } else {
                    Op::Nop
                }
            })
            .await;
        let stored = matches!(
            stored,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        );
        if stored {
            self.versions.bump(self.versions.hash(key));
        }
        stored
    }

    /// Stores `value` unless `cancelled` is set when the per-key lock is held. Returns whether
    /// it was stored.
    pub async fn insert_unless(&self, key: &str, value: Cached, cancelled: &AtomicBool) -> bool {
        self.put_if(key, value, |_| !cancelled.load(Ordering::Acquire))
            .await
    }

    /// Stores `value`, replacing what was there. Returns false when it is too large to hold.
    pub async fn insert(&self, key: &str, value: Cached) -> bool {
        self.put_if(key, value, |_| true).await
    }

    /// Stores `value` unless `key` already has a live entry or `allowed` (asked under the
    /// key's lock) says no; returns whether it was stored.
    pub async fn insert_if_absent(
        &self,
        key: &str,
        value: Cached,
        allowed: impl FnOnce() -> bool,
    ) -> bool {
        self.put_if(key, value, |exists| !exists && allowed()).await
    }

    /// The live entries with a value (not the remembered not-founds) whose key `keep`
    /// accepts. Values are shared, not copied.
    pub fn entries_where(&self, keep: impl Fn(&str) -> bool) -> Vec<(Arc<String>, Cached)> {
        self.cache
            .iter()
            .filter(|(key, value)| value.value.is_some() && keep(key))
            .collect()
    }

    /// Removes `key`; returns whether a live entry was there.
    pub async fn remove(&self, key: &str) -> bool {
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|_| async { Op::Remove })
            .await;
        // Bumped even when moka had nothing: a thread may hold a copy moka has evicted.
        self.versions.bump(self.versions.hash(key));
        matches!(result, CompResult::Removed(_))
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.versions.bump_all();
    }

    /// Runs moka's pending maintenance (evictions, expirations) so sizes are exact.
    pub async fn settle(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Bytes held (exact after [`settle`](Self::settle)).
    pub fn bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Entries held (exact after [`settle`](Self::settle)).
    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// A shared flag that a writer sets to stop a load in flight from storing its result.
pub(crate) type CancelFlag = Arc<AtomicBool>;

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &'static [u8]) -> Cached {
        Cached {
            value: Some(Bytes::from_static(v)),
            expires_at: None,
        }
    }

    /// The cache never holds more bytes than its capacity once maintenance ran.
    #[tokio::test]
    async fn stays_within_capacity() {
        let store = Store::new(10_000, Eviction::TinyLfu);
        for i in 0..200 {
            store.insert(&format!("key-{i:03}"), value(&[7; 50])).await;
        }
        store.settle().await;
        assert!(store.bytes() <= 10_000, "holds {} bytes", store.bytes());
        assert!(store.entries() > 0);
    }

    /// A value larger than the whole cache is refused instead of flushing everything else.
    #[tokio::test]
    async fn refuses_entries_larger_than_capacity() {
        let store = Store::new(ENTRY_OVERHEAD as u64 + 10, Eviction::Lru);
        assert!(store.insert("small", value(b"v")).await);
        assert!(!store.insert("big", value(&[0; 64])).await);
        assert!(store.get("big").await.is_none());
        assert!(store.get("small").await.is_some());
    }

    /// Per-entry deadlines expire entries individually.
    #[tokio::test]
    async fn entries_expire_at_their_own_deadline() {
        let store = Store::new(1000, Eviction::TinyLfu);
        let soon = Cached {
            value: Some(Bytes::from_static(b"x")),
            expires_at: Some(Instant::now() + Duration::from_millis(30)),
        };
        store.insert("soon", soon).await;
        store.insert("never", value(b"y")).await;
        assert!(store.get("soon").await.is_some());
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.get("soon").await.is_some() {
            assert!(Instant::now() < deadline, "entry did not expire");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(store.get("never").await.is_some());
    }

    /// A replaced entry takes the new entry's deadline, not the old one's.
    #[tokio::test]
    async fn update_takes_new_deadline() {
        let store = Store::new(1000, Eviction::TinyLfu);
        let soon = Cached {
            value: Some(Bytes::from_static(b"x")),
            expires_at: Some(Instant::now() + Duration::from_millis(20)),
        };
        let witness = soon.clone();
        store.insert("k", soon).await;
        store.insert("k", value(b"y")).await;
        // The witness shares the old deadline: once it is gone, that deadline has passed.
        store.insert("witness", witness).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.get("witness").await.is_some() {
            assert!(Instant::now() < deadline, "witness did not expire");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = store.get("k").await.expect("still there");
        assert_eq!(got.value.as_deref(), Some(&b"y"[..]));
    }

    /// A value sliced out of a larger buffer is stored in an allocation of its own length,
    /// and its weight counts the bookkeeping (issue 12: slices pinned whole read buffers).
    #[tokio::test]
    async fn stored_values_do_not_pin_their_source_buffer() {
        let store = Store::new(1 << 20, Eviction::TinyLfu);
        let buffer = Bytes::from(vec![1u8; 8192]);
        let slice = buffer.slice(100..116);
        store.insert("k", Cached::found(slice.clone(), None)).await;
        let stored = store.get("k").await.and_then(|c| c.value).expect("stored");
        assert_eq!(stored, slice);
        let range = buffer.as_ptr_range();
        assert!(
            !range.contains(&stored.as_ptr()),
            "the stored value still points into the 8 KiB buffer"
        );
        store.settle().await;
        assert_eq!(store.bytes(), (ENTRY_OVERHEAD + 1 + 16) as u64);
    }

    /// A read that starts after a write has finished sees that write, on every thread,
    /// while threads answer the key from their own copies between writes.
    #[test]
    fn reads_after_a_write_see_it_on_every_thread() {
        const WRITES: u64 = 500;
        const READERS: usize = 3;
        let store = Arc::new(Store::new(1 << 20, Eviction::TinyLfu));
        let written = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
        };
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (store, written, reads) = (store.clone(), written.clone(), reads.clone());
                std::thread::spawn(move || {
                    runtime().block_on(async {
                        loop {
                            let floor = written.load(Ordering::Acquire);
                            let got = store.get("k").await.and_then(|c| c.value);
                            let got: u64 = got
                                .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
                                .unwrap_or(0);
                            assert!(got >= floor, "read {got} after write {floor} had finished");
                            reads.fetch_add(1, Ordering::Release);
                            if floor == WRITES {
                                return copies::served();
                            }
                        }
                    })
                })
            })
            .collect();
        runtime().block_on(async {
            for n in 1..=WRITES {
                store
                    .insert("k", Cached::found(Bytes::from(n.to_string()), None))
                    .await;
                written.store(n, Ordering::Release);
                if n == WRITES {
                    break;
                }
                // Let every reader read the value a few times, so they copy it.
                let each = u64::from(2 + copies::COUNTED_FIRST + 8);
                let target = reads.load(Ordering::Acquire) + each * READERS as u64;
                let deadline = Instant::now() + Duration::from_secs(10);
                while reads.load(Ordering::Acquire) < target {
                    assert!(Instant::now() < deadline, "the readers stopped reading");
                    std::thread::yield_now();
                }
            }
        });
        let served: u64 = readers
            .into_iter()
            .map(|reader| reader.join().expect("a reader failed"))
            .sum();
        assert!(served > WRITES, "copies served only {served} reads");
    }

    /// An entry moka evicts is not served from a copy.
    #[tokio::test]
    async fn evicted_entries_are_not_served_from_copies() {
        let store = Store::new(ENTRY_OVERHEAD as u64 * 8, Eviction::Lru);
        store.insert("first", value(b"v")).await;
        let before = copies::served();
        for _ in 0..3 + copies::COUNTED_FIRST {
            assert!(store.get("first").await.is_some());
        }
        assert_eq!(copies::served(), before + 1, "the last read was not a copy");
        for i in 0..64 {
            store.insert(&format!("other-{i}"), value(b"v")).await;
            store.settle().await;
        }
        assert!(
            store.get("first").await.is_none(),
            "an evicted entry was served"
        );
    }

    /// Removing or clearing makes every thread's copy stale at once.
    #[tokio::test]
    async fn removal_and_clear_drop_copies() {
        let store = Store::new(1 << 20, Eviction::TinyLfu);
        for key in ["a", "b"] {
            store.insert(key, value(b"v")).await;
            for _ in 0..2 + copies::COUNTED_FIRST {
                assert!(store.get(key).await.is_some());
            }
        }
        let before = copies::served();
        assert!(store.get("a").await.is_some());
        assert_eq!(copies::served(), before + 1, "the copy was not used");
        store.remove("a").await;
        assert!(store.get("a").await.is_none());
        store.clear();
        assert!(store.get("b").await.is_none());
    }

    /// A cancelled load does not store; an uncancelled one does.
    #[tokio::test]
    async fn insert_unless_respects_cancellation() {
        let store = Store::new(1000, Eviction::TinyLfu);
        let cancelled = AtomicBool::new(true);
        assert!(!store.insert_unless("k", value(b"old"), &cancelled).await);
        assert!(store.get("k").await.is_none());
        cancelled.store(false, Ordering::Release);
        assert!(store.insert_unless("k", value(b"new"), &cancelled).await);
        assert!(store.remove("k").await);
        assert!(!store.remove("k").await);
    }
}
