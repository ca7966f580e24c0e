//! The HTTP API: happy paths, and bad input on every route answered with a JSON error that
//! names the problem, without harming the node or its data.

use distcache::Limits;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use distcache_testkit::TestCluster;

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        let (status, bytes) = self.call(method, path, body).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// Asserts an error answer: status, stable code, and a message mentioning `mentions`.
    async fn expect_error(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        status: StatusCode,
        code: &str,
        mentions: &str,
    ) {
        let (got, bytes) = self.call(method.clone(), path, body).await;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: not a JSON error: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(got, status, "{method} {path}: {value}");
        assert_eq!(value["code"], code, "{method} {path}: {value}");
        let message = value["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{method} {path}: `{message}` should mention `{mentions}`"
        );
    }
}

async fn api() -> (TestCluster, Api) {
    let cluster = TestCluster::builder(1)
        .edit(|_, c| {
            c.engine.limits = Limits {
                max_key_bytes: 16,
                max_value_bytes: 64,
                max_batch_keys: 3,
            };
            c.server.max_request_bytes = 4096;
        })
        .build()
        .await;
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}", cluster.addrs[0]),
    };
    (cluster, api)
}

/// Values are raw bytes both ways; batches use base64; admin and health answer JSON.
#[tokio::test]
async fn happy_paths() {
    let (cluster, api) = api().await;
    let binary: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(7)).collect();
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/keyspaces/ks/keys/bin%2Fkey?ttl=5m",
            Some(binary.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api
        .call(Method::GET, "/v1/keyspaces/ks/keys/bin%2Fkey", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, binary);
    // A key with a slash can also be written unencoded.
    let (status, body) = api
        .call(Method::GET, "/v1/keyspaces/ks/keys/bin/key", None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, binary.clone()));

    let (status, v) = api
        .json(
            Method::POST,
            "/v1/keyspaces/ks/get-many",
            Some(json!({"keys": ["bin/key", "missing-1", "a"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["results"][0]["status"], "ok");
    assert_eq!(v["results"][1]["status"], "not_found");
    assert_eq!(v["results"][2]["value"], "djph"); // base64 of "v:a"

    let (status, v) = api
        .json(
            Method::POST,
            "/v1/keyspaces/ks/put-many",
            Some(json!({"entries": [{"key": "x", "value": "AAE=", "ttl": "1m"}]})),
        )
        .await;
    assert_eq!(
        (status, v["results"][0]["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let (status, v) = api
        .json(
            Method::POST,
            "/v1/keyspaces/ks/delete-many",
            Some(json!({"keys": ["x"]})),
        )
        .await;
    assert_eq!(
        (status, v["results"][0]["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let (status, _) = api
        .call(Method::DELETE, "/v1/keyspaces/ks/keys/bin%2Fkey", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, v) = api
        .json(Method::GET, "/_distcache/admin/keyspaces", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[0]["name"], "ks");
    for field in [
        "max_bytes",
        "default_ttl",
        "read_timeout",
        "write_timeout",
        "warm_keys",
        "main_cache_bytes",
        "hot_cache_bytes",
        "stats",
    ] {
        assert!(
            v[0].get(field).is_some(),
            "admin keyspaces lacks {field}: {v}"
        );
    }
    let (status, v) = api.json(Method::GET, "/_distcache/admin/peers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[0]["id"], "node-0");
    assert_eq!(v[0]["is_self"], true);
    let (status, v) = api.json(Method::GET, "/healthz", None).await;
    assert_eq!(
        (status, v["node_id"].clone(), v["ready"].clone()),
        (StatusCode::OK, json!("node-0"), json!(true))
    );
    let (status, _) = api.json(Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, v) = api.json(Method::GET, "/v1/keyspaces", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["keyspaces"][0]["name"], "ks");
    cluster.shutdown().await;
}

/// Every route answers bad input with a 4xx JSON error naming the problem; nothing changes.
#[tokio::test]
async fn bad_input_on_every_route() {
    use StatusCode as S;
    let (cluster, api) = api().await;
    api.call(
        Method::PUT,
        "/v1/keyspaces/ks/keys/keep",
        Some(b"safe".to_vec()),
    )
    .await;
    let revision = api.json(Method::GET, "/v1/keyspaces", None).await.1["revision"].clone();
    let long_key = "k".repeat(17);

    // Keys.
    api.expect_error(
        Method::GET,
        "/v1/keyspaces/nope/keys/k",
        None,
        S::NOT_FOUND,
        "KEYSPACE_NOT_FOUND",
        "nope",
    )
    .await;
    api.expect_error(
        Method::GET,
        "/v1/keyspaces/ks/keys/",
        None,
        S::BAD_REQUEST,
        "EMPTY_KEY",
        "empty",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks/keys",
        Some(b"v".to_vec()),
        S::BAD_REQUEST,
        "EMPTY_KEY",
        "empty",
    )
    .await;
    api.expect_error(
        Method::GET,
        &format!("/v1/keyspaces/ks/keys/{long_key}"),
        None,
        S::BAD_REQUEST,
        "KEY_TOO_LARGE",
        "17 bytes",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks/keys/k",
        Some(vec![0; 65]),
        S::PAYLOAD_TOO_LARGE,
        "VALUE_TOO_LARGE",
        "64",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks/keys/k",
        Some(vec![0; 1 << 20]),
        S::PAYLOAD_TOO_LARGE,
        "VALUE_TOO_LARGE",
        "64",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks/keys/k?ttl=soon",
        Some(b"v".to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "soon",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks/keys/k?ttl=0s",
        Some(b"v".to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "ttl",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks/keys/k?tll=5m",
        Some(b"v".to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "tll",
    )
    .await;
    api.expect_error(
        Method::GET,
        "/v1/keyspaces/ks/keys/%FF%FE",
        None,
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "path",
    )
    .await;
    api.expect_error(
        Method::DELETE,
        "/v1/keyspaces/nope/keys/k",
        None,
        S::NOT_FOUND,
        "KEYSPACE_NOT_FOUND",
        "nope",
    )
    .await;

    // Batches.
    let many = |op: &str| format!("/v1/keyspaces/ks/{op}");
    api.expect_error(
        Method::POST,
        &many("get-many"),
        Some(b"{not json".to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "JSON",
    )
    .await;
    api.expect_error(
        Method::POST,
        &many("get-many"),
        Some(br#"{"keys":["a","b","c","d"]}"#.to_vec()),
        S::PAYLOAD_TOO_LARGE,
        "BATCH_TOO_LARGE",
        "4 keys",
    )
    .await;
    api.expect_error(
        Method::POST,
        &many("get-many"),
        Some(br#"{"keys":["a"],"extra":1}"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "extra",
    )
    .await;
    api.expect_error(
        Method::POST,
        &many("get-many"),
        Some(vec![b' '; 8192]),
        S::PAYLOAD_TOO_LARGE,
        "INVALID_REQUEST",
        "8192",
    )
    .await;
    api.expect_error(
        Method::POST,
        &many("put-many"),
        Some(br#"{"entries":[{"key":"a","value":"@@"}]}"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "base64",
    )
    .await;
    api.expect_error(
        Method::POST,
        &many("put-many"),
        Some(br#"{"entries":[{"key":"a","value":"AA==","ttl":"never"}]}"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "never",
    )
    .await;
    api.expect_error(
        Method::POST,
        &many("delete-many"),
        Some(br#"{"keys":"a"}"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "keys",
    )
    .await;
    api.expect_error(
        Method::POST,
        "/v1/keyspaces/nope/get-many",
        Some(br#"{"keys":["a"]}"#.to_vec()),
        S::NOT_FOUND,
        "KEYSPACE_NOT_FOUND",
        "nope",
    )
    .await;
    // Per-key problems answer per key, the rest of the batch proceeds.
    let (status, v) = api.json(Method::POST, &many("put-many"), Some(json!({"entries": [{"key": "", "value": "AA=="}, {"key": "fine", "value": "AA=="}]}))).await;
    assert_eq!(status, S::OK);
    assert_eq!(v["results"][0]["error"]["code"], "EMPTY_KEY");
    assert_eq!(v["results"][1]["status"], "ok");

    // Catalog.
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/bad",
        Some(
            br#"{"max_bytes":0,"read_timeout":"0s","source":{"kind":"http","url":"ftp://x"}}"#
                .to_vec(),
        ),
        S::BAD_REQUEST,
        "INVALID_SPEC",
        "max_bytes",
    )
    .await;
    let (_, v) = api
        .json(
            Method::PUT,
            "/v1/keyspaces/bad",
            Some(json!({"max_bytes": 0, "read_timeout": "0s"})),
        )
        .await;
    let fields: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["max_bytes", "read_timeout"],
        "every bad field: {v}"
    );
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/bad",
        Some(br#"{"name":"other"}"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_SPEC",
        "other",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/bad",
        Some(br#"[1,2]"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_SPEC",
        "object",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/bad",
        Some(br#"{"max_byts":5}"#.to_vec()),
        S::BAD_REQUEST,
        "INVALID_SPEC",
        "max_byts",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/bad%20name",
        Some(b"{}".to_vec()),
        S::BAD_REQUEST,
        "INVALID_SPEC",
        "bad name",
    )
    .await;
    api.expect_error(
        Method::POST,
        "/v1/keyspaces",
        Some(br#"{"name":"ks"}"#.to_vec()),
        S::CONFLICT,
        "KEYSPACE_EXISTS",
        "ks",
    )
    .await;
    api.expect_error(
        Method::PUT,
        "/v1/keyspaces/ks?expected_revision=999",
        Some(b"{}".to_vec()),
        S::CONFLICT,
        "REVISION_MISMATCH",
        "999",
    )
    .await;
    api.expect_error(
        Method::DELETE,
        "/v1/keyspaces/nope",
        None,
        S::NOT_FOUND,
        "KEYSPACE_NOT_FOUND",
        "nope",
    )
    .await;
    api.expect_error(
        Method::DELETE,
        "/v1/keyspaces?names=",
        None,
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "names",
    )
    .await;
    api.expect_error(
        Method::DELETE,
        "/v1/keyspaces?names=ks,nope",
        None,
        S::NOT_FOUND,
        "KEYSPACE_NOT_FOUND",
        "nope",
    )
    .await;
    api.expect_error(
        Method::GET,
        "/v1/keyspaces/nope",
        None,
        S::NOT_FOUND,
        "KEYSPACE_NOT_FOUND",
        "nope",
    )
    .await;

    // Routes and methods; peer routes.
    api.expect_error(
        Method::GET,
        "/nope",
        None,
        S::NOT_FOUND,
        "NOT_FOUND",
        "/nope",
    )
    .await;
    api.expect_error(
        Method::POST,
        "/_distcache/admin/peers",
        None,
        S::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "POST",
    )
    .await;
    api.expect_error(
        Method::PATCH,
        "/v1/keyspaces/ks/keys/k",
        None,
        S::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "PATCH",
    )
    .await;
    api.expect_error(
        Method::POST,
        "/_distcache/peer/keyspaces/ks/get-many",
        Some(b"[]".to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "JSON",
    )
    .await;
    api.expect_error(
        Method::POST,
        "/_distcache/peer/keyspaces/ks/invalidate",
        Some(b"{}".to_vec()),
        S::BAD_REQUEST,
        "INVALID_REQUEST",
        "keys",
    )
    .await;

    // Nothing was harmed.
    let (status, body) = api
        .call(Method::GET, "/v1/keyspaces/ks/keys/keep", None)
        .await;
    assert_eq!((status, body), (S::OK, b"safe".to_vec()));
    assert_eq!(
        api.json(Method::GET, "/v1/keyspaces", None).await.1["revision"],
        revision
    );
    let (status, _) = api.json(Method::GET, "/readyz", None).await;
    assert_eq!(status, S::OK);
    cluster.shutdown().await;
}
