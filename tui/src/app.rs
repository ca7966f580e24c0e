//! The dashboard's state and how keys change it: a pure key → [`Command`] mapping that depends
//! on the view, and [`App::apply`], which changes the state and may ask the event loop for a
//! side effect ([`Effect`]). No terminal, no I/O: everything here is unit-tested.

use std::collections::HashMap;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::{History, KeyspaceRow, Snapshot, keyspace_rows};

/// What the body of the screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every node: health, raft role, leader, term, revision, address.
    Cluster,
    /// Every keyspace summed over the nodes.
    Keyspaces,
    /// One keyspace: gauges, sparklines, per-node counters.
    Detail,
    /// Look a key up: value preview, size, owner.
    Lookup,
}

impl View {
    /// All views, in tab order.
    pub const ALL: [View; 4] = [View::Cluster, View::Keyspaces, View::Detail, View::Lookup];

    /// The tab title.
    pub fn title(self) -> &'static str {
        match self {
            View::Cluster => "Cluster",
            View::Keyspaces => "Keyspaces",
            View::Detail => "Detail",
            View::Lookup => "Lookup",
        }
    }
}

/// What a key asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Leave the dashboard.
    Quit,
    /// Show or hide the key bindings.
    ToggleHelp,
    /// Switch to a view.
    Show(View),
    /// Next tab.
    NextView,
    /// Select the next row.
    Down,
    /// Select the previous row.
    Up,
    /// Open the selected keyspace's detail.
    Open,
    /// Go back (close help, leave detail or lookup).
    Back,
    /// Type into the lookup field.
    Input(char),
    /// Delete the last character of the lookup field.
    Erase,
    /// Look the typed key up.
    Submit,
    /// Ask to warm the selected keyspace (a confirmation follows).
    AskWarmup,
    /// Answer the confirmation.
    Confirm(bool),
}

/// A side effect the event loop performs for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Read `key` of `keyspace` and find its owner.
    Lookup {
        /// The keyspace.
        keyspace: String,
        /// The key.
        key: String,
    },
    /// Start a cluster-wide warmup of `keyspace` and follow it.
    Warmup {
        /// The keyspace.
        keyspace: String,
        /// Names this warmup in the progress reports about it.
        ticket: u64,
    },
}

/// A warmup the dashboard started and follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmupProgress {
    /// The keyspace.
    pub keyspace: String,
    /// The ticket of the [`Effect::Warmup`] that started it.
    pub ticket: u64,
    /// The run as last seen (none until the cluster accepted it).
    pub run: Option<distcache::WarmupRun>,
    /// Why it could not start or be followed.
    pub error: Option<String>,
}

/// What a key lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// The keyspace.
    pub keyspace: String,
    /// The key.
    pub key: String,
    /// The value, if found.
    pub value: Option<Vec<u8>>,
    /// The owning node and its address.
    pub owner: Option<(String, String)>,
    /// Why the lookup failed.
    pub error: Option<String>,
}

/// The key lookup's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The key typed so far.
    pub input: String,
    /// A lookup is running.
    pub pending: bool,
    /// The last answer.
    pub result: Option<LookupResult>,
}

/// The dashboard.
#[derive(Debug, Clone)]
pub struct App {
    /// Where the dashboard points (shown in the header).
    pub endpoint: String,
    /// How often it refreshes.
    pub interval: Duration,
    /// The current view.
    pub view: View,
    /// The help overlay is open.
    pub help: bool,
    /// The user asked to leave.
    pub quit: bool,
    /// The last poll.
    pub snapshot: Option<Snapshot>,
    previous: Option<Snapshot>,
    /// Keyspace rows of the last poll.
    pub rows: Vec<KeyspaceRow>,
    /// Sparkline history by keyspace.
    pub history: HashMap<String, History>,
    /// Selected node (cluster view).
    pub selected_node: usize,
    /// Selected keyspace (keyspaces, detail and lookup views).
    pub selected_keyspace: usize,
    /// The key lookup.
    pub lookup: Lookup,
    /// A keyspace waiting for the user to confirm its warmup.
    pub confirm: Option<String>,
    /// The warmup started from the dashboard, if any.
    pub warmup: Option<WarmupProgress>,
    /// Tickets handed out to warmups so far.
    warmup_tickets: u64,
}

impl App {
    /// A dashboard for `endpoint`, refreshing every `interval`, before the first poll.
    pub fn new(endpoint: impl Into<String>, interval: Duration) -> Self {
        App {
            endpoint: endpoint.into(),
            interval,
            view: View::Cluster,
            help: false,
            quit: false,
            snapshot: None,
            previous: None,
            rows: Vec::new(),
            history: HashMap::new(),
            selected_node: 0,
            selected_keyspace: 0,
            lookup: Lookup::default(),
            confirm: None,
            warmup: None,
            warmup_tickets: 0,
        }
    }

    /// Takes news of the warmup the dashboard follows.
    /// News of an earlier warmup (one the user has since replaced or dismissed) is dropped.
    pub fn on_warmup(&mut self, progress: WarmupProgress) {
        if self
            .warmup
            .as_ref()
            .is_some_and(|w| w.ticket == progress.ticket)
        {
            self.warmup = Some(progress);
        }
    }

    /// Whether the followed warmup has ended (done, or failed to start or be followed).
    fn warmup_ended(&self) -> bool {
        self.warmup
            .as_ref()
            .is_some_and(|w| w.error.is_some() || w.run.as_ref().is_some_and(|r| r.done))
    }

    /// The keyspace the detail and lookup views are about.
    pub fn selected_row(&self) -> Option<&KeyspaceRow> {
        self.rows.get(self.selected_keyspace)
    }

    /// Takes a new poll: rows, rates, history.
    pub fn on_snapshot(&mut self, snapshot: Snapshot) {
        self.previous = self.snapshot.take();
        self.rows = keyspace_rows(&snapshot, self.previous.as_ref());
        if self.previous.is_some() {
            for row in &self.rows {
                self.history.entry(row.name.clone()).or_default().push(row);
            }
        }
        self.history
            .retain(|name, _| self.rows.iter().any(|r| r.name == *name));
        self.selected_keyspace = self
            .selected_keyspace
            .min(self.rows.len().saturating_sub(1));
        self.selected_node = self
            .selected_node
            .min(snapshot.nodes.len().saturating_sub(1));
        self.snapshot = Some(snapshot);
    }

    /// Takes a lookup's answer.
    pub fn on_lookup(&mut self, result: LookupResult) {
        self.lookup.pending = false;
        self.lookup.result = Some(result);
    }

    /// Changes the state as `command` says; returns a side effect to perform, if any.
    pub fn apply(&mut self, command: Command) -> Option<Effect> {
        // An ended warmup's outcome stays in the footer until the next key press.
        if self.warmup_ended() {
            self.warmup = None;
        }
        match command {
            Command::Quit => self.quit = true,
            Command::ToggleHelp => self.help = !self.help,
            Command::Show(view) => {
                self.view = view;
                self.help = false;
            }
            Command::NextView => {
                let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
                self.view = View::ALL[(i + 1) % View::ALL.len()];
            }
            Command::Down | Command::Up => {
                let down = command == Command::Down;
                let (selected, len) = match self.view {
                    View::Cluster => (
                        &mut self.selected_node,
                        self.snapshot.as_ref().map_or(0, |s| s.nodes.len()),
                    ),
                    _ => (&mut self.selected_keyspace, self.rows.len()),
                };
                if len > 0 {
                    *selected = if down {
                        (*selected + 1).min(len - 1)
                    } else {
                        selected.saturating_sub(1)
                    };
                }
            }
            Command::Open => {
                if self.view == View::Keyspaces && !self.rows.is_empty() {
                    self.view = View::Detail;
                }
            }
            Command::Back => {
                if self.help {
                    self.help = false;
                } else {
                    self.view = match self.view {
                        View::Detail | View::Lookup => View::Keyspaces,
                        other => other,
                    };
                }
            }
            Command::Input(c) => self.lookup.input.push(c),
            Command::Erase => {
                self.lookup.input.pop();
            }
            Command::AskWarmup => {
                if matches!(self.view, View::Keyspaces | View::Detail) {
                    self.confirm = self.selected_row().map(|r| r.name.clone());
                }
            }
            Command::Confirm(yes) => {
                if let (true, Some(keyspace)) = (yes, self.confirm.take()) {
                    self.warmup_tickets += 1;
                    let ticket = self.warmup_tickets;
                    self.warmup = Some(WarmupProgress {
                        keyspace: keyspace.clone(),
                        ticket,
                        run: None,
                        error: None,
                    });
                    return Some(Effect::Warmup { keyspace, ticket });
                }
                self.confirm = None;
            }
            Command::Submit => {
                let key = self.lookup.input.trim().to_owned();
                let keyspace = self.selected_row().map(|row| row.name.clone());
                if let (false, Some(keyspace)) = (key.is_empty(), keyspace) {
                    self.lookup.pending = true;
                    return Some(Effect::Lookup { keyspace, key });
                }
            }
        }
        None
    }
}

/// The command of `key` in the app's current state (`None`: the key does nothing here).
pub fn command_for(app: &App, key: KeyEvent) -> Option<Command> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Command::Quit);
    }
    if app.confirm.is_some() {
        return match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                Some(Command::Confirm(true))
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Some(Command::Confirm(false)),
            _ => None,
        };
    }
    if app.view == View::Lookup && !app.help {
        // Typing goes to the field; only a few keys keep their meaning. A terminal sends Esc
        // pressed just before a key, and Alt with that key, as the same bytes (ESC, key): that
        // is never text for the field, so it leaves the field as Esc does.
        if key.modifiers.contains(KeyModifiers::ALT) && matches!(key.code, KeyCode::Char(_)) {
            return Some(Command::Back);
        }
        return match key.code {
            KeyCode::Enter => Some(Command::Submit),
            KeyCode::Backspace => Some(Command::Erase),
            KeyCode::Esc => Some(Command::Back),
            KeyCode::Tab => Some(Command::NextView),
            KeyCode::Up => Some(Command::Up),
            KeyCode::Down => Some(Command::Down),
            KeyCode::Char(c) => Some(Command::Input(c)),
            _ => None,
        };
    }
    match key.code {
        KeyCode::Char('q') => Some(Command::Quit),
        KeyCode::Char('?') => Some(Command::ToggleHelp),
        KeyCode::Esc => Some(Command::Back),
        KeyCode::Char('1') | KeyCode::Char('c') => Some(Command::Show(View::Cluster)),
        KeyCode::Char('2') | KeyCode::Char('k') => Some(Command::Show(View::Keyspaces)),
        KeyCode::Char('3') | KeyCode::Char('d') => Some(Command::Show(View::Detail)),
        KeyCode::Char('4') | KeyCode::Char('/') | KeyCode::Char('l') => {
            Some(Command::Show(View::Lookup))
        }
        KeyCode::Tab => Some(Command::NextView),
        KeyCode::Down | KeyCode::Char('j') => Some(Command::Down),
        KeyCode::Up => Some(Command::Up),
        KeyCode::Enter => Some(Command::Open),
        KeyCode::Char('w') => Some(Command::AskWarmup),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new_with_kind(code, KeyModifiers::NONE, KeyEventKind::Press)
    }

    fn app_with_rows() -> App {
        let mut app = App::new("127.0.0.1:3320", Duration::from_secs(1));
        app.rows = ["a", "b", "c"]
            .iter()
            .map(|n| KeyspaceRow {
                capacity: 1,
                nodes: 1,
                ..KeyspaceRow::new(*n)
            })
            .collect();
        app
    }

    /// Keys map to commands by view; typing in the lookup field is not a shortcut.
    #[test]
    fn keys_map_by_view() {
        let mut app = app_with_rows();
        assert_eq!(
            command_for(&app, key(KeyCode::Char('q'))),
            Some(Command::Quit)
        );
        assert_eq!(
            command_for(&app, key(KeyCode::Char('?'))),
            Some(Command::ToggleHelp)
        );
        assert_eq!(
            command_for(&app, key(KeyCode::Char('2'))),
            Some(Command::Show(View::Keyspaces))
        );
        assert_eq!(command_for(&app, key(KeyCode::F(5))), None);
        app.view = View::Lookup;
        assert_eq!(
            command_for(&app, key(KeyCode::Char('q'))),
            Some(Command::Input('q'))
        );
        assert_eq!(
            command_for(&app, key(KeyCode::Enter)),
            Some(Command::Submit)
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(command_for(&app, ctrl_c), Some(Command::Quit));
        let esc_then_w = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::ALT);
        assert_eq!(command_for(&app, esc_then_w), Some(Command::Back));
    }

    /// Selection stays in range; Enter opens the detail; Esc goes back.
    #[test]
    fn navigation() {
        let mut app = app_with_rows();
        app.apply(Command::Show(View::Keyspaces));
        for _ in 0..5 {
            app.apply(Command::Down);
        }
        assert_eq!(app.selected_keyspace, 2);
        app.apply(Command::Up);
        assert_eq!(app.selected_keyspace, 1);
        app.apply(Command::Open);
        assert_eq!(app.view, View::Detail);
        app.apply(Command::ToggleHelp);
        app.apply(Command::Back);
        assert!(!app.help);
        assert_eq!(app.view, View::Detail, "Esc closes help first");
        app.apply(Command::Back);
        assert_eq!(app.view, View::Keyspaces);
        app.apply(Command::NextView);
        assert_eq!(app.view, View::Detail);
    }

    /// `w` asks for confirmation; only a yes starts the warmup.
    #[test]
    fn warmup_needs_confirmation() {
        let mut app = app_with_rows();
        app.apply(Command::Show(View::Keyspaces));
        assert_eq!(
            command_for(&app, key(KeyCode::Char('w'))),
            Some(Command::AskWarmup)
        );
        app.apply(Command::AskWarmup);
        assert_eq!(app.confirm.as_deref(), Some("a"));
        assert_eq!(
            command_for(&app, key(KeyCode::Char('q'))),
            None,
            "only y/n while asking"
        );
        assert_eq!(app.apply(Command::Confirm(false)), None);
        assert!(app.confirm.is_none() && app.warmup.is_none());
        app.apply(Command::AskWarmup);
        let effect = app.apply(Command::Confirm(true));
        assert_eq!(
            effect,
            Some(Effect::Warmup {
                keyspace: "a".into(),
                ticket: 1
            })
        );
        assert_eq!(app.warmup.as_ref().map(|w| w.keyspace.as_str()), Some("a"));

        // News of an earlier warmup is stale; an ended run goes at the next key press.
        app.on_warmup(WarmupProgress {
            keyspace: "a".into(),
            ticket: 0,
            run: None,
            error: Some("stale".into()),
        });
        assert!(app.warmup.as_ref().is_some_and(|w| w.error.is_none()));
        app.apply(Command::Down);
        assert!(app.warmup.is_some(), "a running warmup stays");
        app.on_warmup(WarmupProgress {
            keyspace: "a".into(),
            ticket: 1,
            run: None,
            error: Some("keyspace `a` not found".into()),
        });
        app.apply(Command::Up);
        assert!(app.warmup.is_none(), "an ended warmup is dismissed");
    }

    /// Submitting a typed key asks for a lookup in the selected keyspace.
    #[test]
    fn lookup_asks_for_an_effect() {
        let mut app = app_with_rows();
        app.selected_keyspace = 1;
        app.apply(Command::Show(View::Lookup));
        assert_eq!(app.apply(Command::Submit), None, "nothing typed");
        for c in "user:7x".chars() {
            app.apply(Command::Input(c));
        }
        app.apply(Command::Erase);
        let effect = app.apply(Command::Submit);
        assert_eq!(
            effect,
            Some(Effect::Lookup {
                keyspace: "b".into(),
                key: "user:7".into()
            })
        );
        assert!(app.lookup.pending);
        app.on_lookup(LookupResult {
            keyspace: "b".into(),
            key: "user:7".into(),
            value: Some(b"v".to_vec()),
            owner: None,
            error: None,
        });
        assert!(!app.lookup.pending);
    }
}
