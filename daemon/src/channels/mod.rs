//! Sending notices: one notice on one channel, once ([`Channels`]), in each channel's
//! own protocol: an HTTP post for Slack, Discord, Matrix and webhooks, SMTP ([`smtp`])
//! and IRC ([`irc`]) clients of their own, with the `[notify]` settings that say how.
//! What a notice says and each channel's format are [`crate::notify`]'s; the outbox
//! that sends notices with retries is [`crate::outbox::notices`].

mod irc;
mod smtp;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use conjunction_protocol::notify::Channel;
use conjunction_protocol::trigger::SIGNATURE_HEADER;
use conjunction_protocol::BuildId;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::RootCertStore;

use crate::call::{self, Failure};
use crate::notify::message::Message;
use crate::notify::{discord, matrix, slack, webhook};

/// What one try to send a notice came to.
pub type Sent = Result<(), Failure>;

/// How notices are sent (`[notify]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Tries before a notice is given up (the first included).
    pub max_attempts: u32,
    /// How long one try may take, in milliseconds.
    pub timeout_ms: u64,
    /// Delay before the first retry, in milliseconds; it doubles with each retry.
    pub backoff_base_ms: u64,
    /// Longest delay between two tries, in milliseconds.
    pub backoff_max_ms: u64,
    /// Notices in flight at once.
    pub concurrency: usize,
    /// The SMTP server email notices go through; without it, nothing is emailed.
    pub smtp: Option<SmtpConfig>,
    /// The IRC server IRC notices go to.
    pub irc: Option<IrcConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            timeout_ms: 15_000,
            backoff_base_ms: 2_000,
            backoff_max_ms: 600_000,
            concurrency: 8,
            smtp: None,
            irc: None,
        }
    }
}

impl NotifyConfig {
    /// Reads the files the settings name (passwords, a CA certificate), once, at start.
    pub fn load_files(&mut self) -> Result<(), String> {
        if let Some(smtp) = &mut self.smtp {
            (smtp.password, smtp.ca_pem) =
                read_files("smtp", smtp.password_file.as_ref(), smtp.ca_file.as_ref())?;
        }
        if let Some(irc) = &mut self.irc {
            (irc.password, irc.ca_pem) =
                read_files("irc", irc.password_file.as_ref(), irc.ca_file.as_ref())?;
        }
        Ok(())
    }
}

/// The password (trimmed) and the CA certificates that `[notify.<table>]` names in
/// files; a CA file must hold certificates TLS can trust.
fn read_files(
    table: &str,
    password_file: Option<&PathBuf>,
    ca_file: Option<&PathBuf>,
) -> Result<(Option<String>, Option<String>), String> {
    let read = |path: &PathBuf, key: &str| {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read [notify.{table}] {key} {}: {e}", path.display()))
    };
    let password = password_file
        .map(|path| read(path, "password_file").map(|p| p.trim().to_owned()))
        .transpose()?;
    let ca_pem = ca_file
        .map(|path| {
            let pem = read(path, "ca_file")?;
            trusted_roots(Some(&pem))
                .map_err(|e| format!("[notify.{table}] ca_file {}: {e}", path.display()))?;
            Ok::<_, String>(pem)
        })
        .transpose()?;
    Ok((password, ca_pem))
}

/// The roots a server's certificate is checked against: the web's (webpki-roots,
/// Mozilla's list), and the certificates in `ca_pem`.
pub fn trusted_roots(ca_pem: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("not a usable CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("holds no PEM certificate".into());
        }
    }
    Ok(roots)
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on loopback or a trusted network (port 25).
    None,
}

/// `[notify.smtp]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// 587 for STARTTLS, 465 for TLS, 25 without, when left out.
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The sender, such as `conjunction <ci@example.org>`.
    pub from: String,
    pub username: Option<String>,
    /// A file holding the password (under systemd, a credential).
    pub password_file: Option<PathBuf>,
    /// A PEM certificate to trust besides the usual roots: a private CA.
    pub ca_file: Option<PathBuf>,
    #[serde(skip)]
    pub password: Option<String>,
    #[serde(skip)]
    pub ca_pem: Option<String>,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }
}

/// `[notify.irc]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    pub server: String,
    /// 6697 with TLS, 6667 without, when left out.
    pub port: Option<u16>,
    /// TLS from the first byte, checked against the web's roots and `ca_file`. On by
    /// default; off only for a server on loopback or a trusted network.
    #[serde(default = "IrcConfig::default_tls")]
    pub tls: bool,
    #[serde(default = "IrcConfig::default_nick")]
    pub nick: String,
    /// A file holding the server password, if it has one.
    pub password_file: Option<PathBuf>,
    /// A PEM certificate to trust besides the usual roots: a private CA.
    pub ca_file: Option<PathBuf>,
    #[serde(skip)]
    pub password: Option<String>,
    #[serde(skip)]
    pub ca_pem: Option<String>,
}

impl IrcConfig {
    /// A server at `server:port`, with TLS and the default nickname.
    pub fn new(server: impl Into<String>, port: Option<u16>) -> Self {
        Self {
            server: server.into(),
            port,
            tls: Self::default_tls(),
            nick: Self::default_nick(),
            password_file: None,
            ca_file: None,
            password: None,
            ca_pem: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 6697 } else { 6667 })
    }

    fn default_tls() -> bool {
        true
    }

    fn default_nick() -> String {
        "conjunction".into()
    }
}

/// Sends one notice on one channel, once: each channel's format and protocol, with
/// the channel's secrets taken out of whatever went wrong. The notifier's outbox and a
/// maintainer's test of a project's channels both send through it.
pub struct Channels {
    client: reqwest::Client,
    config: NotifyConfig,
    /// Matrix room aliases resolved through their homeserver's directory, by
    /// (homeserver, alias), with when: an alias may be moved, so it is asked again
    /// after [`ROOM_ALIAS_KEPT`].
    rooms: std::sync::Mutex<HashMap<(String, String), (String, std::time::Instant)>>,
}

/// How long a resolved room alias is used before the directory is asked again.
const ROOM_ALIAS_KEPT: Duration = Duration::from_secs(3600);

impl Channels {
    pub fn new(client: reqwest::Client, config: NotifyConfig) -> Self {
        Self {
            client,
            config,
            rooms: Default::default(),
        }
    }

    /// How long one try may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// Whether the daemon can send mail, so that a side without rules is mailed.
    pub fn has_email(&self) -> bool {
        self.config.smtp.is_some()
    }

    /// Sends notice `id` saying `m` on `channel` once. What goes wrong is said without
    /// the channel's secrets: a Slack or Discord webhook URL is its token, and an error
    /// naming the URL it could not reach would show it on the build and in the log.
    pub async fn send(&self, id: BuildId, channel: &Channel, m: &Message) -> Sent {
        let sent = self.send_once(id, channel, m, self.timeout()).await;
        let secrets = secret_forms(channel);
        let scrub = |e: String| {
            secrets
                .iter()
                .fold(e, |e, secret| e.replace(secret.as_str(), "(secret)"))
        };
        sent.map_err(|failure| match failure {
            Failure::Refused(e) => Failure::Refused(scrub(e)),
            Failure::Transient { error, retry_after } => Failure::Transient {
                error: scrub(error),
                retry_after,
            },
            Failure::RateLimited { error, wait } => Failure::RateLimited {
                error: scrub(error),
                wait,
            },
        })
    }

    async fn send_once(
        &self,
        id: BuildId,
        channel: &Channel,
        m: &Message,
        timeout: Duration,
    ) -> Sent {
        let json = |request: reqwest::RequestBuilder, body: &serde_json::Value| {
            request
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
        };
        let accepted = |_, _, _| async { Ok(()) };
        match channel {
            Channel::Slack { url } => {
                let request = json(self.client.post(url), &slack::body(m));
                call::send(&self.client, request, "Slack", "", accepted).await
            }
            Channel::Discord { url } => {
                let request = json(self.client.post(url), &discord::body(m));
                call::send(&self.client, request, "Discord", "", accepted).await
            }
            Channel::Matrix {
                homeserver,
                room,
                token,
            } => {
                let room_id = match self.room_id(homeserver, room, token, timeout).await {
                    Ok(id) => id,
                    Err(failure) => return Err(failure),
                };
                let url = matrix::url(homeserver, &room_id, &id.to_string());
                let request = call::bearer(json(self.client.put(url), &matrix::body(m)), token);
                call::send(
                    &self.client,
                    request,
                    "Matrix",
                    &format!("room {room}"),
                    accepted,
                )
                .await
            }
            Channel::Webhook { url, secret } => {
                let body = webhook::body(id, m);
                let mut request = self
                    .client
                    .post(url)
                    .timeout(timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Conjunction-Delivery", id.to_string());
                if let Some(secret) = secret {
                    request = request.header(
                        SIGNATURE_HEADER,
                        crate::ci::webhook::signature(secret, body.as_bytes()),
                    );
                }
                call::send(
                    &self.client,
                    request.body(body),
                    "the webhook",
                    "",
                    accepted,
                )
                .await
            }
            Channel::Email { to } => match &self.config.smtp {
                Some(smtp) => smtp::send(smtp, timeout, id, to, m).await,
                None => Err(Failure::Refused(
                    "the daemon has no [notify.smtp] settings, so it cannot send mail".into(),
                )),
            },
            Channel::Irc { target } => match &self.config.irc {
                Some(irc_config) => irc::send(irc_config, timeout, target, m).await,
                None => Err(Failure::Refused(
                    "the daemon has no [notify.irc] settings, so it cannot reach IRC".into(),
                )),
            },
        }
    }

    /// The room id to send to: `room` itself, or the room its alias names in the
    /// homeserver's directory.
    async fn room_id(
        &self,
        homeserver: &str,
        room: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<String, Failure> {
        if !room.starts_with('#') {
            return Ok(room.to_owned());
        }
        let key = (homeserver.to_owned(), room.to_owned());
        if let Ok(rooms) = self.rooms.lock() {
            if let Some((id, at)) = rooms.get(&key) {
                if at.elapsed() < ROOM_ALIAS_KEPT {
                    return Ok(id.clone());
                }
            }
        }
        let found = Arc::new(std::sync::Mutex::new(None));
        let request = call::bearer(
            self.client
                .get(matrix::directory_url(homeserver, room))
                .timeout(timeout),
            token,
        );
        let kept = found.clone();
        let outcome = call::send(
            &self.client,
            request,
            "Matrix",
            &format!("room alias {room}"),
            |_, _, body| async move {
                match matrix::room_in(&body) {
                    Some(id) => {
                        if let Ok(mut kept) = kept.lock() {
                            *kept = Some(id);
                        }
                        Ok(())
                    }
                    None => Err(Failure::Refused(format!(
                        "the homeserver's directory answered for {room} without a room id"
                    ))),
                }
            },
        )
        .await;
        let id = found.lock().ok().and_then(|mut f| f.take());
        match (outcome, id) {
            (Ok(()), Some(id)) => {
                if let Ok(mut rooms) = self.rooms.lock() {
                    rooms.insert(key, (id.clone(), std::time::Instant::now()));
                }
                Ok(id)
            }
            (Ok(()), None) => Err(Failure::Refused(format!(
                "the homeserver's directory answered for {room} without a room id"
            ))),
            (Err(failure), _) => Err(failure),
        }
    }
}

/// Every form in which a channel's secrets could appear in a message, longest first:
/// the secret itself, and for a secret URL also the URL as shown (without its query)
/// and its path, which holds the token.
fn secret_forms(channel: &Channel) -> Vec<String> {
    let mut channel = channel.clone();
    let mut forms = Vec::new();
    for (_, secret) in channel.secrets_mut() {
        forms.push(secret.clone());
        if let Ok(url) = url::Url::parse(secret) {
            forms.push(conjunction_protocol::http_url::redact(&url));
            if url.path().len() > 1 {
                forms.push(url.path().to_owned());
            }
        }
    }
    forms.retain(|f| !f.is_empty());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let web = trusted_roots(None).unwrap().len();
        assert!(web > 100, "the web's roots: {web}");
        assert_eq!(
            trusted_roots(Some("not a certificate\n")).unwrap_err(),
            "holds no PEM certificate"
        );
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(trusted_roots(Some(broken))
            .unwrap_err()
            .starts_with("not a PEM certificate"));
    }

    #[test]
    fn a_secret_webhook_url_is_named_by_no_form_of_it() {
        let channel = Channel::Slack {
            url: "https://hooks.slack.com/services/T0/B0/s3cr3t?x=1".into(),
        };
        let forms = secret_forms(&channel);
        let error = "could not connect to https://hooks.slack.com/services/T0/B0/s3cr3t";
        let scrubbed = forms
            .iter()
            .fold(error.to_owned(), |e, s| e.replace(s.as_str(), "(secret)"));
        assert_eq!(scrubbed, "could not connect to (secret)");
        let path_only = "POST /services/T0/B0/s3cr3t failed";
        let scrubbed = forms.iter().fold(path_only.to_owned(), |e, s| {
            e.replace(s.as_str(), "(secret)")
        });
        assert!(!scrubbed.contains("s3cr3t"), "{scrubbed}");
    }
}
