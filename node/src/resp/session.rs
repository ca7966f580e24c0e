//! One RESP connection: its state (protocol version, name, token), the dispatch of each
//! command, and the commands about the connection and the server rather than the data —
//! `PING`, `ECHO`, `HELLO`, `AUTH`, `QUIT`, `CLIENT`, `COMMAND`, `SELECT`, `INFO`,
//! `CONFIG GET` — with what clients' handshakes expect of them.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Front;
use super::command::{Access, Command, Done, Failure, arity, parse_int, wrong_arity};
use super::commands;
use super::reply::{Protocol, Reply};
use crate::error::Error;
use crate::server::auth::Grant;

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next command.
    Continue,
    /// Write what is due and close (`QUIT`).
    Close,
}

/// A connection's state.
pub(crate) struct Session {
    id: u64,
    name: Option<String>,
    /// What the connection's token allows.
    access: Access,
    /// The node has tokens: data commands need a grant.
    guarded: bool,
}

/// The commands a name may be, upper-cased; longer names are unknown.
const LONGEST_NAME: usize = 8;

impl Session {
    pub fn new(front: &Front) -> Self {
        Session {
            id: front.stats.next_id.fetch_add(1, Ordering::Relaxed),
            name: None,
            access: Access::default(),
            guarded: front.tokens.is_some(),
        }
    }

    /// Runs `command`, appending its reply to `out`.
    pub async fn execute(&mut self, front: &Front, command: Command<'_>, out: &mut Reply) -> Flow {
        let raw = command.arg(0);
        let mut name = [0u8; LONGEST_NAME];
        let name = match name.get_mut(..raw.len()) {
            Some(upper) => {
                upper.copy_from_slice(raw);
                upper.make_ascii_uppercase();
                &*upper
            }
            None => b"",
        };
        let open = matches!(name, b"HELLO" | b"AUTH" | b"PING" | b"QUIT");
        if self.guarded && !self.access.granted() && !open {
            Failure::from(Error::Unauthorized(
                "this node requires a token: AUTH <token> (or HELLO 3 AUTH <user> <token>)".into(),
            ))
            .write(out);
            return Flow::Continue;
        }
        let done = match name {
            b"GET" => commands::get(front, &self.access, &command, out).await,
            b"SET" => commands::set(front, &self.access, &command, out).await,
            b"MGET" => commands::mget(front, &self.access, &command, out).await,
            b"MSET" => commands::mset(front, &self.access, &command, out).await,
            b"DEL" => commands::del(front, &self.access, &command, out).await,
            b"EXISTS" => commands::exists(front, &self.access, &command, out).await,
            b"PING" => ping(&command, out),
            b"ECHO" => arity(&command, 2, "echo").map(|()| out.bulk(command.arg(1))),
            b"HELLO" => self.hello(front, &command, out),
            b"AUTH" => self.auth(front, &command, out),
            b"QUIT" => {
                out.ok();
                return Flow::Close;
            }
            b"CLIENT" => self.client(&command, out),
            b"COMMAND" => command_info(&command, out),
            b"SELECT" => select(&command, out),
            b"INFO" => info(front, out),
            b"CONFIG" => config(&command, out),
            _ => Err(unknown(&command)),
        };
        if let Err(failure) = done {
            failure.write(out);
        }
        Flow::Continue
    }

    /// `HELLO [2|3 [AUTH user token] [SETNAME name]]`: switches the protocol and answers
    /// what the server is.
    fn hello(&mut self, front: &Front, command: &Command<'_>, out: &mut Reply) -> Done {
        let mut protocol = out.protocol;
        if command.len() >= 2 {
            protocol = match parse_int(command.arg(1)) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => {
                    return Err(Failure::Plain(
                        "NOPROTO",
                        "unsupported protocol version".into(),
                    ));
                }
                None => {
                    return Err(Failure::err(
                        "Protocol version is not an integer or out of range",
                    ));
                }
            };
        }
        let mut name = None;
        let mut i = 2;
        while i < command.len() {
            let option = command.arg(i);
            if option.eq_ignore_ascii_case(b"AUTH") && i + 2 < command.len() {
                let grant = self.authenticate(front, command.arg(i + 1), command.arg(i + 2))?;
                self.access.grant(grant);
                i += 3;
            } else if option.eq_ignore_ascii_case(b"SETNAME") && i + 1 < command.len() {
                name = Some(client_name(command.arg(i + 1))?);
                i += 2;
            } else {
                return Err(Failure::err(format!(
                    "syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(option)
                )));
            }
        }
        if self.guarded && !self.access.granted() {
            return Err(Error::Unauthorized(
                "HELLO needs a token on this node: HELLO 3 AUTH <user> <token>".into(),
            )
            .into());
        }
        if let Some(name) = name {
            self.name = Some(name);
        }
        out.protocol = protocol;
        out.map(8);
        out.bulk(b"server");
        out.bulk(b"redis");
        out.bulk(b"version");
        out.bulk(REDIS_VERSION.as_bytes());
        out.bulk(b"proto");
        out.integer(protocol.version());
        out.bulk(b"id");
        out.integer(i64::try_from(self.id).unwrap_or(i64::MAX));
        out.bulk(b"mode");
        out.bulk(b"standalone");
        out.bulk(b"role");
        out.bulk(b"master");
        out.bulk(b"modules");
        out.array(0);
        out.bulk(b"distcache_version");
        out.bulk(crate::VERSION.as_bytes());
        Ok(())
    }

    /// `AUTH token` or `AUTH user token`.
    fn auth(&mut self, front: &Front, command: &Command<'_>, out: &mut Reply) -> Done {
        let (user, token) = match command.len() {
            2 => (&b"default"[..], command.arg(1)),
            3 => (command.arg(1), command.arg(2)),
            _ => return Err(wrong_arity("auth")),
        };
        let grant = self.authenticate(front, user, token)?;
        self.access.grant(grant);
        out.ok();
        Ok(())
    }

    /// The grant of `token`; `user` must be `default` or the token's name.
    fn authenticate(
        &self,
        front: &Front,
        user: &[u8],
        token: &[u8],
    ) -> Result<Arc<Grant>, Failure> {
        let Some(tokens) = &front.tokens else {
            return Err(Failure::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ));
        };
        let wrong = || Failure::from(Error::Unauthorized("the token is wrong".into()));
        let token = std::str::from_utf8(token).map_err(|_| wrong())?;
        let grant = tokens.find(token).ok_or_else(wrong)?;
        if user != b"default" && user != grant.name().as_bytes() {
            return Err(Error::Unauthorized(
                "the user must be `default` or the token's name".into(),
            )
            .into());
        }
        tracing::debug!(token = grant.name(), "RESP connection authenticated");
        Ok(Arc::clone(grant))
    }

    /// `CLIENT SETNAME|GETNAME|ID|SETINFO|INFO`.
    fn client(&mut self, command: &Command<'_>, out: &mut Reply) -> Done {
        let sub = command.arg(1);
        if sub.eq_ignore_ascii_case(b"SETNAME") {
            arity(command, 3, "client|setname")?;
            let name = client_name(command.arg(2))?;
            self.name = (!name.is_empty()).then_some(name);
            out.ok();
        } else if sub.eq_ignore_ascii_case(b"GETNAME") {
            out.optional(self.name.as_deref().map(str::as_bytes));
        } else if sub.eq_ignore_ascii_case(b"ID") {
            out.integer(i64::try_from(self.id).unwrap_or(i64::MAX));
        } else if sub.eq_ignore_ascii_case(b"SETINFO") {
            arity(command, 4, "client|setinfo")?;
            out.ok();
        } else if sub.eq_ignore_ascii_case(b"INFO") {
            let name = self.name.as_deref().unwrap_or("");
            out.bulk(format!("id={} name={name} db=0\n", self.id).as_bytes());
        } else {
            return Err(Failure::err(format!(
                "unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            )));
        }
        Ok(())
    }
}

/// The Redis version clients are told the server is compatible with.
const REDIS_VERSION: &str = "7.2.0";

fn unknown(command: &Command<'_>) -> Failure {
    let name = String::from_utf8_lossy(command.arg(0));
    let mut message = format!(
        "unknown command '{}', with args beginning with: ",
        name.chars().take(128).collect::<String>()
    );
    for arg in command.rest(1).take(8) {
        let arg = String::from_utf8_lossy(arg);
        let _ = write!(message, "'{}' ", arg.chars().take(128).collect::<String>());
    }
    Failure::err(message)
}

/// A name `CLIENT SETNAME` accepts: printable ASCII without spaces.
fn client_name(raw: &[u8]) -> Result<String, Failure> {
    if raw.iter().all(|&b| b.is_ascii_graphic()) {
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err(Failure::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

fn ping(command: &Command<'_>, out: &mut Reply) -> Done {
    match command.len() {
        1 => out.simple("PONG"),
        2 => out.bulk(command.arg(1)),
        _ => return Err(wrong_arity("ping")),
    }
    Ok(())
}

fn select(command: &Command<'_>, out: &mut Reply) -> Done {
    arity(command, 2, "select")?;
    match parse_int(command.arg(1)) {
        Some(0) => {
            out.ok();
            Ok(())
        }
        Some(_) => Err(Failure::err("DB index is out of range")),
        None => Err(Failure::err("value is not an integer or out of range")),
    }
}

/// `CONFIG GET <param>…`: the two settings redis-benchmark asks for at start (persistence
/// off), nothing else.
fn config(command: &Command<'_>, out: &mut Reply) -> Done {
    if !command.arg(1).eq_ignore_ascii_case(b"GET") || command.len() < 3 {
        return Err(Failure::err("only CONFIG GET <parameter> is supported"));
    }
    let known: Vec<(&[u8], &[u8])> = command
        .rest(2)
        .filter_map(|param| {
            if param.eq_ignore_ascii_case(b"save") {
                Some((&b"save"[..], &b""[..]))
            } else if param.eq_ignore_ascii_case(b"appendonly") {
                Some((&b"appendonly"[..], &b"no"[..]))
            } else {
                None
            }
        })
        .collect();
    out.map(known.len());
    for (param, value) in known {
        out.bulk(param);
        out.bulk(value);
    }
    Ok(())
}

fn info(front: &Front, out: &mut Reply) -> Done {
    let stats = &front.stats;
    let mut text = String::with_capacity(512);
    let _ = write!(
        text,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\ndistcache_version:{}\r\n\
         redis_mode:standalone\r\nnode_id:{}\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\n\
         \r\n# Clients\r\nconnected_clients:{}\r\n\
         \r\n# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
         \r\n# Keyspace\r\n",
        crate::VERSION,
        front.node_id,
        std::process::id(),
        stats.started.elapsed().as_secs(),
        stats.connected.load(Ordering::Relaxed),
        stats.connections.load(Ordering::Relaxed),
        stats.commands.load(Ordering::Relaxed),
    );
    for spec in front.engine.keyspaces() {
        let _ = write!(text, "keyspace:{}\r\n", spec.name);
    }
    out.bulk(text.as_bytes());
    Ok(())
}

/// What `COMMAND` says of a command: name, arity (negative: at least), flags, first key,
/// last key, key step.
type CommandDoc = (&'static str, i64, &'static [&'static str], i64, i64, i64);

/// The commands `COMMAND` describes.
const COMMANDS: &[CommandDoc] = &[
    ("get", 2, &["readonly", "fast"], 1, 1, 1),
    ("set", -3, &["write", "denyoom"], 1, 1, 1),
    ("mget", -2, &["readonly", "fast"], 1, -1, 1),
    ("mset", -3, &["write", "denyoom"], 1, -1, 2),
    ("del", -2, &["write"], 1, -1, 1),
    ("exists", -2, &["readonly", "fast"], 1, -1, 1),
    ("ping", -1, &["fast"], 0, 0, 0),
    ("echo", 2, &["fast"], 0, 0, 0),
    ("hello", -1, &["noauth", "fast"], 0, 0, 0),
    ("auth", -2, &["noauth", "fast"], 0, 0, 0),
    ("quit", -1, &["noauth", "fast"], 0, 0, 0),
    ("client", -2, &[], 0, 0, 0),
    ("command", -1, &[], 0, 0, 0),
    ("select", 2, &["fast"], 0, 0, 0),
    ("info", -1, &[], 0, 0, 0),
    ("config", -2, &[], 0, 0, 0),
];

/// `COMMAND`, `COMMAND COUNT`, `COMMAND LIST`, `COMMAND INFO name…`, `COMMAND DOCS` (an
/// empty map: clients fall back to their own help).
fn command_info(command: &Command<'_>, out: &mut Reply) -> Done {
    let sub = command.arg(1);
    if command.len() == 1 {
        out.array(COMMANDS.len());
        for entry in COMMANDS {
            describe(entry, out);
        }
    } else if sub.eq_ignore_ascii_case(b"COUNT") {
        out.integer(COMMANDS.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"LIST") {
        out.array(COMMANDS.len());
        for (name, ..) in COMMANDS {
            out.bulk(name.as_bytes());
        }
    } else if sub.eq_ignore_ascii_case(b"INFO") {
        out.array(command.len() - 2);
        for asked in command.rest(2) {
            match COMMANDS
                .iter()
                .find(|c| asked.eq_ignore_ascii_case(c.0.as_bytes()))
            {
                Some(entry) => describe(entry, out),
                None => out.nil(),
            }
        }
    } else if sub.eq_ignore_ascii_case(b"DOCS") {
        out.map(0);
    } else {
        return Err(Failure::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}

/// One command's entry, as Redis 7 writes it (ten fields).
fn describe(entry: &CommandDoc, out: &mut Reply) {
    let (name, arity, flags, first, last, step) = *entry;
    out.array(10);
    out.bulk(name.as_bytes());
    out.integer(arity);
    out.set(flags.len());
    for flag in flags {
        out.simple(flag);
    }
    out.integer(first);
    out.integer(last);
    out.integer(step);
    out.set(0);
    out.array(0);
    out.array(0);
    out.array(0);
}
