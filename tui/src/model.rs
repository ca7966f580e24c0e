//! What the dashboard knows about the cluster: one snapshot per poll, per-keyspace rows
//! summed over the nodes (by `distcache::KeySpaceTotal::sum`), rates from the previous
//! snapshot (by `distcache::KeySpaceTotal::rates`, node by node: a restarted node adds
//! nothing), and a short history for the sparklines. Pure data: no clock, no I/O, so every view renders
//! the same from a fixture.

use std::collections::VecDeque;
use std::time::Duration;

use distcache::wire::ClusterInfo;
use distcache::{BreakerState, KeySpaceSnapshot, KeySpaceTotal};

/// Samples kept per keyspace (5 minutes at a 1 s refresh).
pub const HISTORY: usize = 300;

/// One node as the last poll saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Its `--id` (its address until it answered once).
    pub id: String,
    /// Its address.
    pub addr: String,
    /// Answered this poll.
    pub up: bool,
    /// Serves data (start finished, not stopping).
    pub ready: bool,
    /// Why it did not answer.
    pub error: Option<String>,
    /// Its view of the control plane.
    pub cluster: Option<ClusterInfo>,
    /// Its keyspaces.
    pub keyspaces: Vec<KeySpaceSnapshot>,
    /// How it finds its peers, as it said last (`dns distcache.local`).
    pub discovery: Option<String>,
    /// When it last answered, in seconds on the poller's clock (`None`: never).
    pub last_seen: Option<f64>,
}

/// Everything one poll saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Seconds on the poller's monotonic clock when the poll finished.
    pub at: f64,
    /// Every node known so far (nodes that stopped answering stay, marked down).
    pub nodes: Vec<NodeView>,
}

impl Snapshot {
    /// The control-plane view of the first node that has one (leader, term, revision).
    pub fn cluster(&self) -> Option<&ClusterInfo> {
        self.nodes
            .iter()
            .filter(|n| n.up)
            .find_map(|n| n.cluster.as_ref())
    }
}

/// One keyspace summed over the nodes that answered.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyspaceRow {
    /// Name.
    pub name: String,
    /// Entries in main and hot caches.
    pub entries: u64,
    /// Bytes in main and hot caches.
    pub bytes: u64,
    /// Sum of `max_bytes` over the nodes serving it.
    pub capacity: u64,
    /// Hits over gets since the previous poll (`None` without gets).
    pub hit_ratio: Option<f64>,
    /// Gets per second since the previous poll.
    pub gets_per_s: f64,
    /// Loads (misses) per second since the previous poll.
    pub loads_per_s: f64,
    /// Data-source fetches (answered or failed) per second since the previous poll.
    pub fetches_per_s: f64,
    /// Failed or refused loads (source, peer, rate limiter, breaker) per second since the
    /// previous poll.
    pub errors_per_s: f64,
    /// Peer errors, all time.
    pub peer_errors: u64,
    /// Data-source failures (errors and timeouts), all time.
    pub source_errors: u64,
    /// Loads refused by the rate limiter, all time.
    pub rate_limited: u64,
    /// Worst breaker state over the nodes (`open` > `half_open` > `closed`), or `-`.
    pub breaker: String,
    /// Nodes serving it.
    pub nodes: usize,
}

impl KeyspaceRow {
    /// A row for `name` with nothing counted yet.
    pub fn new(name: impl Into<String>) -> Self {
        KeyspaceRow {
            name: name.into(),
            entries: 0,
            bytes: 0,
            capacity: 0,
            hit_ratio: None,
            gets_per_s: 0.0,
            loads_per_s: 0.0,
            fetches_per_s: 0.0,
            errors_per_s: 0.0,
            peer_errors: 0,
            source_errors: 0,
            rate_limited: 0,
            breaker: "-".into(),
            nodes: 0,
        }
    }
}

/// The nodes of `snapshot` that answered, by address, with their keyspaces.
fn answered(snapshot: &Snapshot) -> impl Iterator<Item = (&str, &[KeySpaceSnapshot])> {
    snapshot
        .nodes
        .iter()
        .filter(|n| n.up)
        .map(|n| (n.addr.as_str(), &n.keyspaces[..]))
}

/// A breaker state as the keyspace table shows it.
fn breaker_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half_open",
        BreakerState::Open => "open",
    }
}

/// The rows of `current`, with rates against `previous`.
pub fn keyspace_rows(current: &Snapshot, previous: Option<&Snapshot>) -> Vec<KeyspaceRow> {
    let rates = previous.map(|p| {
        // The poller's clock is monotonic; a negative or odd interval gives no rates.
        let elapsed = Duration::try_from_secs_f64(current.at - p.at).unwrap_or_default();
        KeySpaceTotal::rates(answered(p), answered(current), elapsed)
    });
    KeySpaceTotal::sum(answered(current).map(|(_, keyspaces)| keyspaces))
        .into_iter()
        .map(|(name, now)| {
            let mut row = KeyspaceRow::new(name);
            row.entries = now.entries;
            row.bytes = now.bytes;
            row.capacity = now.max_bytes;
            row.peer_errors = now.stats.peer_errors;
            row.source_errors = now.stats.local_load_errs;
            row.rate_limited = now.stats.rate_limited;
            row.nodes = now.nodes;
            if let Some(state) = now.circuit_breaker {
                row.breaker = breaker_name(state).to_owned();
            }
            if let Some(r) = rates.as_ref().and_then(|r| r.get(&row.name)) {
                row.gets_per_s = r.gets_per_s;
                row.loads_per_s = r.loads_per_s;
                row.fetches_per_s = r.fetches_per_s;
                row.errors_per_s = r.errors_per_s;
                row.hit_ratio = r.hit_ratio;
            }
            row
        })
        .collect()
}

/// Recent gets/s and hit ratio of one keyspace, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Gets per second.
    pub gets_per_s: VecDeque<f64>,
    /// Hit ratio in percent (0 when there were no gets).
    pub hit_percent: VecDeque<f64>,
}

impl History {
    /// Adds one sample, dropping the oldest past [`HISTORY`].
    pub fn push(&mut self, row: &KeyspaceRow) {
        self.gets_per_s.push_back(row.gets_per_s);
        self.hit_percent
            .push_back(row.hit_ratio.map_or(0.0, |r| r * 100.0));
        while self.gets_per_s.len() > HISTORY {
            self.gets_per_s.pop_front();
        }
        while self.hit_percent.len() > HISTORY {
            self.hit_percent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn node(id: &str, gets: u64, hits: u64) -> NodeView {
        fetching(id, gets, hits, 0, 2)
    }

    /// Node `id` whose source answered `fetched` fetches and failed `failed`.
    fn fetching(id: &str, gets: u64, hits: u64, fetched: u64, failed: u64) -> NodeView {
        let snap: KeySpaceSnapshot = serde_json::from_value(serde_json::json!({
            "name": "users", "max_bytes": 1000, "default_ttl": null, "read_timeout": "5s",
            "write_timeout": "5s", "warm_keys": [], "main_cache_bytes": 100, "hot_cache_bytes": 20,
            "stats": {"gets": gets, "cache_hits": hits, "peer_loads": 0, "peer_errors": 1,
                      "loads": gets - hits, "loads_deduped": 0, "local_loads": fetched,
                      "local_load_errs": failed, "remove_keys_requests": 0, "removed_keys": 0},
            "main_cache_entries": 4, "hot_cache_entries": 1, "circuit_breaker": "closed"
        }))
        .expect("fixture");
        NodeView {
            id: id.into(),
            addr: format!("{id}:1"),
            up: true,
            ready: true,
            error: None,
            cluster: None,
            keyspaces: vec![snap],
            discovery: None,
            last_seen: None,
        }
    }

    /// Rows sum the nodes; rates and the recent hit ratio come from the previous poll.
    #[test]
    fn rows_aggregate_and_rate() {
        let before = Snapshot {
            at: 10.0,
            nodes: vec![node("a", 100, 50), node("b", 100, 50)],
        };
        let after = Snapshot {
            at: 12.0,
            nodes: vec![node("a", 140, 80), node("b", 120, 60)],
        };
        let rows = keyspace_rows(&after, Some(&before));
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.entries, r.bytes, r.capacity, r.nodes),
            (10, 240, 2000, 2)
        );
        assert_eq!(r.gets_per_s, 30.0);
        assert_eq!(r.loads_per_s, 10.0);
        assert_eq!(r.hit_ratio, Some(40.0 / 60.0));
        assert_eq!((r.peer_errors, r.source_errors), (2, 4));
        assert_eq!(r.breaker, "closed");
        // A node that restarted (counters back to 0) gives no negative rate.
        let restarted = Snapshot {
            at: 14.0,
            nodes: vec![node("a", 5, 0), node("b", 120, 60)],
        };
        let r = &keyspace_rows(&restarted, Some(&after))[0];
        assert_eq!(r.gets_per_s, 0.0);
    }

    /// Fetches/s and errors/s are summed over the nodes; a restarted node adds nothing but
    /// does not hide the others' traffic; a node that was down in the previous poll has no
    /// baseline and adds nothing either.
    #[test]
    fn rows_rate_fetches_and_errors() {
        let before = Snapshot {
            at: 10.0,
            nodes: vec![fetching("a", 100, 50, 40, 2), fetching("b", 100, 50, 10, 0)],
        };
        let after = Snapshot {
            at: 14.0,
            nodes: vec![fetching("a", 120, 60, 48, 4), fetching("b", 110, 50, 18, 4)],
        };
        let r = &keyspace_rows(&after, Some(&before))[0];
        // Fetches: (8 + 2) + (8 + 4) = 22 over 4 s; errors (source): 2 + 4 = 6 over 4 s.
        assert_eq!((r.fetches_per_s, r.errors_per_s), (5.5, 1.5));
        assert_eq!((r.gets_per_s, r.loads_per_s), (7.5, 5.0));
        assert_eq!(r.hit_ratio, Some(10.0 / 30.0));

        let mut back = fetching("c", 1000, 0, 1000, 0);
        back.up = true;
        let restarted = Snapshot {
            at: 16.0,
            nodes: vec![
                fetching("a", 2, 0, 2, 0),
                fetching("b", 130, 70, 18, 4),
                back,
            ],
        };
        let r = &keyspace_rows(&restarted, Some(&after))[0];
        assert_eq!(
            (r.gets_per_s, r.fetches_per_s, r.errors_per_s),
            (10.0, 0.0, 0.0)
        );
        assert_eq!(r.hit_ratio, Some(1.0));
        assert_eq!(r.nodes, 3);
    }

    /// The row shows the worst breaker state over the nodes, in the table's spelling.
    #[test]
    fn rows_show_the_worst_breaker() {
        let mut half_open = node("b", 10, 5);
        half_open.keyspaces[0].circuit_breaker = Some(BreakerState::HalfOpen);
        let snap = Snapshot {
            at: 1.0,
            nodes: vec![node("a", 10, 5), half_open],
        };
        assert_eq!(keyspace_rows(&snap, None)[0].breaker, "half_open");
    }

    /// Down nodes are not counted; history keeps at most HISTORY samples.
    #[test]
    fn down_nodes_and_history() {
        let mut down = node("b", 10, 5);
        down.up = false;
        let snap = Snapshot {
            at: 1.0,
            nodes: vec![node("a", 10, 5), down],
        };
        assert_eq!(keyspace_rows(&snap, None)[0].nodes, 1);
        let mut h = History::default();
        for _ in 0..HISTORY + 10 {
            h.push(&keyspace_rows(&snap, None)[0]);
        }
        assert_eq!(h.gets_per_s.len(), HISTORY);
    }
}
