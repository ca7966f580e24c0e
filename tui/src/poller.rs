//! Polls every node concurrently, once per interval, through `distcache::client`, and sends
//! what it saw as a [`Snapshot`]. A node that stops answering stays in the list, marked down,
//! so the dashboard shows it red instead of forgetting it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use distcache::client::Client;
use tokio::sync::mpsc;

use crate::model::{NodeView, Snapshot};

/// Where and how to poll.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Nodes to ask first (any answers with the members).
    pub endpoints: Vec<String>,
    /// Bearer token, if the cluster needs one.
    pub token: Option<String>,
    /// Time between polls.
    pub interval: Duration,
}

fn client(addr: &str, token: &Option<String>, timeout: Duration) -> Option<Client> {
    Client::new([addr])
        .ok()
        .map(|c| c.with_token(token.clone()).with_timeout(timeout))
}

/// Polls until the receiver is gone.
pub async fn run(config: PollConfig, out: mpsc::Sender<Snapshot>) {
    let started = Instant::now();
    let timeout = config
        .interval
        .clamp(Duration::from_millis(500), Duration::from_secs(3));
    // Every address ever seen, with the node's id once known.
    let mut known: BTreeMap<String, Option<String>> = BTreeMap::new();
    for e in &config.endpoints {
        known.insert(e.trim().trim_start_matches("http://").to_owned(), None);
    }
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Learn the members from any node that answers.
        for addr in known.keys().cloned().collect::<Vec<_>>() {
            let Some(c) = client(&addr, &config.token, timeout) else {
                continue;
            };
            if let Ok(members) = c.peers().await {
                for m in members {
                    let entry = known.entry(m.addr.clone()).or_default();
                    if m.id.is_some() {
                        *entry = m.id;
                    }
                }
                break;
            }
        }
        let polls = known.iter().map(|(addr, id)| {
            let token = config.token.clone();
            async move { poll_node(addr.clone(), id.clone(), token, timeout).await }
        });
        let mut nodes: Vec<NodeView> = futures::future::join_all(polls).await;
        for n in &nodes {
            if n.up {
                known.insert(n.addr.clone(), Some(n.id.clone()));
            }
        }
        // An endpoint that is also a member under another address appears once.
        let ids: Vec<String> = nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| n.id.clone())
            .collect();
        nodes.retain(|n| n.up || !ids.contains(&n.id) || n.id == n.addr);
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|a, b| a.id == b.id && a.addr == b.addr);
        let snapshot = Snapshot {
            at: started.elapsed().as_secs_f64(),
            nodes,
        };
        if out.send(snapshot).await.is_err() {
            return;
        }
    }
}

async fn poll_node(
    addr: String,
    id: Option<String>,
    token: Option<String>,
    timeout: Duration,
) -> NodeView {
    let down = |error: String| NodeView {
        id: id.clone().unwrap_or_else(|| addr.clone()),
        addr: addr.clone(),
        up: false,
        ready: false,
        error: Some(error),
        cluster: None,
        keyspaces: Vec::new(),
    };
    let Some(c) = client(&addr, &token, timeout) else {
        return down("not an address".into());
    };
    let health = match c.health().await {
        Ok(h) => h,
        Err(e) => return down(e.to_string()),
    };
    let (cluster, keyspaces) = tokio::join!(c.cluster(), c.stats());
    NodeView {
        id: health.node_id,
        addr,
        up: true,
        ready: health.ready,
        error: None,
        cluster: cluster.ok(),
        keyspaces: keyspaces.unwrap_or_default(),
    }
}
