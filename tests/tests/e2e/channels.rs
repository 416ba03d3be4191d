//! Every channel's own limits, with the most a project may say: 32 contacts a side,
//! with long Polish names (from faker's pl_PL names) that are not ASCII. Slack,
//! Discord and Matrix go to a sink that refuses what each refuses by its documented
//! limits; mail goes through a real SMTP server, which refuses a line over 1,000
//! octets; IRC to a real IRC server. No notice may be given up for a reason the
//! daemon could have avoided.

use conjunction_protocol::notify::{Channel, NoticeKind, NoticeState, NotifyRule};
use conjunction_protocol::{Contact, Node};
use conjunction_sim::chat::Sink;
use conjunction_sim::webhook::{Behaviour, WebhookCi};
use conjunction_tests::chat::{IrcServer, SmtpServer};
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::fixture_json;

use super::notify::{fast_notify, pass_then, told, two_projects};
use crate::*;

/// ASCII for an address or a handle: the Polish letters without their marks.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ą' => 'a',
            'ć' => 'c',
            'ę' => 'e',
            'ł' => 'l',
            'ń' => 'n',
            'ó' => 'o',
            'ś' => 's',
            'ź' | 'ż' => 'z',
            'Ą' => 'A',
            'Ć' => 'C',
            'Ę' => 'E',
            'Ł' => 'L',
            'Ń' => 'N',
            'Ó' => 'O',
            'Ś' => 'S',
            'Ź' | 'Ż' => 'Z',
            c => c,
        })
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// 32 people for one side: the longest first names, each with a double surname of
/// the longest last names; the side's letter keeps addresses apart.
fn crowd(side: char) -> Vec<Contact> {
    let names = fixture_json("acceptance/notify/faker-person-pl_PL.json");
    let list = |key: &str| -> Vec<String> {
        names[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    let mut first: Vec<String> = list("first_names_male");
    first.extend(list("first_names_female"));
    first.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    let mut last = list("unisex_last_names");
    last.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    (0..32)
        .map(|i| {
            let (given, a, b) = (&first[i], &last[2 * i], &last[2 * i + 1]);
            let handle = format!("{}.{}{side}", ascii(given), ascii(a));
            Contact {
                name: format!("{given} {a}-{b}"),
                email: Some(format!("{handle}@release-engineering.acme.example")),
                chat: Some(format!("@{handle}")),
                role: Some("release engineering".into()),
            }
        })
        .collect()
}

fn rule(channel: Channel) -> NotifyRule {
    NotifyRule {
        channel,
        on: vec![NoticeKind::Broke, NoticeKind::Fixed],
        name: None,
    }
}

/// acme/lib and acme/app with 32 contacts each and `rules` on app; the event that
/// breaks app, and app's node once its notices are sent or given up.
async fn break_with(d: &TestDaemon, ci: &WebhookCi, rules: Vec<NotifyRule>, excerpt: &str) -> Node {
    let token = two_projects(&d.api, ci, Vec::new(), |app| {
        app.contacts = crowd('d');
        app.notify = rules.clone();
    })
    .await;
    let mut lib = spec("acme/lib", &[], None);
    lib.contacts = crowd('u');
    d.api.put_project(&pid("acme/lib"), &lib).await.unwrap();
    let event = pass_then(&d.api, ci, &token, Behaviour::fail(excerpt)).await;
    told(&d.api, node_of(&event, "acme/app").id, rules.len()).await
}

fn all_sent(node: &Node) {
    for n in &node.notices {
        assert_eq!(
            n.state,
            NoticeState::Sent,
            "{} was not sent: {:?}",
            n.channel,
            n.error
        );
    }
}

#[tokio::test]
async fn thirty_two_contacts_a_side_fit_slacks_block_kit_with_the_rest_counted() {
    let sink = Sink::start().await.expect("start the chat sink");
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, None)).await;
    // A compiler error is full of `&`, `<` and `>`, each escaped to an entity.
    let stderr = String::from_utf8(conjunction_tests::fixture(
        "acceptance/notify/rustc-coerce-suggestions.stderr",
    ))
    .unwrap();
    let slack = Channel::Slack {
        url: sink.url("/slack/app"),
    };
    let node = break_with(&d, &ci, vec![rule(slack)], &stderr).await;
    all_sent(&node);
    let posted = &sink.posted_to("/slack/app")[0].body;
    let context = posted["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "context")
        .expect("the people");
    for element in context["elements"].as_array().unwrap() {
        let text = element["text"].as_str().unwrap();
        assert!(text.chars().count() <= 3000, "{}", text.len());
        assert!(text.contains(" more"), "the rest counted: {text}");
    }
    let excerpt = posted["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(excerpt.contains("&amp;str"), "{excerpt}");
}

#[tokio::test]
async fn thirty_two_contacts_a_side_fit_discords_limits() {
    let sink = Sink::start().await.expect("start the chat sink");
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, None)).await;
    let discord = Channel::Discord {
        url: sink.url("/api/webhooks/1/token"),
    };
    let node = break_with(&d, &ci, vec![rule(discord)], &"x".repeat(2000)).await;
    all_sent(&node);
    let posted = &sink.posted_to("/api/webhooks/1/token")[0].body;
    let description = posted["embeds"][0]["description"].as_str().unwrap();
    assert!(description.contains("(upstream): "), "{description}");
}

#[tokio::test]
async fn a_matrix_room_alias_is_resolved_through_the_directory_and_an_unknown_one_says_so() {
    let sink = Sink::start().await.expect("start the chat sink");
    sink.alias("#builds:conjunction.test", "!builds:conjunction.test");
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, None)).await;
    let matrix = |room: &str| Channel::Matrix {
        homeserver: sink.url(""),
        room: room.into(),
        token: "syt_matrix_secret".into(),
    };
    let node = break_with(
        &d,
        &ci,
        vec![
            rule(matrix("#builds:conjunction.test")),
            rule(matrix("#nowhere:conjunction.test")),
        ],
        "boom",
    )
    .await;
    assert_eq!(
        node.notices[0].state,
        NoticeState::Sent,
        "{:?}",
        node.notices[0].error
    );
    let sent: Vec<String> = sink
        .posted()
        .into_iter()
        .filter(|p| p.method == reqwest::Method::PUT)
        .map(|p| p.path)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with(
            "/_matrix/client/v3/rooms/%21builds%3Aconjunction.test/send/m.room.message/"
        ),
        "sent to the room id: {}",
        sent[0]
    );
    let unknown = &node.notices[1];
    assert_eq!(unknown.state, NoticeState::GaveUp);
    let error = unknown.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("#nowhere:conjunction.test") && error.contains("404"),
        "{error}"
    );
    assert!(!error.contains("syt_matrix_secret"));
}

/// The header of a mail as the daemon sent it, its folded lines as sent: without the
/// lines aiosmtpd adds as it delivers (`X-Peer`, `X-MailFrom`, `X-RcptTo`).
fn header(mail: &str) -> Vec<&str> {
    mail.split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter(|l| {
            !["X-Peer:", "X-MailFrom:", "X-RcptTo:"]
                .iter()
                .any(|x| l.starts_with(x))
        })
        .collect()
}

#[tokio::test]
async fn thirty_two_contacts_a_side_get_one_mail_a_real_smtp_server_takes() {
    let smtp = SmtpServer::start().await;
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(Some(&smtp), None)).await;
    let mail_rule = rule(Channel::Email { to: Vec::new() });
    let node = break_with(&d, &ci, vec![mail_rule], "boom").await;
    all_sent(&node);
    let label = &node.notices[0].channel;
    assert!(label.ends_with("and 61 more by email"), "{label}");
    let mails = smtp.mails();
    let subject = "Subject: acme/app broke with acme/lib 1.1.0\n";
    let broke: Vec<&String> = mails.iter().filter(|m| m.contains(subject)).collect();
    assert_eq!(broke.len(), 1, "one mail to both sides: {mails:?}");
    let head = header(broke[0]);
    for line in &head {
        assert!(
            line.len() <= 998,
            "RFC 5322 2.1.1: {} characters: {}",
            line.len(),
            line.chars().take(300).collect::<String>()
        );
        assert!(line.is_ascii(), "RFC 5322 2.2: {line}");
    }
    let to: String = head
        .iter()
        .skip_while(|l| !l.starts_with("To: "))
        .take_while(|l| l.starts_with("To: ") || l.starts_with(' '))
        .copied()
        .collect();
    assert_eq!(to.matches("@release-engineering.acme.example").count(), 64);
    assert!(
        to.contains("=?utf-8?"),
        "names are encoded words (RFC 2047): {to}"
    );
}

#[tokio::test]
async fn a_fix_mail_replies_to_the_break_mail_of_an_earlier_event() {
    let smtp = SmtpServer::start().await;
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(Some(&smtp), None)).await;
    let token = two_projects(&d.api, &ci, Vec::new(), |_| {}).await;
    let broke = pass_then(&d.api, &ci, &token, Behaviour::fail("boom")).await;
    told(&d.api, node_of(&broke, "acme/app").id, 1).await;
    // Still failing in 1.2.0 (nobody told), fixed in 1.3.0.
    let still = report_root(&d.api, &token, "acme/lib", "1.2.0").await;
    settled(&d.api, still.root).await;
    ci.set("acme/app", Behaviour::pass());
    let fixed = report_root(&d.api, &token, "acme/lib", "1.3.0").await;
    let event = settled(&d.api, fixed.root).await;
    told(&d.api, node_of(&event, "acme/app").id, 1).await;
    let mails = eventually("both mails", WAIT, || async {
        Some(smtp.mails()).filter(|m| m.len() >= 2)
    })
    .await;
    let find = |subject: &str| {
        mails
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}\n")))
            .unwrap_or_else(|| panic!("no mail {subject:?} in {mails:?}"))
    };
    let break_mail = find("acme/app broke with acme/lib 1.1.0");
    let fix_mail = find("acme/app is fixed with acme/lib 1.3.0");
    let id = break_mail
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap();
    assert!(
        fix_mail.contains(&format!("In-Reply-To: {id}\n")),
        "{fix_mail}"
    );
    let references: String = header(fix_mail)
        .iter()
        .skip_while(|l| !l.starts_with("References: "))
        .take_while(|l| l.starts_with("References: ") || l.starts_with(' '))
        .copied()
        .collect();
    assert!(
        references.contains(&format!("<{}@conjunction>", broke.summary.id))
            && references.contains(id),
        "threaded under the break's event and mail: {references}"
    );
}

#[tokio::test]
async fn thirty_two_contacts_are_said_on_irc_within_its_lines() {
    let irc = IrcServer::start().await;
    let mut heard = irc.listen("listener", "#builds").await;
    let ci = super::webhook_ci().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(None, Some(&irc))).await;
    let channel = Channel::Irc {
        target: "#builds".into(),
    };
    let node = break_with(&d, &ci, vec![rule(channel)], "boom").await;
    all_sent(&node);
    let mut lines = Vec::new();
    while let Ok(Some((_, text))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), heard.recv()).await
    {
        lines.push(text);
    }
    let people: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("release engineering"))
        .collect();
    assert_eq!(people.len(), 2, "{lines:?}");
    for line in people {
        assert!(line.len() <= 512 && line.ends_with(" more"), "{line}");
    }
}

#[tokio::test]
async fn a_test_notice_goes_to_every_channel_now_and_says_how_each_went() {
    let sink = Sink::start().await.expect("start the chat sink");
    let down = Sink::start().await.expect("start the chat sink");
    down.answer(503);
    let smtp = SmtpServer::start().await;
    let d = TestDaemon::start_adjusted(|c| c.notify = fast_notify(Some(&smtp), None)).await;
    let only_breaks = |channel: Channel, name: Option<&str>| NotifyRule {
        channel,
        on: vec![NoticeKind::Broke],
        name: name.map(str::to_owned),
    };
    let mut app = spec("acme/app", &[], None);
    app.contacts = vec![super::notify::person("Ana Lima", "ana@acme.example")];
    app.notify = vec![
        only_breaks(
            Channel::Slack {
                url: sink.url("/slack/app"),
            },
            Some("#app"),
        ),
        only_breaks(
            Channel::Matrix {
                homeserver: sink.url(""),
                room: "#nowhere:conjunction.test".into(),
                token: "syt_matrix_secret".into(),
            },
            None,
        ),
        only_breaks(
            Channel::Discord {
                url: down.url("/api/webhooks/9/down-secret"),
            },
            Some("#down"),
        ),
        only_breaks(Channel::Email { to: Vec::new() }, None),
    ];
    d.api.put_project(&pid("acme/app"), &app).await.unwrap();

    let test = d.api.notify_test(&pid("acme/app")).await.unwrap();
    let said: Vec<(&str, &str, conjunction_protocol::notify::TestOutcome)> = test
        .channels
        .iter()
        .map(|c| (c.channel.as_str(), c.kind.as_str(), c.outcome))
        .collect();
    use conjunction_protocol::notify::TestOutcome::*;
    assert_eq!(
        said,
        [
            ("#app on Slack", "slack", Sent),
            ("#nowhere:conjunction.test on Matrix", "matrix", Refused),
            ("#down on Discord", "discord", Failed),
            ("ana@acme.example by email", "email", Sent),
        ]
    );
    let shown = serde_json::to_string(&test).unwrap();
    for secret in ["syt_matrix_secret", "down-secret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert_eq!(
        super::notify::texts(&sink, "/slack/app"),
        ["A test notice from conjunction for acme/app"]
    );
    let mails = eventually("the test mail", WAIT, || async {
        Some(smtp.mails()).filter(|m| !m.is_empty())
    })
    .await;
    assert!(mails[0].contains("Subject: A test notice from conjunction for acme/app\n"));
    assert!(
        d.api.roots(10).await.unwrap().is_empty(),
        "no event, no build"
    );

    // The command line says the same, and fails since not every channel took it.
    let out =
        tokio::process::Command::new(conjunction_tests::daemon::binaries().join("conjunction"))
            .args(["notify-test", "acme/app"])
            .env("CONJUNCTION_URL", d.url())
            .env(
                "CONJUNCTION_TOKEN",
                conjunction_tests::daemon::OPERATOR_TOKEN,
            )
            .env("XDG_CONFIG_HOME", tempfile::tempdir().unwrap().path())
            .output()
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("sent\t#app on Slack\n"), "{stdout}");
    assert!(
        stdout.contains("refused\t#nowhere:conjunction.test on Matrix\t"),
        "{stdout}"
    );
    assert!(stdout.contains("failed\t#down on Discord\t"), "{stdout}");

    // A project whose notices go nowhere is told so.
    let mut lone = spec("acme/lone", &[], None);
    lone.contacts = Vec::new();
    d.api.put_project(&pid("acme/lone"), &lone).await.unwrap();
    let test = d.api.notify_test(&pid("acme/lone")).await.unwrap();
    assert!(test.channels.is_empty());
    assert!(test.note.unwrap().contains("go nowhere"));
}
