//! What peers send each other and answer: batch bodies, per-key outcomes, error bodies,
//! handoff lines, health and warm outcomes. Valid messages round-trip; any bytes are a message
//! or an error; whatever a peer answers becomes a typed result, never a panic.

use std::time::Duration;

use distcache::Bytes;
use distcache::Error;
use distcache::wire::{
    BatchResponse, ErrorBody, HandoffEntry, KeyOutcome, KeysRequest, PutManyRequest, Status,
    WireEntry,
};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{any_text, cases};

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![any_text(), "[a-z:0-9/%. ]{1,20}"]
}

fn entry() -> impl Strategy<Value = WireEntry> {
    (
        key(),
        bytes(),
        proptest::option::of((0u64..1 << 40).prop_map(Duration::from_millis)),
    )
        .prop_map(|(key, value, ttl)| WireEntry { key, value, ttl })
}

/// An error body as a peer could send it: any code (known or not) with any fields.
fn error_body() -> impl Strategy<Value = ErrorBody> {
    let code = prop_oneof![
        proptest::sample::select(distcache::wire::all_codes().collect::<Vec<_>>())
            .prop_map(str::to_owned),
        any_text(),
    ];
    (
        (code, any_text(), proptest::option::of(any_text())),
        (
            proptest::option::of(any::<usize>()),
            proptest::option::of(any::<usize>()),
            proptest::option::of(any_text()),
            proptest::option::of(any::<u64>().prop_map(Duration::from_millis)),
        ),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |((code, message, keyspace), (len, max, operation, after), (expected, actual))| {
                let mut body = ErrorBody::invalid_request("");
                body.code = code;
                body.message = message;
                body.keyspace = keyspace;
                body.len = len;
                body.max = max;
                body.operation = operation;
                body.after = after;
                body.expected = expected;
                body.actual = actual;
                body
            },
        )
}

fn outcome() -> impl Strategy<Value = KeyOutcome> {
    (
        key(),
        prop_oneof![
            Just(Status::Ok),
            Just(Status::NotFound),
            Just(Status::Error)
        ],
        proptest::option::of(bytes()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(error_body()),
    )
        .prop_map(|(key, status, value, ttl_ms, error)| KeyOutcome {
            key,
            status,
            value,
            ttl_ms,
            error,
        })
}

/// `value` written as JSON reads back equal.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
) -> Result<(), TestCaseError> {
    let text = serde_json::to_vec(value).unwrap();
    let back: T = serde_json::from_slice(&text)
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&text))))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

/// JSON values of any shape, near the messages' own.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any_text().prop_map(Value::from),
        proptest::sample::select(vec![
            "ok",
            "not_found",
            "error",
            "AAAA",
            "=",
            "5m",
            "KEY_NOT_FOUND"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(vec![
                    "keys", "entries", "key", "value", "ttl", "results", "status", "error", "code",
                    "message", "ttl_ms", "keyspace", "len", "max", "after", "problems", "warmed",
                    "failed", "skipped", "failures", "node_id", "addr", "ready",
                ])
                .prop_map(str::to_owned),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(cases(256))]

    /// Batch requests, per-key outcomes and handoff lines read back as written, any key and
    /// any value bytes included.
    #[test]
    fn messages_round_trip(
        keys in proptest::collection::vec(key(), 0..8),
        entries in proptest::collection::vec(entry(), 0..8),
        outcomes in proptest::collection::vec(outcome(), 0..8),
        handoff in (key(), key(), bytes(), proptest::option::of(any::<u64>())),
    ) {
        round_trips(&KeysRequest { keys })?;
        round_trips(&PutManyRequest { entries })?;
        round_trips(&BatchResponse { results: outcomes })?;
        let (keyspace, key, value, ttl_ms) = handoff;
        let line = HandoffEntry { keyspace, key, value, ttl_ms };
        round_trips(&line)?;
        prop_assert!(!serde_json::to_string(&line).unwrap().contains('\n'));
    }

    /// Any bytes, and JSON of any shape, read as any peer message are it or an error.
    #[test]
    fn any_bytes_are_a_message_or_an_error(
        raw in proptest::collection::vec(any::<u8>(), 0..128),
        value in json_value(),
    ) {
        let shaped = serde_json::to_vec(&value).unwrap();
        for bytes in [&raw[..], &shaped[..]] {
            prop_assert_eq!(distcache::fuzzing::wire(bytes), Ok(()));
        }
    }

    /// Whatever a peer answers for a key becomes a typed result: an error body of any code
    /// and fields is an error whose message is not empty, and an outcome of any status is a
    /// value, a not-found or an error.
    #[test]
    fn any_answer_is_a_typed_result(body in error_body(), answer in outcome()) {
        let code = body.code.clone();
        let error = body.into_error();
        prop_assert!(!error.to_string().is_empty());
        if !distcache::wire::all_codes().any(|c| c == code) {
            prop_assert!(matches!(error, Error::Internal(_)), "{code:?} became {error:?}");
        }
        let status = answer.status;
        let has_value = answer.value.is_some();
        match (status, answer.clone().into_get()) {
            (Status::Ok, Ok(Some(_))) => prop_assert!(has_value),
            (Status::Ok, Err(_)) => prop_assert!(!has_value),
            (Status::NotFound, Ok(None)) | (Status::Error, Err(_)) => {}
            (status, got) => prop_assert!(false, "{status:?} became {got:?}"),
        }
        prop_assert_eq!(answer.into_write().is_ok(), status == Status::Ok);
    }

    /// A typed error sent as a body comes back as the same error with the same code.
    #[test]
    fn errors_keep_their_code(
        keyspace in "[a-z]{1,8}",
        len in any::<usize>(),
        max in any::<usize>(),
        ms in any::<u32>(),
        message in any_text(),
    ) {
        let errors = [
            Error::KeySpaceNotFound(keyspace.clone()),
            Error::KeySpaceExists(keyspace.clone()),
            Error::KeyTooLarge { len, max },
            Error::ValueTooLarge { len, max },
            Error::BatchTooLarge { len, max },
            Error::InvalidRequest(message.clone()),
            Error::Unavailable(message.clone()),
            Error::Internal(message.clone()),
            Error::Timeout { operation: message, after: Duration::from_millis(u64::from(ms)) },
            Error::DataSourceRateLimited(keyspace),
        ];
        for error in errors {
            let body = ErrorBody::from(&error);
            let text = serde_json::to_string(&body).unwrap();
            let back: ErrorBody = serde_json::from_str(&text).unwrap();
            let rebuilt = back.into_error();
            prop_assert_eq!(rebuilt.code(), error.code());
            prop_assert_eq!(rebuilt.to_string(), error.to_string());
        }
    }
}
