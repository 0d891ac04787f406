//! Plain-text tables and field lists for people reading a terminal. Chinese characters take two
//! columns in a terminal, so widths are counted in columns, not characters.

use gridwalk_core::Timestamp;

/// Columns a character takes in a terminal: two for the East Asian wide and full-width ranges
/// (Han, kana, Hangul, full-width punctuation), one otherwise. That covers every script the
/// store holds without a width table.
fn char_width(c: char) -> usize {
    match c as u32 {
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

pub fn width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// `text` on one line, cut to at most `max` columns with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if width(&one_line) <= max {
        return one_line;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in one_line.chars() {
        let w = char_width(c);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

fn pad(text: &str, to: usize) -> String {
    let mut out = text.to_string();
    out.extend(std::iter::repeat_n(' ', to.saturating_sub(width(text))));
    out
}

/// A table: a header row and rows of cells, laid out in columns two spaces apart.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let line = |cells: &[String]| {
            let last = cells.len().saturating_sub(1);
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| if i == last { cell.clone() } else { pad(cell, *w) })
                .collect();
            // An empty last cell would otherwise leave the separator dangling at the end.
            text.join("  ").trim_end().to_string()
        };
        let mut out = vec![line(&self.header)];
        out.extend(self.rows.iter().map(|row| line(row)));
        out.join("\n")
    }
}

/// Labelled lines (`label  value`), the labels padded to one width; empty values are left out.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let label_width = pairs.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(l, v)| format!("  {}  {}", pad(l, label_width), v))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A stored time (milliseconds) as local wall-clock text; empty when there is none.
pub fn time_text(ms: Option<i64>) -> String {
    ms.and_then(|m| Timestamp::from_millis(m).ok()).map(|t| t.display()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_takes_two_columns_and_clipping_respects_it() {
        assert_eq!(width("路灯ab"), 6);
        assert_eq!(clip("村道没有路灯晚上很黑", 9), "村道没有…");
        assert_eq!(width(&clip("村道没有路灯晚上很黑", 9)), 9);
        assert_eq!(clip("short", 9), "short");
    }

    #[test]
    fn columns_line_up_by_display_width() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["路灯".into(), "x".into()]);
        t.row(vec!["abc".into(), "y".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["A     B", "路灯  x", "abc   y"]);
    }
}
