//! Keyspace specs and keyspace files, in JSON and TOML: valid specs round-trip, a spec with
//! one field broken is refused naming that field, and any bytes are an error, never a panic.

use std::time::Duration;

use distcache::{
    CircuitBreakerConfig, Engine, EngineConfig, Eviction, KeySpaceSpec, Limits, RateLimitConfig,
    SourceSpec, parse_keyspaces,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{any_text, cases};

/// A duration as specs write them (whole milliseconds), from 1 ms to 1 hour.
fn duration() -> impl Strategy<Value = Duration> {
    (1u64..3_600_000).prop_map(Duration::from_millis)
}

fn source() -> impl Strategy<Value = SourceSpec> {
    prop_oneof![
        Just(SourceSpec::None),
        "[a-z]{1,10}".prop_map(|name| SourceSpec::Registered { name }),
        "[a-z]{1,10}".prop_map(|h| SourceSpec::Http {
            url: format!("http://{h}.invalid/{{key}}")
        }),
    ]
}

/// A spec that every check accepts.
pub fn valid_spec() -> impl Strategy<Value = KeySpaceSpec> {
    let name = "[a-z0-9][a-z0-9._-]{0,30}";
    let rate_limit =
        (1u32..100_000, 1u32..1000, 0u64..1000).prop_map(|(halves, burst, ms)| RateLimitConfig {
            requests_per_second: f64::from(halves) / 2.0,
            burst,
            wait_timeout: Duration::from_millis(ms),
        });
    let breaker = (1u32..100, duration()).prop_map(|(failure_threshold, reset_timeout)| {
        CircuitBreakerConfig {
            failure_threshold,
            reset_timeout,
        }
    });
    (
        (name, proptest::option::of(1u64..(1 << 40))),
        (
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
        ),
        proptest::collection::hash_set("[a-z:0-9]{1,12}", 0..4),
        (
            proptest::option::of(rate_limit),
            proptest::option::of(breaker),
            proptest::option::of(prop_oneof![Just(Eviction::Lru), Just(Eviction::TinyLfu)]),
        ),
        source(),
    )
        .prop_map(
            |((name, max_bytes), (ttl, negative, read, write), warm, (rl, cb, eviction), src)| {
                let mut spec = KeySpaceSpec::new(name, src);
                spec.max_bytes = max_bytes;
                spec.default_ttl = ttl;
                spec.negative_ttl = negative;
                spec.read_timeout = read;
                spec.write_timeout = write;
                spec.warm_keys = warm.into_iter().collect();
                spec.rate_limit = rl;
                spec.circuit_breaker = cb;
                spec.eviction = eviction;
                spec
            },
        )
}

/// Fields of a spec, as `(path, leaf)` pairs of its JSON.
const FIELDS: &[&str] = &[
    "name",
    "max_bytes",
    "default_ttl",
    "negative_ttl",
    "read_timeout",
    "write_timeout",
    "warm_keys",
    "rate_limit",
    "rate_limit.requests_per_second",
    "rate_limit.burst",
    "rate_limit.wait_timeout",
    "circuit_breaker",
    "circuit_breaker.failure_threshold",
    "circuit_breaker.reset_timeout",
    "eviction",
    "source",
    "source.kind",
    "source.url",
];

/// What a broken field is set to: negative, huge, fractional, of the wrong type, empty,
/// unicode, or a string that is no unit.
fn bad_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(-1)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(0.5)),
        Just(json!(0)),
        Just(json!(true)),
        Just(json!(null)),
        Just(json!([])),
        Just(json!({})),
        Just(json!("")),
        Just(json!("-5m")),
        Just(json!("99999999999999999999999h")),
        Just(json!("lots")),
        Just(json!("naïve/ключ")),
        Just(json!("\u{0}")),
        "[a-z]{200,300}".prop_map(Value::from),
        any_text().prop_map(Value::from),
    ]
}

/// `spec` as JSON with the field at `path` set to `value` (created if absent).
fn mutated(spec: &KeySpaceSpec, path: &str, value: Value) -> Value {
    let mut doc = serde_json::to_value(spec).unwrap();
    let mut at = &mut doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let object = match at {
            Value::Object(o) => o,
            other => {
                *other = json!({});
                other.as_object_mut().unwrap()
            }
        };
        if parts.peek().is_none() {
            object.insert(part.to_owned(), value);
            break;
        }
        at = object.entry(part).or_insert_with(|| json!({}));
    }
    doc
}

/// Whether `message` names `path` (the field, or its parent for a nested one) or a position.
fn names_field(message: &str, path: &str) -> bool {
    let mut parts = path.split('.');
    let top = parts.next().unwrap_or_default();
    message.contains(path)
        || message.contains(top)
        || parts.any(|leaf| message.contains(leaf))
        || message.contains("line ")
}

proptest! {
    #![proptest_config(cases(256))]

    /// A valid spec is accepted, and reads back unchanged from its JSON and from a TOML
    /// keyspace file.
    #[test]
    fn valid_specs_round_trip(spec in valid_spec()) {
        prop_assert!(spec.validate(&Limits::default()).is_ok(), "{:?}", spec.problems(&Limits::default()));
        let text = serde_json::to_string(&spec).unwrap();
        prop_assert_eq!(&serde_json::from_str::<KeySpaceSpec>(&text).unwrap(), &spec);
        let array = format!("[{text}]");
        prop_assert_eq!(parse_keyspaces(&array, true).unwrap(), vec![spec.clone()]);
        let file = toml::to_string(&json!({ "keyspace": [spec] })).unwrap();
        prop_assert_eq!(parse_keyspaces(&file, false), Ok(vec![spec.clone()]), "{}", file);
    }

    /// A spec with one field broken is refused, by parsing or by validation, with a message
    /// that names the field (or where it is); or, when the value happens to be valid there,
    /// accepted.
    #[test]
    fn one_broken_field_is_named(
        spec in valid_spec(),
        field in proptest::sample::select(FIELDS),
        value in bad_value(),
    ) {
        let doc = mutated(&spec, field, value);
        let file = json!({ "keyspace": [doc.clone()] }).to_string();
        match parse_keyspaces(&file, true) {
            Err(message) => {
                prop_assert!(names_field(&message, field), "{message:?} does not name {field}");
                prop_assert!(message.contains("keyspace[0]"), "{message:?} has no path");
            }
            Ok(specs) => {
                let problems = specs[0].problems(&Limits::default());
                for problem in &problems.0 {
                    prop_assert!(!problem.field.is_empty() && !problem.message.is_empty());
                }
                let changed = serde_json::to_value(&specs[0]).unwrap() != serde_json::to_value(&spec).unwrap();
                if changed && !problems.is_empty() {
                    let text = problems.to_string();
                    prop_assert!(names_field(&text, field), "{text:?} does not name {field}");
                }
            }
        }
        // The same document as TOML (when TOML can hold it) is refused or accepted alike.
        if let Ok(text) = toml::to_string(&json!({ "keyspace": [doc] })) {
            let _ = parse_keyspaces(&text, false);
        }
    }

    /// Any bytes, read as a JSON or TOML keyspace file, are specs or an error; never a panic.
    #[test]
    fn any_bytes_are_specs_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256), json in any::<bool>()) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(distcache::fuzzing::keyspace_file(&text, json), Ok(()));
    }

    /// Text that looks like a keyspace file, cut or spliced anywhere, is specs or an error.
    #[test]
    fn spliced_files_are_specs_or_an_error(
        spec in valid_spec(),
        cut in any::<proptest::sample::Index>(),
        insert in any_text(),
        json in any::<bool>(),
    ) {
        let whole = if json {
            serde_json::to_string(&json!({ "keyspace": [spec] })).unwrap()
        } else {
            toml::to_string(&json!({ "keyspace": [spec] })).unwrap()
        };
        let mut at = cut.index(whole.len() + 1);
        while !whole.is_char_boundary(at) {
            at -= 1;
        }
        let text = format!("{}{insert}{}", &whole[..at], &whole[at..]);
        prop_assert_eq!(distcache::fuzzing::keyspace_file(&text, json), Ok(()));
    }
}

/// Values every parser accepts but validation must weigh, from zero to the type's maximum.
fn wide_spec() -> impl Strategy<Value = KeySpaceSpec> {
    let wide_duration = prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..u64::MAX).prop_map(Duration::from_secs),
        (0u64..u64::MAX).prop_map(Duration::from_nanos),
    ];
    let rps = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(1e-300),
        Just(0.0009999),
        Just(0.001),
        Just(1e300),
        Just(-1.0),
        any::<f64>(),
    ];
    (
        valid_spec(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(wide_duration.clone()),
        proptest::option::of(wide_duration.clone()),
        proptest::option::of((rps, any::<u32>(), wide_duration.clone())),
        proptest::option::of((any::<u32>(), wide_duration)),
    )
        .prop_map(|(mut spec, max_bytes, ttl, read, rl, cb)| {
            spec.max_bytes = max_bytes;
            spec.default_ttl = ttl;
            spec.read_timeout = read;
            spec.rate_limit =
                rl.map(
                    |(requests_per_second, burst, wait_timeout)| RateLimitConfig {
                        requests_per_second,
                        burst,
                        wait_timeout,
                    },
                );
            spec.circuit_breaker =
                cb.map(|(failure_threshold, reset_timeout)| CircuitBreakerConfig {
                    failure_threshold,
                    reset_timeout,
                });
            spec
        })
}

proptest! {
    #![proptest_config(cases(96))]

    /// Whatever a spec holds, validation names its problems without panicking; and a spec it
    /// accepts makes a working keyspace (its limiter, breaker and caches built, a key put and
    /// read back).
    #[test]
    fn accepted_specs_make_working_keyspaces(spec in wide_spec()) {
        let problems = spec.problems(&Limits::default());
        if !problems.is_empty() {
            for problem in &problems.0 {
                prop_assert!(!problem.field.is_empty() && !problem.message.is_empty());
            }
            return Ok(());
        }
        let mut spec = spec;
        spec.source = SourceSpec::None;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let engine = Engine::builder(EngineConfig::default())
                .keyspace_spec(spec.clone())
                .build()
                .map_err(|e| TestCaseError::fail(format!("accepted spec refused: {e}")))?;
            engine.start().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            engine.put(&spec.name, "k", "v").await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = engine.get(&spec.name, "k").await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got.as_deref(), Some(&b"v"[..]));
            // A miss goes through the limiter and the breaker: any answer but a panic.
            let _ = engine.get(&spec.name, "absent").await;
            engine.stop().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            Ok(())
        })?;
    }
}

/// Deeply nested TOML and JSON, which a recursive parser could overflow its stack on, are
/// refused with an error.
#[test]
fn deep_nesting_is_an_error() {
    for depth in [64, 1_000, 100_000] {
        let toml = format!("a = {}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_keyspaces(&toml, false).is_err(), "toml depth {depth}");
        let toml = format!("a = {}1{}", "{ b = ".repeat(depth), " }".repeat(depth));
        assert!(
            parse_keyspaces(&toml, false).is_err(),
            "toml tables depth {depth}"
        );
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_keyspaces(&json, true).is_err(), "json depth {depth}");
    }
}
