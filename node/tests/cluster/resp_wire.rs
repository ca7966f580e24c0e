//! The Redis-protocol front byte by byte: exact replies in RESP2 and RESP3, a pipeline
//! written at once, malformed input refused without harm to other connections, the
//! connection limit, shutdown, and `redis-cli` (including `--pipe`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use distcache_testkit::wait_until;

use super::resp::{resp_addr, resp_cluster};

/// How long a reply may take.
const REPLY: Duration = Duration::from_secs(10);

/// Writes `input` and reads until `expected.len()` bytes came; asserts they are `expected`.
async fn exchange(stream: &mut TcpStream, input: &[u8], expected: &[u8]) {
    stream.write_all(input).await.unwrap();
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(REPLY, stream.read_exact(&mut got))
        .await
        .expect("reply in time")
        .expect("reply");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "reply to {:?}",
        String::from_utf8_lossy(input)
    );
}

/// Writes `input`, then reads everything until the node closes the connection.
async fn until_closed(addr: &str, input: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The node may close before all of a large input is written.
    let _ = stream.write_all(input).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(REPLY, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the node closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// Each reply is exactly what Redis would send, in both protocols, inline commands too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_exact_resp() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let addr = resp_addr(&cluster, 0);
    let mut s = TcpStream::connect(&addr).await.unwrap();
    exchange(&mut s, b"PING\r\n", b"+PONG\r\n").await;
    exchange(&mut s, b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", b"$2\r\nhi\r\n").await;
    exchange(
        &mut s,
        b"*2\r\n$3\r\nGET\r\n$4\r\nks:k\r\n",
        b"$3\r\nv:k\r\n",
    )
    .await;
    exchange(&mut s, b"GET ks:missing1\r\n", b"$-1\r\n").await;
    exchange(&mut s, b"DEL ks:k ks:j\r\n", b":2\r\n").await;
    exchange(
        &mut s,
        b"get nope:1\r\n",
        b"-KEYSPACE_NOT_FOUND keyspace `nope` not found\r\n",
    )
    .await;
    exchange(
        &mut s,
        b"MGET ks:missing2 ks:k\r\n",
        b"*2\r\n$-1\r\n$3\r\nv:k\r\n",
    )
    .await;
    exchange(
        &mut s,
        b"HELLO 4\r\n",
        b"-NOPROTO unsupported protocol version\r\n",
    )
    .await;
    // RESP3 from here on: nil is `_`, and HELLO's answer a map.
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"%8\r\n");
    // The rest of the map: 8 pairs, read away by asking for a marker after it.
    let mut rest = Vec::new();
    s.write_all(b"ECHO end-of-hello\r\n").await.unwrap();
    while !String::from_utf8_lossy(&rest).ends_with("end-of-hello\r\n") {
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(REPLY, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed");
        rest.extend_from_slice(&chunk[..n]);
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("$5\r\nproto\r\n:3\r\n"), "{rest}");
    exchange(&mut s, b"GET ks:missing3\r\n", b"_\r\n").await;
    exchange(&mut s, b"QUIT\r\n", b"+OK\r\n").await;
    let mut tail = Vec::new();
    tokio::time::timeout(REPLY, s.read_to_end(&mut tail))
        .await
        .unwrap()
        .unwrap();
    assert!(tail.is_empty(), "QUIT closes the connection");
    cluster.shutdown().await;
}

/// 100 commands written at once are answered in order, and the node reads each key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_written_at_once_is_answered_in_order() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let mut s = TcpStream::connect(resp_addr(&cluster, 0)).await.unwrap();
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..100 {
        let key = format!("ks:k{}", i % 10);
        input.extend(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).bytes());
        let value = format!("v:k{}", i % 10);
        expected.extend(format!("${}\r\n{value}\r\n", value.len()).bytes());
    }
    exchange(&mut s, &input, &expected).await;
    assert_eq!(cluster.sources[0].fetches(), 10);
    cluster.shutdown().await;
}

/// Malformed input — random bytes, a huge bulk or array length, an unterminated bulk —
/// gets `-ERR Protocol error: …` and a closed connection; the node goes on serving others,
/// including a connection that was open all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_refused_and_others_are_served() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let addr = resp_addr(&cluster, 0);
    let mut bystander = TcpStream::connect(&addr).await.unwrap();
    exchange(&mut bystander, b"PING\r\n", b"+PONG\r\n").await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge bulk length", b"*1\r\n$99999999999\r\n".to_vec()),
        (
            "negative bulk length",
            b"*2\r\n$3\r\nGET\r\n$-5\r\n".to_vec(),
        ),
        ("huge array", b"*99999999\r\n".to_vec()),
        ("unterminated bulk", b"*1\r\n$3\r\nGETxx".to_vec()),
        ("not a bulk", b"*1\r\n:12\r\n".to_vec()),
        (
            "overlong number",
            b"*11111111111111111111111111111\r\n".to_vec(),
        ),
        ("quote inline", b"SET \"a b\r\n".to_vec()),
        ("endless inline", vec![b'a'; 70 << 10]),
    ];
    for (what, input) in cases {
        let got = until_closed(&addr, &input).await;
        assert!(got.starts_with("-ERR Protocol error: "), "{what}: {got:?}");
    }
    // Seeded pseudo-random garbage: whatever it says, the node answers or closes.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut input = vec![b'*'];
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            input.push((seed & 0xff) as u8);
        }
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&input).await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(REPLY, s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "round {round}: the node closes or answers");
    }
    exchange(&mut bystander, b"GET ks:still\r\n", b"$7\r\nv:still\r\n").await;
    let mut fresh = TcpStream::connect(&addr).await.unwrap();
    exchange(&mut fresh, b"PING\r\n", b"+PONG\r\n").await;
    cluster.shutdown().await;
}

/// A command left half-sent closes its connection after `header_read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_command_times_out() {
    let cluster = resp_cluster(1, |_, c| {
        c.server.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let got = {
        let mut s = TcpStream::connect(resp_addr(&cluster, 0)).await.unwrap();
        s.write_all(b"*2\r\n$3\r\nGET\r\n$10\r\nks:").await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(REPLY, s.read_to_end(&mut got))
            .await
            .expect("closed within the timeout")
            .unwrap();
        got
    };
    assert!(got.is_empty());
    cluster.shutdown().await;
}

/// At `max_connections` the node stops accepting; a closed connection makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let cluster = resp_cluster(1, |_, c| {
        c.server.max_connections = 2;
    })
    .await;
    let addr = resp_addr(&cluster, 0);
    let mut first = TcpStream::connect(&addr).await.unwrap();
    let mut second = TcpStream::connect(&addr).await.unwrap();
    exchange(&mut first, b"PING\r\n", b"+PONG\r\n").await;
    exchange(&mut second, b"PING\r\n", b"+PONG\r\n").await;
    // The third waits in the kernel's backlog: no answer while two are open.
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(b"PING\r\n").await.unwrap();
    let mut reply = [0u8; 7];
    let early =
        tokio::time::timeout(Duration::from_millis(300), third.read_exact(&mut reply)).await;
    assert!(early.is_err(), "the third connection was served at the cap");
    drop(first);
    tokio::time::timeout(REPLY, third.read_exact(&mut reply))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    cluster.shutdown().await;
}

/// Shutdown closes open connections and the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections() {
    let mut cluster = resp_cluster(1, |_, _| {}).await;
    let addr = resp_addr(&cluster, 0);
    let mut open = TcpStream::connect(&addr).await.unwrap();
    exchange(&mut open, b"PING\r\n", b"+PONG\r\n").await;
    cluster.stop_node(0).await;
    let mut rest = Vec::new();
    tokio::time::timeout(REPLY, open.read_to_end(&mut rest))
        .await
        .expect("closed at shutdown")
        .unwrap();
    wait_until(REPLY, "the RESP listener refuses connections", || {
        let addr = addr.clone();
        async move { TcpStream::connect(addr).await.is_err() }
    })
    .await;
}

/// `redis-cli` reads and writes, and `--pipe` loads many commands at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-cli (scripts/test.sh installs redis-tools)"]
async fn redis_cli_reads_writes_and_pipes() {
    let cluster = resp_cluster(1, |_, _| {}).await;
    let port = cluster.node(0).resp_addr().unwrap().port();
    let run = move |args: &[&str]| {
        let out = redis_cli(port, args).output().expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (set, get, missing, error) = tokio::task::spawn_blocking(move || {
        (
            run(&["SET", "ks:cli", "from redis-cli"]),
            run(&["GET", "ks:cli"]),
            run(&["GET", "ks:missing-cli"]),
            run(&["GET", "nope:1"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(set, "OK");
    assert_eq!(get, "from redis-cli");
    assert_eq!(missing, "");
    assert!(error.contains("KEYSPACE_NOT_FOUND"), "{error}");

    let mut input = Vec::new();
    for i in 0..1000 {
        let key = format!("ks:piped{i}");
        let value = format!("value {i}");
        input.extend(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .bytes(),
        );
    }
    let summary = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = redis_cli(port, &["--pipe"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-cli --pipe runs");
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(summary.contains("errors: 0, replies: 1000"), "{summary}");
    let engine = cluster.node(0).engine();
    assert_eq!(
        engine.get("ks", "piped999").await.unwrap().as_deref(),
        Some(&b"value 999"[..])
    );
    cluster.shutdown().await;
}

/// `redis-cli` against the node's RESP port.
fn redis_cli(port: u16, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    cmd
}

/// With `[tls]`, RESP speaks TLS: a client trusting the cluster CA reads; plaintext gets
/// no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_speaks_tls_when_the_node_does() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let pki = distcache_testkit::tls::TestPki::new();
    let files = pki.issue(
        "node-0",
        &["localhost", "127.0.0.1"],
        distcache_testkit::tls::Usage::Node,
        distcache_testkit::tls::Validity::Current,
    );
    let ca = pki.ca().to_path_buf();
    let cluster = resp_cluster(1, move |_, c| {
        let mut tls = distcache::TlsConfig::new(files.cert.clone(), files.key.clone());
        tls.ca = Some(ca.clone());
        c.tls = Some(tls);
    })
    .await;
    let addr = resp_addr(&cluster, 0);

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.ca()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(b"GET ks:secure\r\n").await.unwrap();
    let mut reply = [0u8; 14];
    tokio::time::timeout(REPLY, tls.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply, b"$8\r\nv:secure\r\n");

    let got = until_closed(&addr, b"PING\r\n").await;
    assert!(!got.contains("PONG"), "plaintext was answered: {got:?}");
    cluster.shutdown().await;
}
