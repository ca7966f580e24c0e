//! Where keyspace definitions come from: the catalog seam.
//!
//! The engine never owns its keyspace definitions. It asks a [`Catalog`] to commit changes and
//! follows the catalog's committed state (a revision and the specs), creating, rebuilding and
//! dropping keyspaces to match. On a single node the catalog is a [`LocalCatalog`] in memory;
//! in a cluster it is the raft-replicated control store, so every node follows the same
//! sequence of states.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use distcache_control::{CatalogError, Change, Command, RequestLedger};

use crate::error::{Error, Result};
use crate::spec::KeySpaceSpec;

mod raft;

pub use raft::RaftCatalog;

/// The committed catalog at one revision: every keyspace by name (`entries`) and the revision
/// (raised by one with every committed change; 0 is the empty, never-changed catalog). The
/// rules are the control store's, shared by every catalog.
pub type CatalogState = distcache_control::Catalog<KeySpaceSpec>;

/// One change to the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CatalogChange {
    /// Adds a keyspace; fails with `KeySpaceExists` if the name is taken.
    Create {
        /// The new keyspace.
        spec: KeySpaceSpec,
    },
    /// Adds or replaces a keyspace.
    Put {
        /// The keyspace's new definition.
        spec: KeySpaceSpec,
    },
    /// Removes keyspaces, all or none: fails with `KeySpaceNotFound` naming the first missing
    /// one, and then removes nothing.
    Delete {
        /// Names to remove.
        names: Vec<String>,
    },
}

/// How a change is committed: its condition and its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Commit only while the catalog is at this revision (compare-and-set).
    pub expected_revision: Option<u64>,
    /// Identifies the change across retries: the catalog commits one change per id and
    /// answers a repeat with the first commit's outcome (a client sends it as the
    /// `Idempotency-Key` header). `None` is a change of its own.
    pub request_id: Option<String>,
}

impl WriteOptions {
    /// Commit only at `revision`.
    pub fn at_revision(revision: u64) -> Self {
        WriteOptions {
            expected_revision: Some(revision),
            request_id: None,
        }
    }
}

impl CatalogChange {
    /// The control store's command for this change.
    pub fn into_command(self, options: WriteOptions) -> Command<KeySpaceSpec> {
        let change = match self {
            CatalogChange::Create { spec } => Change::Create {
                name: spec.name.clone(),
                spec,
            },
            CatalogChange::Put { spec } => Change::Put {
                name: spec.name.clone(),
                spec,
            },
            CatalogChange::Delete { names } => Change::Delete { names },
        };
        Command {
            change,
            expected_revision: options.expected_revision,
            request_id: options.request_id,
        }
    }
}

/// The engine's error for a change the catalog's rules refused.
pub(crate) fn refused(err: CatalogError) -> Error {
    match err {
        CatalogError::Exists { name } => Error::KeySpaceExists(name),
        CatalogError::NotFound { name } => Error::KeySpaceNotFound(name),
        CatalogError::RevisionMismatch { expected, actual } => {
            Error::RevisionMismatch { expected, actual }
        }
        CatalogError::RequestIdReused { id } => Error::InvalidRequest(format!(
            "idempotency key `{id}` was already used for a different change; use a new key for a new change"
        )),
    }
}

/// A store of keyspace definitions that the engine follows.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Commits `change` (at `options.expected_revision`, when given, and once per
    /// `options.request_id`) and returns the revision that contains it. Returns only once the
    /// change is durable for this catalog's guarantees.
    async fn change(&self, change: CatalogChange, options: WriteOptions) -> Result<u64>;

    /// The committed state now, and every later one.
    fn subscribe(&self) -> watch::Receiver<Arc<CatalogState>>;

    /// Adds `specs` that the catalog does not hold yet (keyspaces from code or a node's
    /// keyspace file). An existing keyspace keeps its committed definition: the catalog rules.
    async fn seed(&self, specs: Vec<KeySpaceSpec>) -> Result<()> {
        for spec in specs {
            let current = self.subscribe().borrow().entries.get(&spec.name).cloned();
            match current {
                None => match self
                    .change(CatalogChange::Create { spec }, WriteOptions::default())
                    .await
                {
                    Ok(_) | Err(Error::KeySpaceExists(_)) => {}
                    Err(e) => return Err(e),
                },
                Some(committed) if committed != spec => tracing::warn!(
                    keyspace = %spec.name,
                    "the catalog's definition differs from the one given at start; keeping the catalog's"
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// An in-memory catalog for a single node: changes commit at once.
pub struct LocalCatalog {
    state: watch::Sender<Arc<CatalogState>>,
    /// Held by the one writer at a time; remembers recent request ids like the raft catalog.
    requests: Mutex<RequestLedger>,
}

impl LocalCatalog {
    /// An empty catalog at revision 0.
    pub fn new() -> Self {
        LocalCatalog {
            state: watch::Sender::new(Arc::new(CatalogState::default())),
            requests: Mutex::new(RequestLedger::default()),
        }
    }
}

impl Default for LocalCatalog {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Catalog for LocalCatalog {
    async fn change(&self, change: CatalogChange, options: WriteOptions) -> Result<u64> {
        let mut requests = self.requests.lock().await;
        let mut next = CatalogState::clone(&self.state.borrow());
        let outcome = requests.apply(&mut next, &change.into_command(options));
        if next.revision != self.state.borrow().revision {
            self.state.send_replace(Arc::new(next));
        }
        outcome.map_err(refused)
    }

    fn subscribe(&self) -> watch::Receiver<Arc<CatalogState>> {
        self.state.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SourceSpec;

    fn spec(name: &str) -> KeySpaceSpec {
        KeySpaceSpec::new(name, SourceSpec::None)
    }

    /// Refused changes become the engine's typed errors.
    #[tokio::test]
    async fn refusals_are_typed() {
        let catalog = LocalCatalog::new();
        let create = CatalogChange::Create { spec: spec("a") };
        assert_eq!(
            catalog
                .change(create.clone(), WriteOptions::default())
                .await
                .ok(),
            Some(1)
        );
        assert!(matches!(
            catalog.change(create, WriteOptions::default()).await,
            Err(Error::KeySpaceExists(ref n)) if n == "a"
        ));
        assert!(matches!(
            catalog
                .change(CatalogChange::Delete { names: vec!["a".into(), "zz".into()] }, WriteOptions::default())
                .await,
            Err(Error::KeySpaceNotFound(ref n)) if n == "zz"
        ));
        assert!(matches!(
            catalog
                .change(
                    CatalogChange::Put { spec: spec("b") },
                    WriteOptions::at_revision(7)
                )
                .await,
            Err(Error::RevisionMismatch {
                expected: 7,
                actual: 1
            })
        ));
        let state = catalog.subscribe().borrow().clone();
        assert_eq!(state.revision, 1);
        assert_eq!(state.entries.len(), 1, "refused changes change nothing");
    }

    /// A change sent again with its request id commits once and answers the first outcome.
    #[tokio::test]
    async fn retried_changes_commit_once() {
        let catalog = LocalCatalog::new();
        let once = WriteOptions {
            expected_revision: None,
            request_id: Some("retry-1".into()),
        };
        let create = CatalogChange::Create { spec: spec("a") };
        assert_eq!(
            catalog.change(create.clone(), once.clone()).await.ok(),
            Some(1)
        );
        assert_eq!(catalog.change(create, once.clone()).await.ok(), Some(1));
        assert_eq!(catalog.subscribe().borrow().revision, 1);
        assert!(matches!(
            catalog.change(CatalogChange::Put { spec: spec("b") }, once).await,
            Err(Error::InvalidRequest(ref m)) if m.contains("retry-1")
        ));
        assert_eq!(catalog.subscribe().borrow().revision, 1);
    }

    /// Subscribers see committed states; seeding keeps what the catalog already has.
    #[tokio::test]
    async fn local_catalog_publishes_and_seeds() {
        let catalog = LocalCatalog::new();
        let rx = catalog.subscribe();
        let mut original = spec("a");
        original.warm_keys = vec!["k".into()];
        catalog
            .change(
                CatalogChange::Create {
                    spec: original.clone(),
                },
                WriteOptions::default(),
            )
            .await
            .expect("create");
        assert_eq!(rx.borrow().revision, 1);
        catalog
            .seed(vec![spec("a"), spec("b")])
            .await
            .expect("seed");
        let state = rx.borrow().clone();
        assert_eq!(state.revision, 2);
        assert_eq!(state.entries["a"], original, "the catalog rules");
        assert!(state.entries.contains_key("b"));
    }
}
