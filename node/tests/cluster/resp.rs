//! The Redis-protocol front through a real Redis client (the `redis` crate over tokio): the
//! data commands with the HTTP API's semantics, RESP3, pipelining, tokens and roles, and a
//! read through a node that does not own the key.

use std::time::Duration;

use distcache::NodeConfig;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};

use distcache_testkit::TestCluster;

/// `n` nodes serving keyspace `ks`, each with a RESP listener on a free port, after `edit`.
pub async fn resp_cluster(
    n: usize,
    edit: impl Fn(usize, &mut NodeConfig) + Send + Sync + 'static,
) -> TestCluster {
    TestCluster::builder(n)
        .edit(move |i, c| {
            c.server.resp_listen = Some("127.0.0.1:0".into());
            edit(i, c);
        })
        .build()
        .await
}

/// The RESP address of node `i`.
pub fn resp_addr(cluster: &TestCluster, i: usize) -> String {
    cluster.node(i).resp_addr().unwrap().to_string()
}

async fn connect(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

async fn connect_node(cluster: &TestCluster, i: usize) -> MultiplexedConnection {
    connect(&format!("redis://{}/", resp_addr(cluster, i))).await
}

async fn query<T: redis::FromRedisValue>(
    con: &mut MultiplexedConnection,
    args: &[&str],
) -> Result<T, RedisError> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(con).await
}

/// The error code of a reply that must be an error.
fn code(result: Result<Value, RedisError>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
    }
}

/// GET reads through the source once, SET/DEL/MGET/MSET/EXISTS behave as on HTTP, a key
/// nobody has is nil, and errors carry the stable codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_commands_behave_as_the_http_api() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let mut con = connect_node(&cluster, 0).await;

    let pong: String = query(&mut con, &["PING"]).await.unwrap();
    assert_eq!(pong, "PONG");
    // Read-through: loaded once, then a hit.
    for _ in 0..2 {
        let v: Option<String> = query(&mut con, &["GET", "ks:user1"]).await.unwrap();
        assert_eq!(v.as_deref(), Some("v:user1"));
    }
    assert_eq!(cluster.sources[0].fetches_of("user1"), 1);
    // Nil for a key that neither the cache nor the source has.
    let v: Option<String> = query(&mut con, &["GET", "ks:missing1"]).await.unwrap();
    assert_eq!(v, None);

    let ok: String = query(&mut con, &["SET", "ks:a", "alpha"]).await.unwrap();
    assert_eq!(ok, "OK");
    let v: String = query(&mut con, &["GET", "ks:a"]).await.unwrap();
    assert_eq!(v, "alpha");
    // The value reached the engine too (the HTTP API and the engine see it).
    let engine = cluster.node(0).engine();
    assert_eq!(
        engine.get("ks", "a").await.unwrap().as_deref(),
        Some(&b"alpha"[..])
    );
    // A key with `:` in it: split at the first one.
    let _: () = query(&mut con, &["SET", "ks:a:b", "colon"]).await.unwrap();
    assert_eq!(
        engine.get("ks", "a:b").await.unwrap().as_deref(),
        Some(&b"colon"[..])
    );

    let ok: String = query(&mut con, &["MSET", "ks:m1", "one", "ks:m2", "two"])
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let values: Vec<Option<String>> = query(
        &mut con,
        &["MGET", "ks:m1", "ks:m2", "ks:missing2", "ks:m1"],
    )
    .await
    .unwrap();
    assert_eq!(
        values,
        vec![
            Some("one".into()),
            Some("two".into()),
            None,
            Some("one".into())
        ]
    );
    let n: i64 = query(&mut con, &["EXISTS", "ks:m1", "ks:missing3", "ks:loaded"])
        .await
        .unwrap();
    assert_eq!(n, 2, "m1 is cached, loaded comes from the source");

    // DEL invalidates: the next GET reads through again.
    let n: i64 = query(&mut con, &["DEL", "ks:user1", "ks:a"]).await.unwrap();
    assert_eq!(n, 2);
    let v: Option<String> = query(&mut con, &["GET", "ks:user1"]).await.unwrap();
    assert_eq!(v.as_deref(), Some("v:user1"));
    assert_eq!(cluster.sources[0].fetches_of("user1"), 2);
    let v: Option<String> = query(&mut con, &["GET", "ks:a"]).await.unwrap();
    assert_eq!(v.as_deref(), Some("v:a"), "deleted, then read through");

    // SET with an expiry: gone after it (moka's clock: polled with a deadline).
    let _: () = query(&mut con, &["SET", "ks:missing-ttl", "short", "PX", "200"])
        .await
        .unwrap();
    let v: Option<String> = query(&mut con, &["GET", "ks:missing-ttl"]).await.unwrap();
    assert_eq!(v.as_deref(), Some("short"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Option<String> = query(&mut con, &["GET", "ks:missing-ttl"]).await.unwrap();
        if v.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SET PX never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Errors: stable codes, and Redis' own words where Redis has them.
    let e = code(query(&mut con, &["GET", "nope:1"]).await);
    assert!(e.starts_with("KEYSPACE_NOT_FOUND keyspace `nope`"), "{e}");
    let e = code(query(&mut con, &["GET", "plain"]).await);
    assert!(e.starts_with("ERR key `plain` names no keyspace"), "{e}");
    let e = code(query(&mut con, &["GET", "ks:fail1"]).await);
    assert!(e.starts_with("DATA_SOURCE_ERROR"), "{e}");
    let e = code(query(&mut con, &["GET", "ks:"]).await);
    assert!(e.starts_with("EMPTY_KEY"), "{e}");
    let e = code(query(&mut con, &["SET", "ks:x", "v", "NX"]).await);
    assert!(e.contains("SET NX is not supported"), "{e}");
    let e = code(query(&mut con, &["SET", "ks:x", "v", "EX", "0"]).await);
    assert!(e.contains("invalid expire time"), "{e}");
    let e = code(query(&mut con, &["GET"]).await);
    assert!(e.contains("wrong number of arguments for 'get'"), "{e}");
    let e = code(query(&mut con, &["FLUSHALL"]).await);
    assert!(e.starts_with("ERR unknown command 'FLUSHALL'"), "{e}");
    let big = "x".repeat(2000);
    let e = code(query(&mut con, &["GET", &format!("ks:{big}")]).await);
    assert!(e.starts_with("KEY_TOO_LARGE"), "{e}");

    // The connection-level commands a client's handshake uses.
    let _: () = query(&mut con, &["CLIENT", "SETNAME", "tester"])
        .await
        .unwrap();
    let name: String = query(&mut con, &["CLIENT", "GETNAME"]).await.unwrap();
    assert_eq!(name, "tester");
    let _: () = query(&mut con, &["SELECT", "0"]).await.unwrap();
    let count: i64 = query(&mut con, &["COMMAND", "COUNT"]).await.unwrap();
    assert!(count >= 10);
    let info: String = query(&mut con, &["INFO"]).await.unwrap();
    assert!(info.contains("total_commands_processed:"), "{info}");
    cluster.shutdown().await;
}

/// RESP3 through `HELLO 3`: nil is RESP3's null, and the commands work the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_after_hello_3() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let url = format!("redis://{}/?protocol=resp3", resp_addr(&cluster, 0));
    let mut con = connect(&url).await;
    let hello: Value = query(&mut con, &["HELLO", "3"]).await.unwrap();
    let Value::Map(fields) = hello else {
        panic!("HELLO 3 answers a map, got {hello:?}")
    };
    assert!(fields.contains(&(Value::BulkString(b"proto".to_vec()), Value::Int(3))));
    let v: Value = query(&mut con, &["GET", "ks:missing1"]).await.unwrap();
    assert_eq!(v, Value::Nil);
    let v: Option<String> = query(&mut con, &["GET", "ks:k"]).await.unwrap();
    assert_eq!(v.as_deref(), Some("v:k"));
    cluster.shutdown().await;
}

/// 100 commands in one pipeline are answered in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_100_commands_is_answered_in_order() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let mut con = connect_node(&cluster, 0).await;
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.cmd("SET")
            .arg(format!("ks:p{i}"))
            .arg(format!("value {i}"));
        pipe.cmd("GET").arg(format!("ks:p{i}"));
    }
    let replies: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), 100);
    for i in 0..50 {
        assert_eq!(replies[2 * i], Value::Okay);
        assert_eq!(
            replies[2 * i + 1],
            Value::BulkString(format!("value {i}").into_bytes())
        );
    }
    cluster.shutdown().await;
}

/// With three event loops, twelve connections read and write their own keys at once, their
/// reads of one slow key cost a single fetch, and the node stops cleanly afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_several_loops_share_loads() {
    let cluster = resp_cluster(1, |_, c| {
        c.server.io_threads = 3;
    })
    .await;
    let url = format!("redis://{}/", resp_addr(&cluster, 0));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..12 {
        let url = url.clone();
        clients.spawn(async move {
            // A connection of its own (not multiplexed with the others).
            let mut con = connect(&url).await;
            for i in 0..20 {
                let key = format!("ks:c{c}-{i}");
                let () = query(&mut con, &["SET", &key, &format!("{c}/{i}")])
                    .await
                    .unwrap();
                let v: String = query(&mut con, &["GET", &key]).await.unwrap();
                assert_eq!(v, format!("{c}/{i}"));
            }
            // Every connection asks for the same slow key: one fetch serves them all.
            let v: String = query(&mut con, &["GET", "ks:slow-shared"]).await.unwrap();
            assert_eq!(v, "v:slow-shared");
        });
    }
    let source = &cluster.sources[0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while source.running() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection reached the slow key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    source.open_gate();
    while let Some(done) = clients.join_next().await {
        done.expect("a client failed");
    }
    assert_eq!(source.fetches_of("slow-shared"), 1);
    cluster.shutdown().await;
}

/// With `resp_default_keyspace`, a key without `:` is in that keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_without_a_keyspace_use_the_default() {
    let cluster = resp_cluster(1, |_, c| {
        c.server.resp_default_keyspace = Some("ks".into());
    })
    .await;
    let mut con = connect_node(&cluster, 0).await;
    let v: String = query(&mut con, &["GET", "plain"]).await.unwrap();
    assert_eq!(v, "v:plain");
    cluster.shutdown().await;
}

/// Every command runs under the request deadline: a load that hangs answers TIMEOUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_the_request_deadline_answers_timeout() {
    let cluster = resp_cluster(1, |_, c| {
        c.server.request_timeout = Duration::from_millis(300);
    })
    .await;
    let mut con = connect_node(&cluster, 0).await;
    let e = code(query(&mut con, &["GET", "ks:slow1"]).await);
    assert!(e.starts_with("TIMEOUT"), "{e}");
    let e = code(query(&mut con, &["MGET", "ks:a", "ks:slow2"]).await);
    assert!(e.starts_with("TIMEOUT"), "{e}");
    // The connection goes on.
    let v: String = query(&mut con, &["GET", "ks:b"]).await.unwrap();
    assert_eq!(v, "v:b");
    cluster.sources[0].open_gate();
    cluster.shutdown().await;
}

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
name = "other-writer"
token = "other-secret"
role = "write"
keyspaces = ["other*"]
"#;

/// With tokens, nothing but HELLO/AUTH/PING/QUIT passes without one; a read token cannot
/// write; a token limited to some keyspaces cannot touch the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_apply() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, TOKENS).unwrap();
    let cluster = resp_cluster(1, move |_, c| {
        c.server.token = Some("cluster-secret".into());
        c.server.tokens_file = Some(file.clone());
    })
    .await;
    let addr = resp_addr(&cluster, 0);

    let mut anonymous = connect(&format!("redis://{addr}/")).await;
    let pong: String = query(&mut anonymous, &["PING"]).await.unwrap();
    assert_eq!(pong, "PONG");
    let e = code(query(&mut anonymous, &["GET", "ks:a"]).await);
    assert!(e.starts_with("UNAUTHORIZED"), "{e}");
    let e = code(query(&mut anonymous, &["AUTH", "guess"]).await);
    assert!(e.starts_with("UNAUTHORIZED"), "{e}");
    let _: () = query(&mut anonymous, &["AUTH", "reader", "read-secret"])
        .await
        .unwrap();
    let v: String = query(&mut anonymous, &["GET", "ks:a"]).await.unwrap();
    assert_eq!(v, "v:a");
    let e = code(query(&mut anonymous, &["SET", "ks:a", "x"]).await);
    assert!(
        e.starts_with("FORBIDDEN") && e.contains("SET needs write"),
        "{e}"
    );

    // A password in the URL: RESP2 sends AUTH, RESP3 sends HELLO 3 AUTH.
    let mut writer = connect(&format!("redis://:write-secret@{addr}/")).await;
    let _: () = query(&mut writer, &["SET", "ks:a", "x"]).await.unwrap();
    let mut reader3 = connect(&format!(
        "redis://reader:read-secret@{addr}/?protocol=resp3"
    ))
    .await;
    let v: String = query(&mut reader3, &["GET", "ks:a"]).await.unwrap();
    assert_eq!(v, "x");
    let e = code(query(&mut reader3, &["DEL", "ks:a"]).await);
    assert!(e.starts_with("FORBIDDEN"), "{e}");
    let refused = redis::Client::open(format!("redis://reader:wrong@{addr}/?protocol=resp3"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    assert!(
        refused.is_err(),
        "HELLO 3 AUTH with a wrong token is refused"
    );

    let mut limited = connect(&format!("redis://:other-secret@{addr}/")).await;
    let e = code(query(&mut limited, &["SET", "ks:a", "y"]).await);
    assert!(
        e.starts_with("FORBIDDEN") && e.contains("keyspace `ks`"),
        "{e}"
    );
    let e = code(query(&mut limited, &["MGET", "ks:a"]).await);
    assert!(e.starts_with("FORBIDDEN"), "{e}");
    cluster.shutdown().await;
}

/// In a 3-node cluster, a key owned by another node is read through a non-owner (loaded
/// by the owner's source only), written through a non-owner, and a write drops the copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_reads_and_writes_through_the_owner() {
    let cluster = resp_cluster(3, |_, _| {}).await;
    let key = cluster.key_owned_by("ks", 1, "user:");
    let mut via0 = connect_node(&cluster, 0).await;
    let mut via2 = connect_node(&cluster, 2).await;
    let v: String = query(&mut via0, &["GET", &format!("ks:{key}")])
        .await
        .unwrap();
    assert_eq!(v, format!("v:{key}"));
    assert_eq!(
        cluster.sources[1].fetches_of(&key),
        1,
        "the owner loaded it"
    );
    assert_eq!(cluster.sources[0].fetches_of(&key), 0);
    let v: String = query(&mut via2, &["GET", &format!("ks:{key}")])
        .await
        .unwrap();
    assert_eq!(v, format!("v:{key}"));
    assert_eq!(cluster.sources[1].fetches_of(&key), 1, "loaded once in all");

    // A write through node 2 reaches the owner and drops node 0's copy.
    let _: () = query(&mut via2, &["SET", &format!("ks:{key}"), "new"])
        .await
        .unwrap();
    let v: String = query(&mut via0, &["GET", &format!("ks:{key}")])
        .await
        .unwrap();
    assert_eq!(v, "new");
    let owner = cluster.node(1).engine().get("ks", &key).await.unwrap();
    assert_eq!(owner.as_deref(), Some(&b"new"[..]));
    // MGET over keys of every owner, through one node.
    let keys: Vec<String> = (0..3)
        .map(|i| format!("ks:{}", cluster.key_owned_by("ks", i, "many:")))
        .collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(String::as_str));
    let values: Vec<String> = query(&mut via0, &args).await.unwrap();
    let expected: Vec<String> = keys.iter().map(|k| format!("v:{}", &k[3..])).collect();
    assert_eq!(values, expected);
    cluster.shutdown().await;
}
