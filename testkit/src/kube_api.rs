//! [`FakeKubeApi`]: the part of the Kubernetes API the discovery provider uses — list and
//! watch of a namespace's pods, filtered by a label selector — over plain HTTP on loopback,
//! with a kubeconfig that points at it. No API server runs here; this is the one stand-in.
//!
//! Pods are JSON objects as the API sends them. Each change bumps the resourceVersion and is
//! streamed to open watches; [`FakeKubeApi::expire`] forgets the history, so an open watch
//! gets a 410 Gone error event and a watch that asks for an old version is refused with one.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// One pod as the fake API knows it.
#[derive(Debug, Clone)]
struct FakePod {
    namespace: String,
    labels: BTreeMap<String, String>,
    addr: std::net::SocketAddr,
    port_name: String,
    phase: String,
    ready: bool,
    version: u64,
}

#[derive(Clone)]
enum Change {
    Event(u64, &'static str, Value),
    /// The history before this version is gone: open watches end with 410.
    Expired,
}

#[derive(Default)]
struct Store {
    pods: BTreeMap<String, FakePod>,
    version: u64,
    /// Every change since `expired_before`, for watches that resume from a version.
    history: Vec<(u64, &'static str, Value, String)>,
    expired_before: u64,
}

struct Shared {
    store: Mutex<Store>,
    changes: broadcast::Sender<Change>,
    lists: AtomicUsize,
    watches: AtomicUsize,
}

/// A fake Kubernetes API serving pods, and a kubeconfig for it (namespace `distcache`).
pub struct FakeKubeApi {
    shared: Arc<Shared>,
    url: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

/// The namespace of the kubeconfig's context.
pub const NAMESPACE: &str = "distcache";

impl FakeKubeApi {
    /// Serves on a free loopback port.
    pub async fn start() -> FakeKubeApi {
        let (changes, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changes,
            lists: AtomicUsize::new(0),
            watches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/api/v1/namespaces/{namespace}/pods", get(pods))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(&url)).unwrap();
        FakeKubeApi {
            shared,
            url,
            kubeconfig,
            _dir: dir,
            task,
        }
    }

    /// The API's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig file whose current context is this API, namespace `distcache`.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Adds or updates pod `name` in namespace `distcache`, labelled `app=distcache`, reached
    /// at `addr` (its IP and its container port named `http`), Running, Ready or not.
    pub fn set_pod(&self, name: &str, addr: &str, ready: bool) {
        self.set_pod_with(name, addr, "Running", ready);
    }

    /// Like [`set_pod`](Self::set_pod) with any phase (`Pending`, `Running`, `Succeeded`…).
    pub fn set_pod_with(&self, name: &str, addr: &str, phase: &str, ready: bool) {
        let pod = FakePod {
            namespace: NAMESPACE.into(),
            labels: BTreeMap::from([("app".to_owned(), "distcache".to_owned())]),
            addr: addr.parse().expect("an ip:port address"),
            port_name: "http".into(),
            phase: phase.into(),
            ready,
            version: 0,
        };
        let mut store = self.shared.store.lock().unwrap();
        store.version += 1;
        let version = store.version;
        let kind = if store.pods.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let pod = FakePod { version, ..pod };
        let json = pod_json(name, &pod);
        store.pods.insert(name.to_owned(), pod);
        store
            .history
            .push((version, kind, json.clone(), NAMESPACE.into()));
        let _ = self.shared.changes.send(Change::Event(version, kind, json));
    }

    /// Deletes pod `name`.
    pub fn delete_pod(&self, name: &str) {
        let mut store = self.shared.store.lock().unwrap();
        let Some(mut pod) = store.pods.remove(name) else {
            return;
        };
        store.version += 1;
        pod.version = store.version;
        let json = pod_json(name, &pod);
        let version = store.version;
        store
            .history
            .push((version, "DELETED", json.clone(), NAMESPACE.into()));
        let _ = self
            .shared
            .changes
            .send(Change::Event(version, "DELETED", json));
    }

    /// Forgets the history (as etcd compaction does): open watches end with a 410 Gone
    /// event, and a watch from any version seen so far is answered 410 Gone, so clients
    /// list again.
    pub fn expire(&self) {
        let mut store = self.shared.store.lock().unwrap();
        store.version += 1;
        store.expired_before = store.version;
        store.history.clear();
        let _ = self.shared.changes.send(Change::Expired);
    }

    /// List requests served so far.
    pub fn lists(&self) -> usize {
        self.shared.lists.load(Ordering::Relaxed)
    }

    /// Watch requests served so far.
    pub fn watches(&self) -> usize {
        self.shared.watches.load(Ordering::Relaxed)
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn kubeconfig_text(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NAMESPACE}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
    )
}

fn pod_json(name: &str, pod: &FakePod) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": pod.namespace,
            "uid": format!("uid-{name}"),
            "labels": pod.labels,
            "resourceVersion": pod.version.to_string(),
        },
        "spec": {
            "containers": [{
                "name": "distcache",
                "image": "distcache:test",
                "ports": [{"name": pod.port_name, "containerPort": pod.addr.port(), "protocol": "TCP"}],
            }],
        },
        "status": {
            "phase": pod.phase,
            "podIP": pod.addr.ip().to_string(),
            "conditions": [{"type": "Ready", "status": if pod.ready { "True" } else { "False" }}],
        },
    })
}

/// Whether `labels` match a selector of `key=value` terms joined by commas.
fn matches(selector: Option<&str>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|s| {
        s.split(',').filter(|t| !t.trim().is_empty()).all(|term| {
            term.split_once('=')
                .is_some_and(|(k, v)| labels.get(k.trim()).map(String::as_str) == Some(v.trim()))
        })
    })
}

fn gone(version: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {version}"), "reason": "Expired", "code": 410,
    })
}

async fn pods(
    State(shared): State<Arc<Shared>>,
    UrlPath(namespace): UrlPath<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let selector = query.get("labelSelector").cloned();
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watching {
        shared.lists.fetch_add(1, Ordering::Relaxed);
        let store = shared.store.lock().unwrap();
        let items: Vec<Value> = store
            .pods
            .iter()
            .filter(|(_, p)| p.namespace == namespace && matches(selector.as_deref(), &p.labels))
            .map(|(name, p)| pod_json(name, p))
            .collect();
        let body = json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": store.version.to_string()},
            "items": items,
        });
        return axum::Json(body).into_response();
    }
    shared.watches.fetch_add(1, Ordering::Relaxed);
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut changes = shared.changes.subscribe();
    let backlog: Result<Vec<(u64, &'static str, Value)>, ()> = {
        let store = shared.store.lock().unwrap();
        if from < store.expired_before {
            Err(())
        } else {
            Ok(store
                .history
                .iter()
                .filter(|(v, _, _, ns)| *v > from && *ns == namespace)
                .map(|(v, k, o, _)| (*v, *k, o.clone()))
                .collect())
        }
    };
    let line = |kind: &str, object: &Value| {
        let mut text = json!({"type": kind, "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    };
    tokio::spawn(async move {
        let Ok(backlog) = backlog else {
            let _ = tx.send(line("ERROR", &gone(&from.to_string()))).await;
            return;
        };
        let mut last = from;
        for (version, kind, object) in backlog {
            if tx.send(line(kind, &object)).await.is_err() {
                return;
            }
            last = version;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let change = tokio::select! {
                c = changes.recv() => c,
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            };
            match change {
                Ok(Change::Event(version, kind, object)) if version > last => {
                    let labels = object["metadata"]["labels"].clone();
                    let labels: BTreeMap<String, String> =
                        serde_json::from_value(labels).unwrap_or_default();
                    last = version;
                    if matches(selector.as_deref(), &labels)
                        && tx.send(line(kind, &object)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Change::Event(..)) => {}
                Ok(Change::Expired) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(line("ERROR", &gone(&last.to_string()))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .unwrap()
}
