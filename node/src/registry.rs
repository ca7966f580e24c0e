//! Turns a spec's `source` into a live [`DataSource`]: registered sources by name, built-in
//! kinds by opening them.
//!
//! Opening is checked when a keyspace is created or updated (so a bad path or URL is reported
//! to the caller, not on the first get). A source that fails to open while a committed catalog
//! is applied (another node's file system differs, a database is down) becomes a source whose
//! every fetch fails with the opening error: the keyspace exists, its failures are counted.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Problems, Result, SourceError};
use crate::source::{DataSource, FetchResult, NoSource};
use crate::sources::{HttpSource, PostgresSource, SqliteSource};
use crate::spec::SourceSpec;

/// Data sources registered in code, by name.
#[derive(Clone, Default)]
pub(crate) struct SourceRegistry {
    registered: HashMap<String, Arc<dyn DataSource>>,
}

impl SourceRegistry {
    /// Registers `source` under `name`; false if the name was taken.
    pub fn register(&mut self, name: &str, source: Arc<dyn DataSource>) -> bool {
        if self.registered.contains_key(name) {
            return false;
        }
        self.registered.insert(name.to_owned(), source);
        true
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.registered.contains_key(name)
    }

    /// Problems that would stop `source` from opening, without opening it.
    pub fn problems(&self, source: &SourceSpec) -> Problems {
        let mut problems = Problems::new();
        match source {
            SourceSpec::Registered { name } if !self.contains(name) => {
                let mut known: Vec<&str> = self.registered.keys().map(String::as_str).collect();
                known.sort_unstable();
                problems.push(
                    "source.name",
                    format!(
                        "no data source is registered as `{name}` (registered: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            _ => {}
        }
        problems
    }

    /// Opens `source`, or explains why it cannot be opened.
    pub async fn open(&self, source: &SourceSpec) -> Result<Arc<dyn DataSource>> {
        self.problems(source).into_result(Error::InvalidSpec)?;
        match source {
            SourceSpec::Registered { name } => self
                .registered
                .get(name)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("registered source `{name}` vanished"))),
            SourceSpec::Http { url } => Ok(Arc::new(HttpSource::open(url)?)),
            SourceSpec::Sqlite { path, query } => {
                // Opening reads the file: off the runtime's worker threads.
                let (path, query) = (path.clone(), query.clone());
                let source = tokio::task::spawn_blocking(move || SqliteSource::open(&path, &query))
                    .await
                    .map_err(|e| {
                        Error::Internal(format!("opening the sqlite source failed: {e}"))
                    })??;
                Ok(Arc::new(source))
            }
            SourceSpec::Postgres { url, query } => {
                Ok(Arc::new(PostgresSource::open(url, query).await?))
            }
            _ => Ok(Arc::new(NoSource)),
        }
    }

    /// Opens `source`; on failure, a source that fails every fetch with the reason.
    pub async fn open_or_failing(
        &self,
        keyspace: &str,
        source: &SourceSpec,
    ) -> Arc<dyn DataSource> {
        match self.open(source).await {
            Ok(source) => source,
            Err(err) => {
                tracing::error!(keyspace, error = %err, "cannot open the keyspace's data source; its fetches will fail");
                Arc::new(Unopened(SourceError::new(format!(
                    "the data source could not be opened on this node: {err}"
                ))))
            }
        }
    }
}

/// A source that could not be opened: every fetch fails with why.
struct Unopened(SourceError);

#[async_trait]
impl DataSource for Unopened {
    async fn fetch(&self, _key: &str) -> FetchResult {
        Err(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown registered name is reported with the names that are registered.
    #[tokio::test]
    async fn unknown_registered_name_lists_known_ones() {
        let mut reg = SourceRegistry::default();
        assert!(reg.register("users", Arc::new(NoSource)));
        assert!(
            !reg.register("users", Arc::new(NoSource)),
            "names are unique"
        );
        let err = reg
            .open(&SourceSpec::Registered {
                name: "orders".into(),
            })
            .await
            .err()
            .expect("unknown");
        let text = err.to_string();
        assert!(text.contains("orders") && text.contains("users"), "{text}");
        assert!(
            reg.open(&SourceSpec::Registered {
                name: "users".into()
            })
            .await
            .is_ok()
        );
    }

    /// A source that cannot open still yields a keyspace whose fetches explain the failure.
    #[tokio::test]
    async fn failing_source_explains_itself() {
        let reg = SourceRegistry::default();
        let source = reg
            .open_or_failing(
                "ks",
                &SourceSpec::Registered {
                    name: "gone".into(),
                },
            )
            .await;
        let err = source.fetch("k").await.expect_err("fails");
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
