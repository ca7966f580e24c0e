//! TLS: a 3-node cluster over mutual TLS (data plane and raft), plaintext refused, peer and
//! raft routes refused without a client certificate from the cluster CA, a certificate from
//! another CA refused, `client_auth = required`, and certificate rotation while reads go on.
//! Certificates come from the test kit's CA (rcgen).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distcache::{ClientAuth, TlsConfig};
use distcache_testkit::tls::{TestPki, Usage, Validity};
use distcache_testkit::{CONVERGE, TestCluster, holds_within};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The test CA, as the cluster's.
struct Pki(TestPki);

impl Pki {
    fn new() -> Pki {
        Pki(TestPki::new())
    }

    fn ca_path(&self) -> PathBuf {
        self.0.ca().to_path_buf()
    }

    /// Issues a node certificate (server and client use) for 127.0.0.1 and `localhost`,
    /// valid now or expired long ago, as `<file>.pem` and `<file>-key.pem`.
    fn issue(&self, file: &str, expired: bool) -> (PathBuf, PathBuf) {
        let validity = if expired {
            Validity::Expired
        } else {
            Validity::Current
        };
        let files = self
            .0
            .issue(file, &["localhost", "127.0.0.1"], Usage::Node, validity);
        (files.cert, files.key)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.0.ca()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An https client trusting `trust`, presenting `identity` (cert, key) when given; records
/// the serial-bearing DER of every server certificate it sees.
fn https_client(
    trust: &Pki,
    identity: Option<(&Path, &Path)>,
    seen: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
) -> reqwest::Client {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(trust.roots()), provider())
        .build()
        .unwrap();
    let verifier = Arc::new(Recording {
        inner: verifier,
        seen: seen.unwrap_or_default(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some((cert, key)) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Verifies as WebPKI does and remembers what it was shown.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen.lock().unwrap().push(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `n` nodes, each with its own certificate from `pki`, the cluster CA and `client_auth`.
async fn tls_cluster(pki: &Pki, n: usize, client_auth: ClientAuth) -> TestCluster {
    let files: Vec<(PathBuf, PathBuf)> = (0..n)
        .map(|i| pki.issue(&format!("node-{i}"), false))
        .collect();
    let ca = pki.ca_path();
    TestCluster::builder(n)
        .edit(move |i, config| {
            let (cert, key) = files[i].clone();
            let mut tls = TlsConfig::new(cert, key);
            tls.ca = Some(ca.clone());
            tls.client_auth = client_auth;
            tls.reload_interval = Duration::from_millis(100);
            config.tls = Some(tls);
        })
        .build()
        .await
}

/// Three nodes over mutual TLS: the control plane elects a leader, a key owned elsewhere is
/// read through its owner, clients read over https; plaintext gets no answer; the peer and
/// raft routes refuse a client without a certificate from the cluster CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_speaks_mutual_tls() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, 3, ClientAuth::Optional).await;
    cluster.wait_leader().await;
    let key = cluster.key_owned_by("ks", 1, "tls:");
    let value = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(value.as_deref(), Some(format!("v:{key}").as_bytes()));
    assert_eq!(
        cluster.sources[1].fetches_of(&key),
        1,
        "loaded by the owner, over mTLS"
    );

    let addr = &cluster.addrs[0];
    let anonymous = https_client(&pki, None, None);
    let url = format!("https://{addr}/v1/keyspaces/ks/keys?key={key}");
    let response = anonymous.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap(),
        format!("v:{key}").as_bytes()
    );

    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plaintext got an answer: {plain:?}");

    for path in ["/_distcache/peer/hot", "/_distcache/raft/status"] {
        let response = anonymous
            .get(format!("https://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "PEER_CERTIFICATE_REQUIRED", "{path}: {body}");
    }
    let (cert, key_file) = pki.issue("peer", false);
    let peer = https_client(&pki, Some((&cert, &key_file)), None);
    let response = peer
        .get(format!("https://{addr}/_distcache/peer/hot"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // An expired client certificate from the cluster CA: refused too.
    let (cert, key_file) = pki.issue("expired-peer", true);
    let expired = https_client(&pki, Some((&cert, &key_file)), None);
    let refused = expired.get(format!("https://{addr}/healthz")).send().await;
    assert!(
        refused.is_err(),
        "an expired client certificate was accepted"
    );

    // A client certificate from another CA: the handshake is refused.
    let other = Pki::new();
    let (cert, key_file) = other.issue("intruder", false);
    let intruder = https_client(&pki, Some((&cert, &key_file)), None);
    let refused = intruder.get(format!("https://{addr}/healthz")).send().await;
    assert!(
        refused.is_err(),
        "a foreign client certificate was accepted"
    );
    cluster.shutdown().await;
}

/// A server certificate that expired, or from another CA, is refused by a client of the
/// cluster CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_foreign_server_certificates_are_refused() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("old", true);
    let expired = TestCluster::builder(1)
        .local_catalogs()
        .edit(move |_, c| c.tls = Some(TlsConfig::new(cert.clone(), key.clone())))
        .build()
        .await;
    let client = https_client(&pki, None, None);
    let err = client
        .get(format!("https://{}/healthz", expired.addrs[0]))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{:?}", anyhow_chain(&err));
    assert!(chain.contains("Expired"), "{chain}");
    expired.shutdown().await;

    let other = Pki::new();
    let (cert, key) = other.issue("stranger", false);
    let foreign = TestCluster::builder(1)
        .local_catalogs()
        .edit(move |_, c| c.tls = Some(TlsConfig::new(cert.clone(), key.clone())))
        .build()
        .await;
    let err = client
        .get(format!("https://{}/healthz", foreign.addrs[0]))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{:?}", anyhow_chain(&err));
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    foreign.shutdown().await;
}

/// Every error in `err`'s source chain, outermost first.
fn anyhow_chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(format!("{e:?}"));
        next = e.source();
    }
    out
}

/// With `client_auth = required`, a connection without a client certificate is refused at
/// the handshake; with one from the cluster CA it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_auth_refuses_anonymous_connections() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, 1, ClientAuth::Required).await;
    let addr = &cluster.addrs[0];
    let anonymous = https_client(&pki, None, None);
    let refused = anonymous
        .get(format!("https://{addr}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "served without a client certificate");
    let (cert, key) = pki.issue("app", false);
    let app = https_client(&pki, Some((&cert, &key)), None);
    let response = app
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    cluster.shutdown().await;
}

/// New certificates written over the files while reads go on: every read succeeds, peers
/// keep reading through each other, and new connections are served with the new
/// certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_while_reads_go_on() {
    let pki = Pki::new();
    let cluster = Arc::new(tls_cluster(&pki, 3, ClientAuth::Optional).await);
    cluster.wait_leader().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = {
        let (cluster, stop) = (Arc::clone(&cluster), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut done = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || done < 50 {
                for i in 0..3 {
                    let key = format!("rotate:{done}:{i}");
                    let value = cluster.node(i).engine().get("ks", &key).await;
                    assert_eq!(
                        value.unwrap().as_deref(),
                        Some(format!("v:{key}").as_bytes()),
                        "read {done} through node {i}"
                    );
                }
                done += 1;
            }
            done
        })
    };

    let seen = Arc::new(Mutex::new(Vec::new()));
    let before = {
        let client = https_client(&pki, None, Some(Arc::clone(&seen)));
        client
            .get(format!("https://{}/healthz", cluster.addrs[0]))
            .send()
            .await
            .unwrap();
        seen.lock().unwrap().last().cloned().unwrap()
    };
    for i in 0..3 {
        pki.issue(&format!("node-{i}"), false);
    }
    let renewed = holds_within(CONVERGE, Duration::from_millis(50), || {
        let seen = Arc::clone(&seen);
        let url = format!("https://{}/healthz", cluster.addrs[0]);
        let client = https_client(&pki, None, Some(Arc::clone(&seen)));
        let before = before.clone();
        async move {
            let answered = client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            let last = seen.lock().unwrap().last().cloned();
            answered && last.is_some_and(|cert| cert != before)
        }
    })
    .await;
    assert!(renewed, "node 0 never served its renewed certificate");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let done = reads.await.expect("no read failed");
    assert!(done >= 50, "{done} rounds of reads");
    let cluster = Arc::into_inner(cluster).expect("the reads are done");
    cluster.shutdown().await;
}

/// A node whose certificate does not name the address its peers dial is refused by them:
/// the other node's probes fail at the handshake and it never enters that node's ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_misnamed_certificate_is_refused() {
    let pki = Pki::new();
    let good = pki.issue("node-0", false);
    let misnamed = pki.0.issue(
        "node-1",
        &["elsewhere.invalid"],
        Usage::Node,
        Validity::Current,
    );
    let files = [good, (misnamed.cert, misnamed.key)];
    let ca = pki.ca_path();
    let mut cluster = TestCluster::builder(2)
        .started(1)
        .local_catalogs()
        .edit(move |i, config| {
            let (cert, key) = files[i].clone();
            let mut tls = TlsConfig::new(cert, key);
            tls.ca = Some(ca.clone());
            config.tls = Some(tls);
            // Node 1 waits this long for node 0 to take it in, which never happens.
            config.cluster.bootstrap_timeout = Duration::from_secs(1);
        })
        .build()
        .await;
    cluster.start_node(1).await;
    let node_1 = cluster.addrs[1].clone();
    let failing = holds_within(CONVERGE, Duration::from_millis(20), || {
        let status = cluster
            .node(0)
            .cluster()
            .members()
            .into_iter()
            .find(|m| m.addr == node_1);
        std::future::ready(status.is_some_and(|m| m.consecutive_failures >= 3 && !m.healthy))
    })
    .await;
    assert!(
        failing,
        "node 0 kept reaching a peer whose certificate does not name it"
    );
    assert_eq!(cluster.node(0).cluster().ring_ids(), ["node-0"]);
    cluster.shutdown().await;
}
