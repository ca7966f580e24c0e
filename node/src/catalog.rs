//! Where keyspace definitions come from: the catalog seam.
//!
//! The engine never owns its keyspace definitions. It asks a [`Catalog`] to commit changes and
//! follows the catalog's committed state (a revision and the specs), creating, rebuilding and
//! dropping keyspaces to match. On a single node the catalog is a [`LocalCatalog`] in memory;
//! in a cluster it is the raft-replicated control store, so every node follows the same
//! sequence of states.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::error::{Error, Result};
use crate::spec::KeySpaceSpec;

/// The committed catalog at one revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    /// Increases by one with every committed change; 0 is the empty, never-changed catalog.
    pub revision: u64,
    /// Every keyspace, by name.
    pub keyspaces: BTreeMap<String, KeySpaceSpec>,
}

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

impl CatalogState {
    /// Applies `change` if it is allowed, and when `expected_revision` (compare-and-set) is
    /// given, only at that revision. Returns the new revision; on error nothing changed.
    pub fn apply(&mut self, change: &CatalogChange, expected_revision: Option<u64>) -> Result<u64> {
        if let Some(expected) = expected_revision
            && expected != self.revision
        {
            return Err(Error::RevisionMismatch {
                expected,
                actual: self.revision,
            });
        }
        match change {
            CatalogChange::Create { spec } => {
                if self.keyspaces.contains_key(&spec.name) {
                    return Err(Error::KeySpaceExists(spec.name.clone()));
                }
                self.keyspaces.insert(spec.name.clone(), spec.clone());
            }
            CatalogChange::Put { spec } => {
                self.keyspaces.insert(spec.name.clone(), spec.clone());
            }
            CatalogChange::Delete { names } => {
                if let Some(missing) = names.iter().find(|n| !self.keyspaces.contains_key(*n)) {
                    return Err(Error::KeySpaceNotFound(missing.clone()));
                }
                for name in names {
                    self.keyspaces.remove(name);
                }
            }
        }
        self.revision += 1;
        Ok(self.revision)
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
            let current = self.subscribe().borrow().keyspaces.get(&spec.name).cloned();
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
        let revision = next.apply(&change, expected_revision)?;
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

    /// Every committed change raises the revision by one; refused changes change nothing.
    #[test]
    fn revisions_count_committed_changes() {
        let mut state = CatalogState::default();
        assert_eq!(
            state
                .apply(&CatalogChange::Create { spec: spec("a") }, None)
                .ok(),
            Some(1)
        );
        assert!(matches!(
            state.apply(&CatalogChange::Create { spec: spec("a") }, None),
            Err(Error::KeySpaceExists(_))
        ));
        assert_eq!(
            state
                .apply(&CatalogChange::Put { spec: spec("b") }, None)
                .ok(),
            Some(2)
        );
        assert!(matches!(
            state.apply(
                &CatalogChange::Delete {
                    names: vec!["a".into(), "zz".into()]
                },
                None
            ),
            Err(Error::KeySpaceNotFound(ref n)) if n == "zz"
        ));
        assert_eq!(state.keyspaces.len(), 2, "a failed delete removes nothing");
        assert_eq!(state.revision, 2);
    }

    /// Compare-and-set applies only at the expected revision.
    #[test]
    fn compare_and_set() {
        let mut state = CatalogState::default();
        let put = CatalogChange::Put { spec: spec("a") };
        assert!(matches!(
            state.apply(&put, Some(3)),
            Err(Error::RevisionMismatch {
                expected: 3,
                actual: 0
            })
        ));
        assert_eq!(state.apply(&put, Some(0)).ok(), Some(1));
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
        assert_eq!(state.keyspaces["a"], original, "the catalog rules");
        assert!(state.keyspaces.contains_key("b"));
    }
}
