//! What text the protocol accepts. Every field is shown somewhere: in the terminal UI,
//! in `conjunction projects` and `tree`, in notifications. A newline in a name prints
//! a fake line there, and a bidirectional override (U+202E) makes text read
//! differently from what it is, so single-line fields refuse both. A log is another
//! matter: real ones are coloured and have Windows line ends, so [`clean_log`] makes
//! one printable instead of refusing it.

use std::borrow::Cow;

use crate::error::ValidationError;

/// How a field may be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One line: no control characters at all, no line or paragraph separators.
    Line,
    /// Free text, such as a failure summary: newlines and tabs are allowed.
    Lines,
}

/// Characters that reorder or hide the text around them (the "Trojan Source" set:
/// embeddings, overrides, isolates and directional marks), and invisible ones.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// What a log's character becomes where it cannot be shown as itself.
pub const REPLACEMENT: char = '\u{FFFD}';

/// A log as it can be shown: terminal escape sequences (colours, cursor moves, OSC 8
/// links: `CARGO_TERM_COLOR=always`, pytest `--color=yes`, Criterion) and the C0
/// controls a terminal acts on (a bell, a backspace) taken out by anstream's parser, a
/// leading byte-order mark dropped, CRLF and a lone CR (a progress line redrawn in
/// place) turned into LF, and every other control, invisible or text-direction
/// character (C1 controls, U+202E) replaced by U+FFFD. What comes out passes
/// [`check_text`] with [`Layout::Lines`]; text that needs nothing is borrowed.
pub fn clean_log(text: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        c == '\r' || c == '\u{1b}' || (c.is_control() && c != '\n' && c != '\t') || is_deceptive(c)
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let stripped = anstream::adapter::strip_str(text).to_string();
    let mut out = String::with_capacity(stripped.len());
    let mut chars = stripped.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_deceptive(c) => out.push(REPLACEMENT),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Checks one text field: not empty when `required`, at most `max` bytes, and only
/// characters that print as themselves. The message never repeats the value.
pub fn check_text(
    field: &str,
    value: &str,
    max: usize,
    required: bool,
    layout: Layout,
) -> Result<(), ValidationError> {
    if required && value.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.len() > max {
        return Err(ValidationError::new(
            field,
            format!("{field} is {} bytes long; the limit is {max}", value.len()),
        ));
    }
    let bad = |c: char| match layout {
        Layout::Line => c.is_control() || c == '\u{2028}' || c == '\u{2029}',
        Layout::Lines => c.is_control() && c != '\n' && c != '\t',
    };
    if let Some(c) = value.chars().find(|&c| bad(c)) {
        let what = match layout {
            Layout::Line => "is one line and must not contain control characters",
            Layout::Lines => "must not contain control characters other than newlines and tabs",
        };
        return Err(ValidationError::new(
            field,
            format!("{field} {what} (found U+{:04X})", u32::from(c)),
        ));
    }
    if let Some(c) = value.chars().find(|&c| is_deceptive(c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} must not contain invisible or text-direction characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coloured_windows_log_becomes_plain_lines() {
        let log = "\u{feff}\u{1b}[1m\u{1b}[31merror\u{1b}[0m: boom\r\n  --> src/lib.rs:1:1\r\n";
        assert_eq!(clean_log(log), "error: boom\n  --> src/lib.rs:1:1\n");
        // A progress line redrawn in place, an OSC 8 link, a bell and a backspace.
        let tty = "Warming up\r\u{1b}[KCollecting\r\u{1b}]8;;https://x.example\u{7}link\u{1b}]8;;\u{7} a\u{8}b\u{7}";
        assert_eq!(clean_log(tty), "Warming up\nCollecting\nlink ab");
        // What prints as something else is shown as U+FFFD.
        assert_eq!(
            clean_log("a\u{202E}b\u{85}c\u{c}d"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d"
        );
        for cleaned in [clean_log(log), clean_log(tty), clean_log("x\u{202E}\u{0}")] {
            check_text("summary", &cleaned, 1000, false, Layout::Lines).unwrap();
        }
        assert!(matches!(clean_log("plain\n\tlog"), Cow::Borrowed(_)));
    }

    #[test]
    fn one_line_fields_refuse_line_breaks_tabs_and_direction_overrides() {
        for bad in [
            "acme\nfake line",
            "a\tb",
            "a\rb",
            "evil\u{202E}txt.exe",
            "a\u{2066}b",
            "a\u{2028}b",
            "a\u{200B}b",
            "\u{1b}[31mred",
            "a\u{85}b",
        ] {
            let e = check_text("name", bad, 100, true, Layout::Line).unwrap_err();
            assert_eq!(e.field, "name");
            assert!(!e.message.contains(bad), "the value is not repeated: {e}");
        }
        for good in [
            "Ana Ortiz",
            "José Müller",
            "日本語",
            "release/1.x",
            "🚀 rocket",
        ] {
            check_text("name", good, 100, true, Layout::Line).unwrap();
        }
    }

    #[test]
    fn free_text_keeps_newlines_and_tabs_but_not_overrides_or_escapes() {
        check_text("summary", "line one\n\tline two", 100, false, Layout::Lines).unwrap();
        for bad in ["a\u{202E}b", "a\u{1b}]8;;http://x\u{7}b", "a\rb"] {
            assert!(
                check_text("summary", bad, 100, false, Layout::Lines).is_err(),
                "{bad:?}"
            );
        }
    }
}
