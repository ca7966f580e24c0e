//! The raft log and vote on sled.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, Vote};

use super::{read_err, write_err};
use crate::{ControlError, TypeConfig, raft_id};

const VOTE: &[u8] = b"vote";
const PURGED: &[u8] = b"last_purged";
const COMMITTED: &[u8] = b"committed";
const NAME: &[u8] = b"node_name";
const ID: &[u8] = b"node_id";

/// The raft log and vote of one node. Cheap to clone (clones share the database).
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

impl LogStore {
    pub(super) fn new(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
        })
    }

    /// Records the node's name and raft id on first open; refuses another name afterwards.
    pub(super) fn check_identity(&self, name: &str) -> Result<(), ControlError> {
        let storage = |e: sled::Error| ControlError::Storage(e.to_string());
        match self.meta.get(NAME).map_err(storage)? {
            Some(stored) if stored.as_ref() != name.as_bytes() => {
                Err(ControlError::Config(format!(
                    "this data directory belongs to node `{}`, not `{name}`: use that --id or another --data-dir",
                    String::from_utf8_lossy(&stored)
                )))
            }
            Some(_) => Ok(()),
            None => {
                self.meta.insert(NAME, name.as_bytes()).map_err(storage)?;
                self.meta
                    .insert(ID, &raft_id(name).to_be_bytes())
                    .map_err(storage)?;
                self.meta.flush().map_err(storage)?;
                Ok(())
            }
        }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<u64>> {
        match self.meta.get(key).map_err(read_err)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(read_err),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<(), StorageError<u64>> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        self.meta.insert(key, bytes).map_err(write_err)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), StorageError<u64>> {
        self.db.flush_async().await.map_err(write_err)?;
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError<u64>> {
        match self.log.last().map_err(read_err)? {
            Some((_, bytes)) => serde_json::from_slice(&bytes).map(Some).map_err(read_err),
            None => Ok(None),
        }
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(i) => key(*i),
            Bound::Excluded(i) => key(i.saturating_add(1)),
            Bound::Unbounded => key(0),
        };
        let mut entries = Vec::new();
        for item in self.log.range(start..) {
            let (k, v) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| read_err(std::io::Error::other("log key is not 8 bytes")))?,
            );
            if !range.contains(&index) {
                break;
            }
            entries.push(serde_json::from_slice(&v).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged_log_id: Option<LogId<u64>> = self.get_meta(PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.put_meta(VOTE, vote)?;
        self.flush().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.get_meta(VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.put_meta(COMMITTED, &committed)?;
        self.flush().await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.get_meta::<Option<LogId<u64>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
            batch.insert(&key(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        // Durable before it is acknowledged.
        let flushed = self
            .db
            .flush_async()
            .await
            .map(|_| ())
            .map_err(std::io::Error::other);
        let failed = flushed
            .as_ref()
            .err()
            .map(|e| write_err(std::io::Error::other(e.to_string())));
        callback.log_io_completed(flushed);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(key(log_id.index)..) {
            let (k, _) = item.map_err(read_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // Record what is purged first: a crash in between leaves extra entries, never a hole.
        self.put_meta(PURGED, &log_id)?;
        self.flush().await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=key(log_id.index)) {
            let (k, _) = item.map_err(read_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        self.flush().await
    }
}
