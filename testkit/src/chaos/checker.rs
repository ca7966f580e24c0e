//! Reads a chaos history and says what went wrong: wrong values, stale reads, lost or
//! reordered catalog updates, revisions going backwards, late reads, failed reads to live
//! nodes.
//!
//! The rules, per key (values are unique per run; the source answers `src:<key>` for every
//! key):
//!
//! - **wrong**: a read returned a value that no put of that key wrote (or wrote only after the
//!   read completed), that is not the source's value for the key, or "not found".
//! - **stale**: a read returned a value older than one acknowledged before the read began —
//!   the value's own write completed before another acknowledged write of the key started,
//!   which completed before the read was invoked. The source's value counts as written by the
//!   latest delete that might precede the read (or by the initial state). A stale read of the
//!   source's value after an acknowledged put is a **lost put** (the put lived on a node that
//!   died), counted apart from other stale reads.
//! - **partitions**: a read served by a node while it is cut off from the others (and for
//!   [`Rules::heal_grace`] after the heal) may miss writes made on the other side: such a
//!   stale read is counted as **cut off**, apart. A read that misses only writes
//!   acknowledged by cut-off nodes counts as **lost** (the other side never saw them, and the
//!   heal flushes the cut-off side). A stale read anywhere else is still stale.
//! - **catalog**: two acknowledged updates never share a revision; an update acknowledged
//!   before another began has the lower revision; a node never shows a lower revision than it
//!   showed before, nor a marker older than an acknowledged update its revision includes.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::history::{Action, Answer, CatalogView, History, Record};

/// The outcome of checking one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Operations recorded.
    pub operations: usize,
    /// Operations that failed (to any node).
    pub failed: usize,
    /// Reads sent to nodes up throughout, and how many of those failed.
    pub live_reads: usize,
    /// See [`live_reads`](Self::live_reads).
    pub live_read_failures: usize,
    /// Reads that returned a value nobody wrote.
    pub wrong: usize,
    /// Reads older than an acknowledged write, other than lost puts.
    pub stale: usize,
    /// Reads of the source's value after an acknowledged put (the put was lost), and reads
    /// that miss only writes acknowledged on the cut-off side of a partition.
    pub lost_puts: usize,
    /// Stale reads served by a node while it was cut off from the others (allowed: a node
    /// cut off from an owner keeps serving its copies, see the README).
    pub cut_off: usize,
    /// Catalog anomalies.
    pub catalog: usize,
    /// Reads to live nodes slower than their deadline plus the allowance.
    pub late: usize,
    /// The slowest operation to a live node.
    pub max_latency: Duration,
    /// A description of the first few anomalies, for failure messages.
    pub examples: Vec<String>,
}

impl Report {
    /// The share of reads to live nodes that failed.
    pub fn live_failure_rate(&self) -> f64 {
        if self.live_reads == 0 {
            0.0
        } else {
            self.live_read_failures as f64 / self.live_reads as f64
        }
    }

    /// The table's header line.
    pub fn header() -> String {
        format!(
            "{:<28} {:>7} {:>7} {:>10} {:>6} {:>6} {:>6} {:>7} {:>8} {:>5} {:>10}",
            "scenario",
            "ops",
            "failed",
            "live fail%",
            "wrong",
            "stale",
            "lost",
            "cut off",
            "catalog",
            "late",
            "max lat ms"
        )
    }

    fn note(&mut self, example: String) {
        if self.examples.len() < 12 {
            self.examples.push(example);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<28} {:>7} {:>7} {:>10.3} {:>6} {:>6} {:>6} {:>7} {:>8} {:>5} {:>10}",
            self.scenario,
            self.operations,
            self.failed,
            self.live_failure_rate() * 100.0,
            self.wrong,
            self.stale,
            self.lost_puts,
            self.cut_off,
            self.catalog,
            self.late,
            self.max_latency.as_millis()
        )
    }
}

/// What the checker needs to know of the run.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The read deadline the nodes enforce.
    pub read_deadline: Duration,
    /// How far past the deadline a read may complete (scheduling, the answer's trip).
    pub allowance: Duration,
    /// How long after a node is back it may still refuse (it is starting).
    pub restart_grace: Duration,
    /// How long after a partition heals the sides may still act on what they saw while cut
    /// off (until a probe round has spoken across).
    pub heal_grace: Duration,
}

/// The source's value for `key`.
pub fn source_value(key: &str) -> String {
    format!("src:{key}")
}

/// Checks `history` against the rules.
pub fn check(scenario: &str, history: &History, rules: &Rules) -> Report {
    let records = history.records();
    let mut report = Report {
        scenario: scenario.to_owned(),
        operations: records.len(),
        failed: records.iter().filter(|r| !r.acknowledged()).count(),
        ..Report::default()
    };
    // Catalog anomalies first: their examples are the rarest and the most telling.
    check_catalog(&records, &history.views(), &mut report);
    let mut by_key: HashMap<&str, Vec<&Record>> = HashMap::new();
    for record in &records {
        if let Some(key) = record.action.key() {
            by_key.entry(key).or_default().push(record);
        }
        let live = history.up_throughout(
            record.node,
            record.invoked,
            record.completed,
            rules.restart_grace,
        );
        if live && matches!(record.action, Action::Get { .. }) {
            report.live_reads += 1;
            if !record.acknowledged() {
                report.live_read_failures += 1;
                if report.live_read_failures <= 3 {
                    report.note(format!("failed live read: {record:?}"));
                }
            }
            report.max_latency = report.max_latency.max(record.latency());
            if record.latency() > rules.read_deadline + rules.allowance {
                report.late += 1;
                report.note(format!("late read ({:?}): {record:?}", record.latency()));
            }
        }
    }
    for (key, ops) in by_key {
        check_key(key, &ops, history, rules, &mut report);
    }
    report
}

/// The wrong and stale rules for one key.
fn check_key(key: &str, ops: &[&Record], history: &History, rules: &Rules, report: &mut Report) {
    let cut_off = |r: &Record| history.cut_off(r.node, r.invoked, r.completed, rules.heal_grace);
    let puts: HashMap<&str, &Record> = ops
        .iter()
        .filter_map(|r| match &r.action {
            Action::Put { value, .. } => Some((value.as_str(), *r)),
            _ => None,
        })
        .collect();
    let acknowledged_writes: Vec<&Record> = ops
        .iter()
        .copied()
        .filter(|r| r.acknowledged() && !matches!(r.action, Action::Get { .. }))
        .collect();
    let source = source_value(key);
    for read in ops
        .iter()
        .filter(|r| matches!(r.action, Action::Get { .. }))
    {
        let Answer::Value(value) = &read.answer else {
            continue;
        };
        let Some(value) = value else {
            report.wrong += 1;
            report.note(format!(
                "not found, though the source has every key: {read:?}"
            ));
            continue;
        };
        // When the value's write finished (`None`: it never was acknowledged, so it may
        // have taken effect at any time), and whether it is the source's.
        let origin_completed: Option<Duration> = if *value == source {
            // The latest delete that may precede the read, else the initial state.
            let deletes = ops.iter().filter(|r| {
                matches!(r.action, Action::Delete { .. }) && r.invoked < read.completed
            });
            let mut latest = Some(Duration::ZERO);
            for delete in deletes {
                let done = delete.acknowledged().then_some(delete.completed);
                latest = match (latest, done) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(a.max(b)),
                };
            }
            latest
        } else {
            match puts.get(value.as_str()) {
                Some(put) if put.invoked < read.completed => {
                    put.acknowledged().then_some(put.completed)
                }
                Some(put) => {
                    report.wrong += 1;
                    report.note(format!("read a value written after it: {read:?} / {put:?}"));
                    continue;
                }
                None => {
                    report.wrong += 1;
                    report.note(format!("read a value nobody wrote: {read:?}"));
                    continue;
                }
            }
        };
        let Some(origin_completed) = origin_completed else {
            continue;
        };
        let newer_writes = || {
            acknowledged_writes.iter().filter(|w| {
                w.invoked > origin_completed
                    && w.completed < read.invoked
                    && !matches!(&w.action, Action::Put { value: v, .. } if v == value)
                    && !(*value == source && matches!(w.action, Action::Delete { .. }))
            })
        };
        // A write acknowledged on the far side of a partition does not make a read stale,
        // only one the read's side could have seen.
        // The latest such write: the one the read missed most plainly.
        let newer = newer_writes()
            .filter(|w| !cut_off(w))
            .max_by_key(|w| w.completed);
        let missed_cut_off_write = newer_writes()
            .filter(|w| cut_off(w))
            .max_by_key(|w| w.completed);
        if let Some(newer) = newer.or(missed_cut_off_write) {
            if cut_off(read) {
                report.cut_off += 1;
            } else if cut_off(newer) {
                report.lost_puts += 1;
                report.note(format!("lost on the cut-off side: {newer:?} then {read:?}"));
            } else if *value == source && matches!(newer.action, Action::Put { .. }) {
                report.lost_puts += 1;
                if report.lost_puts <= 6 {
                    report.note(format!("lost put: {newer:?} then {read:?}"));
                }
            } else {
                report.stale += 1;
                report.note(format!("stale read: {newer:?} then {read:?}"));
            }
        }
    }
}

/// The catalog rules.
fn check_catalog(records: &[Record], views: &[CatalogView], report: &mut Report) {
    let updates: Vec<(&Record, u64, u64)> = records
        .iter()
        .filter_map(|r| match (&r.action, &r.answer) {
            (Action::Catalog { marker }, Answer::Revision(revision)) => {
                Some((r, *marker, *revision))
            }
            _ => None,
        })
        .collect();
    let mut revisions: HashMap<u64, u64> = HashMap::new();
    for &(_, marker, revision) in &updates {
        if let Some(other) = revisions.insert(revision, marker) {
            report.catalog += 1;
            report.note(format!(
                "updates {other} and {marker} both acknowledged at revision {revision}"
            ));
        }
    }
    for &(a, a_marker, a_rev) in &updates {
        for &(b, b_marker, b_rev) in &updates {
            if a.completed < b.invoked && a_rev >= b_rev {
                report.catalog += 1;
                report.note(format!(
                    "update {a_marker} (revision {a_rev}) finished before update {b_marker} began, yet got revision {b_rev}"
                ));
            }
        }
    }
    let marker_revision: HashMap<u64, u64> = updates.iter().map(|&(_, m, r)| (m, r)).collect();
    let mut last_seen: HashMap<usize, u64> = HashMap::new();
    let mut views: Vec<&CatalogView> = views.iter().collect();
    views.sort_by_key(|v| v.at);
    for view in views {
        if let Some(&before) = last_seen.get(&view.node)
            && view.revision < before
        {
            report.catalog += 1;
            report.note(format!(
                "node {} went back from revision {before} to {}",
                view.node, view.revision
            ));
        }
        last_seen.insert(view.node, view.revision);
        // The newest acknowledged update the view's revision includes must be what it shows.
        let newest = updates
            .iter()
            .filter(|&&(_, _, r)| r <= view.revision)
            .max_by_key(|&&(_, _, r)| r);
        if let (Some(&(_, newest_marker, newest_rev)), Some(shown)) = (newest, view.marker) {
            let shown_rev = marker_revision.get(&shown).copied();
            if shown != newest_marker && shown_rev.is_none_or(|r| r < newest_rev) {
                report.catalog += 1;
                report.note(format!(
                    "node {} at revision {} shows marker {shown}, older than update {newest_marker} at revision {newest_rev}",
                    view.node, view.revision
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: Action, answer: Answer, invoked: u64, completed: u64) -> Record {
        Record {
            node: 0,
            action,
            answer,
            invoked: Duration::from_millis(invoked),
            completed: Duration::from_millis(completed),
        }
    }

    fn put(value: &str, i: u64, c: u64) -> Record {
        rec(
            Action::Put {
                key: "k".into(),
                value: value.into(),
            },
            Answer::Done,
            i,
            c,
        )
    }

    fn get(value: &str, i: u64, c: u64) -> Record {
        rec(
            Action::Get { key: "k".into() },
            Answer::Value(Some(value.into())),
            i,
            c,
        )
    }

    fn run(records: Vec<Record>) -> Report {
        let history = History::new();
        for r in records {
            history.record(r);
        }
        let rules = Rules {
            read_deadline: Duration::from_millis(100),
            allowance: Duration::from_millis(50),
            restart_grace: Duration::ZERO,
            heal_grace: Duration::ZERO,
        };
        check("unit", &history, &rules)
    }

    /// A history that only reads what was written, in order, is clean.
    #[test]
    fn clean_history() {
        let r = run(vec![
            get("src:k", 0, 5),
            put("a", 10, 20),
            get("a", 30, 40),
            put("b", 35, 60),
            get("a", 50, 55),
            get("b", 70, 80),
        ]);
        assert_eq!(
            (r.wrong, r.stale, r.lost_puts, r.catalog),
            (0, 0, 0, 0),
            "{:?}",
            r.examples
        );
    }

    /// Unwritten values, values from the future and not-found are wrong.
    #[test]
    fn wrong_values() {
        let mut nf = get("x", 0, 1);
        nf.answer = Answer::Value(None);
        let r = run(vec![
            get("zzz", 0, 5),
            get("a", 10, 12),
            put("a", 20, 30),
            nf,
        ]);
        assert_eq!(r.wrong, 3, "{:?}", r.examples);
    }

    /// An older put read after a newer acknowledged one is stale; the source's value after an
    /// acknowledged put is a lost put.
    #[test]
    fn stale_and_lost() {
        let r = run(vec![
            put("a", 0, 10),
            put("b", 20, 30),
            get("a", 40, 50),
            get("src:k", 60, 70),
        ]);
        assert_eq!((r.stale, r.lost_puts), (1, 1), "{:?}", r.examples);
    }

    /// During a partition, a cut-off node's stale read is counted apart, a read elsewhere
    /// that misses only a cut-off node's write is lost, and any other stale read is stale.
    #[test]
    fn partitions() {
        let history = History::new();
        let on = |node, mut r: Record| {
            r.node = node;
            r
        };
        // Node 2 is cut off from 100 to 200 ms.
        history.cuts.lock().unwrap().push((
            vec![2],
            Duration::from_millis(100),
            Some(Duration::from_millis(200)),
        ));
        for r in [
            on(0, put("a", 0, 10)),
            on(0, put("b", 110, 120)),
            on(2, get("a", 130, 140)), // cut off: misses b
            on(2, put("c", 150, 160)), // acknowledged on the cut-off side
            on(0, get("b", 170, 180)), // misses only c: lost
            on(1, get("a", 250, 260)), // misses b, after the heal: stale
        ] {
            history.record(r);
        }
        let rules = Rules {
            read_deadline: Duration::from_secs(1),
            allowance: Duration::ZERO,
            restart_grace: Duration::ZERO,
            heal_grace: Duration::ZERO,
        };
        let r = check("unit", &history, &rules);
        assert_eq!(
            (r.cut_off, r.lost_puts, r.stale, r.wrong),
            (1, 1, 1, 0),
            "{:?}",
            r.examples
        );
    }

    /// Reads slower than the deadline plus the allowance are late.
    #[test]
    fn late_reads() {
        let r = run(vec![get("src:k", 0, 151), get("src:k", 0, 149)]);
        assert_eq!(r.late, 1);
    }

    /// Two updates at one revision, reordered revisions and a node going back are caught.
    #[test]
    fn catalog_anomalies() {
        let history = History::new();
        let update = |m, rev, i, c| rec(Action::Catalog { marker: m }, Answer::Revision(rev), i, c);
        history.record(update(1, 5, 0, 10));
        history.record(update(2, 4, 20, 30));
        history.record(update(3, 5, 40, 50));
        history.view(CatalogView {
            node: 1,
            at: Duration::from_millis(60),
            revision: 5,
            marker: Some(1),
        });
        history.view(CatalogView {
            node: 1,
            at: Duration::from_millis(70),
            revision: 3,
            marker: None,
        });
        let rules = Rules {
            read_deadline: Duration::from_secs(1),
            allowance: Duration::ZERO,
            restart_grace: Duration::ZERO,
            heal_grace: Duration::ZERO,
        };
        let r = check("unit", &history, &rules);
        assert!(r.catalog >= 3, "{:?}", r.examples);
    }
}
