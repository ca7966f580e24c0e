//! Reading commands off a RESP connection: RESP arrays of bulk strings (what every client
//! sends) and inline commands (`PING\r\n`, what a person types into `telnet`), within limits.
//!
//! [`parse`] looks at the bytes a connection has buffered and answers how long the first
//! complete command is, recording where each argument lies in it; it copies nothing and
//! allocates nothing once the argument list has grown to its working size. The connection
//! then splits exactly those bytes off its buffer (`BytesMut::split_to`, no copy), so a
//! `SET`'s value reaches the engine as a slice of the bytes read off the socket.
//!
//! Bad input never hurts: every length is bounded before anything is waited for or
//! reserved (a bulk string by the engine's largest value, an array by the largest batch, an
//! inline command and a whole command by their own limits), and any other byte sequence is
//! a [`ProtocolError`] — the connection answers `-ERR Protocol error: …` and closes.

use std::ops::Range;

/// Longest inline command, and longest line of an array or bulk header (as Redis).
pub(crate) const MAX_INLINE_BYTES: usize = 64 << 10;

/// Longest `*<count>` or `$<length>` line: a sign and 20 digits are plenty for any length.
const MAX_NUMBER_LINE: usize = 24;

/// What a command may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodecLimits {
    /// Longest bulk string (an argument): the engine's `max_value_bytes`.
    pub max_bulk: usize,
    /// Most arguments in one command: room for an `MSET` of the engine's largest batch.
    pub max_args: usize,
    /// Longest command, all its bytes: what a connection may buffer for one.
    pub max_command: usize,
}

impl CodecLimits {
    /// The limits for an engine with `max_value_bytes`, `max_batch_keys` and a request body
    /// limit of `max_request_bytes` (a command is at least as large as its largest value).
    pub fn new(max_value_bytes: usize, max_batch_keys: usize, max_request_bytes: usize) -> Self {
        CodecLimits {
            max_bulk: max_value_bytes,
            max_args: max_batch_keys.saturating_mul(2).saturating_add(2),
            max_command: max_request_bytes.max(max_value_bytes.saturating_add(64 << 10)),
        }
    }
}

/// Input that is not a command; the connection closes after saying so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    /// An array element that is not a bulk string.
    #[error("expected '$', got '{}'", char::from(*.0).escape_default())]
    ExpectedBulk(u8),
    /// A count or length that is not a number.
    #[error("invalid {0}")]
    BadNumber(&'static str),
    /// An array over the argument limit.
    #[error("invalid multibulk length: {len} arguments, over the limit of {max}")]
    TooManyArgs {
        /// What the client announced.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// A bulk string over the value limit.
    #[error("invalid bulk length: {len} bytes, over the limit of {max} (max_value_bytes)")]
    BulkTooLong {
        /// What the client announced.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// A command over the per-command limit.
    #[error("command of more than {max} bytes")]
    CommandTooLong {
        /// The limit.
        max: usize,
    },
    /// An inline command (or a header line) without its end.
    #[error("too big inline request")]
    InlineTooLong,
    /// A bulk string not followed by `\r\n`.
    #[error("bulk string not terminated by CRLF")]
    Unterminated,
    /// An inline command with a quote or a NUL byte: quoting is for clients, which send
    /// arrays.
    #[error("quotes and NUL bytes are not supported in inline commands")]
    BadInline,
}

/// Where the first complete command of `buf` ends, with the range in `buf` of each of its
/// arguments in `args` (cleared first); `None` while it is incomplete. An empty command (a
/// blank inline line, `*0`) is complete with no arguments: the caller skips it.
pub(crate) fn parse(
    buf: &[u8],
    limits: &CodecLimits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_array(buf, limits, args),
        Some(_) => parse_inline(buf, args),
    }
}

fn parse_array(
    buf: &[u8],
    limits: &CodecLimits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some((count, mut at)) = number_line(buf, 1, "multibulk length")? else {
        return Ok(None);
    };
    if count <= 0 {
        return Ok(Some(at));
    }
    if count as u64 > limits.max_args as u64 {
        return Err(ProtocolError::TooManyArgs {
            len: count,
            max: limits.max_args,
        });
    }
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError::ExpectedBulk(other)),
        }
        let Some((len, start)) = number_line(buf, at + 1, "bulk length")? else {
            return Ok(None);
        };
        if len < 0 {
            return Err(ProtocolError::BadNumber("bulk length"));
        }
        if len as u64 > limits.max_bulk as u64 {
            return Err(ProtocolError::BulkTooLong {
                len,
                max: limits.max_bulk,
            });
        }
        let end = start + len as usize;
        if end.saturating_add(2) > limits.max_command {
            return Err(ProtocolError::CommandTooLong {
                max: limits.max_command,
            });
        }
        match buf.get(end..end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(ProtocolError::Unterminated),
        }
        args.push(start..end);
        at = end + 2;
    }
    Ok(Some(at))
}

/// The number on the line starting at `from` (after its `*` or `$`) and where the next line
/// starts; `None` while the line is incomplete.
fn number_line(
    buf: &[u8],
    from: usize,
    what: &'static str,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = buf.get(from..).unwrap_or_default();
    let window = &rest[..rest.len().min(MAX_NUMBER_LINE)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if rest.len() >= MAX_NUMBER_LINE {
            return Err(ProtocolError::BadNumber(what));
        }
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProtocolError::BadNumber(what)),
    }
    let number = parse_i64(&rest[..cr]).ok_or(ProtocolError::BadNumber(what))?;
    Ok(Some((number, from + cr + 2)))
}

/// A decimal number with an optional `-`, as Redis writes them; nothing else.
fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// An inline command: one line, arguments split at spaces and tabs.
fn parse_inline(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_INLINE_BYTES)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_INLINE_BYTES {
            return Err(ProtocolError::InlineTooLong);
        }
        return Ok(None);
    };
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let line = &buf[..line_end];
    if line.iter().any(|&b| b == 0 || b == b'"' || b == b'\'') {
        return Err(ProtocolError::BadInline);
    }
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        let blank = b == b' ' || b == b'\t' || b == b'\r';
        match (blank, start) {
            (true, Some(s)) => {
                args.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        args.push(s..line.len());
    }
    Ok(Some(newline + 1))
}

#[cfg(test)]
mod tests;
