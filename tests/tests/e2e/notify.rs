//! Notifications on loopback: Slack-shaped webhooks into a sink, email through a real
//! SMTP server and IRC through a real IRC server. A break tells both sides once; a
//! failing rebuild and a restart tell nobody again; a fix and the digest are told
//! once; a flaky failure is not told as a break; a channel that is down is retried
//! and given up, with the reason on the build.

use conjunction_daemon::Settings;
use conjunction_daemon::{IrcConfig, NotifyConfig, SmtpConfig, SmtpSecurity};
use conjunction_protocol::notify::{Channel, NoticeKind, NoticeState, NotifyRule};
use conjunction_protocol::{BuildId, Contact, Node, ProjectSpec, RootEvent, Verdict};
use conjunction_sim::chat::Sink;
use conjunction_sim::webhook::{Behaviour, WebhookCi};
use conjunction_tests::chat::{IrcServer, SmtpServer};
use conjunction_tests::daemon::TestDaemon;
use conjunction_tui::client::Client;

use crate::*;

pub(crate) fn fast_notify(smtp: Option<&SmtpServer>, irc: Option<&IrcServer>) -> NotifyConfig {
    NotifyConfig {
        max_attempts: 3,
        timeout_ms: 5_000,
        backoff_base_ms: 50,
        backoff_max_ms: 200,
        smtp: smtp.map(|s| SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(s.addr.port()),
            security: SmtpSecurity::None,
            from: "conjunction <ci@conjunction.test>".into(),
            ..SmtpConfig::default()
        }),
        irc: irc.map(|s| match s.tls_addr {
            Some(tls) => IrcConfig {
                ca_file: Some(s.ca_file()),
                ..IrcConfig::new("127.0.0.1", Some(tls.port()))
            },
            None => IrcConfig {
                tls: false,
                ..IrcConfig::new("127.0.0.1", Some(s.addr.port()))
            },
        }),
        ..NotifyConfig::default()
    }
}

pub(crate) fn slack(sink: &Sink, path: &str, name: &str, on: &[NoticeKind]) -> NotifyRule {
    NotifyRule {
        channel: Channel::Slack {
            url: sink.url(path),
        },
        on: on.to_vec(),
        name: Some(name.into()),
    }
}

pub(crate) fn contacts_email(on: &[NoticeKind]) -> NotifyRule {
    NotifyRule {
        channel: Channel::Email { to: Vec::new() },
        on: on.to_vec(),
        name: None,
    }
}

pub(crate) fn person(name: &str, email: &str) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        chat: None,
        role: Some("maintainer".into()),
    }
}

/// acme/lib (no trigger) and acme/app below it, triggered at `ci`, with `lib_rules`
/// and `app_rules`; returns lib's report token.
pub(crate) async fn two_projects(
    api: &Client,
    ci: &WebhookCi,
    lib_rules: Vec<NotifyRule>,
    app: impl FnOnce(&mut ProjectSpec),
) -> String {
    let mut lib = spec("acme/lib", &[], None);
    lib.contacts = vec![person("Lu Chen", "lu@acme.example")];
    lib.notify = lib_rules;
    let (status, answer) = api.put_project(&pid("acme/lib"), &lib).await.unwrap();
    assert_eq!(status, 201);
    let mut s = spec("acme/app", &["acme/lib"], Some(ci));
    s.contacts = vec![person("Ana Lima", "ana@acme.example")];
    app(&mut s);
    let (status, _) = api.put_project(&pid("acme/app"), &s).await.unwrap();
    assert_eq!(status, 201, "{:?}", api.project(&pid("acme/app")).await);
    answer.report_token.unwrap()
}

/// Waits until every notice on `build` is sent or given up, and returns the build.
pub(crate) async fn told(api: &Client, build: BuildId, notices: usize) -> Node {
    eventually("the notices to be sent", WAIT, || async move {
        let node = api.build(build).await.ok()?;
        (node.notices.len() == notices
            && node.notices.iter().all(|n| n.state != NoticeState::Queued))
        .then_some(node)
    })
    .await
}

/// Releases acme/lib 1.0.0, which acme/app passes, then 1.1.0 with app's CI behaving
/// as `then`: the second event, settled.
pub(crate) async fn pass_then(
    api: &Client,
    ci: &WebhookCi,
    token: &str,
    then: Behaviour,
) -> RootEvent {
    ci.set_default(Behaviour::pass());
    let first = report_root(api, token, "acme/lib", "1.0.0").await;
    settled(api, first.root).await;
    ci.set("acme/app", then);
    let second = report_root(api, token, "acme/lib", "1.1.0").await;
    settled(api, second.root).await
}

pub(crate) fn texts(sink: &Sink, path: &str) -> Vec<String> {
    sink.posted_to(path)
        .iter()
        .map(|p| p.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_break_tells_both_sides_once_on_slack_and_by_email_and_a_rebuild_and_restart_tell_no_one_again(
) {
    let sink = Sink::start().await.expect("start the chat sink");
    let smtp = SmtpServer::start().await;
    let ci = super::webhook_ci().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Settings::new(dir.path());
        c.dispatch = conjunction_tests::daemon::fast_dispatch();
        c.notify = fast_notify(Some(&smtp), None);
        c
    };
    let d = TestDaemon::start_with(config()).await;
    use NoticeKind::*;
    let token = two_projects(
        &d.api,
        &ci,
        vec![
            slack(&sink, "/slack/lib", "#lib", &[Broke, Fixed, Digest]),
            contacts_email(&[Broke]),
        ],
        |app| {
            app.notify = vec![
                slack(&sink, "/slack/app", "#app", &NoticeKind::defaults()),
                contacts_email(&[Broke, Fixed]),
            ]
        },
    )
    .await;
    ci.set_default(Behaviour::pass());

    // 1.0.0: app passes for the first time; only lib's digest is told.
    let first = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    settled(&d.api, first.root).await;
    let root = told(&d.api, first.root, 1).await;
    assert_eq!(root.notices[0].kind, Digest);
    assert_eq!(root.notices[0].channel, "#lib on Slack");
    assert_eq!(texts(&sink, "/slack/lib"), ["acme/lib 1.0.0: 1 passed"]);
    assert!(texts(&sink, "/slack/app").is_empty());

    // 1.1.0 breaks app.
    ci.set(
        "acme/app",
        Behaviour::fail("error[E0432]: unresolved import `lib::old`\nerror: aborting"),
    );
    let second = report_root(&d.api, &token, "acme/lib", "1.1.0").await;
    let event = settled(&d.api, second.root).await;
    let app_id = node_of(&event, "acme/app").id;
    let app = told(&d.api, app_id, 3).await;
    assert_eq!(app.verdict, Some(Verdict::Broke));
    let channels: Vec<(&str, NoticeKind, NoticeState)> = app
        .notices
        .iter()
        .map(|n| (n.channel.as_str(), n.kind, n.state))
        .collect();
    assert_eq!(
        channels,
        [
            ("#app on Slack", Broke, NoticeState::Sent),
            ("#lib on Slack", Broke, NoticeState::Sent),
            (
                "ana@acme.example, lu@acme.example by email",
                Broke,
                NoticeState::Sent
            ),
        ]
    );
    let headline = "acme/app broke with acme/lib 1.1.0";
    assert_eq!(texts(&sink, "/slack/app"), [headline]);
    let slack_body = &sink.posted_to("/slack/app")[0].body;
    let blocks = slack_body["blocks"].to_string();
    for fact in [
        &format!("https://ci.example/acme/app/{app_id}"),
        "error[E0432]: unresolved import `lib::old`",
        "acme/app: Ana Lima (maintainer) &lt;ana@acme.example&gt;",
        "acme/lib (upstream): Lu Chen (maintainer) &lt;lu@acme.example&gt;",
    ] {
        assert!(blocks.contains(fact), "{fact:?} not in {blocks}");
    }
    // One email to both sides.
    let mails = eventually("the mail", WAIT, || async {
        Some(smtp.mails()).filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    for part in [
        &format!("Subject: {headline}\n"),
        "To: \"Ana Lima\" <ana@acme.example>, \"Lu Chen\" <lu@acme.example>\n",
        "From: conjunction <ci@conjunction.test>\n",
        "> error[E0432]: unresolved import `lib::old`\n",
        "acme/app: Ana Lima (maintainer) <ana@acme.example>\n",
        "acme/lib (upstream): Lu Chen (maintainer) <lu@acme.example>\n",
    ] {
        assert!(mail.contains(part), "{part:?} not in {mail}");
    }
    // Threaded by the event: every mail about it names the root event.
    assert!(
        mail.contains(&format!("References: <{}@conjunction>\n", second.root)),
        "{mail}"
    );
    // lib's digest of 1.1.0, once.
    let lib_texts = eventually("the second digest", WAIT, || async {
        let t = texts(&sink, "/slack/lib");
        (t.len() == 3).then_some(t)
    })
    .await;
    // The break and the digest go out side by side, in either order.
    let mut second_event = lib_texts[1..].to_vec();
    second_event.sort();
    assert_eq!(
        second_event,
        [
            headline.to_owned(),
            "acme/lib 1.1.0: 0 passed, 1 broke (acme/app)".to_owned()
        ]
    );

    // A rebuild that fails again is the same break: nobody is told again.
    d.api.rebuild(app_id).await.unwrap();
    eventually("the rebuild to fail", WAIT, || async {
        let n = d.api.build(app_id).await.ok()?;
        (n.attempt == 2 && n.verdict.is_some()).then_some(())
    })
    .await;
    // And after a restart, nothing is sent again either: the notifier sends what the
    // outbox still holds at once on start, so a repeat would be in the sink before the
    // fix below, whose exact lists of posts and mails would then not match.
    d.stop().await;
    let d = TestDaemon::start_with(config()).await;
    let app = told(&d.api, app_id, 3).await;
    assert_eq!(app.verdict, Some(Verdict::Broke));

    // The fix: a rebuild that passes tells both sides the break is over, once.
    ci.set("acme/app", Behaviour::pass());
    d.api.rebuild(app_id).await.unwrap();
    let app = eventually("the fix to be told", WAIT, || async {
        let n = d.api.build(app_id).await.ok()?;
        (n.notices.len() == 6 && n.notices.iter().all(|x| x.state == NoticeState::Sent))
            .then_some(n)
    })
    .await;
    assert_eq!(app.attempt, 3);
    let kinds: Vec<NoticeKind> = app.notices.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [Broke, Broke, Broke, Fixed, Fixed, Fixed]);
    let fixed = "acme/app is fixed with acme/lib 1.1.0";
    assert_eq!(texts(&sink, "/slack/app"), [headline, fixed]);
    // lib's rule takes fixes on Slack, its email rule only breaks; app's both.
    assert_eq!(
        texts(&sink, "/slack/lib").last().map(String::as_str),
        Some(fixed)
    );
    let mails = eventually("the fix mail", WAIT, || async {
        Some(smtp.mails()).filter(|m| m.len() == 2)
    })
    .await;
    let fix_mail = mails
        .iter()
        .find(|m| m.contains(&format!("Subject: {fixed}\n")))
        .unwrap_or_else(|| panic!("no mail tells the fix: {mails:?}"));
    assert!(
        fix_mail.contains("To: \"Ana Lima\" <ana@acme.example>\n"),
        "{fix_mail}"
    );
    // It answers the mail of the break.
    let break_id = mail
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("the break mail has an id");
    assert!(
        fix_mail.contains(&format!("In-Reply-To: {break_id}\n")),
        "{fix_mail}"
    );
    // The event finished again, but its digest was told already: a second one would
    // be on the root, queued in the same commit as the fix.
    let root = d.api.build(second.root).await.unwrap();
    let digests: Vec<NoticeKind> = root.notices.iter().map(|n| n.kind).collect();
    assert_eq!(digests, [Digest]);
    assert_eq!(texts(&sink, "/slack/lib").len(), 4);
    d.stop().await;
}

#[tokio::test]
async fn a_flaky_failure_is_rerun_once_and_not_told_as_a_break() {
    let sink = Sink::start().await.expect("start the chat sink");
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, None)).await;
    use NoticeKind::*;
    let token = two_projects(
        &d.api,
        &ci,
        vec![slack(&sink, "/slack/lib", "#lib", &[Broke, Digest])],
        |app| {
            app.confirm_failures = 1;
            app.notify = vec![slack(&sink, "/slack/app", "#app", &[Broke, Fixed])];
        },
    )
    .await;
    let event = pass_then(&d.api, &ci, &token, Behaviour::FailFirstAttempt).await;
    let app = node_of(&event, "acme/app");
    assert_eq!(
        (app.verdict, app.attempt, app.rerun),
        (Some(Verdict::Flaky), 2, Some(1))
    );
    told(&d.api, event.summary.id, 1).await;
    assert!(app.notices.is_empty(), "{:?}", app.notices);
    assert!(texts(&sink, "/slack/app").is_empty());
    assert_eq!(
        texts(&sink, "/slack/lib"),
        [
            "acme/lib 1.0.0: 1 passed",
            "acme/lib 1.1.0: 1 passed, 1 flaky"
        ]
    );
    d.stop().await;
}

#[tokio::test]
async fn a_channel_that_is_down_is_retried_and_given_up_with_the_reason_on_the_build() {
    let sink = Sink::start().await.expect("start the chat sink");
    sink.answer(503);
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, None)).await;
    // A second channel nobody listens on: its URL (a Slack webhook URL is its token)
    // must not show in the reason given up with.
    let closed = conjunction_tests::daemon::free_address();
    let unreachable = NotifyRule {
        channel: Channel::Slack {
            url: format!("http://{closed}/services/T0/B0/webhook-secret"),
        },
        on: vec![NoticeKind::Broke],
        name: Some("#nowhere".into()),
    };
    let token = two_projects(&d.api, &ci, Vec::new(), |app| {
        app.notify = vec![
            slack(&sink, "/slack/app", "#app", &[NoticeKind::Broke]),
            unreachable,
        ];
    })
    .await;
    let event = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
    let app = told(&d.api, node_of(&event, "acme/app").id, 2).await;
    let nowhere = &app.notices[1];
    assert_eq!(nowhere.state, NoticeState::GaveUp);
    let reason = nowhere.error.as_deref().unwrap();
    assert!(
        reason.starts_with("gave up after 3 tries; last: "),
        "{reason}"
    );
    assert!(!reason.contains("webhook-secret"), "{reason}");
    let notice = &app.notices[0];
    assert_eq!(notice.state, NoticeState::GaveUp);
    assert_eq!(notice.tries, 3);
    assert_eq!(
        notice.error.as_deref(),
        Some("gave up after 3 tries; last: Slack answered 503")
    );
    assert_eq!(sink.posted_to("/slack/app").len(), 3, "one post per try");
    d.stop().await;
}

#[tokio::test]
async fn a_break_is_said_on_a_real_irc_server() {
    a_break_is_said_on(IrcServer::start().await).await;
}

#[tokio::test]
async fn a_break_is_said_on_irc_over_tls_checked_against_the_configured_ca() {
    a_break_is_said_on(IrcServer::start_secured().await).await;
}

/// A break told to `#builds` on `ircd`, over TLS when it has a TLS port, is heard
/// there by another client line by line.
async fn a_break_is_said_on(ircd: IrcServer) {
    let mut heard = ircd.listen("watcher", "#builds").await;
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, Some(&ircd))).await;
    let token = two_projects(&d.api, &ci, vec![irc_rule("#builds")], |_| {}).await;
    let event = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
    let app = told(&d.api, node_of(&event, "acme/app").id, 1).await;
    assert_eq!(app.notices[0].channel, "#builds on IRC");
    assert_eq!(
        app.notices[0].state,
        NoticeState::Sent,
        "{:?}",
        app.notices[0]
    );
    let mut lines = Vec::new();
    while lines.len() < 4 {
        let (from, text) = tokio::time::timeout(WAIT, heard.recv())
            .await
            .expect("the notice is said on IRC")
            .unwrap();
        // ngircd takes nicknames of nine characters: "conjunction" is cut.
        assert_eq!(from, "conjuncti");
        lines.push(text);
    }
    assert_eq!(lines[0], "acme/app broke with acme/lib 1.1.0");
    assert!(
        lines[1].starts_with(&format!("build {} (attempt 1) failed", app.id)),
        "{lines:?}"
    );
    assert_eq!(
        lines[2],
        "acme/app: Ana Lima (maintainer) <ana@acme.example>"
    );
    assert_eq!(
        lines[3],
        "acme/lib (upstream): Lu Chen (maintainer) <lu@acme.example>"
    );
    d.stop().await;
}

#[tokio::test]
async fn an_irc_server_whose_certificate_is_not_trusted_is_given_up_at_once_and_told_nothing() {
    let ircd = IrcServer::start_secured().await;
    let mut heard = ircd.listen("watcher", "#builds").await;
    let ci = super::webhook_ci().await;
    // The server's CA is not among the trusted roots.
    let d = TestDaemon::start_adjusted(|c| {
        c.notify = fast_notify(None, Some(&ircd));
        c.notify.irc.as_mut().unwrap().ca_file = None;
    })
    .await;
    let token = two_projects(&d.api, &ci, vec![irc_rule("#builds")], |_| {}).await;
    let event = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
    let app = told(&d.api, node_of(&event, "acme/app").id, 1).await;
    let notice = &app.notices[0];
    assert_eq!(notice.state, NoticeState::GaveUp, "{notice:?}");
    assert_eq!(
        notice.tries, 1,
        "an untrusted certificate is not tried again"
    );
    let error = notice.error.as_deref().unwrap();
    assert!(
        error.contains("TLS handshake failed") && error.contains("UnknownIssuer"),
        "{error}"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(1), heard.recv())
            .await
            .is_err(),
        "nothing is said"
    );
    d.stop().await;
}

fn irc_rule(target: &str) -> NotifyRule {
    NotifyRule {
        channel: Channel::Irc {
            target: target.into(),
        },
        on: vec![NoticeKind::Broke],
        name: None,
    }
}

#[tokio::test]
async fn discord_matrix_and_a_signed_webhook_each_get_their_format_and_no_secret_is_shown() {
    let sink = Sink::start().await.expect("start the chat sink");
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, None)).await;
    let on = vec![NoticeKind::Broke];
    let rules = vec![
        NotifyRule {
            channel: Channel::Discord {
                url: sink.url("/api/webhooks/1/discord-secret-token"),
            },
            on: on.clone(),
            name: Some("#ops".into()),
        },
        NotifyRule {
            channel: Channel::Matrix {
                homeserver: sink.url(""),
                room: "!room:conjunction.test".into(),
                token: "syt_matrix_secret".into(),
            },
            on: on.clone(),
            name: None,
        },
        NotifyRule {
            channel: Channel::Webhook {
                url: sink.url("/hook"),
                secret: Some("hook-signing-secret".into()),
            },
            on,
            name: None,
        },
    ];
    let token = two_projects(&d.api, &ci, Vec::new(), |app| app.notify = rules).await;
    // The rules read back without their secrets.
    let shown = serde_json::to_string(&d.api.project(&pid("acme/app")).await.unwrap()).unwrap();
    for secret in [
        "discord-secret-token",
        "syt_matrix_secret",
        "hook-signing-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("!room:conjunction.test on Matrix"),
        "{shown}"
    );
    let event = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
    let app = told(&d.api, node_of(&event, "acme/app").id, 3).await;
    let labels: Vec<&str> = app.notices.iter().map(|n| n.channel.as_str()).collect();
    assert_eq!(
        labels,
        [
            "#ops on Discord",
            "!room:conjunction.test on Matrix",
            "webhook 127.0.0.1"
        ]
    );
    let headline = "acme/app broke with acme/lib 1.1.0";

    let discord = &sink.posted_to("/api/webhooks/1/discord-secret-token")[0];
    assert_eq!(discord.body["content"], headline);
    assert_eq!(
        discord.body["allowed_mentions"]["parse"],
        serde_json::json!([])
    );

    let matrix: Vec<_> = sink
        .posted()
        .into_iter()
        .filter(|p| p.path.starts_with("/_matrix/client/v3/rooms/"))
        .collect();
    assert_eq!(matrix.len(), 1);
    assert_eq!(matrix[0].method, reqwest::Method::PUT);
    assert!(
        matrix[0].path.starts_with(
            "/_matrix/client/v3/rooms/%21room%3Aconjunction.test/send/m.room.message/"
        ),
        "{}",
        matrix[0].path
    );
    assert_eq!(
        matrix[0].headers["authorization"],
        "Bearer syt_matrix_secret"
    );
    assert_eq!(matrix[0].body["msgtype"], "m.notice");

    let hook = &sink.posted_to("/hook")[0];
    assert_eq!(hook.body["headline"], headline);
    assert_eq!(hook.body["kind"], "broke");
    // Signed like a trigger: HMAC-SHA256 of the body with the rule's secret.
    assert_eq!(
        hook.headers["x-conjunction-signature"].to_str().unwrap(),
        conjunction_daemon::ci::webhook::signature("hook-signing-secret", &hook.raw)
    );
    assert_eq!(
        hook.headers["x-conjunction-delivery"].to_str().unwrap(),
        hook.body["notice"].as_str().unwrap(),
        "the delivery key is the notice's id"
    );
    d.stop().await;
}

#[tokio::test]
async fn mail_goes_through_starttls_and_implicit_tls_checked_against_the_configured_ca() {
    use conjunction_tests::chat::SmtpTls;
    for (tls, security) in [
        (SmtpTls::Starttls, SmtpSecurity::Starttls),
        (SmtpTls::Implicit, SmtpSecurity::Tls),
    ] {
        let smtp = SmtpServer::start_secured(tls).await;
        let ci = super::webhook_ci().await;
        let d = TestDaemon::start_adjusted(|c| {
            let mut notify = fast_notify(Some(&smtp), None);
            let config = notify.smtp.as_mut().unwrap();
            config.host = "localhost".into();
            config.security = security;
            config.ca_file = Some(smtp.ca_file());
            c.notify = notify;
        })
        .await;
        let token = two_projects(&d.api, &ci, Vec::new(), |_| {}).await;
        let event = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
        // No rules: both sides' contacts, in one mail, by default.
        let app = told(&d.api, node_of(&event, "acme/app").id, 1).await;
        assert_eq!(
            (app.notices[0].channel.as_str(), app.notices[0].state),
            (
                "ana@acme.example, lu@acme.example by email",
                NoticeState::Sent
            ),
            "{tls:?}: {:?}",
            app.notices[0].error
        );
        // The digests of both events, and the break.
        let mails = eventually("three mails", WAIT, || async {
            Some(smtp.mails()).filter(|m| m.len() >= 3)
        })
        .await;
        assert_eq!(mails.len(), 3, "{tls:?}: {mails:?}");
        assert!(mails
            .iter()
            .any(|m| m.contains("Subject: acme/app broke with acme/lib 1.1.0\n")));
        assert!(mails.iter().any(|m| m
            .contains("Subject: acme/lib 1.1.0: 0 passed, 1 broke (acme/app)\n")
            && m.contains("To: lu@acme.example\n")));
        d.stop().await;
    }
}

#[tokio::test]
async fn a_notice_still_queued_at_a_restart_is_sent_after_it() {
    let sink = Sink::start().await.expect("start the chat sink");
    sink.answer(503);
    let ci = super::webhook_ci().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Settings::new(dir.path());
        c.dispatch = conjunction_tests::daemon::fast_dispatch();
        c.notify = NotifyConfig {
            max_attempts: 50,
            backoff_base_ms: 100,
            backoff_max_ms: 200,
            ..fast_notify(None, None)
        };
        c
    };
    let d = TestDaemon::start_with(config()).await;
    let token = two_projects(&d.api, &ci, Vec::new(), |app| {
        app.notify = vec![slack(&sink, "/slack/app", "#app", &[NoticeKind::Broke])];
    })
    .await;
    let event = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
    let app_id = node_of(&event, "acme/app").id;
    // Failing: queued, with the last try's error on the build.
    let queued = eventually("a failed try", WAIT, || async {
        let n = d.api.build(app_id).await.ok()?;
        n.notices
            .first()
            .filter(|x| x.tries >= 2 && x.state == NoticeState::Queued)
            .cloned()
    })
    .await;
    assert_eq!(queued.error.as_deref(), Some("Slack answered 503"));
    d.stop().await;
    let tries_before = sink.posted_to("/slack/app").len();

    sink.answer(200);
    let d = TestDaemon::start_with(config()).await;
    let app = told(&d.api, app_id, 1).await;
    assert_eq!(app.notices[0].state, NoticeState::Sent);
    assert!(app.notices[0].tries > queued.tries, "{:?}", app.notices[0]);
    let posted = sink.posted_to("/slack/app");
    assert_eq!(
        posted.len(),
        tries_before + 1,
        "sent once after the restart"
    );
    assert_eq!(
        posted.last().unwrap().body["text"],
        "acme/app broke with acme/lib 1.1.0"
    );
    d.stop().await;
}
