//! Data-source protection: rate limiter, circuit breaker and read timeout, with the seed's
//! error semantics and precedence.

use std::time::Duration;

use distcache::{BreakerState, CircuitBreakerConfig, Engine, EngineConfig, Error, RateLimitConfig};

use crate::support::{TestSource, engine_with, spec, wait_until};

fn rate(rps: f64, burst: u32, wait: Duration) -> RateLimitConfig {
    RateLimitConfig {
        requests_per_second: rps,
        burst,
        wait_timeout: wait,
    }
}

fn breaker(threshold: u32, reset: Duration) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_threshold: threshold,
        reset_timeout: reset,
    }
}

/// wait_timeout = 0: past the burst a fetch is denied at once; cache hits are never limited.
#[tokio::test]
async fn zero_wait_denies_fetches_but_not_hits() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.rate_limit = Some(rate(0.001, 2, Duration::ZERO))
    })
    .await;
    assert!(engine.get("ks", "a").await.unwrap().is_some());
    assert!(engine.get("ks", "b").await.unwrap().is_some());
    let err = engine.get("ks", "c").await.unwrap_err();
    assert!(
        matches!(err, Error::DataSourceRateLimited(ref k) if k == "ks"),
        "{err:?}"
    );
    assert_eq!(
        source.fetches(),
        2,
        "the denied fetch never reached the source"
    );
    for _ in 0..10 {
        assert!(engine.get("ks", "a").await.unwrap().is_some());
    }
    let stats = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!(stats.stats.rate_limited, 1);
    assert!(stats.rate_limited);
}

/// wait_timeout > 0: a fetch that cannot get a token in time fails with a deadline error.
#[tokio::test]
async fn positive_wait_ends_in_a_timeout() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.rate_limit = Some(rate(0.001, 1, Duration::from_millis(30)))
    })
    .await;
    engine.get("ks", "a").await.unwrap();
    let err = engine.get("ks", "b").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

/// wait_timeout > 0 and a token soon enough: the fetch waits and succeeds.
#[tokio::test]
async fn positive_wait_gets_the_next_token() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.rate_limit = Some(rate(40.0, 1, Duration::from_secs(2)))
    })
    .await;
    for i in 0..3 {
        assert!(engine.get("ks", &format!("k{i}")).await.unwrap().is_some());
    }
    assert_eq!(source.fetches(), 3);
}

/// The breaker opens after failure_threshold consecutive failures, refuses without calling
/// the source, lets one probe through after reset_timeout, and closes on its success.
#[tokio::test]
async fn breaker_opens_probes_and_closes() {
    let source = TestSource::new();
    source.set_failing(true);
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.circuit_breaker = Some(breaker(3, Duration::from_millis(50)))
    })
    .await;
    for i in 0..3 {
        let err = engine.get("ks", &format!("k{i}")).await.unwrap_err();
        assert!(matches!(err, Error::DataSource(_)), "{err:?}");
    }
    let err = engine.get("ks", "k3").await.unwrap_err();
    assert!(
        matches!(err, Error::DataSourceCircuitOpen(ref k) if k == "ks"),
        "{err:?}"
    );
    assert_eq!(source.fetches(), 3);
    assert_eq!(
        engine.keyspace_stats("ks").await.unwrap().circuit_breaker,
        Some(BreakerState::Open)
    );

    source.set_failing(false);
    wait_until(
        Duration::from_secs(5),
        "the breaker let a probe through",
        || {
            let e = engine.clone();
            async move { e.get("ks", "k4").await.is_ok() }
        },
    )
    .await;
    assert_eq!(
        engine.keyspace_stats("ks").await.unwrap().circuit_breaker,
        Some(BreakerState::Closed)
    );
    assert!(engine.get("ks", "k5").await.is_ok());
}

/// Not-found answers are not failures: they never open the breaker.
#[tokio::test]
async fn not_found_does_not_trip_the_breaker() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.circuit_breaker = Some(breaker(2, Duration::from_secs(60)))
    })
    .await;
    for i in 0..10 {
        assert_eq!(
            engine.get("ks", &format!("missing-{i}")).await.unwrap(),
            None
        );
    }
    assert_eq!(
        engine.keyspace_stats("ks").await.unwrap().circuit_breaker,
        Some(BreakerState::Closed)
    );
}

/// A fetch is bounded by read_timeout, and a timeout counts against the breaker.
#[tokio::test]
async fn read_timeout_bounds_a_fetch() {
    let source = TestSource::new();
    source.set_delay(Duration::from_secs(30));
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.read_timeout = Some(Duration::from_millis(40));
        s.circuit_breaker = Some(breaker(1, Duration::from_secs(60)));
    })
    .await;
    let started = std::time::Instant::now();
    let err = engine.get("ks", "a").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        engine.get("ks", "b").await,
        Err(Error::DataSourceCircuitOpen(_))
    ));
    let stats = engine.keyspace_stats("ks").await.unwrap().stats;
    assert_eq!((stats.timeouts, stats.circuit_open), (1, 1));
}

/// Engine-level protection applies to keyspaces without their own, with one limiter per
/// keyspace; a keyspace's own limiter replaces the engine's.
#[tokio::test]
async fn engine_level_protection_and_keyspace_override() {
    let source = TestSource::new();
    let config = EngineConfig {
        rate_limit: Some(rate(0.001, 1, Duration::ZERO)),
        ..EngineConfig::for_test()
    };
    let mut generous = spec("generous");
    generous.rate_limit = Some(rate(1000.0, 100, Duration::ZERO));
    let engine = Engine::builder(config)
        .register_source("test", source.clone())
        .keyspace_spec(spec("one"))
        .keyspace_spec(spec("two"))
        .keyspace_spec(generous)
        .build()
        .unwrap();
    engine.start().await.unwrap();
    for ks in ["one", "two"] {
        assert!(engine.get(ks, "a").await.is_ok(), "{ks} has its own bucket");
        assert!(matches!(
            engine.get(ks, "b").await,
            Err(Error::DataSourceRateLimited(_))
        ));
    }
    for i in 0..20 {
        assert!(engine.get("generous", &format!("k{i}")).await.is_ok());
    }
}
