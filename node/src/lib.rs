//! distcache: a distributed read-through cache engine.
//!
//! Applications read `(keyspace, key)` through an [`Engine`]. A hit is served from memory; a
//! miss is loaded once (single-flight) from the keyspace's [`DataSource`], stored with its
//! expiry, and returned. Keyspace definitions ([`KeySpaceSpec`]) live in a [`Catalog`], so that
//! creating, updating or deleting a keyspace is one committed change that every node follows.
//!
//! # Layout
//! - [`engine`](Engine): the public API (`get`, `put`, `delete`, their `_many` forms,
//!   keyspace management, `start`/`stop`) and its builder;
//! - `space`: one keyspace live on a node: caches, protection, single-flight loads;
//! - `store`: a byte-weighed moka cache with per-entry expiry;
//! - `flight`: single-flight registry of loads in progress;
//! - `protection`: rate limiter and circuit breaker around fetches;
//! - [`catalog`](Catalog): where keyspace definitions come from ([`LocalCatalog`] on one node);
//! - `registry`: turns a spec's `source` into a live [`DataSource`];
//! - [`spec`](KeySpaceSpec), [`config`](EngineConfig): serialisable definitions, defaults,
//!   validation;
//! - [`source`](DataSource), [`keyspace`](KeySpace): the traits an embedding program implements;
//! - [`stats`](KeySpaceSnapshot): counters and the admin snapshot;
//! - [`error`](Error): typed errors with stable wire codes.
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
mod config;
mod engine;
mod error;
mod flight;
mod keyspace;
mod protection;
mod registry;
mod source;
mod space;
mod spec;
mod stats;
mod store;
pub mod units;

pub use async_trait::async_trait;
pub use bytes::Bytes;

pub use catalog::{Catalog, CatalogChange, CatalogState, LocalCatalog};
pub use config::{EngineConfig, KeySpaceOverrides, Limits, Settings};
pub use engine::{Engine, EngineBuilder, Entry, KeyResult};
pub use error::{Error, ErrorCode, Problem, Problems, Result, SourceError};
pub use keyspace::KeySpace;
pub use protection::BreakerState;
pub use source::{DataSource, FetchResult, Fetched, FnSource, NoSource, source_fn};
pub use spec::{CircuitBreakerConfig, Eviction, KeySpaceSpec, RateLimitConfig, SourceSpec};
pub use stats::{KeySpaceSnapshot, Stats};
