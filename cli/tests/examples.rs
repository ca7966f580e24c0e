//! The files in `examples/` stay true: configurations parse and validate, command lines and
//! variables are ones the binary knows, and the CI script passes against a real cluster.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Cluster, distcache, run_command};
use distcache::auth::{Role, Tokens};
use distcache::{Limits, NodeConfig, read_keyspace_file};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The three node configurations parse, validate, name distinct nodes and list the same peers.
#[test]
fn cluster_configs_are_valid() {
    let mut ids = Vec::new();
    let mut peer_lists = Vec::new();
    for i in 1..=3 {
        let path = examples().join(format!("cluster/node-{i}.toml"));
        let config: NodeConfig = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let problems = config.problems();
        assert!(problems.is_empty(), "{}: {problems}", path.display());
        assert!(config.peers.contains(config.advertise.as_ref().unwrap()));
        ids.push(config.id.clone());
        peer_lists.push(config.peers.clone());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(peer_lists.iter().all(|p| *p == peer_lists[0]));
}

/// Every keyspace file reads and every spec in it is valid.
#[test]
fn keyspace_files_are_valid() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples().join("keyspaces")).unwrap() {
        let path = entry.unwrap().path();
        let specs = read_keyspace_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!specs.is_empty(), "{} is empty", path.display());
        for spec in specs {
            spec.validate(&Limits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 5);
}

/// The tokens file parses, holds only hashes, and gives each role once.
#[test]
fn tokens_file_is_valid() {
    let path = examples().join("tokens.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let tokens = Tokens::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let roles: Vec<Role> = tokens.grants().map(|g| g.role()).collect();
    assert_eq!(roles, [Role::Read, Role::Write, Role::Admin]);
    assert!(
        !text.contains("\ntoken = "),
        "the example holds only hashes"
    );
    let billing = tokens.grants().nth(1).unwrap();
    assert!(billing.allows("invoices-2024") && !billing.allows("users"));
}

/// Checks a `distcache …` command line against the binary: `--help` after the arguments
/// succeeds only when every flag exists.
async fn check_args(args: &[String]) {
    let mut cmd = distcache();
    cmd.args(args).arg("--help");
    let out = run_command(cmd, None).await;
    assert_eq!(
        out.code,
        0,
        "`distcache {}` is not a valid command line: {}",
        args.join(" "),
        out.stderr
    );
}

/// The systemd unit starts the node with flags the binary has.
#[tokio::test]
async fn systemd_unit_matches_the_binary() {
    let unit = std::fs::read_to_string(examples().join("systemd/distcache.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert!(words.next().unwrap().ends_with("/distcache"));
    check_args(&words.map(str::to_owned).collect::<Vec<_>>()).await;
}

/// Each manifest's arguments (the DNS StatefulSet, the Kubernetes-API Deployment) are a valid
/// command line, and every DISTCACHE_* variable it sets is one `node start` reads.
#[tokio::test]
async fn kubernetes_manifests_match_the_binary() {
    for file in ["distcache.yaml", "deployment.yaml"] {
        let manifest = std::fs::read_to_string(examples().join("kubernetes").join(file)).unwrap();
        check_manifest(file, &manifest).await;
    }
}

async fn check_manifest(file: &str, manifest: &str) {
    let mut args = Vec::new();
    let mut in_args = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed == "args:" {
            in_args = true;
            continue;
        }
        if in_args {
            match trimmed.strip_prefix("- ") {
                Some(arg) => args.push(arg.to_owned()),
                None => in_args = false,
            }
        }
    }
    assert_eq!(&args[..2], ["node", "start"], "{file}");
    check_args(&args).await;

    let mut cmd = distcache();
    cmd.args(["node", "start", "--help"]);
    let help = run_command(cmd, None).await;
    let known = format!(
        "{}\n{}",
        help.ok(),
        "DISTCACHE_LOG DISTCACHE_TOKEN DISTCACHE_ENDPOINT"
    );
    let used: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .filter(|n| n.starts_with("DISTCACHE_"))
        .collect();
    assert!(used.len() >= 4, "{file}");
    for name in used {
        assert!(
            known.contains(name),
            "{file}: {name} is not a variable distcache reads"
        );
    }
}

/// The CI script waits for a real cluster, applies a keyspace file and checks every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_script_passes_against_a_cluster() {
    let c = Cluster::start(3).await;
    let script = examples().join("ci/check-cluster.sh");
    let file = examples().join("keyspaces/scratch.toml");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script)
        .arg(&file)
        .arg("3")
        .env("DISTCACHE_BIN", env!("CARGO_BIN_EXE_distcache"))
        .env("DISTCACHE_ENDPOINT", c.endpoints())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = run_command(cmd, None).await;
    let stdout = out.ok();
    assert!(stdout.contains("ok: 3 nodes serve 1 keyspaces"), "{stdout}");

    // And it fails, with distcache's exit code 4, when the cluster is smaller than required.
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script)
        .arg(&file)
        .arg("4")
        .env("DISTCACHE_BIN", env!("CARGO_BIN_EXE_distcache"))
        .env("DISTCACHE_ENDPOINT", c.endpoints())
        .env("WAIT_TIMEOUT", "1s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    run_command(cmd, None).await.fails(4, "3 of 4 members");
    c.shutdown().await;
}
