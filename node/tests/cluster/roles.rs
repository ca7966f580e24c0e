//! Tokens with roles: one node with a tokens file, every route of the router called with no
//! token, a wrong one, and tokens of each role, and the status each gets.

use distcache::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use distcache_testkit::TestCluster;

const TOKENS: &str = r#"
[[token]]
name = "reader"
token = "read-secret"
role = "read"

[[token]]
name = "writer"
token = "write-secret"
role = "write"

[[token]]
name = "ops"
token_sha256 = "ADMIN_HASH"
role = "admin"

[[token]]
name = "other-reader"
token = "other-secret"
role = "read"
keyspaces = ["other*"]
"#;

/// The callers of each row, in column order.
const CALLERS: [(&str, Option<&str>); 6] = [
    ("none", None),
    ("wrong", Some("guess")),
    ("read", Some("read-secret")),
    ("write", Some("write-secret")),
    ("admin", Some("admin-secret")),
    ("read:other*", Some("other-secret")),
];

/// What a route concerns, besides its role.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// No token needed.
    Open,
    /// No keyspace in the path.
    Cluster,
    /// Keyspace `ks` (or `ks2`): the limited token may not.
    Keyspace,
    /// Node-to-node: an admin token for every keyspace; the answer to a passing request is
    /// not checked (the bodies sent are deliberately not valid peer requests).
    Node,
}

/// One route: how it is called, what it needs, what it answers when allowed.
struct Row {
    method: Method,
    path: &'static str,
    body: Option<Vec<u8>>,
    role: Role,
    scope: Scope,
    ok: u16,
}

fn row(method: Method, path: &'static str, role: Role, scope: Scope, ok: u16) -> Row {
    Row {
        method,
        path,
        body: None,
        role,
        scope,
        ok,
    }
}

impl Row {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The status caller `column` must get (`None`: any but 401 and 403).
    fn expected(&self, column: usize) -> Option<u16> {
        let role = [
            None,
            None,
            Some(Role::Read),
            Some(Role::Write),
            Some(Role::Admin),
        ]
        .get(column)
        .copied()
        .unwrap_or(Some(Role::Read));
        let limited = column == 5;
        if self.scope == Scope::Open {
            return Some(self.ok);
        }
        let Some(role) = role else { return Some(401) };
        if role < self.role || (limited && matches!(self.scope, Scope::Keyspace | Scope::Node)) {
            return Some(403);
        }
        (self.scope != Scope::Node).then_some(self.ok)
    }
}

fn spec_json(name: &str) -> Vec<u8> {
    let mut spec = distcache_testkit::spec(name);
    spec.max_bytes = Some(1 << 20);
    serde_json::to_vec(&spec).unwrap()
}

/// Every route of the router, as the module doc of `server.rs` lists them.
fn routes() -> Vec<Row> {
    use Role::{Admin, Read, Write};
    use Scope::{Cluster, Keyspace, Node, Open};
    let keys = r#"{"keys":["a"]}"#;
    let mut rows = vec![
        row(Method::GET, "/healthz", Read, Open, 200),
        row(Method::GET, "/readyz", Read, Open, 200),
        row(Method::GET, "/openapi.json", Read, Open, 200),
        row(Method::GET, "/v1/keyspaces", Read, Cluster, 200),
        row(Method::POST, "/v1/keyspaces", Admin, Cluster, 201).body(spec_json("made")),
        row(
            Method::DELETE,
            "/v1/keyspaces?names=made",
            Admin,
            Cluster,
            200,
        ),
        row(Method::GET, "/v1/keyspaces/ks", Read, Keyspace, 200),
        row(Method::PUT, "/v1/keyspaces/ks2", Admin, Keyspace, 200).body(spec_json("ks2")),
        row(Method::DELETE, "/v1/keyspaces/ks2", Admin, Keyspace, 200),
        row(
            Method::GET,
            "/v1/keyspaces/ks/keys?key=k",
            Read,
            Keyspace,
            200,
        ),
        row(
            Method::PUT,
            "/v1/keyspaces/ks/keys?key=k",
            Write,
            Keyspace,
            204,
        )
        .body("v"),
        row(
            Method::DELETE,
            "/v1/keyspaces/ks/keys?key=k",
            Write,
            Keyspace,
            204,
        ),
        row(Method::GET, "/v1/keyspaces/ks/keys/k", Read, Keyspace, 200),
        row(Method::PUT, "/v1/keyspaces/ks/keys/k", Write, Keyspace, 204).body("v"),
        row(
            Method::DELETE,
            "/v1/keyspaces/ks/keys/k",
            Write,
            Keyspace,
            204,
        ),
        row(Method::GET, "/v1/keyspaces/ks/keys/", Read, Keyspace, 400),
        row(
            Method::POST,
            "/v1/keyspaces/ks/get-many",
            Read,
            Keyspace,
            200,
        )
        .body(keys),
        row(
            Method::POST,
            "/v1/keyspaces/ks/put-many",
            Write,
            Keyspace,
            200,
        )
        .body(r#"{"entries":[{"key":"a","value":"dg=="}]}"#),
        row(
            Method::POST,
            "/v1/keyspaces/ks/delete-many",
            Write,
            Keyspace,
            200,
        )
        .body(keys),
        row(Method::GET, "/_distcache/admin/peers", Admin, Cluster, 200),
        row(
            Method::GET,
            "/_distcache/admin/keyspaces",
            Admin,
            Cluster,
            200,
        ),
        row(
            Method::GET,
            "/_distcache/admin/cluster",
            Admin,
            Cluster,
            200,
        ),
        row(
            Method::GET,
            "/_distcache/admin/owner/ks?key=k",
            Admin,
            Keyspace,
            200,
        ),
        row(
            Method::GET,
            "/_distcache/admin/owner/ks/k",
            Admin,
            Keyspace,
            200,
        ),
        row(
            Method::POST,
            "/_distcache/admin/keyspaces/ks/warmup",
            Admin,
            Keyspace,
            202,
        )
        .body(keys),
        row(
            Method::GET,
            "/_distcache/admin/warmups",
            Admin,
            Cluster,
            200,
        ),
        row(
            Method::GET,
            "/_distcache/admin/warmups/999999",
            Admin,
            Cluster,
            404,
        ),
        row(Method::GET, "/nowhere", Read, Cluster, 404),
        row(
            Method::PATCH,
            "/v1/keyspaces/ks/keys/k",
            Write,
            Keyspace,
            405,
        ),
    ];
    let node_routes = [
        (Method::GET, "/_distcache/peer/keyspaces/ks/keys?key=k"),
        (Method::GET, "/_distcache/peer/keyspaces/ks/keys/k"),
        (Method::POST, "/_distcache/peer/keyspaces/ks/get-many"),
        (Method::POST, "/_distcache/peer/keyspaces/ks/put-many"),
        (Method::POST, "/_distcache/peer/keyspaces/ks/delete-many"),
        (Method::POST, "/_distcache/peer/keyspaces/ks/invalidate"),
        (Method::POST, "/_distcache/peer/keyspaces/ks/warm"),
        (Method::GET, "/_distcache/peer/hot"),
        (Method::POST, "/_distcache/peer/flush"),
        (Method::POST, "/_distcache/peer/leaving"),
        (Method::GET, "/_distcache/peer/handoff"),
        (Method::POST, "/_distcache/raft/append"),
        (Method::POST, "/_distcache/raft/vote"),
        (Method::POST, "/_distcache/raft/snapshot"),
        (Method::POST, "/_distcache/raft/write"),
        (Method::POST, "/_distcache/raft/join"),
        (Method::GET, "/_distcache/raft/status"),
    ];
    for (method, path) in node_routes {
        // Not a valid body for any of them: allowed calls fail after the token check, and
        // change nothing (`leaving` would otherwise take the node out of its ring).
        rows.push(row(method, path, Admin, Node, 0).body("not json"));
    }
    rows
}

/// The role × route matrix: every route, every kind of caller, the expected status; 401 and
/// 403 answers carry `UNAUTHORIZED` and `FORBIDDEN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    // The file holds only the hash of the admin token.
    let hash = sha256_hex("admin-secret");
    std::fs::write(&file, TOKENS.replace("ADMIN_HASH", &hash)).unwrap();
    let cluster = TestCluster::builder(1)
        .edit(move |_, c| {
            c.server.token = Some("cluster-secret".into());
            c.server.tokens_file = Some(file.clone());
        })
        .build()
        .await;
    cluster.wait_leader().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", cluster.addrs[0]);

    let mut table = String::new();
    let mut failures = Vec::new();
    for row in routes() {
        let mut line = format!("{:<6} {:<46}", row.method.as_str(), row.path);
        for (column, (caller, token)) in CALLERS.iter().enumerate() {
            let mut request = http.request(row.method.clone(), format!("{base}{}", row.path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &row.body {
                request = request.body(body.clone());
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            line.push_str(&format!(" {:>4}", status.as_u16()));
            let expected = row.expected(column);
            let fine = match expected {
                Some(code) => status.as_u16() == code,
                None => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            };
            if !fine {
                failures.push(format!(
                    "{} {} as {caller}: {status}, expected {expected:?}: {}",
                    row.method,
                    row.path,
                    String::from_utf8_lossy(&body)
                ));
            }
            let code = match status {
                StatusCode::UNAUTHORIZED => Some("UNAUTHORIZED"),
                StatusCode::FORBIDDEN => Some("FORBIDDEN"),
                _ => None,
            };
            if let Some(code) = code {
                let json: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(json["code"], code, "{} {}: {json}", row.method, row.path);
            }
        }
        table.push_str(&line);
        table.push('\n');
    }
    println!(
        "{:<53} none wrong read write admin read:other*\n{table}",
        ""
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    cluster.shutdown().await;
}

/// A token limited to some keyspaces lists only those, is told which keyspace it lacks, and
/// reaches the keyspaces it has (a missing one answers 404, not 403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_tokens_see_only_their_keyspaces() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        TOKENS.replace("ADMIN_HASH", &sha256_hex("admin-secret")),
    )
    .unwrap();
    let cluster = TestCluster::builder(1)
        .edit(move |_, c| {
            c.server.token = Some("cluster-secret".into());
            c.server.tokens_file = Some(file.clone());
        })
        .build()
        .await;
    cluster.wait_leader().await;
    let admin = distcache::client::Client::new([cluster.addrs[0].clone()])
        .unwrap()
        .with_token(Some("cluster-secret".into()));
    let mut spec = distcache_testkit::spec("other-1");
    spec.max_bytes = Some(1 << 20);
    let changed = admin.put_keyspace(&spec, None).await.unwrap();
    cluster.wait_revision(changed.revision).await;

    let limited = distcache::client::Client::new([cluster.addrs[0].clone()])
        .unwrap()
        .with_token(Some("other-secret".into()));
    let names: Vec<String> = limited
        .keyspaces()
        .await
        .unwrap()
        .keyspaces
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["other-1"]);
    assert!(limited.get("other-1", "k").await.unwrap().is_some());
    let err = limited.get("ks", "k").await.unwrap_err();
    assert!(
        matches!(&err, distcache::Error::Forbidden(m) if m.contains("`other-reader`") && m.contains("`ks`")),
        "{err:?}"
    );
    let err = limited.put("other-1", "k", "v", None).await.unwrap_err();
    assert!(
        matches!(&err, distcache::Error::Forbidden(m) if m.contains("has role read; put needs write")),
        "{err:?}"
    );
    let err = limited.get("other-2", "k").await.unwrap_err();
    assert!(
        matches!(err, distcache::Error::KeySpaceNotFound(_)),
        "{err:?}"
    );
    cluster.shutdown().await;
}

/// A node does not start with a bad tokens file; every problem is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        "[[token]]\nname = \"a\"\nrole = \"owner\"\ntoken = \"x\"\n\n[[token]]\nname = \"a\"\nrole = \"read\"\ntoken_sha256 = \"12\"\n",
    )
    .unwrap();
    let mut config = distcache::NodeConfig::for_test("n1");
    config.data_dir = dir.path().join("data");
    config.server.token = Some("cluster-secret".into());
    config.server.tokens_file = Some(file);
    let text = config.problems().to_string();
    assert!(text.contains("server.tokens_file.token[0].role"), "{text}");
    assert!(
        text.contains("server.tokens_file.token[1].token_sha256"),
        "{text}"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = distcache::Node::builder(config)
        .start(listener)
        .await
        .err()
        .expect("a bad tokens file stops the start");
    assert!(matches!(err, distcache::Error::InvalidConfig(_)), "{err:?}");
}

/// Lowercase hex SHA-256, as `sha256sum` prints it.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
