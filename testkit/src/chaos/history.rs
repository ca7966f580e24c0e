//! What a chaos run records: every operation a client invoked, with its invocation and
//! completion time and what it answered, and when each node was down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A read of one key.
    Get {
        /// The key.
        key: String,
    },
    /// A put of one key; every value is unique within a run.
    Put {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
    /// A delete of one key.
    Delete {
        /// The key.
        key: String,
    },
    /// An update of the catalog's probe keyspace, marked with `marker`.
    Catalog {
        /// Unique within a run.
        marker: u64,
    },
}

impl Action {
    /// The key a data operation touches.
    pub fn key(&self) -> Option<&str> {
        match self {
            Action::Get { key } | Action::Put { key, .. } | Action::Delete { key } => Some(key),
            Action::Catalog { .. } => None,
        }
    }
}

/// What the operation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A read's value (`None`: not found).
    Value(Option<String>),
    /// A write was acknowledged.
    Done,
    /// A catalog change was committed at this revision.
    Revision(u64),
    /// It failed (the error's code and message): it may or may not have taken effect.
    Failed(String),
}

/// One completed operation.
#[derive(Debug, Clone)]
pub struct Record {
    /// The node it was sent to.
    pub node: usize,
    /// What was asked.
    pub action: Action,
    /// What came back.
    pub answer: Answer,
    /// When it was invoked, since the run started.
    pub invoked: Duration,
    /// When its answer arrived, since the run started.
    pub completed: Duration,
}

impl Record {
    /// Its latency.
    pub fn latency(&self) -> Duration {
        self.completed.saturating_sub(self.invoked)
    }

    /// True when it was acknowledged.
    pub fn acknowledged(&self) -> bool {
        !matches!(self.answer, Answer::Failed(_))
    }
}

/// A catalog revision and probe marker one node showed at one time.
#[derive(Debug, Clone)]
pub struct CatalogView {
    /// The node.
    pub node: usize,
    /// When it answered, since the run started.
    pub at: Duration,
    /// Its applied revision.
    pub revision: u64,
    /// The marker of the probe keyspace it serves, if any.
    pub marker: Option<u64>,
}

/// A partition: `(minority, from, until)`, the minority cut off from the rest in between
/// (`until` `None`: not healed).
pub type Cut = (Vec<usize>, Duration, Option<Duration>);

/// The history of a run, shared by its clients.
pub struct History {
    started: Instant,
    records: Mutex<Vec<Record>>,
    views: Mutex<Vec<CatalogView>>,
    /// `(node, from, until)`: the node was killed, stopped or paused in between (`until`
    /// `None`: still down).
    downs: Mutex<Vec<(usize, Duration, Option<Duration>)>>,
    /// `(minority, from, until)`: those nodes were partitioned from the rest in between.
    pub(super) cuts: Mutex<Vec<Cut>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// An empty history starting now.
    pub fn new() -> History {
        History {
            started: Instant::now(),
            records: Mutex::new(Vec::new()),
            views: Mutex::new(Vec::new()),
            downs: Mutex::new(Vec::new()),
            cuts: Mutex::new(Vec::new()),
        }
    }

    /// Time since the run started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records a completed operation.
    pub fn record(&self, record: Record) {
        self.records.lock().unwrap().push(record);
    }

    /// Records a catalog view.
    pub fn view(&self, view: CatalogView) {
        self.views.lock().unwrap().push(view);
    }

    /// Marks node `node` down from now.
    pub fn down(&self, node: usize) {
        let now = self.now();
        self.downs.lock().unwrap().push((node, now, None));
    }

    /// Marks node `node` up again from now.
    pub fn up(&self, node: usize) {
        let now = self.now();
        for down in self.downs.lock().unwrap().iter_mut() {
            if down.0 == node && down.2.is_none() {
                down.2 = Some(now);
            }
        }
    }

    /// Whether `node` is down now (killed, stopped or paused, and not up again).
    pub fn is_down(&self, node: usize) -> bool {
        self.downs
            .lock()
            .unwrap()
            .iter()
            .any(|&(n, _, up)| n == node && up.is_none())
    }

    /// Marks `minority` partitioned from the other nodes from now.
    pub fn cut(&self, minority: &[usize]) {
        let now = self.now();
        self.cuts
            .lock()
            .unwrap()
            .push((minority.to_vec(), now, None));
    }

    /// Marks every partition healed from now.
    pub fn mend(&self) {
        let now = self.now();
        for cut in self.cuts.lock().unwrap().iter_mut() {
            if cut.2.is_none() {
                cut.2 = Some(now);
            }
        }
    }

    /// When the partitions began and healed (`None`: not healed).
    pub fn cuts(&self) -> Vec<Cut> {
        self.cuts.lock().unwrap().clone()
    }

    /// True when `node` was on the cut-off side of a partition at some time in `[from, to]`,
    /// counting `margin` past each heal (the sides take that long to hear of each other).
    pub fn cut_off(&self, node: usize, from: Duration, to: Duration, margin: Duration) -> bool {
        self.cuts
            .lock()
            .unwrap()
            .iter()
            .any(|(minority, cut, healed)| {
                let healed = healed.map_or(Duration::MAX, |h| h.saturating_add(margin));
                minority.contains(&node) && from <= healed && to >= *cut
            })
    }

    /// The records so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// The catalog views so far.
    pub fn views(&self) -> Vec<CatalogView> {
        self.views.lock().unwrap().clone()
    }

    /// True when `node` was up (never down) for the whole of `[from, to]`, with `margin` of
    /// grace on each side (a node just restarted may still be starting).
    pub fn up_throughout(
        &self,
        node: usize,
        from: Duration,
        to: Duration,
        margin: Duration,
    ) -> bool {
        self.downs.lock().unwrap().iter().all(|&(n, down, up)| {
            if n != node {
                return true;
            }
            let up = up.map_or(Duration::MAX, |u| u.saturating_add(margin));
            let down = down.saturating_sub(margin);
            to < down || from > up
        })
    }
}
