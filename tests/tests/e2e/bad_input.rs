//! Refusals: every bad request gets a JSON error with a stable code and changes nothing.

use conjunction_protocol::StateKind;
use conjunction_sim::webhook::{Behaviour, WebhookCi};
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use conjunction_tests::eventually;
use reqwest::Method;

use crate::*;

/// A request and the refusal it must get: method, path, token, body, status, code.
type Case<'a> = (Method, String, Option<&'a str>, String, u16, &'static str);

/// Sends a raw request and checks the status and the error code of the JSON answer.
async fn refused(
    api: &Client,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    status: u16,
    code: &str,
) {
    let raw = api
        .raw(method.clone(), path, token, Some(body.to_vec()))
        .await
        .unwrap();
    let json = raw.json();
    assert_eq!(raw.status, status, "{method} {path}: {json}");
    assert_eq!(json["error"], code, "{method} {path}: {json}");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(message.len() > 20, "a sentence a person can act on: {json}");
}

/// Everything a client can see, to check that refusals change nothing.
async fn picture(api: &Client) -> String {
    let projects = serde_json::to_string(&api.projects().await.unwrap()).unwrap();
    let mut out = projects;
    for r in api.roots(100).await.unwrap() {
        out.push_str(&serde_json::to_string(&api.root(r.id).await.unwrap()).unwrap());
    }
    out
}

#[tokio::test]
async fn bad_requests_are_refused_with_stable_codes_and_change_nothing() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    ci.set("acme/b", Behaviour::Silent);
    let api = &d.api;
    let a_token = register(api, "acme/a", &[], None).await;
    let b_token = register(api, "acme/b", &["acme/a"], Some(&ci)).await;
    register(api, "acme/c", &["acme/a"], Some(&ci)).await;
    let ack = report_root(api, &a_token, "acme/a", "1.0.0").await;
    let event = settled_or_triggered(api, ack.root).await;
    let b = node_of(&event, "acme/b").clone();
    let c = node_of(&event, "acme/c").clone();
    let b_build_token = ci.triggers_of("acme/b")[0].payload.report.token.clone();

    let before = picture(api).await;
    let op = Some(OPERATOR_TOKEN);
    let a = Some(a_token.as_str());
    let b_project = Some(b_token.as_str());
    let b_build = Some(b_build_token.as_str());
    let put = "/v1/projects/acme%2Fnew";
    let ghost = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(300));
    let meta: Vec<String> = (0..40).map(|i| format!(r#""k{i}":"v""#)).collect();
    let too_much_meta = format!(
        r#"{{"project":"acme/a","state":"passed","metadata":{{{}}}}}"#,
        meta.join(",")
    );
    let report_on = |project: &str, build: &str, extra: &str| {
        format!(r#"{{"project":"{project}","build":"{build}"{extra},"state":"passed"}}"#)
    };
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let (b_id, c_id) = (b.id.to_string(), c.id.to_string());
    // The same build id with its top bits set: the ulid crate wraps it to b's id.
    let wrapped_b = format!("{}{}", (b_id.as_bytes()[0] + 8) as char, &b_id[1..]);

    use Method as M;
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // 400: malformed JSON, unknown fields, bad values, bounds.
        (M::PUT, put.into(), op, r#"{"name":"#.into(), 400, "invalid_json"),
        (M::PUT, put.into(), op, r#"{"name":"x","colour":"red"}"#.into(), 400, "invalid_body"),
        (M::PUT, put.into(), op, r#"{"name":"x","trigger":{"kind":"fax","url":"https://x"}}"#.into(), 400, "invalid_body"),
        (M::PUT, put.into(), op, long_name, 400, "invalid_field"),
        (M::PUT, put.into(), op, r#"{"name":"x","depends_on":[{"project":"acme/a","range":"not a range"}]}"#.into(), 400, "invalid_range"),
        (M::PUT, "/v1/projects/Acme%2FNew".into(), op, r#"{"name":"x"}"#.into(), 400, "invalid_field"),
        (M::POST, "/v1/reports".into(), a, too_much_meta, 400, "invalid_field"),
        (M::POST, "/v1/reports".into(), a, r#"{"project":"acme/a","state":"exploded"}"#.into(), 400, "invalid_body"),
        (M::POST, "/v1/reports".into(), b_build, report_on("acme/a", &b_id, ""), 400, "project_mismatch"),
        (M::GET, "/v1/roots?limit=many".into(), op, String::new(), 400, "invalid_query"),
        // Text that prints as something else: a fake line, a reversed name.
        (M::PUT, put.into(), op, r#"{"name":"acme\nacme/evil  maintainer: someone else"}"#.into(), 400, "invalid_field"),
        (M::PUT, put.into(), op, r#"{"name":"x","contacts":[{"name":"Ana\tOrtiz"}]}"#.into(), 400, "invalid_field"),
        (M::PUT, put.into(), op, "{\"name\":\"x\",\"contacts\":[{\"name\":\"Ana \u{202E}zitrO\"}]}".into(), 400, "invalid_field"),
        (M::POST, "/v1/reports".into(), a, r#"{"project":"acme/a","state":"passed","commit":"9f1c\r\nfake"}"#.into(), 400, "invalid_field"),
        (M::POST, "/v1/reports".into(), a, r#"{"project":"acme/a","state":"passed","ref":"main\u202e"}"#.into(), 400, "invalid_field"),
        // A key given twice, which would otherwise keep the last silently.
        (M::PUT, put.into(), op, r#"{"name":"x","name":"y"}"#.into(), 400, "invalid_body"),
        (M::POST, "/v1/reports".into(), a, r#"{"project":"acme/a","state":"passed","metadata":{"k":"a","k":"b"}}"#.into(), 400, "invalid_body"),
        (M::PUT, "/v1/projects".into(), op, r#"{"projects":[{"id":"acme/x","id":"acme/y","name":"x"}]}"#.into(), 400, "entries_refused"),
        // A ULID over 128 bits is not read as the build it wraps around to.
        (M::GET, format!("/v1/builds/{wrapped_b}"), op, String::new(), 400, "invalid_field"),
        (M::POST, format!("/v1/builds/{wrapped_b}/rebuild"), op, String::new(), 400, "invalid_field"),
        // 401: missing or unknown tokens.
        (M::PUT, put.into(), None, r#"{"name":"x"}"#.into(), 401, "unauthorized"),
        (M::PUT, put.into(), Some("cjo_wrong"), r#"{"name":"x"}"#.into(), 401, "unauthorized"),
        (M::GET, "/v1/roots".into(), a, String::new(), 401, "unauthorized"),
        (M::POST, "/v1/reports".into(), None, r#"{"project":"acme/a","state":"passed"}"#.into(), 401, "unauthorized"),
        (M::POST, "/v1/reports".into(), Some("cjr_unknown"), r#"{"project":"acme/a","state":"passed"}"#.into(), 401, "unauthorized"),
        // 403: a token for another project, build or attempt.
        (M::POST, "/v1/reports".into(), b_project, r#"{"project":"acme/a","state":"passed"}"#.into(), 403, "forbidden"),
        (M::POST, "/v1/reports".into(), b_build, report_on("acme/c", &c_id, ""), 403, "forbidden"),
        (M::POST, "/v1/reports".into(), b_build, r#"{"project":"acme/b","state":"passed"}"#.into(), 403, "forbidden"),
        (M::POST, "/v1/reports".into(), b_build, report_on("acme/b", &b_id, r#","attempt":2"#), 403, "forbidden"),
        // 404: unknown project, build, root, endpoint.
        (M::GET, "/v1/projects/acme%2Fnope".into(), op, String::new(), 404, "unknown_project"),
        (M::DELETE, "/v1/projects/acme%2Fnope".into(), op, String::new(), 404, "unknown_project"),
        (M::GET, format!("/v1/builds/{ghost}"), op, String::new(), 404, "unknown_build"),
        (M::POST, format!("/v1/builds/{ghost}/rebuild"), op, String::new(), 404, "unknown_build"),
        (M::GET, format!("/v1/roots/{ghost}"), op, String::new(), 404, "unknown_root"),
        (M::POST, "/v1/reports".into(), b_project, report_on("acme/b", ghost, ""), 404, "unknown_build"),
        (M::GET, "/v1/projects/acme/a".into(), op, String::new(), 404, "no_such_endpoint"),
        (M::PATCH, "/v1/projects/acme%2Fa".into(), op, String::new(), 405, "method_not_allowed"),
        // 413: a body over 1 MiB.
        (M::PUT, put.into(), op, huge, 413, "body_too_large"),
        // 409: a rebuild of a build in progress.
        (M::POST, format!("/v1/builds/{b_id}/rebuild"), op, String::new(), 409, "in_progress"),
    ];
    for (method, path, token, body, status, code) in cases {
        refused(api, method, &path, token, body.as_bytes(), status, code).await;
    }

    assert_eq!(picture(api).await, before, "refusals changed nothing");

    // b finishes; the same final report again changes nothing; a different one conflicts.
    let passed = format!(
        r#"{{"project":"acme/b","build":"{}","state":"passed"}}"#,
        b.id
    );
    let first = api
        .raw(
            Method::POST,
            "/v1/reports",
            Some(&b_build_token),
            Some(passed.clone().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{}", first.json());
    let mid = picture(api).await;
    let again = api
        .raw(
            Method::POST,
            "/v1/reports",
            Some(&b_build_token),
            Some(passed.into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json(),
        first.json(),
        "the duplicate is answered as the original"
    );
    let failed = format!(
        r#"{{"project":"acme/b","build":"{}","state":"failed"}}"#,
        b.id
    );
    refused(
        api,
        Method::POST,
        "/v1/reports",
        Some(&b_build_token),
        failed.as_bytes(),
        409,
        "already_final",
    )
    .await;

    assert_eq!(
        picture(api).await,
        mid,
        "the duplicate and the conflicting report changed nothing"
    );

    // After a rebuild, the first attempt's token reports on an older attempt: 409.
    let rebuilt = api.rebuild(b.id).await.unwrap();
    assert_eq!(rebuilt.attempt, 2);
    let after_rebuild = picture(api).await;
    assert_ne!(after_rebuild, mid, "the rebuild itself was recorded");
    let late_with_project_token = format!(
        r#"{{"project":"acme/b","build":"{}","attempt":1,"state":"failed"}}"#,
        b.id
    );
    for (token, body) in [
        (&b_build_token, &failed),
        (&b_token, &late_with_project_token),
    ] {
        refused(
            api,
            Method::POST,
            "/v1/reports",
            Some(token),
            body.as_bytes(),
            409,
            "stale_attempt",
        )
        .await;
    }
    let now = api.build(b.id).await.unwrap();
    assert_eq!(now.attempt, 2);
    assert!(matches!(
        now.state.kind(),
        StateKind::Queued | StateKind::Triggered
    ));
    d.stop().await;
}

/// Waits until b and c are triggered (b's CI stays silent, c passes).
async fn settled_or_triggered(
    api: &Client,
    root: conjunction_protocol::BuildId,
) -> conjunction_protocol::RootEvent {
    eventually("b triggered and c passed", WAIT, || async move {
        let e = api.root(root).await.ok()?;
        (state_of(&e, "acme/b") == StateKind::Triggered
            && state_of(&e, "acme/c") == StateKind::Passed)
            .then_some(e)
    })
    .await
}

#[tokio::test]
async fn urls_that_read_two_ways_are_refused_and_credentials_are_never_echoed() {
    let d = TestDaemon::start().await;
    let put = |url: &str, token: Option<&str>| {
        let trigger = match token {
            Some(t) => serde_json::json!({"kind": "webhook", "url": url, "token": t}),
            None => serde_json::json!({"kind": "webhook", "url": url}),
        };
        serde_json::to_vec(&serde_json::json!({"name": "x", "trigger": trigger})).unwrap()
    };
    let path = "/v1/projects/acme%2Fx";
    for (url, token) in [
        // Shown as ci.good.example by one reader, sent to 127.0.0.2 by another.
        ("http://127.0.0.2:18986\\@ci.good.example/hook", None),
        ("http://u:SECRET/slashpw@h/ok", None),
        ("http://u:SECRET?qpw@h/", None),
        ("http://0x7f.1/hook", None),
        // User info and a token would be two Authorization headers.
        ("https://bot:SECRET@ci.example/hook", Some(TRIGGER_TOKEN)),
    ] {
        let raw = d
            .api
            .raw(
                Method::PUT,
                path,
                Some(OPERATOR_TOKEN),
                Some(put(url, token)),
            )
            .await
            .unwrap();
        let json = raw.json();
        assert_eq!(
            (raw.status, json["error"].as_str()),
            (400, Some("invalid_field")),
            "{url}: {json}"
        );
        assert_eq!(
            json["message"].as_str().unwrap().split(' ').next(),
            Some("trigger.url")
        );
        let body = String::from_utf8(raw.body).unwrap();
        for secret in ["SECRET", "18986", "ci.good"] {
            assert!(
                !body.contains(secret),
                "{url}: the refusal echoes it: {body}"
            );
        }
    }
    // A token sent where serde expects a number is not quoted back either.
    let raw = d
        .api
        .raw(
            Method::POST,
            "/v1/reports",
            Some("cjr_whatever"),
            Some(br#"{"project":"acme/a","state":"passed","attempt":"cjr_SECRET"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert!(!String::from_utf8(raw.body).unwrap().contains("SECRET"));
    assert!(
        d.api.projects().await.unwrap().is_empty(),
        "nothing was registered"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_trigger_url_with_credentials_is_shown_without_them_and_sent_with_one_authorization() {
    let d = TestDaemon::start().await;
    let ci = WebhookCi::start(None).await.expect("start the webhook CI");
    let a_token = register(&d.api, "acme/a", &[], None).await;
    let hook = ci.url().replace("http://", "http://bot:p%40ss@");
    let mut b = spec("acme/b", &["acme/a"], None);
    b.trigger = Some(conjunction_protocol::TriggerSpec::Webhook {
        url: hook,
        token: None,
        secret: None,
    });
    d.api.put_project(&pid("acme/b"), &b).await.unwrap();
    let shown = d.api.project(&pid("acme/b")).await.unwrap();
    assert_eq!(
        shown.trigger.unwrap().url,
        ci.url(),
        "shown where it is sent, without credentials"
    );

    report_root(&d.api, &a_token, "acme/a", "1.0.0").await;
    let delivery = eventually("b triggered", WAIT, || async {
        ci.triggers_of("acme/b").into_iter().next()
    })
    .await;
    // Basic base64("bot:p@ss"): the user info, decoded, as the one Authorization header.
    assert_eq!(
        delivery.authorization,
        vec!["Basic Ym90OnBAc3M=".to_owned()]
    );
    d.stop().await;
}

#[tokio::test]
async fn secrets_are_never_returned() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let report_token = register(&d.api, "acme/a", &[], Some(&ci)).await;
    for path in ["/v1/projects", "/v1/projects/acme%2Fa"] {
        let raw = d
            .api
            .raw(Method::GET, path, Some(OPERATOR_TOKEN), None)
            .await
            .unwrap();
        let body = String::from_utf8(raw.body).unwrap();
        for secret in [SECRET, TRIGGER_TOKEN, report_token.as_str()] {
            assert!(!body.contains(secret), "{path} leaks a secret: {body}");
        }
        assert!(body.contains("\"has_secret\":true"), "{body}");
    }
    // An update without report_token keeps the old one and does not return it.
    let (status, answer) = d
        .api
        .put_project(&pid("acme/a"), &spec("acme/a", &[], Some(&ci)))
        .await
        .unwrap();
    assert_eq!((status, answer.outcome.as_str()), (200, "unchanged"));
    assert!(answer.report_token.is_none());
    let ack = d
        .api
        .report(&report_token, &root_report("acme/a", "1.0.0"))
        .await
        .unwrap();
    assert_eq!(ack.state, StateKind::Passed);
    d.stop().await;
}
