//! The key lookup: type a key of the selected keyspace, see its value preview, size and
//! owner node.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

use super::{bad, good, warn};
use crate::app::App;

/// Up to `lines` lines of a value: its text, or a hex dump when it is not UTF-8.
pub(crate) fn preview(value: &[u8], lines: usize) -> Vec<String> {
    match std::str::from_utf8(value) {
        Ok(text) => text.lines().take(lines).map(str::to_owned).collect(),
        Err(_) => value
            .chunks(16)
            .take(lines)
            .map(|c| {
                c.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect(),
    }
}

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::default().borders(Borders::ALL).title(" Key lookup ");
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(row) = app.selected_row() else {
        Paragraph::new("no keyspace to look in yet").render(inner, buf);
        return;
    };
    let [keyspace, input, result] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(1),
    ])
    .areas(inner);
    Paragraph::new(Line::from(vec![
        Span::raw("keyspace "),
        Span::styled(
            row.name.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            "  (↑↓ to change)",
            Style::default().add_modifier(Modifier::DIM),
        ),
    ]))
    .render(keyspace, buf);
    Paragraph::new(Line::from(vec![
        Span::raw("key "),
        Span::styled(
            format!("{}▏", app.lookup.input),
            Style::default().add_modifier(Modifier::BOLD),
        ),
    ]))
    .render(input, buf);

    let mut lines: Vec<Line> = Vec::new();
    if app.lookup.pending {
        lines.push(Line::styled("looking up…", warn()));
    } else if let Some(r) = &app.lookup.result {
        let owner = r
            .owner
            .as_ref()
            .map_or("owner unknown".to_owned(), |(id, addr)| {
                format!("owner {id} ({addr})")
            });
        match (&r.value, &r.error) {
            (_, Some(e)) => lines.push(Line::styled(format!("{}: error: {e}", r.key), bad())),
            (Some(v), None) => {
                lines.push(Line::from(vec![
                    Span::styled(format!("{} found", r.key), good()),
                    Span::raw(format!(" · {} bytes · {owner}", v.len())),
                ]));
                lines.push(Line::raw(""));
                let room = result.height.saturating_sub(2) as usize;
                lines.extend(preview(v, room).into_iter().map(Line::raw));
            }
            (None, None) => lines.push(Line::from(vec![
                Span::styled(format!("{} not found", r.key), warn()),
                Span::raw(format!(" · {owner}")),
            ])),
        }
    } else {
        lines.push(Line::styled(
            "type a key and press Enter: the value is read through the cache (a miss loads it)",
            Style::default().add_modifier(Modifier::DIM),
        ));
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(result, buf);
}
