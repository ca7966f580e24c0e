//! What travels over HTTP: error bodies with stable codes, and the JSON of batch calls.
//!
//! Single-key calls carry raw bytes in their bodies. Batch calls (`get-many`, `put-many`,
//! `delete-many`) use JSON in which values are standard base64 (RFC 4648, with padding), so any
//! byte string survives. Every error is `{"code": "...", "message": "..."}` plus the fields its
//! code needs to be rebuilt as the same typed [`Error`] on the other side.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::spec::KeySpaceSpec;

mod codes;
mod error_body;
mod handoff;
mod warm;

pub use codes::{WireCode, all_codes};
pub use error_body::ErrorBody;
pub use handoff::HandoffEntry;
pub(crate) use warm::KEPT_FAILURES;
pub use warm::{KeyFailure, WarmOutcome};

/// Header naming the node that sent a peer request (the hop marker): such requests are always
/// served by the receiving node, never forwarded again.
pub const HOP_HEADER: &str = "x-distcache-hop";
/// Header counting the nodes a peer request went through (1: sent by the node that took
/// the client's request); a node passes a request on only below a limit.
pub const HOPS_HEADER: &str = "x-distcache-hops";
/// Header with a value's remaining time to live in milliseconds (absent: no expiry).
pub const TTL_HEADER: &str = "x-distcache-ttl-ms";
/// Header naming the node that answered a data request.
pub const NODE_HEADER: &str = "x-distcache-node";

/// The catalog revision the sending node has applied, on every peer request: the receiver
/// first catches up to it (within the keyspace write timeout), so a keyspace created through
/// one node is known to the owner that node forwards to.
pub const REVISION_HEADER: &str = "x-distcache-revision";
/// Wire code of a key that is not found (a `get` answering `None`, not an [`Error`]).
pub const KEY_NOT_FOUND: &str = WireCode::KeyNotFound.as_str();

/// Keys of a `get-many` or `delete-many`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysRequest {
    /// The keys, in the order results are wanted.
    pub keys: Vec<String>,
}

/// Entries of a `put-many`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutManyRequest {
    /// The entries.
    pub entries: Vec<WireEntry>,
}

impl PutManyRequest {
    /// The request storing `entries`.
    pub fn of(entries: &[crate::entry::Entry]) -> Self {
        PutManyRequest {
            entries: entries
                .iter()
                .map(|e| WireEntry {
                    key: e.key.clone(),
                    value: e.value.clone(),
                    ttl: e.ttl,
                })
                .collect(),
        }
    }

    /// The entries to store.
    pub fn into_entries(self) -> Vec<crate::entry::Entry> {
        self.entries
            .into_iter()
            .map(|e| crate::entry::Entry {
                key: e.key,
                value: e.value,
                ttl: e.ttl,
            })
            .collect()
    }
}

/// One entry of a `put-many`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WireEntry {
    /// The key.
    pub key: String,
    /// The value, base64.
    #[schema(value_type = String, content_encoding = "base64")]
    #[serde(with = "b64")]
    pub value: Bytes,
    /// Optional time to live (humantime, e.g. "5m").
    #[schema(value_type = Option<String>, example = "5m")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
}

/// How one key of a batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A value was found (get) or the operation succeeded (put, delete).
    Ok,
    /// The key does not exist (get).
    NotFound,
    /// The key failed; see `error`.
    Error,
}

/// One key's result in a batch response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyOutcome {
    /// The key, as asked.
    pub key: String,
    /// How it went.
    pub status: Status,
    /// The value (get, status ok), base64.
    #[schema(value_type = Option<String>, content_encoding = "base64")]
    #[serde(default, with = "opt_b64", skip_serializing_if = "Option::is_none")]
    pub value: Option<Bytes>,
    /// Remaining time to live of the value in milliseconds (peer responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// The error (status error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl KeyOutcome {
    /// A found value.
    pub fn value(key: String, value: Bytes, ttl: Option<Duration>) -> Self {
        KeyOutcome {
            key,
            status: Status::Ok,
            value: Some(value),
            ttl_ms: ttl.map(|t| t.as_millis().try_into().unwrap_or(u64::MAX)),
            error: None,
        }
    }

    /// A successful write, or a get that found nothing (`status` says which).
    pub fn bare(key: String, status: Status) -> Self {
        KeyOutcome {
            key,
            status,
            value: None,
            ttl_ms: None,
            error: None,
        }
    }

    /// A failed key.
    pub fn error(key: String, err: &Error) -> Self {
        KeyOutcome {
            error: Some(ErrorBody::from(err)),
            ..KeyOutcome::bare(key, Status::Error)
        }
    }

    /// The outcome of a get of `key` (the inverse of [`into_get`](Self::into_get)).
    pub fn from_get(key: String, result: Result<Option<(Bytes, Option<Duration>)>, Error>) -> Self {
        match result {
            Ok(Some((value, ttl))) => KeyOutcome::value(key, value, ttl),
            Ok(None) => KeyOutcome::bare(key, Status::NotFound),
            Err(e) => KeyOutcome::error(key, &e),
        }
    }

    /// The get result this outcome describes.
    pub fn into_get(self) -> Result<Option<(Bytes, Option<Duration>)>, Error> {
        match self.status {
            Status::Ok => match self.value {
                Some(v) => Ok(Some((v, self.ttl_ms.map(Duration::from_millis)))),
                None => Err(Error::Internal(format!(
                    "a found key `{}` came without a value",
                    self.key
                ))),
            },
            Status::NotFound => Ok(None),
            Status::Error => Err(self.error_or_internal()),
        }
    }

    /// The write result this outcome describes.
    pub fn into_write(self) -> Result<(), Error> {
        match self.status {
            Status::Ok => Ok(()),
            Status::NotFound => Err(Error::Internal(format!(
                "a write of `{}` answered not found",
                self.key
            ))),
            Status::Error => Err(self.error_or_internal()),
        }
    }

    fn error_or_internal(self) -> Error {
        self.error.map(ErrorBody::into_error).unwrap_or_else(|| {
            Error::Internal(format!("key `{}` failed without an error", self.key))
        })
    }
}

/// Results of a batch call, one per key in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// The results.
    pub results: Vec<KeyOutcome>,
}

/// Identity a node reports on `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` while the process serves HTTP.
    pub status: String,
    /// The node's `--id`.
    pub node_id: String,
    /// The address peers reach it at.
    pub addr: String,
    /// Whether it serves data (start finished and not stopping).
    pub ready: bool,
    /// Whether it is shutting down: peers take it out of the ring at once rather than wait
    /// for it to stop answering.
    #[serde(default)]
    pub stopping: bool,
    /// Whether it serves the keys it owns itself. A node that joins is ready (peers route to
    /// it) but not owning until it took over its keys' entries from their previous owners;
    /// meanwhile it forwards them there. Absent (older nodes): owning.
    #[serde(default = "owning_by_default")]
    pub owning: bool,
    /// The members of its ring, by id, sorted: the nodes it routes keys to. Peers compare it
    /// with their own to tell when the cluster agrees on ownership.
    #[serde(default)]
    pub ring: Vec<String>,
    /// Whether, as far as it can tell, the cluster agrees on ownership: it is owning, and
    /// every healthy peer is owning and reports the same ring. `/readyz` answers 200 only
    /// then. Absent (older nodes): agreed.
    #[serde(default = "owning_by_default")]
    pub agreed: bool,
    /// How it finds its peers (`static`, `dns distcache.local`, `kubernetes pods app=…`).
    /// Absent from older nodes and from nodes without a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
}

fn owning_by_default() -> bool {
    true
}

/// `GET /v1/keyspaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeySpaceList {
    /// The catalog revision this node applied.
    pub revision: u64,
    /// Every keyspace, by name.
    pub keyspaces: Vec<KeySpaceSpec>,
}

/// The answer to a catalog change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeResponse {
    /// The committed revision that contains the change.
    pub revision: u64,
    /// The keyspace as stored (creates and updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace: Option<KeySpaceSpec>,
}

/// The control plane as one node sees it (`GET /_distcache/admin/cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterInfo {
    /// The answering node's `--id`.
    pub node_id: String,
    /// Its raft role (`shutdown` when it runs without a control plane).
    pub role: distcache_control::Role,
    /// The leader's `--id`, when known.
    pub leader: Option<String>,
    /// The current raft term.
    pub term: u64,
    /// The catalog revision this node applied.
    pub applied_revision: u64,
    /// The raft members.
    pub members: Vec<ClusterMember>,
}

/// One raft member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterMember {
    /// Its `--id`.
    pub id: String,
    /// Its address.
    pub addr: String,
    /// Whether the answering node's probes reach it and it serves.
    pub healthy: bool,
    /// Voter or learner.
    pub voter: bool,
}

/// Which node owns a key, as the answering node sees the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Owner {
    /// The keyspace.
    pub keyspace: String,
    /// The key.
    pub key: String,
    /// The owner's node id.
    pub owner: String,
    /// The owner's address.
    pub addr: String,
}

/// Standard base64 for `Bytes`.
pub mod b64 {
    use super::*;

    /// Writes base64.
    pub fn serialize<S: serde::Serializer>(v: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    /// Reads base64, naming the problem when it is not.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| serde::de::Error::custom(format!("value is not valid base64: {e}")))
    }
}

/// Standard base64 for `Option<Bytes>`.
pub mod opt_b64 {
    use super::*;

    /// Writes base64 (or nothing).
    pub fn serialize<S: serde::Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }

    /// Reads base64 (or nothing).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            STANDARD
                .decode(t.as_bytes())
                .map(Bytes::from)
                .map_err(|e| serde::de::Error::custom(format!("value is not valid base64: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Problems, SourceError};

    /// Every typed error survives the trip through its JSON body.
    #[test]
    fn errors_round_trip_through_the_wire() {
        let mut problems = Problems::new();
        problems.push("name", "must not be empty");
        let errors = vec![
            Error::KeySpaceNotFound("users".into()),
            Error::KeySpaceExists("users".into()),
            Error::RevisionMismatch {
                expected: 3,
                actual: 5,
            },
            Error::EmptyKey,
            Error::KeyTooLarge { len: 9, max: 8 },
            Error::ValueTooLarge { len: 9, max: 8 },
            Error::InvalidRequest("ttl must be greater than zero".into()),
            Error::BatchTooLarge { len: 9, max: 8 },
            Error::DataSourceRateLimited("users".into()),
            Error::DataSourceCircuitOpen("users".into()),
            Error::Timeout {
                operation: "fetch".into(),
                after: Duration::from_millis(250),
            },
            Error::DataSource(SourceError::new("db down")),
            Error::InvalidSpec(problems.clone()),
            Error::InvalidConfig(problems),
            Error::NotRunning,
            Error::Unauthorized("wrong token".into()),
            Error::Forbidden("token `app` has role read; put needs write".into()),
            Error::Unavailable("no leader".into()),
            Error::Internal("bug".into()),
            Error::Overloaded("keyspace `users` has 1024 loads queued".into()),
        ];
        for err in errors {
            let json = serde_json::to_string(&ErrorBody::from(&err)).expect("serialize");
            let body: ErrorBody = serde_json::from_str(&json).expect("parse");
            assert_eq!(body.code, err.code().as_str());
            let back = body.into_error();
            assert_eq!(back.code(), err.code(), "{json}");
            assert_eq!(back.to_string(), err.to_string(), "{json}");
        }
    }

    /// An unknown code from a newer node keeps its code in the message.
    #[test]
    fn unknown_codes_are_kept() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"SHINY_NEW","message":"what"}"#).expect("parse");
        let err = body.into_error();
        assert!(err.to_string().contains("SHINY_NEW"));
    }

    /// Values are base64 and any bytes survive; bad base64 is named.
    #[test]
    fn values_are_base64() {
        let entry = WireEntry {
            key: "k".into(),
            value: Bytes::from_static(&[0, 159, 255, b'\n']),
            ttl: Some(Duration::from_secs(300)),
        };
        let json = serde_json::to_string(&entry).expect("serialize");
        assert_eq!(json, r#"{"key":"k","value":"AJ//Cg==","ttl":"5m"}"#);
        assert_eq!(
            serde_json::from_str::<WireEntry>(&json).expect("parse"),
            entry
        );
        let err =
            serde_json::from_str::<WireEntry>(r#"{"key":"k","value":"@@"}"#).expect_err("bad");
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
