//! Who may do what: every route and the feed against every kind of caller (no token,
//! an expired, a revoked and a report token, a viewer, a maintainer inside and one
//! outside the namespace, operators), each refusal a JSON error with a stable code
//! that changes nothing; and people's tokens from issue to revocation.

use std::time::Duration;

use conjunction_protocol::access::{ProjectPattern, Scope, TokenIssued, TokenRequest};
use conjunction_protocol::ws::{ClientMessage, ServerMessage};
use conjunction_protocol::Timestamp;
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use conjunction_tests::feed::Feed;
use reqwest::Method;

use crate::*;

/// The kinds of caller the matrix walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Expired,
    Revoked,
    /// A project's report token, which only sends reports.
    Report,
    Viewer,
    /// A maintainer of `acme/*`, where every route's project is.
    Inside,
    /// A maintainer of `other/*`.
    Outside,
    /// A token of the operator token files.
    Operator,
    /// A person's token with the operator scope.
    OperatorPerson,
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::Expired,
    Who::Revoked,
    Who::Report,
    Who::Viewer,
    Who::Inside,
    Who::Outside,
    Who::Operator,
    Who::OperatorPerson,
];

/// What a route needs.
#[derive(Clone, Copy, Debug)]
enum Needs {
    /// Any person's token.
    Read,
    /// A maintainer of the route's project (in `acme/*`).
    Manage,
    /// An operator.
    Operate,
    /// A maintainer or an operator: issuing a viewer token.
    Issue,
    /// The project's report token.
    ReportToken,
}

/// The status and code `who` gets from a route that needs `needs`; `None` when it
/// is let through.
fn expected(needs: Needs, who: Who) -> Option<(u16, &'static str)> {
    let unknown = Some((401, "unauthorized"));
    let out_of_scope = Some((403, "forbidden_scope"));
    if let Needs::ReportToken = needs {
        return (who != Who::Report).then_some((401, "unauthorized"));
    }
    match who {
        Who::Anonymous | Who::Revoked | Who::Report => unknown,
        Who::Expired => Some((401, "token_expired")),
        Who::Operator | Who::OperatorPerson => None,
        Who::Viewer => match needs {
            Needs::Read => None,
            _ => out_of_scope,
        },
        Who::Inside => match needs {
            Needs::Operate => out_of_scope,
            _ => None,
        },
        Who::Outside => match needs {
            Needs::Read | Needs::Issue => None,
            _ => out_of_scope,
        },
    }
}

fn label(who: Who) -> String {
    format!("{who:?}").to_lowercase()
}

async fn issue(
    api: &Client,
    name: &str,
    scope: Scope,
    expires_at: Option<Timestamp>,
) -> TokenIssued {
    api.create_token(&TokenRequest {
        name: name.into(),
        scope,
        expires_at,
    })
    .await
    .unwrap_or_else(|e| panic!("issuing {name}: {e}"))
}

fn maintainer_of(pattern: &str) -> Scope {
    Scope::Maintainer {
        of: vec![ProjectPattern::parse(pattern).unwrap()],
    }
}

/// Everything a caller could change, as an operator reads it.
async fn picture(api: &Client) -> String {
    let mut out = serde_json::to_string(&api.projects().await.unwrap()).unwrap();
    for r in api.roots(100).await.unwrap() {
        out.push_str(&serde_json::to_string(&api.root(r.id).await.unwrap()).unwrap());
    }
    let mut tokens = api.tokens().await.unwrap();
    for t in &mut tokens {
        // Using a token is not a change.
        t.last_used_at = None;
    }
    out.push_str(&serde_json::to_string(&tokens).unwrap());
    out
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    let d = TestDaemon::start_adjusted(|c| c.metrics.enabled = true).await;
    let ci = super::webhook_ci().await;
    ci.set("acme/b", Behaviour::Silent);
    let api = &d.api;
    let a_token = register(api, "acme/a", &[], None).await;
    register(api, "acme/b", &["acme/a"], Some(&ci)).await;
    for who in [Who::Inside, Who::Operator, Who::OperatorPerson] {
        register(api, &format!("acme/gone-{}", label(who)), &[], None).await;
    }
    let ack = report_root(api, &a_token, "acme/a", "1.0.0").await;
    let event = eventually("acme/b triggered", WAIT, || async move {
        let e = api.root(ack.root).await.ok()?;
        (node_of(&e, "acme/b").state.kind() == StateKind::Triggered).then_some(e)
    })
    .await;
    let b = node_of(&event, "acme/b").id;

    let soon = Timestamp::from_system_time(std::time::SystemTime::now() + Duration::from_secs(2));
    let expired = issue(api, "soon-gone", Scope::Viewer, Some(soon))
        .await
        .token;
    let revoked = issue(api, "revoked", Scope::Viewer, None).await;
    api.revoke_token(&revoked.info.id).await.unwrap();
    let tokens: Vec<(Who, Option<String>)> = vec![
        (Who::Anonymous, None),
        (Who::Expired, Some(expired)),
        (Who::Revoked, Some(revoked.token)),
        (Who::Report, Some(a_token.clone())),
        (
            Who::Viewer,
            Some(issue(api, "vera", Scope::Viewer, None).await.token),
        ),
        (
            Who::Inside,
            Some(issue(api, "ana", maintainer_of("acme/*"), None).await.token),
        ),
        (
            Who::Outside,
            Some(
                issue(api, "otto", maintainer_of("other/*"), None)
                    .await
                    .token,
            ),
        ),
        (Who::Operator, Some(OPERATOR_TOKEN.into())),
        (
            Who::OperatorPerson,
            Some(issue(api, "olga", Scope::Operator, None).await.token),
        ),
    ];
    tokio::time::sleep(soon.since(Timestamp::from_system_time(std::time::SystemTime::now()))).await;

    let root_report = serde_json::to_string(&super::root_report("acme/a", "1.1.0")).unwrap();
    let cases: Vec<(Needs, Method, String, String)> = vec![
        (
            Needs::Read,
            Method::GET,
            "/v1/projects".into(),
            String::new(),
        ),
        (
            Needs::Read,
            Method::GET,
            "/v1/projects/acme%2Fa".into(),
            String::new(),
        ),
        (
            Needs::Read,
            Method::GET,
            "/v1/projects/acme%2Fa/dependents".into(),
            String::new(),
        ),
        (
            Needs::Read,
            Method::GET,
            "/v1/projects/acme%2Fa/impact?version=2.0.0".into(),
            String::new(),
        ),
        (
            Needs::Read,
            Method::GET,
            "/v1/projects/acme%2Fa/releases".into(),
            String::new(),
        ),
        (
            Needs::Read,
            Method::GET,
            format!("/v1/builds/{b}"),
            String::new(),
        ),
        (Needs::Read, Method::GET, "/v1/roots".into(), String::new()),
        (
            Needs::Read,
            Method::GET,
            format!("/v1/roots/{}", ack.root),
            String::new(),
        ),
        (Needs::Read, Method::GET, "/v1/tokens".into(), String::new()),
        (
            Needs::Read,
            Method::GET,
            "/v1/audit?project=acme%2Fa".into(),
            String::new(),
        ),
        (
            Needs::Manage,
            Method::PUT,
            "/v1/projects/acme%2Fnew-{who}".into(),
            r#"{"name":"New"}"#.into(),
        ),
        (
            Needs::Manage,
            Method::PUT,
            "/v1/projects".into(),
            r#"{"projects":[{"id":"acme/listed-{who}","name":"Listed"}]}"#.into(),
        ),
        (
            Needs::Manage,
            Method::POST,
            "/v1/projects/acme%2Fa/notify/test".into(),
            String::new(),
        ),
        (
            Needs::Manage,
            Method::POST,
            format!("/v1/builds/{b}/rebuild"),
            String::new(),
        ),
        (
            Needs::Manage,
            Method::POST,
            "/v1/projects/acme%2Fgone-{who}/report-token".into(),
            String::new(),
        ),
        (
            Needs::Manage,
            Method::DELETE,
            "/v1/projects/acme%2Fgone-{who}".into(),
            String::new(),
        ),
        (
            Needs::Operate,
            Method::POST,
            "/v1/backup".into(),
            String::new(),
        ),
        (
            Needs::Operate,
            Method::GET,
            "/metrics".into(),
            String::new(),
        ),
        (
            Needs::Operate,
            Method::POST,
            "/v1/tokens".into(),
            r#"{"name":"op-{who}","scope":{"role":"operator"}}"#.into(),
        ),
        (
            Needs::Issue,
            Method::POST,
            "/v1/tokens".into(),
            r#"{"name":"viewer-{who}","scope":{"role":"viewer"}}"#.into(),
        ),
        (
            Needs::ReportToken,
            Method::POST,
            "/v1/reports".into(),
            root_report,
        ),
    ];

    for (needs, method, path, body) in &cases {
        // Refusals first, and nothing of them may show; then the callers let through.
        let before = picture(api).await;
        let mut through = Vec::new();
        for (who, token) in &tokens {
            let path = path.replace("{who}", &label(*who));
            let body = body.replace("{who}", &label(*who));
            let Some((status, code)) = expected(*needs, *who) else {
                through.push((*who, token.clone(), path, body));
                continue;
            };
            let body = (!body.is_empty()).then(|| body.into_bytes());
            let raw = api
                .raw(method.clone(), &path, token.as_deref(), body)
                .await
                .unwrap();
            let json = raw.json();
            assert_eq!(
                (raw.status, json["error"].as_str()),
                (status, Some(code)),
                "{who:?} {method} {path}: {json}"
            );
            let message = json["message"].as_str().unwrap_or_default();
            assert!(message.len() > 20, "a sentence a person can act on: {json}");
            if let Some(token) = token {
                assert!(
                    !message.contains(token.as_str()),
                    "the token is echoed: {json}"
                );
            }
        }
        assert_eq!(
            picture(api).await,
            before,
            "{method} {path}: a refusal changed something"
        );
        for (who, token, path, body) in through {
            let body = (!body.is_empty()).then(|| body.into_bytes());
            let raw = api
                .raw(method.clone(), &path, token.as_deref(), body)
                .await
                .unwrap();
            assert!(
                !matches!(raw.status, 401 | 403),
                "{who:?} {method} {path} is let through: {} {}",
                raw.status,
                raw.json()
            );
        }
    }

    // A private project's badge is read with a person's token, and is as missing as
    // an unknown project's without one.
    for (who, token) in &tokens {
        let raw = api
            .raw(
                Method::GET,
                "/v1/badges/acme/a/status.svg",
                token.as_deref(),
                None,
            )
            .await
            .unwrap();
        let reads = expected(Needs::Read, *who).is_none();
        assert_eq!(
            raw.status,
            if reads { 200 } else { 404 },
            "{who:?} reads a private badge"
        );
    }

    // Every refusal for lack of permission was counted by its code: two callers
    // refused on each route that needs more than reading.
    let metrics = d
        .api
        .raw(Method::GET, "/metrics", Some(OPERATOR_TOKEN), None)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    let counted = text
        .lines()
        .find(|l| l.starts_with("conjunction_refusals_total{code=\"forbidden_scope\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok());
    let refused = cases
        .iter()
        .map(|(needs, ..)| {
            EVERYONE
                .iter()
                .filter(|w| expected(*needs, **w).is_some_and(|(s, _)| s == 403))
                .count()
        })
        .sum::<usize>();
    assert_eq!(counted, Some(refused as f64), "{text}");
}

#[tokio::test]
async fn a_maintainer_manages_its_namespace_and_nothing_beside_it() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let api = &d.api;
    let lib = register(api, "other/lib", &[], None).await;
    let ana = Client::new(
        &d.url(),
        Some(issue(api, "ana", maintainer_of("acme/*"), None).await.token),
    );

    // A downstream subscribes itself to an upstream of another namespace.
    let (status, created) = ana
        .put_project(
            &pid("acme/app"),
            &spec("acme/app", &["other/lib"], Some(&ci)),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert!(
        created.report_token.is_some(),
        "the new report token is shown to whoever registered"
    );
    // ... and the upstream cannot change or remove that subscription.
    let otto = Client::new(
        &d.url(),
        Some(
            issue(api, "otto", maintainer_of("other/*"), None)
                .await
                .token,
        ),
    );
    let refused = otto
        .put_project(&pid("acme/app"), &spec("acme/app", &[], None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("forbidden_scope"), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("needs a maintainer of acme/app"),
        "{refused}"
    );
    let refused = otto.delete_project(&pid("acme/app")).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden_scope"), "{refused}");
    assert_eq!(
        api.project(&pid("acme/app"))
            .await
            .unwrap()
            .depends_on
            .len(),
        1
    );

    // A list with entries outside the namespace is refused by name, and nothing of it
    // is applied.
    let raw = ana
        .raw(
            Method::PUT,
            "/v1/projects",
            ana.token(),
            Some(br#"{"projects":[{"id":"acme/cli","name":"Cli"},{"id":"other/lib","name":"Taken"},{"id":"other/new","name":"New"}]}"#.to_vec()),
        )
        .await
        .unwrap();
    let json = raw.json();
    assert_eq!(raw.status, 403, "{json}");
    let named: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["project"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["other/lib", "other/new"], "{json}");
    assert!(
        api.project(&pid("acme/cli")).await.is_err(),
        "nothing was applied"
    );
    assert_eq!(
        api.project(&pid("other/lib")).await.unwrap().name,
        "other/lib"
    );

    // A maintainer rebuilds its own builds, not the upstream's.
    let ack = report_root(api, &lib, "other/lib", "1.0.0").await;
    let event = settled(api, ack.root).await;
    let app = node_of(&event, "acme/app").id;
    let lib_node = node_of(&event, "other/lib").id;
    ana.rebuild(app)
        .await
        .expect("a maintainer rebuilds its own build");
    let refused = ana.rebuild(lib_node).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden_scope"));
    assert!(
        refused
            .to_string()
            .contains("rebuilding a build of other/lib needs a maintainer of other/lib"),
        "{refused}"
    );
}

#[tokio::test]
async fn tokens_are_issued_within_the_issuers_reach_listed_and_revoked() {
    let d = TestDaemon::start().await;
    let api = &d.api;
    let ana_issued = issue(api, "ana", maintainer_of("acme/*"), None).await;
    assert!(ana_issued.token.starts_with("cjp_"));
    let ana = Client::new(&d.url(), Some(ana_issued.token.clone()));
    issue(api, "someone-elses-viewer", Scope::Viewer, None).await;

    // Inside its reach: a viewer and a narrower maintainer.
    let bob = issue(&ana, "bob", Scope::Viewer, None).await;
    let app = issue(&ana, "app-bot", maintainer_of("acme/app"), None).await;
    assert_eq!(app.info.created_by, "ana");
    // Beyond it: a wider maintainer, another namespace, an operator.
    for scope in [
        Scope::Maintainer {
            of: vec![
                ProjectPattern::parse("acme/*").unwrap(),
                ProjectPattern::parse("other/*").unwrap(),
            ],
        },
        maintainer_of("other/app"),
        Scope::Operator,
    ] {
        let refused = ana
            .create_token(&TokenRequest {
                name: "wide".into(),
                scope: scope.clone(),
                expires_at: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Some("forbidden_scope"),
            "{scope}: {refused}"
        );
    }
    // Names are unique; bad requests say what is wrong.
    let refused = api
        .create_token(&TokenRequest {
            name: "bob".into(),
            scope: Scope::Viewer,
            expires_at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("token_name_in_use"));
    for (body, code) in [
        (
            r#"{"name":"x","scope":{"role":"maintainer","of":[]}}"#,
            "invalid_field",
        ),
        (
            r#"{"name":"x","scope":{"role":"maintainer","of":["*"]}}"#,
            "invalid_body",
        ),
        (r#"{"name":"x","scope":{"role":"root"}}"#, "invalid_body"),
        (r#"{"name":"","scope":{"role":"viewer"}}"#, "invalid_field"),
        (
            r#"{"name":"x","scope":{"role":"viewer"},"expires_at":"2020-01-01T00:00:00Z"}"#,
            "invalid_field",
        ),
    ] {
        let raw = api
            .raw(
                Method::POST,
                "/v1/tokens",
                Some(OPERATOR_TOKEN),
                Some(body.as_bytes().to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(
            (raw.status, raw.json()["error"].as_str()),
            (400, Some(code)),
            "{body}: {}",
            raw.json()
        );
    }

    // A maintainer lists what it may revoke: itself, what it issued, narrower
    // maintainers; not viewers others issued.
    let listed: Vec<String> = ana
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(listed, ["ana", "bob", "app-bot"]);
    let all: Vec<String> = api
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(all, ["ana", "someone-elses-viewer", "bob", "app-bot"]);
    let theirs = api
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "someone-elses-viewer")
        .unwrap();
    let refused = ana.revoke_token(&theirs.id).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden_scope"));

    // Use is written down, coarsely, by the writer after the answer.
    let bob_client = Client::new(&d.url(), Some(bob.token.clone()));
    bob_client.projects().await.unwrap();
    eventually("bob's use is written down", WAIT, || async {
        api.tokens()
            .await
            .ok()?
            .into_iter()
            .find(|t| t.name == "bob")?
            .last_used_at
    })
    .await;

    // Revoked: refused from the next request on, and its feed closes.
    let ws = format!("ws://{}/v1/ws", d.addr);
    let mut feed = Feed::connect(&ws, &bob.token).await.unwrap();
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Hello { .. }));
    assert!(matches!(
        feed.next(WAIT).await,
        ServerMessage::Snapshot { .. }
    ));
    ana.revoke_token(&bob.info.id)
        .await
        .expect("ana revokes the token it issued");
    assert_eq!(
        feed.close_code(WAIT).await,
        Some(1008),
        "the revoked token's feed closes"
    );
    let refused = bob_client.projects().await.unwrap_err();
    assert_eq!(refused.code(), Some("unauthorized"));
    assert!(
        Feed::connect(&ws, &bob.token).await.is_err(),
        "a revoked token opens no feed"
    );
    let refused = api.revoke_token(&bob.info.id).await.unwrap_err();
    assert_eq!(refused.code(), Some("unknown_token"));
}

#[tokio::test]
async fn the_feed_serves_a_viewer_and_rebuilds_only_for_a_maintainer() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let api = &d.api;
    let lib = register(api, "acme/lib", &[], None).await;
    register(api, "acme/app", &["acme/lib"], Some(&ci)).await;
    let ack = report_root(api, &lib, "acme/lib", "1.0.0").await;
    let app = node_of(&settled(api, ack.root).await, "acme/app").id;
    let ws = format!("ws://{}/v1/ws", d.addr);
    assert!(
        Feed::connect(&ws, "not-a-token").await.is_err(),
        "no feed without a token"
    );
    assert!(
        Feed::connect(&ws, &lib).await.is_err(),
        "no feed for a report token"
    );

    let viewer = issue(api, "vera", Scope::Viewer, None).await.token;
    let mut feed = Feed::connect(&ws, &viewer).await.unwrap();
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Hello { .. }));
    let ServerMessage::Snapshot { projects, .. } = feed.next(WAIT).await else {
        panic!("a snapshot follows the hello");
    };
    assert_eq!(projects.len(), 2, "a viewer reads every project");
    for (who, feed) in [
        ("a viewer", feed),
        // A maintainer of another namespace is refused as a viewer is.
        ("another namespace's maintainer", {
            let outside = issue(api, "otto", maintainer_of("other/*"), None)
                .await
                .token;
            let mut feed = Feed::connect(&ws, &outside).await.unwrap();
            feed.next(WAIT).await;
            feed.next(WAIT).await;
            feed
        }),
    ] {
        let mut feed = feed;
        feed.send(&ClientMessage::Rebuild { build: app }).await;
        match feed.next(WAIT).await {
            ServerMessage::Error { error, message } => {
                assert_eq!(error, "forbidden_scope", "{who}");
                assert!(
                    message
                        .contains("rebuilding a build of acme/app needs a maintainer of acme/app"),
                    "{who}: {message}"
                );
            }
            other => panic!("{who}'s rebuild is refused, not {other:?}"),
        }
    }

    let maintainer = issue(api, "ana", maintainer_of("acme/app"), None)
        .await
        .token;
    let mut feed = Feed::connect(&ws, &maintainer).await.unwrap();
    feed.next(WAIT).await;
    feed.next(WAIT).await;
    feed.send(&ClientMessage::Rebuild { build: app }).await;
    loop {
        match feed.next(WAIT).await {
            ServerMessage::RebuildStarted { build, attempt, .. } => {
                assert_eq!((build, attempt), (app, 2));
                break;
            }
            ServerMessage::Event(_) => continue,
            other => panic!("a maintainer's rebuild starts, not {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_audit_trail_names_who_changed_what() {
    let d = TestDaemon::start().await;
    let api = &d.api;
    let ana = Client::new(
        &d.url(),
        Some(issue(api, "ana", maintainer_of("acme/*"), None).await.token),
    );
    let (_, created) = ana
        .put_project(&pid("acme/lib"), &spec("acme/lib", &[], None))
        .await
        .unwrap();
    let lib_token = created.report_token.unwrap();
    let mut changed = spec("acme/lib", &[], None);
    changed.name = "Acme Lib".into();
    ana.put_project(&pid("acme/lib"), &changed).await.unwrap();
    report_root(api, &lib_token, "acme/lib", "1.0.0").await;

    let trail = api.audit(Some(&pid("acme/lib"))).await.unwrap();
    let said: Vec<String> = trail
        .entries
        .iter()
        .map(|e| {
            format!("{} by {} {}", e.action.verb(), e.by, e.detail)
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(
        said,
        [
            "reported by acme/lib's report token 1.0.0",
            "changed by ana (maintainer acme/*)",
            "created by ana (maintainer acme/*)",
        ]
    );
    assert!(trail.next_before.is_none());
    // The project shows its last change, as the terminal UI's details do.
    let project = api.project(&pid("acme/lib")).await.unwrap();
    let last = project.changed.expect("the last change is shown");
    assert_eq!(
        format!("{} by {}", last.action.verb(), last.by),
        "changed by ana (maintainer acme/*)"
    );
    // The whole trail has the token's issue too, by whoever issued it.
    let all = api.audit(None).await.unwrap();
    let issued = all
        .entries
        .last()
        .expect("the first change is the token's issue");
    assert_eq!(
        format!(
            "{} by {} {}",
            issued.action.verb(),
            issued.by,
            issued.detail
        ),
        "issued by operator (operator) ana (maintainer acme/*)"
    );
}

#[tokio::test]
async fn a_daemon_that_hides_addresses_shows_viewers_none_and_maintainers_all() {
    let d = TestDaemon::start_adjusted(|c| c.access.viewers_see_email = false).await;
    let ci = super::webhook_ci().await;
    let api = &d.api;
    let lib = register(api, "acme/lib", &[], None).await;
    let mut app = spec("acme/app", &["acme/lib"], Some(&ci));
    // A range 2.0.0 is outside: the impact preview names whom to ask for the bump.
    app.depends_on[0].range = Some("^1".into());
    app.notify =
        vec![
            serde_json::from_str(r#"{"channel":{"kind":"email","to":["ops@acme.example"]}}"#)
                .unwrap(),
        ];
    api.put_project(&pid("acme/app"), &app).await.unwrap();
    let ack = report_root(api, &lib, "acme/lib", "1.0.0").await;
    settled(api, ack.root).await;
    let viewer = issue(api, "vera", Scope::Viewer, None).await.token;
    let maintainer = issue(api, "ana", maintainer_of("acme/*"), None).await.token;
    let app_node = node_of(&api.root(ack.root).await.unwrap(), "acme/app").id;

    for path in [
        "/v1/projects".to_owned(),
        "/v1/projects/acme%2Fapp".to_owned(),
        "/v1/projects/acme%2Flib/impact?version=2.0.0".to_owned(),
        format!("/v1/roots/{}", ack.root),
        format!("/v1/builds/{app_node}"),
    ] {
        let seen = api
            .raw(Method::GET, &path, Some(&viewer), None)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&seen.body);
        assert_eq!(seen.status, 200, "{path}: {text}");
        assert!(
            !text.contains("@acme.example"),
            "a viewer is shown an address at {path}: {text}"
        );
        let full = api
            .raw(Method::GET, &path, Some(&maintainer), None)
            .await
            .unwrap();
        let full = String::from_utf8_lossy(&full.body).into_owned();
        if path.starts_with("/v1/projects") {
            assert!(
                full.contains("maintainer@acme.example"),
                "a maintainer sees the contacts' addresses at {path}: {full}"
            );
            assert!(
                text.contains("acme/app maintainer"),
                "a viewer still sees who to contact at {path}: {text}"
            );
        }
    }
    let seen = api.project(&pid("acme/app")).await.unwrap();
    assert!(
        seen.notify[0].channel.contains("ops@acme.example"),
        "an operator sees the rule's address"
    );

    // The feed: a viewer's snapshot and events come without addresses, an operator's
    // with them.
    let ws = format!("ws://{}/v1/ws", d.addr);
    let mut theirs = Feed::connect(&ws, &viewer).await.unwrap();
    let mut ours = Feed::connect(&ws, OPERATOR_TOKEN).await.unwrap();
    for feed in [&mut theirs, &mut ours] {
        feed.next(WAIT).await;
    }
    let snapshot = serde_json::to_string(&theirs.next(WAIT).await).unwrap();
    assert!(
        snapshot.contains("acme/app maintainer") && !snapshot.contains("@acme.example"),
        "{snapshot}"
    );
    let snapshot = serde_json::to_string(&ours.next(WAIT).await).unwrap();
    assert!(snapshot.contains("maintainer@acme.example"), "{snapshot}");
    app.name = "Acme App".into();
    api.put_project(&pid("acme/app"), &app).await.unwrap();
    let event = serde_json::to_string(&theirs.next(WAIT).await).unwrap();
    assert!(
        event.contains("Acme App") && !event.contains("@acme.example"),
        "{event}"
    );
    let event = serde_json::to_string(&ours.next(WAIT).await).unwrap();
    assert!(
        event.contains("Acme App") && event.contains("ops@acme.example"),
        "{event}"
    );
}

#[tokio::test]
async fn by_default_viewers_see_whom_to_contact_with_their_addresses() {
    let d = TestDaemon::start().await;
    let api = &d.api;
    register(api, "acme/lib", &[], None).await;
    let viewer = Client::new(
        &d.url(),
        Some(issue(api, "vera", Scope::Viewer, None).await.token),
    );
    let project = viewer.project(&pid("acme/lib")).await.unwrap();
    assert_eq!(
        project.contacts[0].email.as_deref(),
        Some("maintainer@acme.example")
    );
}

#[tokio::test]
async fn a_feed_closes_when_its_token_expires() {
    let d = TestDaemon::start().await;
    let soon = Timestamp::from_system_time(std::time::SystemTime::now() + Duration::from_secs(2));
    let token = issue(&d.api, "brief", Scope::Viewer, Some(soon))
        .await
        .token;
    let ws = format!("ws://{}/v1/ws", d.addr);
    let mut feed = Feed::connect(&ws, &token).await.unwrap();
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Hello { .. }));
    assert_eq!(
        feed.close_code(WAIT).await,
        Some(1008),
        "the feed closes at the expiry"
    );
    let refused = Client::new(&d.url(), Some(token))
        .projects()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("token_expired"));
    assert!(
        refused
            .to_string()
            .contains("ask whoever issued it (operator)"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_refusal_for_scope_is_logged_with_the_tokens_name_and_never_the_token() {
    use conjunction_tests::daemon::DaemonProcess;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let daemon = DaemonProcess::start_logging(dir.path(), "", &log).await;
    let api = &daemon.api;
    register(api, "acme/lib", &[], None).await;
    let issued = issue(api, "vera", Scope::Viewer, None).await;
    let vera = Client::new(
        &format!("http://{}", daemon.addr),
        Some(issued.token.clone()),
    );
    let refused = vera.delete_project(&pid("acme/lib")).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden_scope"));
    let line = eventually("the refusal in the log", WAIT, || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .find(|l| l.contains("out of the token's scope"))
                .map(str::to_owned)
        }
    })
    .await;
    assert!(
        line.contains("vera") && line.contains("viewer") && line.contains("removing acme/lib"),
        "{line}"
    );
    let whole = std::fs::read_to_string(&log).unwrap();
    assert!(!whole.contains(&issued.token), "the token is in the log");
    assert!(
        !whole.contains(&issued.token[4..20]),
        "part of the token is in the log"
    );
    daemon.kill().await;
}
