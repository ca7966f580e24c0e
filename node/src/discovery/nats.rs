//! The NATS discovery provider: nodes find each other through a subject on a NATS server.
//!
//! Protocol (small JSON messages, see `nats/peers.rs`): at start a node sends a **request** on
//! the subject, which announces it and asks the others to answer on its reply inbox, so it
//! learns every live node within `request_timeout`. Every node **announces** itself again each
//! `announce_interval`; a node not heard from for `peer_timeout` is dropped; a node that stops
//! cleanly sends **leave** and is dropped at once. Malformed messages are logged and ignored.
//!
//! Losing NATS does not empty the list: while disconnected the last known nodes are kept and
//! silence does not count against them. The client reconnects with backoff (`reconnect_wait`,
//! doubling up to 8 times it), its subscriptions are restored, and the node then announces
//! itself and asks again, so the lists of every node converge once they are all back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::{Client, Event, Subscriber};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::discovery::Discovery;
use crate::error::{Error, Result};

mod config;
mod connect;
mod peers;

pub use config::NatsConfig;

use connect::{connect, with_causes};
use peers::{Message, Op, Table};

/// A node another node heard from over NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsPeer {
    /// Its node id.
    pub id: String,
    /// Its advertised `host:port`.
    pub addr: String,
    /// How long since it last announced itself.
    pub silent_for: Duration,
}

/// Finds the cluster's nodes through a NATS subject; see the module docs for the protocol.
///
/// # Example
/// A node that finds its peers through NATS instead of a `peers` list:
/// ```no_run
/// use std::sync::Arc;
/// use distcache::{NatsConfig, NatsDiscovery, Node, NodeConfig};
///
/// # async fn run() -> distcache::Result<()> {
/// let listener = tokio::net::TcpListener::bind("10.0.0.5:3320").await.expect("bind");
/// let config = NodeConfig {
///     id: "node-a".into(),
///     listen: "10.0.0.5:3320".into(),
///     ..NodeConfig::default()
/// };
/// let nats = NatsConfig::new(["nats://nats-0.nats:4222", "nats://nats-1.nats:4222"]);
/// let discovery = NatsDiscovery::new(nats, &config.id, "10.0.0.5:3320")?;
/// let node = Node::builder(config)
///     .discovery(Arc::new(discovery))
///     .start(listener)
///     .await?;
/// # node.shutdown().await }
/// ```
pub struct NatsDiscovery {
    shared: Arc<Shared>,
    running: tokio::sync::Mutex<Option<Running>>,
}

/// What the provider and its background task share.
struct Shared {
    config: NatsConfig,
    id: String,
    addr: String,
    table: std::sync::Mutex<Table>,
    list: watch::Sender<Vec<String>>,
    connected: AtomicBool,
}

/// A started provider.
struct Running {
    client: Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl NatsDiscovery {
    /// A provider for the node `id` reached at `addr` (its advertised `host:port`), with
    /// `config`; refused, naming every bad field, when the configuration is not valid.
    pub fn new(config: NatsConfig, id: impl Into<String>, addr: impl Into<String>) -> Result<Self> {
        let (id, addr) = (id.into(), addr.into());
        let mut problems = config.problems();
        if id.trim().is_empty() {
            problems.push("id", "the node needs an id to announce");
        }
        if crate::discovery::check_addr(&addr).is_err() {
            problems.push(
                "advertise",
                format!("`{addr}` is not a host:port address to announce"),
            );
        }
        problems.into_result(Error::InvalidConfig)?;
        let table = Table::new(&id, &addr);
        let list = watch::Sender::new(table.addrs());
        Ok(NatsDiscovery {
            shared: Arc::new(Shared {
                config,
                id,
                addr,
                table: std::sync::Mutex::new(table),
                list,
                connected: AtomicBool::new(false),
            }),
            running: tokio::sync::Mutex::new(None),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &NatsConfig {
        &self.shared.config
    }

    /// Whether the provider is connected to a NATS server now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// The other nodes heard from, sorted by id, with how long each has been silent.
    pub fn peers_seen(&self) -> Vec<NatsPeer> {
        let now = Instant::now();
        let mut peers: Vec<NatsPeer> = self
            .shared
            .table()
            .peers()
            .iter()
            .map(|(id, seen)| NatsPeer {
                id: id.clone(),
                addr: seen.addr.clone(),
                silent_for: now.saturating_duration_since(seen.at),
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }
}

impl std::fmt::Debug for NatsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDiscovery")
            .field("id", &self.shared.id)
            .field("addr", &self.shared.addr)
            .field("config", &self.shared.config)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the address list on the watch channel when it changed.
    fn publish_list(&self) {
        let addrs = self.table().addrs();
        self.list.send_if_modified(|current| {
            if *current == addrs {
                return false;
            }
            tracing::debug!(?addrs, "nats discovery: address list changed");
            *current = addrs;
            true
        });
    }

    /// A message from this node.
    fn message(&self, op: Op) -> bytes::Bytes {
        Message::new(op, &self.id, &self.addr).to_bytes()
    }

    /// Reads one message heard on the subject or the inbox; answers a request that has a
    /// reply subject.
    async fn receive(&self, client: &Client, message: async_nats::Message) {
        let parsed = match Message::parse(&message.payload) {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::warn!(subject = %message.subject, %reason, "nats discovery: ignoring a malformed message");
                return;
            }
        };
        // Warns when another node claims this node's id; changes nothing then.
        self.table().apply(&parsed, Instant::now());
        if parsed.id == self.id {
            return;
        }
        self.publish_list();
        if let (Op::Request, Some(reply)) = (parsed.op, message.reply)
            && let Err(e) = client.publish(reply, self.message(Op::Announce)).await
        {
            tracing::warn!(error = %e, peer = %parsed.id, "nats discovery: cannot answer a request");
        }
    }

    /// Announces this node and asks the others to answer on `inbox`.
    async fn request(&self, client: &Client, inbox: &str) {
        let subject = self.config.subject.clone();
        if let Err(e) = client
            .publish_with_reply(subject, inbox.to_owned(), self.message(Op::Request))
            .await
        {
            tracing::warn!(error = %e, "nats discovery: cannot send a discovery request");
        }
    }
}

#[async_trait]
impl Discovery for NatsDiscovery {
    /// Connects (up to `connect_attempts` tries), subscribes, sends a discovery request and
    /// waits `request_timeout` for the answers.
    /// `nats <urls> <subject>`.
    fn describe(&self) -> String {
        let config = &self.shared.config;
        format!("nats {} {}", config.urls.join(","), config.subject)
    }

    async fn start(&self) -> Result<()> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let shared = &self.shared;
        shared.table().clear();
        shared.publish_list();
        let (events_tx, events) = mpsc::unbounded_channel();
        let client = connect(&shared.config, &shared.id, events_tx).await?;
        let unavailable = |what: &str, e: &dyn std::error::Error| {
            Error::Unavailable(format!("nats discovery: cannot {what}: {}", with_causes(e)))
        };
        let subject = shared.config.subject.clone();
        let heard = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| unavailable(&format!("subscribe to `{subject}`"), &e))?;
        let inbox = client.new_inbox();
        let answers = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable("subscribe to its inbox", &e))?;
        shared.connected.store(true, Ordering::SeqCst);
        shared.request(&client, &inbox).await;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(
            Arc::clone(shared),
            client.clone(),
            Subscriptions {
                heard,
                answers,
                inbox,
            },
            events,
            stopped,
        ));
        *running = Some(Running { client, stop, task });
        drop(running);
        // The answers to the request arrive meanwhile; the caller reads `peers` next.
        tokio::time::sleep(shared.config.request_timeout).await;
        tracing::info!(
            node = %shared.id,
            peers = shared.table().peers().len(),
            subject = %shared.config.subject,
            "nats discovery started"
        );
        Ok(())
    }

    /// Announces leaving, then disconnects (each step bounded by `request_timeout`).
    async fn stop(&self) -> Result<()> {
        let Some(running) = self.running.lock().await.take() else {
            return Ok(());
        };
        let shared = &self.shared;
        let limit = shared.config.request_timeout;
        let _ = running.stop.send(());
        let _ = running.task.await;
        let client = running.client;
        let leave = async {
            client
                .publish(shared.config.subject.clone(), shared.message(Op::Leave))
                .await
                .map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(limit, leave).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "nats discovery: cannot announce leaving"),
            Err(_) => tracing::warn!("nats discovery: announcing leaving timed out"),
        }
        if tokio::time::timeout(limit, client.drain()).await.is_err() {
            tracing::warn!("nats discovery: closing the connection timed out");
        }
        shared.connected.store(false, Ordering::SeqCst);
        tracing::info!(node = %shared.id, "nats discovery stopped");
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<String>> {
        Ok(self.shared.list.borrow().clone())
    }

    fn changes(&self) -> watch::Receiver<Vec<String>> {
        self.shared.list.subscribe()
    }
}

/// Dropped without `stop`: the background task ends (no leave is sent; the others expire this
/// node after `peer_timeout`).
impl Drop for NatsDiscovery {
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().take() {
            running.task.abort();
        }
    }
}

/// The subscriptions the background task reads.
struct Subscriptions {
    /// The discovery subject.
    heard: Subscriber,
    /// This node's inbox, where answers to its requests arrive.
    answers: Subscriber,
    inbox: String,
}

/// The background task: reads messages, announces periodically, expires silent nodes, and
/// announces and asks again after a reconnect; until `stopped`.
async fn run(
    shared: Arc<Shared>,
    client: Client,
    mut subs: Subscriptions,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut stopped: oneshot::Receiver<()>,
) {
    let config = &shared.config;
    let mut announce = tokio::time::interval_at(
        Instant::now() + config.announce_interval,
        config.announce_interval,
    );
    announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let connected = shared.connected.load(Ordering::SeqCst);
        // Silence while disconnected does not count: no expiry then.
        let next_expiry = shared
            .table()
            .next_expiry(config.peer_timeout)
            .filter(|_| connected);
        tokio::select! {
            _ = &mut stopped => return,
            heard = subs.heard.next() => match heard {
                Some(message) => shared.receive(&client, message).await,
                None => {
                    tracing::warn!("nats discovery: the subscription ended");
                    return;
                }
            },
            Some(answer) = subs.answers.next() => shared.receive(&client, answer).await,
            _ = announce.tick(), if connected => {
                if let Err(e) = client.publish(config.subject.clone(), shared.message(Op::Announce)).await {
                    tracing::warn!(error = %e, "nats discovery: cannot announce");
                }
            }
            () = sleep_until(next_expiry) => {
                shared.table().expire(Instant::now(), config.peer_timeout);
                shared.publish_list();
            }
            Some(event) = events.recv() => on_event(&shared, &client, &subs.inbox, event).await,
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Follows the connection: after a reconnect, every known node gets a fresh `peer_timeout`
/// and this node announces itself and asks again.
async fn on_event(shared: &Shared, client: &Client, inbox: &str, event: Event) {
    match event {
        Event::Disconnected => {
            shared.connected.store(false, Ordering::SeqCst);
            tracing::warn!("nats discovery: disconnected from NATS, keeping the last known nodes");
        }
        Event::Connected => {
            if !shared.connected.swap(true, Ordering::SeqCst) {
                tracing::info!("nats discovery: reconnected to NATS, announcing again");
                shared.table().refresh(Instant::now());
                shared.request(client, inbox).await;
            }
        }
        Event::ServerError(e) => tracing::warn!(error = %e, "nats discovery: server error"),
        Event::ClientError(e) => tracing::warn!(error = %e, "nats discovery: client error"),
        other => tracing::debug!(event = %other, "nats discovery: connection event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bad configuration, node id or address is refused before anything connects.
    #[test]
    fn bad_settings_are_refused_by_name() {
        let err = NatsDiscovery::new(NatsConfig::default(), "", "nohost").expect_err("refused");
        let text = err.to_string();
        for field in ["urls", "id", "advertise"] {
            assert!(text.contains(field), "{text}");
        }
        assert!(NatsDiscovery::new(NatsConfig::new(["nats://h:4222"]), "n1", "h:1").is_ok());
    }

    /// Nothing listens: start fails after the configured attempts, naming the URLs.
    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let url = format!("nats://127.0.0.1:{port}");
        let config = NatsConfig {
            connect_attempts: 2,
            reconnect_wait: Duration::from_millis(10),
            ..NatsConfig::for_test([url.clone()])
        };
        let d = NatsDiscovery::new(config, "n1", "127.0.0.1:1").expect("valid");
        let err = d.start().await.expect_err("no server");
        let text = err.to_string();
        assert!(text.contains(&url) && text.contains("2 attempts"), "{text}");
        d.stop().await.expect("stop when never started");
    }

    /// A credentials file that cannot be read is named.
    #[tokio::test]
    async fn a_missing_credentials_file_is_named() {
        let config = NatsConfig {
            credentials_file: Some("/nonexistent/nats.creds".into()),
            ..NatsConfig::for_test(["nats://127.0.0.1:1"])
        };
        let d = NatsDiscovery::new(config, "n1", "127.0.0.1:1").expect("valid");
        let text = d.start().await.expect_err("refused").to_string();
        assert!(
            text.contains("credentials_file") && text.contains("/nonexistent/nats.creds"),
            "{text}"
        );
    }
}
