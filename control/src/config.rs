//! Timings and membership targets of the control store.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Control-store settings; defaults suit a LAN, [`for_test`](ControlConfig::for_test) suits
/// loopback tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Leader heartbeat. Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Lower bound of the election timeout. Default 500 ms.
    #[serde(with = "humantime_serde")]
    pub election_timeout_min: Duration,
    /// Upper bound of the election timeout. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub election_timeout_max: Duration,
    /// Deadline of one snapshot transfer chunk. Default 2 s.
    #[serde(with = "humantime_serde")]
    pub install_snapshot_timeout: Duration,
    /// Log entries after which a snapshot is taken and older entries purged. Default 1000.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot. Default 200.
    pub keep_after_snapshot: u64,
    /// Voters the leader keeps (3 or 5); the rest are learners. Default 3.
    pub voters: usize,
    /// How long a voter may be unreachable before the leader replaces it. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub voter_grace_period: Duration,
    /// How often the leader reconciles membership with the nodes it can see. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How long a change may wait for a leader and its commit. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            install_snapshot_timeout: Duration::from_secs(2),
            snapshot_every: 1000,
            keep_after_snapshot: 200,
            voters: 3,
            voter_grace_period: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
        }
    }
}

impl ControlConfig {
    /// Loopback timings: fast elections, frequent snapshots, short grace.
    pub fn for_test() -> Self {
        ControlConfig {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            install_snapshot_timeout: Duration::from_secs(2),
            snapshot_every: 1000,
            keep_after_snapshot: 200,
            voters: 3,
            voter_grace_period: Duration::from_secs(3),
            reconcile_interval: Duration::from_millis(100),
            write_timeout: Duration::from_secs(5),
        }
    }

    /// Every problem, fields named as in the TOML file. Every duration is at most 1 hour.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut push = |f: &str, m: &str| problems.push((f.to_owned(), m.to_owned()));
        if self.heartbeat_interval.is_zero() {
            push("heartbeat_interval", "must be greater than zero");
        }
        if self.election_timeout_min <= self.heartbeat_interval {
            push(
                "election_timeout_min",
                "must be longer than heartbeat_interval",
            );
        }
        if self.election_timeout_max <= self.election_timeout_min {
            push(
                "election_timeout_max",
                "must be longer than election_timeout_min",
            );
        }
        if self.install_snapshot_timeout.is_zero() {
            push("install_snapshot_timeout", "must be greater than zero");
        }
        if self.snapshot_every == 0 {
            push("snapshot_every", "must be at least 1");
        }
        if !matches!(self.voters, 1 | 3 | 5 | 7) {
            push(
                "voters",
                "must be 1, 3, 5 or 7 (an odd number keeps a clear majority)",
            );
        }
        if self.reconcile_interval.is_zero() {
            push("reconcile_interval", "must be greater than zero");
        }
        if self.write_timeout.is_zero() {
            push("write_timeout", "must be greater than zero");
        }
        for (field, value) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("election_timeout_min", self.election_timeout_min),
            ("election_timeout_max", self.election_timeout_max),
            ("install_snapshot_timeout", self.install_snapshot_timeout),
            ("voter_grace_period", self.voter_grace_period),
            ("reconcile_interval", self.reconcile_interval),
            ("write_timeout", self.write_timeout),
        ] {
            if value > MAX_DURATION {
                push(field, "must be at most 1h");
            }
        }
        problems
    }

    pub(crate) fn raft_config(&self, cluster_name: &str) -> Result<openraft::Config, String> {
        let config = openraft::Config {
            cluster_name: cluster_name.to_owned(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: millis(self.install_snapshot_timeout),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            ..openraft::Config::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}

/// Longest accepted control-plane duration: 1 hour.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(3600);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
