//! Slack incoming webhooks: Block Kit, with the headline as the notification text,
//! every block within Block Kit's limits (a section's or a context element's text at
//! most 3,000 characters, at most 10 context elements, at most 50 blocks), so that
//! Slack never answers `invalid_blocks`.

use serde_json::{json, Value};

use super::message::Message;

/// Block Kit's limit on a text object's `text` (a section's, a context element's).
pub const TEXT_CHARS: usize = 3000;
/// The most elements of a context block.
const CONTEXT_ELEMENTS: usize = 10;

/// `&`, `<` and `>` are Slack's control characters: a project name or an excerpt must
/// not become a link or ping `<!channel>`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

/// The characters `text` takes once escaped, as Slack counts them.
fn escaped_chars(text: &str) -> usize {
    text.chars().map(escaped_len).sum()
}

/// `text` escaped, within `limit` characters: cut before escaping, so an entity is
/// never split (`&am…`), and ended with `…` when cut.
fn fit(text: &str, limit: usize) -> String {
    if escaped_chars(text) <= limit {
        return escape(text);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = escaped_len(c);
        // Room for the ellipsis.
        if used + n + 1 > limit {
            break;
        }
        push_escaped(&mut out, c);
        used += n;
    }
    out.push('…');
    out
}

/// A section of mrkdwn, already escaped and within the limit.
fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

pub fn body(m: &Message) -> Value {
    let headline = m.headline();
    // `*…*` takes two of the characters.
    let mut blocks = vec![section(format!("*{}*", fit(&headline, TEXT_CHARS - 2)))];
    let mut facts = Vec::new();
    if let Some(url) = &m.url {
        facts.push(format!(
            "<{}|build {} (attempt {})> {}",
            escape(url),
            m.build,
            m.attempt,
            m.state
        ));
    }
    if let Some(reason) = &m.reason {
        facts.push(escape(reason));
    }
    if !facts.is_empty() {
        let text = facts.join("\n");
        // The link's URL is never cut; a text that is still too long loses its end.
        let text = match text.char_indices().nth(TEXT_CHARS - 1) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        };
        blocks.push(section(text));
    }
    if let Some(e) = &m.excerpt {
        // Six characters of backticks around it.
        blocks.push(section(format!("```{}```", fit(e, TEXT_CHARS - 6))));
    }
    let people: Vec<Value> = m
        .details_within(TEXT_CHARS, &escaped_chars)
        .into_iter()
        .filter(|l| l.contains(": ") && !l.starts_with("build ") && !l.starts_with("> "))
        .filter(|l| Some(l) != m.reason.as_ref())
        .take(CONTEXT_ELEMENTS)
        .map(|l| json!({"type": "mrkdwn", "text": fit(&l, TEXT_CHARS)}))
        .collect();
    if !people.is_empty() {
        blocks.push(json!({"type": "context", "elements": people}));
    }
    json!({"text": fit(&headline, TEXT_CHARS), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::{broke, crowd};

    #[test]
    fn a_break_is_a_block_kit_message_with_the_headline_as_its_text() {
        let mut m = broke();
        m.excerpt = Some("expected <T> & got <!channel>".into());
        let b = body(&m);
        assert_eq!(b["text"], "apps/x broke with acme/lib 1.5.0");
        assert_eq!(
            b["blocks"][0]["text"]["text"],
            "*apps/x broke with acme/lib 1.5.0*"
        );
        assert_eq!(
            b["blocks"][1]["text"]["text"],
            "<https://ci.example/b/123|build 00000000000000000000000008 (attempt 1)> failed"
        );
        assert_eq!(
            b["blocks"][2]["text"]["text"],
            "```expected &lt;T&gt; &amp; got &lt;!channel&gt;```"
        );
        let people = b["blocks"][3]["elements"].as_array().unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(
            people[0]["text"],
            "apps/x: Ana Lima (maintainer) &lt;ana@acme.example&gt; @ana"
        );
    }

    /// Every text object of `b` within Block Kit's limits.
    fn within_block_kit(b: &Value) {
        let blocks = b["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        for block in blocks {
            let texts: Vec<&str> = match block["type"].as_str().unwrap() {
                "section" => vec![block["text"]["text"].as_str().unwrap()],
                "context" => {
                    let elements = block["elements"].as_array().unwrap();
                    assert!(!elements.is_empty() && elements.len() <= 10);
                    elements
                        .iter()
                        .map(|e| e["text"].as_str().unwrap())
                        .collect()
                }
                other => panic!("a {other} block"),
            };
            for t in texts {
                let n = t.chars().count();
                assert!((1..=TEXT_CHARS).contains(&n), "{n} characters: {t}");
            }
        }
    }

    #[test]
    fn thirty_two_contacts_on_each_side_fit_block_kit_with_the_rest_counted() {
        let m = Message {
            downstream_contacts: crowd("d"),
            upstream_contacts: crowd("u"),
            ..broke()
        };
        let b = body(&m);
        within_block_kit(&b);
        let context = b["blocks"][3]["elements"].as_array().unwrap();
        for element in context {
            let text = element["text"].as_str().unwrap();
            assert!(text.contains(" more"), "{text}");
        }
    }

    #[test]
    fn a_long_excerpt_is_cut_before_escaping_so_no_entity_is_split() {
        for shift in 0..6 {
            let mut m = broke();
            m.excerpt = Some(format!("{}{}", "x".repeat(shift), "a&b<c>".repeat(2000)));
            let b = body(&m);
            within_block_kit(&b);
            let text = b["blocks"][2]["text"]["text"].as_str().unwrap();
            let inner = text.trim_start_matches("```").trim_end_matches("```");
            let inner = inner.trim_end_matches('…');
            // What is left after the last entity is whole text, never half an entity.
            let tail = &inner[inner.rfind(';').map_or(0, |i| i + 1)..];
            assert!(!tail.contains('&'), "split entity at the end: {tail:?}");
            let bare = inner
                .replace("&amp;", "")
                .replace("&lt;", "")
                .replace("&gt;", "");
            assert!(!bare.contains('&'), "an entity was split ({shift})");
        }
    }
}
