//! Drawing the dashboard: `impl Widget for &App`, one file per panel. Rendering reads only the
//! app's state (no clock, no I/O), so every panel is tested on ratatui's `TestBackend`.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::app::{App, View};

mod cluster;
mod detail;
mod help;
mod keyspaces;
mod lookup;

/// Style of something broken (a node down, a breaker open).
pub(crate) fn bad() -> Style {
    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
}

/// Style of something fine.
pub(crate) fn good() -> Style {
    Style::default().fg(Color::Green)
}

/// Style of something in between (starting, half-open).
pub(crate) fn warn() -> Style {
    Style::default().fg(Color::Yellow)
}

/// Style of the selected row.
pub(crate) fn selected() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

/// Bytes in binary units, short (`1.2M`, `64.0M`, `512B`).
pub(crate) fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec_short().to_string()
}

/// A rate, short (`0`, `3.5`, `120`, `12k`).
pub(crate) fn rate(r: f64) -> String {
    if r <= 0.0 {
        "0".into()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else if r < 10_000.0 {
        format!("{r:.0}")
    } else {
        format!("{:.0}k", r / 1000.0)
    }
}

/// A ratio as a percentage, or `-`.
pub(crate) fn percent(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

/// One line on the warmup the dashboard follows.
pub(crate) fn warmup_status(p: &crate::app::WarmupProgress) -> String {
    match (&p.run, &p.error) {
        (_, Some(e)) => format!("warmup of {}: {e}", p.keyspace),
        (None, None) => format!("warmup of {}: starting…", p.keyspace),
        (Some(run), None) => {
            let done = run.warmed + run.failed + run.skipped;
            format!(
                "warmup of {}: {done}/{} keys, {} warmed, {} failed{}",
                p.keyspace,
                run.planned,
                run.warmed,
                run.failed,
                if run.done { " · done" } else { "…" }
            )
        }
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [header, tabs, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
        self.header(header, buf);
        self.tabs(tabs, buf);
        match self.view {
            View::Cluster => cluster::render(self, body, buf),
            View::Keyspaces => keyspaces::render(self, body, buf),
            View::Detail => detail::render(self, body, buf),
            View::Lookup => lookup::render(self, body, buf),
        }
        self.footer(footer, buf);
        if self.help {
            help::render(area, buf);
        }
        if let Some(keyspace) = &self.confirm {
            help::confirm(
                area,
                buf,
                &format!("Warm up `{keyspace}` across the cluster?"),
            );
        }
    }
}

impl App {
    fn header(&self, area: Rect, buf: &mut Buffer) {
        let mut spans = vec![
            Span::styled(" distcache ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("· {} ", self.endpoint)),
        ];
        match &self.snapshot {
            None => spans.push(Span::styled("· connecting…", warn())),
            Some(s) => {
                let up = s.nodes.iter().filter(|n| n.up).count();
                let nodes_style = if up == s.nodes.len() && up > 0 {
                    good()
                } else {
                    bad()
                };
                if let Some(c) = s.cluster() {
                    let leader = c.leader.clone().unwrap_or_else(|| "none".into());
                    let leader_style = if c.leader.is_some() {
                        Style::default()
                    } else {
                        bad()
                    };
                    spans.push(Span::raw("· leader "));
                    spans.push(Span::styled(leader, leader_style));
                    spans.push(Span::raw(format!(
                        " · term {} · rev {} ",
                        c.term, c.applied_revision
                    )));
                }
                spans.push(Span::styled(
                    format!("· {up}/{} up", s.nodes.len()),
                    nodes_style,
                ));
            }
        }
        Paragraph::new(Line::from(spans)).render(area, buf);
    }

    fn tabs(&self, area: Rect, buf: &mut Buffer) {
        let mut spans = Vec::new();
        for (i, view) in View::ALL.iter().enumerate() {
            let text = format!(" {} {} ", i + 1, view.title());
            let style = if *view == self.view {
                Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else {
                Style::default()
            };
            spans.push(Span::styled(text, style));
            spans.push(Span::raw(" "));
        }
        Paragraph::new(Line::from(spans)).render(area, buf);
    }

    fn footer(&self, area: Rect, buf: &mut Buffer) {
        if let Some(progress) = &self.warmup {
            let text = warmup_status(progress);
            Paragraph::new(Span::styled(
                format!(" {text}"),
                Style::default().add_modifier(Modifier::BOLD),
            ))
            .render(area, buf);
            return;
        }
        let hints = match self.view {
            View::Cluster => "↑↓ select  Tab/1-4 views  ? help  q quit",
            View::Keyspaces => "↑↓ select  Enter detail  w warm up  / lookup  ? help  q quit",
            View::Detail => "↑↓ keyspace  w warm up  Esc back  ? help  q quit",
            View::Lookup => "type a key, Enter look up  ↑↓ keyspace  Esc back",
        };
        let refresh = format!("every {}s ", self.interval.as_secs_f64());
        let width = area.width as usize;
        let text = if hints.chars().count() + refresh.len() + 2 <= width {
            format!(
                " {hints}{}{refresh}",
                " ".repeat(width - hints.chars().count() - refresh.len() - 1)
            )
        } else {
            format!(" {hints}")
        };
        Paragraph::new(Span::styled(
            text,
            Style::default().add_modifier(Modifier::DIM),
        ))
        .render(area, buf);
    }
}
