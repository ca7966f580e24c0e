//! Read-through loads of one keyspace: single-flight claims, then one task per batch that
//! fetches from this node's data source (keys it owns) or from the owning peer (keys it does
//! not), stores what may be stored, and answers every caller.
//!
//! Every load that calls the data source — a client's, a peer's, a warmup's, a refresh, a
//! fallback when the owner cannot serve — is first admitted by the keyspace's
//! [`LoadGate`](crate::protection::LoadGate), before its task is spawned: what does not fit
//! fails at once with `OVERLOADED`, and an admitted load waits at most `read_timeout` for its
//! call slot.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{Instrument, debug, warn};

use super::{Deadline, Space};
use crate::error::{Error, Result, SourceError};
use crate::flight::{Claim, Flights, Outcome, Pending, Ticket};
use crate::protection::Pass;
use crate::ring::Peer;
use crate::source::{FetchResult, Fetched};
use crate::store::{Cached, Store};
use crate::telemetry::{FetchOutcome, end_span, within};
use crate::transport::{PeerTransport, RemoteGet};
use opentelemetry::context::FutureExt;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

/// Which cache a loaded value goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Keys this node owns.
    Main,
    /// Copies of keys other nodes own.
    Hot,
    /// None: the value answers the callers only (loaded beside an owner that may be alive).
    Nowhere,
}

impl Space {
    pub(super) fn store(&self, target: Target) -> Option<&Store> {
        match target {
            Target::Main => Some(&self.main),
            Target::Hot => Some(&self.hot),
            Target::Nowhere => None,
        }
    }

    /// Claims a flight for every key; returns the pending outcomes in order and the tickets
    /// of the keys this caller leads.
    fn claim(&self, keys: &[&str], flights: &Flights) -> (Vec<Pending>, Vec<Ticket>) {
        let mut pending = Vec::with_capacity(keys.len());
        let mut tickets = Vec::new();
        for key in keys {
            match flights.claim(key) {
                Claim::Joined(p) => pending.push(p),
                Claim::Leader(ticket, p) => {
                    tickets.push(ticket);
                    pending.push(p);
                }
            }
        }
        (pending, tickets)
    }

    /// Admits the loads of `tickets` through the keyspace's load gate: returns those that
    /// may call the data source and their pass, and fails the rest at once with
    /// `OVERLOADED`.
    pub(super) fn admit(&self, mut tickets: Vec<Ticket>) -> Option<(Vec<Ticket>, Pass)> {
        let admitted = self.loads.admit(tickets.len());
        let fits = admitted.as_ref().map_or(0, |(_, n)| *n);
        if fits < tickets.len() {
            let refused = tickets.split_off(fits);
            self.stats.overloaded.add(refused.len() as u64);
            let err = self.loads.refusal();
            // Counted, not logged at warn: an overloaded node must not flood its log too.
            debug!(keyspace = %self.name(), keys = refused.len(), error = %err, "loads refused");
            for ticket in refused {
                ticket.resolve(Err(err.clone()));
            }
        }
        admitted.map(|(pass, _)| (tickets, pass))
    }

    /// Waits for `pass`'s call slot (at most `wait`); fails every ticket with `OVERLOADED`
    /// when none frees in time.
    pub(super) async fn slot(
        &self,
        pass: Pass,
        tickets: Vec<Ticket>,
        wait: Duration,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, Vec<Ticket>)> {
        match pass.slot(wait).await {
            Ok(slot) => Some((slot, tickets)),
            Err(err) => {
                self.stats.overloaded.add(tickets.len() as u64);
                debug!(keyspace = %self.name(), keys = tickets.len(), error = %err, "loads waited too long");
                for ticket in tickets {
                    ticket.resolve(Err(err.clone()));
                }
                None
            }
        }
    }

    /// Loads `keys` that this node owns into the main cache: from the keys' replica when it
    /// holds them (a keyspace with replicas; see `space/fallback.rs`), else from the data
    /// source.
    pub fn load_owned(self: &Arc<Self>, keys: &[&str]) -> Vec<Pending> {
        let (pending, tickets) = self.claim(keys, &self.flights);
        if let Some((tickets, pass)) = self.admit(tickets) {
            let span = tracing::debug_span!("distcache.load", distcache.keyspace = %self.name(), keys = tickets.len());
            let space = Arc::clone(self);
            self.tasks.spawn(
                async move {
                    let tickets = space.repair(tickets).await;
                    let wait = space.settings.read_timeout;
                    let Some((_slot, tickets)) = space.slot(pass, tickets, wait).await else {
                        return;
                    };
                    let tickets = space.drop_hits(tickets).await;
                    space.stats.loads_deduped.add(tickets.len() as u64);
                    space
                        .fetch_local(tickets, Target::Main, space.settings.read_timeout)
                        .await;
                }
                .instrument(span)
                .with_context(Context::current()),
            );
        }
        pending
    }

    /// Fetches `keys` again from this node's data source and replaces what is cached
    /// (refresh-ahead): joins a load already running, starts one otherwise.
    pub fn refresh_owned(self: &Arc<Self>, keys: &[&str]) -> Vec<Pending> {
        let (pending, tickets) = self.claim(keys, &self.flights);
        if let Some((tickets, pass)) = self.admit(tickets) {
            let space = Arc::clone(self);
            self.tasks.spawn(async move {
                let wait = space.settings.read_timeout;
                let Some((_slot, tickets)) = space.slot(pass, tickets, wait).await else {
                    return;
                };
                space.stats.loads_deduped.add(tickets.len() as u64);
                space.fetch_local(tickets, Target::Main, wait).await;
            });
        }
        pending
    }

    /// Loads `keys` owned by `peer` through it, keeping copies in the hot cache. When the
    /// peer cannot serve them — it cannot be reached, or it does not answer and fails its
    /// probes — answers them from their replica or the source instead (`space/fallback.rs`;
    /// counted in `peer_errors`).
    pub fn load_from_peer(
        self: &Arc<Self>,
        transport: &Arc<dyn PeerTransport>,
        peer: Arc<Peer>,
        keys: &[&str],
    ) -> Vec<Pending> {
        let (pending, tickets) = self.claim(keys, &self.peer_flights);
        if !tickets.is_empty() {
            let span = tracing::debug_span!("distcache.peer_load", distcache.keyspace = %self.name(), peer = %peer.id, keys = tickets.len());
            let space = Arc::clone(self);
            let transport = Arc::clone(transport);
            self.tasks.spawn(
                async move {
                    let tickets = space.drop_hits(tickets).await;
                    space.stats.loads_deduped.add(tickets.len() as u64);
                    space.fetch_remote(transport.as_ref(), &peer, tickets).await;
                }
                .instrument(span)
                .with_context(Context::current()),
            );
        }
        pending
    }

    /// Answers tickets whose key is cached by now (a put landed since the miss); returns the
    /// rest.
    pub(super) async fn drop_hits(&self, tickets: Vec<Ticket>) -> Vec<Ticket> {
        let mut rest = Vec::with_capacity(tickets.len());
        for ticket in tickets {
            match self.cached(ticket.key()).await {
                Some(hit) => ticket.resolve(Ok(hit)),
                None => rest.push(ticket),
            }
        }
        rest
    }

    async fn fetch_remote(&self, transport: &dyn PeerTransport, peer: &Peer, tickets: Vec<Ticket>) {
        if tickets.is_empty() {
            return;
        }
        let timeout = self.settings.read_timeout;
        let deadline = Instant::now() + timeout;
        let cx = self.spans.start(
            "distcache.peer",
            SpanKind::Client,
            vec![
                KeyValue::new("distcache.keyspace", self.name().to_owned()),
                KeyValue::new("distcache.peer", peer.id.to_string()),
                KeyValue::new("server.address", peer.addr.clone()),
                KeyValue::new("distcache.keys", tickets.len() as i64),
            ],
            None,
        );
        let call = async {
            let answers: Result<Vec<RemoteGet>, _> = if let [ticket] = tickets.as_slice() {
                transport
                    .get(&peer.addr, self.name(), ticket.key(), timeout)
                    .await
                    .map(|v| vec![Ok(v)])
            } else {
                let keys: Vec<String> = tickets.iter().map(|t| t.key().to_owned()).collect();
                transport
                    .get_many(&peer.addr, self.name(), &keys, timeout)
                    .await
            };
            answers
        };
        // The owner's answer, unless it stops answering and fails its probes first.
        let answers = tokio::select! {
            answers = within(cx.as_ref(), call) => Some(answers),
            () = self.owner_gone(peer) => None,
        };
        if let Some(cx) = &cx {
            let result = match &answers {
                Some(answers) => answers
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| e.clone().into_error()),
                None => Err(Error::Unavailable(format!(
                    "peer {} does not answer and fails its probes",
                    peer.id
                ))),
            };
            end_span(Some(cx), None, &result);
        }
        match answers {
            Some(Ok(answers)) => {
                self.stats.peer_loads.add(tickets.len() as u64);
                for (ticket, answer) in tickets.into_iter().zip(answers) {
                    let outcome = match answer {
                        Ok(Some(remote)) => {
                            let expires_at = remote.ttl.and_then(|t| Instant::now().checked_add(t));
                            let entry = Cached::found(remote.value, expires_at);
                            if remote.ttl.is_none_or(|t| !t.is_zero()) && self.caching() {
                                self.hot
                                    .insert_unless(ticket.key(), entry.clone(), ticket.cancelled())
                                    .await;
                            }
                            Ok(entry)
                        }
                        Ok(None) => Ok(Cached::missing()),
                        Err(e) => Err(e),
                    };
                    ticket.resolve(outcome);
                }
            }
            // Gone (nothing answers there): what is loaded here may be kept as a copy.
            Some(Err(e)) if e.calls_for_fallback() => {
                self.stats.peer_errors.add(tickets.len() as u64);
                warn!(keyspace = %self.name(), peer = %peer.id, error = %e, keys = tickets.len(), "owner cannot serve; answering from its replica or the source");
                self.fall_back(peer, tickets, Target::Hot, deadline).await;
            }
            Some(Err(e)) => {
                self.stats.peer_errors.add(tickets.len() as u64);
                warn!(keyspace = %self.name(), peer = %peer.id, error = %e, "peer load failed");
                let err = e.into_error();
                for ticket in tickets {
                    ticket.resolve(Err(err.clone()));
                }
            }
            // Silent, perhaps only paused or cut off: what is loaded here answers the callers
            // and is not kept beside the owner's value.
            None => {
                self.stats.peer_errors.add(tickets.len() as u64);
                warn!(keyspace = %self.name(), peer = %peer.id, keys = tickets.len(), "owner does not answer and fails its probes; answering from its replica or the source");
                self.fall_back(peer, tickets, Target::Nowhere, deadline)
                    .await;
            }
        }
    }

    /// Fetches from this node's data source within `timeout`: one `fetch` for one key, one
    /// `fetch_many` for several.
    pub(super) async fn fetch_local(
        &self,
        mut tickets: Vec<Ticket>,
        target: Target,
        timeout: Duration,
    ) {
        if tickets.len() > 1 {
            self.fetch_batch(tickets, target, timeout).await;
        } else if let Some(ticket) = tickets.pop() {
            let started = Instant::now();
            let cx = self.fetch_span(1);
            let call = self
                .guard
                .call(timeout, self.source.fetch(ticket.key()), |_| false);
            let result = within(cx.as_ref(), call).await;
            end_fetch_span(cx.as_ref(), &result);
            self.settle(ticket, result, target, started.elapsed()).await;
        }
    }

    async fn fetch_batch(&self, tickets: Vec<Ticket>, target: Target, timeout: Duration) {
        let keys: Vec<String> = tickets.iter().map(|t| t.key().to_owned()).collect();
        let started = Instant::now();
        let cx = self.fetch_span(keys.len());
        let call = self.guard.call(
            timeout,
            async { Ok(self.source.fetch_many(&keys).await) },
            |results: &Vec<FetchResult>| results.iter().all(Result::is_err),
        );
        let batch = within(cx.as_ref(), call).await;
        end_span(cx.as_ref(), None, &batch);
        let took = started.elapsed();
        match batch {
            Ok(results) if results.len() == tickets.len() => {
                for (ticket, result) in tickets.into_iter().zip(results) {
                    self.settle(ticket, result.map_err(Error::DataSource), target, took)
                        .await;
                }
            }
            Ok(results) => {
                let err = Error::DataSource(SourceError::new(format!(
                    "fetch_many answered {} results for {} keys",
                    results.len(),
                    tickets.len()
                )));
                for ticket in tickets {
                    self.settle(ticket, Err(err.clone()), target, took).await;
                }
            }
            Err(err) => {
                for ticket in tickets {
                    self.settle(ticket, Err(err.clone()), target, took).await;
                }
            }
        }
    }

    /// The span of a data-source fetch of `keys` keys (none without a tracer).
    fn fetch_span(&self, keys: usize) -> Option<Context> {
        self.spans.start(
            "distcache.fetch",
            SpanKind::Client,
            vec![
                KeyValue::new("distcache.keyspace", self.name().to_owned()),
                KeyValue::new("distcache.source", self.spec.source.kind()),
                KeyValue::new("distcache.keys", keys as i64),
            ],
            None,
        )
    }

    /// Counts, times, stores (unless cancelled) and answers one key fetched in `took`.
    async fn settle(
        &self,
        ticket: Ticket,
        result: Result<Option<Fetched>>,
        target: Target,
        took: Duration,
    ) {
        let fetch = match &result {
            Ok(Some(_)) => Some(FetchOutcome::Found),
            Ok(None) => Some(FetchOutcome::NotFound),
            // Refused before the source was asked: no fetch to time.
            Err(Error::DataSourceRateLimited(_) | Error::DataSourceCircuitOpen(_)) => None,
            Err(_) => Some(FetchOutcome::Error),
        };
        if let Some(outcome) = fetch {
            self.stats.fetches.record(outcome, took);
        }
        let key = ticket.key();
        let store = self.store(target);
        let outcome: Outcome = match result {
            Ok(Some(fetched)) => {
                self.stats.local_loads.inc();
                match self.deadline(key, fetched.ttl, Instant::now()) {
                    Deadline::At(expires_at) => {
                        let entry = Cached::found(fetched.value, expires_at);
                        if let Some(store) = store
                            && self.caching()
                            && !store
                                .insert_unless(key, entry.clone(), ticket.cancelled())
                                .await
                            && !ticket.cancelled().load(Ordering::Acquire)
                        {
                            debug!(
                                key,
                                bytes = entry.weight_with(key),
                                "value too large to cache"
                            );
                        }
                        Ok(entry)
                    }
                    // Expired on arrival: answer it, keep nothing (and tell peers so).
                    Deadline::AlreadyPast => Ok(Cached::found(fetched.value, Some(Instant::now()))),
                }
            }
            Ok(None) => {
                self.stats.local_loads.inc();
                self.stats.not_found.inc();
                if let Some(ttl) = self.settings.negative_ttl
                    && let Some(store) = store
                    && self.caching()
                {
                    let entry = Cached {
                        value: None,
                        expires_at: Instant::now().checked_add(ttl),
                    };
                    store.insert_unless(key, entry, ticket.cancelled()).await;
                }
                Ok(Cached::missing())
            }
            Err(err) => {
                match &err {
                    Error::DataSourceRateLimited(_) => self.stats.rate_limited.inc(),
                    Error::DataSourceCircuitOpen(_) => self.stats.circuit_open.inc(),
                    Error::Timeout { .. } => {
                        self.stats.timeouts.inc();
                        self.stats.local_load_errs.inc();
                    }
                    _ => self.stats.local_load_errs.inc(),
                }
                warn!(keyspace = %self.name(), key, error = %err, "load failed");
                Err(err)
            }
        };
        ticket.resolve(outcome);
    }
}

/// Ends a single-key fetch's span with its outcome (found or not found) or its error.
fn end_fetch_span(cx: Option<&Context>, result: &Result<Option<Fetched>>) {
    let outcome = match result {
        Ok(Some(_)) => Some("found"),
        Ok(None) => Some("not_found"),
        Err(_) => None,
    };
    end_span(cx, outcome, result);
}
