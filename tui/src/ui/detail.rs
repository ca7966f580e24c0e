//! The detail view of one keyspace: memory gauge, fetches/s and errors/s with the all-time
//! error counts, sparklines of gets/s and hit ratio over the last minutes, and the keyspace on
//! every node.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Row, Sparkline, Table, Widget};

use super::{bad, bytes, percent, rate, warn};
use crate::app::App;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(row) = app.selected_row() else {
        Paragraph::new("no keyspace to show: pick one in the Keyspaces view")
            .block(Block::default().borders(Borders::ALL).title(" Detail "))
            .render(area, buf);
        return;
    };
    let title = format!(
        " {} · {} node(s) · breaker {} ",
        row.name, row.nodes, row.breaker
    );
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let [gauge_area, rates, sparks, nodes] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(4),
        Constraint::Min(2),
    ])
    .areas(inner);

    let ratio = if row.capacity == 0 {
        0.0
    } else {
        (row.bytes as f64 / row.capacity as f64).clamp(0.0, 1.0)
    };
    Gauge::default()
        .ratio(ratio)
        .label(format!(
            "memory {} / {} · {} entries",
            bytes(row.bytes),
            bytes(row.capacity),
            row.entries
        ))
        .render(gauge_area, buf);
    let errors = row.peer_errors + row.source_errors + row.rate_limited;
    Paragraph::new(format!(
        "fetch/s {} · err/s {} · all-time errors: peer {} · source {} · limited {}",
        rate(row.fetches_per_s),
        rate(row.errors_per_s),
        row.peer_errors,
        row.source_errors,
        row.rate_limited
    ))
    .style(if errors > 0 { warn() } else { Style::default() })
    .render(rates, buf);

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(sparks);
    let history = app.history.get(&row.name);
    let gets: Vec<u64> = history.map_or(Vec::new(), |h| {
        h.gets_per_s.iter().map(|v| v.round() as u64).collect()
    });
    let hits: Vec<u64> = history.map_or(Vec::new(), |h| {
        h.hit_percent.iter().map(|v| v.round() as u64).collect()
    });
    let tail = |v: &[u64], width: u16| v[v.len().saturating_sub(width as usize)..].to_vec();
    Sparkline::default()
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(format!(" gets/s {} ", rate(row.gets_per_s))),
        )
        .data(tail(&gets, left.width))
        .render(left, buf);
    Sparkline::default()
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(format!(" hit ratio {} ", percent(row.hit_ratio))),
        )
        .data(tail(&hits, right.width))
        .max(100)
        .render(right, buf);

    let header = Row::new([
        "NODE", "ENTRIES", "BYTES", "GETS", "HIT", "LOADS", "ERRORS", "WARMED", "BREAKER",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let mut rows = Vec::new();
    if let Some(snapshot) = &app.snapshot {
        for node in &snapshot.nodes {
            if !node.up {
                rows.push(Row::new([node.id.clone(), "down".into()]).style(bad()));
                continue;
            }
            if let Some(k) = node.keyspaces.iter().find(|k| k.name == row.name) {
                let s = &k.stats;
                let hit = (s.gets > 0).then(|| s.cache_hits as f64 / s.gets as f64);
                rows.push(Row::new([
                    node.id.clone(),
                    (k.main_cache_entries + k.hot_cache_entries).to_string(),
                    bytes(k.main_cache_bytes + k.hot_cache_bytes),
                    s.gets.to_string(),
                    percent(hit),
                    s.loads.to_string(),
                    (s.local_load_errs + s.peer_errors).to_string(),
                    s.warmed_keys.to_string(),
                    k.circuit_breaker
                        .map_or("-".into(), |b| format!("{b:?}").to_lowercase()),
                ]));
            }
        }
    }
    let widths = [
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Min(6),
    ];
    Table::new(rows, widths).header(header).render(nodes, buf);
}
