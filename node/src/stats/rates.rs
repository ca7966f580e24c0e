//! Per-second rates of each keyspace between two polls of a cluster's nodes: the one place the
//! rate math lives (`distcache stats --cluster` and the dashboard both call
//! [`KeySpaceTotal::rates`]).
//!
//! Each node is compared with itself only, then the differences are summed per keyspace. A
//! node seen in one poll only adds nothing (it has no baseline), and neither does a node
//! whose counters went down (it restarted, or the keyspace was deleted and created again):
//! a rate is never negative, and one restart does not hide the other nodes' traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{KeySpaceSnapshot, KeySpaceTotal, Stats};

/// What one keyspace did per second between two polls, summed over the nodes compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rates {
    /// Nodes whose counters were compared (present in both polls, not restarted between).
    pub nodes: usize,
    /// Keys asked for per second.
    pub gets_per_s: f64,
    /// Keys answered from the caches per second.
    pub hits_per_s: f64,
    /// Keys that missed both caches per second.
    pub loads_per_s: f64,
    /// Fetches from the data sources (answered or failed) per second.
    pub fetches_per_s: f64,
    /// Failed or refused loads ([`Stats::errors`]) per second.
    pub errors_per_s: f64,
    /// Hits over gets between the polls; `None` without gets.
    pub hit_ratio: Option<f64>,
}

impl Rates {
    /// The rates of `counted` (what happened between two polls, summed over `nodes` nodes)
    /// over `elapsed`. With no time elapsed every rate is 0; the hit ratio needs no time.
    pub fn over(counted: &Stats, nodes: usize, elapsed: Duration) -> Rates {
        let seconds = elapsed.as_secs_f64();
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        Rates {
            nodes,
            gets_per_s: per_s(counted.gets),
            hits_per_s: per_s(counted.cache_hits),
            loads_per_s: per_s(counted.loads),
            fetches_per_s: per_s(counted.fetches()),
            errors_per_s: per_s(counted.errors()),
            hit_ratio: (counted.gets > 0)
                .then(|| counted.cache_hits.min(counted.gets) as f64 / counted.gets as f64),
        }
    }
}

impl Stats {
    /// What was counted since `earlier` (an older snapshot of the same keyspace on the same
    /// node), or `None` when any counter went down: the node restarted or the keyspace was
    /// created again, and the difference means nothing.
    pub fn since(&self, earlier: &Stats) -> Option<Stats> {
        let mut counted = self.clone();
        let mut went_down = false;
        counted.each_with(earlier, |now, then| match now.checked_sub(then) {
            Some(n) => *now = n,
            None => went_down = true,
        });
        (!went_down).then_some(counted)
    }
}

impl KeySpaceTotal {
    /// Per-keyspace rates between two polls taken `elapsed` apart. Each poll gives every
    /// node that answered as `(identity, keyspaces)`; nodes are matched by identity (their
    /// address, say). Every keyspace of `current` gets an entry, with `nodes: 0` and zero
    /// rates when no node could be compared.
    pub fn rates<'a, K: Ord>(
        previous: impl IntoIterator<Item = (K, &'a [KeySpaceSnapshot])>,
        current: impl IntoIterator<Item = (K, &'a [KeySpaceSnapshot])>,
        elapsed: Duration,
    ) -> BTreeMap<String, Rates> {
        let before: BTreeMap<K, &[KeySpaceSnapshot]> = previous.into_iter().collect();
        let mut counted: BTreeMap<String, (Stats, usize)> = BTreeMap::new();
        for (node, keyspaces) in current {
            let then = before.get(&node).copied().unwrap_or_default();
            for now in keyspaces {
                let sum = counted.entry(now.name.clone()).or_default();
                let delta = then
                    .iter()
                    .find(|k| k.name == now.name)
                    .and_then(|then| now.stats.since(&then.stats));
                if let Some(delta) = delta {
                    sum.0.add(&delta);
                    sum.1 += 1;
                }
            }
        }
        counted
            .into_iter()
            .map(|(name, (stats, nodes))| (name, Rates::over(&stats, nodes, elapsed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stats::tests::snapshot;

    /// Node `node`'s poll: keyspace `users` with `gets` gets of which `hits` hits.
    fn poll(node: &str, gets: u64, hits: u64) -> (String, Vec<KeySpaceSnapshot>) {
        (node.to_owned(), vec![snapshot("users", gets, hits, None)])
    }

    fn rates(
        before: &[(String, Vec<KeySpaceSnapshot>)],
        after: &[(String, Vec<KeySpaceSnapshot>)],
        elapsed: Duration,
    ) -> BTreeMap<String, Rates> {
        KeySpaceTotal::rates(
            before.iter().map(|(n, k)| (n.as_str(), &k[..])),
            after.iter().map(|(n, k)| (n.as_str(), &k[..])),
            elapsed,
        )
    }

    /// Differences are summed over the nodes and divided by the interval; the hit ratio is
    /// the interval's, not the all-time one.
    #[test]
    fn rates_sum_the_nodes_differences() {
        let before = [poll("a", 100, 50), poll("b", 100, 50)];
        let after = [poll("a", 140, 80), poll("b", 120, 60)];
        let r = rates(&before, &after, Duration::from_secs(2))["users"];
        assert_eq!(r.nodes, 2);
        assert_eq!(
            (r.gets_per_s, r.hits_per_s, r.loads_per_s),
            (30.0, 20.0, 10.0)
        );
        assert_eq!(r.hit_ratio, Some(40.0 / 60.0));
        // The fixture's one peer error per node did not change: no errors in the interval.
        assert_eq!(r.errors_per_s, 0.0);
    }

    /// A node whose counters went down (it restarted) adds nothing, never a negative rate,
    /// and does not hide what the other nodes counted.
    #[test]
    fn a_restarted_node_adds_nothing() {
        let before = [poll("a", 140, 80), poll("b", 120, 60)];
        let after = [poll("a", 5, 0), poll("b", 150, 90)];
        let r = rates(&before, &after, Duration::from_secs(3))["users"];
        assert_eq!(r.nodes, 1);
        assert_eq!((r.gets_per_s, r.hits_per_s), (10.0, 10.0));
        assert_eq!(r.hit_ratio, Some(1.0));

        // Only the restarted node: zero, not negative, and no hit ratio.
        let r = rates(&before[..1], &after[..1], Duration::from_secs(3))["users"];
        assert_eq!((r.nodes, r.gets_per_s, r.loads_per_s), (0, 0.0, 0.0));
        assert_eq!(r.hit_ratio, None);
    }

    /// A node in one poll only has no baseline and adds nothing; every keyspace of the
    /// current poll still has an entry.
    #[test]
    fn a_node_in_one_poll_only_adds_nothing() {
        let before = [poll("a", 10, 5)];
        let after = [poll("a", 20, 10), poll("c", 1000, 0)];
        let r = rates(&before, &after, Duration::from_secs(1))["users"];
        assert_eq!((r.nodes, r.gets_per_s), (1, 10.0));
        let r = rates(&[], &after, Duration::from_secs(1));
        assert_eq!(r["users"], Rates::default());
    }

    /// With no time elapsed every rate is 0 (no division by zero), the ratio still counts.
    #[test]
    fn zero_interval_gives_zero_rates() {
        let before = [poll("a", 10, 5)];
        let after = [poll("a", 20, 10)];
        let r = rates(&before, &after, Duration::ZERO)["users"];
        assert_eq!(
            (r.gets_per_s, r.hits_per_s, r.fetches_per_s, r.errors_per_s),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(r.hit_ratio, Some(0.5));
    }

    /// Fetches are answered plus failed source loads; errors are failed and refused loads.
    #[test]
    fn fetches_and_errors_per_second() {
        let counted = Stats {
            local_loads: 6,
            local_load_errs: 2,
            peer_errors: 1,
            rate_limited: 3,
            circuit_open: 4,
            ..Stats::default()
        };
        assert_eq!((counted.fetches(), counted.errors()), (8, 10));
        let r = Rates::over(&counted, 1, Duration::from_secs(2));
        assert_eq!((r.fetches_per_s, r.errors_per_s), (4.0, 5.0));
    }

    /// `since` is `None` as soon as one counter went down.
    #[test]
    fn since_detects_a_reset() {
        let earlier = Stats {
            gets: 10,
            warmed_keys: 3,
            ..Stats::default()
        };
        let later = Stats {
            gets: 20,
            ..Stats::default()
        };
        assert_eq!(later.since(&earlier), None);
        let later = Stats {
            gets: 25,
            warmed_keys: 3,
            ..Stats::default()
        };
        assert_eq!(later.since(&earlier).unwrap().gets, 15);
    }
}
