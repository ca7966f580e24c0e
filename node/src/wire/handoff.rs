//! The handoff stream: entries a node hands to the peer that takes their keys over.
//!
//! `GET /_distcache/peer/handoff?to=<id>` answers newline-delimited JSON, one
//! [`HandoffEntry`] a line, so neither side ever holds the whole transfer at once.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One cached entry handed to its new owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffEntry {
    /// The keyspace.
    pub keyspace: String,
    /// The key.
    pub key: String,
    /// The value, base64.
    #[serde(with = "super::b64")]
    pub value: Bytes,
    /// Milliseconds it has left to live (absent: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line round-trips, binary values and a missing TTL included.
    #[test]
    fn lines_round_trip() {
        let entry = HandoffEntry {
            keyspace: "ks".into(),
            key: "a\nb".into(),
            value: Bytes::from_static(&[0, 255, 10]),
            ttl_ms: None,
        };
        let line = serde_json::to_string(&entry).expect("encode");
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(
            serde_json::from_str::<HandoffEntry>(&line).expect("decode"),
            entry
        );
    }
}
