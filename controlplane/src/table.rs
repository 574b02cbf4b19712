//! Aligned text tables for `fanoutctl`'s human output.
//!
//! A dozen lines of our own instead of `comfy-table`/`tabled`: fanoutctl needs only left/right
//! aligned columns separated by two spaces (the look of `ip mroute` and `smcroutectl show`), no
//! borders, colours or terminal-width wrapping, and output that stays stable for scripts that
//! `grep`/`awk` it. Widths count characters, not bytes, so names with non-ASCII characters align.

use std::fmt::Write as _;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// For numbers.
    Right,
}

/// A table: a header row and data rows with the same number of cells.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| (*h).to_owned()).collect(),
            aligns: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are ignored.
    pub fn row<I, T>(&mut self, cells: I)
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut row: Vec<String> =
            cells.into_iter().take(self.headers.len()).map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the header and rows, each line ending in `\n`, without trailing spaces.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                std::iter::once(&self.headers[c])
                    .chain(self.rows.iter().map(|r| &r[c]))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c] - cell.chars().count();
                match self.aligns[c] {
                    Align::Left => {
                        let _ = write!(line, "{cell}{:pad$}", "");
                    }
                    Align::Right => {
                        let _ = write!(line, "{:pad$}{cell}", "");
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t =
            Table::new(&[("Name", Align::Left), ("Packets", Align::Right), ("Note", Align::Left)]);
        t.row(["veth0", "5", "é"]);
        t.row(["v1", "12345", ""]);
        t.row(["short"]);
        assert_eq!(t.render(), "Name   Packets  Note\nveth0        5  é\nv1       12345\nshort\n");
    }
}
