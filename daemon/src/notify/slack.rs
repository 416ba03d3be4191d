//! Slack incoming webhooks: Block Kit, with the headline as the notification text.

use serde_json::{json, Value};

use super::message::Message;

/// Slack's limit on a section's text.
const SECTION_CHARS: usize = 3000;

/// `&`, `<` and `>` are Slack's control characters: a project name or an excerpt must
/// not become a link or ping `<!channel>`.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(text: String) -> String {
    match text.char_indices().nth(SECTION_CHARS - 1) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

pub fn body(m: &Message) -> Value {
    let headline = m.headline();
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(format!("*{}*", escape(&headline)))},
    })];
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
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(facts.join("\n"))},
        }));
    }
    if let Some(e) = &m.excerpt {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(format!("```{}```", escape(e)))},
        }));
    }
    let people: Vec<Value> = m
        .details()
        .into_iter()
        .filter(|l| l.contains(": ") && !l.starts_with("build ") && !l.starts_with("> "))
        .filter(|l| Some(l) != m.reason.as_ref())
        .map(|l| json!({"type": "mrkdwn", "text": escape(&l)}))
        .collect();
    if !people.is_empty() {
        blocks.push(json!({"type": "context", "elements": people}));
    }
    json!({"text": escape(&headline), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::broke;

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
}
