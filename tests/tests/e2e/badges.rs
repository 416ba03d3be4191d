//! Badges: a public project's badges are served without a token, byte for byte as
//! the committed SVGs, with caching headers; the endpoint JSON keeps to shields.io's
//! schema; a private project's badge answers exactly as a missing project's does.

use std::path::PathBuf;

use conjunction_protocol::project::Badges;
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::TestDaemon;
use reqwest::StatusCode;

use crate::*;

/// The committed badges; `UPDATE_BADGES=1` writes them anew (review the diff).
fn expected(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/badges")
        .join(name)
}

async fn fetch(
    url: &str,
    token: Option<&str>,
    etag: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(e) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, e);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Checks `json` against shields.io's endpoint schema (badges/shields
/// `services/endpoint-common.js`): the keys it allows and no others, their types,
/// `schemaVersion` 1, a non-empty message and `cacheSeconds` of at least 300.
fn check_endpoint_schema(json: &serde_json::Value) {
    const ALLOWED: [&str; 13] = [
        "schemaVersion",
        "label",
        "message",
        "color",
        "labelColor",
        "isError",
        "namedLogo",
        "logoSvg",
        "logoColor",
        "logoWidth",
        "logoSize",
        "style",
        "cacheSeconds",
    ];
    let object = json.as_object().expect("an object");
    for key in object.keys() {
        assert!(ALLOWED.contains(&key.as_str()), "unknown key {key}: {json}");
    }
    assert_eq!(json["schemaVersion"], 1, "{json}");
    assert!(json["label"].is_string(), "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    for key in ["color", "labelColor", "style"] {
        assert!(json.get(key).is_none_or(|v| v.is_string()), "{key}: {json}");
    }
    assert!(json.get("isError").is_none_or(|v| v.is_boolean()), "{json}");
    assert!(
        json.get("cacheSeconds")
            .is_none_or(|v| v.as_u64().is_some_and(|s| s >= 300)),
        "{json}"
    );
}

#[tokio::test]
async fn public_badges_match_the_committed_svgs_and_private_ones_look_missing() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let mut lib = spec("acme/lib", &[], None);
    lib.badges = Badges::Public;
    let (_, answer) = d.api.put_project(&pid("acme/lib"), &lib).await.unwrap();
    let token = answer.report_token.unwrap();
    let base = format!("{}/v1/badges/acme/lib", d.url());

    // Before any event, the badges say there is nothing to show.
    let (status, _, body) = fetch(&format!("{base}/downstream.json"), None, None).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    check_endpoint_schema(&json);
    assert_eq!(
        (json["message"].as_str(), json["isError"].as_bool()),
        (Some("no data"), Some(true))
    );

    // 45 dependents: f0, f1 fail in 1.4.0 and are fixed in 1.5.0; s0, s1 fail in
    // both; b0 passes in 1.4.0 and breaks in 1.5.0; 40 pass both times.
    let mut names: Vec<String> = Vec::new();
    for prefix in ["f0", "f1", "s0", "s1", "b0"] {
        names.push(format!("acme/{prefix}"));
    }
    for i in 0..40 {
        names.push(format!("acme/p{i:02}"));
    }
    for n in &names {
        register(&d.api, n, &["acme/lib"], Some(&ci)).await;
    }
    ci.set_default(Behaviour::pass());
    for n in ["acme/f0", "acme/f1", "acme/s0", "acme/s1"] {
        ci.set(n, Behaviour::fail("tests failed"));
    }
    let first = report_root(&d.api, &token, "acme/lib", "1.4.0").await;
    settled(&d.api, first.root).await;
    for n in ["acme/f0", "acme/f1"] {
        ci.set(n, Behaviour::pass());
    }
    ci.set("acme/b0", Behaviour::fail("tests failed"));
    let second = report_root(&d.api, &token, "acme/lib", "1.5.0").await;
    settled(&d.api, second.root).await;

    let update = std::env::var_os("UPDATE_BADGES").is_some();
    for name in ["downstream", "changes", "status"] {
        let url = format!("{base}/{name}.svg");
        let (status, headers, svg) =
            eventually("the finished event to reach the badges", WAIT, || {
                let url = url.clone();
                async move {
                    let answer = fetch(&url, None, None).await;
                    (!answer.2.contains("no data")).then_some(answer)
                }
            })
            .await;
        assert_eq!(status, 200, "{name}: {svg}");
        assert_eq!(headers["content-type"], "image/svg+xml;charset=utf-8");
        assert_eq!(headers["cache-control"], "public, max-age=300");
        let path = expected(&format!("{name}.svg"));
        if update {
            std::fs::write(&path, &svg).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg, committed, "{name}.svg differs from {}", path.display());

        // The same bytes again are not sent again.
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let (status, again, body) = fetch(&url, None, Some(&etag)).await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
        assert_eq!(again["etag"].to_str().unwrap(), etag);
        assert_eq!(again["cache-control"], "public, max-age=300");
        // What nginx's gzip makes of it: the weak tag still matches (RFC 9110 13.1.2).
        let weak = format!("W/{etag}");
        let (status, _, body) = fetch(&url, None, Some(&weak)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_MODIFIED, ""),
            "{weak}"
        );

        let (status, headers, body) = fetch(&format!("{base}/{name}.json"), None, None).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        check_endpoint_schema(&json);
        // The SVG says what the JSON says.
        for key in ["label", "message"] {
            let text = json[key].as_str().unwrap();
            assert!(svg.contains(text), "{name}.svg lacks {text:?}");
        }
    }
    // The words, as a reader of the README sees them.
    let words = |svg: &str| {
        let start = svg.find("<title>").unwrap() + 7;
        svg[start..start + svg[start..].find("</title>").unwrap()].to_owned()
    };
    assert_eq!(
        words(&std::fs::read_to_string(expected("downstream.svg")).unwrap()),
        "downstream: 42/45 passing"
    );
    assert_eq!(
        words(&std::fs::read_to_string(expected("changes.svg")).unwrap()),
        "vs 1.4.0: 1 broke · 2 fixed · 2 still failing · 40 same"
    );
    assert_eq!(
        words(&std::fs::read_to_string(expected("status.svg")).unwrap()),
        "status: passed"
    );
    // The geometry and colour measured for this very badge when the `shields` crate
    // was chosen (shared/reference/next-features.md §3.1): 168 px wide, a 79 px label
    // box in #555 and an 89 px message box in shields.io's yellowgreen, which a 93%
    // share gets.
    let downstream = std::fs::read_to_string(expected("downstream.svg")).unwrap();
    assert!(
        downstream.contains(r#"width="168" height="20""#),
        "{downstream}"
    );
    assert!(
        downstream.contains(r##"<rect width="79" height="20" fill="#555"/><rect x="79" width="89" height="20" fill="#a4a61d"/>"##),
        "{downstream}"
    );

    // A private project's badge is the same 404, byte for byte, as a missing one's,
    // unless an operator asks.
    let hidden = format!("{}/v1/badges/acme/hidden/status.svg", d.url());
    let missing = fetch(&hidden, None, None).await;
    register(&d.api, "acme/hidden", &[], None).await;
    let private = fetch(&hidden, None, None).await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    assert_eq!((private.0, &private.2), (missing.0, &missing.2));
    assert_eq!(private.1["content-type"], missing.1["content-type"]);
    let wrong = fetch(&hidden, Some("not-a-token"), None).await;
    assert_eq!((wrong.0, &wrong.2), (missing.0, &missing.2));
    let (status, headers, _) = fetch(
        &hidden,
        Some(conjunction_tests::daemon::OPERATOR_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "private, max-age=300");

    let (status, _, body) = fetch(&format!("{base}/build.svg"), None, None).await;
    assert_eq!(status, 404);
    assert!(body.contains("unknown_badge"), "{body}");
    d.stop().await;
}
