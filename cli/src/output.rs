//! Output for people (aligned tables, plain lines) and for scripts (JSON, one document per
//! command on stdout). Nothing is coloured and nothing animates when stdout is not a terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns and plain sentences.
    Table,
    /// One JSON document.
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Whether stdout is a terminal (progress and decorations only then).
pub fn interactive() -> bool {
    std::io::stdout().is_terminal()
}

/// A table with a header row, printed with columns aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print empty).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            text.trim_end().to_owned()
        };
        let mut out = line(&self.header);
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) -> anyhow::Result<()> {
        std::io::stdout()
            .lock()
            .write_all(self.render().as_bytes())?;
        Ok(())
    }
}

/// A byte count in binary units (`64.0 MiB`).
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// Text for a value: UTF-8 as is (shortened to `max` characters), otherwise a note.
pub fn preview(value: &[u8], max: usize) -> String {
    match std::str::from_utf8(value) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            let flat: String = text
                .chars()
                .map(|c| if c.is_whitespace() { ' ' } else { c })
                .collect();
            if flat.chars().count() > max {
                format!(
                    "{}…",
                    flat.chars().take(max.saturating_sub(1)).collect::<String>()
                )
            } else {
                flat
            }
        }
        _ => format!("<{} bytes of binary>", value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns line up and trailing spaces are trimmed.
    #[test]
    fn tables_align() {
        let mut t = Table::new(["NAME", "SIZE"]);
        t.row(["users", "1 B"]);
        t.row(["a", "64.0 MiB"]);
        assert_eq!(t.render(), "NAME   SIZE\nusers  1 B\na      64.0 MiB\n");
    }

    /// Sizes and previews read well.
    #[test]
    fn human_values() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(preview(b"hello\nworld", 20), "hello world");
        assert_eq!(preview(&[0, 1, 2], 20), "<3 bytes of binary>");
        assert_eq!(preview("é".repeat(30).as_bytes(), 5), "éééé…");
    }
}
