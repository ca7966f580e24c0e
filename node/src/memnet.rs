//! An in-memory network: nodes whose peer calls are function calls instead of HTTP, with
//! faults injected between named nodes, so multi-node behaviour (routing, hop limits,
//! invalidation, an owner failing, a partition) can be tested deterministically and fast.
//!
//! A node joins the network with [`NodeBuilder::start_in_memory`](crate::NodeBuilder); it
//! runs the same engine, membership, join protocol and handlers as a node serving HTTP —
//! only the wire differs. [`MemoryTransport`] is the [`PeerTransport`] of such a node: each
//! call finds the receiving node by address and runs the engine method its HTTP route would
//! run, hop-counted the same way, under the caller's deadline. What a call meets on the way
//! is the [`Fault`] set for that pair of nodes: refused, dropped (the caller waits out its
//! deadline) or delayed.
//!
//! Not modelled: authentication, body limits and catalog revisions (the nodes of an
//! in-memory cluster share one catalog object, so a peer request does not wait for the
//! receiver to catch up with the sender's revision).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Engine, Ownership};
use crate::entry::Entry;
use crate::error::Error;
use crate::server::{Readiness, health};
use crate::transport::{
    HOPS, HotKeysByKeyspace, PeerError, PeerTransport, RemoteGet, RemoteValue, hops,
};
use crate::wire::{HandoffEntry, Health, WarmOutcome};

/// What happens to calls from one node to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Refused at once, as by a closed port: the caller sees the peer unreachable.
    Refuse,
    /// Lost: the caller waits out its deadline and sees a time-out.
    Drop,
    /// Delivered after this long (a deadline that is shorter runs out first).
    Delay(Duration),
}

/// The kinds of peer call, for counting what crossed the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// A single-key read.
    Get,
    /// A batch read.
    GetMany,
    /// A batch of writes sent to their owner.
    PutMany,
    /// A batch of put values sent to a key's replica.
    Replicate,
    /// The values a node holds for some keys, from memory (a replica asked).
    Copies,
    /// A batch of deletes sent to their owner.
    DeleteMany,
    /// Copies dropped after a write elsewhere.
    Invalidate,
    /// Keys to warm on their owner.
    Warm,
    /// A node's hot keys.
    Hot,
    /// Every cache emptied.
    Flush,
    /// A node saying it shuts down.
    Leaving,
    /// A health probe.
    Probe,
    /// Entries handed to a joining owner.
    Handoff,
}

/// A node on the network: what its HTTP server would hold.
#[derive(Clone)]
struct Endpoint {
    id: String,
    engine: Engine,
    readiness: Arc<Readiness>,
}

#[derive(Default)]
struct State {
    /// Attached nodes by address.
    nodes: HashMap<String, Endpoint>,
    /// Faults by (from, to) node id, for one kind of call or (`None`) every kind.
    faults: HashMap<(String, String, Option<Call>), Fault>,
    /// Calls delivered, by (from, to) node id and kind.
    delivered: HashMap<(String, String, Call), u64>,
}

/// The network that in-memory nodes share. Faults and counters are by node id.
#[derive(Default)]
pub struct MemoryNetwork {
    state: Mutex<State>,
}

impl MemoryNetwork {
    /// An empty network without faults.
    pub fn new() -> Arc<Self> {
        Arc::new(MemoryNetwork::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes calls from node `from` to node `to` meet `fault` (one direction only).
    pub fn set_fault(&self, from: &str, to: &str, fault: Fault) {
        self.state()
            .faults
            .insert((from.to_owned(), to.to_owned(), None), fault);
    }

    /// Makes calls of kind `call` from node `from` to node `to` meet `fault`; it takes
    /// precedence over a fault set for every kind.
    pub fn set_call_fault(&self, from: &str, to: &str, call: Call, fault: Fault) {
        self.state()
            .faults
            .insert((from.to_owned(), to.to_owned(), Some(call)), fault);
    }

    /// Lets calls from `from` to `to` through again, of every kind.
    pub fn clear_fault(&self, from: &str, to: &str) {
        self.state()
            .faults
            .retain(|(f, t, _), _| f != from || t != to);
    }

    /// Cuts every node of `side_a` off from every node of `side_b`, both ways: calls across
    /// are lost (callers wait out their deadlines).
    pub fn partition(&self, side_a: &[&str], side_b: &[&str]) {
        for a in side_a {
            for b in side_b {
                self.set_fault(a, b, Fault::Drop);
                self.set_fault(b, a, Fault::Drop);
            }
        }
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.state().faults.clear();
    }

    /// Calls of kind `call` delivered from node `from` to node `to` so far.
    pub fn delivered(&self, from: &str, to: &str, call: Call) -> u64 {
        self.state()
            .delivered
            .get(&(from.to_owned(), to.to_owned(), call))
            .copied()
            .unwrap_or(0)
    }

    /// The transport of node `from`. A test may call peers through it directly, as node
    /// `from` (which need not be on the network) would.
    pub fn transport(self: &Arc<Self>, from: &str) -> MemoryTransport {
        MemoryTransport {
            network: Arc::clone(self),
            from: from.to_owned(),
            passed: 0,
        }
    }

    /// Puts a node at `addr`: calls to that address reach it from now on.
    pub(crate) fn attach(&self, addr: &str, id: &str, engine: Engine, readiness: Arc<Readiness>) {
        let endpoint = Endpoint {
            id: id.to_owned(),
            engine,
            readiness,
        };
        self.state().nodes.insert(addr.to_owned(), endpoint);
    }

    /// Takes the node at `addr` off: calls to it are refused, as by a stopped server.
    pub(crate) fn detach(&self, addr: &str) {
        self.state().nodes.remove(addr);
    }

    /// The node at `addr` as `from` reaches it for a `call`, after the fault between them,
    /// counted as delivered.
    async fn reach(
        &self,
        from: &str,
        addr: &str,
        call: Call,
        timeout: Duration,
    ) -> Result<Endpoint, PeerError> {
        let unreachable = || PeerError::Unreachable {
            peer: addr.to_owned(),
            reason: "connection refused (nothing attached at this address)".into(),
        };
        let (endpoint, fault) = {
            let state = self.state();
            let endpoint = state.nodes.get(addr).cloned().ok_or_else(unreachable)?;
            let pair = (from.to_owned(), endpoint.id.clone());
            let fault = state
                .faults
                .get(&(pair.0.clone(), pair.1.clone(), Some(call)))
                .or_else(|| state.faults.get(&(pair.0, pair.1, None)))
                .copied();
            (endpoint, fault)
        };
        let timed_out = || PeerError::Timeout {
            peer: addr.to_owned(),
            after: timeout,
        };
        match fault {
            None => {}
            Some(Fault::Refuse) => return Err(unreachable()),
            Some(Fault::Drop) => {
                tokio::time::sleep(timeout).await;
                return Err(timed_out());
            }
            Some(Fault::Delay(delay)) if delay >= timeout => {
                tokio::time::sleep(timeout).await;
                return Err(timed_out());
            }
            Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        }
        // Counted now: a node taken off meanwhile still received the call.
        *self
            .state()
            .delivered
            .entry((from.to_owned(), endpoint.id.clone(), call))
            .or_default() += 1;
        Ok(endpoint)
    }
}

/// The [`PeerTransport`] of a node on a [`MemoryNetwork`].
#[derive(Clone)]
pub struct MemoryTransport {
    network: Arc<MemoryNetwork>,
    /// The sending node's id (the hop marker).
    from: String,
    /// Nodes the requests it sends went through already, at least.
    passed: u8,
}

impl MemoryTransport {
    /// Sends every request as if it had already passed through `hops` nodes (a request
    /// takes the larger of this and the hops of the request being served), to test how far
    /// requests are passed on.
    pub fn already_passed(mut self, hops: u8) -> Self {
        self.passed = hops;
        self
    }

    /// Runs `serve` on the node at `addr` as its peer route would: reached through the fault
    /// between the two nodes, one hop further than the request this node serves, within
    /// `timeout` (the time a fault took counts against it).
    async fn call<T, F, Fut>(
        &self,
        addr: &str,
        kind: Call,
        timeout: Duration,
        serve: F,
    ) -> Result<T, PeerError>
    where
        F: FnOnce(Endpoint, String) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let sent = async {
            let endpoint = self.network.reach(&self.from, addr, kind, timeout).await?;
            let hops = hops().max(self.passed).saturating_add(1);
            HOPS.scope(hops, serve(endpoint, self.from.clone()))
                .await
                .map_err(PeerError::Remote)
        };
        tokio::time::timeout(timeout, sent)
            .await
            .unwrap_or_else(|_| {
                Err(PeerError::Timeout {
                    peer: addr.to_owned(),
                    after: timeout,
                })
            })
    }
}

#[async_trait]
impl PeerTransport for MemoryTransport {
    async fn get(
        &self,
        peer: &str,
        keyspace: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<RemoteValue>, PeerError> {
        self.call(peer, Call::Get, timeout, |node, from| async move {
            let served = node.engine.serve_get(keyspace, key, &from).await?;
            Ok(served.map(|(value, ttl)| RemoteValue { value, ttl }))
        })
        .await
    }

    async fn get_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError> {
        self.call(peer, Call::GetMany, timeout, |node, from| async move {
            let results = node.engine.serve_get_many(keyspace, keys, &from).await?;
            Ok(results
                .into_iter()
                .map(|r| {
                    r.result
                        .map(|s| s.map(|(value, ttl)| RemoteValue { value, ttl }))
                })
                .collect())
        })
        .await
    }

    async fn put_many(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        self.call(peer, Call::PutMany, timeout, |node, from| async move {
            let results = node
                .engine
                .serve_put_many(keyspace, entries.to_vec(), &from)
                .await?;
            Ok(results.into_iter().map(|r| r.result).collect())
        })
        .await
    }

    async fn replicate(
        &self,
        peer: &str,
        keyspace: &str,
        entries: &[Entry],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        self.call(peer, Call::Replicate, timeout, |node, _| async move {
            let results = node
                .engine
                .serve_replicate(keyspace, entries.to_vec())
                .await?;
            Ok(results.into_iter().map(|r| r.result).collect())
        })
        .await
    }

    async fn copies(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<RemoteGet>, PeerError> {
        self.call(peer, Call::Copies, timeout, |node, _| async move {
            let results = node.engine.serve_copies(keyspace, keys).await?;
            Ok(results
                .into_iter()
                .map(|r| {
                    r.result
                        .map(|s| s.map(|(value, ttl)| RemoteValue { value, ttl }))
                })
                .collect())
        })
        .await
    }

    async fn delete_many(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, PeerError> {
        self.call(peer, Call::DeleteMany, timeout, |node, from| async move {
            let results = node.engine.serve_delete_many(keyspace, keys, &from).await?;
            Ok(results.into_iter().map(|r| r.result).collect())
        })
        .await
    }

    async fn invalidate(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<(), PeerError> {
        self.call(peer, Call::Invalidate, timeout, |node, _| async move {
            node.engine.serve_invalidate(keyspace, keys).await
        })
        .await
    }

    async fn warm(
        &self,
        peer: &str,
        keyspace: &str,
        keys: &[String],
        timeout: Duration,
    ) -> Result<WarmOutcome, PeerError> {
        self.call(peer, Call::Warm, timeout, |node, _| async move {
            node.engine.config().limits.check_batch(keys.len())?;
            node.engine
                .warm_keys(keyspace, keys, Ownership::Trust, false)
                .await
        })
        .await
    }

    async fn hot(&self, peer: &str, timeout: Duration) -> Result<HotKeysByKeyspace, PeerError> {
        self.call(peer, Call::Hot, timeout, |node, _| async move {
            Ok(node.engine.all_hot_keys())
        })
        .await
    }

    async fn flush(&self, peer: &str, timeout: Duration) -> Result<(), PeerError> {
        self.call(peer, Call::Flush, timeout, |node, _| async move {
            node.engine.flush();
            Ok(())
        })
        .await
    }

    async fn leaving(&self, peer: &str, me: &Health, timeout: Duration) -> Result<(), PeerError> {
        self.call(peer, Call::Leaving, timeout, |node, _| async move {
            if let Some(cluster) = node.engine.cluster() {
                cluster.peer_leaving(me.clone()).await;
            }
            Ok(())
        })
        .await
    }

    async fn probe(&self, peer: &str, timeout: Duration) -> Result<Health, PeerError> {
        self.call(peer, Call::Probe, timeout, |node, _| async move {
            Ok(health(&node.engine, &node.readiness, &node.id, peer))
        })
        .await
    }

    async fn handoff(
        &self,
        peer: &str,
        to: &str,
        timeout: Duration,
        sink: tokio::sync::mpsc::Sender<HandoffEntry>,
    ) -> Result<u64, PeerError> {
        self.call(peer, Call::Handoff, timeout, |node, _| async move {
            let entries = node.engine.handoff_entries(to).await?;
            let mut sent = 0;
            for entry in entries {
                if sink.send(entry).await.is_err() {
                    break;
                }
                sent += 1;
            }
            Ok(sent)
        })
        .await
    }
}
