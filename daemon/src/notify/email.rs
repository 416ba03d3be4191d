//! An email notice as lettre builds it (sent by [`crate::channels`]'s SMTP client).
//! Every mail about one event names the event in `References`,
//! so mail clients thread them, and a fix answers the mail of the break it fixes
//! (`In-Reply-To`), whichever event that was; the notice's id is its `Message-ID`,
//! the same on every try. Headers keep to RFC 5322: ASCII only (names in RFC 2047
//! encoded words) and folded well within 998 characters a line, so a list of 32
//! people is several short lines, not one a server refuses.

use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::Message as Mail;

use super::message::Message;
use conjunction_protocol::BuildId;

/// The `To` header of `to`, folded: lettre folds a list of named mailboxes but not
/// one of bare addresses, which it writes as a single line however long.
fn to_header(to: &[Mailbox]) -> HeaderValue {
    use email_encoding::headers::writer::EmailWriter;
    use std::fmt::Write;
    let mut encoded = String::new();
    {
        let mut w = EmailWriter::new(&mut encoded, "To: ".len(), 0, false);
        for (i, mailbox) in to.iter().enumerate() {
            if i > 0 {
                let _ = w.write_char(',');
                w.space();
            }
            match &mailbox.name {
                Some(name) => {
                    let _ = email_encoding::headers::quoted_string::encode(name, &mut w);
                    w.space();
                    let _ = w.folding().write_str(&format!("<{}>", mailbox.email));
                }
                None => {
                    let _ = w.folding().write_str(mailbox.email.as_ref());
                }
            }
        }
    }
    let shown = to
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::dangerous_new_pre_encoded(HeaderName::new_from_ascii_str("To"), shown, encoded)
}

/// `<id@conjunction>`, a notice's or an event's id as a message id.
fn msg_id(id: BuildId) -> String {
    format!("<{id}@conjunction>")
}

/// The mail from `from` for notice `id` to `to` (each `Name <address>` or a bare
/// address; the same address twice is written once).
pub fn mail(from: &str, id: BuildId, to: &[String], m: &Message) -> Result<Mail, String> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("[notify.smtp] from {from:?} is not an address: {e}"))?;
    let mut mailboxes: Vec<Mailbox> = Vec::new();
    for address in to {
        let mailbox: Mailbox = address
            .parse()
            .map_err(|e| format!("{address:?} is not an address: {e}"))?;
        if !mailboxes.iter().any(|m| m.email == mailbox.email) {
            mailboxes.push(mailbox);
        }
    }
    let envelope = Envelope::new(
        Some(from.email.clone()),
        mailboxes.iter().map(|m| m.email.clone()).collect(),
    )
    .map_err(|e| format!("the mail has no one to go to: {e}"))?;
    let references = match m.replies_to {
        Some(to) => format!("{} {}", msg_id(to.root), msg_id(to.notice)),
        None => msg_id(m.root),
    };
    let mut builder = Mail::builder()
        .from(from)
        .subject(m.headline())
        .message_id(Some(msg_id(id)))
        .references(references)
        .header(ContentType::TEXT_PLAIN)
        .raw_header(to_header(&mailboxes))
        .envelope(envelope);
    if let Some(to) = m.replies_to {
        builder = builder.in_reply_to(msg_id(to.notice));
    }
    let mut body = m.text();
    body.push_str("\n\n-- \nconjunction: told because of this project's notify rules, or its contacts when it has none.\n");
    builder
        .body(body)
        .map_err(|e| format!("the mail could not be made: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::broke;
    use crate::notify::message::Message;

    #[test]
    fn a_mail_has_the_headline_as_subject_and_threads_by_event() {
        let from = "conjunction <ci@acme.example>";
        let made = mail(
            from,
            BuildId(ulid::Ulid(9)),
            &["ana@acme.example".into(), "lu@acme.example".into()],
            &broke(),
        )
        .unwrap();
        let text = String::from_utf8(made.formatted()).unwrap();
        assert!(
            text.contains("Subject: apps/x broke with acme/lib 1.5.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: ana@acme.example, lu@acme.example\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <00000000000000000000000009@conjunction>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("References: <00000000000000000000000007@conjunction>\r\n"),
            "{text}"
        );
        // Lines longer than 76 characters go quoted-printable.
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
            "{text}"
        );
        assert!(
            text.contains("failed: https://ci.example/b/1=\r\n23\r\n"),
            "{text}"
        );
        let bad = mail(from, BuildId(ulid::Ulid(9)), &["nobody".into()], &broke());
        assert!(bad.unwrap_err().contains("\"nobody\" is not an address"));
    }

    /// The header lines of a mail, unfolded lines kept apart.
    fn header_lines(text: &str) -> Vec<&str> {
        text.split("\r\n\r\n")
            .next()
            .unwrap()
            .split("\r\n")
            .collect()
    }

    #[test]
    fn thirty_two_recipients_are_folded_short_lines_with_their_names_encoded() {
        let from = "conjunction <ci@acme.example>";
        let crowd = crate::notify::message::tests::crowd("d");
        for to in [
            crowd
                .iter()
                .map(|c| c.email.clone().unwrap())
                .collect::<Vec<_>>(),
            crowd
                .iter()
                .map(|c| {
                    Mailbox::new(
                        Some(c.name.clone()),
                        c.email.as_ref().unwrap().parse().unwrap(),
                    )
                    .to_string()
                })
                .collect(),
        ] {
            let made = mail(from, BuildId(ulid::Ulid(9)), &to, &broke()).unwrap();
            assert_eq!(made.envelope().to().len(), 32);
            let text = String::from_utf8(made.formatted()).unwrap();
            for line in header_lines(&text) {
                assert!(line.len() <= 78, "{} characters: {line}", line.len());
                assert!(line.is_ascii(), "{line}");
            }
            let to_lines = header_lines(&text)
                .into_iter()
                .skip_while(|l| !l.starts_with("To: "))
                .take_while(|l| l.starts_with("To: ") || l.starts_with(' '))
                .count();
            assert!(to_lines > 10, "folded over many lines: {text}");
        }
    }

    #[test]
    fn a_fix_answers_the_mail_of_the_break() {
        let from = "conjunction <ci@acme.example>";
        let fixed = Message {
            kind: conjunction_protocol::notify::NoticeKind::Fixed,
            replies_to: Some(crate::notify::message::MailRef {
                notice: BuildId(ulid::Ulid(5)),
                root: BuildId(ulid::Ulid(4)),
            }),
            ..broke()
        };
        let made = mail(
            from,
            BuildId(ulid::Ulid(9)),
            &["a@b.example".into()],
            &fixed,
        )
        .unwrap();
        let text = String::from_utf8(made.formatted()).unwrap();
        assert!(
            text.contains("In-Reply-To: <00000000000000000000000005@conjunction>\r\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "References: <00000000000000000000000004@conjunction>\r\n <00000000000000000000000005@conjunction>\r\n"
            ) || text.contains(
                "References: <00000000000000000000000004@conjunction> <00000000000000000000000005@conjunction>\r\n"
            ),
            "{text}"
        );
    }
}
