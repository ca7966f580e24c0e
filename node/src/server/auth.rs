//! Who may call what: the bearer token of each request checked against the node's
//! [`Tokens`], and the role and keyspace the request needs, decided from its method and path.
//!
//! ```text
//! /healthz /readyz /openapi.json                   open
//! GET  /v1/keyspaces                               read   (the answer lists only the token's keyspaces)
//! POST /v1/keyspaces · DELETE ?names=              admin  (the handler checks the keyspaces named)
//! GET  /v1/keyspaces/{ks}                          read   on ks
//! PUT|DELETE /v1/keyspaces/{ks}                    admin  on ks
//! GET  /v1/keyspaces/{ks}/keys…  POST get-many     read   on ks
//! PUT|DELETE …/keys…  POST put-many|delete-many    write  on ks
//! /_distcache/admin/owner/{ks}…, …/keyspaces/{ks}/warmup   admin on ks
//! /_distcache/admin/…                              admin  (`keyspaces` lists only the token's)
//! /metrics                                         admin  (open with `server.metrics_open`)
//! /_distcache/peer/…  /_distcache/raft/…           admin for every keyspace (nodes send the
//!                                                  cluster token)
//! anything else                                    read   (then 404 or 405)
//! ```
//!
//! No token, or one the node does not know: 401 `UNAUTHORIZED`. A known token without the
//! role or the keyspace: 403 `FORBIDDEN`, naming what it lacks. A request that passes carries
//! its `Access` to the handler, which filters listings and checks keyspaces named in a body
//! or a query string. With TLS and a cluster CA, the node-to-node routes also need a client
//! certificate from that CA (`server.rs`, `require_peer_certificate`), checked after the token.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};

use super::AppState;
use crate::error::Error;

mod tokens;

pub use tokens::{CLUSTER_TOKEN_NAME, Grant, KeyspacePattern, Role, Tokens};

/// What a request needs: a role, over some scope, to do a named action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    role: Role,
    scope: Scope,
    /// What the request does, as a 403 names it (`put`, `a catalog change`).
    action: &'static str,
}

/// What a request concerns, besides its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// No token needed (probes, the OpenAPI document).
    Open,
    /// No keyspace in the path: the handler filters or checks what the request names.
    Handler,
    /// This keyspace.
    Keyspace(String),
    /// Node-to-node routes: a token for every keyspace.
    Node,
}

impl Need {
    fn new(role: Role, scope: Scope, action: &'static str) -> Self {
        Need {
            role,
            scope,
            action,
        }
    }
}

/// The role and keyspace a request with `method` on `path` needs.
pub(crate) fn need(method: &Method, path: &str) -> Need {
    use Role::{Admin, Read, Write};
    let reads = method == Method::GET || method == Method::HEAD;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ks = |s: &str| Scope::Keyspace(decode(s));
    match segments.as_slice() {
        ["healthz"] | ["readyz"] | ["openapi.json"] => Need::new(Read, Scope::Open, "a probe"),
        ["v1", "keyspaces"] if reads => Need::new(Read, Scope::Handler, "listing keyspaces"),
        ["v1", "keyspaces"] => Need::new(Admin, Scope::Handler, "a catalog change"),
        ["v1", "keyspaces", name] if reads => Need::new(Read, ks(name), "reading a keyspace"),
        ["v1", "keyspaces", name] => Need::new(Admin, ks(name), "a catalog change"),
        ["v1", "keyspaces", name, "keys", ..] if reads => Need::new(Read, ks(name), "get"),
        ["v1", "keyspaces", name, "keys", ..] if method == Method::DELETE => {
            Need::new(Write, ks(name), "delete")
        }
        ["v1", "keyspaces", name, "keys", ..] => Need::new(Write, ks(name), "put"),
        ["v1", "keyspaces", name, "get-many"] => Need::new(Read, ks(name), "get-many"),
        ["v1", "keyspaces", name, "put-many"] => Need::new(Write, ks(name), "put-many"),
        ["v1", "keyspaces", name, "delete-many"] => Need::new(Write, ks(name), "delete-many"),
        ["v1", "keyspaces", name, ..] => Need::new(Read, ks(name), "this request"),
        ["_distcache", "admin", "owner", name, ..] => Need::new(Admin, ks(name), "an admin route"),
        ["_distcache", "admin", "keyspaces", name, ..] => {
            Need::new(Admin, ks(name), "starting a warmup")
        }
        ["_distcache", "admin", ..] => Need::new(Admin, Scope::Handler, "an admin route"),
        ["metrics"] => Need::new(Admin, Scope::Handler, "reading metrics"),
        ["_distcache", ..] => Need::new(Admin, Scope::Node, "a node-to-node route"),
        _ => Need::new(Read, Scope::Handler, "this request"),
    }
}

/// A path segment as the router decodes it; kept as sent when it is not UTF-8 (no pattern
/// then matches it, and the route answers 400).
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .unwrap_or_else(|_| segment.to_owned())
}

/// Whether `tokens` let a request needing `need` through, given its `Authorization` header.
pub(crate) fn decide(
    tokens: &Tokens,
    authorization: Option<&HeaderValue>,
    need: &Need,
) -> Result<Access, Error> {
    if need.scope == Scope::Open {
        return Ok(Access::default());
    }
    let presented = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(presented) = presented else {
        return Err(Error::Unauthorized(
            "this cluster requires a bearer token (--token or DISTCACHE_TOKEN)".into(),
        ));
    };
    let Some(grant) = tokens.find(presented) else {
        return Err(Error::Unauthorized("the bearer token is wrong".into()));
    };
    let keyspace = match &need.scope {
        Scope::Keyspace(ks) => Some(ks.as_str()),
        _ => None,
    };
    permit(grant, need.role, keyspace, need.action)?;
    match &need.scope {
        Scope::Node if grant.keyspaces().is_some() => Err(Error::Forbidden(format!(
            "token `{}` is limited to some keyspaces; {} needs an admin token for every \
             keyspace",
            grant.name(),
            need.action
        ))),
        _ => Ok(Access(Some(Arc::clone(grant)))),
    }
}

/// Whether `grant` may do `action`, which needs `role` (on `keyspace`, when it names one):
/// `FORBIDDEN`, naming what the token lacks, when not. The HTTP API and the Redis-protocol
/// front decide with this one rule.
pub(crate) fn permit(
    grant: &Grant,
    role: Role,
    keyspace: Option<&str>,
    action: &str,
) -> Result<(), Error> {
    if grant.role() < role {
        return Err(Error::Forbidden(format!(
            "token `{}` has role {}; {action} needs {role}",
            grant.name(),
            grant.role(),
        )));
    }
    match keyspace {
        Some(ks) if !grant.allows(ks) => Err(denied_keyspace(grant, ks)),
        _ => Ok(()),
    }
}

fn denied_keyspace(grant: &Grant, keyspace: &str) -> Error {
    Error::Forbidden(format!(
        "token `{}` may not use keyspace `{keyspace}`",
        grant.name()
    ))
}

/// Checks the request's token (when the node has tokens) and hands the handler its
/// [`Access`] in the request's extensions; a refusal is the error to answer instead.
/// Tokens are never logged; a refusal is logged with the token's name.
pub(super) fn admit(state: &AppState, request: &mut Request) -> Result<(), Error> {
    let Some(tokens) = state.tokens.as_ref() else {
        return Ok(());
    };
    if state.config.metrics_open && request.uri().path() == "/metrics" {
        return Ok(());
    }
    let need = need(request.method(), request.uri().path());
    match decide(tokens, request.headers().get(header::AUTHORIZATION), &need) {
        Ok(access) => {
            request.extensions_mut().insert(access);
            Ok(())
        }
        Err(err) => {
            tracing::debug!(method = %request.method(), path = request.uri().path(), %err, "refused");
            Err(err)
        }
    }
}

/// What the request's token may reach; every keyspace when the node has no tokens.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access(Option<Arc<Grant>>);

impl Access {
    /// True when the token may use `keyspace`.
    pub fn allows(&self, keyspace: &str) -> bool {
        self.0.as_ref().is_none_or(|g| g.allows(keyspace))
    }

    /// `FORBIDDEN` unless the token may use `keyspace`.
    pub fn check(&self, keyspace: &str) -> Result<(), Error> {
        match &self.0 {
            Some(grant) if !grant.allows(keyspace) => Err(denied_keyspace(grant, keyspace)),
            _ => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Access>()
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
