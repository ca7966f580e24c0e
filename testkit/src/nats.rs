//! A real `nats-server` per test: on a free loopback port, in a temp dir, killed on drop, and
//! restartable on the same port (to test clients that reconnect). `scripts/test.sh` installs
//! the server when it is missing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::wait::holds_within;

/// How long a starting server may take to accept connections.
const READY: Duration = Duration::from_secs(10);

/// Tries to find a free port the server can bind before giving up.
const PORT_TRIES: usize = 5;

/// One running (or stopped) `nats-server`.
pub struct NatsServer {
    dir: tempfile::TempDir,
    port: u16,
    /// Extra command-line arguments (say, `--user u --pass p`).
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free loopback port; returns once it accepts connections.
    pub async fn start() -> NatsServer {
        NatsServer::start_with(&[]).await
    }

    /// Like [`start`](Self::start), with extra `nats-server` arguments (`--user u --pass p`,
    /// `--auth TOKEN`), kept across restarts.
    pub async fn start_with(args: &[&str]) -> NatsServer {
        let mut dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..PORT_TRIES {
            let port = free_port();
            let mut server = NatsServer {
                dir,
                port,
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                child: None,
            };
            if server.spawn().await {
                return server;
            }
            // Another process took the port meanwhile: try another.
            dir = server.take_dir();
        }
        panic!(
            "nats-server did not start in {PORT_TRIES} tries; see {}",
            dir.path().join("nats.log").display()
        );
    }

    /// `n` servers routed into one NATS cluster (each knows every other's cluster port);
    /// returns once each accepts clients (routes may still be forming).
    pub async fn cluster(n: usize) -> Vec<NatsServer> {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut servers = Vec::new();
        for port in &ports {
            let listen = format!("nats://127.0.0.1:{port}");
            let args = [
                "--cluster_name",
                "distcache-test",
                "--cluster",
                &listen,
                "--routes",
                &routes,
            ];
            servers.push(NatsServer::start_with(&args).await);
        }
        servers
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (connected clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port; returns once it accepts connections.
    pub async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn().await,
            "nats-server did not restart on port {}; see {}",
            self.port,
            self.dir.path().join("nats.log").display()
        );
    }

    /// Runs the server on `self.port`: true once it greets a client, false if it exits or
    /// stays silent for [`READY`].
    async fn spawn(&mut self) -> bool {
        let log = self.dir.path().join("nats.log");
        let spawned = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-l"])
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "nats-server is not installed: ./scripts/test.sh installs it (apt-get install nats-server)"
            ),
            Err(e) => panic!("cannot run nats-server: {e}"),
        };
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let ready = holds_within(READY, Duration::from_millis(10), || {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            let addr = addr.clone();
            async move { exited || greets(&addr).await }
        })
        .await;
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none());
        if !(ready && running) {
            self.stop();
            return false;
        }
        true
    }

    /// Its temp dir, for a retry on another port.
    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a NATS server at `addr` sends its `INFO` greeting.
async fn greets(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"INFO"
    )
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound address").port()
}
