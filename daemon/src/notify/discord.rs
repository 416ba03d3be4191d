//! Discord webhooks: the headline as content, the facts in an embed, and no mention
//! ever pings anyone. Within Discord's limits: content 2,000 characters, an embed's
//! title 256 and description 4,096, all of an embed 6,000.

use serde_json::{json, Value};

use super::message::Message;
use conjunction_protocol::notify::NoticeKind;

/// Discord's limits on content and on an embed's title and description.
pub const CONTENT_CHARS: usize = 2000;
pub const TITLE_CHARS: usize = 256;
pub const DESCRIPTION_CHARS: usize = 4096;
/// The most characters of one line of people, so that both sides and the facts
/// above them fit in the description.
const PEOPLE_CHARS: usize = 1300;

fn cut(text: &str, keep: usize) -> String {
    match text.char_indices().nth(keep - 1) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

pub fn body(m: &Message) -> Value {
    let colour = match m.kind {
        NoticeKind::Broke | NoticeKind::TriggerFailed => 0xE0_5D_44,
        NoticeKind::Fixed => 0x44_CC_11,
        NoticeKind::NeedsBump | NoticeKind::Infra => 0xFE_7D_37,
        NoticeKind::Digest | NoticeKind::Test => 0x00_7E_C6,
    };
    let mut embed = json!({
        "title": cut(&m.headline(), TITLE_CHARS),
        "description": cut(
            &m.details_within(PEOPLE_CHARS, &|s: &str| s.chars().count()).join("\n"),
            DESCRIPTION_CHARS
        ),
        "color": colour,
    });
    if let Some(url) = &m.url {
        embed["url"] = json!(url);
    }
    json!({
        "content": cut(&m.headline(), CONTENT_CHARS),
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::{broke, crowd};

    #[test]
    fn a_break_pings_nobody_and_links_the_build() {
        let b = body(&broke());
        assert_eq!(b["content"], "apps/x broke with acme/lib 1.5.0");
        assert_eq!(b["allowed_mentions"]["parse"], json!([]));
        assert_eq!(b["embeds"][0]["url"], "https://ci.example/b/123");
        assert_eq!(b["embeds"][0]["color"], 14_703_940);
        assert!(b["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("acme/lib (upstream): Lu Chen"));
    }

    #[test]
    fn thirty_two_contacts_a_side_fit_discords_limits() {
        let m = Message {
            downstream_contacts: crowd("d"),
            upstream_contacts: crowd("u"),
            excerpt: Some("e".repeat(1200)),
            ..broke()
        };
        let b = body(&m);
        let chars = |v: &Value| v.as_str().unwrap().chars().count();
        let embed = &b["embeds"][0];
        assert!(chars(&b["content"]) <= CONTENT_CHARS);
        assert!(chars(&embed["title"]) <= TITLE_CHARS);
        let description = embed["description"].as_str().unwrap();
        assert!(description.chars().count() <= DESCRIPTION_CHARS);
        assert!(chars(&embed["title"]) + description.chars().count() <= 6000);
        assert!(
            description.contains("(upstream): ") && description.contains(" more"),
            "both sides named, the rest counted: {description}"
        );
    }
}
