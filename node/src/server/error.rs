//! Every error a route answers: a status code and a JSON body with a stable `code`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorCode};
use crate::wire::{ErrorBody, WireCode};

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Box<ErrorBody>,
}

impl ApiError {
    /// A response with `status` and `body`.
    pub fn new(status: StatusCode, body: ErrorBody) -> Self {
        ApiError {
            status,
            body: Box::new(body),
        }
    }

    /// 404 for a key the source does not have.
    pub fn key_not_found(keyspace: &str, key: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorBody::key_not_found(keyspace, key),
        )
    }

    /// 400 for a request that could not be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::from(Error::InvalidRequest(message.into()))
    }

    /// The same error with another status.
    pub fn with_status(self, status: StatusCode) -> Self {
        ApiError { status, ..self }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A wire-only error (`NOT_FOUND`, `METHOD_NOT_ALLOWED`, `WARMUP_NOT_FOUND`).
    pub fn plain(status: StatusCode, code: WireCode, message: impl Into<String>) -> Self {
        let mut body = ErrorBody::invalid_request(String::new());
        body.code = code.as_str().to_owned();
        body.message = message.into();
        ApiError::new(status, body)
    }
}

/// The HTTP status of each error code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::KeyspaceNotFound => StatusCode::NOT_FOUND,
        ErrorCode::KeyspaceExists | ErrorCode::RevisionMismatch => StatusCode::CONFLICT,
        ErrorCode::EmptyKey
        | ErrorCode::KeyTooLarge
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidSpec
        | ErrorCode::InvalidConfig => StatusCode::BAD_REQUEST,
        ErrorCode::ValueTooLarge | ErrorCode::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::DataSourceRateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::DataSourceCircuitOpen
        | ErrorCode::NotRunning
        | ErrorCode::Unavailable
        | ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::DataSourceError => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError::new(status_of(err.code()), ErrorBody::from(&err))
    }
}

/// Seconds an `OVERLOADED` answer asks the client to wait before trying again
/// (`Retry-After`): long enough for a queue of loads to drain, short enough not to matter.
pub(crate) const OVERLOADED_RETRY_AFTER_SECS: u32 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let overloaded = self.body.code == ErrorCode::Overloaded.as_str();
        let mut response = (self.status, Json(*self.body)).into_response();
        if overloaded {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(OVERLOADED_RETRY_AFTER_SECS),
            );
        }
        response
    }
}
