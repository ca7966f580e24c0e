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

use distcache_control::{CatalogError, Change, Command};

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

impl CatalogChange {
    /// The control store's command for this change.
    pub fn into_command(self, expected_revision: Option<u64>) -> Command<KeySpaceSpec> {
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
            expected_revision,
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
    }
}

/// A store of keyspace definitions that the engine follows.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Commits `change` (at `expected_revision`, when given) and returns the revision that
    /// contains it. Returns only once the change is durable for this catalog's guarantees.
    async fn change(&self, change: CatalogChange, expected_revision: Option<u64>) -> Result<u64>;

    /// The committed state now, and every later one.
    fn subscribe(&self) -> watch::Receiver<Arc<CatalogState>>;

    /// Adds `specs` that the catalog does not hold yet (keyspaces from code or a node's
    /// keyspace file). An existing keyspace keeps its committed definition: the catalog rules.
    async fn seed(&self, specs: Vec<KeySpaceSpec>) -> Result<()> {
        for spec in specs {
            let current = self.subscribe().borrow().entries.get(&spec.name).cloned();
            match current {
                None => match self.change(CatalogChange::Create { spec }, None).await {
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
    writer: Mutex<()>,
}

impl LocalCatalog {
    /// An empty catalog at revision 0.
    pub fn new() -> Self {
        LocalCatalog {
            state: watch::Sender::new(Arc::new(CatalogState::default())),
            writer: Mutex::new(()),
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
    async fn change(&self, change: CatalogChange, expected_revision: Option<u64>) -> Result<u64> {
        let _writer = self.writer.lock().await;
        let mut next = CatalogState::clone(&self.state.borrow());
        let revision = next
            .apply(&change.into_command(expected_revision))
            .map_err(refused)?;
        self.state.send_replace(Arc::new(next));
        Ok(revision)
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
        assert_eq!(catalog.change(create.clone(), None).await.ok(), Some(1));
        assert!(matches!(
            catalog.change(create, None).await,
            Err(Error::KeySpaceExists(ref n)) if n == "a"
        ));
        assert!(matches!(
            catalog
                .change(CatalogChange::Delete { names: vec!["a".into(), "zz".into()] }, None)
                .await,
            Err(Error::KeySpaceNotFound(ref n)) if n == "zz"
        ));
        assert!(matches!(
            catalog
                .change(CatalogChange::Put { spec: spec("b") }, Some(7))
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
                None,
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
