//! Fixed cascades for the UI's tests, snapshots and frame benchmark: the same
//! ids and times on every run, so a drawn frame is reproducible.

use conjunction_protocol::node::BlockedBy;
use conjunction_protocol::ws::{Change, Event, ServerMessage};
use conjunction_protocol::{
    BuildId, Contact, Dependency, Node, NodeState, Project, ProjectId, RootEvent, RootSummary,
    StateKind, Timestamp,
};

/// "Now" in every sample: 2026-11-22T09:00:00Z.
pub const NOW: Timestamp = Timestamp(1_795_338_000_000);

/// A build id created `ago_s` seconds before [`NOW`]; `n` tells builds of the same
/// moment apart.
pub fn build(ago_s: u64, n: u128) -> BuildId {
    BuildId(ulid::Ulid::from_parts(NOW.0 - ago_s * 1000, n))
}

pub fn pid(s: &str) -> ProjectId {
    ProjectId::parse(s).unwrap_or_else(|e| panic!("sample project id {s}: {e}"))
}

fn at(ago_s: u64) -> Timestamp {
    Timestamp(NOW.0 - ago_s * 1000)
}

pub fn contact(name: &str, role: &str, chat: &str) -> Contact {
    Contact {
        name: name.into(),
        email: Some(format!(
            "{}@example.org",
            name.to_lowercase().replace(' ', ".")
        )),
        chat: Some(chat.into()),
        role: Some(role.into()),
    }
}

pub fn project(id: &str, depends_on: &[&str], contacts: Vec<Contact>) -> Project {
    Project {
        id: pid(id),
        name: id.rsplit('/').next().unwrap_or(id).into(),
        contacts,
        depends_on: depends_on
            .iter()
            .map(|d| Dependency {
                project: pid(d),
                range: None,
                lines: Vec::new(),
            })
            .collect(),
        trigger: None,
        package: None,
        source: None,
        reconcile_after_secs: None,
        confirm_failures: 0,
        badges: Default::default(),
        notify: Vec::new(),
        notify_candidates: false,
        created_at: at(86_400),
        updated_at: at(86_400),
        changed: None,
        trusted_ci: Vec::new(),
        report_to: Vec::new(),
        dependencies: Default::default(),
        dev_dependencies: false,
        manifest: None,
    }
}

/// A node that ran from `ago_s` seconds ago for `took_s` seconds (still running
/// when the state is not final).
pub fn node(
    id: BuildId,
    project: &str,
    root: BuildId,
    parents: &[BuildId],
    state: NodeState,
    ago_s: u64,
    took_s: u64,
) -> Node {
    let mut n = Node::new(
        id,
        pid(project),
        root,
        parents.to_vec(),
        state,
        at(ago_s + 2),
    );
    let kind = n.state.kind();
    if !matches!(
        kind,
        StateKind::Pending | StateKind::Queued | StateKind::Blocked | StateKind::Skipped
    ) {
        n.triggered_at = Some(at(ago_s + 1));
    }
    if matches!(
        kind,
        StateKind::Running | StateKind::Passed | StateKind::Failed | StateKind::Errored
    ) {
        n.started_at = Some(at(ago_s));
        n.url = Some(format!(
            "https://ci.example.org/{project}/pipelines/{}",
            id.0.random() % 10_000
        ));
    }
    if kind.is_final() && n.started_at.is_some() {
        n.finished_at = Some(at(ago_s.saturating_sub(took_s)));
    }
    n
}

pub fn root_event(
    id: BuildId,
    project: &str,
    version: &str,
    ago_s: u64,
    nodes: Vec<Node>,
) -> RootEvent {
    let mut counts = std::collections::BTreeMap::new();
    for n in &nodes {
        *counts.entry(n.state.kind()).or_insert(0) += 1;
    }
    RootEvent {
        summary: RootSummary {
            id,
            project: pid(project),
            version: Some(version.into()),
            commit: Some("9f1c2e7".into()),
            git_ref: Some("refs/heads/main".into()),
            environment: None,
            rollback_from: None,
            created_at: at(ago_s),
            counts,
            verdicts: Default::default(),
            notes: Vec::new(),
            not_promoted: Vec::new(),
            reported_by: None,
            forge: Vec::new(),
            candidate: None,
            superseded_by: None,
        },
        nodes,
        next_after: None,
    }
}

fn blocked(by: BuildId, project: &str, state: StateKind) -> NodeState {
    NodeState::Blocked {
        blocked_by: BlockedBy {
            build: by,
            project: pid(project),
            state,
        },
    }
}

/// The builds of the sample's newest runtime event, by name.
pub struct Ids {
    pub root: BuildId,
    pub io: BuildId,
    pub codec: BuildId,
    pub http: BuildId,
    pub portal: BuildId,
    pub sql: BuildId,
    pub auth: BuildId,
    pub deploy: BuildId,
    pub alpha: BuildId,
    pub beta: BuildId,
}

pub fn ids() -> Ids {
    Ids {
        root: build(120, 1),
        io: build(118, 2),
        codec: build(118, 3),
        http: build(110, 4),
        sql: build(110, 5),
        portal: build(110, 6),
        auth: build(100, 7),
        deploy: build(100, 8),
        alpha: build(118, 9),
        beta: build(118, 10),
    }
}

/// One runtime cascade: a diamond (`net/http` and `data/sql` under both `core/io`
/// and `core/codec`), a failure that blocks a descendant, a refused trigger, a
/// rebuild in progress and a two-project cycle.
pub fn runtime_event(http_state: NodeState, ago_s: u64, version: &str, ids: &Ids) -> RootEvent {
    let r = ids.root;
    let http_failed = http_state.kind() == StateKind::Failed;
    let mut http = node(
        ids.http,
        "net/http",
        r,
        &[ids.io, ids.codec],
        http_state,
        ago_s - 10,
        40,
    );
    // net/http is built by GitHub Actions, triggered through its API.
    http.run = Some(conjunction_protocol::Run {
        ci: conjunction_protocol::CiKind::Github,
        id: Some("30433642".into()),
        number: None,
        learnt: None,
    });
    http.url = Some("https://github.com/acme/http/actions/runs/30433642".into());
    if http_failed {
        http.summary = Some(
            "test client::keeps_alive_after_upgrade ... FAILED\n\
             panicked at tests/client.rs:212:5: connection closed by runtime 1.5 scheduler"
                .into(),
        );
    }
    let portal_state = if http_failed {
        blocked(ids.http, "net/http", StateKind::Failed)
    } else {
        NodeState::Passed
    };
    let mut auth = node(
        ids.auth,
        "svc/auth",
        r,
        &[ids.sql],
        NodeState::Running,
        ago_s - 20,
        0,
    );
    auth.attempt = 2;
    let cycle = vec![
        pid("plugins/alpha"),
        pid("plugins/beta"),
        pid("plugins/alpha"),
    ];
    let nodes = vec![
        node(r, "core/runtime", r, &[], NodeState::Passed, ago_s, 0),
        node(ids.io, "core/io", r, &[r], NodeState::Passed, ago_s - 2, 8),
        node(ids.codec, "core/codec", r, &[r], NodeState::Passed, ago_s - 2, 6),
        node(ids.alpha, "plugins/alpha", r, &[r, ids.beta], NodeState::Skipped { cycle: cycle.clone() }, ago_s - 2, 0),
        node(ids.beta, "plugins/beta", r, &[ids.alpha], NodeState::Skipped { cycle: vec![pid("plugins/beta"), pid("plugins/alpha"), pid("plugins/beta")] }, ago_s - 2, 0),
        http,
        node(ids.sql, "data/sql", r, &[ids.io, ids.codec], NodeState::Passed, ago_s - 10, 9),
        node(ids.portal, "apps/legacy-portal", r, &[ids.http], portal_state, ago_s - 10, 30),
        auth,
        node(
            ids.deploy,
            "ops/deploy-bot",
            r,
            &[ids.sql],
            NodeState::TriggerFailed {
                reason: "https://ci.example.org/trigger/ops/deploy-bot answered 403 Forbidden: pipeline triggers are disabled".into(),
            },
            ago_s - 20,
            0,
        ),
    ];
    root_event(r, "core/runtime", version, ago_s, nodes)
}

/// The sample's projects with their contacts.
pub fn projects() -> Vec<Project> {
    vec![
        project(
            "core/runtime",
            &[],
            vec![contact("Ana Lima", "maintainer", "@ana")],
        ),
        project(
            "core/io",
            &["core/runtime"],
            vec![contact("Mei Chen", "maintainer", "@mei")],
        ),
        project(
            "core/codec",
            &["core/runtime"],
            vec![contact("Omar Haddad", "maintainer", "@omar")],
        ),
        project(
            "net/http",
            &["core/io", "core/codec"],
            vec![
                contact("Sam Okafor", "maintainer", "@sam"),
                contact("Mei Chen", "reviewer", "@mei"),
            ],
        ),
        project(
            "data/sql",
            &["core/io", "core/codec"],
            vec![contact("Tomas Novak", "maintainer", "@tomas")],
        ),
        project(
            "apps/legacy-portal",
            &["net/http"],
            vec![contact("Greta Olsen", "maintainer", "@greta")],
        ),
        project(
            "svc/auth",
            &["data/sql"],
            vec![contact("Ines Duarte", "maintainer", "@ines")],
        ),
        project(
            "ops/deploy-bot",
            &["data/sql"],
            vec![contact("Leo Brandt", "maintainer", "@leo")],
        ),
        project(
            "plugins/alpha",
            &["core/runtime", "plugins/beta"],
            vec![contact("Ivo Petrov", "maintainer", "@ivo")],
        ),
        project(
            "plugins/beta",
            &["plugins/alpha"],
            vec![contact("Ruth Klein", "maintainer", "@ruth")],
        ),
    ]
}

/// A snapshot with three root events, newest first: runtime 1.5.0 (where
/// `net/http` fails, a regression), design-system 3.2.0, and runtime 1.4.2 (where
/// it passed).
pub fn snapshot() -> ServerMessage {
    let newest = runtime_event(NodeState::Failed, 120, "1.5.0", &ids());
    let older_ids = Ids {
        root: build(900, 1),
        io: build(898, 2),
        codec: build(898, 3),
        http: build(890, 4),
        sql: build(890, 5),
        portal: build(890, 6),
        auth: build(880, 7),
        deploy: build(880, 8),
        alpha: build(898, 9),
        beta: build(898, 10),
    };
    let mut older = runtime_event(NodeState::Passed, 900, "1.4.2", &older_ids);
    for n in &mut older.nodes {
        if n.state.kind() == StateKind::Running {
            n.state = NodeState::Passed;
            n.finished_at = Some(at(850));
        }
    }
    judge(&mut older, None);
    let mut newest = newest;
    judge(&mut newest, Some(&older));
    let design = build(400, 1);
    let design_event = root_event(
        design,
        "ui/design-system",
        "3.2.0",
        400,
        vec![
            node(
                design,
                "ui/design-system",
                design,
                &[],
                NodeState::Passed,
                400,
                0,
            ),
            node(
                build(398, 2),
                "apps/web",
                design,
                &[design],
                NodeState::Passed,
                398,
                75,
            ),
        ],
    );
    let events = vec![newest, design_event, older];
    ServerMessage::Snapshot {
        seq: 100,
        projects: projects(),
        roots: events.iter().map(|e| e.summary.clone()).collect(),
        events,
    }
}

/// Gives the finished builds of `event` the verdicts the daemon's rule gives them
/// against `before`, the same upstream's earlier event (a passed or failed build there
/// is what they compare with), and counts them on the root.
fn judge(event: &mut RootEvent, before: Option<&RootEvent>) {
    use conjunction_protocol::{Baseline, Verdict};
    let mut counts = std::collections::BTreeMap::new();
    for n in event.nodes.iter_mut().skip(1) {
        use conjunction_protocol::verdict::{is_built, judge, Judgement};
        let past = before
            .and_then(|b| b.nodes.iter().find(|p| p.project == n.project))
            .filter(|p| is_built(p.state.kind()));
        let Judgement::Verdict(verdict) =
            judge(n.state.kind(), past.map(|p| p.state.kind()), None, 0)
        else {
            continue;
        };
        n.verdict = Some(verdict);
        n.baseline = past
            .filter(|_| verdict != Verdict::Infra)
            .map(|p| Baseline {
                root: p.root,
                build: p.id,
                state: p.state.kind(),
                upstream_version: before.and_then(|b| b.summary.version.clone()),
                at: p.finished_at.unwrap_or(p.created_at),
            });
        if verdict == Verdict::Broke {
            // Told on both sides: the dependent's channel and the upstream's email.
            use conjunction_protocol::notify::{Notice, NoticeKind, NoticeState};
            for (channel, to) in [
                ("#http on Slack", n.project.clone()),
                ("lena@example.org by email", event.summary.project.clone()),
            ] {
                n.notices.push(Notice {
                    kind: NoticeKind::Broke,
                    channel: channel.into(),
                    to: vec![to],
                    state: NoticeState::Sent,
                    tries: 1,
                    at: n.finished_at.unwrap_or(n.created_at),
                    error: None,
                });
            }
        }
        *counts.entry(verdict).or_insert(0) += 1;
    }
    event.summary.verdicts = counts;
}

/// A feed event at `seq`.
pub fn event(seq: u64, change: Change) -> ServerMessage {
    ServerMessage::Event(Box::new(Event {
        seq,
        at: NOW,
        change,
    }))
}

/// One root event of `size` nodes: a wide, deep tree with shared nodes, for the
/// frame benchmark.
pub fn large_event(size: usize) -> RootEvent {
    let root = build(3600, 0);
    let mut nodes = vec![node(
        root,
        "bench/root",
        root,
        &[],
        NodeState::Passed,
        3600,
        10,
    )];
    for i in 1..size {
        let id = build(3600, i as u128);
        // Each node hangs under the node a tenth of the way back, and every
        // seventh one also under its predecessor, so the tree is deep and shared.
        let mut parents = vec![nodes[i / 10].id];
        if i % 7 == 0 && i > 1 && nodes[i - 1].id != parents[0] {
            parents.push(nodes[i - 1].id);
        }
        let state = match i % 13 {
            0 => NodeState::Failed,
            1 => NodeState::Running,
            2 => NodeState::Pending,
            _ => NodeState::Passed,
        };
        nodes.push(node(
            id,
            &format!("bench/project-{i:05}"),
            root,
            &parents,
            state,
            3000,
            30,
        ));
    }
    root_event(root, "bench/root", "1.0.0", 3600, nodes)
}
