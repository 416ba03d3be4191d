//! Matrix: an `m.notice` sent with the client-server API, its transaction id the
//! notice's own id, so a retry after an unknown outcome is not posted twice.

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
    for line in m.details().iter().filter(|l| !l.starts_with("build ")) {
        formatted.push_str(&format!("<br>{}", html(line)));
    }
    json!({
        "msgtype": "m.notice",
        "body": m.text(),
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
}
