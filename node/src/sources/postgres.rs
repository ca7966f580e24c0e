//! The `postgres` source: a PostgreSQL URL and a query with `$1` for the key; the first column
//! of the first row is the value (`bytea` as it is, text as UTF-8, numbers as text), no row or
//! NULL means not found.
//!
//! A small pool of connections (tokio-postgres pipelines concurrent queries on each), each
//! re-established when it breaks. Opening connects and prepares the query, so a wrong URL,
//! password, table or column fails when the keyspace is created.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Mutex;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::error::{Error, Problems, SourceError};
use crate::source::{DataSource, FetchResult, Fetched};
use crate::spec::redacted_url;

/// Connections per source.
const CONNECTIONS: usize = 2;
/// Deadline of connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    client: Arc<Client>,
    statement: Statement,
}

/// Reads keys from PostgreSQL.
pub(crate) struct PostgresSource {
    url: String,
    query: String,
    pool: Vec<Mutex<Option<Conn>>>,
    next: AtomicUsize,
    key_type: KeyType,
}

/// How the key is passed as `$1`.
#[derive(Clone, Copy)]
enum KeyType {
    Text,
    Int2,
    Int4,
    Int8,
}

fn invalid(field: &str, message: String) -> Error {
    let mut p = Problems::new();
    p.push(field, message);
    Error::InvalidSpec(p)
}

/// The server's own words for a failure (`db error` alone says nothing).
fn message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        };
    }
    crate::error::with_causes(e)
}

async fn connect(url: &str, query: &str) -> Result<Conn, String> {
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| format!("connecting to {} timed out", redacted_url(url)))?
            .map_err(|e| format!("cannot connect to {}: {}", redacted_url(url), message(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    let statement = client
        .prepare(query)
        .await
        .map_err(|e| format!("the query does not prepare: {}", message(&e)))?;
    Ok(Conn {
        client: Arc::new(client),
        statement,
    })
}

impl PostgresSource {
    /// Connects once, prepares `query` and checks its shape.
    pub async fn open(url: &str, query: &str) -> Result<Self, Error> {
        let conn = connect(url, query).await.map_err(|m| {
            let field = if m.contains("prepare") {
                "source.query"
            } else {
                "source.url"
            };
            invalid(field, m)
        })?;
        let params = conn.statement.params();
        if params.len() != 1 {
            return Err(invalid(
                "source.query",
                format!(
                    "must take exactly one parameter ($1), takes {}",
                    params.len()
                ),
            ));
        }
        if conn.statement.columns().is_empty() {
            return Err(invalid("source.query", "must return a column".into()));
        }
        let key_type = match params[0] {
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => KeyType::Text,
            Type::INT2 => KeyType::Int2,
            Type::INT4 => KeyType::Int4,
            Type::INT8 => KeyType::Int8,
            ref other => {
                return Err(invalid(
                    "source.query",
                    format!(
                        "$1 is compared with a {other} column: use a text or integer key, or cast ($1::text)"
                    ),
                ));
            }
        };
        let mut pool = Vec::with_capacity(CONNECTIONS);
        pool.push(Mutex::new(Some(conn)));
        for _ in 1..CONNECTIONS {
            pool.push(Mutex::new(None));
        }
        Ok(PostgresSource {
            url: url.to_owned(),
            query: query.to_owned(),
            pool,
            next: AtomicUsize::new(0),
            key_type,
        })
    }

    async fn query(&self, key: &str) -> Result<Option<Row>, SourceError> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let (client, statement) = {
            let mut guard = slot.lock().await;
            let broken = guard.as_ref().is_none_or(|c| c.client.is_closed());
            if broken {
                *guard = Some(
                    connect(&self.url, &self.query)
                        .await
                        .map_err(SourceError::new)?,
                );
            }
            match guard.as_ref() {
                Some(c) => (c.client.clone(), c.statement.clone()),
                None => return Err(SourceError::new("no PostgreSQL connection")),
            }
        };
        let result = match self.key_type {
            KeyType::Text => client.query_opt(&statement, &[&key]).await,
            KeyType::Int2 | KeyType::Int4 | KeyType::Int8 => {
                let Ok(n) = key.parse::<i64>() else {
                    // A key that is not a number cannot match an integer column.
                    return Ok(None);
                };
                match self.key_type {
                    KeyType::Int2 => match i16::try_from(n) {
                        Ok(v) => client.query_opt(&statement, &[&v]).await,
                        Err(_) => return Ok(None),
                    },
                    KeyType::Int4 => match i32::try_from(n) {
                        Ok(v) => client.query_opt(&statement, &[&v]).await,
                        Err(_) => return Ok(None),
                    },
                    _ => client.query_opt(&statement, &[&n]).await,
                }
            }
        };
        result.map_err(|e| SourceError::new(format!("the query failed: {}", message(&e))))
    }
}

fn value(row: &Row) -> Result<Option<Bytes>, SourceError> {
    let column = &row.columns()[0];
    let read = |e: tokio_postgres::Error| SourceError::with_cause("reading the value failed", e);
    let bytes = match *column.type_() {
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(0)
            .map_err(read)?
            .map(Bytes::from),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(0)
            .map_err(read)?
            .map(|v| Bytes::from(v.to_string())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(0)
            .map_err(read)?
            .map(|v| Bytes::from(v.to_string())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(0)
            .map_err(read)?
            .map(|v| Bytes::from(v.to_string())),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(0)
            .map_err(read)?
            .map(|v| Bytes::from(v.to_string())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(0)
            .map_err(read)?
            .map(|v| Bytes::from(v.to_string())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(0)
            .map_err(read)?
            .map(|v| Bytes::from(v.to_string())),
        _ => row
            .try_get::<_, Option<String>>(0)
            .map_err(|_| {
                SourceError::new(format!(
                    "the value column is of type {}: select it as text or bytea",
                    column.type_()
                ))
            })?
            .map(Bytes::from),
    };
    Ok(bytes)
}

#[async_trait]
impl DataSource for PostgresSource {
    async fn fetch(&self, key: &str) -> FetchResult {
        match self.query(key).await? {
            Some(row) => Ok(value(&row)?.map(Fetched::new)),
            None => Ok(None),
        }
    }
}
