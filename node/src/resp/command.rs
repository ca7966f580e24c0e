//! What the connection and the commands share: one command as read off the connection,
//! the failure a command answers instead of its reply, the connection's access (the grant
//! its token gave), and the small checks every command makes of its arguments.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::reply::Reply;
use crate::error::Error;
use crate::server::auth::{self, Grant, Role};

/// One command as read: its bytes, where each argument lies in them, and when it was read.
pub(crate) struct Command<'a> {
    frame: &'a [u8],
    /// The same bytes split off the read buffer, for commands that keep values (`SET`).
    shared: Option<&'a Bytes>,
    args: &'a [Range<usize>],
    received: tokio::time::Instant,
}

impl<'a> Command<'a> {
    /// The command of `args` (at least one) in `frame`, borrowed from the read buffer.
    pub fn borrowed(
        frame: &'a [u8],
        args: &'a [Range<usize>],
        received: tokio::time::Instant,
    ) -> Self {
        Command {
            frame,
            shared: None,
            args,
            received,
        }
    }

    /// The command of `args` in `frame`, split off the read buffer: its values are kept
    /// without a copy.
    pub fn shared(
        frame: &'a Bytes,
        args: &'a [Range<usize>],
        received: tokio::time::Instant,
    ) -> Self {
        Command {
            frame,
            shared: Some(frame),
            args,
            received,
        }
    }

    /// When the command was read: its deadline runs from then.
    pub fn received(&self) -> tokio::time::Instant {
        self.received
    }

    /// Arguments, the name included.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` (0 is the name); empty past the end.
    pub fn arg(&self, i: usize) -> &'a [u8] {
        self.args
            .get(i)
            .and_then(|r| self.frame.get(r.clone()))
            .unwrap_or_default()
    }

    /// Argument `i` as bytes of its own: sharing the read buffer when the command was
    /// split off it ([`keeps_values`]), else copied.
    pub fn value(&self, i: usize) -> Bytes {
        let Some(range) = self.args.get(i).filter(|r| r.end <= self.frame.len()) else {
            return Bytes::new();
        };
        match self.shared {
            Some(shared) => shared.slice(range.clone()),
            None => Bytes::copy_from_slice(&self.frame[range.clone()]),
        }
    }

    /// Arguments from `i` on.
    pub fn rest(&self, i: usize) -> impl Iterator<Item = &'a [u8]> + '_ {
        (i..self.len()).map(|i| self.arg(i))
    }
}

/// Whether a command named `name` stores values: it is split off the read buffer, so that
/// the values reach the engine without a copy. Every other command is read in place.
pub(crate) fn keeps_values(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"SET") || name.eq_ignore_ascii_case(b"MSET")
}

/// Why a command was not done, written instead of its reply.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An engine error: `-<CODE> message`.
    Engine(Error),
    /// A Redis-style error with this code (`ERR`, `NOPROTO`).
    Plain(&'static str, String),
}

impl Failure {
    /// `-ERR message`.
    pub fn err(message: impl Into<String>) -> Self {
        Failure::Plain("ERR", message.into())
    }

    /// Appends the error reply.
    pub fn write(&self, out: &mut Reply) {
        match self {
            Failure::Engine(e) => out.engine_error(e),
            Failure::Plain(code, message) => out.error(code, message),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Engine(e)
    }
}

/// What a connection may do: the grant of the token it authenticated with.
#[derive(Default)]
pub(crate) struct Access {
    /// `None` before `AUTH`, and always on an open node.
    grant: Option<Arc<Grant>>,
}

impl Access {
    /// Whether the connection has authenticated.
    pub fn granted(&self) -> bool {
        self.grant.is_some()
    }

    /// From now on, what `grant` allows.
    pub fn grant(&mut self, grant: Arc<Grant>) {
        self.grant = Some(grant);
    }

    /// `FORBIDDEN` unless the connection's token may do `action` (needing `role`) on
    /// `keyspace`; an open node allows everything.
    pub fn permit(&self, role: Role, keyspace: &str, action: &str) -> Result<(), Error> {
        match &self.grant {
            Some(grant) => auth::permit(grant, role, Some(keyspace), action),
            None => Ok(()),
        }
    }
}

/// What a command answers besides what it wrote: a failure to write instead.
pub(crate) type Done = Result<(), Failure>;

/// `-ERR wrong number of arguments for '<name>' command`, Redis' words.
pub(crate) fn wrong_arity(name: &str) -> Failure {
    Failure::err(format!("wrong number of arguments for '{name}' command"))
}

/// A failure unless `command` has exactly `n` arguments (the name included).
pub(crate) fn arity(command: &Command<'_>, n: usize, name: &str) -> Done {
    if command.len() == n {
        Ok(())
    } else {
        Err(wrong_arity(name))
    }
}

/// A whole decimal number, as Redis accepts them.
pub(crate) fn parse_int(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}
