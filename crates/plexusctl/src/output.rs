//! Printing: aligned tables and fill bars for people, JSON and YAML for machines.
//!
//! Everything goes through one buffered stdout writer; a closed pipe
//! (`plexusctl showalloc | head`) surfaces as [`CtlError::Output`] with `BrokenPipe`,
//! which `main` treats as a normal end.

use std::io::{self, Write};

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::{CtlError, CtlResult};

/// A buffered, locked stdout.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Maps a write error to [`CtlError::Output`].
pub fn out_err(e: io::Error) -> CtlError {
    CtlError::Output(e)
}

/// Writes `value` as JSON (pretty) or YAML, followed by a newline for JSON. Times of the
/// store's records (Unix seconds in `created_at`, `at`, …) are written as RFC 3339
/// ([`crate::timefmt`]), like everywhere else plexusctl prints a time.
pub fn write_structured<T: Serialize + ?Sized>(
    out: &mut impl Write,
    format: OutputFormat,
    value: &T,
) -> CtlResult<()> {
    let mut value = serde_json::to_value(value)
        .map_err(|e| CtlError::Internal(format!("cannot render the output: {e}")))?;
    crate::timefmt::times_to_text(&mut value);
    match format {
        OutputFormat::Yaml => {
            let text = serde_norway::to_string(&value)
                .map_err(|e| CtlError::Internal(format!("cannot render YAML: {e}")))?;
            out.write_all(text.as_bytes()).map_err(out_err)
        }
        _ => {
            serde_json::to_writer_pretty(&mut *out, &value)
                .map_err(|e| CtlError::Output(e.into()))?;
            out.write_all(b"\n").map_err(out_err)
        }
    }
}

/// A table of text cells, printed with columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns aligned to the right (numbers).
    right: Vec<usize>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            ..Table::default()
        }
    }

    /// Right-aligns the given columns.
    #[must_use]
    pub fn right_aligned(mut self, columns: &[usize]) -> Table {
        self.right = columns.to_vec();
        self
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table; the last column is not padded.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    text.push_str("  ");
                }
                if self.right.contains(&i) {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if i + 1 < columns {
                        text.push_str(&" ".repeat(pad));
                    }
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(&self.header, out)?;
        for row in &self.rows {
            line(row, out)?;
        }
        Ok(())
    }
}

/// A fill bar such as `[######--------------]` of `width` cells for `ratio` in 0..=1.
///
/// Any non-zero fill shows at least one cell and anything short of full leaves at least
/// one empty cell, so "almost empty" and "almost full" are never drawn as 0 % or 100 %.
pub fn bar(ratio: f64, width: usize) -> String {
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // The product is within 0..=width, so the cast cannot truncate meaningfully.
    let mut filled = (ratio * width as f64).round() as usize;
    if ratio > 0.0 && filled == 0 {
        filled = 1;
    }
    if ratio < 1.0 && filled == width && width > 0 {
        filled = width - 1;
    }
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// Shades for a heat-map cell from empty to full.
pub const SHADES: [char; 5] = ['·', '░', '▒', '▓', '█'];

/// The heat-map shade of a fill ratio: `·` empty, `█` full, three steps between.
pub fn shade(ratio: f64) -> char {
    if ratio.is_nan() || ratio <= 0.0 {
        SHADES[0]
    } else if ratio >= 1.0 {
        SHADES[4]
    } else if ratio < 1.0 / 3.0 {
        SHADES[1]
    } else if ratio < 2.0 / 3.0 {
        SHADES[2]
    } else {
        SHADES[3]
    }
}

/// `part / whole` as a percentage with one decimal ("0.0" for an empty whole).
pub fn percent(part: u128, whole: u128) -> String {
    if whole == 0 {
        return "0.0".to_string();
    }
    // Lossy above 2^53, which only matters in the 16th digit.
    format!("{:.1}", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_pads_and_right_aligns() {
        let mut t = Table::new(&["NAME", "SIZE", "NOTE"]).right_aligned(&[1]);
        t.row(vec!["a".into(), "1000".into(), "x".into()]);
        t.row(vec!["long-name".into(), "7".into(), "".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME       SIZE  NOTE\na          1000  x\nlong-name     7\n"
        );
    }

    #[test]
    fn bars_and_shades_never_hide_extremes() {
        assert_eq!(bar(0.0, 4), "[----]");
        assert_eq!(bar(0.001, 4), "[#---]");
        assert_eq!(bar(0.999, 4), "[###-]");
        assert_eq!(bar(1.0, 4), "[####]");
        assert_eq!(bar(f64::NAN, 2), "[--]");
        assert_eq!(shade(0.0), '·');
        assert_eq!(shade(0.01), '░');
        assert_eq!(shade(0.5), '▒');
        assert_eq!(shade(0.9), '▓');
        assert_eq!(shade(1.0), '█');
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(5, 0), "0.0");
    }

    proptest! {
        #[test]
        fn bar_has_fixed_width(ratio in -1.0f64..2.0, width in 2usize..80) {
            let b = bar(ratio, width);
            prop_assert_eq!(b.chars().count(), width + 2);
            let filled = b.chars().filter(|c| *c == '#').count();
            prop_assert_eq!(filled == 0, ratio <= 0.0);
            prop_assert_eq!(filled == width, ratio >= 1.0);
        }
    }
}
