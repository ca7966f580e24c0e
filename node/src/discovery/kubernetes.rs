//! The Kubernetes provider: the pods of a namespace that match a label selector, each at its
//! pod IP and the container port of the configured name, counting only Running and Ready pods
//! (unless `include_not_ready`) that are not being deleted.
//!
//! The pods are listed once, then watched from the list's resourceVersion; a watch that ends
//! resumes from the last version seen, one answered with 410 Gone (the version is too old)
//! lists again, and errors back off (`BACKOFF_START` doubling up to `BACKOFF_MAX`). The
//! client is the service account's inside a cluster, else the kubeconfig's (`kubeconfig`,
//! `KUBECONFIG`, `~/.kube/config`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use super::config::KubernetesConfig;
use super::{Discovery, publish};
use crate::error::{Error, Problems, Result};

/// The first pause after a failed list or watch.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// The longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How long one watch request lasts before the server ends it (it is then resumed).
const WATCH_TIMEOUT_SECS: u32 = 290;

/// Peers from the Kubernetes API: pods by label, listed then watched.
pub struct KubernetesDiscovery {
    config: KubernetesConfig,
    addrs: watch::Sender<Vec<String>>,
    describe: Mutex<String>,
    task: super::Background,
}

impl KubernetesDiscovery {
    /// A provider for `config` (checked: every problem is named); the client is made and the
    /// pods first listed by `start`.
    pub fn new(config: KubernetesConfig) -> Result<Self> {
        let problems = config.problems();
        if !problems.is_empty() {
            let mut prefixed = Problems::new();
            prefixed.extend_prefixed("discovery.kubernetes", problems);
            return Err(Error::InvalidConfig(prefixed));
        }
        let describe = describe(config.namespace.as_deref().unwrap_or("(own)"), &config);
        Ok(KubernetesDiscovery {
            config,
            addrs: watch::Sender::new(Vec::new()),
            describe: Mutex::new(describe),
            task: super::Background::default(),
        })
    }

    async fn client(&self) -> Result<kube::Client> {
        let unavailable =
            |what: &str, e: &dyn std::fmt::Display| Error::Unavailable(format!("{what}: {e}"));
        let config = match &self.config.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|e| {
                    unavailable(&format!("cannot read kubeconfig {}", path.display()), &e)
                })?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| {
                        unavailable(&format!("kubeconfig {} is unusable", path.display()), &e)
                    })?
            }
            None => kube::Config::infer().await.map_err(|e| {
                unavailable(
                    "no Kubernetes configuration (not in a cluster, no usable KUBECONFIG)",
                    &e,
                )
            })?,
        };
        kube::Client::try_from(config)
            .map_err(|e| unavailable("cannot build the Kubernetes client", &e))
    }
}

fn describe(namespace: &str, config: &KubernetesConfig) -> String {
    format!(
        "kubernetes pods {} in {namespace} (port {})",
        config.selector, config.port_name
    )
}

/// Where the watch loop keeps the pods it knows and publishes their addresses.
struct Pods {
    api: Api<Pod>,
    config: KubernetesConfig,
    describe: String,
    /// Each pod's address (`None`: the pod matches but does not count now).
    known: BTreeMap<String, Option<String>>,
    addrs: watch::Sender<Vec<String>>,
}

impl Pods {
    /// Lists the pods, replaces what is known, and returns the list's resourceVersion.
    async fn list(&mut self) -> std::result::Result<String, kube::Error> {
        let params = ListParams::default().labels(&self.config.selector);
        let list = self.api.list(&params).await?;
        self.known = list
            .items
            .iter()
            .filter_map(|pod| Some((pod.metadata.name.clone()?, address(pod, &self.config))))
            .collect();
        self.publish();
        Ok(list.metadata.resource_version.unwrap_or_default())
    }

    fn apply(&mut self, pod: &Pod, deleted: bool) {
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        if deleted {
            self.known.remove(&name);
        } else {
            self.known.insert(name, address(pod, &self.config));
        }
        self.publish();
    }

    fn publish(&self) {
        let addrs: Vec<String> = self.known.values().flatten().cloned().collect();
        if publish(&self.addrs, addrs) {
            tracing::info!(source = %self.describe, peers = ?self.addrs.borrow(), "discovered peers changed");
        }
    }

    /// Watches from `version` until the watch must be listed again (410 Gone) or stops.
    async fn follow(mut self, mut version: String) {
        let mut backoff = BACKOFF_START;
        loop {
            match self.watch_once(&mut version).await {
                Ok(Watched::Ended) => backoff = BACKOFF_START,
                Ok(Watched::Gone) => {
                    tracing::info!(source = %self.describe, "watch version expired (410 Gone); listing again");
                    loop {
                        match self.list().await {
                            Ok(v) => {
                                version = v;
                                backoff = BACKOFF_START;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(source = %self.describe, error = %e, retry_in = ?backoff, "listing pods failed; keeping the last known peers");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(BACKOFF_MAX);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(source = %self.describe, error = %e, retry_in = ?backoff, "watching pods failed; keeping the last known peers");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One watch request, applying its events and advancing `version`.
    async fn watch_once(&mut self, version: &mut String) -> std::result::Result<Watched, String> {
        let params = WatchParams::default()
            .labels(&self.config.selector)
            .timeout(WATCH_TIMEOUT_SECS);
        let stream = match self.api.watch(&params, version).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => return Ok(Watched::Gone),
            Err(e) => return Err(e.to_string()),
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = match stream.try_next().await {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(Watched::Ended),
                Err(e) => return Err(e.to_string()),
            };
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                    advance(version, &pod);
                    self.apply(&pod, false);
                }
                WatchEvent::Deleted(pod) => {
                    advance(version, &pod);
                    self.apply(&pod, true);
                }
                WatchEvent::Bookmark(mark) => *version = mark.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => return Ok(Watched::Gone),
                WatchEvent::Error(status) => {
                    return Err(format!("watch error {}: {}", status.code, status.message));
                }
            }
        }
    }
}

/// How a watch request ended without an error.
enum Watched {
    /// The server closed it (its timeout): resume from the last version.
    Ended,
    /// The version is too old: list again.
    Gone,
}

fn advance(version: &mut String, pod: &Pod) {
    if let Some(v) = pod
        .metadata
        .resource_version
        .as_ref()
        .filter(|v| !v.is_empty())
    {
        v.clone_into(version);
    }
}

/// The address `pod` counts at: Running, Ready (unless `include_not_ready`), not being
/// deleted, with an IP and a container port named `port_name`.
fn address(pod: &Pod, config: &KubernetesConfig) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready && !config.include_not_ready {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
    let port = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(config.port_name.as_str()))
        .and_then(|p| u16::try_from(p.container_port).ok());
    let Some(port) = port else {
        tracing::debug!(pod = ?pod.metadata.name, port_name = %config.port_name, "pod has no container port of that name; skipped");
        return None;
    };
    Some(SocketAddr::new(ip, port).to_string())
}

#[async_trait]
impl Discovery for KubernetesDiscovery {
    /// Makes the client and lists the pods (failing when the API cannot be reached or
    /// refuses: a node that cannot see its cluster must not form one alone), then watches
    /// in the background.
    async fn start(&self) -> Result<()> {
        let client = self.client().await?;
        let namespace = self
            .config
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let describe = describe(&namespace, &self.config);
        *self.describe.lock().unwrap_or_else(|e| e.into_inner()) = describe.clone();
        let mut pods = Pods {
            api: Api::namespaced(client, &namespace),
            config: self.config.clone(),
            describe: describe.clone(),
            known: BTreeMap::new(),
            addrs: self.addrs.clone(),
        };
        let version = pods
            .list()
            .await
            .map_err(|e| Error::Unavailable(format!("{describe}: listing pods failed: {e}")))?;
        tracing::info!(source = %describe, peers = ?self.addrs.borrow(), "listed pods");
        let task = tokio::spawn(pods.follow(version));
        self.task.set(task);
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        self.task.stop();
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<String>> {
        Ok(self.addrs.borrow().clone())
    }

    fn changes(&self) -> watch::Receiver<Vec<String>> {
        self.addrs.subscribe()
    }

    fn describe(&self) -> String {
        self.describe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Shared for the tests: the address rules on a pod built in code.
#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodSpec, PodStatus};

    fn pod(phase: &str, ready: bool, port_name: &str) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "distcache".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(port_name.into()),
                        container_port: 3320,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: Some("10.0.0.7".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    /// Only Running, Ready pods with the named port count; `include_not_ready` lets a
    /// running pod that is not ready yet count too.
    #[test]
    fn which_pods_count() {
        let config = KubernetesConfig::default();
        assert_eq!(
            address(&pod("Running", true, "http"), &config).as_deref(),
            Some("10.0.0.7:3320")
        );
        assert_eq!(address(&pod("Pending", true, "http"), &config), None);
        assert_eq!(address(&pod("Running", false, "http"), &config), None);
        assert_eq!(address(&pod("Running", true, "metrics"), &config), None);
        let lenient = KubernetesConfig {
            include_not_ready: true,
            ..KubernetesConfig::default()
        };
        assert_eq!(
            address(&pod("Running", false, "http"), &lenient).as_deref(),
            Some("10.0.0.7:3320")
        );
        let mut deleting = pod("Running", true, "http");
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert_eq!(address(&deleting, &config), None);
    }
}
