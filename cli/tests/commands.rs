//! Every client command of the real binary against real nodes: happy paths in both output
//! modes, exit codes, and bad input answered clearly without changing anything.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, distcache, run_command};

/// Keyspaces: create, list, get, update (a patch), delete, in table and JSON output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_lifecycle() {
    let c = Cluster::start(3).await;
    let out = c
        .run(&[
            "keyspace",
            "create",
            "users",
            "--max-bytes",
            "64MiB",
            "--ttl",
            "5m",
            "--rate-limit",
            "100/s,burst=200,wait=50ms",
            "--circuit-breaker",
            "5,10s",
            "--warm-keys",
            "user:1,user:2",
        ])
        .await;
    assert!(
        out.ok().contains("keyspace users created (revision 2)"),
        "{}",
        out.stdout
    );

    let list = c.run(&["keyspace", "list"]).await;
    assert!(
        list.ok()
            .lines()
            .any(|l| l.starts_with("users") && l.contains("64.0 MiB") && l.contains("5m")),
        "{}",
        list.stdout
    );
    let json = c.run(&["keyspace", "list", "-o", "json"]).await.json();
    assert_eq!(json["revision"], 2);
    assert_eq!(json["keyspaces"][1]["name"], "users");
    assert_eq!(json["keyspaces"][1]["rate_limit"]["burst"], 200);

    let toml = c.run(&["keyspace", "get", "users"]).await;
    assert!(
        toml.ok().starts_with("[[keyspace]]\nname = \"users\""),
        "{}",
        toml.stdout
    );
    let spec = c
        .run(&["keyspace", "get", "users", "-o", "json"])
        .await
        .json();
    assert_eq!(spec["warm_keys"], serde_json::json!(["user:1", "user:2"]));

    let updated = c
        .run(&[
            "keyspace",
            "update",
            "users",
            "--ttl",
            "10m",
            "--circuit-breaker",
            "none",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(updated["revision"], 3);
    assert_eq!(updated["keyspace"]["default_ttl"], "10m");
    assert!(
        updated["keyspace"].get("circuit_breaker").is_none(),
        "cleared"
    );
    assert_eq!(
        updated["keyspace"]["max_bytes"], 67108864,
        "untouched fields stay"
    );
    // Every node serves the update (the command returns once committed).
    for node in c.nodes() {
        common::wait_for("every node applied revision 3", || {
            node.engine().revision() >= 3
        })
        .await;
        assert_eq!(
            node.engine().keyspace("users").unwrap().default_ttl,
            Some(std::time::Duration::from_secs(600))
        );
    }

    let deleted = c
        .run(&["keyspace", "delete", "users", "-o", "json"])
        .await
        .json();
    assert_eq!(deleted["deleted"], serde_json::json!(["users"]));
    c.run(&["keyspace", "get", "users"])
        .await
        .fails(3, "keyspace `users` not found");
    c.shutdown().await;
}

/// Bad keyspace input fails with a clear message, the right exit code, and no change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_bad_input_changes_nothing() {
    let c = Cluster::start(1).await;
    let before = c.run(&["keyspace", "list", "-o", "json"]).await.json()["revision"].clone();
    c.run(&["keyspace", "create", "a", "--max-bytes", "lots"])
        .await
        .fails(2, "lots");
    c.run(&["keyspace", "create", "a", "--rate-limit", "fast"])
        .await
        .fails(2, "fast");
    c.run(&["keyspace", "create", "a", "--source", "ftp://x"])
        .await
        .fails(1, "--source");
    c.run(&["keyspace", "create", "a", "--source", "sqlite:/x.db"])
        .await
        .fails(1, "--query");
    c.run(&[
        "keyspace",
        "create",
        "bad name",
        "--max-bytes",
        "0",
        "--read-timeout",
        "0s",
    ])
    .await
    .fails(1, "name");
    let out = c
        .run(&[
            "keyspace",
            "create",
            "a",
            "--max-bytes",
            "0",
            "--read-timeout",
            "0s",
        ])
        .await;
    out.fails(1, "max_bytes");
    assert!(
        out.stderr.contains("read_timeout"),
        "every bad field: {}",
        out.stderr
    );
    c.run(&["keyspace", "create", "scratch"])
        .await
        .fails(1, "already exists");
    c.run(&["keyspace", "update", "nope", "--ttl", "1m"])
        .await
        .fails(3, "nope");
    c.run(&["keyspace", "delete", "scratch", "nope"])
        .await
        .fails(3, "nope");
    c.run(&[
        "keyspace",
        "create",
        "sq",
        "--source",
        "sqlite:/nonexistent.db",
        "--query",
        "SELECT v FROM t WHERE k = ?",
    ])
    .await
    .fails(1, "source.path");
    let after = c.run(&["keyspace", "list", "-o", "json"]).await.json();
    assert_eq!(after["revision"], before, "nothing changed");
    assert_eq!(after["keyspaces"].as_array().unwrap().len(), 1);
    c.shutdown().await;
}

/// `keyspace apply` creates, updates, leaves alone, prunes on request, and previews with
/// --dry-run; a file with a bad spec changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_apply_reconciles() {
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ks.toml");
    let path = file.to_str().unwrap();
    std::fs::write(
        &file,
        "[[keyspace]]\nname = \"users\"\ndefault_ttl = \"5m\"\n\n[[keyspace]]\nname = \"orders\"\n",
    )
    .unwrap();

    let dry = c.run(&["keyspace", "apply", "-f", path, "--dry-run"]).await;
    assert_eq!(dry.ok(), "would create users\nwould create orders\n");
    assert_eq!(
        c.run(&["keyspace", "list", "-o", "json"]).await.json()["keyspaces"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let applied = c
        .run(&["keyspace", "apply", "-f", path, "-o", "json"])
        .await
        .json();
    assert_eq!(
        applied["changes"][0],
        serde_json::json!({"keyspace": "users", "action": "create"})
    );
    assert_eq!(applied["dry_run"], false);
    let again = c.run(&["keyspace", "apply", "-f", path]).await;
    assert!(
        again
            .ok()
            .starts_with("unchanged users\nunchanged orders\n"),
        "{}",
        again.stdout
    );

    std::fs::write(
        &file,
        "[[keyspace]]\nname = \"users\"\ndefault_ttl = \"7m\"\nmax_bytes = \"1MiB\"\n",
    )
    .unwrap();
    let pruned = c.run(&["keyspace", "apply", "-f", path, "--prune"]).await;
    let text = pruned.ok();
    assert!(
        text.contains("updated users (default_ttl, max_bytes)"),
        "{text}"
    );
    assert!(
        text.contains("deleted orders") && text.contains("deleted scratch"),
        "{text}"
    );

    let revision = c.run(&["keyspace", "list", "-o", "json"]).await.json()["revision"].clone();
    std::fs::write(
        &file,
        "[[keyspace]]\nname = \"fine\"\n[[keyspace]]\nname = \"broken\"\nmax_bytes = 0\n",
    )
    .unwrap();
    c.run(&["keyspace", "apply", "-f", path])
        .await
        .fails(1, "keyspaces[broken].max_bytes");
    std::fs::write(&file, "[[keyspace]]\nname = ").unwrap();
    c.run(&["keyspace", "apply", "-f", path])
        .await
        .fails(1, "ks.toml");
    c.run(&["keyspace", "apply", "-f", "/nonexistent.toml"])
        .await
        .fails(1, "/nonexistent.toml");
    assert_eq!(
        c.run(&["keyspace", "list", "-o", "json"]).await.json()["revision"],
        revision,
        "nothing applied"
    );
    c.shutdown().await;
}

/// put from an argument, a file and stdin; get one key raw, several as a table or JSON; delete;
/// not found exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_round_trip() {
    let c = Cluster::start(3).await;
    assert_eq!(
        c.run(&["put", "scratch", "a", "alpha", "--ttl", "10m"])
            .await
            .ok(),
        "stored a (5 bytes)\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bin");
    std::fs::write(&file, [0u8, 159, 255]).unwrap();
    c.run(&["put", "scratch", "b", "--file", file.to_str().unwrap()])
        .await
        .ok();
    let stored = c
        .run_with(
            &["put", "scratch", "c", "-", "-o", "json"],
            Some(b"from stdin"),
        )
        .await
        .json();
    assert_eq!(
        stored,
        serde_json::json!({"keyspace": "scratch", "key": "c", "stored": true, "bytes": 10})
    );

    let one = c.run(&["get", "scratch", "b"]).await;
    assert_eq!(one.code, 0);
    assert_eq!(one.raw, vec![0u8, 159, 255], "raw bytes on stdout");
    let table = c.run(&["get", "scratch", "a", "b", "zzz"]).await;
    assert_eq!(table.code, 3);
    let rows: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[1], ["a", "found", "alpha"], "{}", table.stdout);
    assert_eq!(
        rows[2],
        ["b", "found", "<3", "bytes", "of", "binary>"],
        "{}",
        table.stdout
    );
    assert_eq!(rows[3], ["zzz", "not", "found"], "{}", table.stdout);
    let json = c.run(&["get", "scratch", "a", "b", "-o", "json"]).await;
    let v = json.json();
    assert_eq!(json.code, 0);
    assert_eq!(
        v["results"][0],
        serde_json::json!({"key": "a", "found": true, "value": "alpha", "value_base64": "YWxwaGE="})
    );
    assert_eq!(v["results"][1]["value_base64"], "AJ//");
    assert!(
        v["results"][1].get("value").is_none(),
        "binary has no text form"
    );

    let deleted = c
        .run(&["delete", "scratch", "a", "b", "-o", "json"])
        .await
        .json();
    assert_eq!(
        deleted["results"][1],
        serde_json::json!({"key": "b", "deleted": true})
    );
    c.run(&["get", "scratch", "a"]).await.fails(3, "not found");
    c.run(&["get", "nope", "a"])
        .await
        .fails(3, "keyspace `nope` not found");
    c.run(&["put", "scratch", "x"]).await.fails(1, "--file");
    c.run(&["put", "scratch", "", "v"]).await.fails(1, "empty");
    c.shutdown().await;
}

/// peers, stats, cluster status and wait, in both output modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands() {
    let c = Cluster::start(3).await;
    c.run(&["put", "scratch", "k", "v"]).await.ok();
    c.run(&["get", "scratch", "k"]).await.ok();

    let peers = c.run(&["peers"]).await;
    assert!(peers.ok().starts_with("ID"), "{}", peers.stdout);
    assert!(peers.stdout.lines().next().unwrap().contains("SOURCE"));
    assert_eq!(
        peers
            .stdout
            .lines()
            .filter(|l| (l.contains("healthy") || l.contains("self")) && l.contains("static"))
            .count(),
        3,
        "every member with its discovery source: {}",
        peers.stdout
    );
    let json = c.run(&["peers", "-o", "json"]).await.json();
    let members = json.as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .all(|m| m["source"] == "static" && m["last_seen_ms"].is_u64()),
        "{json}"
    );

    let stats = c.run(&["stats"]).await;
    assert_eq!(
        stats.ok().lines().filter(|l| l.contains("scratch")).count(),
        3,
        "{}",
        stats.stdout
    );
    let json = c.run(&["stats", "scratch", "-o", "json"]).await.json();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let gets: u64 = nodes
        .iter()
        .map(|n| n["keyspaces"][0]["stats"]["gets"].as_u64().unwrap())
        .sum();
    assert!(gets >= 1);
    c.run(&["stats", "nope"]).await.fails(3, "nope");

    let metrics = c.run(&["metrics"]).await;
    let text = metrics.ok();
    assert!(
        text.contains("distcache_cache_hits_total{keyspace=\"scratch\"}"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE distcache_cache_hits_total counter"),
        "{text}"
    );

    let status = c.run(&["cluster", "status"]).await;
    let text = status.ok();
    assert!(text.starts_with("leader node-"), "{text}");
    let healthy_voters = text
        .lines()
        .filter(|l| l.split_whitespace().skip(3).take(2).eq(["yes", "yes"]))
        .count();
    assert_eq!(healthy_voters, 3, "{text}");
    let json = c.run(&["cluster", "status", "-o", "json"]).await.json();
    for field in [
        "node_id",
        "role",
        "leader",
        "term",
        "applied_revision",
        "members",
        "views",
    ] {
        assert!(
            json.get(field).is_some(),
            "cluster status lacks {field}: {json}"
        );
    }

    let ready = c
        .run(&[
            "wait",
            "--nodes",
            "3",
            "--healthy",
            "--timeout",
            "10s",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(
        (ready["ready"].clone(), ready["nodes"].clone()),
        (serde_json::json!(true), serde_json::json!(3))
    );
    let started = std::time::Instant::now();
    c.run(&["wait", "--nodes", "5", "--timeout", "1s"])
        .await
        .fails(4, "3 of 5 members");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    c.shutdown().await;
}

/// `stats` and `cluster status` with a member stopped: the command succeeds, the stopped
/// member is listed with its error, and the others answer as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_report_a_stopped_member() {
    let mut c = Cluster::start(3).await;
    c.run(&["put", "scratch", "k", "v"]).await.ok();
    c.stop_node(2).await;
    let stopped_addr = c.addrs[2].clone();

    let json = c.run(&["stats", "-o", "json"]).await.json();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{json}");
    for n in nodes {
        if n["addr"] == stopped_addr.as_str() {
            assert_eq!(n["node"], "node-2", "{n}");
            assert_eq!(n["error"]["code"], "UNAVAILABLE", "{n}");
            assert_eq!(n["keyspaces"], serde_json::json!([]), "{n}");
        } else {
            assert!(n.get("error").is_none(), "{n}");
            assert_eq!(n["keyspaces"][0]["name"], "scratch", "{n}");
        }
    }
    let table = c.run(&["stats", "scratch"]).await;
    let down: Vec<&str> = table
        .ok()
        .lines()
        .filter(|l| l.contains("unreachable"))
        .collect();
    assert_eq!(down.len(), 1, "{}", table.stdout);
    assert!(down[0].starts_with("node-2"), "{}", table.stdout);
    c.run(&["stats", "nope"]).await.fails(3, "nope");

    let json = c.run(&["cluster", "status", "-o", "json"]).await.json();
    let views = json["views"].as_array().unwrap();
    assert_eq!(
        views.len(),
        json["members"].as_array().unwrap().len(),
        "{json}"
    );
    for v in views {
        let answered = v.get("view").is_some();
        assert_eq!(answered, v["addr"] != stopped_addr.as_str(), "{v}");
        assert_eq!(v.get("error").is_some(), !answered, "{v}");
    }
    c.shutdown().await;
}

/// Endpoints are tried in turn; none answering exits 4; a token-guarded cluster needs the token
/// (exit 5 without it or with a wrong one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_tokens() {
    let c = Cluster::start_with(1, Some("s3cret")).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut cmd = distcache();
    cmd.args([
        "--endpoint",
        &format!("{dead},{}", c.addrs[0]),
        "--token",
        "s3cret",
        "peers",
    ]);
    assert_eq!(
        run_command(cmd, None).await.code,
        0,
        "the second endpoint answers"
    );

    let mut cmd = distcache();
    cmd.args(["--endpoint", &dead, "peers"]);
    run_command(cmd, None)
        .await
        .fails(4, "cannot reach any endpoint");

    let mut cmd = distcache();
    cmd.args(["--endpoint", &c.addrs[0], "peers"]);
    run_command(cmd, None).await.fails(5, "bearer token");
    let mut cmd = distcache();
    cmd.env("DISTCACHE_TOKEN", "wrong")
        .args(["--endpoint", &c.addrs[0], "get", "scratch", "k"]);
    run_command(cmd, None).await.fails(5, "wrong");
    c.shutdown().await;
}

/// Completions print a script; every command's help has an example.
#[tokio::test]
async fn completions_and_help() {
    let mut cmd = distcache();
    cmd.args(["completions", "bash"]);
    let out = run_command(cmd, None).await;
    assert!(out.ok().contains("distcache") && out.stdout.contains("keyspace"));
    for args in [
        vec!["keyspace", "list"],
        vec!["keyspace", "get"],
        vec!["keyspace", "create"],
        vec!["keyspace", "update"],
        vec!["keyspace", "delete"],
        vec!["keyspace", "apply"],
        vec!["get"],
        vec!["put"],
        vec!["delete"],
        vec!["stats"],
        vec!["cluster", "status"],
        vec!["wait"],
        vec!["completions"],
        vec!["node", "start"],
    ] {
        let mut cmd = distcache();
        cmd.args(&args).arg("--help");
        let out = run_command(cmd, None).await;
        assert!(
            out.ok().contains("Example"),
            "`{}` --help has no example",
            args.join(" ")
        );
    }
    let mut cmd = distcache();
    cmd.arg("--help");
    assert!(run_command(cmd, None).await.ok().contains("Exit codes"));
}
