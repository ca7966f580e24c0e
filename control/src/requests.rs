//! Idempotent catalog writes: the request ids of recent commands and what applying each
//! answered, kept as part of the replicated state.
//!
//! A write can commit and still look failed to its sender: the leader dies after committing
//! and before answering, or the answer is lost on the way back. The sender (a follower
//! forwarding, the typed client moving to another node) then sends the same command again.
//! Without a memory of requests a retried `Create` would answer "already exists" and a
//! retried compare-and-set would answer "revision mismatch", though the first attempt did
//! what was asked. With a request id in the command, the state machine answers a repeat with
//! the first attempt's outcome and changes nothing.
//!
//! The ledger is deterministic (every member applies the same commands, so every member
//! remembers the same ids and forgets them in the same order) and bounded: it keeps the
//! [`LEDGER_CAPACITY`] most recent ids, far more than can be retried within a write timeout.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::catalog::{Catalog, CatalogError, Command};

/// How many request ids the ledger remembers.
pub const LEDGER_CAPACITY: usize = 1024;

/// The longest request id accepted, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// One remembered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Remembered {
    id: String,
    /// Hash of the command without its id: a repeat must be the same command.
    fingerprint: u64,
    outcome: Outcome,
}

/// Recent request ids and their outcomes, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Remembered>", into = "Vec<Remembered>")]
pub struct RequestLedger {
    order: VecDeque<Remembered>,
    index: HashMap<String, usize>,
    /// How many entries left the front of `order` since the indices in `index` were taken.
    evicted: usize,
}

impl From<Vec<Remembered>> for RequestLedger {
    fn from(entries: Vec<Remembered>) -> Self {
        let mut ledger = RequestLedger::default();
        for entry in entries {
            ledger.remember(entry);
        }
        ledger
    }
}

impl From<RequestLedger> for Vec<Remembered> {
    fn from(ledger: RequestLedger) -> Self {
        ledger.order.into_iter().collect()
    }
}

impl RequestLedger {
    /// Applies `command` to `catalog` once per request id: a command without an id is applied
    /// as it is; a repeat of a remembered id answers the remembered outcome and changes
    /// nothing; an id reused for a different command is refused.
    pub fn apply<S>(&mut self, catalog: &mut Catalog<S>, command: &Command<S>) -> Outcome
    where
        S: Clone + Serialize,
    {
        let Some(id) = &command.request_id else {
            return catalog.apply(command);
        };
        let fingerprint = fingerprint(command);
        if let Some(seen) = self.get(id) {
            return if seen.fingerprint == fingerprint {
                seen.outcome.clone()
            } else {
                Err(CatalogError::RequestIdReused { id: id.clone() })
            };
        }
        let outcome = catalog.apply(command);
        self.remember(Remembered {
            id: id.clone(),
            fingerprint,
            outcome: outcome.clone(),
        });
        outcome
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn get(&self, id: &str) -> Option<&Remembered> {
        let position = self.index.get(id)?.checked_sub(self.evicted)?;
        self.order.get(position)
    }

    fn remember(&mut self, entry: Remembered) {
        if self.index.contains_key(&entry.id) {
            return;
        }
        if self.order.len() == LEDGER_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.index.remove(&oldest.id);
            self.evicted += 1;
        }
        self.index
            .insert(entry.id.clone(), self.evicted + self.order.len());
        self.order.push_back(entry);
    }
}

/// Hash of what a command does, leaving out its request id.
fn fingerprint<S: Serialize>(command: &Command<S>) -> u64 {
    // Serialising a value the state machine already holds cannot fail; an unserialisable one
    // gets a fingerprint of its own, so only the same failing command matches it.
    let body = serde_json::to_vec(&(&command.change, command.expected_revision))
        .unwrap_or_else(|e| e.to_string().into_bytes());
    xxhash_rust::xxh3::xxh3_64(&body)
}

/// Checks a request id given by a client: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII
/// characters.
pub fn check_request_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the request id is empty".into());
    }
    if id.len() > MAX_REQUEST_ID_LEN {
        return Err(format!(
            "the request id is {} bytes long; at most {MAX_REQUEST_ID_LEN} are allowed",
            id.len()
        ));
    }
    if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "the request id holds {bad:?}; only visible ASCII characters are allowed"
        ));
    }
    Ok(())
}

/// A new request id, unique with overwhelming probability: 128 random-looking bits as hex.
pub fn fresh_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `RandomState` is seeded from the operating system's randomness once per process.
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(count);
        hasher.write_usize(i);
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Change;

    fn create(name: &str, id: Option<&str>) -> Command<u32> {
        Command {
            change: Change::Create {
                name: name.into(),
                spec: 1,
            },
            expected_revision: None,
            request_id: id.map(str::to_owned),
        }
    }

    /// A repeated create answers what the first did and commits once.
    #[test]
    fn a_repeat_answers_the_first_outcome() {
        let mut catalog = Catalog::default();
        let mut ledger = RequestLedger::default();
        assert_eq!(ledger.apply(&mut catalog, &create("a", Some("r1"))), Ok(1));
        assert_eq!(ledger.apply(&mut catalog, &create("a", Some("r1"))), Ok(1));
        assert_eq!(catalog.revision, 1);
        assert_eq!(
            ledger.apply(&mut catalog, &create("a", Some("r2"))),
            Err(CatalogError::Exists { name: "a".into() }),
            "a new request is a new attempt"
        );
        assert_eq!(
            ledger.apply(&mut catalog, &create("a", None)),
            Err(CatalogError::Exists { name: "a".into() })
        );
    }

    /// A refusal is remembered too: a repeat gets the same refusal even if it would now pass.
    #[test]
    fn refusals_are_remembered() {
        let mut catalog = Catalog::default();
        let mut ledger = RequestLedger::default();
        let delete = Command {
            change: Change::Delete {
                names: vec!["a".into()],
            },
            expected_revision: None,
            request_id: Some("d".into()),
        };
        let refused = ledger.apply(&mut catalog, &delete);
        assert_eq!(refused, Err(CatalogError::NotFound { name: "a".into() }));
        ledger
            .apply(&mut catalog, &create("a", None))
            .expect("create");
        assert_eq!(ledger.apply(&mut catalog, &delete), refused);
        assert!(catalog.entries.contains_key("a"));
    }

    /// An id sent again with a different command is refused and changes nothing.
    #[test]
    fn a_reused_id_is_refused() {
        let mut catalog = Catalog::default();
        let mut ledger = RequestLedger::default();
        ledger
            .apply(&mut catalog, &create("a", Some("r")))
            .expect("create");
        assert_eq!(
            ledger.apply(&mut catalog, &create("b", Some("r"))),
            Err(CatalogError::RequestIdReused { id: "r".into() })
        );
        assert!(!catalog.entries.contains_key("b"));
    }

    /// The ledger forgets the oldest ids first, keeps its bound, and survives a JSON round trip
    /// (it travels in snapshots) with its lookups intact.
    #[test]
    fn bounded_and_serialisable() {
        let mut catalog = Catalog::default();
        let mut ledger = RequestLedger::default();
        for i in 0..LEDGER_CAPACITY + 10 {
            let command = Command {
                change: Change::Put {
                    name: "a".into(),
                    spec: i as u32,
                },
                expected_revision: None,
                request_id: Some(format!("r{i}")),
            };
            ledger.apply(&mut catalog, &command).expect("put");
        }
        assert_eq!(ledger.len(), LEDGER_CAPACITY);
        assert!(ledger.get("r9").is_none(), "the oldest are forgotten");
        let last = format!("r{}", LEDGER_CAPACITY + 9);
        assert_eq!(
            ledger.get(&last).map(|r| r.outcome.clone()),
            Some(Ok((LEDGER_CAPACITY + 10) as u64))
        );
        let json = serde_json::to_string(&ledger).expect("json");
        let back: RequestLedger = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.len(), LEDGER_CAPACITY);
        assert_eq!(
            back.get(&last).map(|r| r.outcome.clone()),
            ledger.get(&last).map(|r| r.outcome.clone())
        );
        assert!(back.get("r10").is_some());
    }

    /// Client-given ids are checked; fresh ids pass the check and differ.
    #[test]
    fn ids() {
        assert!(check_request_id("").is_err());
        assert!(check_request_id("a b").is_err());
        assert!(check_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).is_err());
        assert!(check_request_id("retry-7:abc").is_ok());
        let (a, b) = (fresh_request_id(), fresh_request_id());
        assert_ne!(a, b);
        assert_eq!(check_request_id(&a), Ok(()));
        assert_eq!(a.len(), 32);
    }
}
