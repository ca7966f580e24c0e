//! Hot-key tracking with bounded memory: a count-min sketch of reads, aged by halving, and a
//! bounded set of candidate keys.
//!
//! Every read adds one to the key's four sketch counters. The four live in one 64-byte block
//! chosen by the key's hash, and are bumped with plain relaxed load and store, so a read costs
//! one hash, one cache line, no lock and no locked instruction: the hit path stays within a few
//! nanoseconds of a plain cache lookup, at the price of a count lost now and then when two
//! threads bump the same block at once. Whether a key may join the candidate set is checked on
//! every miss and on one hit in sixteen; a key not clearly hotter (by an eighth) than the
//! coldest candidate of a full set is turned away without taking the lock. Counts reported are the sketch's estimates:
//! collisions may add a little, lost bumps take a little away.
//! `age` halves every counter, so what was hot an hour ago fades. Memory: one 64-byte block per
//! candidate slot (rounded up to a power of two), plus at most `capacity` candidate keys.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// Counters per block: 32 × 2 bytes, one cache line.
const PER_BLOCK: usize = 32;
/// Counters stop a little below the top, so concurrent increments never wrap.
const SATURATED: u16 = u16::MAX - 64;

#[repr(align(64))]
struct Block([AtomicU16; PER_BLOCK]);

/// Hot keys of one keyspace.
pub(crate) struct HotKeys {
    blocks: Vec<Block>,
    mask: u64,
    capacity: usize,
    candidates: Mutex<HashSet<String>>,
    /// Estimate of the coldest candidate when the set is full (0 while it is not).
    floor: AtomicU32,
}

/// How much hotter than the coldest candidate (`floor`) a key must be to replace it.
#[inline]
fn margin(floor: u32) -> u32 {
    floor / 8
}

thread_local! {
    /// Seeded on first use from the standard library's per-process random hash keys, so nodes
    /// (and threads) draw different numbers.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A cheap per-thread random number (xorshift), for sampling and jitter.
pub(crate) fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            use std::hash::{BuildHasher, Hasher};
            x = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

impl HotKeys {
    /// A tracker able to report `max_hot_keys` keys (it keeps four times as many candidates).
    pub fn new(max_hot_keys: usize) -> Self {
        let capacity = (max_hot_keys.max(1) * 4).max(64);
        let blocks = capacity.next_power_of_two();
        HotKeys {
            blocks: (0..blocks)
                .map(|_| Block(std::array::from_fn(|_| AtomicU16::new(0))))
                .collect(),
            mask: blocks as u64 - 1,
            capacity,
            candidates: Mutex::new(HashSet::new()),
            floor: AtomicU32::new(0),
        }
    }

    /// The key's block and its four counters there.
    #[inline]
    fn cells(&self, key: &str) -> (&Block, [usize; 4]) {
        let h = xxh3_64(key.as_bytes());
        let block = &self.blocks[(h & self.mask) as usize];
        let mut idx = [0; 4];
        for (i, slot) in idx.iter_mut().enumerate() {
            *slot = ((h >> (32 + 5 * i)) as usize) % PER_BLOCK;
        }
        (block, idx)
    }

    /// The estimated reads of `key` (since the last agings).
    pub fn estimate(&self, key: &str) -> u32 {
        let (block, idx) = self.cells(key);
        idx.iter()
            .map(|i| u32::from(block.0[*i].load(Ordering::Relaxed)))
            .min()
            .unwrap_or(0)
    }

    /// Counts one read of `key`; `miss` reads always check admission, hits one in sixteen.
    #[inline]
    pub fn record(&self, key: &str, miss: bool) {
        let (block, idx) = self.cells(key);
        let mut estimate = u32::MAX;
        for i in idx {
            let cell = &block.0[i];
            let v = cell.load(Ordering::Relaxed);
            if v < SATURATED {
                // A plain store, not a read-modify-write: two threads counting the same cell at
                // once may lose one of the two counts, which an estimate can afford, and the
                // hit path does not pay for a locked instruction.
                cell.store(v + 1, Ordering::Relaxed);
            }
            estimate = estimate.min(u32::from(v) + 1);
        }
        let floor = self.floor.load(Ordering::Relaxed);
        if (miss || random() & 15 == 0) && estimate > floor + margin(floor) {
            self.admit(key, estimate);
        }
    }

    fn admit(&self, key: &str, estimate: u32) {
        let mut candidates = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        if candidates.contains(key) {
            return;
        }
        if candidates.len() < self.capacity {
            candidates.insert(key.to_owned());
            if candidates.len() == self.capacity {
                let floor = candidates.iter().map(|k| self.estimate(k)).min();
                self.floor.store(floor.unwrap_or(0), Ordering::Relaxed);
            }
            return;
        }
        // Full: one pass finds the coldest candidate and the next coldest (the floor once the
        // coldest is gone), cloning nothing.
        let mut coldest: Option<(&String, u32)> = None;
        let mut next = u32::MAX;
        for k in candidates.iter() {
            let e = self.estimate(k);
            match coldest {
                Some((_, c)) if e >= c => next = next.min(e),
                Some((_, c)) => {
                    next = c;
                    coldest = Some((k, e));
                }
                None => coldest = Some((k, e)),
            }
        }
        let Some((victim, cold)) = coldest else {
            return;
        };
        // Only a clearly hotter key replaces it: keys about as warm as the candidates (a
        // uniform load) would otherwise trade places on every check.
        if estimate <= cold + margin(cold) {
            self.floor.store(cold, Ordering::Relaxed);
            return;
        }
        let victim = victim.clone();
        candidates.remove(&victim);
        candidates.insert(key.to_owned());
        self.floor.store(next.min(estimate), Ordering::Relaxed);
    }

    /// Halves every counter (hotness fades) and forgets candidates that went cold.
    pub fn age(&self) {
        for block in &self.blocks {
            for cell in &block.0 {
                let v = cell.load(Ordering::Relaxed);
                cell.store(v / 2, Ordering::Relaxed);
            }
        }
        let mut candidates = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        candidates.retain(|k| self.estimate(k) > 0);
        self.floor.store(0, Ordering::Relaxed);
    }

    /// The hottest keys with at least `min_hits` reads, hottest first (ties by key), at most
    /// `limit` of them.
    pub fn top(&self, limit: usize, min_hits: u32) -> Vec<(String, u32)> {
        let candidates = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        let mut hot: Vec<(String, u32)> = candidates
            .iter()
            .map(|k| (k.clone(), self.estimate(k)))
            .filter(|(_, c)| *c >= min_hits.max(1))
            .collect();
        drop(candidates);
        hot.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hot.truncate(limit);
        hot
    }

    /// Candidates held now (bounded by four times `max_hot_keys`).
    #[cfg(test)]
    pub fn candidates(&self) -> usize {
        self.candidates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most read keys come first, with their counts; a key read once is hot at min_hits 1.
    #[test]
    fn reports_the_hottest_keys() {
        let hot = HotKeys::new(3);
        for (key, reads) in [("a", 50), ("b", 30), ("c", 20), ("d", 1)] {
            hot.record(key, true);
            for _ in 1..reads {
                hot.record(key, false);
            }
        }
        let top = hot.top(3, 1);
        let names: Vec<&str> = top.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(top[0].1 >= 50);
        assert_eq!(hot.top(10, 1).len(), 4);
        assert_eq!(hot.top(10, 25).len(), 2, "min_hits filters");
    }

    /// Memory stays bounded however many distinct keys are read, and hot keys survive a scan.
    #[test]
    fn memory_is_bounded_and_hot_keys_survive_a_scan() {
        let hot = HotKeys::new(10);
        for _ in 0..200 {
            hot.record("hot", false);
        }
        hot.record("hot", true);
        for i in 0..20_000 {
            hot.record(&format!("scan-{i}"), true);
        }
        assert!(hot.candidates() <= 64, "holds {}", hot.candidates());
        assert_eq!(std::mem::size_of::<Block>(), 64, "one cache line a block");
        assert_eq!(hot.top(1, 1)[0].0, "hot");
    }

    /// Aging halves counts, so an old burst fades behind steady new traffic.
    #[test]
    fn aging_fades_old_bursts() {
        let hot = HotKeys::new(5);
        for _ in 0..64 {
            hot.record("old", true);
        }
        for _ in 0..4 {
            hot.age();
        }
        for _ in 0..10 {
            hot.record("new", true);
        }
        let top = hot.top(2, 1);
        assert_eq!(top[0].0, "new");
        assert_eq!(top[1], ("old".into(), 4));
        for _ in 0..8 {
            hot.age();
        }
        assert!(
            hot.top(5, 1).iter().all(|(k, _)| k != "old"),
            "forgotten once cold"
        );
    }
}
