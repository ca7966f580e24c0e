//! The catalog state machine on sled, with snapshots, publishing every applied state.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{read_err, write_err};
use crate::{JsonCatalog, Member, Outcome, RequestLedger, TypeConfig};

const APPLIED: &[u8] = b"applied";
const MEMBERSHIP: &[u8] = b"membership";
const CATALOG: &[u8] = b"catalog";
const REQUESTS: &[u8] = b"requests";
const CURRENT: &[u8] = b"current";

/// Everything a snapshot holds.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, Member>,
    catalog: JsonCatalog,
    /// Recent request ids and their outcomes (absent in snapshots from before idempotent
    /// writes: an empty ledger).
    #[serde(default)]
    requests: RequestLedger,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, Member>,
    data: Vec<u8>,
}

/// The applied catalog of one node, durable in sled and published on a watch channel.
pub struct StateMachine {
    db: sled::Db,
    sm: sled::Tree,
    snapshots: sled::Tree,
    state: Applied,
    published: watch::Sender<Arc<JsonCatalog>>,
    snapshot_counter: Arc<AtomicU64>,
}

impl StateMachine {
    pub(super) fn new(db: &sled::Db) -> Result<Self, String> {
        let sm = db.open_tree("sm").map_err(|e| e.to_string())?;
        let snapshots = db.open_tree("snapshot").map_err(|e| e.to_string())?;
        fn load<T: serde::de::DeserializeOwned + Default>(
            tree: &sled::Tree,
            key: &[u8],
        ) -> Result<T, String> {
            match tree.get(key).map_err(|e| e.to_string())? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    format!("stored `{}` is corrupt: {e}", String::from_utf8_lossy(key))
                }),
                None => Ok(T::default()),
            }
        }
        let state = Applied {
            last_applied: load(&sm, APPLIED)?,
            membership: load(&sm, MEMBERSHIP)?,
            catalog: load(&sm, CATALOG)?,
            requests: load(&sm, REQUESTS)?,
        };
        let published = watch::Sender::new(Arc::new(state.catalog.clone()));
        Ok(StateMachine {
            db: db.clone(),
            sm,
            snapshots,
            state,
            published,
            snapshot_counter: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Follows the applied catalog: the state read from disk at open, then every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<JsonCatalog>> {
        self.published.subscribe()
    }

    /// Writes the applied state as one batch (data and last-applied never diverge).
    fn persist(&self) -> Result<(), StorageError<u64>> {
        let mut batch = sled::Batch::default();
        batch.insert(
            APPLIED,
            serde_json::to_vec(&self.state.last_applied).map_err(write_err)?,
        );
        batch.insert(
            MEMBERSHIP,
            serde_json::to_vec(&self.state.membership).map_err(write_err)?,
        );
        batch.insert(
            CATALOG,
            serde_json::to_vec(&self.state.catalog).map_err(write_err)?,
        );
        batch.insert(
            REQUESTS,
            serde_json::to_vec(&self.state.requests).map_err(write_err)?,
        );
        self.sm.apply_batch(batch).map_err(write_err)?;
        Ok(())
    }

    fn publish(&self) {
        self.published
            .send_replace(Arc::new(self.state.catalog.clone()));
    }
}

/// Builds a snapshot from the state captured when it was asked for.
pub struct SnapshotBuilder {
    db: sled::Db,
    snapshots: sled::Tree,
    state: Applied,
    counter: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let data = serde_json::to_vec(&self.state).map_err(write_err)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &self.state.last_applied {
            Some(id) => format!("{}-{}-{n}", id.leader_id.term, id.index),
            None => format!("empty-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.state.last_applied,
            last_membership: self.state.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.snapshots
            .insert(CURRENT, serde_json::to_vec(&stored).map_err(write_err)?)
            .map_err(write_err)?;
        self.db.flush_async().await.map_err(write_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, Member>), StorageError<u64>> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            self.state.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Ok(self.state.catalog.revision),
                EntryPayload::Normal(command) => {
                    self.state.requests.apply(&mut self.state.catalog, &command)
                }
                EntryPayload::Membership(membership) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(self.state.catalog.revision)
                }
            };
            outcomes.push(outcome);
        }
        self.persist()?;
        self.publish();
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snapshots: self.snapshots.clone(),
            state: self.state.clone(),
            counter: Arc::clone(&self.snapshot_counter),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let state: Applied = serde_json::from_slice(&data).map_err(read_err)?;
        self.state = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            catalog: state.catalog,
            requests: state.requests,
        };
        self.persist()?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.snapshots
            .insert(CURRENT, serde_json::to_vec(&stored).map_err(write_err)?)
            .map_err(write_err)?;
        self.db.flush_async().await.map_err(write_err)?;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        match self.snapshots.get(CURRENT).map_err(read_err)? {
            Some(bytes) => {
                let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(read_err)?;
                Ok(Some(Snapshot {
                    meta: stored.meta,
                    snapshot: Box::new(Cursor::new(stored.data)),
                }))
            }
            None => Ok(None),
        }
    }
}
