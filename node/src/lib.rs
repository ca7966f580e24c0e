//! distcache: a distributed read-through cache engine.
//!
//! Applications read `(keyspace, key)` through an [`Engine`]. A hit is served from memory; a
//! miss is loaded once (single-flight) from the keyspace's [`DataSource`], stored with its
//! expiry, and returned. Keyspace definitions ([`KeySpaceSpec`]) live in a [`Catalog`], so that
//! creating, updating or deleting a keyspace is one committed change that every node follows.
//!
//! # Layout
//! The modules sit in layers, each using only its own layer and those below (ARCHITECTURE.md
//! at the repository root draws them; `tests/layers.rs` enforces them).
//! - [`engine`](Engine): the public API (`get`, `put`, `delete`, their `_many` forms,
//!   keyspace management, `start`/`stop`) and its builder; the one read path
//!   (`engine/read.rs`), writes (`engine/writes.rs`), running warmups (`engine/warming.rs`)
//!   and joining a cluster (`engine/handoff.rs`);
//! - [`entry`](Entry), [`limits`](Limits): what a write carries and a batch answers per key,
//!   and the limits on keys, values and batches — data types every layer shares;
//! - `space`: one keyspace live on a node: caches, protection, single-flight loads, hot-key
//!   tracking;
//! - `store`: a byte-weighed moka cache with per-entry expiry;
//! - `flight`: single-flight registry of loads in progress;
//! - `protection`: rate limiter and circuit breaker around fetches;
//! - [`catalog`](Catalog): where keyspace definitions come from ([`LocalCatalog`] on one node);
//! - `registry`, `sources`: turn a spec's `source` into a live [`DataSource`] (http built in);
//! - [`spec`](KeySpaceSpec), [`config`](EngineConfig): serialisable definitions, defaults,
//!   validation, keyspace files;
//! - [`source`](DataSource), [`keyspace`](KeySpace): the traits an embedding program implements;
//! - [`ring`](Ring): which node owns a key (rendezvous hashing);
//! - [`cluster`](Cluster): membership by probing, topology events;
//! - [`discovery`](Discovery): where peer addresses come from — static, DNS, Kubernetes, NATS
//!   ([`NatsDiscovery`]), or an embedder's own provider — and `[discovery]` ([`DiscoveryConfig`]);
//! - [`transport`]: node-to-node calls ([`transport::HttpTransport`]);
//! - `server`, [`node`](Node): the HTTP API and a whole node (engine + server + membership);
//! - `resp`: the Redis-protocol front (`server.resp_listen`): RESP2/RESP3 over the engine;
//! - [`auth`]: bearer tokens with roles and keyspaces, and what each route needs;
//! - [`memnet`]: an in-memory network with fault injection, for tests of many nodes;
//! - `net`: shared HTTP client plumbing, and TLS of clients ([`ClientTls`], [`TlsFailure`]);
//! - [`otel`]: OpenTelemetry export over OTLP ([`OtelConfig`], [`OtelPipeline`]) and W3C
//!   trace-context propagation;
//! - [`client`]: a typed client of a node's public API, and [`client::Fleet`], which asks
//!   every member at once;
//! - [`wire`]: what travels over HTTP (error bodies with stable codes, batch JSON, warm
//!   outcomes, the handoff stream);
//! - [`stats`](KeySpaceSnapshot): counters, the admin snapshot, sums and rates over nodes;
//! - `telemetry`: the instruments behind `/metrics` — counters, lock-free histograms,
//!   operations by name, peer calls, the hit sampler;
//! - [`warmup`](WarmupConfig): what a warmup is — configuration, triggers, run records;
//! - [`error`](Error): typed errors with stable wire codes;
//! - `fuzzing` (hidden): one entry point per parser family, shared by the cargo-fuzz targets
//!   in `fuzz/` and the property tests in `tests/fuzz`.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use distcache::{async_trait, DataSource, Engine, EngineConfig, FetchResult, Fetched, KeySpace};
//!
//! struct Users;
//!
//! #[async_trait]
//! impl DataSource for Users {
//!     async fn fetch(&self, key: &str) -> FetchResult {
//!         Ok(Some(Fetched::new(format!("profile of {key}"))))
//!     }
//! }
//!
//! struct UsersKeySpace;
//!
//! impl KeySpace for UsersKeySpace {
//!     fn name(&self) -> &str { "users" }
//!     fn max_bytes(&self) -> u64 { 64 << 20 }
//!     fn data_source(&self) -> Arc<dyn DataSource> { Arc::new(Users) }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::builder(EngineConfig::default()).keyspace(UsersKeySpace).build()?;
//! engine.start().await?;
//! let value = engine.get("users", "user:1").await?;
//! assert_eq!(value.as_deref(), Some(&b"profile of user:1"[..]));
//! engine.stop().await?;
//! # Ok::<_, distcache::Error>(()) }).unwrap();
//! ```

#![deny(missing_docs)]

mod catalog;
pub mod client;
mod cluster;
mod config;
mod discovery;
mod engine;
mod entry;
mod error;
mod fence;
mod flight;
#[doc(hidden)]
pub mod fuzzing;
mod keyspace;
mod limits;
pub mod memnet;
mod net;
mod node;
pub mod otel;
mod protection;
mod registry;
mod resp;
mod ring;
mod server;
mod source;
mod sources;
mod space;
mod spec;
mod stats;
mod store;
mod telemetry;
mod tls;
pub mod transport;
pub mod units;
mod warmup;
pub mod wire;

pub use async_trait::async_trait;
pub use bytes::Bytes;

pub use catalog::{Catalog, CatalogChange, CatalogState, LocalCatalog, RaftCatalog, WriteOptions};
pub use cluster::{
    Cluster, ClusterConfig, MemberStatus, Peer, TopologyChange, TopologyEvent, TopologyEvents,
};
pub use config::{EngineConfig, KeySpaceOverrides, Settings};
pub use discovery::nats::{NatsConfig, NatsDiscovery, NatsPeer};
pub use discovery::{
    Discovery, DiscoveryConfig, DiscoveryProvider, DnsConfig, DnsDiscovery, KubernetesConfig,
    KubernetesDiscovery, StaticDiscovery,
};
pub use distcache_control::{ControlConfig, ControlPlane, ControlStatus, Role};
pub use engine::{Engine, EngineBuilder};
pub use entry::{Entry, KeyResult};
pub use error::{Error, ErrorCode, Problem, Problems, Result, SourceError};
pub use keyspace::KeySpace;
pub use limits::Limits;
pub use net::tls::{ClientTls, TlsError, TlsFailure};
pub use node::{Node, NodeBuilder, NodeConfig};
pub use otel::{OtelConfig, OtelError, OtelPipeline};
pub use protection::BreakerState;
pub use ring::{NodeId, Ring, key_hash};
pub use server::{ServerConfig, auth, openapi_json};
pub use source::{DataSource, FetchResult, Fetched, FnSource, NoSource, source_fn};
pub use spec::{
    CircuitBreakerConfig, Eviction, KeySpaceSpec, RateLimitConfig, SourceSpec, parse_keyspaces,
    read_keyspace_file, redacted_url,
};
pub use stats::{HotKey, KeySpaceSnapshot, KeySpaceTotal, Rates, Stats};
pub use store::ENTRY_OVERHEAD;
pub use tls::{ClientAuth, NodeTls, TlsConfig};
pub use warmup::{WarmupConfig, WarmupRun, WarmupTrigger};
pub use wire::{KeyFailure, WarmOutcome};

/// This build's version (the crate's), as `/metrics` (`distcache_build_info`) and
/// OpenTelemetry resources report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
