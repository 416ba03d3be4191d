//! Failover on PostgreSQL (issue 25): three daemons on one database, reports sent to
//! any of them, the writer killed with SIGKILL five times and once stopped with
//! SIGSTOP until another took over: nothing acknowledged is lost, the event log as
//! a feed client sees it has no gap and no event rewritten, every trigger is
//! delivered at least once with its delivery key, and a feed client that followed
//! one daemon resumes on another. How long a takeover takes is printed (and
//! measured in the benchmark), not asserted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conjunction_protocol::ws::{Event, ServerMessage};
use conjunction_protocol::{BuildId, ProjectId, ProjectSpec};
use conjunction_sim::webhook::{Behaviour, WebhookCi};
use conjunction_tests::daemon::{free_address, DaemonProcess, OPERATOR_TOKEN};
use conjunction_tests::feed::Feed;
use conjunction_tests::postgres::Cluster;
use conjunction_tui::client::Client;

const DEPENDENTS: usize = 3;

fn api(addr: SocketAddr) -> Client {
    Client::new(&format!("http://{addr}"), Some(OPERATOR_TOKEN.into()))
}

/// Which of `addrs` says it writes, if one does.
async fn writer(addrs: &[SocketAddr], alive: &[bool]) -> Option<usize> {
    for (i, addr) in addrs.iter().enumerate() {
        if !alive[i] {
            continue;
        }
        let health = tokio::time::timeout(Duration::from_millis(500), api(*addr).health()).await;
        if let Ok(Ok(h)) = health {
            if h["writer"] == "ok" {
                return Some(i);
            }
        }
    }
    None
}

async fn wait_for_writer_other_than(
    addrs: &[SocketAddr],
    alive: &[bool],
    old: usize,
) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        if let Some(w) = writer(addrs, alive).await.filter(|w| *w != old) {
            return (w, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no daemon took the writer's role"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_lose_nothing_when_the_writer_is_killed_five_times_and_once_paused() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("failover");
    let config = format!(
        "[store]\nurl = \"{url}\"\nlease_ms = 1000\n[dispatch]\nbackoff_base_ms = 100\nbackoff_max_ms = 500\n"
    );
    let ci = WebhookCi::start(None).await.unwrap();
    ci.set_default(Behaviour::Silent);

    // Three daemons; every one derives build tokens from the same key, as every
    // daemon of one service must (docs/operations.md).
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_address()).collect();
    let mut daemons: Vec<Option<DaemonProcess>> = Vec::new();
    daemons.push(Some(
        DaemonProcess::start_on(addrs[0], dirs[0].path(), &config).await,
    ));
    let key: PathBuf = dirs[0].path().join("build-token.key");
    for i in 1..3 {
        std::fs::copy(&key, dirs[i].path().join("build-token.key")).unwrap();
        daemons.push(Some(
            DaemonProcess::start_on(addrs[i], dirs[i].path(), &config).await,
        ));
    }
    let mut alive = vec![true; 3];

    let lib = ProjectId::parse("acme/lib").unwrap();
    let (_, made) = api(addrs[1])
        .put_project(
            &lib,
            &ProjectSpec {
                name: "lib".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = made.report_token.unwrap();
    for d in 0..DEPENDENTS {
        let spec = conjunction_tests::postgres::dependent_spec(&format!("app {d}"), &lib, ci.url());
        let id = ProjectId::parse(&format!("acme/app{d}")).unwrap();
        assert_eq!(api(addrs[2]).put_project(&id, &spec).await.unwrap().0, 201);
    }

    // Reporters: each report to a daemon picked in turn, tried elsewhere when it is
    // not answered; what is acknowledged is kept.
    let acked: Arc<Mutex<Vec<BuildId>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut reporters = Vec::new();
    for r in 0..2usize {
        let (acked, stop, token, addrs) =
            (acked.clone(), stop.clone(), token.clone(), addrs.clone());
        reporters.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let addr = addrs[(n + r) % addrs.len()];
                let report = conjunction_tests::postgres::release(
                    &ProjectId::parse("acme/lib").unwrap(),
                    &format!("1.{r}.{n}"),
                );
                let sent =
                    tokio::time::timeout(Duration::from_secs(3), api(addr).report(&token, &report))
                        .await;
                if let Ok(Ok(ack)) = sent {
                    acked.lock().unwrap().push(ack.root);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }

    // A feed client on one daemon, resuming on the next when its daemon goes.
    let seen: Arc<Mutex<BTreeMap<u64, Event>>> = Arc::default();
    let resumed = Arc::new(Mutex::new(0usize));
    let on = Arc::new(Mutex::new(0usize));
    let feed = {
        let (seen, resumed, addrs, on) = (seen.clone(), resumed.clone(), addrs.clone(), on.clone());
        tokio::spawn(async move {
            let mut last: Option<u64> = None;
            let mut at = 1usize;
            // Until the test has read what it saw (and aborts it).
            loop {
                *on.lock().unwrap() = at % addrs.len();
                let url = api(addrs[at % addrs.len()]).feed_url(last);
                at += 1;
                let Ok(mut client) = Feed::connect(&url, OPERATOR_TOKEN).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if last.is_some() {
                    *resumed.lock().unwrap() += 1;
                }
                while let Some(msg) = client.next_or_end(Duration::from_secs(120)).await {
                    match msg {
                        ServerMessage::Snapshot { seq, .. } => {
                            assert!(
                                last.is_none(),
                                "a resume by sequence number, not a new snapshot"
                            );
                            last = Some(seq);
                        }
                        ServerMessage::Event(e) => {
                            if let Some(l) = last {
                                assert_eq!(e.seq, l + 1, "events in order, none missed");
                            }
                            last = Some(e.seq);
                            seen.lock().unwrap().insert(e.seq, *e);
                        }
                        _ => {}
                    }
                }
            }
        })
    };

    let mut takeovers = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let w = writer(&addrs, &alive).await.expect("a writer");
        daemons[w].take().unwrap().kill().await;
        alive[w] = false;
        let (_, took) = wait_for_writer_other_than(&addrs, &alive, w).await;
        takeovers.push(took);
        // Back where it was: its clients and the CIs find it again.
        daemons[w] = Some(DaemonProcess::start_on(addrs[w], dirs[w].path(), &config).await);
        alive[w] = true;
    }

    // Paused, not dead: another takes over, and the paused one commits nothing after.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let w = writer(&addrs, &alive).await.expect("a writer");
    let pid = daemons[w].as_ref().unwrap().pid() as i32;
    // SAFETY: signals to a child process of this test.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    alive[w] = false;
    let (_, took) = wait_for_writer_other_than(&addrs, &alive, w).await;
    takeovers.push(took);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    alive[w] = true;
    conjunction_tests::eventually(
        "the paused daemon to follow",
        Duration::from_secs(10),
        || async {
            let h = api(addrs[w]).health().await.ok()?;
            (h["writer"] == "follower").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::SeqCst);
    for r in reporters {
        r.await.unwrap();
    }
    eprintln!("takeovers: {takeovers:?}");

    // Every acknowledged report is there, with a node for every dependent.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "reports were taken throughout: {}",
        acked.len()
    );
    let reader = api(addrs[(w + 1) % 3]);
    let mut builds: BTreeSet<BuildId> = BTreeSet::new();
    for root in &acked {
        let event = reader
            .root(*root)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {root}: {e}"));
        assert_eq!(event.nodes.len(), DEPENDENTS + 1, "{root}");
        builds.extend(event.nodes.iter().filter(|n| n.id != *root).map(|n| n.id));
    }
    // Every trigger is delivered at least once, with its delivery key.
    conjunction_tests::eventually(
        "every trigger delivered",
        Duration::from_secs(60),
        || async {
            let delivered: BTreeSet<BuildId> = ci
                .deliveries()
                .iter()
                .filter(|d| d.delivery_key.is_some())
                .map(|d| d.payload.build)
                .collect();
            builds.is_subset(&delivered).then_some(())
        },
    )
    .await;

    // The log as the feed client saw it is the log as it is: no gap, nothing
    // rewritten by a writer that had lost its role.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = stored_events(&pg);
    let (&first, _) = stored.first_key_value().expect("events");
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (first..first + stored.len() as u64).collect::<Vec<_>>(),
        "the event log has no gap"
    );
    let (&newest, _) = stored.last_key_value().unwrap();
    let caught_up = Instant::now();
    loop {
        let at = seen.lock().unwrap().keys().next_back().copied();
        if at >= Some(newest) {
            break;
        }
        let (times, on) = (*resumed.lock().unwrap(), *on.lock().unwrap());
        assert!(
            caught_up.elapsed() < Duration::from_secs(20),
            "the feed client is at {at:?}, the log at {newest} (it resumed {times} times, now on daemon {on}; {w} was paused)",
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    feed.abort();
    let seen = seen.lock().unwrap();
    let (&from, _) = seen.first_key_value().unwrap();
    for (s, e) in stored.range(from..) {
        assert_eq!(seen.get(s), Some(e), "event {s} as the feed client saw it");
    }
    assert!(
        seen.len() as u64 > 50,
        "the client followed throughout: {}",
        seen.len()
    );
    assert!(
        *resumed.lock().unwrap() >= 1,
        "the feed client resumed on another daemon"
    );
}

/// The events table as PostgreSQL holds it.
fn stored_events(pg: &Cluster) -> BTreeMap<u64, Event> {
    let events = conjunction_daemon::postgres::rows::table("events").unwrap();
    let rows = pg.psql(
        "failover",
        &format!(
            "SELECT encode(key, 'hex') || ' ' || convert_from(value, 'UTF8') FROM store_rows \
             WHERE tbl = {events} ORDER BY key"
        ),
    );
    rows.lines()
        .map(|line| {
            let (key, json) = line.split_once(' ').unwrap();
            let seq = u64::from_str_radix(key, 16).unwrap();
            let message: ServerMessage = serde_json::from_str(json).unwrap();
            let ServerMessage::Event(e) = message else {
                panic!("not an event: {json}")
            };
            (seq, *e)
        })
        .collect()
}
