//! Finding the other nodes: the [`Discovery`] trait, its providers, and `[discovery]`.
//!
//! A provider answers the addresses (`host:port`) of the cluster's nodes, possibly including
//! this node's own, and publishes changes. Who is actually alive, and who each address is, the
//! cluster learns by probing (see `cluster`), so a provider may answer too much (a node that
//! is starting or stopping) without harm; answering too little only delays a peer.
//!
//! - `discovery/static_list.rs`: a fixed list ([`StaticDiscovery`]);
//! - `discovery/dns.rs`: A/AAAA or SRV records, re-resolved on an interval ([`DnsDiscovery`]);
//! - `discovery/kubernetes.rs`: pods by label through the Kubernetes API, listed then watched
//!   ([`KubernetesDiscovery`]);
//! - `discovery/nats.rs`: nodes announcing themselves on a NATS subject
//!   ([`NatsDiscovery`](nats::NatsDiscovery));
//! - `discovery/config.rs`: the `[discovery]` table ([`DiscoveryConfig`]).
//!
//! An embedding program may bring its own provider (`NodeBuilder::discovery`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Problems, Result};

mod config;
mod dns;
mod kubernetes;
mod static_list;

/// The provider's name where it is re-exported at the crate root.
pub use config::Provider as DiscoveryProvider;
pub use config::{DiscoveryConfig, DnsConfig, KubernetesConfig, Provider};
pub use dns::DnsDiscovery;
pub use kubernetes::KubernetesDiscovery;
pub use static_list::StaticDiscovery;

pub mod nats;

/// A source of peer addresses.
#[async_trait]
pub trait Discovery: Send + Sync + 'static {
    /// Starts the provider (connect, register this node, first lookup). Called once before
    /// `peers`.
    async fn start(&self) -> Result<()>;

    /// Stops the provider (deregister, disconnect, end background work).
    async fn stop(&self) -> Result<()>;

    /// The addresses known now.
    async fn peers(&self) -> Result<Vec<String>>;

    /// The latest address list, updated whenever it changes.
    fn changes(&self) -> watch::Receiver<Vec<String>>;

    /// Where the addresses come from, for logs and errors (`dns distcache.local`); each
    /// member's discovery source in `distcache peers`.
    fn describe(&self) -> String {
        "custom".into()
    }
}

/// The provider `config` names: the static one over `peers`, or a DNS, Kubernetes or NATS
/// provider, for the node `id` reached at `addr` (the DNS provider's default port; what the
/// NATS provider announces).
pub fn from_config(
    config: &DiscoveryConfig,
    peers: &[String],
    id: &str,
    addr: &str,
) -> Result<Arc<dyn Discovery>> {
    let own_port = addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(0);
    Ok(match config.provider {
        Provider::Static => Arc::new(StaticDiscovery::new(peers.iter().map(|p| p.trim()))?),
        Provider::Dns => Arc::new(DnsDiscovery::new(&config.dns, own_port)?),
        Provider::Kubernetes => Arc::new(KubernetesDiscovery::new(config.kubernetes.clone())?),
        Provider::Nats => Arc::new(nats::NatsDiscovery::new(config.nats.clone(), id, addr)?),
    })
}

/// The background task of a provider (a re-resolve loop, a watch): replaced when the provider
/// starts again, aborted when it stops or is dropped.
#[derive(Debug, Default)]
pub(crate) struct Background(std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>);

impl Background {
    /// Runs `task` from now on, aborting the one before it.
    pub(crate) fn set(&self, task: tokio::task::JoinHandle<()>) {
        let old = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Aborts the task, if any.
    pub(crate) fn stop(&self) {
        let task = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks that `addr` looks like `host:port`.
pub(crate) fn check_addr(addr: &str) -> Result<()> {
    let bad = || {
        Error::InvalidConfig({
            let mut p = Problems::new();
            p.push(
                "peers",
                format!("`{addr}` is not a host:port address (e.g. 10.0.0.5:3320)"),
            );
            p
        })
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

/// Publishes `addrs` (sorted, without duplicates) when they differ from what `sender` holds;
/// whether they did.
pub(crate) fn publish(sender: &watch::Sender<Vec<String>>, mut addrs: Vec<String>) -> bool {
    addrs.sort();
    addrs.dedup();
    sender.send_if_modified(|current| {
        if *current == addrs {
            false
        } else {
            *current = addrs;
            true
        }
    })
}
