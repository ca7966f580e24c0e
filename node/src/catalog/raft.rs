//! The catalog of a cluster: the raft-replicated control store.
//!
//! Changes go through [`ControlPlane::write`] (any node; followers forward to the leader) and
//! return once committed; every node's state machine publishes what it applied, which this
//! catalog turns into typed specs for the engine to follow.

use std::sync::Arc;

use async_trait::async_trait;
use distcache_control::{Command, ControlError, ControlPlane, JsonCatalog};
use tokio::sync::watch;

use super::{Catalog, CatalogChange, CatalogState, WriteOptions, refused};
use crate::error::{Error, Problems, Result};
use crate::limits::Limits;
use crate::spec::KeySpaceSpec;

/// A [`Catalog`] on the cluster's control plane.
pub struct RaftCatalog {
    plane: ControlPlane,
    state: watch::Sender<Arc<CatalogState>>,
    follower: tokio::task::JoinHandle<()>,
}

fn typed(raw: &JsonCatalog) -> CatalogState {
    let mut state = CatalogState {
        revision: raw.revision,
        entries: Default::default(),
        seeded: raw.seeded,
    };
    for (name, value) in &raw.entries {
        // Specs are validated before they are committed; one that does not read back (written
        // by a newer version, say) or breaks the rules (written straight to the raft routes)
        // is skipped rather than taking the whole catalog down or being served unchecked.
        match serde_json::from_value::<KeySpaceSpec>(value.clone()) {
            Ok(spec) => match committed_problems(name, &spec) {
                None => {
                    state.entries.insert(name.clone(), spec);
                }
                Some(problems) => {
                    tracing::error!(keyspace = %name, %problems, "catalog entry breaks the rules of a keyspace spec; skipped")
                }
            },
            Err(e) => {
                tracing::error!(keyspace = %name, error = %e, "catalog entry is not a keyspace spec this node understands; skipped")
            }
        }
    }
    state
}

/// What is wrong with `spec`, committed under `name`, whatever this node's limits: it must be
/// stored under its own name and pass every check but the key-size limit of its warm keys
/// (nodes may differ there; a key over this node's limit only fails to warm).
fn committed_problems(name: &str, spec: &KeySpaceSpec) -> Option<Problems> {
    let limits = Limits {
        max_key_bytes: usize::MAX,
        ..Limits::default()
    };
    let mut problems = spec.problems(&limits);
    if spec.name != name {
        problems.push(
            "name",
            format!("`{}` differs from the entry's name `{name}`", spec.name),
        );
    }
    (!problems.is_empty()).then_some(problems)
}

/// Publishes `raw` unless what is published is as new: the follower task and readers that
/// refresh may race, and the published state must never go back.
fn publish_newer(state: &watch::Sender<Arc<CatalogState>>, raw: &JsonCatalog) {
    state.send_if_modified(|current| {
        let newer = raw.revision > current.revision || (raw.seeded && !current.seeded);
        if newer {
            *current = Arc::new(typed(raw));
        }
        newer
    });
}

impl RaftCatalog {
    /// A catalog over `plane`, publishing its applied state from now on.
    pub fn new(plane: ControlPlane) -> Self {
        let mut raw = plane.catalog();
        let state = watch::Sender::new(Arc::new(typed(&raw.borrow_and_update())));
        let publisher = state.clone();
        let follower = tokio::spawn(async move {
            while raw.changed().await.is_ok() {
                let latest = raw.borrow_and_update().clone();
                publish_newer(&publisher, &latest);
            }
        });
        RaftCatalog {
            plane,
            state,
            follower,
        }
    }

    /// Publishes the plane's applied catalog now if the follower task has not yet: readers
    /// never see a state older than what the plane applied.
    fn refresh(&self) {
        let raw = self.plane.catalog().borrow().clone();
        publish_newer(&self.state, &raw);
    }

    /// The control plane behind this catalog.
    pub fn plane(&self) -> &ControlPlane {
        &self.plane
    }
}

impl Drop for RaftCatalog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

#[async_trait]
impl Catalog for RaftCatalog {
    async fn change(&self, change: CatalogChange, options: WriteOptions) -> Result<u64> {
        let typed = change.into_command(options);
        let change = match typed.change {
            distcache_control::Change::Create { name, spec } => distcache_control::Change::Create {
                name,
                spec: to_json(&spec)?,
            },
            distcache_control::Change::Put { name, spec } => distcache_control::Change::Put {
                name,
                spec: to_json(&spec)?,
            },
            distcache_control::Change::Delete { names } => {
                distcache_control::Change::Delete { names }
            }
            distcache_control::Change::Seed { entries } => distcache_control::Change::Seed {
                entries: entries
                    .into_iter()
                    .map(|(name, spec)| to_json(&spec).map(|v| (name, v)))
                    .collect::<Result<_>>()?,
            },
        };
        let command = Command {
            change,
            expected_revision: typed.expected_revision,
            request_id: typed.request_id,
        };
        match self.plane.write(command).await {
            Ok(Ok(revision)) => Ok(revision),
            Ok(Err(refusal)) => Err(refused(refusal)),
            Err(ControlError::Unavailable(message)) => Err(Error::Unavailable(message)),
            Err(e) => Err(Error::Internal(e.to_string())),
        }
    }

    fn subscribe(&self) -> watch::Receiver<Arc<CatalogState>> {
        self.refresh();
        self.state.subscribe()
    }

    /// The node that formed the cluster seeded the catalog while forming it (see
    /// [`ControlPlane::bootstrap`]); after that the catalog rules, and a start-up definition
    /// that differs from it is only reported.
    async fn seed(&self, specs: Vec<KeySpaceSpec>) -> Result<()> {
        let current = self.state.borrow().clone();
        for spec in specs {
            match current.entries.get(&spec.name) {
                Some(committed) if *committed != spec => tracing::warn!(
                    keyspace = %spec.name,
                    "the keyspace file differs from the cluster's catalog; the catalog rules"
                ),
                None => tracing::warn!(
                    keyspace = %spec.name,
                    "the keyspace file names a keyspace the cluster's catalog does not have; create it with `distcache keyspace apply`"
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

fn to_json(spec: &KeySpaceSpec) -> Result<serde_json::Value> {
    serde_json::to_value(spec).map_err(|e| Error::Internal(format!("cannot encode spec: {e}")))
}
