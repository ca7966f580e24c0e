//! Membership settings with the seed's defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::units::{MAX_INTERVAL, MAX_TIMEOUT};

/// How a node finds, probes and waits for its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How often every peer is probed. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Deadline of one probe. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Failed probes in a row after which a peer leaves the ring. Default 3.
    pub failure_threshold: u32,
    /// How long start-up waits for `minimum_peers_quorum` members. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub bootstrap_timeout: Duration,
    /// Pause between start-up probe rounds. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub join_retry_interval: Duration,
    /// Members (this node included) that must answer before the node serves for the first
    /// time; nodes started together to form a cluster should all set the cluster's size. A
    /// node restarting with its stored control-plane state does not wait. Default 1.
    pub minimum_peers_quorum: usize,
    /// Topology events a slow subscriber may fall behind by before it loses the oldest.
    /// Default 256.
    pub event_buffer: usize,
    /// Tell the peers on shutdown, so they take this node out of their rings at once instead
    /// of after `failure_threshold` failed probes. Default on.
    pub announce_leave: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            failure_threshold: 3,
            bootstrap_timeout: Duration::from_secs(30),
            join_retry_interval: Duration::from_secs(1),
            minimum_peers_quorum: 1,
            event_buffer: 256,
            announce_leave: true,
        }
    }
}

impl ClusterConfig {
    /// Every problem, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        for (field, value, max) in [
            ("probe_interval", self.probe_interval, MAX_INTERVAL),
            ("probe_timeout", self.probe_timeout, MAX_TIMEOUT),
            ("bootstrap_timeout", self.bootstrap_timeout, MAX_INTERVAL),
            (
                "join_retry_interval",
                self.join_retry_interval,
                MAX_INTERVAL,
            ),
        ] {
            problems.duration_within(field, value, max);
        }
        if self.failure_threshold == 0 {
            problems.push("failure_threshold", "must be at least 1");
        }
        if self.minimum_peers_quorum == 0 {
            problems.push("minimum_peers_quorum", "must be at least 1 (this node)");
        }
        if self.event_buffer == 0 {
            problems.push("event_buffer", "must be at least 1");
        }
        problems
    }

    /// Millisecond timings for tests.
    pub fn for_test() -> Self {
        ClusterConfig {
            probe_interval: Duration::from_millis(50),
            probe_timeout: Duration::from_millis(250),
            failure_threshold: 2,
            bootstrap_timeout: Duration::from_secs(10),
            join_retry_interval: Duration::from_millis(20),
            minimum_peers_quorum: 1,
            event_buffer: 256,
            announce_leave: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's defaults, and every bad field reported.
    #[test]
    fn defaults_and_problems() {
        let c = ClusterConfig::default();
        assert_eq!(c.bootstrap_timeout, Duration::from_secs(30));
        assert_eq!(c.join_retry_interval, Duration::from_secs(1));
        assert_eq!(c.minimum_peers_quorum, 1);
        assert!(c.problems().is_empty());
        let bad = ClusterConfig {
            probe_interval: Duration::ZERO,
            failure_threshold: 0,
            minimum_peers_quorum: 0,
            ..ClusterConfig::default()
        };
        let fields: Vec<String> = bad.problems().iter().map(|p| p.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "probe_interval",
                "failure_threshold",
                "minimum_peers_quorum"
            ]
        );
    }
}
