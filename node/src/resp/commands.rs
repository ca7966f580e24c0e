//! The data commands — `GET`, `SET`, `MGET`, `MSET`, `DEL`, `EXISTS` — over the engine,
//! with the HTTP API's semantics, and how a Redis key names a keyspace.
//!
//! `users:42` is key `42` of keyspace `users` (split at the first `:`); a key without a `:`
//! belongs to `server.resp_default_keyspace`, else it is refused. The many-key commands
//! group their keys by keyspace and make one batch call per keyspace (`get_many`,
//! `put_many`, `delete_many`), all under one deadline. `DEL` counts the keys removed
//! without error (the engine does not say whether a key was there), and `EXISTS` the keys a
//! read finds, loading them like `GET` does: a key the source has exists.

use std::time::Duration;

use bytes::Bytes;

use super::Front;
use super::command::{Access, Command, Done, Failure, parse_int, wrong_arity};
use super::reply::Reply;
use crate::entry::Entry;
use crate::error::Error;
use crate::server::auth::Role;

/// The keyspace and key a Redis key names.
fn split<'a>(front: &'a Front, raw: &'a [u8]) -> Result<(&'a str, &'a str), Failure> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(Error::InvalidRequest("the key is not UTF-8".into()).into());
    };
    // `:` is ASCII: the bytes around it are whole UTF-8 strings.
    match raw.iter().position(|&b| b == b':') {
        Some(at) => Ok((&text[..at], &text[at + 1..])),
        None => match &front.default_keyspace {
            Some(keyspace) => Ok((keyspace.as_str(), text)),
            None => Err(Failure::err(format!(
                "key `{}` names no keyspace: write keyspace:key (e.g. users:42), or start the \
                 node with --resp-default-keyspace",
                text.chars().take(128).collect::<String>()
            ))),
        },
    }
}

/// `GET key`: the value, loaded through the owner and the source on a miss; nil when
/// neither the cache nor the source has it.
pub(super) async fn get(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    out: &mut Reply,
) -> Done {
    if cmd.len() != 2 {
        return Err(wrong_arity("get"));
    }
    let (keyspace, key) = split(front, cmd.arg(1))?;
    access.permit(Role::Read, keyspace, "GET")?;
    let value = front
        .bounded(cmd.received(), front.engine.get(keyspace, key))
        .await?;
    out.optional(value.as_deref());
    Ok(())
}

/// `SET key value [EX seconds | PX milliseconds]`; the other options of Redis' `SET` are
/// refused by name.
pub(super) async fn set(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    out: &mut Reply,
) -> Done {
    if cmd.len() < 3 {
        return Err(wrong_arity("set"));
    }
    let (keyspace, key) = split(front, cmd.arg(1))?;
    let ttl = set_ttl(cmd)?;
    access.permit(Role::Write, keyspace, "SET")?;
    let value = cmd.value(2);
    let engine = &front.engine;
    match ttl {
        Some(ttl) => {
            front
                .bounded(
                    cmd.received(),
                    engine.put_with_ttl(keyspace, key, value, ttl),
                )
                .await?
        }
        None => {
            front
                .bounded(cmd.received(), engine.put(keyspace, key, value))
                .await?
        }
    }
    out.ok();
    Ok(())
}

/// The expiry `SET`'s options give, if any.
fn set_ttl(cmd: &Command<'_>) -> Result<Option<Duration>, Failure> {
    let mut ttl = None;
    let mut i = 3;
    while i < cmd.len() {
        let option = cmd.arg(i);
        let unit = if option.eq_ignore_ascii_case(b"EX") {
            Duration::from_secs(1)
        } else if option.eq_ignore_ascii_case(b"PX") {
            Duration::from_millis(1)
        } else if [&b"NX"[..], b"XX", b"GET", b"KEEPTTL", b"EXAT", b"PXAT"]
            .iter()
            .any(|o| option.eq_ignore_ascii_case(o))
        {
            return Err(Failure::err(format!(
                "SET {} is not supported by distcache (supported: EX, PX)",
                String::from_utf8_lossy(option).to_ascii_uppercase()
            )));
        } else {
            return Err(Failure::err("syntax error"));
        };
        if ttl.is_some() || i + 1 >= cmd.len() {
            return Err(Failure::err("syntax error"));
        }
        let amount = parse_int(cmd.arg(i + 1))
            .ok_or_else(|| Failure::err("value is not an integer or out of range"))?;
        let amount = u32::try_from(amount)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Failure::err("invalid expire time in 'set' command"))?;
        ttl = Some(unit * amount);
        i += 2;
    }
    Ok(ttl)
}

/// The keys of arguments `first..` grouped by keyspace, in the order keyspaces first
/// appear: each keyspace with its keys and their positions among the arguments. Checks
/// the batch limit and the token's `role` on every keyspace.
fn grouped<'a>(
    front: &'a Front,
    access: &Access,
    cmd: &Command<'a>,
    args: impl Iterator<Item = usize>,
    role: Role,
    action: &str,
) -> Result<Vec<Group<'a>>, Failure> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut count = 0;
    for (slot, arg) in args.enumerate() {
        let (keyspace, key) = split(front, cmd.arg(arg))?;
        count += 1;
        match groups.iter_mut().find(|g| g.keyspace == keyspace) {
            Some(group) => group.keys.push((slot, arg, key)),
            None => {
                access.permit(role, keyspace, action)?;
                groups.push(Group {
                    keyspace,
                    keys: vec![(slot, arg, key)],
                });
            }
        }
    }
    front.engine.config().limits.check_batch(count)?;
    Ok(groups)
}

/// Keys of one keyspace in a many-key command: (answer slot, argument, key).
struct Group<'a> {
    keyspace: &'a str,
    keys: Vec<(usize, usize, &'a str)>,
}

impl Group<'_> {
    fn key_list(&self) -> Vec<&str> {
        self.keys.iter().map(|(_, _, key)| *key).collect()
    }
}

/// The values of `keys` in order, each read like `GET` (nil, a value, or an error in its
/// place), and the keys' count.
async fn read_all(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    action: &str,
) -> Result<Vec<Result<Option<Bytes>, Error>>, Failure> {
    let groups = grouped(front, access, cmd, 1..cmd.len(), Role::Read, action)?;
    let mut answers: Vec<Result<Option<Bytes>, Error>> = Vec::new();
    answers.resize_with(cmd.len() - 1, || Ok(None));
    front
        .bounded(cmd.received(), async {
            for group in &groups {
                let results = front
                    .engine
                    .get_many(group.keyspace, &group.key_list())
                    .await?;
                for ((slot, _, _), result) in group.keys.iter().zip(results) {
                    answers[*slot] = result.result;
                }
            }
            Ok(())
        })
        .await?;
    Ok(answers)
}

/// `MGET key…`: one reply per key, nil for a key neither the cache nor the source has, an
/// error in its place for a key that failed alone.
pub(super) async fn mget(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    out: &mut Reply,
) -> Done {
    if cmd.len() < 2 {
        return Err(wrong_arity("mget"));
    }
    let answers = read_all(front, access, cmd, "MGET").await?;
    out.array(answers.len());
    for answer in &answers {
        match answer {
            Ok(value) => out.optional(value.as_deref()),
            Err(e) => out.engine_error(e),
        }
    }
    Ok(())
}

/// `EXISTS key…`: how many of the keys a read finds (a key listed twice counts twice).
pub(super) async fn exists(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    out: &mut Reply,
) -> Done {
    if cmd.len() < 2 {
        return Err(wrong_arity("exists"));
    }
    let mut found = 0;
    for answer in read_all(front, access, cmd, "EXISTS").await? {
        if answer?.is_some() {
            found += 1;
        }
    }
    out.integer(found);
    Ok(())
}

/// `MSET key value …`: every entry stored on its owner (not atomically: an entry that
/// fails fails alone, and the first failure is the reply).
pub(super) async fn mset(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    out: &mut Reply,
) -> Done {
    if cmd.len() < 3 || cmd.len().is_multiple_of(2) {
        return Err(wrong_arity("mset"));
    }
    let keys = (1..cmd.len()).step_by(2);
    let groups = grouped(front, access, cmd, keys, Role::Write, "MSET")?;
    front
        .bounded(cmd.received(), async {
            for group in &groups {
                let entries = group.keys.iter().map(|&(_, arg, key)| Entry {
                    key: key.to_owned(),
                    value: cmd.value(arg + 1),
                    ttl: None,
                });
                let results = front.engine.put_many(group.keyspace, entries).await?;
                if let Some(failed) = results.into_iter().find_map(|r| r.result.err()) {
                    return Err(failed);
                }
            }
            Ok(())
        })
        .await?;
    out.ok();
    Ok(())
}

/// `DEL key…`: removes the keys on their owners (and every copy); answers how many were
/// removed without error.
pub(super) async fn del(
    front: &Front,
    access: &Access,
    cmd: &Command<'_>,
    out: &mut Reply,
) -> Done {
    if cmd.len() < 2 {
        return Err(wrong_arity("del"));
    }
    let groups = grouped(front, access, cmd, 1..cmd.len(), Role::Write, "DEL")?;
    let removed = front
        .bounded(cmd.received(), async {
            let mut removed = 0;
            for group in &groups {
                for result in front
                    .engine
                    .delete_many(group.keyspace, &group.key_list())
                    .await?
                {
                    result.result?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await?;
    out.integer(removed);
    Ok(())
}
