//! The keyspaces view: every keyspace summed over the nodes that answered: entries, memory
//! against `max_bytes` as a gauge, and since the previous poll the hit ratio, gets/s, loads/s,
//! data-source fetches/s and errors/s; then the worst breaker state. The all-time error counts
//! are in the detail view.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget};

use super::{bad, percent, rate, selected, warn};
use crate::app::App;

/// A text gauge: `▇▇▇░░░░  42%`.
pub(crate) fn gauge(used: u64, capacity: u64, width: usize) -> String {
    let ratio = if capacity == 0 {
        0.0
    } else {
        (used as f64 / capacity as f64).clamp(0.0, 1.0)
    };
    let filled = (ratio * width as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "▇".repeat(filled),
        "░".repeat(width - filled),
        ratio * 100.0
    )
}

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::default().borders(Borders::ALL).title(" Keyspaces ");
    if app.rows.is_empty() {
        let text = if app.snapshot.is_none() {
            "waiting for the first answer…"
        } else {
            "no keyspaces yet: create one with `distcache keyspace create NAME …`"
        };
        Paragraph::new(text).block(block).render(area, buf);
        return;
    }
    let header = Row::new([
        "KEYSPACE", "ENTRIES", "MEMORY", "HIT", "GET/S", "LOAD/S", "FETCH/S", "ERR/S", "BREAKER",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = app.rows.iter().enumerate().map(|(i, r)| {
        let breaker_style = match r.breaker.as_str() {
            "open" => bad(),
            "half_open" => warn(),
            _ => Style::default(),
        };
        let errors_style = if r.errors_per_s > 0.0 {
            warn()
        } else {
            Style::default()
        };
        let row = Row::new([
            Cell::from(r.name.clone()),
            Cell::from(r.entries.to_string()),
            Cell::from(gauge(r.bytes, r.capacity, 6)),
            Cell::from(percent(r.hit_ratio)),
            Cell::from(rate(r.gets_per_s)),
            Cell::from(rate(r.loads_per_s)),
            Cell::from(rate(r.fetches_per_s)),
            Cell::from(rate(r.errors_per_s)).style(errors_style),
            Cell::from(r.breaker.clone()).style(breaker_style),
        ]);
        if i == app.selected_keyspace {
            row.style(selected())
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(11),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Min(6),
    ];
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(block)
        .render(area, buf);
}
