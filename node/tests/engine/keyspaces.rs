//! Keyspace management through the catalog, and validation at build time.

use std::time::Duration;

use distcache::{
    BreakerState, CircuitBreakerConfig, Engine, EngineConfig, Error, KeySpaceOverrides,
    KeySpaceSpec, RateLimitConfig, SourceSpec,
};

use crate::support::{TestSource, engine, spec, text};

/// Create, update (rebuilding caches) and delete, each raising the revision.
#[tokio::test]
async fn create_update_delete() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let start = engine.revision();
    assert_eq!(start, 1, "the seeded keyspace");

    let rev = engine.create_keyspace(spec("users")).await.unwrap();
    assert_eq!(rev, start + 1);
    assert_eq!(engine.revision(), rev, "applied when create returns");
    assert_eq!(text(&engine, "users", "a").await.as_deref(), Some("v:a"));
    assert!(matches!(
        engine.create_keyspace(spec("users")).await,
        Err(Error::KeySpaceExists(ref n)) if n == "users"
    ));

    let mut updated = spec("users");
    updated.default_ttl = Some(Duration::from_secs(60));
    let rev = engine.update_keyspace(updated.clone()).await.unwrap();
    assert_eq!(rev, start + 2);
    assert_eq!(engine.keyspace("users"), Some(updated));
    assert_eq!(text(&engine, "users", "a").await.as_deref(), Some("v:a"));
    assert_eq!(source.fetches_of("a"), 2, "the update rebuilt the caches");

    let names: Vec<String> = engine.keyspaces().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["ks", "users"]);

    engine.delete_keyspace("users").await.unwrap();
    assert!(matches!(
        engine.get("users", "a").await,
        Err(Error::KeySpaceNotFound(_))
    ));
    assert_eq!(engine.revision(), start + 3);
}

/// update_keyspace creates a keyspace that does not exist yet.
#[tokio::test]
async fn update_creates_missing_keyspace() {
    let engine = engine(TestSource::new()).await;
    engine.update_keyspace(spec("fresh")).await.unwrap();
    assert!(engine.get("fresh", "x").await.unwrap().is_some());
}

/// delete_keyspaces is all or none.
#[tokio::test]
async fn delete_keyspaces_is_all_or_none() {
    let engine = engine(TestSource::new()).await;
    engine.create_keyspace(spec("a")).await.unwrap();
    engine.create_keyspace(spec("b")).await.unwrap();
    let before = engine.revision();
    assert!(matches!(
        engine.delete_keyspaces(&["a", "nope", "b"]).await,
        Err(Error::KeySpaceNotFound(ref n)) if n == "nope"
    ));
    assert_eq!(engine.revision(), before);
    assert!(engine.keyspace("a").is_some() && engine.keyspace("b").is_some());
    engine.delete_keyspaces(&["a", "b"]).await.unwrap();
    assert!(engine.keyspace("a").is_none() && engine.keyspace("b").is_none());
}

/// An invalid spec is refused with every bad field named, and changes nothing.
#[tokio::test]
async fn invalid_spec_is_refused_whole() {
    let engine = engine(TestSource::new()).await;
    let before = engine.revision();
    let mut bad = KeySpaceSpec::new(
        "bad name",
        SourceSpec::Registered {
            name: "unknown".into(),
        },
    );
    bad.max_bytes = Some(0);
    bad.rate_limit = Some(RateLimitConfig {
        requests_per_second: 10.0,
        burst: 0,
        wait_timeout: Duration::ZERO,
    });
    let err = engine.update_keyspace(bad).await.unwrap_err();
    let Error::InvalidSpec(problems) = &err else {
        panic!("expected InvalidSpec, got {err:?}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        ["name", "max_bytes", "rate_limit.burst", "source.name"]
    );
    assert!(err.to_string().contains("unknown"), "{err}");
    assert_eq!(engine.revision(), before);
}

/// An update resets the breaker: fresh protection state with the new definition.
#[tokio::test]
async fn update_resets_protection_state() {
    let source = TestSource::new();
    source.set_failing(true);
    let mut s = spec("ks");
    s.circuit_breaker = Some(CircuitBreakerConfig {
        failure_threshold: 1,
        reset_timeout: Duration::from_secs(3600),
    });
    let engine = Engine::builder(EngineConfig::for_test())
        .register_source("test", source.clone())
        .keyspace_spec(s.clone())
        .build()
        .unwrap();
    engine.start().await.unwrap();
    assert!(engine.get("ks", "a").await.is_err());
    assert!(matches!(
        engine.get("ks", "a").await,
        Err(Error::DataSourceCircuitOpen(_))
    ));
    source.set_failing(false);
    s.read_timeout = Some(Duration::from_secs(1));
    engine.update_keyspace(s).await.unwrap();
    let snap = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!(snap.circuit_breaker, Some(BreakerState::Closed));
    assert!(engine.get("ks", "a").await.unwrap().is_some());
    assert_eq!(snap.stats.gets, 2, "counters survive the update");
}

/// The builder refuses to build and lists every problem: engine config, specs, overrides,
/// duplicates, unknown sources.
#[test]
fn builder_lists_every_problem() {
    let config = EngineConfig {
        read_timeout: Duration::ZERO,
        ..EngineConfig::default()
    };
    let mut bad = spec("bad");
    bad.default_ttl = Some(Duration::ZERO);
    let err = Engine::builder(config)
        .register_source("test", TestSource::new())
        .keyspace_spec(spec("dup"))
        .keyspace_spec(spec("dup"))
        .keyspace_spec(bad)
        .keyspace_spec(KeySpaceSpec::new(
            "orphan",
            SourceSpec::Registered {
                name: "nobody".into(),
            },
        ))
        .override_keyspace("ghost", KeySpaceOverrides::new().max_bytes(10))
        .build()
        .err()
        .expect("refused");
    let Error::InvalidConfig(problems) = &err else {
        panic!("expected InvalidConfig, got {err:?}")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "read_timeout",
            "keyspaces[dup]",
            "overrides[ghost]",
            "keyspaces[bad].default_ttl",
            "keyspaces[orphan].source.name",
        ]
    );
}

/// Overrides given to the builder replace spec values and show in the effective settings.
#[tokio::test]
async fn builder_overrides_take_precedence() {
    let mut s = spec("ks");
    s.max_bytes = Some(1 << 20);
    s.read_timeout = Some(Duration::from_secs(1));
    let engine = Engine::builder(EngineConfig::for_test())
        .register_source("test", TestSource::new())
        .keyspace_spec(s)
        .override_keyspace(
            "ks",
            KeySpaceOverrides::new()
                .max_bytes(2 << 20)
                .warm_keys(["w1", "w2"]),
        )
        .build()
        .unwrap();
    engine.start().await.unwrap();
    let snap = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!(snap.max_bytes, 2 << 20);
    assert_eq!(snap.read_timeout, "1s");
    assert_eq!(snap.write_timeout, "2s", "engine default");
    assert_eq!(snap.warm_keys, ["w1", "w2"]);
}
