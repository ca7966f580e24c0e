//! Multi-node tests: real nodes over real loopback sockets (and, in `in_memory`, over the
//! in-memory network with injected faults), one module per scenario, all on the testkit's
//! `TestCluster`.

#![allow(clippy::unwrap_used)]

mod auth;
mod connections;
mod control;
mod discovery;
mod discovery_cluster;
mod errors;
mod fleet;
mod http_api;
mod in_memory;
mod keys;
mod membership;
mod metrics;
mod observability_examples;
mod openapi;
mod otel;
mod overload;
mod ownership;
mod replicas;
mod resp;
mod resp_wire;
mod roles;
mod rolling;
mod routing;
mod single_flight;
mod spec_errors;
mod tls;
mod warmup;
