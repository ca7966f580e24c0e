//! The engine's error type and the stable machine codes that identify each error.
//!
//! Every error has a [`ErrorCode`]: a short, stable, SCREAMING_SNAKE_CASE name that travels on
//! the wire (HTTP bodies, peer responses, CLI JSON output) so that the receiver can rebuild the
//! same typed error. Messages are lowercase and name the thing that went wrong.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in an engine operation.
///
/// Errors are cheap to clone: a single-flight load hands the same error to every caller that
/// waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The keyspace is not in the catalog.
    #[error("keyspace `{0}` not found")]
    KeySpaceNotFound(String),
    /// `create_keyspace` was asked for a name that already exists.
    #[error("keyspace `{0}` already exists")]
    KeySpaceExists(String),
    /// A compare-and-set catalog change expected another revision.
    #[error("catalog revision is {actual}, the change expected {expected}")]
    RevisionMismatch {
        /// The revision the caller expected.
        expected: u64,
        /// The revision the catalog is at.
        actual: u64,
    },
    /// A key was empty.
    #[error("key must not be empty")]
    EmptyKey,
    /// A key was longer than the engine's `max_key_bytes`.
    #[error("key is {len} bytes, over the limit of {max} bytes")]
    KeyTooLarge {
        /// Length of the key in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value was larger than the engine's `max_value_bytes` or than the keyspace can hold.
    #[error("value is {len} bytes, over the limit of {max} bytes")]
    ValueTooLarge {
        /// Length of the value in bytes.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// A request was malformed in a way no other variant describes (a zero TTL, bad JSON…).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A batch named more keys than the engine's `max_batch_keys`.
    #[error("batch has {len} keys, over the limit of {max}")]
    BatchTooLarge {
        /// Number of keys in the batch.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The keyspace's rate limiter had no token and `wait_timeout` is zero.
    #[error("data source of keyspace `{0}` is rate limited")]
    DataSourceRateLimited(String),
    /// The keyspace's circuit breaker is open: the data source was not called.
    #[error("circuit breaker of keyspace `{0}` is open")]
    DataSourceCircuitOpen(String),
    /// An operation ran out of time (a fetch past `read_timeout`, a rate-limiter wait past
    /// `wait_timeout`, a remote call past its deadline).
    #[error("{operation} timed out after {}", humantime::format_duration(*.after))]
    Timeout {
        /// What timed out, e.g. `fetch` or `rate limiter wait`.
        operation: String,
        /// The deadline that was exceeded.
        after: Duration,
    },
    /// The data source failed to fetch a key.
    #[error("data source failed: {0}")]
    DataSource(#[from] SourceError),
    /// A keyspace spec was rejected; every bad field is listed.
    #[error("invalid keyspace spec: {0}")]
    InvalidSpec(Problems),
    /// The engine configuration was rejected; every problem is listed.
    #[error("invalid configuration: {0}")]
    InvalidConfig(Problems),
    /// The engine has not been started, or has been stopped.
    #[error("engine is not running")]
    NotRunning,
    /// The request lacked the cluster's bearer token, or carried another one.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request's token is known but lacks the role or the keyspace the request needs; the
    /// message names which.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A dependency the operation needs (the catalog, a peer) cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The node is at a limit of work in progress (a keyspace's `max_queued_loads`, or
    /// `server.max_in_flight` requests) and refused the request at once, rather than queue
    /// it without bound; the message names the limit. Safe to retry after a short pause.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// An invariant broke inside the engine; the message says which.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable machine code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::KeySpaceNotFound(_) => ErrorCode::KeyspaceNotFound,
            Error::KeySpaceExists(_) => ErrorCode::KeyspaceExists,
            Error::RevisionMismatch { .. } => ErrorCode::RevisionMismatch,
            Error::EmptyKey => ErrorCode::EmptyKey,
            Error::KeyTooLarge { .. } => ErrorCode::KeyTooLarge,
            Error::ValueTooLarge { .. } => ErrorCode::ValueTooLarge,
            Error::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Error::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            Error::DataSourceRateLimited(_) => ErrorCode::DataSourceRateLimited,
            Error::DataSourceCircuitOpen(_) => ErrorCode::DataSourceCircuitOpen,
            Error::Timeout { .. } => ErrorCode::Timeout,
            Error::DataSource(_) => ErrorCode::DataSourceError,
            Error::InvalidSpec(_) => ErrorCode::InvalidSpec,
            Error::InvalidConfig(_) => ErrorCode::InvalidConfig,
            Error::NotRunning => ErrorCode::NotRunning,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
            Error::Overloaded(_) => ErrorCode::Overloaded,
        }
    }

    /// A timeout error for `operation` after `after`.
    pub(crate) fn timeout(operation: impl Into<String>, after: Duration) -> Self {
        Error::Timeout {
            operation: operation.into(),
            after,
        }
    }
}

/// Stable machine codes of [`Error`], as they appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// [`Error::KeySpaceNotFound`].
    KeyspaceNotFound,
    /// [`Error::KeySpaceExists`].
    KeyspaceExists,
    /// [`Error::RevisionMismatch`].
    RevisionMismatch,
    /// [`Error::EmptyKey`].
    EmptyKey,
    /// [`Error::KeyTooLarge`].
    KeyTooLarge,
    /// [`Error::ValueTooLarge`].
    ValueTooLarge,
    /// [`Error::InvalidRequest`].
    InvalidRequest,
    /// [`Error::BatchTooLarge`].
    BatchTooLarge,
    /// [`Error::DataSourceRateLimited`].
    DataSourceRateLimited,
    /// [`Error::DataSourceCircuitOpen`].
    DataSourceCircuitOpen,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::DataSource`].
    DataSourceError,
    /// [`Error::InvalidSpec`].
    InvalidSpec,
    /// [`Error::InvalidConfig`].
    InvalidConfig,
    /// [`Error::NotRunning`].
    NotRunning,
    /// [`Error::Unauthorized`].
    Unauthorized,
    /// [`Error::Forbidden`].
    Forbidden,
    /// [`Error::Unavailable`].
    Unavailable,
    /// [`Error::Internal`].
    Internal,
    /// [`Error::Overloaded`].
    Overloaded,
}

impl ErrorCode {
    /// Every code, in declaration order (a test checks that none is missing).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::KeyspaceNotFound,
        ErrorCode::KeyspaceExists,
        ErrorCode::RevisionMismatch,
        ErrorCode::EmptyKey,
        ErrorCode::KeyTooLarge,
        ErrorCode::ValueTooLarge,
        ErrorCode::InvalidRequest,
        ErrorCode::BatchTooLarge,
        ErrorCode::DataSourceRateLimited,
        ErrorCode::DataSourceCircuitOpen,
        ErrorCode::Timeout,
        ErrorCode::DataSourceError,
        ErrorCode::InvalidSpec,
        ErrorCode::InvalidConfig,
        ErrorCode::NotRunning,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::Overloaded,
    ];

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::KeyspaceNotFound => "KEYSPACE_NOT_FOUND",
            ErrorCode::KeyspaceExists => "KEYSPACE_EXISTS",
            ErrorCode::RevisionMismatch => "REVISION_MISMATCH",
            ErrorCode::EmptyKey => "EMPTY_KEY",
            ErrorCode::KeyTooLarge => "KEY_TOO_LARGE",
            ErrorCode::ValueTooLarge => "VALUE_TOO_LARGE",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::BatchTooLarge => "BATCH_TOO_LARGE",
            ErrorCode::DataSourceRateLimited => "DATA_SOURCE_RATE_LIMITED",
            ErrorCode::DataSourceCircuitOpen => "DATA_SOURCE_CIRCUIT_OPEN",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::DataSourceError => "DATA_SOURCE_ERROR",
            ErrorCode::InvalidSpec => "INVALID_SPEC",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::NotRunning => "NOT_RUNNING",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Overloaded => "OVERLOADED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure reported by a [`DataSource`](crate::DataSource).
///
/// Carries a message and, when there is one, the underlying error. Cloning shares the source.
#[derive(Debug, Clone)]
pub struct SourceError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    refused: bool,
}

impl SourceError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
            source: None,
            refused: false,
        }
    }

    /// The source cannot be asked for this key at all (it cannot express it), described by
    /// `message`. Not a sign of an unhealthy source: the circuit breaker does not count it.
    pub fn refused(message: impl Into<String>) -> Self {
        SourceError {
            refused: true,
            ..SourceError::new(message)
        }
    }

    /// True for [`refused`](Self::refused) keys.
    pub fn is_refusal(&self) -> bool {
        self.refused
    }

    /// A failure caused by `error`, described by `message`.
    pub fn with_cause(
        message: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SourceError {
            message: message.into(),
            source: Some(Arc::new(error)),
            refused: false,
        }
    }

    /// The message, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(cause) => write!(f, "{}: {cause}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// One problem found while validating a spec or a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Dotted path of the offending field, e.g. `rate_limit.burst` or `keyspaces[users].name`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found by one validation, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// No problems yet.
    pub fn new() -> Self {
        Problems(Vec::new())
    }

    /// Records a problem with `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(field, message));
    }

    /// Records every problem of `other`, with `prefix.` before each field.
    pub fn extend_prefixed(&mut self, prefix: &str, other: Problems) {
        for p in other.0 {
            self.0
                .push(Problem::new(format!("{prefix}.{}", p.field), p.message));
        }
    }

    /// Records a problem with `field` when `value` is zero or over `max`.
    pub fn duration_within(&mut self, field: &str, value: Duration, max: Duration) {
        if value.is_zero() {
            self.push(field, "must be greater than zero");
        } else if value > max {
            self.push(
                field,
                format!(
                    "is {}, over the maximum of {}",
                    crate::units::format_duration(value),
                    crate::units::format_duration(max)
                ),
            );
        }
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems found.
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// `Ok(())` when empty, else `Err(wrap(self))`.
    pub fn into_result(self, wrap: impl FnOnce(Problems) -> Error) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(wrap(self))
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// An error with its causes, outermost first (`a: b: c`): library errors such as reqwest's
/// keep the telling part ("connection refused") in their sources.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code round-trips through its wire form.
    #[test]
    fn codes_serialize_as_their_wire_names() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, code);
        }
    }

    /// Problems print every field, separated, in order.
    #[test]
    fn problems_list_every_field() {
        let mut p = Problems::new();
        p.push("name", "must not be empty");
        p.push("max_bytes", "must be greater than zero");
        let err = Error::InvalidSpec(p);
        assert_eq!(
            err.to_string(),
            "invalid keyspace spec: name: must not be empty; max_bytes: must be greater than zero"
        );
    }

    /// A timeout names what timed out and after how long, in human units.
    #[test]
    fn timeout_message_is_human() {
        let err = Error::timeout("fetch", Duration::from_millis(250));
        assert_eq!(err.to_string(), "fetch timed out after 250ms");
        assert_eq!(err.code(), ErrorCode::Timeout);
    }

    /// A source error shows its cause.
    #[test]
    fn source_error_shows_cause() {
        let io = std::io::Error::other("connection reset");
        let err = SourceError::with_cause("query failed", io);
        assert_eq!(err.to_string(), "query failed: connection reset");
        assert!(std::error::Error::source(&err).is_some());
    }
}
