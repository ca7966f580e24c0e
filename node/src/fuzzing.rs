//! Entry points for fuzzing: each feeds one input to every parser of a family the way a node
//! reads it, and checks what must hold for any input — a bad input is refused with a message
//! that says what is wrong, a good one reads back the same after it is written out. The
//! cargo-fuzz targets in `fuzz/` panic on an `Err`; the property tests in `tests/fuzz` assert
//! on it. Not part of the API: hidden from the docs, and free to change.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::Limits;
use crate::node::NodeConfig;
use crate::server::auth::{KeyspacePattern, Tokens};
use crate::spec::parse_keyspaces;
use crate::transport::HotKeysByKeyspace;
use crate::units::{format_duration, parse_bytes, parse_duration};
use crate::wire::{
    BatchResponse, ErrorBody, HandoffEntry, Health, KeyOutcome, KeysRequest, PutManyRequest,
    WarmOutcome,
};

/// What did not hold, in words.
pub type Violation = String;

/// A keyspace file's text, as JSON (`json`) or TOML: specs or a message; specs that pass
/// validation read back the same from their JSON, and every problem names its field.
pub fn keyspace_file(text: &str, json: bool) -> Result<(), Violation> {
    let specs = match parse_keyspaces(text, json) {
        Ok(specs) => specs,
        Err(message) if message.trim().is_empty() => return Err("an empty error".into()),
        Err(_) => return Ok(()),
    };
    for spec in specs {
        let problems = spec.problems(&Limits::default());
        if problems
            .iter()
            .any(|p| p.field.is_empty() || p.message.is_empty())
        {
            return Err(format!(
                "a problem without a field or message: {problems:?}"
            ));
        }
        let written = serde_json::to_string(&spec).map_err(|e| format!("cannot write: {e}"))?;
        let back = parse_keyspaces(&format!("[{written}]"), true)
            .map_err(|e| format!("{written} does not read back: {e}"))?;
        if back.first() != Some(&spec) && problems.is_empty() {
            return Err(format!("{written} reads back as {back:?}"));
        }
    }
    Ok(())
}

/// A node's `--config` text: a configuration or an error naming the line; a configuration's
/// problems each name their field. File paths are dropped before the check, which would read
/// them.
pub fn node_config(text: &str) -> Result<(), Violation> {
    let mut config = match NodeConfig::from_toml(text) {
        Ok(config) => config,
        Err(e) if e.to_string().contains("line ") => return Ok(()),
        Err(e) => return Err(format!("the error does not say where: {e}")),
    };
    config.server.tokens_file = None;
    config.tls = None;
    let problems = config.problems();
    if problems
        .iter()
        .any(|p| p.field.is_empty() || p.message.is_empty())
    {
        return Err(format!(
            "a problem without a field or message: {problems:?}"
        ));
    }
    Ok(())
}

/// A byte size or a duration as text: a value that reads back the same once written, or a
/// message that quotes the text.
pub fn units(text: &str) -> Result<(), Violation> {
    let quoted = |message: &str| message.contains(text.trim());
    match parse_bytes(text) {
        Ok(n) if parse_bytes(&n.to_string()) != Ok(n) => {
            return Err(format!("{text:?} is {n} bytes, which does not read back"));
        }
        Err(message) if !quoted(&message) => return Err(format!("{message:?} for {text:?}")),
        _ => {}
    }
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    match parse_duration(text) {
        Ok(d) if d <= CENTURY && parse_duration(&format_duration(d)) != Ok(d) => {
            Err(format!("{text:?} is {d:?}, which does not read back"))
        }
        Err(message) if !quoted(&message) => Err(format!("{message:?} for {text:?}")),
        _ => Ok(()),
    }
}

/// A tokens file's text, and the text as a keyspace pattern: read, or refused naming the
/// entry and field of every problem.
pub fn tokens(text: &str) -> Result<(), Violation> {
    if let Err(problems) = Tokens::parse(text) {
        let unnamed = problems.iter().find(|p| {
            !(p.field == "toml" || p.field.starts_with("token[")) || p.message.is_empty()
        });
        if problems.is_empty() || unnamed.is_some() {
            return Err(format!("unnamed problems: {problems:?}"));
        }
    }
    match KeyspacePattern::parse(text) {
        Ok(pattern) if pattern.to_string() != text => {
            Err(format!("{text:?} reads as the pattern {pattern}"))
        }
        Err(message) if message.is_empty() => Err(format!("an empty error for {text:?}")),
        _ => Ok(()),
    }
}

/// Bytes a peer sent, read as each message of the peer routes and their answers: each is
/// the message, which reads back the same once written, or an error; a per-key outcome and an
/// error body become typed results whatever they hold.
pub fn wire(bytes: &[u8]) -> Result<(), Violation> {
    round_trip::<KeysRequest>(bytes)?;
    round_trip::<PutManyRequest>(bytes)?;
    round_trip::<BatchResponse>(bytes)?;
    round_trip::<HandoffEntry>(bytes)?;
    round_trip::<Health>(bytes)?;
    round_trip::<WarmOutcome>(bytes)?;
    round_trip::<HotKeysByKeyspace>(bytes)?;
    if let Some(outcome) = round_trip::<KeyOutcome>(bytes)? {
        let _ = outcome.clone().into_get();
        let _ = outcome.into_write();
    }
    if let Some(body) = round_trip::<ErrorBody>(bytes)? {
        let error = body.into_error();
        if error.to_string().is_empty() {
            return Err(format!("{error:?} has no message"));
        }
    }
    Ok(())
}

/// `bytes` as a `T`, checked to read back the same once written; `None` when they are not one.
fn round_trip<T>(bytes: &[u8]) -> Result<Option<T>, Violation>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value = match serde_json::from_slice::<T>(bytes) {
        Ok(value) => value,
        Err(e) if e.to_string().is_empty() => return Err("an empty error".into()),
        Err(_) => return Ok(None),
    };
    let written = serde_json::to_vec(&value).map_err(|e| format!("cannot write: {e}"))?;
    match serde_json::from_slice::<T>(&written) {
        Ok(back) if back == value => Ok(Some(value)),
        other => Err(format!(
            "{value:?} written as {} reads back as {other:?}",
            String::from_utf8_lossy(&written)
        )),
    }
}
