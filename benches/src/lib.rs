//! What `scripts/bench.sh` measures distcache against, built from the workspace's own pinned
//! axum, moka, tokio and reqwest with the workspace's release profile.
//!
//! Why a workspace member of its own rather than a `[[bench]]` target of `node`: a bench target
//! of `node` is built with every dev-dependency of `node` (criterion, sled, proptest, the
//! testkit with its DNS server and Kubernetes fake), minutes of release build and gigabytes on
//! the shared 2-core machine, for a server that needs four crates. As a member it still shares
//! the workspace's lockfile (the same versions to the patch), its `[workspace.dependencies]`
//! features and its `[profile.release]`, and `cargo build --release -p distcache-cli -p
//! distcache-bench` builds both with one feature resolution, so the two servers run the same
//! compiled axum, hyper, tokio and moka.
//!
//! # Layout
//! - [`reference`](mod@reference): the bare axum + moka::future server doing the same GET as a node's
//!   `/v1/keyspaces/{ks}/keys/{key}` hit, plus PUT, `put-many` and `get-many` to fill and read
//!   it the way bench.sh fills and reads a node, and an optional read-through source.
//! - [`delay_source`]: an HTTP data source answering every key after a fixed delay and
//!   counting its fetches, for the miss path and the one-fetch-per-key check.
//! - [`runtime`]: the tokio runtime both run on, shaped like a node's.
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), distcache_bench::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = distcache_bench::reference::Config::new("scratch");
//! distcache_bench::reference::serve(listener, config, std::future::pending()).await
//! # }
//! ```

#![deny(missing_docs)]

pub mod delay_source;
pub mod reference;
pub mod runtime;

/// What can stop a server of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding, accepting or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client of the read-through source could not be built.
    #[error("cannot build the HTTP client of the source: {0}")]
    Client(#[source] reqwest::Error),
    /// A `{key}` URL template that cannot be a URL.
    #[error("source `{template}` is not a valid URL template: {reason}")]
    SourceTemplate {
        /// The template given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The result of this crate's fallible functions.
pub type Result<T> = std::result::Result<T, Error>;
