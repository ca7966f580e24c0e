//! An embedding program that finds its peers its own way: a [`Discovery`] over the program's
//! own registry (here an in-process list the nodes register in; in a real program a service
//! catalogue, a database table, a gossip layer). Run it with
//! `cargo run -p distcache --example custom_discovery`.
//!
//! Two nodes start on loopback, each registering its address and following the registry; they
//! find each other and share one ring. Then one deregisters and stops, and the other's ring
//! shrinks back to itself.

use std::sync::Arc;
use std::time::Duration;

use distcache::{Discovery, LocalCatalog, Node, NodeConfig, async_trait};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The program's registry: the addresses of the nodes that run now.
#[derive(Clone)]
struct Registry(watch::Sender<Vec<String>>);

impl Registry {
    fn register(&self, addr: &str) {
        self.0.send_modify(|list| list.push(addr.to_owned()));
    }

    fn deregister(&self, addr: &str) {
        self.0.send_modify(|list| list.retain(|a| a != addr));
    }
}

/// distcache's view of the registry: the trait's four methods, and a name for logs.
#[async_trait]
impl Discovery for Registry {
    async fn start(&self) -> distcache::Result<()> {
        Ok(())
    }

    async fn stop(&self) -> distcache::Result<()> {
        Ok(())
    }

    async fn peers(&self) -> distcache::Result<Vec<String>> {
        Ok(self.0.borrow().clone())
    }

    fn changes(&self) -> watch::Receiver<Vec<String>> {
        self.0.subscribe()
    }

    fn describe(&self) -> String {
        "the example's registry".into()
    }
}

async fn start_node(id: &str, registry: &Registry) -> Result<Node, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    registry.register(&listener.local_addr()?.to_string());
    let mut config = NodeConfig {
        id: id.into(),
        ..NodeConfig::default()
    };
    config.cluster.probe_interval = Duration::from_millis(200);
    let node = Node::builder(config)
        // Each node keeps its own keyspace definitions: no control plane to form here.
        .catalog(Arc::new(LocalCatalog::new()))
        .discovery(Arc::new(registry.clone()))
        .start(listener)
        .await?;
    Ok(node)
}

async fn wait_for_ring(node: &Node, members: usize) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.cluster().ring_members().len() != members {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{} never saw {members} members", node.id()).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry(watch::Sender::new(Vec::new()));
    let a = start_node("a", &registry).await?;
    let b = start_node("b", &registry).await?;
    wait_for_ring(&a, 2).await?;
    println!("a sees ring {:?}", a.cluster().ring_ids());

    registry.deregister(b.addr());
    b.shutdown().await?;
    wait_for_ring(&a, 1).await?;
    println!("after b left, a sees ring {:?}", a.cluster().ring_ids());
    a.shutdown().await?;
    Ok(())
}
