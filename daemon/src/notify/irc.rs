//! An IRC notice: a few lines, each within what one message holds (said by
//! [`crate::channels`]'s IRC client).

use super::message::Message;

/// The most lines one notice takes, and the most bytes of text per line (a line is at
/// most 512 bytes with the command, the target and CRLF).
const MAX_LINES: usize = 6;
pub const LINE_BYTES: usize = 400;

/// The lines said for `m`: the headline, the build, then who is on each side, as many
/// people as a line holds and the rest counted.
pub fn lines(m: &Message) -> Vec<String> {
    std::iter::once(m.headline())
        .chain(
            m.details_within(LINE_BYTES, &|s: &str| s.len())
                .into_iter()
                .filter(|l| !l.starts_with("> ")),
        )
        .map(|l| clip(&l.replace(['\r', '\n'], " ")))
        .take(MAX_LINES)
        .collect()
}

fn clip(line: &str) -> String {
    if line.len() <= LINE_BYTES {
        return line.to_owned();
    }
    let cut = (0..=LINE_BYTES)
        .rev()
        .find(|&i| line.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &line[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::broke;

    #[test]
    fn a_notice_is_a_few_lines_without_the_excerpt() {
        let said = lines(&broke());
        assert_eq!(
            said,
            [
                "apps/x broke with acme/lib 1.5.0",
                "build 00000000000000000000000008 (attempt 1) failed: https://ci.example/b/123",
                "apps/x: Ana Lima (maintainer) <ana@acme.example> @ana",
                "acme/lib (upstream): Lu Chen",
            ]
        );
        assert_eq!(clip(&"é".repeat(300)).len(), 400 + '…'.len_utf8());
    }

    #[test]
    fn a_crowd_is_said_within_a_line_with_the_rest_counted() {
        let m = Message {
            downstream_contacts: crate::notify::message::tests::crowd("d"),
            ..broke()
        };
        let said = lines(&m);
        let people = &said[2];
        assert!(people.len() <= LINE_BYTES, "{people}");
        assert!(
            people.ends_with(" more") && !people.ends_with('…'),
            "{people}"
        );
    }
}
