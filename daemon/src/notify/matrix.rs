//! Matrix: an `m.notice` sent with the client-server API, its transaction id the
//! notice's own id, so a retry after an unknown outcome is not posted twice. The send
//! API takes a room id (`!abc:example.org`); a room alias (`#builds:example.org`) is
//! first resolved to one through the room directory.

use serde_json::{json, Value};

use super::message::Message;

/// `PUT {homeserver}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`.
pub fn url(homeserver: &str, room: &str, txn: &str) -> String {
    format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        homeserver.trim_end_matches('/'),
        urlencoding::encode(room),
        urlencoding::encode(txn)
    )
}

/// `GET {homeserver}/_matrix/client/v3/directory/room/{alias}`: the room an alias
/// names.
pub fn directory_url(homeserver: &str, alias: &str) -> String {
    format!(
        "{}/_matrix/client/v3/directory/room/{}",
        homeserver.trim_end_matches('/'),
        urlencoding::encode(alias)
    )
}

/// The room id of a directory answer (`{"room_id": "!abc:example.org", "servers": …}`).
pub fn room_in(answer: &[u8]) -> Option<String> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    let id = answer["room_id"].as_str()?;
    id.starts_with('!').then(|| id.to_owned())
}

/// The most characters of one line of people: a notice stays far below the 64 KiB
/// Matrix allows an event.
pub const PEOPLE_CHARS: usize = 3000;

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn body(m: &Message) -> Value {
    let headline = m.headline();
    let mut formatted = format!("<b>{}</b>", html(&headline));
    if let Some(url) = &m.url {
        formatted.push_str(&format!(
            "<br><a href=\"{}\">build {} (attempt {})</a> {}",
            html(url),
            m.build,
            m.attempt,
            m.state
        ));
    }
    let details = m.details_within(PEOPLE_CHARS, &|s: &str| s.chars().count());
    for line in details.iter().filter(|l| !l.starts_with("build ")) {
        formatted.push_str(&format!("<br>{}", html(line)));
    }
    let mut text = m.headline();
    for line in &details {
        text.push('\n');
        text.push_str(line);
    }
    json!({
        "msgtype": "m.notice",
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::broke;

    #[test]
    fn a_notice_is_sent_to_the_room_under_its_own_transaction_id() {
        assert_eq!(
            url("https://matrix.example.org/", "!abc:example.org", "01J0"),
            "https://matrix.example.org/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message/01J0"
        );
        let b = body(&broke());
        assert_eq!(b["msgtype"], "m.notice");
        assert!(b["body"]
            .as_str()
            .unwrap()
            .starts_with("apps/x broke with acme/lib 1.5.0\n"));
        assert!(b["formatted_body"]
            .as_str()
            .unwrap()
            .contains("&lt;ana@acme.example&gt;"));
    }

    #[test]
    fn an_alias_is_looked_up_in_the_room_directory() {
        assert_eq!(
            directory_url("https://matrix.example.org", "#builds:example.org"),
            "https://matrix.example.org/_matrix/client/v3/directory/room/%23builds%3Aexample.org"
        );
        assert_eq!(
            room_in(br#"{"room_id":"!abc:example.org","servers":["example.org"]}"#).as_deref(),
            Some("!abc:example.org")
        );
        assert_eq!(room_in(br##"{"room_id":"#not-an-id:x"}"##), None);
        assert_eq!(room_in(b"{}"), None);
    }
}
