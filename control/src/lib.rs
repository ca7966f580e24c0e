//! distcache-control: the replicated control store of a distcache cluster.
//!
//! It keeps one small [`Catalog`] (named, opaque entries and a revision) consistent on every
//! node with raft: openraft 0.9 with a sled log and state machine. It knows nothing about
//! caching; the node crate stores validated keyspace specs in it and follows the catalog it
//! publishes after every applied change.
//!
//! # Layout
//! - [`catalog`](Catalog): the state machine's pure rules (create, put, delete, compare-and-set);
//! - [`requests`](RequestLedger): idempotent writes, each request id applied once;
//! - `store`: sled-backed raft log and state machine, durable before acknowledged;
//! - `network`: raft RPC over HTTP (reqwest out, axum in, under `/_distcache/raft/…`);
//! - [`plane`](ControlPlane): one node's control plane: open, bootstrap or join, write (any node
//!   accepts; followers forward to the leader), membership reconciliation, status;
//! - [`config`](ControlConfig): timings and voter counts.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use distcache_control::{Change, Command, ControlConfig, ControlPlane};
//!
//! let plane = ControlPlane::open("/var/lib/distcache/control".as_ref(), "node-1", "10.0.0.1:3320",
//!     ControlConfig::default(), None, None).await?;
//! // Serve `plane.router()` on the node's HTTP listener, then:
//! plane.set_peers(&["10.0.0.2:3320".into(), "10.0.0.3:3320".into()]);
//! // Form (or join) the group; if this node forms it, these entries seed the catalog.
//! plane.bootstrap(3, Duration::from_secs(30), Duration::from_secs(1), Vec::new()).await?;
//! plane.start();
//! let revision = plane.write(Command {
//!     change: Change::Put { name: "users".into(), spec: serde_json::json!({"max_bytes": 1024}) },
//!     expected_revision: None,
//!     request_id: None,
//! }).await??;
//! # let _ = revision; Ok(()) }
//! ```

#![deny(missing_docs)]

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

mod catalog;
mod config;
mod network;
mod plane;
mod requests;
mod store;

pub use catalog::{Catalog, CatalogError, Change, Command};
pub use config::ControlConfig;
pub use plane::{ControlPlane, ControlStatus, MemberInfo, Role};
pub use requests::{
    LEDGER_CAPACITY, MAX_REQUEST_ID_LEN, RequestLedger, check_request_id, fresh_request_id,
};
pub use store::{LogStore, StateMachine, open_store};

/// The catalog as raft replicates it: entries are JSON values.
pub type JsonCatalog = Catalog<serde_json::Value>;

/// What applying a command answered: the new revision, or why nothing changed.
pub type Outcome = Result<u64, CatalogError>;

openraft::declare_raft_types!(
    /// The raft types of the control store.
    pub TypeConfig:
        D = Command<serde_json::Value>,
        R = Outcome,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The raft instance of the control store.
pub type Raft = openraft::Raft<TypeConfig>;

/// A member of the raft group: the node's name (its `--id`) and address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's name.
    pub name: String,
    /// Its `host:port`.
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// The raft id of the node named `name`: a fixed 64-bit hash, the same on every node and
/// across restarts.
pub fn raft_id(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// Why the control store could not do something.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No leader could take the change in time (election, majority lost).
    #[error("control store unavailable: {0}")]
    Unavailable(String),
    /// The on-disk state could not be read or written.
    #[error("control store storage: {0}")]
    Storage(String),
    /// The node's settings do not match its stored identity, or are unusable.
    #[error("control store configuration: {0}")]
    Config(String),
}
