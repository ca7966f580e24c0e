//! The `DataSource` trait: where a keyspace's values come from on a miss.
//!
//! A fetch has three outcomes, kept apart on purpose: a value (optionally with its own time to
//! live), not found (`Ok(None)`: the key does not exist, which is an answer, not a failure), and
//! failure (`Err`: the source could not answer; counted by the circuit breaker, never cached).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::SourceError;

/// What a data source answers for one key.
pub type FetchResult = Result<Option<Fetched>, SourceError>;

/// A value fetched from a data source, with the expiry the source wants for it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The value.
    pub value: Bytes,
    /// How long the value may be cached. `None` leaves it to the keyspace (`expires_at`, then
    /// `default_ttl`).
    pub ttl: Option<Duration>,
}

impl Fetched {
    /// A value without an expiry of its own.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Fetched {
            value: value.into(),
            ttl: None,
        }
    }

    /// A value that may be cached for `ttl`.
    pub fn with_ttl(value: impl Into<Bytes>, ttl: Duration) -> Self {
        Fetched {
            value: value.into(),
            ttl: Some(ttl),
        }
    }

    /// A value that may be cached until `at` (already past: not cached at all).
    pub fn until(value: impl Into<Bytes>, at: SystemTime) -> Self {
        let ttl = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Fetched::with_ttl(value, ttl)
    }
}

/// Loads values on a cache miss. Implement it for a database, an API, a file system…
///
/// The engine calls a source only on the node that owns the key, at most once at a time per
/// key, inside the keyspace's rate limiter and circuit breaker, and bounded by its
/// `read_timeout`. A source that can load several keys in one call (one SQL `IN (…)`, one batch
/// HTTP request) overrides [`fetch_many`](DataSource::fetch_many).
///
/// ```
/// use distcache::{async_trait, DataSource, FetchResult, Fetched};
///
/// struct Greeting;
///
/// #[async_trait]
/// impl DataSource for Greeting {
///     async fn fetch(&self, key: &str) -> FetchResult {
///         if key.starts_with("user:") {
///             Ok(Some(Fetched::new(format!("hello, {key}"))))
///         } else {
///             Ok(None) // not found: an answer, not a failure
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    /// Loads one key: `Ok(Some(..))` found, `Ok(None)` not found, `Err` failure.
    async fn fetch(&self, key: &str) -> FetchResult;

    /// Loads several keys, answering one result per key in the same order.
    ///
    /// The default fetches every key concurrently through [`fetch`](DataSource::fetch).
    async fn fetch_many(&self, keys: &[String]) -> Vec<FetchResult> {
        futures::future::join_all(keys.iter().map(|key| self.fetch(key))).await
    }
}

#[async_trait]
impl<T: DataSource + ?Sized> DataSource for Arc<T> {
    async fn fetch(&self, key: &str) -> FetchResult {
        (**self).fetch(key).await
    }

    async fn fetch_many(&self, keys: &[String]) -> Vec<FetchResult> {
        (**self).fetch_many(keys).await
    }
}

/// A data source made of an async closure, for small programs and tests.
///
/// ```
/// use distcache::{source_fn, Fetched};
///
/// let source = source_fn(|key: String| async move {
///     Ok(Some(Fetched::new(key.to_uppercase())))
/// });
/// # let _ = source;
/// ```
pub fn source_fn<F, Fut>(f: F) -> FnSource<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = FetchResult> + Send + 'static,
{
    FnSource(f)
}

/// The [`DataSource`] returned by [`source_fn`].
pub struct FnSource<F>(F);

#[async_trait]
impl<F, Fut> DataSource for FnSource<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = FetchResult> + Send + 'static,
{
    async fn fetch(&self, key: &str) -> FetchResult {
        (self.0)(key.to_owned()).await
    }
}

/// The source of a put-only keyspace: every key is not found.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSource;

#[async_trait]
impl DataSource for NoSource {
    async fn fetch(&self, _key: &str) -> FetchResult {
        Ok(None)
    }

    async fn fetch_many(&self, keys: &[String]) -> Vec<FetchResult> {
        keys.iter().map(|_| Ok(None)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default fetch_many answers one result per key, in order.
    #[tokio::test]
    async fn default_fetch_many_keeps_order() {
        let source = source_fn(|key: String| async move {
            match key.as_str() {
                "missing" => Ok(None),
                "broken" => Err(SourceError::new("boom")),
                _ => Ok(Some(Fetched::new(key))),
            }
        });
        let keys: Vec<String> = ["a", "missing", "broken", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let results = source.fetch_many(&keys).await;
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().ok(), Some(&Some(Fetched::new("a"))));
        assert_eq!(results[1].as_ref().ok(), Some(&None));
        assert!(results[2].is_err());
        assert_eq!(results[3].as_ref().ok(), Some(&Some(Fetched::new("b"))));
    }

    /// An expiry in the past means "do not cache".
    #[test]
    fn until_in_the_past_is_zero_ttl() {
        let f = Fetched::until("v", SystemTime::UNIX_EPOCH);
        assert_eq!(f.ttl, Some(Duration::ZERO));
    }
}
