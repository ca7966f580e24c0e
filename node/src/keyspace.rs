//! The `KeySpace` trait: a keyspace defined in code, the seed's way.
//!
//! An embedding program may describe a keyspace by implementing [`KeySpace`] and handing it to
//! [`EngineBuilder::keyspace`](crate::EngineBuilder::keyspace). The engine turns it into a
//! [`KeySpaceSpec`](crate::KeySpaceSpec) whose source is the keyspace's data source (registered
//! under the keyspace's name), so that it is replicated and updated like any other keyspace,
//! and keeps the implementation as the keyspace's expiry policy.

use std::sync::Arc;
use std::time::SystemTime;

use crate::source::DataSource;

/// A keyspace defined in code: name, size, data source and per-key expiry.
pub trait KeySpace: Send + Sync + 'static {
    /// The keyspace's name.
    fn name(&self) -> &str;

    /// Most bytes (keys plus values) the keyspace may hold on one node.
    fn max_bytes(&self) -> u64;

    /// Where values come from on a miss.
    fn data_source(&self) -> Arc<dyn DataSource>;

    /// When the entry for `key` should expire. `None` (the default) falls back to the
    /// keyspace's `default_ttl`, then to no expiry. A value's own TTL from the data source
    /// takes precedence over this.
    fn expires_at(&self, key: &str) -> Option<SystemTime> {
        let _ = key;
        None
    }
}
