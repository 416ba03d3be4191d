//! The graph from package manifests: `conjunction discover` on a directory of ten
//! checkouts of five ecosystems writes a projects file that `apply` takes, whose
//! graph is what the manifests declare, and that it edits again without touching
//! what a person added; a build that reports its manifests keeps a project's
//! dependencies current (a widened range lets the next release build where it
//! needed a bump), in the feed and the audit trail; a manifest that cannot be used
//! changes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use conjunction_protocol::audit::{Action, Actor};
use conjunction_protocol::project::{DependencyOrigin, Ecosystem};
use conjunction_protocol::ws::{Change, ServerMessage};
use conjunction_protocol::{Candidate, ManifestFile, Package, ProjectSpec, StateKind};
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use conjunction_tests::feed::Feed;

use super::cli::conjunction;
use super::*;

/// Writes `files` (path, content) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Ten checkouts: two npm packages (the library takes the app as an optional-less
/// peer, which closes a cycle), a Cargo workspace of two crates and a crate
/// outside it, a PEP 621 library, a Poetry service and a requirements-only
/// scripts directory, a Maven aggregator with two modules (one dependency has no
/// version anywhere), and two Go modules.
const CHECKOUTS: &[(&str, &str)] = &[
    (
        "lib-js/package.json",
        r#"{ "name": "@acme/lib", "version": "1.4.0",
             "peerDependencies": { "@acme/app": ">=2" } }"#,
    ),
    (
        "app-js/package.json",
        r#"{ "name": "@acme/app", "version": "2.0.1",
             "dependencies": { "@acme/lib": "^1.4.0", "left-pad": "^1.3.0" },
             "devDependencies": { "jest": "^29.7.0" } }"#,
    ),
    (
        "rust-core/Cargo.toml",
        "[workspace]\nmembers = [\"crates/*\"]\n\n[workspace.dependencies]\nacme-core = { path = \"crates/core\", version = \"0.3\" }\nserde = \"1.0.200\"\n",
    ),
    (
        "rust-core/crates/core/Cargo.toml",
        "[package]\nname = \"acme-core\"\nversion = \"0.3.2\"\n\n[dependencies]\nserde.workspace = true\n",
    ),
    (
        "rust-core/crates/cli/Cargo.toml",
        "[package]\nname = \"acme-cli\"\nversion = \"0.1.0\"\n\n[dependencies]\nacme-core.workspace = true\n",
    ),
    (
        "rust-tool/Cargo.toml",
        "[package]\nname = \"acme-tool\"\nversion = \"1.0.0\"\n\n[dependencies]\nacme_core = \"0.3.1\"\n\n[target.'cfg(unix)'.dependencies]\nacme-cli = \"0.1\"\n",
    ),
    (
        "py-lib/pyproject.toml",
        "[project]\nname = \"Acme.Lib\"\nversion = \"2.1.0\"\ndependencies = [\"requests>=2.31\"]\n",
    ),
    (
        "py-svc/pyproject.toml",
        "[tool.poetry]\nname = \"acme-svc\"\nversion = \"0.9.0\"\n\n[tool.poetry.dependencies]\npython = \"^3.10\"\nacme-lib = \"^2.1\"\n",
    ),
    (
        "py-scripts/requirements.txt",
        "-r requirements/base.txt\n",
    ),
    (
        "py-scripts/requirements/base.txt",
        "acme_lib>=2.0,<3  # the library\n",
    ),
    (
        "java/pom.xml",
        "<project><groupId>org.acme</groupId><artifactId>parent</artifactId><version>1</version>\
         <packaging>pom</packaging><modules><module>core</module><module>app</module></modules>\
         <properties><core.version>[1.0,2.0)</core.version></properties></project>",
    ),
    (
        "java/core/pom.xml",
        "<project><parent><groupId>org.acme</groupId><artifactId>parent</artifactId><version>1</version></parent>\
         <artifactId>acme-core-java</artifactId><version>1.2.0</version></project>",
    ),
    (
        "java/app/pom.xml",
        "<project><parent><groupId>org.acme</groupId><artifactId>parent</artifactId><version>1</version></parent>\
         <artifactId>acme-app-java</artifactId><dependencies>\
         <dependency><groupId>org.acme</groupId><artifactId>acme-core-java</artifactId><version>${core.version}</version></dependency>\
         <dependency><groupId>org.acme</groupId><artifactId>acme-missing</artifactId></dependency>\
         </dependencies></project>",
    ),
    ("go-lib/go.mod", "module github.com/acme/golib/v2\n\ngo 1.22\n"),
    (
        "go-app/go.mod",
        "module github.com/acme/goapp\n\ngo 1.22\n\nrequire (\n\tgithub.com/acme/golib/v2 v2.3.0\n\tgithub.com/pkg/errors v0.9.1 // indirect\n)\n",
    ),
];

/// What each project of [`CHECKOUTS`] depends on, as its manifest says it.
fn declared() -> BTreeMap<&'static str, Vec<(&'static str, Option<&'static str>)>> {
    BTreeMap::from([
        ("acme/lib", vec![("acme/app", Some(">=2"))]),
        ("acme/app", vec![("acme/lib", Some("^1.4.0"))]),
        ("acme/acme-core", vec![]),
        ("acme/acme-cli", vec![("acme/acme-core", Some("^0.3"))]),
        (
            "acme/acme-tool",
            vec![
                ("acme/acme-core", Some("^0.3.1")),
                ("acme/acme-cli", Some("^0.1")),
            ],
        ),
        ("acme/acme.lib", vec![]),
        ("acme/acme-svc", vec![("acme/acme.lib", Some(">=2.1, <3"))]),
        (
            "acme/py-scripts",
            vec![("acme/acme.lib", Some(">=2.0, <3"))],
        ),
        ("acme/acme-core-java", vec![]),
        (
            "acme/acme-app-java",
            vec![("acme/acme-core-java", Some("[1.0,2.0)"))],
        ),
        ("acme/golib", vec![]),
        ("acme/goapp", vec![("acme/golib", Some("v2.3.0"))]),
    ])
}

/// `conjunction discover checkouts --namespace acme --write projects.toml` in `dir`.
async fn discover(d: &TestDaemon, dir: &Path) -> super::cli::Output {
    let args = [
        "discover",
        "checkouts",
        "--namespace",
        "acme",
        "--write",
        "projects.toml",
    ];
    conjunction(d, OPERATOR_TOKEN, &args, dir).await
}

#[tokio::test]
async fn discover_on_ten_checkouts_writes_a_file_apply_takes_and_edits_it_keeping_a_persons_additions(
) {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let checkouts = dir.path().join("checkouts");
    write_tree(&checkouts, CHECKOUTS);
    let found = discover(&d, dir.path()).await;
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert!(
        found
            .stderr
            .contains("dependency cycle: acme/app -> acme/lib -> acme/app"),
        "{}",
        found.stderr
    );
    assert!(
        found
            .stderr
            .contains("acme/acme-app-java: org.acme:acme-missing is unresolved"),
        "{}",
        found.stderr
    );
    assert!(
        found.stderr.contains("found 12 projects"),
        "{}",
        found.stderr
    );
    let written = std::fs::read_to_string(dir.path().join("projects.toml")).unwrap();

    let applied = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["apply", "-f", "projects.toml"],
        dir.path(),
    )
    .await;
    assert_eq!(applied.code, 0, "{}\n{written}", applied.stderr);
    let graph: BTreeMap<String, Vec<(String, Option<String>)>> = d
        .api
        .projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            let deps = p
                .depends_on
                .into_iter()
                .map(|d| (d.project.to_string(), d.range))
                .collect();
            (p.id.to_string(), deps)
        })
        .collect();
    let want: BTreeMap<String, Vec<(String, Option<String>)>> = declared()
        .into_iter()
        .map(|(p, deps)| {
            let deps = deps
                .into_iter()
                .map(|(u, r)| (u.to_owned(), r.map(str::to_owned)))
                .collect();
            (p.to_owned(), deps)
        })
        .collect();
    assert_eq!(graph, want, "{written}");
    let golib = d.api.project(&pid("acme/golib")).await.unwrap();
    assert_eq!(
        golib.package,
        Some(Package {
            ecosystem: Ecosystem::Go,
            name: "github.com/acme/golib/v2".into()
        })
    );

    // A person adds to the file; the app's manifest widens its range.
    let edited = written.replacen(
        "id = \"acme/app\"\n",
        "id = \"acme/app\"\n# Ana owns it; ask her before a major.\ncontacts = [{ name = \"Ana Ortiz\", email = \"ana@acme.example\" }]\n",
        1,
    ) + "\n# Built by hand: no manifest names it.\n[[project]]\nid = \"acme/docs\"\nname = \"Docs\"\ndepends_on = [{ project = \"acme/app\" }]  # rebuilt on every app release\n";
    std::fs::write(dir.path().join("projects.toml"), &edited).unwrap();
    let again = discover(&d, dir.path()).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("is up to date"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("projects.toml")).unwrap(),
        edited,
        "nothing changed in the manifests, so nothing in the file"
    );
    let app_manifest = checkouts.join("app-js/package.json");
    let widened = std::fs::read_to_string(&app_manifest)
        .unwrap()
        .replace("\"^1.4.0\"", "\"^1.4.0 || ^2.0.0\"");
    std::fs::write(&app_manifest, widened).unwrap();
    let third = discover(&d, dir.path()).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(
        third.stderr.contains("acme/app: depends_on changed")
            && third
                .stderr
                .contains("acme/docs: not found in the tree, kept as it is"),
        "{}",
        third.stderr
    );
    let rewritten = std::fs::read_to_string(dir.path().join("projects.toml")).unwrap();
    assert_eq!(
        rewritten,
        edited.replacen(
            "{ project = \"acme/lib\", range = \"^1.4.0\" }",
            "{ project = \"acme/lib\", range = \"^1.4.0 || ^2.0.0\" }",
            1
        ),
        "only the app's range changed, byte for byte"
    );
    let reapplied = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["apply", "-f", "projects.toml"],
        dir.path(),
    )
    .await;
    assert_eq!(reapplied.code, 0, "{}", reapplied.stderr);
    let app = d.api.project(&pid("acme/app")).await.unwrap();
    assert_eq!(app.contacts[0].name, "Ana Ortiz");
    assert_eq!(app.depends_on[0].range.as_deref(), Some("^1.4.0 || ^2.0.0"));
}

/// `acme/lib` (an npm package) and `acme/app` on it at `^1.4`, taking its
/// dependencies from its manifests and built by `ci`; answers the report tokens.
pub(super) async fn from_manifest(
    d: &TestDaemon,
    ci: &conjunction_sim::webhook::WebhookCi,
) -> (String, String) {
    let lib = ProjectSpec {
        package: Some(Package {
            ecosystem: Ecosystem::Npm,
            name: "@acme/lib".into(),
        }),
        ..spec("acme/lib", &[], None)
    };
    let (_, lib) = d.api.put_project(&pid("acme/lib"), &lib).await.unwrap();
    let mut app = ProjectSpec {
        package: Some(Package {
            ecosystem: Ecosystem::Npm,
            name: "@acme/app".into(),
        }),
        dependencies: DependencyOrigin::FromManifest,
        ..spec("acme/app", &["acme/lib"], Some(ci))
    };
    app.depends_on[0].range = Some("^1.4".into());
    let (status, app) = d.api.put_project(&pid("acme/app"), &app).await.unwrap();
    assert_eq!(status, 201);
    (lib.report_token.unwrap(), app.report_token.unwrap())
}

pub(super) fn package_json(range: &str) -> String {
    format!(
        r#"{{ "name": "@acme/app", "version": "3.1.0",
             "dependencies": {{ "@acme/lib": "{range}", "left-pad": "^1.3.0" }} }}"#
    )
}

/// The app's build `version` passed, reported from `dir` with its package.json.
async fn report_app(d: &TestDaemon, token: &str, version: &str, dir: &Path) -> super::cli::Output {
    let args = [
        "report",
        "--project",
        "acme/app",
        "--state",
        "passed",
        "--version",
        version,
        "--manifest",
        "package.json",
    ];
    conjunction(d, token, &args, dir).await
}

#[tokio::test]
async fn a_build_reporting_a_widened_range_turns_the_next_release_from_needs_bump_to_built() {
    let d = TestDaemon::start().await;
    let ci = webhook_ci().await;
    let (lib_token, app_token) = from_manifest(&d, &ci).await;
    let dir = tempfile::tempdir().unwrap();

    let major = report_root(&d.api, &lib_token, "acme/lib", "2.0.0").await;
    let event = settled(&d.api, major.root).await;
    assert_eq!(state_of(&event, "acme/app"), StateKind::NeedsBump);
    assert!(ci.triggers_of("acme/app").is_empty());

    // The app's own build sends the manifest that takes 2.x; nobody edits
    // conjunction's configuration.
    let mut feed = Feed::connect(&d.api.feed_url(None), OPERATOR_TOKEN)
        .await
        .unwrap();
    std::fs::write(dir.path().join("package.json"), package_json("^2.0.0")).unwrap();
    let reported = report_app(&d, &app_token, "3.1.0", dir.path()).await;
    assert_eq!(reported.code, 0, "{}", reported.stderr);
    assert!(!reported.stderr.contains("warning"), "{}", reported.stderr);
    let build = reported.stdout.trim().to_owned();
    let line =
        format!("acme/app now depends on acme/lib ^2.0.0 (was ^1.4), from its build {build}");

    let app = d.api.project(&pid("acme/app")).await.unwrap();
    assert_eq!(app.depends_on[0].range.as_deref(), Some("^2.0.0"));
    let source = app
        .manifest
        .clone()
        .expect("where the dependencies come from");
    assert_eq!(source.build.to_string(), build);
    assert_eq!(source.files, ["package.json"]);
    assert_eq!(source.change.as_deref(), Some(line.as_str()));
    assert_eq!(source.unregistered[0].name, "left-pad");
    assert_eq!(source.unregistered[0].spec, "^1.3.0");

    // The feed says it, and the audit trail holds it as the app's CI's change.
    let said = loop {
        if let ServerMessage::Event(event) = feed.next(WAIT).await {
            if let Change::ProjectUpserted { project } = event.change {
                if let Some(change) = project.manifest.and_then(|m| m.change) {
                    break change;
                }
            }
        }
    };
    assert_eq!(said, line);
    let audit = d.api.audit(Some(&pid("acme/app"))).await.unwrap();
    let row = audit
        .entries
        .iter()
        .find(|e| e.action == Action::DependenciesRead)
        .expect("an audit row for the change");
    assert_eq!(
        row.by,
        Actor::ReportToken {
            project: pid("acme/app")
        }
    );
    assert_eq!(row.detail, line);

    // The next build says the same: nothing is written again.
    let again = report_app(&d, &app_token, "3.1.1", dir.path()).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        d.api.project(&pid("acme/app")).await.unwrap(),
        app,
        "a manifest saying the same changes nothing"
    );

    let listed = conjunction(&d, OPERATOR_TOKEN, &["projects"], dir.path()).await;
    assert!(
        listed.stdout.contains(&format!(
            "  dependencies: from package.json of build {build} at "
        )) && listed.stdout.contains("  unregistered: left-pad ^1.3.0"),
        "{}",
        listed.stdout
    );

    let next = report_root(&d.api, &lib_token, "acme/lib", "2.1.0").await;
    let event = settled(&d.api, next.root).await;
    assert_eq!(state_of(&event, "acme/app"), StateKind::Passed);
    assert_eq!(ci.triggers_of("acme/app").len(), 1);
}

#[tokio::test]
async fn a_manifest_that_cannot_be_used_changes_nothing_and_is_said_on_the_build() {
    let d = TestDaemon::start().await;
    let ci = webhook_ci().await;
    let (lib_token, app_token) = from_manifest(&d, &ci).await;
    for (id, name, dependencies) in [
        ("acme/core", "org.acme:core", DependencyOrigin::Declared),
        ("acme/svc", "org.acme:svc", DependencyOrigin::FromManifest),
    ] {
        let spec = ProjectSpec {
            package: Some(Package {
                ecosystem: Ecosystem::Maven,
                name: name.into(),
            }),
            dependencies,
            report_token: Some(format!("{id}-report-token-0001").replace('/', "-")),
            ..spec(id, &[], None)
        };
        d.api.put_project(&pid(id), &spec).await.unwrap();
    }
    let svc_token = "acme-svc-report-token-0001";
    let before = d.api.project(&pid("acme/app")).await.unwrap();
    let svc_before = d.api.project(&pid("acme/svc")).await.unwrap();
    let audit_before = d.api.audit(None).await.unwrap().entries.len();

    let mut report = root_report("acme/app", "3.1.0");
    report.manifests = vec![ManifestFile {
        path: "package.json".into(),
        content: "{ \"name\": \"@acme/app\", \"dependencies\": { ".into(),
    }];
    let ack = d.api.report(&app_token, &report).await.unwrap();
    assert_eq!(ack.warnings.len(), 1, "{:?}", ack.warnings);
    assert!(
        ack.warnings[0].contains("package.json is not valid JSON")
            && ack.warnings[0].contains("acme/app's dependencies stay as they were"),
        "{}",
        ack.warnings[0]
    );
    let node = d.api.build(ack.build).await.unwrap();
    assert_eq!(node.warnings, ack.warnings, "the reason is on the build");
    assert_eq!(node.state.kind(), StateKind::Passed, "the report is taken");

    // A range its upstream's ecosystem does not read is refused the same way.
    let mut bad_range = root_report("acme/svc", "0.1.0");
    bad_range.manifests = vec![ManifestFile {
        path: "pom.xml".into(),
        content: "<project><groupId>org.acme</groupId><artifactId>svc</artifactId><dependencies>\
                  <dependency><groupId>org.acme</groupId><artifactId>core</artifactId>\
                  <version>[1.0,2.0</version></dependency></dependencies></project>"
            .into(),
    }];
    let ack = d.api.report(svc_token, &bad_range).await.unwrap();
    assert!(
        ack.warnings[0].contains("the range on acme/core does not read"),
        "{:?}",
        ack.warnings
    );
    // A candidate's build never changes the graph, however good its manifest.
    let mut candidate = root_report("acme/app", "3.2.0");
    candidate.candidate = Some(Candidate::new("17", None));
    candidate.manifests = vec![ManifestFile {
        path: "package.json".into(),
        content: package_json("^2.0.0"),
    }];
    let ack = d.api.report(&app_token, &candidate).await.unwrap();
    assert!(
        ack.warnings[0].contains("a candidate's builds never change the graph"),
        "{:?}",
        ack.warnings
    );
    // A project that declares its dependencies is not changed by a manifest.
    let mut declared = root_report("acme/lib", "1.5.0");
    declared.manifests = candidate.manifests.clone();
    let ack = d.api.report(&lib_token, &declared).await.unwrap();
    assert!(
        ack.warnings[0].contains("acme/lib declares its dependencies"),
        "{:?}",
        ack.warnings
    );

    let after = d.api.project(&pid("acme/app")).await.unwrap();
    assert_eq!(after, before, "the project is as it was");
    let svc_after = d.api.project(&pid("acme/svc")).await.unwrap();
    assert_eq!(svc_after, svc_before);
    let rows = d.api.audit(None).await.unwrap().entries;
    assert!(
        rows.iter().all(|e| e.action != Action::DependenciesRead),
        "{rows:?}"
    );
    assert_eq!(
        rows.len(),
        audit_before + 4,
        "the four root reports, and nothing else: {rows:?}"
    );
}
