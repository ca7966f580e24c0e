//! Multi-node tests: real nodes over real loopback sockets, one module per scenario, all on
//! the one `TestCluster` harness.

#![allow(clippy::unwrap_used)]

#[path = "../common/source.rs"]
mod source;

mod harness;

mod auth;
mod connections;
mod control;
mod errors;
mod http_api;
mod keys;
mod membership;
mod ownership;
mod routing;
mod single_flight;
mod spec_errors;
mod warmup;
