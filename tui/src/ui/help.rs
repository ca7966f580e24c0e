//! The key bindings, over whatever is on screen (`?`).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

const BINDINGS: &[(&str, &str)] = &[
    ("1 / c", "cluster: nodes, roles, leader"),
    ("2 / k", "keyspaces: memory, hits, rates"),
    ("3 / d", "detail of the selected keyspace"),
    ("4 / l /", "look a key up"),
    ("Tab", "next view"),
    ("↑ ↓ j", "select"),
    ("Enter", "open detail / look up"),
    ("w", "warm up the selected keyspace"),
    ("Esc", "back, close this help"),
    ("?", "show or hide this help"),
    ("q Ctrl-C", "quit"),
];

/// A yes/no question over the screen.
pub(super) fn confirm(area: Rect, buf: &mut Buffer, question: &str) {
    let width = (question.chars().count() as u16 + 4).clamp(20, area.width.max(1));
    let height = 4.min(area.height);
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    Clear.render(popup, buf);
    Paragraph::new(format!(" {question}\n y: yes   n: no"))
        .block(Block::default().borders(Borders::ALL).title(" confirm "))
        .render(popup, buf);
}

pub(super) fn render(area: Rect, buf: &mut Buffer) {
    let width = 46.min(area.width);
    let height = (BINDINGS.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    Clear.render(popup, buf);
    let text: Vec<String> = BINDINGS
        .iter()
        .map(|(k, v)| format!(" {k:<9} {v}"))
        .collect();
    Paragraph::new(text.join("\n"))
        .block(Block::default().borders(Borders::ALL).title(" keys "))
        .render(popup, buf);
}
