//! Engine fixtures: engines built around a [`TestSource`].

use std::sync::Arc;

use distcache::{Engine, EngineConfig, KeySpaceSpec};

pub use distcache_testkit::{TestSource, spec, wait_until};

/// A started engine with keyspace `ks` (customised by `edit`) over `source`.
pub async fn engine_with(
    source: Arc<TestSource>,
    config: EngineConfig,
    edit: impl FnOnce(&mut KeySpaceSpec),
) -> Engine {
    let mut ks = spec("ks");
    edit(&mut ks);
    let engine = Engine::builder(config)
        .register_source("test", source)
        .keyspace_spec(ks)
        .build()
        .expect("valid engine");
    engine.start().await.expect("start");
    engine
}

/// A started engine with keyspace `ks` over `source` and test defaults.
pub async fn engine(source: Arc<TestSource>) -> Engine {
    engine_with(source, EngineConfig::for_test(), |_| {}).await
}

/// The value of `key` as text, panicking on errors.
pub async fn text(engine: &Engine, ks: &str, key: &str) -> Option<String> {
    engine
        .get(ks, key)
        .await
        .expect("get")
        .map(|b| String::from_utf8(b.to_vec()).expect("utf-8"))
}
