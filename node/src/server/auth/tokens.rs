//! The tokens a node accepts: the tokens file (`server.tokens_file`) and the legacy cluster
//! token (`server.token`), each a [`Grant`] of a [`Role`] over some keyspaces.
//!
//! Only SHA-256 hashes of tokens are kept in memory; a presented token is hashed and compared
//! with every grant's hash in constant time. Neither a token nor its hash is ever printed:
//! `Debug` of a grant redacts it, and file errors name the line, not its text.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::Problems;

/// What a token may do. Each role may do everything the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read values (get, get-many) and the catalog.
    Read,
    /// Also write values: put, delete, put-many, delete-many.
    Write,
    /// Also change the catalog, start warmups, read the admin routes; with every keyspace,
    /// call the node-to-node routes.
    Admin,
}

impl Role {
    /// The role as written in a tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keyspaces a grant covers: a name (`billing`) or a prefix (`invoices*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyspacePattern {
    /// Exactly this keyspace.
    Name(String),
    /// Every keyspace whose name starts with this.
    Prefix(String),
}

impl KeyspacePattern {
    /// Reads `text`: a keyspace name, optionally ending in `*`. Errors say what is wrong.
    pub fn parse(text: &str) -> Result<KeyspacePattern, String> {
        let (stem, prefix) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if stem.contains('*') {
            return Err(format!(
                "`{text}`: `*` may only end a pattern (`invoices*`)"
            ));
        }
        if prefix && stem.is_empty() {
            return Err("`*` alone: leave `keyspaces` out to allow every keyspace".into());
        }
        // A prefix is checked as the shortest name it could match.
        crate::spec::validate::name(stem).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(if prefix {
            KeyspacePattern::Prefix(stem.to_owned())
        } else {
            KeyspacePattern::Name(stem.to_owned())
        })
    }

    /// True when `keyspace` is covered.
    pub fn matches(&self, keyspace: &str) -> bool {
        match self {
            KeyspacePattern::Name(name) => name == keyspace,
            KeyspacePattern::Prefix(stem) => keyspace.starts_with(stem.as_str()),
        }
    }
}

impl fmt::Display for KeyspacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyspacePattern::Name(name) => f.write_str(name),
            KeyspacePattern::Prefix(stem) => write!(f, "{stem}*"),
        }
    }
}

/// One token's name, role and keyspaces. The token itself is kept only as its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    name: String,
    role: Role,
    /// `None`: every keyspace.
    keyspaces: Option<Vec<KeyspacePattern>>,
    hash: [u8; 32],
}

impl Grant {
    /// The name the file gives the token (what messages and logs say instead of the token).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the token may do.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The keyspaces it may use; `None` for every keyspace.
    pub fn keyspaces(&self) -> Option<&[KeyspacePattern]> {
        self.keyspaces.as_deref()
    }

    /// True when the token may use `keyspace`.
    pub fn allows(&self, keyspace: &str) -> bool {
        self.keyspaces
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(keyspace)))
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("keyspaces", &self.keyspaces)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The name the legacy `server.token` goes by: an admin token for every keyspace.
pub const CLUSTER_TOKEN_NAME: &str = "cluster-token";

/// Every token a node accepts.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    grants: Vec<Arc<Grant>>,
}

/// One `[[token]]` entry as written; checked into a [`Grant`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    name: String,
    token: Option<String>,
    token_sha256: Option<String>,
    #[serde(default)]
    role: String,
    keyspaces: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<Entry>,
}

impl Tokens {
    /// The tokens of `tokens_file` (read from disk) and the cluster `token`, as one set;
    /// `None` when neither is set (the node is open). Problems are named by their field in
    /// the `[server]` table (`tokens_file.token[2].role`).
    pub fn from_config(
        file: Option<&Path>,
        cluster_token: Option<&str>,
    ) -> Result<Option<Tokens>, Problems> {
        let mut problems = Problems::new();
        let mut tokens = Tokens::default();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => match Tokens::parse(&text) {
                    Ok(parsed) => tokens = parsed,
                    Err(p) => problems.extend_prefixed("tokens_file", p),
                },
                Err(e) => problems.push(
                    "tokens_file",
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        }
        if let Some(token) = cluster_token {
            problems.0.extend(tokens.add_cluster_token(token).0);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok((file.is_some() || cluster_token.is_some()).then_some(tokens))
    }

    /// Reads a tokens file's text. Every problem is named (`token[2].role: …`); the text of a
    /// line is never quoted, since it may hold a token.
    pub fn parse(text: &str) -> Result<Tokens, Problems> {
        let mut problems = Problems::new();
        let file: File = match toml::from_str(text) {
            Ok(file) => file,
            Err(e) => {
                let at = e
                    .span()
                    .map(|span| format!(" (line {})", line_of(text, span.start)))
                    .unwrap_or_default();
                problems.push("toml", format!("{}{at}", e.message().trim_end()));
                return Err(problems);
            }
        };
        let mut tokens = Tokens::default();
        for (i, entry) in file.token.into_iter().enumerate() {
            let field = format!("token[{i}]");
            if let Some(grant) = check_entry(entry, &field, &mut problems) {
                tokens.insert(grant, &field, &mut problems);
            }
        }
        if problems.is_empty() {
            Ok(tokens)
        } else {
            Err(problems)
        }
    }

    /// Adds `token` as the admin grant [`CLUSTER_TOKEN_NAME`] over every keyspace; answers
    /// its problems.
    pub(crate) fn add_cluster_token(&mut self, token: &str) -> Problems {
        let mut problems = Problems::new();
        if token.trim().is_empty() {
            problems.push("token", "must not be empty (leave it out to disable)");
            return problems;
        }
        let grant = Grant {
            name: CLUSTER_TOKEN_NAME.to_owned(),
            role: Role::Admin,
            keyspaces: None,
            hash: sha256(token),
        };
        self.insert(grant, "token", &mut problems);
        problems
    }

    fn insert(&mut self, grant: Grant, field: &str, problems: &mut Problems) {
        for other in &self.grants {
            if other.name == grant.name {
                problems.push(
                    format!("{field}.name"),
                    format!("`{}` names two tokens", grant.name),
                );
            }
            if constant_time_eq(&other.hash, &grant.hash) {
                problems.push(
                    field.to_owned(),
                    format!(
                        "`{}` has the same token as `{}`: a token has one role",
                        grant.name, other.name
                    ),
                );
            }
        }
        self.grants.push(Arc::new(grant));
    }

    /// The grant of `presented`, if any. Every grant is compared, in constant time each.
    pub fn find(&self, presented: &str) -> Option<&Arc<Grant>> {
        let hash = sha256(presented);
        let mut found = None;
        for grant in &self.grants {
            if constant_time_eq(&grant.hash, &hash) && found.is_none() {
                found = Some(grant);
            }
        }
        found
    }

    /// The grants, in file order, the cluster token last.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter().map(|g| g.as_ref())
    }

    /// True when no token is known.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

fn check_entry(entry: Entry, field: &str, problems: &mut Problems) -> Option<Grant> {
    let before = problems.iter().count();
    let name = entry.name.trim().to_owned();
    if name.is_empty() {
        problems.push(format!("{field}.name"), "must not be empty");
    } else if name == CLUSTER_TOKEN_NAME {
        problems.push(
            format!("{field}.name"),
            format!("`{CLUSTER_TOKEN_NAME}` is the name of `server.token`"),
        );
    }
    let role = Role::parse(entry.role.trim());
    if role.is_none() {
        let shown = if entry.role.is_empty() {
            "missing".to_owned()
        } else {
            format!("`{}` is not a role", entry.role)
        };
        problems.push(
            format!("{field}.role"),
            format!("{shown}: read, write or admin"),
        );
    }
    let hash = match (entry.token, entry.token_sha256) {
        (Some(_), Some(_)) => {
            problems.push(
                field.to_owned(),
                "has both `token` and `token_sha256`: give one",
            );
            None
        }
        (None, None) => {
            problems.push(
                field.to_owned(),
                "has neither `token` nor `token_sha256`: give one",
            );
            None
        }
        (Some(token), None) if token.trim().is_empty() => {
            problems.push(format!("{field}.token"), "must not be empty");
            None
        }
        (Some(token), None) => Some(sha256(&token)),
        (None, Some(hex)) => match parse_hex(hex.trim()) {
            Some(hash) => Some(hash),
            None => {
                problems.push(
                    format!("{field}.token_sha256"),
                    "must be 64 hex digits (the SHA-256 of the token, e.g. from `sha256sum`)",
                );
                None
            }
        },
    };
    let keyspaces = entry.keyspaces.map(|list| {
        if list.is_empty() {
            problems.push(
                format!("{field}.keyspaces"),
                "is empty: list at least one, or leave it out to allow every keyspace",
            );
        }
        list.iter()
            .enumerate()
            .filter_map(|(j, text)| match KeyspacePattern::parse(text.trim()) {
                Ok(p) => Some(p),
                Err(e) => {
                    problems.push(format!("{field}.keyspaces[{j}]"), e);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    if problems.iter().count() > before {
        return None;
    }
    Some(Grant {
        name,
        role: role?,
        keyspaces,
        hash: hash?,
    })
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The SHA-256 of `token`.
fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 64 hex digits (either case) as 32 bytes.
fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
