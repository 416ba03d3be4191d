//! Notifications: the rules a project sets for who is told what, the channels that
//! carry the messages, and the record of every notice on the build it is about.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ci::check_secret;
use crate::error::ValidationError;
use crate::http_url::check_url;
use crate::text::{check_text, Layout};
use crate::time::Timestamp;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A dependent that passed the last time fails now (confirmed when it asks).
    Broke,
    /// A dependent that failed (or was told it broke) passes now.
    Fixed,
    /// A dependent's declared range stops below the new version.
    NeedsBump,
    /// A dependent's CI refused the trigger or stayed unreachable.
    TriggerFailed,
    /// A dependent's CI errored: its infrastructure, not its code.
    Infra,
    /// The upstream's summary of a finished event, one per root event.
    Digest,
    /// A test of a project's channels, sent when a maintainer asks
    /// (`POST /v1/projects/{id}/notify/test`): on every channel its rules name, whatever
    /// they are on. No rule chooses it.
    Test,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 6] = [
        NoticeKind::Broke,
        NoticeKind::Fixed,
        NoticeKind::NeedsBump,
        NoticeKind::TriggerFailed,
        NoticeKind::Infra,
        NoticeKind::Digest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Broke => "broke",
            NoticeKind::Fixed => "fixed",
            NoticeKind::NeedsBump => "needs_bump",
            NoticeKind::TriggerFailed => "trigger_failed",
            NoticeKind::Infra => "infra",
            NoticeKind::Digest => "digest",
            NoticeKind::Test => "test",
        }
    }

    /// What a rule that does not say `on` is told: everything but `infra`, which is
    /// the CI's own business.
    pub fn defaults() -> Vec<NoticeKind> {
        vec![
            NoticeKind::Broke,
            NoticeKind::Fixed,
            NoticeKind::NeedsBump,
            NoticeKind::TriggerFailed,
            NoticeKind::Digest,
        ]
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where notices go. Secrets (the Slack and Discord webhook URLs, which carry their
/// token, the Matrix access token and the webhook signing secret) are write-only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    /// A Slack incoming webhook; the message uses Block Kit.
    Slack { url: String },
    /// A Discord webhook.
    Discord { url: String },
    /// A Matrix room, through the client-server API of `homeserver` with a bot's
    /// access token.
    Matrix {
        homeserver: String,
        room: String,
        token: String,
    },
    /// A JSON POST of the notice, signed with `secret` like triggers are.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// Email through the daemon's SMTP server (`[smtp]` in its config), to `to`, or
    /// to the project's contacts that have an address when `to` is empty.
    Email {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        to: Vec<String>,
    },
    /// An IRC channel (or nick) on the daemon's IRC server (`[irc]` in its config).
    Irc { target: String },
}

/// Most addresses one email rule lists.
pub const MAX_EMAIL_TO: usize = 32;
/// Most rules one project sets.
pub const MAX_RULES: usize = 16;

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Slack { .. } => "slack",
            Channel::Discord { .. } => "discord",
            Channel::Matrix { .. } => "matrix",
            Channel::Webhook { .. } => "webhook",
            Channel::Email { .. } => "email",
            Channel::Irc { .. } => "irc",
        }
    }

    /// How a person names this channel, without its secrets: "Slack", "#design on
    /// IRC", "a@x.org by email".
    pub fn describe(&self) -> String {
        match self {
            Channel::Slack { .. } => "Slack".into(),
            Channel::Discord { .. } => "Discord".into(),
            Channel::Matrix { room, .. } => format!("{room} on Matrix"),
            Channel::Webhook { url, .. } => match url::Url::parse(url) {
                Ok(u) => format!("webhook {}", u.host_str().unwrap_or("?")),
                Err(_) => "webhook".into(),
            },
            Channel::Email { to } if to.is_empty() => "the contacts by email".into(),
            Channel::Email { to } => {
                // The addresses alone, and only the first few of a long list.
                let address = |t: &String| {
                    t.rsplit_once('<')
                        .map_or(t.as_str(), |(_, a)| a.trim_end_matches('>'))
                        .to_owned()
                };
                let shown: Vec<String> = to.iter().take(3).map(address).collect();
                match to.len() {
                    n if n > 3 => format!("{}, and {} more by email", shown.join(", "), n - 3),
                    _ => format!("{} by email", shown.join(", ")),
                }
            }
            Channel::Irc { target } => format!("{target} on IRC"),
        }
    }

    /// Every secret, named by its field, for resolving `env:` and `file:` references.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            Channel::Slack { url } | Channel::Discord { url } => vec![("notify.channel.url", url)],
            Channel::Matrix { token, .. } => vec![("notify.channel.token", token)],
            Channel::Webhook {
                secret: Some(s), ..
            } => vec![("notify.channel.secret", s)],
            Channel::Webhook { secret: None, .. } | Channel::Email { .. } | Channel::Irc { .. } => {
                Vec::new()
            }
        }
    }

    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let mut this = self.clone();
        for (name, secret) in this.secrets_mut() {
            check_secret(name, Some(secret))?;
        }
        match self {
            Channel::Slack { url } | Channel::Discord { url } | Channel::Webhook { url, .. } => {
                check_url(&format!("{field}.url"), url)?;
            }
            Channel::Matrix {
                homeserver, room, ..
            } => {
                check_url(&format!("{field}.homeserver"), homeserver)?;
                check_text(&format!("{field}.room"), room, 256, true, Layout::Line)?;
                if !(room.starts_with('!') || room.starts_with('#')) || !room.contains(':') {
                    return Err(ValidationError::new(
                        format!("{field}.room"),
                        format!("{field}.room {room:?} is not a Matrix room id or alias, such as \"!abc:example.org\""),
                    ));
                }
            }
            Channel::Email { to } => {
                if to.len() > MAX_EMAIL_TO {
                    return Err(ValidationError::new(
                        format!("{field}.to"),
                        format!("{field}.to may list at most {MAX_EMAIL_TO} addresses"),
                    ));
                }
                for (i, address) in to.iter().enumerate() {
                    let f = format!("{field}.to[{i}]");
                    check_text(&f, address, 256, true, Layout::Line)?;
                    if !address.contains('@') || address.contains(char::is_whitespace) {
                        return Err(ValidationError::new(
                            f.clone(),
                            format!("{f} {address:?} is not an email address"),
                        ));
                    }
                }
            }
            Channel::Irc { target } => {
                let ok = !target.is_empty()
                    && target.len() <= 50
                    && target
                        .chars()
                        .all(|c| c.is_ascii_graphic() && c != ',' && c != ':');
                if !ok {
                    return Err(ValidationError::new(
                        format!("{field}.target"),
                        format!("{field}.target {target:?} is not an IRC channel or nick, such as \"#design\""),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One of a project's notification rules: which notices go to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRule {
    pub channel: Channel,
    /// The notices this channel gets; every kind but `infra` when left out.
    #[serde(default = "NoticeKind::defaults")]
    pub on: Vec<NoticeKind>,
    /// How people name the channel ("#design" for a Slack webhook that posts there);
    /// shown where the notices sent to it are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl NotifyRule {
    /// The channel as the notices on a build name it.
    pub fn label(&self) -> String {
        match (&self.name, &self.channel) {
            (Some(name), Channel::Slack { .. }) => format!("{name} on Slack"),
            (Some(name), Channel::Discord { .. }) => format!("{name} on Discord"),
            (Some(name), _) => name.clone(),
            (None, channel) => channel.describe(),
        }
    }

    pub fn view(&self) -> NotifyView {
        NotifyView {
            kind: self.channel.kind().to_owned(),
            channel: self.label(),
            on: self.on.clone(),
        }
    }
}

/// Checks a project's rules.
pub fn validate_rules(rules: &[NotifyRule]) -> Result<(), ValidationError> {
    if rules.len() > MAX_RULES {
        return Err(ValidationError::new(
            "notify",
            format!("a project may set at most {MAX_RULES} notify rules"),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        rule.channel.validate(&format!("notify[{i}].channel"))?;
        if rule.on.is_empty() {
            return Err(ValidationError::new(
                format!("notify[{i}].on"),
                format!("notify[{i}].on is empty: list the notices the channel gets, or leave it out for all but infra"),
            ));
        }
        if rule.on.contains(&NoticeKind::Test) {
            return Err(ValidationError::new(
                format!("notify[{i}].on"),
                format!("notify[{i}].on lists test, which no rule chooses: a test goes to every channel when asked for (POST /v1/projects/<id>/notify/test)"),
            ));
        }
        if let Some(name) = &rule.name {
            check_text(&format!("notify[{i}].name"), name, 128, true, Layout::Line)?;
        }
    }
    Ok(())
}

/// A rule as the API shows it: the channel named without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyView {
    pub kind: String,
    pub channel: String,
    pub on: Vec<NoticeKind>,
}

/// Where a notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    /// In the outbox, to be sent (again, after a failed try).
    Queued,
    Sent,
    /// Every try failed; `error` says why the last one did.
    GaveUp,
}

/// A notice about a build, as the build shows it: "told #design on Slack".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The channel, named without secrets.
    pub channel: String,
    /// Whose rule sent it: the dependent's project, the upstream's, or both.
    pub to: Vec<crate::id::ProjectId>,
    pub state: NoticeState,
    pub tries: u32,
    /// When it was queued, then when it was sent or given up.
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_with_default_notices_and_refuse_unknown_fields() {
        let rule: NotifyRule = serde_json::from_str(
            r##"{"channel":{"kind":"slack","url":"https://hooks.slack.com/services/T0/B0/x"},"name":"#design"}"##,
        )
        .unwrap();
        assert_eq!(rule.on, NoticeKind::defaults());
        assert_eq!(rule.label(), "#design on Slack");
        assert!(serde_json::from_str::<NotifyRule>(
            r#"{"channel":{"kind":"slack","url":"https://x","colour":"red"}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<NotifyRule>(r#"{"channel":{"kind":"pager"}}"#).is_err());
    }

    #[test]
    fn the_view_names_the_channel_without_its_secret() {
        let rule = NotifyRule {
            channel: Channel::Matrix {
                homeserver: "https://matrix.example.org".into(),
                room: "!abc:example.org".into(),
                token: "syt_secret".into(),
            },
            on: vec![NoticeKind::Broke],
            name: None,
        };
        let json = serde_json::to_string(&rule.view()).unwrap();
        assert!(!json.contains("syt_secret"), "{json}");
        assert!(json.contains("!abc:example.org on Matrix"), "{json}");
        let slack = NotifyRule {
            channel: Channel::Slack {
                url: "https://hooks.slack.com/services/T0/B0/secretpart".into(),
            },
            on: vec![NoticeKind::Broke],
            name: None,
        };
        assert!(!serde_json::to_string(&slack.view())
            .unwrap()
            .contains("secretpart"));
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let bad = [
            (
                r##"{"channel":{"kind":"email","to":["not-an-address"]}}"##,
                "notify[0].channel.to[0]",
            ),
            (
                r##"{"channel":{"kind":"irc","target":"#a,#b"}}"##,
                "notify[0].channel.target",
            ),
            (
                r##"{"channel":{"kind":"matrix","homeserver":"https://m.org","room":"general","token":"t"}}"##,
                "notify[0].channel.room",
            ),
            (
                r##"{"channel":{"kind":"slack","url":"ftp://x"}}"##,
                "notify[0].channel.url",
            ),
            (
                r##"{"channel":{"kind":"irc","target":"#a"},"on":[]}"##,
                "notify[0].on",
            ),
        ];
        for (json, field) in bad {
            let rule: NotifyRule = serde_json::from_str(json).unwrap();
            let e = validate_rules(&[rule]).unwrap_err();
            assert_eq!(e.field, field, "{json}: {}", e.message);
        }
    }
}

/// The answer of `POST /v1/projects/{id}/notify/test`: how a test notice went, now, on
/// each channel the project's notices go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTest {
    pub project: crate::ProjectId,
    pub channels: Vec<ChannelTest>,
    /// Why there is no channel to test, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How the test went on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTest {
    /// The channel as the build's notices name it (`#app on Slack`).
    pub channel: String,
    /// `slack`, `discord`, `matrix`, `webhook`, `email` or `irc`.
    pub kind: String,
    pub outcome: TestOutcome,
    /// What went wrong, without the channel's secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// The channel took it.
    Sent,
    /// The channel said no, and will until its settings change (a wrong URL, token,
    /// room or address).
    Refused,
    /// It could not be sent now (unreachable, timed out, rate limited): try again.
    Failed,
}
