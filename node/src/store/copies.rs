//! Per-thread copies of the entries a thread reads again and again, so that a hit on a hot
//! key touches no memory another thread writes.
//!
//! A moka `get` clones the entry's shared handle, reads the clock, queues the read for the
//! eviction policy and, every so often, runs the policy's maintenance; with many readers
//! of one key on different cores, those shared writes bounce the same cache lines between
//! the cores. Serving one hot key over pipelined RESP on two cores, that was 38 % of the
//! node's CPU per GET (issue 18). A copy the reading thread owns costs a hash, a slot
//! compare and one load of a line that only writes change.
//!
//! **Never stale.** Each store keeps version stripes ([`Versions`]). Every change of a key
//! through the store (put, a load stored, delete, clear) bumps its key's stripe *after*
//! moka shows the change, and so does moka's eviction or expiry of an entry (the store's
//! eviction listener). A copy remembers the version its stripe had *before* the moka
//! read it was taken from, and is served only while the stripe still has that version and
//! the entry's deadline has not passed. So a read that starts after a write has finished
//! sees the bump and goes to moka; a copy taken while a write was in flight is dropped at
//! its next read.
//!
//! **Bounded.** [`SETS`] × [`WAYS`] slots per thread, values of at most [`MAX_VALUE`] bytes,
//! at most [`BUDGET`] bytes of keys and values per thread, outside every keyspace's
//! `max_bytes`. A key is copied only on its second read within a short window (a table of
//! recent hashes), so reads spread over many keys seldom copy anything. A copy gives way
//! to another key only once the other key's reads have worn its hit count down.
//!
//! **Still counted.** A copy's first [`COUNTED_FIRST`] hits, and then one in
//! [`SAMPLE_EVERY`], go to moka as if no copy existed, so the eviction policy keeps seeing
//! the key as read: TinyLFU's frequency sketch counts a key to 15 at most, so a key read
//! often enough to be copied still reaches that ceiling (and, should an eviction's bump ever be
//! missed, the copy is checked against moka then).

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Cached;

/// Version stripes per store; keys share a stripe by hash, and a write to one of them
/// drops the copies of all of them.
const STRIPES: usize = 1024;
/// Sets of the per-thread table, each of [`WAYS`] slots.
pub(crate) const SETS: usize = 256;
/// Slots per set.
pub(crate) const WAYS: usize = 2;
/// The largest value copied, in bytes.
pub(crate) const MAX_VALUE: usize = 4096;
/// The bytes of keys and values one thread's copies may hold.
pub(crate) const BUDGET: usize = 1 << 20;
/// One hit of a copy in this many is served by moka instead.
pub(crate) const SAMPLE_EVERY: u32 = 16;
/// The hits of a new copy that moka serves before the copy does (above the 15 at which
/// TinyLFU's frequency sketch stops counting).
pub(crate) const COUNTED_FIRST: u32 = 16;
/// Places in the table of recently read hashes that admits keys.
const RECENT: usize = 1024;

/// The version stripes of one store, and the hash that picks a key's stripe and slot.
///
/// The hash is foldhash, not the SipHash moka keeps: crafted keys that collide here only
/// share a stripe or a set of two slots, costing them their copies, never a longer search.
pub(crate) struct Versions {
    hasher: foldhash::fast::RandomState,
    stripes: Box<[AtomicU64]>,
}

impl Versions {
    pub fn new() -> Self {
        Versions {
            hasher: foldhash::fast::RandomState::default(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The hash of `key` for this store.
    #[inline]
    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The stripe of a key hashing to `hash` (its high bits; the table uses the low ones).
    #[inline]
    fn stripe(&self, hash: u64) -> &AtomicU64 {
        let index = (hash >> 32) as usize % self.stripes.len();
        &self.stripes[index]
    }

    /// The current version of `hash`'s stripe.
    #[inline]
    pub fn current(&self, hash: u64) -> u64 {
        self.stripe(hash).load(Ordering::Acquire)
    }

    /// Marks a change of a key hashing to `hash`, once moka shows it.
    pub fn bump(&self, hash: u64) {
        self.stripe(hash).fetch_add(1, Ordering::AcqRel);
    }

    /// Marks a change of every key.
    pub fn bump_all(&self) {
        for stripe in self.stripes.iter() {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// What the calling thread's copies say about a key.
pub(crate) enum Lookup {
    /// A current copy of the entry.
    Hit(Cached),
    /// Read moka; `keep` says whether to hand the result to [`keep`] afterwards.
    Miss { keep: bool },
}

/// The calling thread's copy of `key` of store `store` (hashing to `hash`), if it is
/// current by `versions`.
#[inline]
pub(crate) fn lookup(store: u64, hash: u64, key: &str, versions: &Versions) -> Lookup {
    let found = TABLE
        .try_with(|table| match table.try_borrow_mut() {
            Ok(mut table) => table
                .get_or_insert_with(Table::new)
                .lookup(store, hash, key, versions),
            Err(_) => Lookup::Miss { keep: false },
        })
        .unwrap_or(Lookup::Miss { keep: false });
    #[cfg(test)]
    if matches!(found, Lookup::Hit(_)) {
        SERVED.with(|served| served.set(served.get() + 1));
    }
    found
}

#[cfg(test)]
thread_local! {
    /// Hits the calling thread's copies served.
    static SERVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Hits the calling thread's copies have served (for tests).
#[cfg(test)]
pub(crate) fn served() -> u64 {
    SERVED.with(std::cell::Cell::get)
}

/// Hands the calling thread what moka answered for `key` after [`lookup`] said
/// `Miss { keep: true }`: `version` is the key's stripe version read before that moka read.
/// Stores, refreshes or drops the thread's copy accordingly.
pub(crate) fn keep(store: u64, hash: u64, key: &str, found: Option<&Cached>, version: u64) {
    // Nothing to do when the thread is exiting or (which cannot happen) the table is in use.
    let _ = TABLE.try_with(|table| {
        if let Ok(mut table) = table.try_borrow_mut() {
            table
                .get_or_insert_with(Table::new)
                .keep(store, hash, key, found, version);
        }
    });
}

thread_local! {
    /// The calling thread's copies, made on its first read.
    static TABLE: RefCell<Option<Box<Table>>> = const { RefCell::new(None) };
}

/// One copied entry.
struct Copy {
    store: u64,
    hash: u64,
    /// The stripe version read before the moka read this copy came from.
    version: u64,
    /// Hits since the copy was made (worn down by other keys wanting the slot).
    hits: u32,
    /// Hits moka has served since the copy was made, up to [`COUNTED_FIRST`].
    counted: u32,
    /// When the copy was made, by the table's count of copies made: of two copies without
    /// hits, the older gives way.
    made: u64,
    key: Box<str>,
    entry: Cached,
}

impl Copy {
    fn is(&self, store: u64, hash: u64, key: &str) -> bool {
        self.store == store && self.hash == hash && &*self.key == key
    }

    fn size(&self) -> usize {
        self.key.len() + self.entry.value_len()
    }
}

fn expired(entry: &Cached) -> bool {
    entry.expires_at.is_some_and(|at| Instant::now() >= at)
}

/// One thread's copies.
struct Table {
    /// Per set, the hash of each slot's copy (0: none), so that a read of a key without a
    /// copy touches one short line rather than the copies themselves.
    tags: Box<[[u64; WAYS]]>,
    sets: Box<[[Option<Copy>; WAYS]]>,
    /// The high halves of the hashes of keys read lately: a key is copied when its own is
    /// found in its place here.
    recent: Box<[u32]>,
    /// Bytes of keys and values held.
    bytes: usize,
    /// Copies made so far.
    made: u64,
}

impl Table {
    fn new() -> Box<Table> {
        Box::new(Table {
            tags: vec![[0; WAYS]; SETS].into_boxed_slice(),
            sets: (0..SETS).map(|_| [const { None }; WAYS]).collect(),
            recent: vec![0; RECENT].into_boxed_slice(),
            bytes: 0,
            made: 0,
        })
    }

    /// The set of a key hashing to `hash`.
    fn set_of(&self, hash: u64) -> usize {
        hash as usize % self.sets.len()
    }

    /// The slot of the copy of `key`, if the set holds one.
    fn way_of(&self, set: usize, store: u64, hash: u64, key: &str) -> Option<usize> {
        (0..WAYS).find(|&way| {
            self.tags[set][way] == hash
                && self.sets[set][way]
                    .as_ref()
                    .is_some_and(|copy| copy.is(store, hash, key))
        })
    }

    fn drop_copy(&mut self, set: usize, way: usize) {
        if let Some(copy) = self.sets[set][way].take() {
            self.bytes -= copy.size();
        }
        self.tags[set][way] = 0;
    }

    fn lookup(&mut self, store: u64, hash: u64, key: &str, versions: &Versions) -> Lookup {
        let set = self.set_of(hash);
        if let Some(way) = self.way_of(set, store, hash, key)
            && let Some(copy) = self.sets[set][way].as_mut()
        {
            if copy.version != versions.current(hash) || expired(&copy.entry) {
                self.drop_copy(set, way);
                return Lookup::Miss { keep: true };
            }
            // Wrapping past 0 would skip a sample; a count that wraps starts again at 1.
            copy.hits = copy.hits.wrapping_add(1).max(1);
            let counted = copy.counted < COUNTED_FIRST;
            if counted {
                copy.counted += 1;
            }
            return if counted || copy.hits % SAMPLE_EVERY == 0 {
                Lookup::Miss { keep: true }
            } else {
                Lookup::Hit(copy.entry.clone())
            };
        }
        let index = (hash >> 16) as usize % self.recent.len();
        let tag = (hash >> 32) as u32;
        let seen = std::mem::replace(&mut self.recent[index], tag) == tag;
        Lookup::Miss { keep: seen }
    }

    fn keep(&mut self, store: u64, hash: u64, key: &str, found: Option<&Cached>, version: u64) {
        let set = self.set_of(hash);
        if let Some(way) = self.way_of(set, store, hash, key)
            && let Some(copy) = self.sets[set][way].as_mut()
        {
            match found {
                // The copy is of the same version of the entry: nothing changed.
                Some(_) if copy.version == version => {}
                Some(entry) if entry.value_len() <= MAX_VALUE => {
                    let old = copy.size();
                    // A copy of its own, so that its reference count is not moka's.
                    copy.entry = entry.compacted();
                    copy.version = version;
                    self.bytes = self.bytes - old + copy.size();
                }
                _ => self.drop_copy(set, way),
            }
            return;
        }
        let Some(entry) = found else { return };
        let length = entry.value_len();
        if length > MAX_VALUE || expired(entry) {
            return;
        }
        // The slot with the fewest hits (an empty one has none) is taken if it has none;
        // every copy of the set, that one included, loses half its hits either way, so a
        // copy no longer read gives way after a few keys wanted its set.
        let copies = &mut self.sets[set];
        let Some(victim) =
            (0..WAYS).min_by_key(|&way| copies[way].as_ref().map_or((0, 0), |c| (c.hits, c.made)))
        else {
            return;
        };
        let free = copies[victim].as_ref().is_none_or(|c| c.hits == 0);
        for copy in copies.iter_mut().flatten() {
            copy.hits /= 2;
        }
        let freed = copies[victim].as_ref().map_or(0, Copy::size);
        let size = key.len() + length;
        if !free || self.bytes - freed + size > BUDGET {
            return;
        }
        self.drop_copy(set, victim);
        self.sets[set][victim] = Some(Copy {
            store,
            hash,
            version,
            hits: 0,
            counted: 0,
            made: self.made,
            key: key.into(),
            entry: entry.compacted(),
        });
        self.tags[set][victim] = hash;
        self.bytes += size;
        self.made += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry(value: &'static [u8]) -> Cached {
        Cached::found(Bytes::from_static(value), None)
    }

    /// Reads `key` as the store does: the copy, else `source` (which stands for moka).
    fn read(
        versions: &Versions,
        store: u64,
        key: &str,
        source: Option<&Cached>,
    ) -> (bool, Option<Cached>) {
        let hash = versions.hash(key);
        match lookup(store, hash, key, versions) {
            Lookup::Hit(c) => (true, Some(c)),
            Lookup::Miss { keep: copy } => {
                let version = versions.current(hash);
                if copy {
                    keep(store, hash, key, source, version);
                }
                (false, source.cloned())
            }
        }
    }

    /// Reads `key` until its copy serves the next read: twice to copy it, then the hits
    /// moka counts first.
    fn copy(versions: &Versions, store: u64, key: &str, value: &Cached) {
        for _ in 0..2 + COUNTED_FIRST {
            read(versions, store, key, Some(value));
        }
    }

    /// The first read of a key copies nothing, the second copies it, the next
    /// `COUNTED_FIRST` go to moka, and the one after is a hit.
    #[test]
    fn a_key_read_twice_is_copied() {
        let versions = Versions::new();
        let value = entry(b"v1");
        for _ in 0..2 + COUNTED_FIRST {
            assert!(!read(&versions, 1, "k", Some(&value)).0);
        }
        let (hit, got) = read(&versions, 1, "k", Some(&value));
        assert!(hit);
        let got = got.and_then(|c| c.value).expect("a value");
        assert_eq!(got, value.value.clone().expect("a value"));
        assert_ne!(
            got.as_ptr(),
            value.value.as_ref().map(|v| v.as_ptr()).unwrap_or_default()
        );
        // Another store's key of the same name is not this copy.
        assert!(!read(&versions, 2, "k", Some(&value)).0);
    }

    /// A bump of the key's stripe drops the copy at once; so does bumping every stripe.
    #[test]
    fn a_bump_drops_the_copy() {
        let versions = Versions::new();
        let (old, new) = (entry(b"old"), entry(b"new"));
        copy(&versions, 3, "k", &old);
        assert!(read(&versions, 3, "k", Some(&old)).0);
        versions.bump(versions.hash("k"));
        let (hit, got) = read(&versions, 3, "k", Some(&new));
        assert!(!hit);
        assert_eq!(got.and_then(|c| c.value).as_deref(), Some(&b"new"[..]));
        for _ in 0..COUNTED_FIRST {
            assert!(!read(&versions, 3, "k", Some(&new)).0);
        }
        let (hit, got) = read(&versions, 3, "k", Some(&new));
        assert!(hit, "the new value is copied again");
        assert_eq!(got.and_then(|c| c.value).as_deref(), Some(&b"new"[..]));
        versions.bump_all();
        assert!(!read(&versions, 3, "k", None).0);
        assert!(
            !read(&versions, 3, "k", None).0,
            "a key moka lacks is not copied"
        );
    }

    /// A copy taken while a write was in flight (its version read before the bump) is
    /// never served.
    #[test]
    fn a_copy_older_than_a_bump_is_not_served() {
        let versions = Versions::new();
        let hash = versions.hash("k");
        read(&versions, 4, "k", Some(&entry(b"old")));
        let Lookup::Miss { keep: true } = lookup(4, hash, "k", &versions) else {
            panic!("the second read should copy");
        };
        let before = versions.current(hash);
        versions.bump(hash);
        keep(4, hash, "k", Some(&entry(b"old")), before);
        assert!(!read(&versions, 4, "k", Some(&entry(b"new"))).0);
    }

    /// One hit in `SAMPLE_EVERY` goes to moka, and a key moka no longer has is dropped then.
    #[test]
    fn hits_are_sampled_and_evictions_seen() {
        let versions = Versions::new();
        let value = entry(b"v");
        copy(&versions, 5, "k", &value);
        let misses = (0..SAMPLE_EVERY * 4)
            .filter(|_| !read(&versions, 5, "k", Some(&value)).0)
            .count();
        assert_eq!(misses, 4);
        let mut served = 0;
        while read(&versions, 5, "k", None).0 {
            served += 1;
            assert!(served < SAMPLE_EVERY, "the evicted entry was still served");
        }
        assert!(!read(&versions, 5, "k", None).0);
    }

    /// A hit count that wraps keeps sampling.
    #[test]
    fn sampling_survives_a_wrapping_count() {
        let versions = Versions::new();
        let value = entry(b"v");
        copy(&versions, 9, "k", &value);
        TABLE.with(|t| {
            for copy in t
                .borrow_mut()
                .iter_mut()
                .flat_map(|t| t.sets.iter_mut())
                .flatten()
                .flatten()
            {
                if copy.store == 9 {
                    copy.hits = u32::MAX - 2;
                }
            }
        });
        let misses = (0..SAMPLE_EVERY * 3)
            .filter(|_| !read(&versions, 9, "k", Some(&value)).0)
            .count();
        assert_eq!(misses, 2);
    }

    /// An expired copy is not served.
    #[test]
    fn expired_copies_are_not_served() {
        let versions = Versions::new();
        let soon = Cached::found(
            Bytes::from_static(b"v"),
            Some(Instant::now() + Duration::from_millis(20)),
        );
        copy(&versions, 6, "k", &soon);
        assert!(read(&versions, 6, "k", Some(&soon)).0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < soon.expires_at.unwrap_or(deadline) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!read(&versions, 6, "k", None).0);
    }

    /// Large values are not copied, and a thread never holds more than its budget.
    #[test]
    fn copies_stay_within_bounds() {
        let versions = Versions::new();
        let large = Cached::found(Bytes::from(vec![1u8; MAX_VALUE + 1]), None);
        for _ in 0..4 {
            assert!(!read(&versions, 7, "large", Some(&large)).0);
        }
        let value = Cached::found(Bytes::from(vec![2u8; MAX_VALUE]), None);
        for i in 0..SETS * WAYS * 2 {
            let key = format!("key-{i}");
            copy(&versions, 7, &key, &value);
        }
        let held = TABLE.with(|t| t.borrow().as_ref().map_or(0, |t| t.bytes));
        let counted = TABLE.with(|t| {
            t.borrow().as_ref().map_or(0, |t| {
                t.sets
                    .iter()
                    .flatten()
                    .flatten()
                    .map(Copy::size)
                    .sum::<usize>()
            })
        });
        assert_eq!(held, counted);
        let tagged = TABLE.with(|t| {
            t.borrow().as_ref().is_some_and(|t| {
                let slots = t.tags.iter().flatten().zip(t.sets.iter().flatten());
                slots
                    .into_iter()
                    .all(|(tag, copy)| copy.as_ref().map_or(*tag == 0, |c| c.hash == *tag))
            })
        });
        assert!(tagged, "a tag does not match its slot");
        assert!(held <= BUDGET, "holds {held} bytes");
        assert!(held >= BUDGET / 2, "holds only {held} bytes");
    }

    /// A held copy with hits is not pushed out by one read of another key, but gives way
    /// once reads of other keys have worn its hits down.
    #[test]
    fn hot_copies_hold_their_slot() {
        let versions = Versions::new();
        let value = entry(b"v");
        for _ in 0..10 + COUNTED_FIRST {
            read(&versions, 8, "hot", Some(&value));
        }
        let hash = versions.hash("hot");
        let read_twice = |key: &str| {
            for _ in 0..2 {
                read(&versions, 8, key, Some(&value));
            }
        };
        // Keys of the same set, each read twice: enough to fill the other way and then
        // wear the hot key down.
        let rivals: Vec<String> = (0..100_000)
            .map(|i| format!("rival-{i}"))
            .filter(|k| versions.hash(k) as usize % SETS == hash as usize % SETS)
            .take(40)
            .collect();
        for rival in &rivals[..2] {
            read_twice(rival);
        }
        assert!(
            read(&versions, 8, "hot", Some(&value)).0,
            "one rival pushed it out"
        );
        for rival in &rivals {
            read_twice(rival);
        }
        assert!(
            !read(&versions, 8, "hot", Some(&value)).0,
            "the rivals never wore the unread copy down"
        );
    }
}
