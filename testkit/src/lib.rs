//! What distcache's tests and benches share, so that each starts clusters and waits on
//! conditions the same way:
//!
//! - [`chaos`]: real node processes under a recorded load with faults injected, and the
//!   checker that reads the history (wrong, stale, lost, catalog anomalies, late reads);
//! - [`TestCluster`]: N real nodes in the test's process, over loopback sockets or an
//!   in-memory network with fault injection ([`distcache::memnet`]);
//! - [`wait_until`] / [`wait_for`]: poll a condition until a deadline, never sleep to
//!   synchronise;
//! - [`loopback_listener`] / [`free_addr`]: ports picked by the OS;
//! - [`OtlpReceiver`]: an OTLP collector (HTTP and gRPC) that keeps what it receives, and
//!   [`hanging_collector`] / [`refusing_collector`], ones that never answer;
//! - [`TestSource`]: a scriptable data source that counts its fetches;
//! - [`TestDns`]: a real DNS server on loopback whose records a test changes;
//! - [`FakeKubeApi`]: the pods part of the Kubernetes API (list and watch), and a kubeconfig
//!   pointing at it;
//! - [`NatsServer`]: a real `nats-server` on a free port, restartable on the same port;
//! - [`tls`]: a throwaway PKI (CA, server and client certificates as PEM files) and a small
//!   HTTPS server, for tests of TLS clients and listeners.
//!
//! Dev-only: no published crate depends on it.

#![allow(clippy::unwrap_used)] // Test fixtures: a broken fixture should fail loudly.

pub mod chaos;
mod cluster;
mod dns;
mod kube_api;
mod nats;
mod otlp;
mod ports;
mod source;
pub mod tls;
mod wait;

pub use cluster::{Builder, CONVERGE, TestCluster, wait_leader};
pub use dns::TestDns;
pub use kube_api::FakeKubeApi;
pub use nats::NatsServer;
pub use otlp::{
    OtlpReceiver, ReceivedMetric, ReceivedPoint, ReceivedSpan, hanging_collector,
    refusing_collector,
};
pub use ports::{free_addr, loopback_listener};
pub use source::{TestSource, spec};
pub use wait::{holds_within, wait_for, wait_until};
