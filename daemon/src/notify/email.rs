//! Email over SMTP with lettre: STARTTLS (the default), implicit TLS or, for a relay
//! on loopback, plain. Every mail about one event names the event in `References`,
//! so mail clients thread them; the notice's id is its `Message-ID`, the same on
//! every try.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};

use super::message::Message;
use super::{Sent, SmtpConfig, SmtpSecurity};
use conjunction_protocol::BuildId;

/// The mail for notice `id` to `to`.
pub fn mail(config: &SmtpConfig, id: BuildId, to: &[String], m: &Message) -> Result<Mail, String> {
    let from: Mailbox = config.from.parse().map_err(|e| {
        format!(
            "[notify.smtp] from {:?} is not an address: {e}",
            config.from
        )
    })?;
    let mut builder = Mail::builder()
        .from(from)
        .subject(m.headline())
        .message_id(Some(format!("<{id}@conjunction>")))
        .references(format!("<{}@conjunction>", m.root))
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        let mailbox: Mailbox = address
            .parse()
            .map_err(|e| format!("{address:?} is not an address: {e}"))?;
        builder = builder.to(mailbox);
    }
    let mut body = m.text();
    body.push_str("\n\n-- \nconjunction: told because of this project's notify rules, or its contacts when it has none.\n");
    builder
        .body(body)
        .map_err(|e| format!("the mail could not be made: {e}"))
}

fn transport(
    config: &SmtpConfig,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = config.host.as_str();
    let tls = || -> Result<TlsParameters, String> {
        let mut params = TlsParameters::builder(host.to_owned());
        if let Some(pem) = &config.ca_pem {
            let cert = Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("[notify.smtp] ca_file is not a PEM certificate: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        params
            .build_rustls()
            .map_err(|e| format!("TLS settings for {host}: {e}"))
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(config.port())
        .timeout(Some(timeout));
    let builder = match config.security {
        SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
        SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
        SmtpSecurity::None => builder.tls(Tls::None),
    };
    let builder = match (&config.username, &config.password) {
        (Some(user), Some(password)) => {
            builder.credentials(Credentials::new(user.clone(), password.clone()))
        }
        _ => builder,
    };
    Ok(builder.build())
}

pub async fn send(
    config: &SmtpConfig,
    timeout: Duration,
    id: BuildId,
    to: &[String],
    m: &Message,
) -> Sent {
    let mail = match mail(config, id, to, m) {
        Ok(mail) => mail,
        Err(e) => return Sent::Refused(e),
    };
    let transport = match transport(config, timeout) {
        Ok(t) => t,
        Err(e) => return Sent::Refused(e),
    };
    match transport.send(mail).await {
        Ok(_) => Sent::Ok,
        Err(e) if e.is_permanent() => Sent::Refused(format!(
            "{}:{} refused the mail: {e}",
            config.host,
            config.port()
        )),
        Err(e) => Sent::Transient(format!(
            "sending mail through {}:{} failed: {e}",
            config.host,
            config.port()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::broke;

    #[test]
    fn a_mail_has_the_headline_as_subject_and_threads_by_event() {
        let config = SmtpConfig {
            from: "conjunction <ci@acme.example>".into(),
            ..SmtpConfig::default()
        };
        let made = mail(
            &config,
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
        let bad = mail(
            &config,
            BuildId(ulid::Ulid(9)),
            &["nobody".into()],
            &broke(),
        );
        assert!(bad.unwrap_err().contains("\"nobody\" is not an address"));
    }
}
