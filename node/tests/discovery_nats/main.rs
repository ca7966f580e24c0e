//! The NATS discovery provider against a real `nats-server` on a free port per test, one
//! module per theme:
//!
//! - `providers`: finding each other, leaving, expiring, a server restart, a NATS cluster
//!   losing a server, garbage on the subject;
//! - `security`: user and password, token, TLS with client certificates, bad settings;
//! - `nodes`: whole nodes forming, growing and shrinking a cluster through NATS.
//!
//! Ignored by a plain `cargo test` (they need `nats-server`); `./scripts/test.sh` installs it
//! and runs them.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use distcache::{Discovery, NatsConfig, NatsDiscovery};
use distcache_testkit::{NatsServer, wait_until};

mod nodes;
mod providers;
mod security;

/// The address node `i` announces (the providers alone never dial it).
pub fn addr(i: usize) -> String {
    format!("node-{i}.test:3320")
}

/// Provider `i` on `server`, with `edit` applied to the test timings.
pub fn provider(
    server: &NatsServer,
    i: usize,
    edit: impl FnOnce(&mut NatsConfig),
) -> NatsDiscovery {
    let mut config = NatsConfig::for_test([server.url()]);
    edit(&mut config);
    NatsDiscovery::new(config, format!("node-{i}"), addr(i)).expect("valid config")
}

/// The addresses of nodes `ids`, as a provider lists them (sorted).
pub fn addrs(ids: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|i| addr(*i)).collect();
    v.sort();
    v
}

/// Waits until every provider in `providers` lists exactly `want`.
pub async fn wait_lists(
    providers: &[&NatsDiscovery],
    want: &[String],
    limit: Duration,
    what: &str,
) {
    let receivers: Vec<_> = providers.iter().map(|p| p.changes()).collect();
    wait_until(limit, what, || {
        let all = receivers.iter().all(|r| *r.borrow() == want);
        async move { all }
    })
    .await;
}
