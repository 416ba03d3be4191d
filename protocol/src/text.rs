//! What text the protocol accepts. Every field is shown somewhere: in the terminal UI,
//! in `conjunction projects` and `tree`, in notifications. A newline in a name prints
//! a fake line there, and a bidirectional override (U+202E) makes text read
//! differently from what it is, so single-line fields refuse both.

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
