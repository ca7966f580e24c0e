//! What a write carries and what a batch answers per key: the data types that travel between
//! the engine, the transport, the wire format and the client. They import nothing of ours
//! above them but the error type.

use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;

/// One key/value to put, with an optional time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// How long the entry lives; `None` uses the keyspace's expiry rules.
    pub ttl: Option<Duration>,
}

impl Entry {
    /// An entry without a TTL of its own.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Entry {
            key: key.into(),
            value: value.into(),
            ttl: None,
        }
    }

    /// An entry that lives for `ttl`.
    pub fn with_ttl(key: impl Into<String>, value: impl Into<Bytes>, ttl: Duration) -> Self {
        Entry {
            ttl: Some(ttl),
            ..Entry::new(key, value)
        }
    }
}

/// The result of one key of a `_many` operation.
#[derive(Debug, Clone)]
pub struct KeyResult<T> {
    /// The key, as given.
    pub key: String,
    /// What happened to it.
    pub result: Result<T>,
}

/// Batch results in order; a slot never filled is an internal error, not a panic.
pub(crate) fn answered<T>(results: Vec<Option<KeyResult<T>>>) -> Vec<KeyResult<T>> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| KeyResult {
                key: String::new(),
                result: Err(crate::error::Error::Internal("key was not answered".into())),
            })
        })
        .collect()
}

/// `Ok` for each of `keys`, in order.
pub(crate) fn all_ok(keys: &[String]) -> Vec<KeyResult<()>> {
    keys.iter()
        .map(|key| KeyResult {
            key: key.clone(),
            result: Ok(()),
        })
        .collect()
}
