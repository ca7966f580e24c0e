//! Real nodes for CLI tests (in this process, on loopback ports picked by the OS), and a way to
//! run the real `distcache` binary against them.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use distcache::{KeySpaceSpec, Node, NodeConfig, SourceSpec};

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub addrs: Vec<String>,
    pub token: Option<String>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// `n` nodes serving a put-only keyspace `scratch`, with one leader elected.
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None).await
    }

    /// Like `start`, with every node requiring `token`.
    pub async fn start_with(n: usize, token: Option<&str>) -> Cluster {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap().to_string());
            listeners.push(l);
        }
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let starts = listeners.into_iter().enumerate().map(|(i, l)| {
            let mut config = NodeConfig::for_test(&format!("node-{i}"));
            config.peers = addrs.clone();
            config.data_dir = dirs[i].path().to_path_buf();
            config.cluster.minimum_peers_quorum = n;
            config.server.token = token.map(str::to_owned);
            Node::builder(config)
                .keyspace_spec(KeySpaceSpec::new("scratch", SourceSpec::None))
                .start(l)
        });
        let nodes: Vec<Node> = futures::future::join_all(starts)
            .await
            .into_iter()
            .map(|r| r.expect("node starts"))
            .collect();
        let cluster = Cluster {
            nodes,
            addrs,
            token: token.map(str::to_owned),
            _dirs: dirs,
        };
        cluster.wait_leader().await;
        cluster
    }

    pub async fn wait_leader(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|n| n.control().and_then(|c| c.status().leader))
                .collect();
            let ready = leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]);
            let seeded = self
                .nodes
                .iter()
                .all(|n| n.engine().keyspace("scratch").is_some());
            if ready && seeded {
                return;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        for node in &self.nodes {
            node.shutdown().await.unwrap();
        }
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
pub async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
