//! The replicated catalog: named entries and a revision, changed only by [`Command`]s.
//!
//! This is the whole state machine, pure and deterministic: every member applies the same
//! commands in the same order and reaches the same catalog. Entries are opaque to this crate
//! (the node stores keyspace specs in them); only names, revisions and the rules below matter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Named entries at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog<S> {
    /// Increases by one with every command that changed the catalog; 0 before the first.
    pub revision: u64,
    /// The entries, by name.
    pub entries: BTreeMap<String, S>,
    /// Set by the first [`Change::Seed`]: the group that formed this catalog finished forming
    /// it, so a node catching up knows it has seen the initial entries.
    #[serde(default)]
    pub seeded: bool,
}

impl<S> Default for Catalog<S> {
    fn default() -> Self {
        Catalog {
            revision: 0,
            entries: BTreeMap::new(),
            seeded: false,
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change<S> {
    /// Adds `name`; refused if it exists.
    Create {
        /// The entry's name.
        name: String,
        /// The entry.
        spec: S,
    },
    /// Adds or replaces `name` (idempotent: a retried put is harmless).
    Put {
        /// The entry's name.
        name: String,
        /// The entry.
        spec: S,
    },
    /// Removes every name, all or none: refused if one is missing.
    Delete {
        /// The names to remove.
        names: Vec<String>,
    },
    /// Adds the entries whose names are missing (never replacing one) and marks the catalog
    /// seeded. Written once by the node that formed the group; harmless when repeated.
    Seed {
        /// Initial entries, by name.
        entries: Vec<(String, S)>,
    },
}

/// A change, optionally only at an expected revision (compare-and-set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command<S> {
    /// What to change.
    pub change: Change<S>,
    /// Apply only while the catalog is at this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u64>,
    /// Who asked, once: a command sent again with the same id (a retry after a lost answer or
    /// a leader change) answers what the first one did and changes nothing (see
    /// [`RequestLedger`](crate::RequestLedger)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CatalogError {
    /// `Create` of a name that exists.
    #[error("`{name}` already exists")]
    Exists {
        /// The name.
        name: String,
    },
    /// `Delete` of a name that does not exist.
    #[error("`{name}` not found")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The catalog was not at the expected revision.
    #[error("catalog revision is {actual}, the change expected {expected}")]
    RevisionMismatch {
        /// What the command expected.
        expected: u64,
        /// Where the catalog was.
        actual: u64,
    },
    /// A request id already used for a different command.
    #[error("request id `{id}` was already used for a different change")]
    RequestIdReused {
        /// The id.
        id: String,
    },
}

impl<S: Clone> Catalog<S> {
    /// Applies `command` if its rules allow; returns the new revision. On error nothing
    /// changed.
    pub fn apply(&mut self, command: &Command<S>) -> Result<u64, CatalogError> {
        if let Some(expected) = command.expected_revision
            && expected != self.revision
        {
            return Err(CatalogError::RevisionMismatch {
                expected,
                actual: self.revision,
            });
        }
        match &command.change {
            Change::Create { name, spec } => {
                if self.entries.contains_key(name) {
                    return Err(CatalogError::Exists { name: name.clone() });
                }
                self.entries.insert(name.clone(), spec.clone());
            }
            Change::Put { name, spec } => {
                self.entries.insert(name.clone(), spec.clone());
            }
            Change::Delete { names } => {
                if let Some(missing) = names.iter().find(|n| !self.entries.contains_key(*n)) {
                    return Err(CatalogError::NotFound {
                        name: missing.clone(),
                    });
                }
                for name in names {
                    self.entries.remove(name);
                }
            }
            Change::Seed { entries } => {
                for (name, spec) in entries {
                    self.entries
                        .entry(name.clone())
                        .or_insert_with(|| spec.clone());
                }
                self.seeded = true;
            }
        }
        self.revision += 1;
        Ok(self.revision)
    }
}

impl<S> Catalog<S> {
    /// Converts every entry with `f`, keeping the revision.
    pub fn try_map<T, E>(&self, mut f: impl FnMut(&S) -> Result<T, E>) -> Result<Catalog<T>, E> {
        let mut entries = BTreeMap::new();
        for (name, spec) in &self.entries {
            entries.insert(name.clone(), f(spec)?);
        }
        Ok(Catalog {
            revision: self.revision,
            entries,
            seeded: self.seeded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(change: Change<u32>) -> Command<u32> {
        Command {
            change,
            expected_revision: None,
            request_id: None,
        }
    }

    /// Every committed change raises the revision by one; refused changes change nothing.
    #[test]
    fn rules_and_revisions() {
        let mut c = Catalog::default();
        let create = cmd(Change::Create {
            name: "a".into(),
            spec: 1,
        });
        assert_eq!(c.apply(&create), Ok(1));
        assert_eq!(
            c.apply(&create),
            Err(CatalogError::Exists { name: "a".into() })
        );
        assert_eq!(
            c.apply(&cmd(Change::Put {
                name: "b".into(),
                spec: 2
            })),
            Ok(2)
        );
        assert_eq!(
            c.apply(&cmd(Change::Delete {
                names: vec!["a".into(), "zz".into()]
            })),
            Err(CatalogError::NotFound { name: "zz".into() })
        );
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.revision, 2);
        let cas = Command {
            change: Change::Delete {
                names: vec!["a".into()],
            },
            expected_revision: Some(1),
            request_id: None,
        };
        assert_eq!(
            c.apply(&cas),
            Err(CatalogError::RevisionMismatch {
                expected: 1,
                actual: 2
            })
        );
        let cas = Command {
            expected_revision: Some(2),
            ..cas
        };
        assert_eq!(c.apply(&cas), Ok(3));
        assert!(!c.entries.contains_key("a"));
    }

    /// Seeding adds what is missing, replaces nothing, and marks the catalog.
    #[test]
    fn seed_adds_only_missing_entries() {
        let mut c = Catalog::default();
        c.apply(&cmd(Change::Put {
            name: "a".into(),
            spec: 1,
        }))
        .expect("put");
        assert!(!c.seeded);
        let seed = cmd(Change::Seed {
            entries: vec![("a".into(), 9), ("b".into(), 2)],
        });
        assert_eq!(c.apply(&seed), Ok(2));
        assert_eq!((c.entries["a"], c.entries["b"], c.seeded), (1, 2, true));
        assert_eq!(c.apply(&seed), Ok(3), "repeating is harmless");
        assert_eq!(c.entries.len(), 2);
    }

    /// Commands and errors serialize to stable JSON shapes.
    #[test]
    fn wire_shapes() {
        let c = Command {
            change: Change::Put {
                name: "a".to_owned(),
                spec: 7,
            },
            expected_revision: Some(3),
            request_id: None,
        };
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(
            json,
            r#"{"change":{"op":"put","name":"a","spec":7},"expected_revision":3}"#
        );
        let e = serde_json::to_string(&CatalogError::NotFound { name: "x".into() }).expect("json");
        assert_eq!(e, r#"{"reason":"not_found","name":"x"}"#);
    }
}
