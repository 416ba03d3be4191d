//! Discord webhooks: the headline as content, the facts in an embed, and no mention
//! ever pings anyone.

use serde_json::{json, Value};

use super::message::Message;
use conjunction_protocol::notify::NoticeKind;

/// Discord's limits on content and on an embed's description.
const CONTENT_CHARS: usize = 2000;
const DESCRIPTION_CHARS: usize = 4096;

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
        NoticeKind::Digest => 0x00_7E_C6,
    };
    let mut embed = json!({
        "title": cut(&m.headline(), 256),
        "description": cut(&m.details().join("\n"), DESCRIPTION_CHARS),
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
    use crate::notify::message::tests::broke;

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
}
