//! Every panel rendered on ratatui's TestBackend from a fixed fixture: no clock, no network.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use distcache::KeySpaceSnapshot;
use distcache::wire::{ClusterInfo, ClusterMember};
use distcache_tui::{App, Command, LookupResult, NodeView, Snapshot, View, WarmupProgress};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

fn keyspace(name: &str, gets: u64, hits: u64, bytes: u64, breaker: &str) -> KeySpaceSnapshot {
    serde_json::from_value(serde_json::json!({
        "name": name, "max_bytes": 1048576, "default_ttl": "5m", "read_timeout": "5s",
        "write_timeout": "5s", "warm_keys": [], "main_cache_bytes": bytes, "hot_cache_bytes": 0,
        "stats": {"gets": gets, "cache_hits": hits, "peer_loads": 1, "peer_errors": 0,
                  "loads": gets - hits, "loads_deduped": 0, "local_loads": gets / 10,
                  "local_load_errs": 3, "remove_keys_requests": 0, "removed_keys": 0,
                  "rate_limited": 2},
        "main_cache_entries": 12, "hot_cache_entries": 0, "circuit_breaker": breaker
    }))
    .unwrap()
}

fn cluster_info(node: &str, role: &str) -> ClusterInfo {
    ClusterInfo {
        node_id: node.into(),
        role: serde_json::from_value(serde_json::json!(role)).unwrap(),
        leader: Some("node-1".into()),
        term: 4,
        applied_revision: 9,
        members: ["node-1", "node-2", "node-3"]
            .iter()
            .map(|id| ClusterMember {
                id: (*id).into(),
                addr: format!("{id}:3320"),
                healthy: *id != "node-3",
                voter: true,
            })
            .collect(),
    }
}

fn node(id: &str, role: &str, gets: u64, breaker: &str) -> NodeView {
    NodeView {
        id: id.into(),
        addr: format!("127.0.0.1:332{}", &id[5..]),
        up: true,
        ready: true,
        error: None,
        cluster: Some(cluster_info(id, role)),
        keyspaces: vec![
            keyspace("products", gets, gets / 2, 2048, "closed"),
            keyspace("users", gets, gets / 4, 524288, breaker),
        ],
        discovery: Some("dns peers.distcache.local".into()),
        last_seen: Some(12.0),
    }
}

fn fixture() -> App {
    let mut app = App::new("127.0.0.1:3320", Duration::from_secs(1));
    let down = NodeView {
        id: "node-3".into(),
        addr: "127.0.0.1:3323".into(),
        up: false,
        ready: false,
        error: Some("cannot reach any endpoint".into()),
        cluster: None,
        keyspaces: Vec::new(),
        discovery: None,
        last_seen: Some(8.0),
    };
    app.on_snapshot(Snapshot {
        at: 10.0,
        nodes: vec![
            node("node-1", "leader", 100, "closed"),
            node("node-2", "follower", 100, "open"),
            down.clone(),
        ],
    });
    app.on_snapshot(Snapshot {
        at: 12.0,
        nodes: vec![
            node("node-1", "leader", 180, "closed"),
            node("node-2", "follower", 140, "open"),
            down,
        ],
    });
    app
}

fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| f.render_widget(app, f.area())).unwrap();
    terminal.backend().buffer().clone()
}

fn text(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

/// The foreground colour at the first place `needle` appears on line `line`.
fn colour_of(buf: &Buffer, lines: &[String], needle: &str) -> Color {
    let (y, line) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not on screen"));
    let x = line[..line.find(needle).unwrap()].chars().count();
    buf[(x as u16, y as u16)].fg
}

/// The cluster view lists every node with role, leader, term and revision; a node that is
/// down is red and says why.
#[test]
fn cluster_view_with_a_node_down() {
    let app = fixture();
    let buf = render(&app, 80, 24);
    let lines = text(&buf);
    assert!(
        lines[0].contains("leader node-1 · term 4 · rev 9 · 2/3 up"),
        "{:?}",
        lines[0]
    );
    assert!(lines[1].contains("1 Cluster") && lines[1].contains("4 Lookup"));
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("│{id}")))
            .unwrap()
            .clone()
    };
    let words: Vec<String> = row("node-1")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(words[..6], ["│node-1", "up", "leader", "node-1", "4", "9"]);
    assert!(row("node-2").contains("follower"));
    assert!(row("node-3").contains("down"));
    assert_eq!(colour_of(&buf, &lines, "down"), Color::Red);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("node-3 is down: cannot reach any endpoint"))
    );
    assert!(lines[23].contains("q quit"));
}

/// Each node says when it last answered and how it finds its peers.
#[test]
fn cluster_view_shows_last_seen_and_discovery() {
    let app = fixture();
    let lines = text(&render(&app, 120, 24));
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("│{id}")))
            .unwrap()
            .clone()
    };
    assert!(
        lines
            .iter()
            .any(|l| l.contains("SEEN") && l.contains("DISCOVERY"))
    );
    assert!(row("node-1").contains("now"), "{}", row("node-1"));
    assert!(
        row("node-1").contains("dns peers.distcache.local"),
        "{}",
        row("node-1")
    );
    assert!(row("node-3").contains(" 4s "), "{}", row("node-3"));
}

/// The keyspaces view shows memory as a gauge, the recent hit ratio, rates (gets, loads,
/// fetches, errors) and the worst breaker state, open in red.
#[test]
fn keyspaces_view() {
    let mut app = fixture();
    app.apply(Command::Show(View::Keyspaces));
    let buf = render(&app, 80, 24);
    let lines = text(&buf);
    let users = lines.iter().find(|l| l.contains("users")).unwrap();
    // 2 nodes × 512 KiB of 2 × 1 MiB = 50%; gets 180+140-200 = 120 over 2 s = 60/s.
    assert!(users.contains("▇▇▇░░░  50%"), "{users}");
    assert!(users.contains(" 60 "), "{users}");
    let header = lines.iter().find(|l| l.contains("KEYSPACE")).unwrap();
    assert!(
        header.contains("FETCH/S") && header.contains("ERR/S"),
        "{header}"
    );
    // Fetches: (18 - 10) + (14 - 10) = 12 over 2 s; no new errors.
    let words: Vec<&str> = users.split_whitespace().collect();
    let fetches = words.iter().position(|w| *w == "6.0").expect(users);
    assert_eq!(words[fetches + 1], "0", "{users}");
    assert!(users.contains("open"), "{users}");
    assert_eq!(colour_of(&buf, &lines, "open"), Color::Red);
    let products = lines.iter().find(|l| l.contains("products")).unwrap();
    assert!(
        products.contains("50%") && products.contains("closed"),
        "{products}"
    );
}

/// The detail view: gauge, sparklines with their current values, and the keyspace per node.
#[test]
fn detail_view() {
    let mut app = fixture();
    app.apply(Command::Show(View::Keyspaces));
    app.apply(Command::Down);
    app.apply(Command::Open);
    assert_eq!(app.view, View::Detail);
    let lines = text(&render(&app, 80, 24));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("users · 2 node(s) · breaker open")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("memory 1.0M / 2.0M · 24 entries")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("fetch/s 6.0 · err/s 0")
            && l.contains("all-time errors: peer 0 · source 6 · limited 4")),
        "{lines:#?}"
    );
    // 30 more hits over 120 more gets since the previous poll.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("gets/s 60") && l.contains("hit ratio 25%")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("node-2") && l.contains("open"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("node-3") && l.contains("down"))
    );
}

/// The lookup view shows what was typed, then the value preview, its size and its owner.
#[test]
fn lookup_view() {
    let mut app = fixture();
    app.apply(Command::Show(View::Lookup));
    for c in "p1".chars() {
        app.apply(Command::Input(c));
    }
    let lines = text(&render(&app, 80, 24));
    assert!(lines.iter().any(|l| l.contains("keyspace products")));
    assert!(lines.iter().any(|l| l.contains("key p1▏")));
    app.apply(Command::Submit);
    app.on_lookup(LookupResult {
        keyspace: "products".into(),
        key: "p1".into(),
        value: Some(b"{\"name\":\"Espresso beans\"}\nsecond line".to_vec()),
        owner: Some(("node-2".into(), "127.0.0.1:3322".into())),
        error: None,
    });
    let lines = text(&render(&app, 80, 24));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("p1 found · 37 bytes · owner node-2 (127.0.0.1:3322)")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("{\"name\":\"Espresso beans\"}"))
    );
    assert!(lines.iter().any(|l| l.contains("second line")));
}

/// `?` draws the key bindings over the view.
#[test]
fn help_overlay() {
    let mut app = fixture();
    app.apply(Command::ToggleHelp);
    let lines = text(&render(&app, 80, 24));
    assert!(lines.iter().any(|l| l.contains("keys")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("q Ctrl-C") && l.contains("quit"))
    );
    assert!(lines.iter().any(|l| l.contains("look a key up")));
}

/// `w` then `y`: a confirmation box over the view, then the run's progress in the footer.
#[test]
fn warmup_confirmation_and_progress() {
    let mut app = fixture();
    app.apply(Command::Show(View::Keyspaces));
    app.apply(Command::AskWarmup);
    let lines = text(&render(&app, 80, 24));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Warm up `products` across the cluster?")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("y") && l.contains("n")));

    app.apply(Command::Confirm(true));
    let lines = text(&render(&app, 80, 24));
    assert!(!lines.iter().any(|l| l.contains("across the cluster?")));
    assert!(
        lines[23].contains("warmup of products: starting"),
        "{lines:#?}"
    );

    let run: distcache::WarmupRun = serde_json::from_value(serde_json::json!({
        "id": 7, "keyspace": "products", "trigger": "demand", "started_at_ms": 0,
        "duration_ms": 120, "planned": 40, "warmed": 25, "failed": 2, "skipped": 3, "done": false
    }))
    .unwrap();
    app.on_warmup(WarmupProgress {
        keyspace: "products".into(),
        ticket: 1,
        run: Some(run),
        error: None,
    });
    let lines = text(&render(&app, 80, 24));
    assert!(
        lines[23].contains("warmup of products: 30/40 keys, 25 warmed, 2 failed"),
        "{lines:#?}"
    );
}

/// Before the first answer, with no node answering, and with no keyspaces, every view says so.
#[test]
fn empty_cluster() {
    let mut app = App::new("127.0.0.1:3320", Duration::from_secs(1));
    let lines = text(&render(&app, 80, 24));
    assert!(lines[0].contains("connecting"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("waiting for the first answer"))
    );
    app.on_snapshot(Snapshot {
        at: 1.0,
        nodes: Vec::new(),
    });
    let lines = text(&render(&app, 80, 24));
    assert!(
        lines.iter().any(|l| l.contains("no node answered")),
        "{lines:#?}"
    );
    for view in [View::Keyspaces, View::Detail, View::Lookup] {
        app.apply(Command::Show(view));
        let lines = text(&render(&app, 80, 24));
        assert!(
            lines.iter().any(|l| l.contains("no keyspace")),
            "{view:?}: {lines:#?}"
        );
    }
}

/// Tiny and huge terminals render without panicking.
#[test]
fn any_size_renders() {
    let mut app = fixture();
    for view in View::ALL {
        app.apply(Command::Show(view));
        for (w, h) in [(20, 5), (80, 24), (200, 60), (1, 1)] {
            render(&app, w, h);
        }
    }
}
