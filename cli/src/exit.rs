//! Exit codes, documented in `--help`: 0 ok, 1 error, 2 usage, 3 not found, 4 unavailable,
//! overloaded or timed out, 5 denied (no token, a wrong one, or one without the role or keyspace).

use distcache::Error;

/// Any other failure.
pub const ERROR: u8 = 1;
/// The thing asked for does not exist (a key, a keyspace).
pub const NOT_FOUND: u8 = 3;
/// The cluster could not be reached, was overloaded, or did not answer in time.
pub const UNAVAILABLE: u8 = 4;

/// The node refused the token: missing or wrong (401), or without the role or keyspace the
/// command needs (403).
pub const DENIED: u8 = 5;

/// The exit code of a failed command.
pub fn code_of(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<Error>() {
        return match e {
            Error::KeySpaceNotFound(_) => NOT_FOUND,
            Error::Unavailable(_)
            | Error::Timeout { .. }
            | Error::NotRunning
            | Error::Overloaded(_) => UNAVAILABLE,
            Error::Unauthorized(_) | Error::Forbidden(_) => DENIED,
            _ => ERROR,
        };
    }
    if err.downcast_ref::<NotFound>().is_some() {
        return NOT_FOUND;
    }
    ERROR
}

/// A key (or other thing) that does not exist: exit code 3.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}
