//! Email over SMTP with lettre: STARTTLS (the default), implicit TLS or, for a relay
//! on loopback, plain. The mail itself is [`crate::notify::email`]'s.

use std::time::Duration;

use conjunction_protocol::BuildId;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Sent, SmtpConfig, SmtpSecurity};
use crate::call::Failure;
use crate::notify::email::mail;
use crate::notify::message::Message;

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

/// Sends notice `id` saying `m` to `to` through the configured server, once.
pub async fn send(
    config: &SmtpConfig,
    timeout: Duration,
    id: BuildId,
    to: &[String],
    m: &Message,
) -> Sent {
    let mail = mail(&config.from, id, to, m).map_err(Failure::Refused)?;
    let transport = transport(config, timeout).map_err(Failure::Refused)?;
    match transport.send(mail).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(Failure::Refused(format!(
            "{}:{} refused the mail: {e}",
            config.host,
            config.port()
        ))),
        Err(e) => Err(Failure::Transient {
            error: format!(
                "sending mail through {}:{} failed: {e}",
                config.host,
                config.port()
            ),
            retry_after: None,
        }),
    }
}
