//! Byte sizes and durations, as configuration, specs and query strings write them.

use std::time::Duration;

use distcache::units::{format_duration, parse_bytes, parse_duration};
use proptest::prelude::*;
use serde::Deserialize;

use crate::{any_text, cases};

/// A byte size field as specs and configuration declare one.
#[derive(Debug, Deserialize)]
struct Size {
    #[serde(with = "distcache::units::bytes")]
    size: u64,
}

/// A number, maybe fractional or signed, with any spacing and any unit, known or not.
fn near_size() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "[0-9]{1,30}(\\.[0-9]{0,5})?",
    ];
    let unit = prop_oneof![
        Just(""),
        Just("B"),
        Just("KB"),
        Just("KiB"),
        Just("MiB"),
        Just("GB"),
        Just("TiB"),
        Just("PiB"),
        Just("EiB"),
        Just("parsecs"),
        Just("ｋB"),
    ];
    (number, " {0,2}", unit, " {0,2}").prop_map(|(n, s, u, t)| format!("{s}{n}{s}{u}{t}"))
}

/// A number with any spacing and any unit, known or not, or several of them.
fn near_duration() -> impl Strategy<Value = String> {
    let part = (
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{1,25}",
        ],
        prop_oneof![
            Just("ns"),
            Just("ms"),
            Just("s"),
            Just("m"),
            Just("h"),
            Just("d"),
            Just("w"),
            Just("M"),
            Just("y"),
            Just(""),
            Just("fortnights"),
        ],
    )
        .prop_map(|(n, u)| format!("{n}{u}"));
    proptest::collection::vec(part, 1..4).prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(cases(256))]

    /// Any text read as a byte size is a size or an error that quotes the text.
    #[test]
    fn any_byte_size_parses_or_is_named(text in prop_oneof![near_size(), any_text()]) {
        prop_assert_eq!(distcache::fuzzing::units(&text), Ok(()));
        match parse_bytes(&text) {
            Ok(_) => {}
            Err(message) => {
                prop_assert!(!message.is_empty());
                prop_assert!(message.contains(text.trim()), "{message:?} for {text:?}");
            }
        }
    }

    /// A whole number of bytes, bare or with a binary unit, reads back as the same number.
    #[test]
    fn byte_sizes_round_trip(n in any::<u64>(), shift in 0u32..4) {
        prop_assert_eq!(parse_bytes(&n.to_string()), Ok(n));
        let units = ["B", "KiB", "MiB", "GiB"];
        let scaled = n >> (10 * shift + 2);
        prop_assert_eq!(
            parse_bytes(&format!("{scaled}{}", units[shift as usize])),
            Ok(scaled << (10 * shift))
        );
    }

    /// Any JSON value in a byte-size field is a size or an error naming what was given.
    #[test]
    fn any_json_size_is_read_or_named(
        value in prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            near_size().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::json!([1])),
            Just(serde_json::json!({"a": 1})),
            Just(serde_json::Value::Null),
        ]
    ) {
        let text = serde_json::json!({ "size": value }).to_string();
        match serde_json::from_str::<Size>(&text) {
            Ok(read) => {
                if let Some(n) = value.as_u64() {
                    prop_assert_eq!(read.size, n);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("size"), "{e} for {text}"),
        }
    }

    /// Any text read as a duration is a duration or an error that quotes the text.
    #[test]
    fn any_duration_parses_or_is_named(text in prop_oneof![near_duration(), any_text()]) {
        prop_assert_eq!(distcache::fuzzing::units(&text), Ok(()));
        match parse_duration(&text) {
            Ok(_) => {}
            Err(message) => {
                prop_assert!(message.contains(text.trim()), "{message:?} for {text:?}");
            }
        }
    }

    /// A duration written the way configuration and admin JSON write it reads back the same,
    /// up to a hundred years.
    #[test]
    fn durations_round_trip(secs in 0u64..(100 * 365 * 24 * 3600), nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
