//! `distcache node start` as a real process: flags, variables and config file, readiness, a
//! clean stop on SIGTERM, and clear errors for bad settings.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use distcache::client::Client;
use distcache_testkit::{free_addr, wait_for, wait_until};

fn distcache() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distcache"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

async fn wait_ready(addr: &str, child: &mut Child) -> distcache::wire::Health {
    let client = Client::new([addr])
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    let ready = std::sync::Mutex::new(None);
    let (client, slot) = (&client, &ready);
    wait_until(Duration::from_secs(30), "the node is ready", || {
        assert!(child.try_wait().unwrap().is_none(), "the node exited early");
        async move {
            let health = client.health().await.ok().filter(|h| h.ready);
            let found = health.is_some();
            *slot.lock().unwrap() = health;
            found
        }
    })
    .await;
    ready.into_inner().unwrap().unwrap()
}

async fn stop(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    wait_for(Duration::from_secs(20), "the node stops on SIGTERM", || {
        status = child.try_wait().unwrap();
        status.is_some()
    })
    .await;
    status.unwrap()
}

/// Flags beat variables, variables beat the config file; the node serves its keyspace file
/// (over HTTP, and over the Redis protocol with `--resp-listen`) and stops cleanly (exit 0)
/// on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_serves_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let resp = free_addr();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "id = \"from-file\"\nlisten = \"{addr}\"\ndata_dir = \"{}\"\n[cluster]\nprobe_interval = \"100ms\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let keyspaces = dir.path().join("ks.toml");
    std::fs::write(&keyspaces, "[[keyspace]]\nname = \"scratch\"\n").unwrap();
    let mut child = distcache()
        .args(["node", "start", "--config"])
        .arg(&config)
        .args(["--id", "from-flag", "--resp-listen", &resp])
        .env("DISTCACHE_ID", "from-env")
        .env("DISTCACHE_RESP_DEFAULT_KEYSPACE", "scratch")
        .env("DISTCACHE_KEYSPACE_FILE", &keyspaces)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = wait_ready(&addr, &mut child).await;
    assert_eq!(health.node_id, "from-flag");
    let client = Client::new([addr.as_str()]).unwrap();
    client.put("scratch", "k", "v", None).await.unwrap();
    assert_eq!(
        client.get("scratch", "k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // The same value over RESP, the key in the default keyspace.
    let mut redis = tokio::net::TcpStream::connect(&resp).await.unwrap();
    redis
        .write_all(b"GET k\r\nGET scratch:k\r\n")
        .await
        .unwrap();
    let mut reply = [0u8; 14];
    redis.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"$1\r\nv\r\n$1\r\nv\r\n");
    let status = stop(&mut child).await;
    assert!(status.success(), "exit status {status}");
}

/// The variable is used when no flag is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_configure_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = distcache()
        .args(["node", "start"])
        .env("DISTCACHE_ID", "from-env")
        .env("DISTCACHE_LISTEN", &addr)
        .env("DISTCACHE_DATA_DIR", dir.path())
        .env("DISTCACHE_PEERS", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_ready(&addr, &mut child).await.node_id, "from-env");
    assert!(stop(&mut child).await.success());
}

/// Bad settings fail at once with a message naming the problem: usage errors exit 2, bad
/// values exit 1.
#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = distcache()
        .args(["node", "start", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));

    let out = distcache().args(["node", "start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--id"));

    let out = distcache()
        .args([
            "node",
            "start",
            "--id",
            "bad id",
            "--listen",
            "nowhere",
            "--peers",
            "x:1,y",
            "--resp-listen",
            "6380",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["id:", "listen:", "peers[1]:", "server.resp_listen:"] {
        assert!(err.contains(field), "{field} missing from: {err}");
    }

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "id = \"n\"\nlisten = 5\n").unwrap();
    let out = distcache()
        .args(["node", "start", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("listen"), "{err}");

    let ks = dir.path().join("ks.toml");
    std::fs::write(&ks, "[[keyspace]]\nname = \"a\"\nmax_bytes = 0\n").unwrap();
    let out = distcache()
        .args([
            "node",
            "start",
            "--id",
            "n",
            "--listen",
            "127.0.0.1:0",
            "--keyspace-file",
        ])
        .arg(&ks)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keyspaces[a].max_bytes"), "{err}");
}

/// `distcache cert` makes a CA and a node certificate; `node start --tls-cert/--tls-key/
/// --tls-ca` then serves only TLS: https with the CA answers, plaintext gets no answer, and
/// the peer routes refuse a client without a certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_with_certificates_from_the_cert_commands() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs_arg = certs.to_str().unwrap();
    for args in [
        vec!["cert", "ca", "--dir", certs_arg],
        vec!["cert", "node", "--dir", certs_arg, "--name", "n1"],
    ] {
        let out = distcache().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let again = distcache()
        .args(["cert", "ca", "--dir", certs_arg])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second CA must need --force");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let addr = free_addr();
    let mut child = distcache()
        .args(["node", "start", "--id", "n1", "--listen", &addr])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(certs.join("n1.pem"))
        .arg("--tls-key")
        .arg(certs.join("n1.key"))
        .env("DISTCACHE_TLS_CA", certs.join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let health = format!("https://{addr}/healthz");
    let ready = std::sync::Mutex::new(false);
    let (https_ref, slot) = (&https, &ready);
    wait_until(Duration::from_secs(30), "the TLS node is ready", || {
        assert!(child.try_wait().unwrap().is_none(), "the node exited early");
        let url = health.clone();
        async move {
            let ok = match https_ref.get(url).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|h| h["ready"] == true),
                Err(_) => false,
            };
            *slot.lock().unwrap() = ok;
            ok
        }
    })
    .await;
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(plain.is_err(), "plaintext got an answer: {plain:?}");
    let peer = https
        .get(format!("https://{addr}/_distcache/peer/hot"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer.status(), 403);
    assert!(stop(&mut child).await.success());
}

/// A bad `OTEL_*` variable or `--otel-endpoint` stops the start, naming it (issue 15).
#[test]
fn bad_otel_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let start = |extra: &[&str], var: Option<(&str, &str)>| {
        let mut cmd = distcache();
        cmd.args(["node", "start", "--id", "n", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(dir.path());
        if let Some((k, v)) = var {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = start(&[], Some(("OTEL_TRACES_SAMPLER", "sometimes")));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_TRACES_SAMPLER") && err.contains("sometimes"),
        "{err}"
    );

    let out = start(&["--otel-endpoint", "collector:4318"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("otel.endpoint"), "{err}");
}

/// SIGTERM while the node still waits for its start-up quorum (it already answers
/// `/healthz`) stops it at once with exit 0, never by the signal's default action. Until it
/// is ready, data and catalog requests are refused as unavailable (issue 17: a restarted node
/// answered revision 0 and "keyspace not found" before it had its catalog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_start_up_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, absent) = (free_addr(), free_addr());
    let mut child = distcache()
        .args(["node", "start", "--id", "early", "--listen", &addr])
        .args(["--peers", &format!("{addr},{absent}")])
        .args(["--minimum-peers-quorum", "2"])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = Client::new([addr.as_str()])
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    wait_until(
        Duration::from_secs(30),
        "the node answers, not ready",
        || {
            let client = &client;
            async move { client.health().await.is_ok_and(|h| !h.ready) }
        },
    )
    .await;
    let listed = client.keyspaces().await;
    assert!(
        matches!(listed, Err(distcache::Error::Unavailable(ref m)) if m.contains("starting")),
        "{listed:?}"
    );
    let read = client.get("users", "42").await;
    assert!(
        matches!(read, Err(distcache::Error::Unavailable(_))),
        "{read:?}"
    );
    let status = stop(&mut child).await;
    assert!(status.success(), "exit status {status}");
}
