//! What a warm request answers: how many keys were warmed, failed or skipped, and the first
//! failures. Travels between nodes (`POST /_distcache/peer/keyspaces/{ks}/warm`) and into the
//! warmup runs' records.

use serde::{Deserialize, Serialize};

/// Failures kept per outcome and per run.
pub(crate) const KEPT_FAILURES: usize = 10;

/// One key that failed to warm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyFailure {
    /// The key.
    pub key: String,
    /// Why.
    pub error: String,
}

/// What warming a set of keys did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmOutcome {
    /// Keys loaded into a cache.
    pub warmed: usize,
    /// Keys that failed to load.
    pub failed: usize,
    /// Keys skipped: cached already, owned elsewhere, or not found at the source.
    pub skipped: usize,
    /// The first failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<KeyFailure>,
}

impl WarmOutcome {
    pub(crate) fn fail(&mut self, key: &str, error: String) {
        self.failed += 1;
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(KeyFailure {
                key: key.to_owned(),
                error,
            });
        }
    }
}
