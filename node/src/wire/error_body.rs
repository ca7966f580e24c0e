//! The JSON body of every error: a stable code, a message, and the fields the code needs to
//! rebuild the same typed [`Error`] on the other side.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Problems, SourceError};
use crate::wire::KEY_NOT_FOUND;

/// An error as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `KEYSPACE_NOT_FOUND`. A client should treat a code it does
    /// not know (from a newer node) as an internal error.
    #[schema(schema_with = super::codes::code_schema)]
    pub code: String,
    /// Human message.
    pub message: String,
    /// Keyspace the error is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace: Option<String>,
    /// Size of the offending key, value or batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<usize>,
    /// The limit it exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
    /// What timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// After how long (humantime, e.g. `250ms`).
    #[schema(value_type = Option<String>, example = "250ms")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub after: Option<Duration>,
    /// Revision a compare-and-set expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// Revision the catalog was at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    /// Every problem of an invalid spec or configuration.
    #[schema(value_type = Option<Vec<crate::error::Problem>>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Problems>,
}

impl ErrorBody {
    fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            keyspace: None,
            len: None,
            max: None,
            operation: None,
            after: None,
            expected: None,
            actual: None,
            problems: None,
        }
    }

    /// The body of a key that is not found.
    pub fn key_not_found(keyspace: &str, key: &str) -> Self {
        ErrorBody {
            keyspace: Some(keyspace.to_owned()),
            ..ErrorBody::new(
                KEY_NOT_FOUND,
                format!("key `{key}` not found in keyspace `{keyspace}`"),
            )
        }
    }

    /// The body of a request the server could not read (bad JSON, body too large, bad query).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ErrorBody::from(&Error::InvalidRequest(message.into()))
    }

    /// True for [`KEY_NOT_FOUND`].
    pub fn is_key_not_found(&self) -> bool {
        self.code == KEY_NOT_FOUND
    }

    /// Rebuilds the typed error this body describes. Unknown codes (from a newer node) become
    /// `Internal` errors that keep the code in their message.
    pub fn into_error(self) -> Error {
        let code: Option<ErrorCode> =
            serde_json::from_value(serde_json::Value::String(self.code.clone())).ok();
        let keyspace = || self.keyspace.clone().unwrap_or_default();
        match code {
            Some(ErrorCode::KeyspaceNotFound) => Error::KeySpaceNotFound(keyspace()),
            Some(ErrorCode::KeyspaceExists) => Error::KeySpaceExists(keyspace()),
            Some(ErrorCode::RevisionMismatch) => Error::RevisionMismatch {
                expected: self.expected.unwrap_or_default(),
                actual: self.actual.unwrap_or_default(),
            },
            Some(ErrorCode::EmptyKey) => Error::EmptyKey,
            Some(ErrorCode::KeyTooLarge) => Error::KeyTooLarge {
                len: self.len.unwrap_or_default(),
                max: self.max.unwrap_or_default(),
            },
            Some(ErrorCode::ValueTooLarge) => Error::ValueTooLarge {
                len: self.len.unwrap_or_default(),
                max: self.max.unwrap_or_default(),
            },
            Some(ErrorCode::InvalidRequest) => {
                Error::InvalidRequest(strip(&self.message, "invalid request: "))
            }
            Some(ErrorCode::BatchTooLarge) => Error::BatchTooLarge {
                len: self.len.unwrap_or_default(),
                max: self.max.unwrap_or_default(),
            },
            Some(ErrorCode::DataSourceRateLimited) => Error::DataSourceRateLimited(keyspace()),
            Some(ErrorCode::DataSourceCircuitOpen) => Error::DataSourceCircuitOpen(keyspace()),
            Some(ErrorCode::Timeout) => Error::Timeout {
                operation: self.operation.unwrap_or_else(|| "remote call".into()),
                after: self.after.unwrap_or_default(),
            },
            Some(ErrorCode::DataSourceError) => Error::DataSource(SourceError::new(strip(
                &self.message,
                "data source failed: ",
            ))),
            Some(ErrorCode::InvalidSpec) => {
                Error::InvalidSpec(self.problems.unwrap_or_else(|| single(&self.message)))
            }
            Some(ErrorCode::InvalidConfig) => {
                Error::InvalidConfig(self.problems.unwrap_or_else(|| single(&self.message)))
            }
            Some(ErrorCode::NotRunning) => Error::NotRunning,
            Some(ErrorCode::Unauthorized) => {
                Error::Unauthorized(strip(&self.message, "unauthorized: "))
            }
            Some(ErrorCode::Forbidden) => Error::Forbidden(strip(&self.message, "forbidden: ")),
            Some(ErrorCode::Unavailable) => {
                Error::Unavailable(strip(&self.message, "unavailable: "))
            }
            Some(ErrorCode::Internal) => Error::Internal(strip(&self.message, "internal error: ")),
            Some(ErrorCode::Overloaded) => Error::Overloaded(strip(&self.message, "overloaded: ")),
            None => Error::Internal(format!("{} ({})", self.message, self.code)),
        }
    }
}

fn strip(message: &str, prefix: &str) -> String {
    message.strip_prefix(prefix).unwrap_or(message).to_owned()
}

fn single(message: &str) -> Problems {
    let mut p = Problems::new();
    p.push("spec", message);
    p
}

impl From<&Error> for ErrorBody {
    fn from(err: &Error) -> Self {
        let mut body = ErrorBody::new(err.code().as_str(), err.to_string());
        match err {
            Error::KeySpaceNotFound(ks)
            | Error::KeySpaceExists(ks)
            | Error::DataSourceRateLimited(ks)
            | Error::DataSourceCircuitOpen(ks) => body.keyspace = Some(ks.clone()),
            Error::RevisionMismatch { expected, actual } => {
                body.expected = Some(*expected);
                body.actual = Some(*actual);
            }
            Error::KeyTooLarge { len, max }
            | Error::ValueTooLarge { len, max }
            | Error::BatchTooLarge { len, max } => {
                body.len = Some(*len);
                body.max = Some(*max);
            }
            Error::Timeout { operation, after } => {
                body.operation = Some(operation.clone());
                body.after = Some(*after);
            }
            Error::InvalidSpec(p) | Error::InvalidConfig(p) => body.problems = Some(p.clone()),
            _ => {}
        }
        body
    }
}
