//! Real nodes for CLI tests (in this process, on loopback ports picked by the OS), and a way to
//! run the real `distcache` binary against them.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use distcache::{Engine, KeySpaceSpec, Node, SourceSpec};
use distcache_testkit::TestCluster;

pub struct Cluster {
    nodes: TestCluster,
    pub addrs: Vec<String>,
    pub token: Option<String>,
}

impl Cluster {
    /// `n` nodes serving a put-only keyspace `scratch`, with one leader elected.
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None).await
    }

    /// Like `start`, with every node requiring `token`.
    pub async fn start_with(n: usize, token: Option<&str>) -> Cluster {
        let specs = vec![KeySpaceSpec::new("scratch", SourceSpec::None)];
        Cluster::build(n, token, specs).await
    }

    /// `n` nodes serving `specs` (`distcache_testkit::spec(name)` reads each node's counting
    /// test source), with one leader elected.
    pub async fn start_serving(n: usize, specs: Vec<KeySpaceSpec>) -> Cluster {
        Cluster::build(n, None, specs).await
    }

    async fn build(n: usize, token: Option<&str>, specs: Vec<KeySpaceSpec>) -> Cluster {
        let required = token.map(str::to_owned);
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let nodes = TestCluster::builder(n)
            .specs(specs)
            .edit(move |_, config| config.server.token = required.clone())
            .build()
            .await;
        nodes.wait_leader().await;
        let seeded = |i: usize| {
            names
                .iter()
                .all(|name| nodes.node(i).engine().keyspace(name).is_some())
        };
        distcache_testkit::wait_for(
            distcache_testkit::CONVERGE,
            "every node serves every keyspace",
            || (0..n).all(seeded),
        )
        .await;
        Cluster {
            addrs: nodes.addrs.clone(),
            nodes,
            token: token.map(str::to_owned),
        }
    }

    /// Stops node `i`.
    pub async fn stop_node(&mut self, i: usize) {
        self.nodes.stop_node(i).await;
    }

    /// The running nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.running().into_iter().map(|i| self.nodes.node(i))
    }

    /// The engine of running node `i` (a handle: reads through it count on node `i`).
    pub fn engine(&self, i: usize) -> Engine {
        self.nodes.node(i).engine().clone()
    }

    /// Fetches from every node's test source so far.
    pub fn total_fetches(&self) -> usize {
        self.nodes.total_fetches()
    }

    /// The endpoint list of every node.
    pub fn endpoints(&self) -> String {
        self.addrs.join(",")
    }

    /// Runs `distcache ARGS` against this cluster (with its token, if any).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None).await
    }

    /// Runs `distcache ARGS` with `stdin` as standard input.
    pub async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = distcache();
        cmd.env("DISTCACHE_ENDPOINT", self.endpoints());
        if let Some(token) = &self.token {
            cmd.env("DISTCACHE_TOKEN", token);
        }
        cmd.args(args);
        run_command(cmd, stdin).await
    }

    pub async fn shutdown(self) {
        self.nodes.shutdown().await;
    }
}

/// The binary, with a clean environment.
pub fn distcache() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distcache"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What a run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw: Vec<u8>,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts the exit code and that stderr mentions `text`.
    pub fn fails(&self, code: i32, text: &str) {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(text),
            "stderr should mention `{text}`: {}",
            self.stderr
        );
    }
}

/// Runs a prepared command off the async runtime.
pub async fn run_command(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    let stdin = stdin.map(<[u8]>::to_vec);
    tokio::task::spawn_blocking(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            raw: stdout,
        }
    })
    .await
    .unwrap()
}

/// Polls `condition` for up to 15 s.
pub async fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    distcache_testkit::wait_for(Duration::from_secs(15), what, condition).await;
}
