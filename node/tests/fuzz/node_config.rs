//! The node's `--config` TOML: a configuration written out reads back the same, a file with
//! one key broken is refused naming the key, and any text is a configuration or an error.

use distcache::NodeConfig;
use proptest::prelude::*;
use toml::Value;

use crate::{any_text, cases};

/// Every key path of a configuration written out as TOML, leaves only (`engine.max_bytes`).
fn leaves(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Table(table) => {
            for (key, inner) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(inner, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// The key paths of a test node's configuration, and of its optional sections.
fn key_paths() -> Vec<String> {
    let mut out = Vec::new();
    leaves(
        &Value::try_from(NodeConfig::for_test("n1")).unwrap(),
        "",
        &mut out,
    );
    for extra in [
        "advertise",
        "keyspace_file",
        "server.token",
        "server.tokens_file",
        "tls.cert",
        "tls.key",
        "tls.ca",
        "tls.client_auth",
        "otel.endpoint",
        "unknown_key",
        "engine.unknown_key",
    ] {
        out.push(extra.to_owned());
    }
    out
}

/// What a broken key is set to: negative, huge, fractional, of the wrong type, empty, or text.
fn bad_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Integer(-1)),
        Just(Value::Integer(i64::MAX)),
        Just(Value::Integer(0)),
        Just(Value::Float(0.5)),
        Just(Value::Float(f64::NAN)),
        Just(Value::Float(-1e300)),
        Just(Value::Boolean(true)),
        Just(Value::Array(vec![])),
        Just(Value::Array(vec![Value::Integer(1)])),
        Just(Value::Table(Default::default())),
        Just(Value::String(String::new())),
        Just(Value::String("-5m".into())),
        Just(Value::String("99999999999999999999999h".into())),
        Just(Value::String("1000000PiB".into())),
        Just(Value::String("0.0.0.0:99999".into())),
        Just(Value::String("naïve ключ".into())),
        any_text().prop_map(Value::String),
    ]
}

/// `config` as TOML with the key at `path` set to `value`.
fn mutated(config: &NodeConfig, path: &str, value: Value) -> String {
    let mut doc = Value::try_from(config).unwrap();
    let mut at = &mut doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !at.is_table() {
            *at = Value::Table(Default::default());
        }
        let table = at.as_table_mut().unwrap();
        if parts.peek().is_none() {
            table.insert(part.to_owned(), value);
            break;
        }
        at = table
            .entry(part)
            .or_insert_with(|| Value::Table(Default::default()));
    }
    toml::to_string(&doc).unwrap()
}

/// Whether `message` names a part of `path`.
fn names_key(message: &str, path: &str) -> bool {
    path.split('.').any(|part| message.contains(part))
}

proptest! {
    #![proptest_config(cases(128))]

    /// A configuration written out as TOML reads back the same.
    #[test]
    fn configs_round_trip(
        id in "[a-z][a-z0-9-]{0,20}",
        port in any::<u16>(),
        peers in proptest::collection::vec((any::<[u8; 4]>(), any::<u16>()), 0..4),
        max_bytes in 1u64..(1 << 40),
        request_ms in 1u64..3_600_000,
    ) {
        let mut config = NodeConfig::for_test(&id);
        config.listen = format!("127.0.0.1:{port}");
        config.peers = peers
            .into_iter()
            .map(|([a, b, c, d], p)| format!("{a}.{b}.{c}.{d}:{p}"))
            .collect();
        config.engine.max_bytes = max_bytes;
        config.server.request_timeout = std::time::Duration::from_millis(request_ms);
        let text = toml::to_string(&config).unwrap();
        prop_assert_eq!(NodeConfig::from_toml(&text).unwrap(), config);
    }

    /// A file with one key broken is refused naming the key (and its line), or read, and
    /// then its values are checked without a panic, every problem naming its field.
    #[test]
    fn one_broken_key_is_named(
        path in proptest::sample::select(key_paths()),
        value in bad_value(),
    ) {
        let config = NodeConfig::for_test("n1");
        let text = mutated(&config, &path, value);
        match NodeConfig::from_toml(&text) {
            Err(e) => {
                let message = e.to_string();
                prop_assert!(names_key(&message, &path), "{message:?} does not name {path}");
                prop_assert!(message.contains("line "), "{message:?} has no line");
            }
            Ok(read) => {
                let problems = read.problems();
                for problem in &problems.0 {
                    prop_assert!(!problem.field.is_empty() && !problem.message.is_empty());
                }
                if !problems.is_empty() {
                    let text = problems.to_string();
                    prop_assert!(names_key(&text, &path), "{text:?} does not name {path}");
                }
            }
        }
    }

    /// Any text read as a node configuration is one or an error; never a panic.
    #[test]
    fn any_text_is_a_config_or_an_error(text in prop_oneof![
        any_text(),
        proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "(\\[[a-z.]{0,12}\\]\n)?([a-z_]{1,20} = [-0-9a-z\"\\[\\]{}., ]{0,20}\n){0,4}",
    ]) {
        prop_assert_eq!(distcache::fuzzing::node_config(&text), Ok(()));
    }
}
