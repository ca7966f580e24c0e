//! The `sqlite` source: a database file and a query with one `?` for the key; the first column
//! of the first row is the value (BLOB and TEXT as they are, numbers as text), no row or NULL
//! means not found.
//!
//! SQLite calls block, so they run on tokio's blocking pool, over a few read-only connections
//! (one query at a time each). Opening checks that the file exists and that the query
//! prepares (its table and columns exist), so a bad spec fails when it is created, not on the
//! first get.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Problems, SourceError};
use crate::source::{DataSource, FetchResult, Fetched};

/// Connections per source: SQLite serialises writers, readers scale with connections.
const CONNECTIONS: usize = 4;

/// Reads keys from a SQLite file.
pub(crate) struct SqliteSource {
    connections: Arc<[Mutex<Connection>]>,
    next: AtomicUsize,
    query: Arc<str>,
}

fn invalid(field: &str, message: String) -> Error {
    let mut p = Problems::new();
    p.push(field, message);
    Error::InvalidSpec(p)
}

impl SqliteSource {
    /// Opens `path` read-only and prepares `query`.
    pub fn open(path: &str, query: &str) -> Result<Self, Error> {
        if !std::path::Path::new(path).is_file() {
            return Err(invalid(
                "source.path",
                format!("`{path}` is not a SQLite file this node can read"),
            ));
        }
        let mut connections = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| invalid("source.path", format!("cannot open `{path}`: {e}")))?;
            conn.busy_timeout(Duration::from_secs(1))
                .map_err(|e| invalid("source.path", format!("`{path}`: {e}")))?;
            {
                let stmt = conn
                    .prepare_cached(query)
                    .map_err(|e| invalid("source.query", format!("does not prepare: {e}")))?;
                if stmt.parameter_count() != 1 {
                    return Err(invalid(
                        "source.query",
                        format!(
                            "must take exactly one parameter, takes {}",
                            stmt.parameter_count()
                        ),
                    ));
                }
                if stmt.column_count() == 0 {
                    return Err(invalid("source.query", "must return a column".into()));
                }
            }
            connections.push(Mutex::new(conn));
        }
        Ok(SqliteSource {
            connections: connections.into(),
            next: AtomicUsize::new(0),
            query: Arc::from(query),
        })
    }
}

fn value(v: ValueRef<'_>) -> Option<Bytes> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Bytes::from(i.to_string())),
        ValueRef::Real(f) => Some(Bytes::from(f.to_string())),
        ValueRef::Text(t) => Some(Bytes::copy_from_slice(t)),
        ValueRef::Blob(b) => Some(Bytes::copy_from_slice(b)),
    }
}

#[async_trait]
impl DataSource for SqliteSource {
    async fn fetch(&self, key: &str) -> FetchResult {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let connections = Arc::clone(&self.connections);
        let query = Arc::clone(&self.query);
        let key = key.to_owned();
        let row = tokio::task::spawn_blocking(move || {
            let conn = connections[slot]
                .lock()
                .map_err(|_| SourceError::new("a SQLite connection was poisoned by a panic"))?;
            let mut stmt = conn
                .prepare_cached(&query)
                .map_err(|e| SourceError::with_cause("preparing the query failed", e))?;
            stmt.query_row([key.as_str()], |row| Ok(value(row.get_ref(0)?)))
                .optional()
                .map_err(|e| SourceError::with_cause("the query failed", e))
        })
        .await
        .map_err(|e| SourceError::with_cause("the SQLite task failed", e))??;
        Ok(row.flatten().map(Fetched::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db").to_string_lossy().into_owned();
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB);
             INSERT INTO t VALUES ('text', 'hello'), ('blob', x'00ff'), ('int', 42), ('null', NULL);
             CREATE TABLE n (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO n VALUES (7, 'seven');",
        )
        .expect("fill");
        (dir, path)
    }

    /// Values of every SQLite type come back as bytes; missing rows and NULL are not found.
    #[tokio::test]
    async fn reads_values_and_not_found() {
        let (_dir, path) = database();
        let s = SqliteSource::open(&path, "SELECT v FROM t WHERE k = ?").expect("open");
        let get = |k: &'static str| {
            let s = &s;
            async move { s.fetch(k).await.expect("fetch").map(|f| f.value) }
        };
        assert_eq!(get("text").await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(get("blob").await.as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(get("int").await.as_deref(), Some(&b"42"[..]));
        assert_eq!(get("null").await, None);
        assert_eq!(get("absent").await, None);
        // Integer keys match an INTEGER column by SQLite's affinity.
        let n = SqliteSource::open(&path, "SELECT body FROM n WHERE id = ?").expect("open");
        assert_eq!(
            n.fetch("7")
                .await
                .expect("fetch")
                .map(|f| f.value)
                .as_deref(),
            Some(&b"seven"[..])
        );
    }

    /// A missing file, a bad query or a wrong parameter count fail at open, naming the field.
    #[test]
    fn bad_specs_fail_at_open() {
        let (_dir, path) = database();
        let err = SqliteSource::open("/nonexistent.db", "SELECT 1 WHERE ? = 1")
            .err()
            .expect("missing");
        assert!(err.to_string().contains("source.path"), "{err}");
        let err = SqliteSource::open(&path, "SELECT v FROM nope WHERE k = ?")
            .err()
            .expect("table");
        assert!(
            err.to_string().contains("source.query") && err.to_string().contains("nope"),
            "{err}"
        );
        let err = SqliteSource::open(&path, "SELECT v FROM t WHERE k = ? OR k = ?")
            .err()
            .expect("params");
        assert!(err.to_string().contains("one parameter"), "{err}");
    }
}
