//! The cluster view: every node with health, raft role, leader, term, applied revision, when
//! it last answered, address and how it finds its peers. A node that does not answer is red
//! and says why.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget, Wrap};

use super::{bad, good, selected, warn};
use crate::app::App;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::default().borders(Borders::ALL).title(" Nodes ");
    let Some(snapshot) = &app.snapshot else {
        Paragraph::new("waiting for the first answer…")
            .block(block)
            .render(area, buf);
        return;
    };
    if snapshot.nodes.is_empty() {
        Paragraph::new("no node answered: is the endpoint right, and is the cluster running?")
            .wrap(Wrap { trim: true })
            .block(block)
            .render(area, buf);
        return;
    }
    let header = Row::new([
        "NODE",
        "STATE",
        "ROLE",
        "LEADER",
        "TERM",
        "REV",
        "SEEN",
        "ADDRESS",
        "DISCOVERY",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = snapshot.nodes.iter().enumerate().map(|(i, node)| {
        let (state, style) = match (node.up, node.ready) {
            (false, _) => ("down", bad()),
            (true, false) => ("start", warn()),
            (true, true) => ("up", good()),
        };
        let (role, leader, term, rev) = match &node.cluster {
            Some(c) => (
                format!("{:?}", c.role).to_lowercase(),
                c.leader.clone().unwrap_or_else(|| "-".into()),
                c.term.to_string(),
                c.applied_revision.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let row = Row::new([
            Cell::from(node.id.clone()),
            Cell::from(state).style(style),
            Cell::from(role),
            Cell::from(leader),
            Cell::from(term),
            Cell::from(rev),
            Cell::from(seen(node, snapshot.at)),
            Cell::from(node.addr.clone()),
            Cell::from(node.discovery.clone().unwrap_or_else(|| "-".into())),
        ]);
        let row = if node.up { row } else { row.style(bad()) };
        if i == app.selected_node {
            row.style(if node.up {
                selected()
            } else {
                bad().add_modifier(Modifier::REVERSED)
            })
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(12),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(21),
        Constraint::Min(3),
    ];
    let down: Vec<&crate::model::NodeView> = snapshot.nodes.iter().filter(|n| !n.up).collect();
    let table_height = snapshot.nodes.len() as u16 + 3;
    let (table_area, note_area) = if down.is_empty() || area.height <= table_height + 1 {
        (area, None)
    } else {
        let split = Rect {
            height: table_height,
            ..area
        };
        let rest = Rect {
            y: area.y + table_height,
            height: area.height - table_height,
            ..area
        };
        (split, Some(rest))
    };
    Table::new(rows, widths)
        .header(header)
        .block(block)
        .render(table_area, buf);
    if let Some(note) = note_area {
        let lines: Vec<Line> = down
            .iter()
            .map(|n| {
                Line::styled(
                    format!(
                        " {} is down: {}",
                        n.id,
                        n.error.as_deref().unwrap_or("no answer")
                    ),
                    bad(),
                )
            })
            .collect();
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .render(note, buf);
    }
}

/// When `node` last answered, against the poll at `now`: `now`, `12s`, or `never`.
fn seen(node: &crate::model::NodeView, now: f64) -> String {
    match (node.up, node.last_seen) {
        (true, _) => "now".into(),
        (false, Some(at)) => format!("{:.0}s", (now - at).max(0.0)),
        (false, None) => "never".into(),
    }
}
