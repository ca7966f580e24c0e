//! Asking every member of a cluster the same question at once.
//!
//! A [`Fleet`] holds one [`Client`] per member and keeps it for as long as the member stays,
//! so a caller that asks every few seconds (the dashboard) reuses pooled connections. It asks
//! every member concurrently, each request under the fleet's timeout, and returns
//! [`Answers`]: per member, in member order, its answer or the error it gave instead. A member
//! that does not answer is reported, never dropped, and never fails the others.
//! `distcache stats`, `distcache cluster status` and the dashboard's poller are built on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, debug, info_span, instrument};

use super::{Client, scheme_of};
use crate::cluster::MemberStatus;
use crate::error::{Error, Result};
use crate::net::tls::ClientTls;
use crate::stats::{KeySpaceSnapshot, KeySpaceTotal};
use crate::wire::{ClusterInfo, ClusterMember, Health};

/// A member of a cluster, as a fan-out addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its `--id`, once known.
    pub id: Option<String>,
    /// Its address: `host:port` or a URL.
    pub addr: String,
}

impl Member {
    /// The member at `addr`, its id not known yet.
    pub fn at(addr: impl Into<String>) -> Member {
        Member {
            id: None,
            addr: addr.into(),
        }
    }

    /// Its id, or its address while the id is not known.
    pub fn name(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.addr)
    }
}

impl From<MemberStatus> for Member {
    fn from(m: MemberStatus) -> Member {
        Member {
            id: m.id,
            addr: m.addr,
        }
    }
}

impl From<&ClusterMember> for Member {
    fn from(m: &ClusterMember) -> Member {
        Member {
            id: Some(m.id.clone()),
            addr: m.addr.clone(),
        }
    }
}

/// One member's answer, or the error it gave instead.
#[derive(Debug)]
pub struct Answer<T> {
    /// Who was asked.
    pub member: Member,
    /// What it answered.
    pub result: Result<T>,
}

/// Every member's answer to one question, in member order.
#[derive(Debug)]
pub struct Answers<T> {
    answers: Vec<Answer<T>>,
}

impl<T> Answers<T> {
    /// Every answer, failed ones included.
    pub fn iter(&self) -> std::slice::Iter<'_, Answer<T>> {
        self.answers.iter()
    }

    /// How many members were asked.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// True when no member was asked.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The members that answered, with their answers.
    pub fn answered(&self) -> impl Iterator<Item = (&Member, &T)> {
        self.answers
            .iter()
            .filter_map(|a| a.result.as_ref().ok().map(|t| (&a.member, t)))
    }

    /// The members that did not answer, with why.
    pub fn failed(&self) -> impl Iterator<Item = (&Member, &Error)> {
        self.answers
            .iter()
            .filter_map(|a| a.result.as_ref().err().map(|e| (&a.member, e)))
    }
}

impl<T> FromIterator<Answer<T>> for Answers<T> {
    fn from_iter<I: IntoIterator<Item = Answer<T>>>(iter: I) -> Self {
        Answers {
            answers: iter.into_iter().collect(),
        }
    }
}

impl<T> IntoIterator for Answers<T> {
    type Item = Answer<T>;
    type IntoIter = std::vec::IntoIter<Answer<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.answers.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Answers<T> {
    type Item = &'a Answer<T>;
    type IntoIter = std::slice::Iter<'a, Answer<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.answers.iter()
    }
}

impl Answers<Vec<KeySpaceSnapshot>> {
    /// Every keyspace summed over the members that answered.
    pub fn totals(&self) -> BTreeMap<String, KeySpaceTotal> {
        KeySpaceTotal::sum(self.answered().map(|(_, keyspaces)| &keyspaces[..]))
    }

    /// Keeps keyspace `name` alone in every answer. Fails with
    /// [`Error::KeySpaceNotFound`] when some member answered and none of them has it; with
    /// no answer at all, nobody can tell, and the failed answers stay as they are.
    pub fn only_keyspace(mut self, name: &str) -> Result<Self> {
        let mut answered = false;
        let mut found = false;
        for answer in &mut self.answers {
            if let Ok(keyspaces) = &mut answer.result {
                answered = true;
                keyspaces.retain(|k| k.name == name);
                found |= !keyspaces.is_empty();
            }
        }
        if answered && !found {
            return Err(Error::KeySpaceNotFound(name.to_owned()));
        }
        Ok(self)
    }
}

/// One member and the client that asks it (or why there cannot be one, e.g. an address that
/// is not one: asking it answers that error).
struct Seat {
    member: Member,
    client: Result<Arc<Client>>,
}

/// The members of a cluster, with one client each, asked all at once.
pub struct Fleet {
    seats: Vec<Seat>,
    token: Option<String>,
    timeout: Duration,
    /// The HTTP client every member's client shares (or why there is none).
    http: Result<reqwest::Client>,
    /// The scheme of members known by a bare `host:port`: the scheme of the endpoint that
    /// named them, so a cluster reached over https is asked over https.
    scheme: String,
}

impl Fleet {
    /// A fleet of no members yet, whose clients send `token` and give up on a request after
    /// `timeout`. Add members with [`set_members`](Self::set_members) or
    /// [`refresh`](Self::refresh).
    pub fn new(token: Option<String>, timeout: Duration) -> Fleet {
        let tls = ClientTls::default();
        Fleet {
            seats: Vec::new(),
            token: token.filter(|t| !t.is_empty()),
            timeout,
            http: super::http_client(&tls),
            scheme: super::default_scheme(&tls).to_owned(),
        }
    }

    /// The fleet's clients use the TLS settings `tls` (files are read now; a problem names
    /// the file). Until a [`refresh`](Self::refresh) says otherwise, members known by a bare
    /// `host:port` are asked over https when `tls` sets anything.
    pub fn with_tls(mut self, tls: &ClientTls) -> Result<Fleet> {
        self.http = Ok(super::http_client(tls)?);
        self.scheme = super::default_scheme(tls).to_owned();
        let mut seats = std::mem::take(&mut self.seats);
        for seat in &mut seats {
            seat.client = self.client_for(&seat.member.addr);
        }
        self.seats = seats;
        Ok(self)
    }

    /// The members, in the order they are asked and answer.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &Member> {
        self.seats.iter().map(|s| &s.member)
    }

    /// Makes `members` the fleet, in that order (an address given twice counts once). A member
    /// already there keeps its client, and its id when the new entry does not know it; the
    /// clients of members no longer listed are dropped.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = Member>) {
        let mut old: HashMap<String, Seat> = self
            .seats
            .drain(..)
            .map(|s| (s.member.addr.clone(), s))
            .collect();
        let mut seen = HashSet::new();
        let mut seats = Vec::new();
        for mut member in members {
            if !seen.insert(member.addr.clone()) {
                continue;
            }
            let seat = match old.remove(&member.addr) {
                Some(mut kept) => {
                    if member.id.is_none() {
                        member.id = kept.member.id.take();
                    }
                    kept.member = member;
                    kept
                }
                None => Seat {
                    client: self.client_for(&member.addr),
                    member,
                },
            };
            seats.push(seat);
        }
        self.seats = seats;
    }

    /// Asks `seeds` for the members (`GET /_distcache/admin/peers`) and makes them the fleet.
    /// When the seeds do not answer, the current members are asked in turn; when none
    /// answers either, the fleet stays as it was and the seeds' error is returned.
    #[instrument(skip_all, fields(members = self.seats.len()))]
    pub async fn refresh(&mut self, seeds: &Client) -> Result<()> {
        // Members are listed as `host:port`: they take the scheme of whoever listed them.
        let (peers, scheme) = match seeds.peers().await {
            Ok(peers) => (peers, scheme_of(seeds.current_endpoint()).to_owned()),
            Err(seeds_error) => {
                debug!(error = %seeds_error, "the seeds did not answer; asking the members");
                let mut found = None;
                for client in self.seats.iter().filter_map(|s| s.client.as_ref().ok()) {
                    if let Ok(peers) = client.peers().await {
                        found = Some((peers, scheme_of(client.current_endpoint()).to_owned()));
                        break;
                    }
                }
                found.ok_or(seeds_error)?
            }
        };
        if scheme != self.scheme {
            // Clients made for the other scheme would ask the wrong way.
            self.scheme = scheme;
            self.seats.clear();
        }
        self.set_members(peers.into_iter().map(Member::from));
        Ok(())
    }

    /// Asks every member `question` concurrently; one answer per member, in member order.
    #[instrument(skip_all, fields(members = self.seats.len()))]
    pub async fn ask<'a, T, F, Fut>(&'a self, question: F) -> Answers<T>
    where
        F: Fn(&'a Client) -> Fut,
        Fut: Future<Output = Result<T>> + 'a,
    {
        let asks = self.seats.iter().map(|seat| {
            let call = seat.client.as_ref().map(|c| question(c));
            let span = info_span!("ask_member", addr = %seat.member.addr);
            async move {
                let result = match call {
                    Ok(call) => call.await,
                    Err(e) => Err(e.clone()),
                };
                if let Err(e) = &result {
                    debug!(error = %e, "member did not answer");
                }
                Answer {
                    member: seat.member.clone(),
                    result,
                }
            }
            .instrument(span)
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// Every member's keyspaces: definition, sizes and counters.
    pub async fn stats(&self) -> Answers<Vec<KeySpaceSnapshot>> {
        self.ask(|c| c.stats()).await
    }

    /// Every member's view of the control plane.
    pub async fn cluster(&self) -> Answers<ClusterInfo> {
        self.ask(|c| c.cluster()).await
    }

    /// Every member's identity and readiness.
    pub async fn health(&self) -> Answers<Health> {
        self.ask(|c| c.health()).await
    }

    fn client_for(&self, addr: &str) -> Result<Arc<Client>> {
        let client = Client::over([addr], self.http.clone()?, &self.scheme)?
            .with_token(self.token.clone())
            .with_timeout(self.timeout);
        Ok(Arc::new(client))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protection::BreakerState;
    use crate::stats::tests::snapshot;

    fn answered(id: &str, keyspaces: Vec<KeySpaceSnapshot>) -> Answer<Vec<KeySpaceSnapshot>> {
        Answer {
            member: Member {
                id: Some(id.into()),
                addr: format!("{id}:1"),
            },
            result: Ok(keyspaces),
        }
    }

    fn failed(addr: &str) -> Answer<Vec<KeySpaceSnapshot>> {
        Answer {
            member: Member::at(addr),
            result: Err(Error::Unavailable(format!("cannot reach {addr}"))),
        }
    }

    /// Totals sum the members that answered; a member that failed is reported, not counted.
    #[test]
    fn totals_skip_failed_members() {
        let answers: Answers<_> = [
            answered(
                "a",
                vec![snapshot("users", 10, 5, Some(BreakerState::Closed))],
            ),
            failed("b:1"),
            answered("c", vec![snapshot("users", 4, 1, Some(BreakerState::Open))]),
        ]
        .into_iter()
        .collect();
        assert_eq!(answers.len(), 3);
        let totals = answers.totals();
        let users = &totals["users"];
        assert_eq!(
            (users.nodes, users.stats.gets, users.stats.cache_hits),
            (2, 14, 6)
        );
        assert_eq!(users.circuit_breaker, Some(BreakerState::Open));
        let failed: Vec<_> = answers.failed().map(|(m, _)| m.name()).collect();
        assert_eq!(failed, ["b:1"]);
        let ok: Vec<_> = answers.answered().map(|(m, _)| m.name()).collect();
        assert_eq!(ok, ["a", "c"]);
    }

    /// Filtering to one keyspace keeps the failed answers, and is "not found" only when a
    /// member answered and none has it.
    #[test]
    fn only_keyspace_reports_not_found_from_answers_only() {
        let answers: Answers<_> = [
            answered(
                "a",
                vec![
                    snapshot("users", 1, 0, None),
                    snapshot("orders", 1, 0, None),
                ],
            ),
            answered("b", Vec::new()),
            failed("c:1"),
        ]
        .into_iter()
        .collect();
        let users = answers.only_keyspace("users").unwrap();
        let kept: Vec<usize> = users
            .iter()
            .map(|a| a.result.as_ref().map_or(usize::MAX, Vec::len))
            .collect();
        assert_eq!(kept, [1, 0, usize::MAX]);
        assert!(matches!(
            users.only_keyspace("nope"),
            Err(Error::KeySpaceNotFound(name)) if name == "nope"
        ));
        // Nobody answered: nothing says the keyspace is missing.
        let silent: Answers<_> = [failed("a:1"), failed("b:1")].into_iter().collect();
        assert_eq!(silent.only_keyspace("users").unwrap().failed().count(), 2);
    }

    /// A member that stays keeps its client (and its id when the new list does not know it);
    /// a member that left is dropped; an address listed twice counts once.
    #[test]
    fn set_members_keeps_clients_of_members_that_stay() {
        let mut fleet = Fleet::new(None, Duration::from_secs(1));
        fleet.set_members([
            Member {
                id: Some("a".into()),
                addr: "127.0.0.1:1".into(),
            },
            Member::at("127.0.0.1:2"),
        ]);
        let kept = fleet.seats[0].client.as_ref().unwrap().clone();
        fleet.set_members([
            Member::at("127.0.0.1:3"),
            Member::at("127.0.0.1:1"),
            Member::at("127.0.0.1:3"),
        ]);
        let names: Vec<&str> = fleet.members().map(Member::name).collect();
        assert_eq!(names, ["127.0.0.1:3", "a"]);
        assert!(Arc::ptr_eq(fleet.seats[1].client.as_ref().unwrap(), &kept));
    }

    /// A member whose address is not one answers with that error; the others are still asked.
    #[tokio::test]
    async fn a_bad_address_is_an_answer() {
        let mut fleet = Fleet::new(None, Duration::from_millis(200));
        fleet.set_members([Member::at("bad address:x"), Member::at("127.0.0.1:9")]);
        let answers = fleet.health().await;
        assert_eq!(answers.len(), 2);
        assert_eq!(answers.failed().count(), 2);
        let first = answers.iter().next().unwrap();
        assert_eq!(first.member.addr, "bad address:x");
        assert!(matches!(first.result, Err(Error::InvalidRequest(_))));
    }
}
