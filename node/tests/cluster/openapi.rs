//! The OpenAPI document: served at `/openapi.json` without a token, equal to the copy in
//! `docs/openapi.json`, and complete — every route a node serves and every error code it can
//! answer is in it, and everything in it is served.
//!
//! `UPDATE_OPENAPI=1 cargo test -p distcache --test cluster openapi` rewrites the copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use distcache_testkit::TestCluster;

const TOKEN: &str = "s3cret";

/// Routes a node serves that the document leaves out on purpose (see the module docs of
/// `node/src/server/openapi.rs`): everything under the node-to-node and raft prefixes, and the
/// empty-key answer.
const INTERNAL_PREFIXES: &[&str] = &["/_distcache/peer/", "/_distcache/raft/"];
const UNDOCUMENTED_ROUTES: &[&str] = &["/v1/keyspaces/{ks}/keys/"];

fn undocumented(path: &str) -> bool {
    INTERNAL_PREFIXES.iter().any(|p| path.starts_with(p)) || UNDOCUMENTED_ROUTES.contains(&path)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A node with a token, and a client that sends it.
async fn node() -> (TestCluster, reqwest::Client) {
    let cluster = TestCluster::builder(1)
        .edit(|_, c| c.server.token = Some(TOKEN.into()))
        .build()
        .await;
    (cluster, reqwest::Client::new())
}

async fn fetch_document(cluster: &TestCluster, http: &reqwest::Client) -> (String, Value) {
    let resp = http
        .get(format!("http://{}/openapi.json", cluster.addrs[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "served without a token");
    let content_type = resp.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert_eq!(content_type, "application/json");
    let text = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    (text, doc)
}

/// The operations of a document: path → methods (lowercase).
fn operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let methods = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let ops = methods
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_string())
                .collect();
            (path.clone(), ops)
        })
        .collect()
}

/// A node serves the document (no token needed), it is OpenAPI 3.1, and it is the one in
/// `docs/openapi.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_is_the_one_in_docs() {
    let (cluster, http) = node().await;
    let (served, doc) = fetch_document(&cluster, &http).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(served, distcache::openapi_json().unwrap());

    let file = repo_root().join("docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, &served).unwrap();
    }
    let kept = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        kept == served,
        "docs/openapi.json is not the document the node serves; regenerate it with\n  \
         UPDATE_OPENAPI=1 cargo test -p distcache --test cluster openapi\nand commit it"
    );
    cluster.shutdown().await;
}

/// Every documented operation is served: a request to it (parameters filled in) reaches a
/// handler, which answers one of the statuses the document lists for it; every method the
/// document does not list on a path answers 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let (cluster, http) = node().await;
    let (_, doc) = fetch_document(&cluster, &http).await;
    let all = ["get", "put", "post", "delete", "patch"];
    for (path, methods) in operations(&doc) {
        let url = format!(
            "http://{}{}",
            cluster.addrs[0],
            path.replace("{ks}", "ks")
                .replace("{key}", "k")
                .replace("{id}", "999999")
        );
        for method in all {
            let resp = http
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &url,
                )
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.bytes().await.unwrap();
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned));
            if methods.contains(method) {
                assert!(
                    !matches!(code.as_deref(), Some("NOT_FOUND" | "METHOD_NOT_ALLOWED")),
                    "{method} {path} is documented but not served: {status} {code:?}"
                );
                let documented = &doc["paths"][&path][method]["responses"];
                assert!(
                    documented.get(status.as_str()).is_some(),
                    "{method} {path} answered {status} ({code:?}), which its documentation \
                     does not list"
                );
            } else {
                assert_eq!(
                    code.as_deref(),
                    Some("METHOD_NOT_ALLOWED"),
                    "{method} {path} is served ({status}) but not documented"
                );
            }
        }
    }
    cluster.shutdown().await;
}

/// The string literals that follow `needle` in `source` (the paths of `.route("…"` calls).
fn literals_after(source: &str, needle: &str) -> Vec<String> {
    source
        .match_indices(needle)
        .map(|(at, _)| {
            let rest = source[at + needle.len()..].trim_start();
            let rest = rest.strip_prefix('"').unwrap_or(rest);
            rest[..rest.find(['"', ',', ')']).unwrap()].to_owned()
        })
        .collect()
}

/// Every route a node serves is documented, or on the explicit list of internal routes: the
/// documented ones are registered with `routes!` (which documents them), so any `.route(` in
/// the server (or in the control plane's router) must be one of the internal ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_route_is_documented() {
    let root = repo_root();
    let server = std::fs::read_to_string(root.join("node/src/server.rs")).unwrap();
    let plain = literals_after(&server, ".route(");
    assert!(!plain.is_empty(), "the scan finds the server's routes");
    for path in &plain {
        assert!(
            undocumented(path),
            "`{path}` is served with a plain `.route(` and so is not in the OpenAPI document: \
             register it with `.routes(routes!(handler))` and a `#[utoipa::path]`, or add it \
             to the internal list (here and in server/openapi.rs)"
        );
    }
    let network = std::fs::read_to_string(root.join("control/src/network.rs")).unwrap();
    assert!(network.contains(r#"const BASE: &str = "/_distcache/raft";"#));
    let raft = std::fs::read_to_string(root.join("control/src/plane/routes.rs")).unwrap();
    for (at, _) in raft.match_indices(".route(") {
        let call = raft[at + ".route(".len()..].trim_start();
        assert!(
            call.starts_with("&format!(\"{BASE}/"),
            "a raft route is outside /_distcache/raft/: {}",
            &call[..call.len().min(60)]
        );
    }

    let (cluster, http) = node().await;
    let (_, doc) = fetch_document(&cluster, &http).await;
    for path in operations(&doc).keys() {
        assert!(!undocumented(path), "internal route `{path}` is documented");
    }
    cluster.shutdown().await;
}

/// Every error code the API can answer is in the document (the `code` enum of `ErrorBody`),
/// and the server sets no code that is not on the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_is_documented() {
    let (cluster, http) = node().await;
    let (_, doc) = fetch_document(&cluster, &http).await;
    let listed: BTreeSet<String> = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]
        ["enum"]
        .as_array()
        .expect("ErrorBody.code has an enum")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let known: BTreeSet<String> = distcache::wire::all_codes().map(str::to_owned).collect();
    assert_eq!(listed, known, "the document's codes are not every code");
    for code in distcache::ErrorCode::ALL {
        assert!(listed.contains(code.as_str()), "{code} is missing");
    }
    for code in distcache::wire::WireCode::ALL {
        assert!(listed.contains(code.as_str()), "{code} is missing");
    }

    // No code written as a bare string in the server: each must be on the list.
    let root = repo_root().join("node/src");
    let mut files = vec![root.join("server.rs")];
    let mut dirs = vec![root.join("server")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for literal in source.split('"').skip(1).step_by(2) {
            // Codes start with a letter (`_OTHER`, the conventions' unknown HTTP method, is
            // not one).
            let looks_like_code = literal.len() > 3
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal.contains('_')
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            assert!(
                !looks_like_code || listed.contains(literal),
                "{}: code `{literal}` is not in the document: add it to WireCode",
                file.display()
            );
        }
    }
    cluster.shutdown().await;
}
