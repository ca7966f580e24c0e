//! URL paths of any bytes and batch bodies of any shape through a live node's router, over a
//! real socket: never a 5xx, a refusal is a JSON error naming the problem, and any key a path
//! or a query string can carry round-trips.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::cases;
use crate::live::{Answer, live, panics, request};

/// Percent-encodes every byte but the unreserved ones.
pub fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A key the test source answers normally (it fails keys starting `fail`, holds `slow`).
fn tame(key: String) -> String {
    if key.starts_with("fail") || key.starts_with("slow") {
        format!("k{key}")
    } else {
        key
    }
}

/// Whether the node's answer is a client error with a JSON body naming the problem, or a
/// success; `Err` says what is wrong.
fn sound(answer: &Answer, what: &str) -> Result<(), TestCaseError> {
    let panics = panics();
    prop_assert!(panics.is_empty(), "{what}: the node panicked: {panics:#?}");
    let status = answer
        .status
        .ok_or_else(|| TestCaseError::fail(format!("{what}: no answer")))?;
    prop_assert!(status < 500, "{what}: {status} {}", answer.text());
    if status >= 400 {
        let (code, message) = answer.error().ok_or_else(|| {
            TestCaseError::fail(format!(
                "{what}: {status} without a JSON error: {:?}",
                answer.text()
            ))
        })?;
        prop_assert!(
            !code.is_empty() && !message.is_empty(),
            "{what}: {code:?} {message:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(128))]

    /// Any key, percent-encoded into the path or the query string, is stored and read back
    /// verbatim, or refused with a JSON error (`.` and `..` in a path, keys over the limit).
    #[test]
    fn any_key_round_trips_through_the_url(
        key in prop_oneof![".{1,30}", "[./%a-z]{1,6}", "[a-z]{240,260}"],
        value in proptest::collection::vec(any::<u8>(), 0..64),
        in_query in any::<bool>(),
    ) {
        let live = live();
        let encoded = encode(key.as_bytes());
        let target = if in_query {
            format!("/v1/keyspaces/kv/keys?key={encoded}")
        } else {
            format!("/v1/keyspaces/kv/keys/{encoded}")
        };
        let put = live.send(&request("PUT", target.as_bytes(), &value));
        sound(&put, &format!("PUT {target}"))?;
        if put.status == Some(204) {
            let got = live.send(&request("GET", target.as_bytes(), b""));
            prop_assert_eq!(got.status, Some(200), "GET {} after a put: {}", target, got.text());
            prop_assert_eq!(&got.body, &value);
        }
    }

    /// Any bytes, percent-encoded (well or badly) into the key or keyspace segment of every
    /// route family, answer a success or a JSON client error; never a 5xx or silence.
    #[test]
    fn any_encoded_bytes_in_paths_answer_soundly(
        bytes in proptest::collection::vec(any::<u8>(), 1..48),
        bad in proptest::sample::select(vec!["", "%", "%G1", "%0", "%%", "%C3%28", "%FF%FE", "%00"]),
        route in 0usize..8,
        method in proptest::sample::select(vec!["GET", "PUT", "DELETE", "POST"]),
    ) {
        let segment = tame(format!("{}{bad}", encode(&bytes)));
        let target = match route {
            0 => format!("/v1/keyspaces/ks/keys/{segment}"),
            1 => format!("/v1/keyspaces/{segment}/keys/k"),
            2 => format!("/v1/keyspaces/{segment}"),
            3 => format!("/v1/keyspaces/ks/keys?key={segment}"),
            4 => format!("/_distcache/admin/owner/ks/{segment}"),
            5 => format!("/_distcache/peer/keyspaces/ks/keys/{segment}"),
            6 => format!("/_distcache/admin/warmups/{segment}"),
            _ => format!("/_distcache/peer/keyspaces/{segment}/get-many"),
        };
        let answer = live().send(&request(method, target.as_bytes(), b""));
        sound(&answer, &format!("{method} {target}"))?;
    }

    /// Raw bytes in the request target (spaces, controls, non-ASCII, anything) answer a
    /// status below 500 or a closed connection; never a 5xx.
    #[test]
    fn raw_bytes_in_the_target_never_fail_the_server(
        bytes in proptest::collection::vec(any::<u8>(), 0..48),
        prefix in proptest::sample::select(vec!["/v1/keyspaces/ks/keys/", "/", "", "/_distcache/peer/", "*", "http://x/"]),
    ) {
        let mut target = prefix.as_bytes().to_vec();
        target.extend_from_slice(&bytes);
        let answer = live().send(&request("GET", &target, b""));
        if let Some(status) = answer.status {
            prop_assert!(status < 500, "{status} for {:?}: {}", String::from_utf8_lossy(&target), answer.text());
        }
    }

    /// Batch bodies of any shape on every batch route, public and peer, answer per-key
    /// results or a JSON client error that names what is wrong with the body.
    #[test]
    fn any_batch_body_answers_soundly(
        body in batch_body(),
        route in proptest::sample::select(vec![
            "/v1/keyspaces/ks/get-many",
            "/v1/keyspaces/kv/put-many",
            "/v1/keyspaces/kv/delete-many",
            "/_distcache/peer/keyspaces/ks/get-many",
            "/_distcache/peer/keyspaces/kv/put-many",
            "/_distcache/peer/keyspaces/kv/delete-many",
            "/_distcache/peer/keyspaces/kv/invalidate",
            "/_distcache/peer/keyspaces/ks/warm",
            "/_distcache/admin/keyspaces/ks/warmup",
            "/v1/keyspaces",
        ]),
    ) {
        let answer = live().send(&request("POST", route.as_bytes(), &body));
        sound(&answer, &format!("POST {route} {:?}", String::from_utf8_lossy(&body)))?;
        if answer.status == Some(400) {
            let (_, message) = answer.error().unwrap_or_default();
            prop_assert!(
                message.contains("JSON") || message.contains("body") || message.contains(": "),
                "{route}: {message:?} does not say what is wrong"
            );
        }
    }
}

/// Bodies for the batch routes: valid ones, ones with a field broken, and any bytes.
fn batch_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![".{0,12}", "[a-z]{1,8}"].prop_map(tame);
    let valid = prop_oneof![
        proptest::collection::vec(key.clone(), 0..6).prop_map(|keys| json!({ "keys": keys })),
        proptest::collection::vec((key, ".{0,8}"), 0..6).prop_map(|entries| {
            let entries: Vec<Value> = entries
                .into_iter()
                .map(|(k, v)| json!({"key": k, "value": base64_of(v.as_bytes())}))
                .collect();
            json!({ "entries": entries })
        }),
    ];
    let broken = proptest::sample::select(vec![
        json!({"keys": "a"}),
        json!({"keys": [1, 2]}),
        json!({"keys": ["a"], "extra": true}),
        json!({"keys": null}),
        json!({"entries": [{"key": "k", "value": "@@"}]}),
        json!({"entries": [{"key": "k", "value": "", "ttl": "soon"}]}),
        json!({"entries": [{"key": "k", "value": "", "ttl": "-1s"}]}),
        json!({"entries": [{"key": "k", "value": "", "ttl": "100000000000000000000000h"}]}),
        json!({"entries": [{"key": "", "value": ""}]}),
        json!({"entries": [{"value": ""}]}),
        json!({"name": "x", "max_bytes": -1}),
        json!({"name": "", "source": {"kind": "nope"}}),
        json!([]),
        json!("keys"),
    ]);
    prop_oneof![
        3 => valid.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => broken.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(b"{\"keys\": [\"a\"".to_vec()),
        1 => Just(vec![b'['; 10_000]),
    ]
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
