//! Hostile input for every parser a user or a peer reaches: property tests (proptest) that
//! feed each one near-valid and random input and assert that it never panics, that a bad
//! input is refused with a message naming the problem, and that valid input round-trips; and
//! a bounded storm of malformed requests against a live node.
//!
//! One module per parser family:
//! - `units`: byte sizes and durations;
//! - `specs`: keyspace specs and keyspace files, JSON and TOML;
//! - `node_config`: the node's `--config` TOML;
//! - `tokens`: the tokens file and its keyspace patterns;
//! - `wire`: what peers send each other (batch bodies, outcomes, error bodies, handoff lines);
//! - `routes`: URL paths of any bytes and batch bodies through a live node's router;
//! - `storm`: thousands of malformed requests of every route family against a live node.
//!
//! Failing cases are kept in `node/tests/proptest-regressions/`, and replayed first.

#![allow(clippy::unwrap_used)]

mod live;
mod node_config;
mod routes;
mod specs;
mod storm;
mod tokens;
mod units;
mod wire;

use proptest::prelude::*;

/// Cases per property: enough to find the usual mistakes, few enough that the whole binary
/// runs in well under a minute on a loaded two-core machine. `PROPTEST_CASES` asks for
/// another number, for a longer hunt by hand.
pub fn cases(n: u32) -> ProptestConfig {
    let configured = std::env::var_os("PROPTEST_CASES").is_some();
    let config = ProptestConfig::default();
    ProptestConfig {
        cases: if configured { config.cases } else { n },
        ..config
    }
}

/// Text of any kind: printable, control characters, unicode, and lossy-decoded raw bytes.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[ -~]{0,40}",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}
