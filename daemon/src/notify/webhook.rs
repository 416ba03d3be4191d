//! The generic notification webhook: the notice as JSON (its words and its facts),
//! signed like triggers are, with the notice id as the delivery key.

use serde::Serialize;

use super::message::Message;
use conjunction_protocol::BuildId;

/// The body of a notification webhook.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    /// The notice's id: the same on every try, so a receiver can drop repeats.
    pub notice: BuildId,
    pub headline: String,
    pub text: String,
    #[serde(flatten)]
    pub message: &'a Message,
}

pub fn body(notice: BuildId, m: &Message) -> String {
    serde_json::to_string(&Body {
        notice,
        headline: m.headline(),
        text: m.text(),
        message: m,
    })
    .expect("messages serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::broke;

    #[test]
    fn the_body_carries_the_words_and_the_facts() {
        let json: serde_json::Value =
            serde_json::from_str(&body(BuildId(ulid::Ulid(9)), &broke())).unwrap();
        assert_eq!(json["notice"], "00000000000000000000000009");
        assert_eq!(json["kind"], "broke");
        assert_eq!(json["headline"], "apps/x broke with acme/lib 1.5.0");
        assert_eq!(json["upstream"], "acme/lib");
        assert_eq!(json["downstream_contacts"][0]["email"], "ana@acme.example");
    }
}
