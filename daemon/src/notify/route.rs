//! Who is told what: pure rules. A build's verdict becomes a notice only on a
//! transition nobody was told about yet, and a notice goes to the channels whose
//! rules ask for it, on the sides it concerns, each channel once.

use conjunction_protocol::notify::{Channel, NoticeKind, NotifyRule};
use conjunction_protocol::{Contact, ProjectId, StateKind, Verdict};

/// The notice a build that just got `verdict` (in `state`) calls for, given the kinds
/// already told about it (`told`, oldest first) and how the project's last result
/// against this upstream ended when it was infra (`infra_before`: errored or a refused
/// trigger), or none.
///
/// - A break is told once; a rebuild that fails again is the same break.
/// - A fix is told when the verdict is `fixed`, or when a build told it broke passes
///   again in the same event (its verdict is then `same` or `flaky`); once.
/// - `still_failing` and `new` tell nobody: nothing changed, or nothing to compare.
/// - A refused trigger and an errored build are told when they start: once per
///   build, and not again while every event ends the same way.
pub fn transition(
    verdict: Verdict,
    state: StateKind,
    told: &[NoticeKind],
    infra_before: Option<StateKind>,
) -> Option<NoticeKind> {
    let last_break_or_fix = told
        .iter()
        .rev()
        .find(|k| matches!(k, NoticeKind::Broke | NoticeKind::Fixed))
        .copied();
    let kind = match verdict {
        Verdict::Broke => NoticeKind::Broke,
        Verdict::Fixed => NoticeKind::Fixed,
        Verdict::Same | Verdict::Flaky if last_break_or_fix == Some(NoticeKind::Broke) => {
            NoticeKind::Fixed
        }
        Verdict::Infra if state == StateKind::TriggerFailed => NoticeKind::TriggerFailed,
        Verdict::Infra => NoticeKind::Infra,
        Verdict::Same | Verdict::Flaky | Verdict::StillFailing | Verdict::New => return None,
    };
    let repeated = match kind {
        NoticeKind::Broke | NoticeKind::Fixed => last_break_or_fix == Some(kind),
        _ => told.contains(&kind) || infra_before == Some(state),
    };
    (!repeated).then_some(kind)
}

/// Whether a project that needs a bump of `range` is told so, given the range it was
/// last told about on this upstream (the history keeps it until it builds again).
pub fn bump_is_news(range: &str, told: Option<&str>) -> bool {
    told != Some(range)
}

/// One side of a notice: a project, its people and its rules.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub project: &'a ProjectId,
    pub contacts: &'a [Contact],
    pub rules: &'a [NotifyRule],
}

/// Which sides a kind of notice concerns: a break or a fix both (the dependent's
/// people and the upstream's, in one message); what only the dependent can act on,
/// the dependent; the digest, the upstream.
pub fn sides(kind: NoticeKind) -> (bool, bool) {
    match kind {
        NoticeKind::Broke | NoticeKind::Fixed => (true, true),
        NoticeKind::NeedsBump | NoticeKind::TriggerFailed | NoticeKind::Infra => (true, false),
        NoticeKind::Digest => (false, true),
        NoticeKind::Test => (true, false),
    }
}

/// Where one notice goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub channel: Channel,
    /// The channel as the build's notices name it.
    pub label: String,
    /// The projects whose rules sent it here.
    pub to: Vec<ProjectId>,
}

/// A contact as a mail recipient: `Name <address>`, the name quoted as mail needs it
/// (the mail encodes what is not ASCII).
fn mailbox(c: &Contact) -> Option<String> {
    let email = c.email.as_deref()?;
    Some(match email.parse::<lettre::Address>() {
        Ok(address) => lettre::message::Mailbox::new(Some(c.name.clone()), address).to_string(),
        Err(_) => email.to_owned(),
    })
}

/// The channels a notice of `kind` goes to. A side without rules has one by default
/// when `email_default` (the daemon can send mail): its contacts by email, for every
/// kind but `infra`. An email rule without addresses means the side's contacts.
/// Every channel gets the notice once: rules of both sides naming the same channel
/// are one target, and every address of every email rule goes in one email.
pub fn route(
    kind: NoticeKind,
    downstream: Option<Side<'_>>,
    upstream: Side<'_>,
    email_default: bool,
) -> Vec<Target> {
    let (to_down, to_up) = sides(kind);
    let mut targets: Vec<Target> = Vec::new();
    let mut email: Option<(Vec<String>, Vec<ProjectId>)> = None;
    let chosen = [
        downstream.filter(|_| to_down),
        Some(upstream).filter(|_| to_up),
    ];
    for side in chosen.into_iter().flatten() {
        let default;
        let rules = if side.rules.is_empty() && email_default {
            default = [NotifyRule {
                channel: Channel::Email { to: Vec::new() },
                on: NoticeKind::defaults(),
                name: None,
            }];
            &default[..]
        } else {
            side.rules
        };
        // A test goes to every channel of the side's rules.
        for rule in rules
            .iter()
            .filter(|r| kind == NoticeKind::Test || r.on.contains(&kind))
        {
            match &rule.channel {
                Channel::Email { to } => {
                    let addresses: Vec<String> = if to.is_empty() {
                        side.contacts.iter().filter_map(mailbox).collect()
                    } else {
                        to.clone()
                    };
                    if addresses.is_empty() {
                        continue;
                    }
                    let (all, projects) = email.get_or_insert_with(Default::default);
                    all.extend(addresses);
                    if !projects.contains(side.project) {
                        projects.push(side.project.clone());
                    }
                }
                channel => match targets.iter_mut().find(|t| &t.channel == channel) {
                    Some(t) => {
                        if !t.to.contains(side.project) {
                            t.to.push(side.project.clone());
                        }
                    }
                    None => targets.push(Target {
                        channel: channel.clone(),
                        label: rule.label(),
                        to: vec![side.project.clone()],
                    }),
                },
            }
        }
    }
    if let Some((mut all, to)) = email {
        all.sort();
        all.dedup();
        let channel = Channel::Email { to: all };
        targets.push(Target {
            label: channel.describe(),
            channel,
            to,
        });
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use NoticeKind as K;

    #[test]
    fn a_break_is_told_once_however_often_it_fails_again() {
        assert_eq!(
            transition(Verdict::Broke, StateKind::Failed, &[], None),
            Some(K::Broke)
        );
        // A rebuild in the same event that fails again.
        assert_eq!(
            transition(Verdict::Broke, StateKind::Failed, &[K::Broke], None),
            None
        );
        // The next events, where it keeps failing, say still_failing.
        assert_eq!(
            transition(Verdict::StillFailing, StateKind::Failed, &[], None),
            None
        );
    }

    #[test]
    fn an_always_failing_or_new_project_tells_nobody() {
        for v in [Verdict::StillFailing, Verdict::New, Verdict::Same] {
            assert_eq!(transition(v, StateKind::Failed, &[], None), None, "{v}");
        }
        assert_eq!(transition(Verdict::New, StateKind::Passed, &[], None), None);
    }

    #[test]
    fn a_fix_is_told_after_a_break_in_the_next_event_or_by_a_rebuild() {
        assert_eq!(
            transition(Verdict::Fixed, StateKind::Passed, &[], None),
            Some(K::Fixed)
        );
        assert_eq!(
            transition(Verdict::Fixed, StateKind::Passed, &[K::Fixed], None),
            None
        );
        // Told it broke, rebuilt, passes: against the event before it is the same as
        // ever, but the people told about the break hear that it is over.
        assert_eq!(
            transition(Verdict::Same, StateKind::Passed, &[K::Broke], None),
            Some(K::Fixed)
        );
        // Broke, fixed, broke again: each transition once.
        assert_eq!(
            transition(
                Verdict::Broke,
                StateKind::Failed,
                &[K::Broke, K::Fixed],
                None
            ),
            Some(K::Broke)
        );
        assert_eq!(
            transition(Verdict::Same, StateKind::Passed, &[], None),
            None
        );
    }

    #[test]
    fn a_flaky_failure_is_not_told_as_a_break() {
        assert_eq!(
            transition(Verdict::Flaky, StateKind::Passed, &[], None),
            None
        );
    }

    #[test]
    fn infrastructure_is_told_when_it_starts_once_per_build_by_what_failed() {
        assert_eq!(
            transition(Verdict::Infra, StateKind::TriggerFailed, &[], None),
            Some(K::TriggerFailed)
        );
        assert_eq!(
            transition(
                Verdict::Infra,
                StateKind::TriggerFailed,
                &[K::TriggerFailed],
                None
            ),
            None
        );
        assert_eq!(
            transition(Verdict::Infra, StateKind::Errored, &[], None),
            Some(K::Infra)
        );
        assert_eq!(
            transition(Verdict::Infra, StateKind::Errored, &[K::Infra], None),
            None
        );
        // A project whose trigger was refused the last time too is not told again;
        // once it built, or failed another way, it is.
        let refused = Some(StateKind::TriggerFailed);
        assert_eq!(
            transition(Verdict::Infra, StateKind::TriggerFailed, &[], refused),
            None
        );
        assert_eq!(
            transition(Verdict::Infra, StateKind::Errored, &[], refused),
            Some(K::Infra)
        );
    }

    #[test]
    fn a_bump_is_news_until_the_same_range_was_told() {
        assert!(bump_is_news("^1.2", None));
        assert!(!bump_is_news("^1.2", Some("^1.2")));
        assert!(bump_is_news(">=1.2, <3", Some("^1.2")));
    }

    fn pid(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    fn person(name: &str, email: Option<&str>) -> Contact {
        Contact {
            name: name.into(),
            email: email.map(Into::into),
            chat: None,
            role: None,
        }
    }

    fn slack(url: &str, on: &[K], name: &str) -> NotifyRule {
        NotifyRule {
            channel: Channel::Slack { url: url.into() },
            on: on.to_vec(),
            name: Some(name.into()),
        }
    }

    #[test]
    fn a_break_goes_to_both_sides_and_a_shared_channel_once() {
        let (app, lib) = (pid("acme/app"), pid("acme/lib"));
        let ana = [person("Ana", Some("ana@acme.example"))];
        let lu = [person("Lu", Some("lu@acme.example")), person("Bot", None)];
        let down_rules = [slack("https://hooks/design", &K::defaults(), "#design")];
        let up_rules = [
            slack("https://hooks/design", &[K::Broke], "#design"),
            slack("https://hooks/lib", &[K::Broke, K::Digest], "#lib"),
            NotifyRule {
                channel: Channel::Email { to: Vec::new() },
                on: vec![K::Broke],
                name: None,
            },
        ];
        let down = Side {
            project: &app,
            contacts: &ana,
            rules: &down_rules,
        };
        let up = Side {
            project: &lib,
            contacts: &lu,
            rules: &up_rules,
        };
        let targets = route(K::Broke, Some(down), up, true);
        let shape: Vec<(String, Vec<&str>)> = targets
            .iter()
            .map(|t| {
                (
                    t.label.clone(),
                    t.to.iter().map(ProjectId::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("#design on Slack".to_owned(), vec!["acme/app", "acme/lib"]),
                ("#lib on Slack".to_owned(), vec!["acme/lib"]),
                ("lu@acme.example by email".to_owned(), vec!["acme/lib"]),
            ]
        );
        // The digest is the upstream's alone.
        let digest = route(K::Digest, Some(down), up, true);
        assert_eq!(digest.len(), 1);
        assert_eq!(digest[0].label, "#lib on Slack");
        // A needs-bump notice is the dependent's alone.
        let bump = route(K::NeedsBump, Some(down), up, true);
        assert_eq!(bump.len(), 1);
        assert_eq!(bump[0].to, std::slice::from_ref(&app));
    }

    #[test]
    fn without_rules_both_sides_contacts_share_one_email_when_the_daemon_has_smtp() {
        let (app, lib) = (pid("acme/app"), pid("acme/lib"));
        let ana = [
            person("Ana", Some("ana@acme.example")),
            person("Lu", Some("lu@acme.example")),
        ];
        let lu = [person("Lu", Some("lu@acme.example"))];
        let down = Side {
            project: &app,
            contacts: &ana,
            rules: &[],
        };
        let up = Side {
            project: &lib,
            contacts: &lu,
            rules: &[],
        };
        let targets = route(K::Broke, Some(down), up, true);
        assert_eq!(targets.len(), 1);
        assert_eq!(
            targets[0].channel,
            Channel::Email {
                to: vec![
                    "Ana <ana@acme.example>".into(),
                    "Lu <lu@acme.example>".into()
                ]
            }
        );
        assert_eq!(targets[0].to, [app.clone(), lib.clone()]);
        // Infra is not among the defaults, and without SMTP there is no default.
        assert!(route(K::Infra, Some(down), up, true).is_empty());
        assert!(route(K::Broke, Some(down), up, false).is_empty());
    }
}
