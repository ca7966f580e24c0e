//! Durable raft state on sled: one database per node with four trees.
//!
//! - `raft_log`: entries by index (big-endian keys sort numerically), JSON values;
//! - `raft_meta`: vote, last purged log id, committed log id, and the node's identity;
//! - `sm`: the applied catalog, last applied log id and membership, written as one batch per
//!   `apply` so they never diverge;
//! - `snapshot`: the current snapshot (metadata and data).
//!
//! Vote and log are flushed (fsync) before they are acknowledged; `apply` is not flushed on its
//! own, as the next append's flush covers it and a lost apply is replayed from the log.

use std::path::Path;

use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};

use crate::ControlError;

// openraft's storage traits fix the error type (`StorageError`, large): helpers return it too.
#[allow(clippy::result_large_err)]
mod log;
#[allow(clippy::result_large_err)]
mod state_machine;

pub use log::LogStore;
pub use state_machine::StateMachine;

/// Opens (or creates) the store at `dir` for the node named `name`, refusing a directory that
/// belongs to another node.
pub fn open_store(dir: &Path, name: &str) -> Result<(LogStore, StateMachine), ControlError> {
    let db = open_db(dir)?;
    let log = LogStore::new(&db).map_err(|e| ControlError::Storage(e.to_string()))?;
    log.check_identity(name)?;
    let sm = StateMachine::new(&db).map_err(ControlError::Storage)?;
    Ok((log, sm))
}

/// Opens the database, waiting up to 5 s for a previous owner in this process to let go of
/// its lock (sled releases it once its background flusher notices the last handle is gone).
/// Blocks: callers on an async runtime run it with `spawn_blocking`.
fn open_db(dir: &Path) -> Result<sled::Db, ControlError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(32 << 20)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(ControlError::Storage(format!(
                    "cannot open {}: {e} (is another node using this --data-dir?)",
                    dir.display()
                )));
            }
        }
    }
}

pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::Store,
        ErrorVerb::Read,
        openraft::AnyError::new(&e),
    )
    .into()
}

pub(crate) fn write_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::Store,
        ErrorVerb::Write,
        openraft::AnyError::new(&e),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use openraft::StorageError;
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;
    use crate::TypeConfig;

    struct SledBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
            let dir = tempfile::tempdir().map_err(write_err)?;
            let (log, sm) = open_store(dir.path(), "suite")
                .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own storage test suite passes against the sled store.
    #[test]
    fn sled_store_passes_the_openraft_suite() {
        let _ = Cursor::new(Vec::<u8>::new());
        Suite::test_all(SledBuilder).expect("storage suite");
    }

    /// A directory that belongs to one node refuses to open for another name.
    #[test]
    fn identity_is_checked() {
        let dir = tempfile::tempdir().expect("dir");
        drop(open_store(dir.path(), "a").expect("first open"));
        let err = open_store(dir.path(), "b").err().expect("refused");
        assert!(err.to_string().contains("`a`"), "{err}");
        assert!(open_store(dir.path(), "a").is_ok());
    }
}
