//! Fills a running daemon with a varied history through the public API only, and
//! writes what a client can then see to a manifest.
//!
//! This is how `tests/fixtures/layout-1/` was made: the daemon of the release before
//! the storage layout changed (commit 1704c8f) was started on an empty data directory,
//! this program was pointed at it, and the daemon was stopped with SIGTERM. The
//! migration test opens that database with the current daemon and checks it against
//! the manifest. Because it only speaks HTTP and the feed, it can be pointed at any
//! release to make the fixture for its layout:
//!
//! ```sh
//! conjunctiond --listen 127.0.0.1:7499 --data-dir /tmp/seed --config seed.toml &
//! cargo run -p conjunction-tests --example seed_database -- \
//!     http://127.0.0.1:7499 "$(cat /tmp/seed/operator.token)" manifest.json
//! kill -TERM %1
//! ```
//!
//! `seed.toml` should hold `[dispatch]` with a large `max_attempts` so that the
//! triggers of `acme/down` (whose CI answers 503) are still queued when it stops.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use conjunction_protocol::ws::ServerMessage;
use conjunction_protocol::{
    BuildId, Contact, Dependency, ProjectId, ProjectSpec, Report, ReportState, StateKind,
    TriggerSpec,
};
use conjunction_sim::webhook::{Behaviour, WebhookCi};
use conjunction_tests::feed::Feed;
use conjunction_tui::client::Client;

/// The report token of the upstream every cascade starts from.
const LIB_TOKEN: &str = "lib-report-token-0001";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, out] = args.as_slice() else {
        bail!("usage: seed_database <daemon url> <operator token> <manifest.json>");
    };
    let api = Client::new(url, Some(token.clone()));
    let ci = WebhookCi::start(Some("seed-secret"))
        .await
        .expect("start the webhook CI");
    ci.set("acme/cli", Behaviour::FailFirstAttempt);
    ci.set(
        "acme/down",
        Behaviour::Refuse {
            status: 503,
            body: "down for maintenance".into(),
        },
    );
    ci.set("acme/silent", Behaviour::Silent);

    let mut tokens = BTreeMap::new();
    let projects: &[(&str, &[&str], bool)] = &[
        ("acme/lib", &[], false),
        ("acme/app", &["acme/lib"], true),
        ("acme/web", &["acme/app"], true),
        ("acme/cli", &["acme/lib"], true),
        ("acme/docs", &["acme/cli"], true),
        ("acme/join", &["acme/app", "acme/cli"], true),
        ("acme/manual", &["acme/lib"], false),
        ("acme/manual-child", &["acme/manual"], true),
        ("acme/down", &["acme/lib"], true),
        ("acme/silent", &["acme/app"], true),
        ("cyc/a", &["acme/lib", "cyc/b"], true),
        ("cyc/b", &["cyc/a"], true),
        ("cyc/c", &["cyc/b"], true),
        ("acme/gone", &["acme/lib"], true),
    ];
    for (id, deps, triggered) in projects {
        let spec = ProjectSpec {
            name: format!("{id} (seeded)"),
            contacts: vec![Contact {
                name: "Ana Ortiz".into(),
                email: Some("ana@acme.example".into()),
                chat: Some("@ana".into()),
                role: Some("maintainer".into()),
            }],
            depends_on: deps
                .iter()
                .map(|d| Dependency {
                    project: pid(d),
                    range: Some("^1".into()),
                    lines: Vec::new(),
                })
                .collect(),
            trigger: triggered.then(|| TriggerSpec::Webhook {
                url: ci.url(),
                token: Some("seed-trigger-token".into()),
                secret: Some("seed-secret".into()),
            }),
            report_token: (*id == "acme/lib").then(|| LIB_TOKEN.to_owned()),
            package: None,
            ..Default::default()
        };
        let (_, answer) = api.put_project(&pid(id), &spec).await?;
        if let Some(t) = answer.report_token {
            tokens.insert(id.to_string(), t);
        }
    }
    tokens.insert("acme/lib".into(), LIB_TOKEN.into());
    api.delete_project(&pid("acme/gone")).await?;

    // A failed release: recorded, no cascade.
    let failed = api
        .report(LIB_TOKEN, &root("0.9.0", ReportState::Failed))
        .await?;
    // A release that cascades: acme/cli fails its first attempt and is rebuilt.
    let first = api
        .report(LIB_TOKEN, &root("1.0.0", ReportState::Passed))
        .await?;
    let event = quiet(&api, first.root).await?;
    let cli = event
        .nodes
        .iter()
        .find(|n| n.project.as_str() == "acme/cli")
        .context("acme/cli has a node")?;
    api.rebuild(cli.id).await?;
    quiet(&api, first.root).await?;
    // A pipeline that reports running first and passed at its end.
    let second = api
        .report(LIB_TOKEN, &root("1.1.0", ReportState::Running))
        .await?;
    let mut done = root("1.1.0", ReportState::Passed);
    done.build = Some(second.build);
    api.report(LIB_TOKEN, &done).await?;
    quiet(&api, second.root).await?;

    let mut roots = Vec::new();
    for summary in api.roots(500).await? {
        roots.push(serde_json::to_value(api.root(summary.id).await?)?);
    }
    let mut feed = Feed::connect(&api.feed_url(Some(0)), token).await?;
    let mut events = Vec::new();
    let last = loop {
        let seq = match feed.next(Duration::from_secs(2)).await {
            ServerMessage::Hello { .. } => continue,
            ServerMessage::Event(e) => {
                let seq = e.seq;
                events.push(serde_json::to_value(ServerMessage::Event(e))?);
                seq
            }
            other => bail!("expected the log from seq 0, got {other:?}"),
        };
        let tip = api.roots(1).await?;
        let newest = tip.first().map(|r| r.id);
        if newest == Some(second.root) && settled_seq(&api, second.root).await? <= seq {
            break seq;
        }
    };
    let manifest = serde_json::json!({
        "made_by": "tests/examples/seed_database.rs against conjunctiond 0.1.0 (commit 1704c8f)",
        "seq": last,
        "report_tokens": tokens,
        "failed_root": failed.root,
        "projects": api.projects().await?,
        "roots": roots,
        "events": events,
    });
    std::fs::write(out, serde_json::to_string_pretty(&manifest)?)?;
    println!(
        "wrote {out}: {} events up to seq {last}",
        manifest["events"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

fn pid(s: &str) -> ProjectId {
    ProjectId::parse(s).expect("seed project ids are valid")
}

fn root(version: &str, state: ReportState) -> Report {
    Report {
        project: pid("acme/lib"),
        build: None,
        attempt: None,
        state,
        version: Some(version.into()),
        commit: Some(format!("c0ffee{}", version.replace('.', ""))),
        git_ref: Some("main".into()),
        environment: None,
        candidate: None,
        url: Some(format!("https://ci.acme.example/lib/{version}")),
        summary: (state == ReportState::Failed).then(|| "2 tests failed".into()),
        metadata: [("pipeline".to_owned(), "release".to_owned())].into(),
        manifests: Vec::new(),
    }
}

/// Waits until every node of the event is final, except those that cannot be:
/// `acme/down` (its CI keeps answering 503) and `acme/silent` (its CI never reports).
async fn quiet(api: &Client, root: BuildId) -> anyhow::Result<conjunction_protocol::RootEvent> {
    for _ in 0..1000 {
        let event = api.root(root).await?;
        let waiting = event.nodes.iter().any(|n| {
            let k = n.state.kind();
            match n.project.as_str() {
                "acme/down" => k != StateKind::Queued,
                "acme/silent" => k != StateKind::Triggered,
                _ => !k.is_final(),
            }
        });
        if !waiting {
            return Ok(event);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("root event {root} did not come to rest")
}

/// The highest sequence number among the event's nodes.
async fn settled_seq(api: &Client, root: BuildId) -> anyhow::Result<u64> {
    Ok(api
        .root(root)
        .await?
        .nodes
        .iter()
        .map(|n| n.seq)
        .max()
        .unwrap_or(0))
}
