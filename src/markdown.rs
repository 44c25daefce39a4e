//! Markdown tables for `bench` and the window experiment: `comfy-table`'s Markdown preset,
//! every column as wide as its widest cell (long names included), with the alignment
//! markers (`---:`) that make numbers line up once rendered.

use comfy_table::{presets::ASCII_MARKDOWN, CellAlignment, Table};

/// A column's name and whether its cells (numbers) align right.
pub(crate) type Column<'a> = (&'a str, bool);

/// A Markdown table of `columns` and `rows`, ending in a newline.
pub(crate) fn table(columns: &[Column<'_>], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(ASCII_MARKDOWN)
        .set_header(columns.iter().map(|(name, _)| *name));
    for row in rows {
        table.add_row(row);
    }
    for (column, (_, right)) in table.column_iter_mut().zip(columns) {
        if *right {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let text = table.to_string();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, line) in text.lines().enumerate() {
        if i == 1 {
            out.push_str(&separator(line, columns));
        } else {
            out.push_str(line.trim_end());
        }
        out.push('\n');
    }
    out
}

/// The header separator `|---|---|` with `:` at the end of each right-aligned column.
fn separator(line: &str, columns: &[Column<'_>]) -> String {
    let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
    let mut out = String::from("|");
    for (i, cell) in cells.iter().enumerate() {
        let right = columns.get(i).is_some_and(|(_, right)| *right);
        let width = cell.len().max(3);
        if right {
            out.push_str(&"-".repeat(width - 1));
            out.push(':');
        } else {
            out.push_str(&"-".repeat(width));
        }
        out.push('|');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_and_numbers_align_right() {
        let text = table(
            &[("a rather long column name", false), ("n", true)],
            [
                vec!["x".to_string(), "1".to_string()],
                vec![
                    "a much longer cell than the header".to_string(),
                    "12345".to_string(),
                ],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("| a rather long column name"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("|---") && lines[1].ends_with(":|"),
            "{text}"
        );
        assert!(!lines[1].contains(' '), "{text}");
        assert!(lines[2].ends_with("     1 |"), "right-aligned: {text}");
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(
            widths.windows(2).all(|w| w[0] == w[1]),
            "aligned rows: {text}"
        );
    }
}
