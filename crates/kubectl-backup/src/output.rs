//! Terminal presentation: colour and symbols only on a terminal, aligned tables, relative times.

use jiff::{SignedDuration, Timestamp};

/// How output is decorated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// stdout is a terminal: live progress lines and symbols.
    pub tty: bool,
    /// ANSI colour (a terminal, and `NO_COLOR` unset).
    pub color: bool,
}

impl Style {
    /// Plain text, for pipes, files and tests.
    pub const PLAIN: Style = Style {
        tty: false,
        color: false,
    };

    /// From the environment: a terminal gets symbols, and colour unless `NO_COLOR` is set (no-color.org).
    pub fn detect(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Style {
        Style {
            tty: stdout_is_terminal,
            color: stdout_is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// `text` in `color` when colour is on.
    pub fn paint(&self, color: Color, text: &str) -> String {
        if self.color && color != Color::None {
            format!("\x1b[{}m{text}\x1b[0m", color as u8)
        } else {
            text.to_string()
        }
    }

    /// `✓ yes` / `✗ no` on a terminal, `True` / `False` otherwise (what kubectl prints for conditions).
    pub fn verdict(&self, ok: bool, yes: &str, no: &str) -> Cell {
        let text = match (self.tty, ok) {
            (true, true) => format!("✓ {yes}"),
            (true, false) => format!("✗ {no}"),
            (false, true) => yes.to_string(),
            (false, false) => no.to_string(),
        };
        Cell::colored(text, if ok { Color::Green } else { Color::Red })
    }
}

/// ANSI foreground colours used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// No colour.
    None = 0,
    /// Failures.
    Red = 31,
    /// Success.
    Green = 32,
    /// Warnings, pending.
    Yellow = 33,
}

/// One table cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The visible text.
    pub text: String,
    /// Its colour on a colour terminal.
    pub color: Color,
}

impl Cell {
    /// A coloured cell.
    pub fn colored(text: impl Into<String>, color: Color) -> Cell {
        Cell {
            text: text.into(),
            color,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::colored(text, Color::None)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::colored(text, Color::None)
    }
}

/// Renders rows under upper-case headers, columns separated by three spaces like kubectl, padded by visible
/// width so colour codes do not break alignment. The last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<Cell>], style: &Style) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(&cell.text));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<(String, usize)>| {
        let last = cells.len() - 1;
        let mut text = String::new();
        for (i, (cell, visible)) in cells.into_iter().enumerate() {
            text.push_str(&cell);
            if i < last {
                text.push_str(&" ".repeat(widths[i] - visible + 3));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.iter().map(|h| (h.to_string(), width(h))).collect());
    for row in rows {
        line(
            row.iter()
                .map(|c| (style.paint(c.color, &c.text), width(&c.text)))
                .collect(),
        );
    }
    out
}

/// `then` relative to `now`: `45s ago`, `3h ago`, `in 5m`; kubectl-like granularity (the largest unit).
pub fn relative(then: Timestamp, now: Timestamp) -> String {
    let d = now.duration_since(then);
    if d.is_negative() {
        format!("in {}", short_age(-d))
    } else {
        format!("{} ago", short_age(d))
    }
}

/// `45s`, `12m`, `3h`, `4d` (hours up to two days, as `kubectl get` shows ages).
pub fn short_age(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// The first line of `text`, cut to `max` characters with an ellipsis.
pub fn short(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= max && !text.trim().contains('\n') {
        return line.to_string();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn relative_times_use_the_largest_sensible_unit_in_both_directions() {
        let now = ts("2026-03-01T12:00:00Z");
        assert_eq!(relative(ts("2026-03-01T11:59:15Z"), now), "45s ago");
        assert_eq!(relative(ts("2026-03-01T11:30:00Z"), now), "30m ago");
        assert_eq!(relative(ts("2026-03-01T09:00:00Z"), now), "3h ago");
        assert_eq!(relative(ts("2026-02-25T12:00:00Z"), now), "4d ago");
        assert_eq!(relative(ts("2026-03-02T02:00:00Z"), now), "in 14h");
    }

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        let os = |s: &str| std::ffi::OsString::from(s);
        assert!(Style::detect(true, None).color);
        assert!(!Style::detect(true, Some(&os("1"))).color);
        assert!(
            Style::detect(true, Some(&os(""))).color,
            "an empty NO_COLOR does not count"
        );
        assert_eq!(Style::detect(false, None), Style::PLAIN);
    }

    #[test]
    fn tables_align_by_visible_width_even_with_colour_codes() {
        let style = Style {
            tty: true,
            color: true,
        };
        let rows = vec![
            vec![
                Cell::from("a"),
                style.verdict(true, "True", "False"),
                "x".into(),
            ],
            vec![
                Cell::from("long-name"),
                style.verdict(false, "True", "False"),
                "y".into(),
            ],
        ];
        let out = table(&["NAME", "READY", "NOTE"], &rows, &style);
        let plain: String = out
            .replace("\x1b[32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert_eq!(
            plain,
            "NAME        READY     NOTE\na           ✓ True    x\nlong-name   ✗ False   y\n"
        );
        assert!(out.contains("\x1b[32m✓ True\x1b[0m"));
    }

    #[test]
    fn short_keeps_the_first_line_and_marks_cuts() {
        assert_eq!(short("ok", 10), "ok");
        assert_eq!(short("\nfirst line\nsecond", 40), "first line…");
        assert_eq!(short("abcdefghijkl", 6), "abcde…");
    }
}
