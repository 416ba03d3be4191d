//! What one client may take: slow and idle connections are cut off, connections past
//! the limit are shed while health checks and operators still get through, and a
//! declared oversize body is refused before it is read. All against the real binary.

use std::time::Instant;

use conjunction_daemon::RESERVE;
use conjunction_protocol::ws::ServerMessage;
use conjunction_tests::daemon::{DaemonProcess, OPERATOR_TOKEN};
use conjunction_tests::feed::Feed;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::*;

/// Lets this test process open as many files as its hard limit allows.
fn more_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// Whether the server has closed `stream`: a read sees the end, or an error.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (such as 408 or 503) before the close: read on.
            Ok(Ok(_)) => continue,
        }
    }
}

/// A raw request and the status line of its answer.
async fn status_of(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `/healthz` answers 200 on a new connection, within `within`: the
/// reserve's seats turn over in 2 s (its header timeout).
async fn healthy_within(addr: std::net::SocketAddr, within: Duration) {
    eventually("/healthz to get through", within, || async move {
        let health = status_of(addr, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        health.starts_with("HTTP/1.1 200").then_some(())
    })
    .await;
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_while_the_daemon_stays_reachable() {
    more_open_files();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conjunctiond.log");
    let config = "[limits]\nheader_timeout_ms = 1000\n";
    let daemon = DaemonProcess::start_logging(dir.path(), config, &log).await;

    // 300 clients sending headers a byte at a time, and 300 that send nothing.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(daemon.addr).await.unwrap();
        s.write_all(b"GET /v1/pro").await.unwrap();
        slow.push(s);
    }
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(daemon.addr).await.unwrap());
    }
    // The daemon answers meanwhile.
    assert_eq!(daemon.api.health().await.unwrap()["status"], "ok");
    let mut cut_off = 0;
    for s in slow.iter_mut().chain(idle.iter_mut()) {
        let _ = s.write_all(b"j").await;
        if closed_by_server(s, Duration::from_secs(5)).await {
            cut_off += 1;
        }
    }
    assert_eq!(cut_off, 600, "every slow or idle connection is closed");

    // A kept-alive connection that goes quiet after a request is closed as well.
    let mut kept = TcpStream::connect(daemon.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut kept, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    daemon.terminate().await;
}

#[tokio::test]
async fn past_the_connection_limit_health_and_operators_get_through_and_the_rest_is_shed() {
    more_open_files();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conjunctiond.log");
    let config = "[limits]\nmax_connections = 40\nheader_timeout_ms = 60000\n";
    let daemon = DaemonProcess::start_logging(dir.path(), config, &log).await;
    // 40 connections hold every slot, doing nothing.
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(TcpStream::connect(daemon.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let health = status_of(daemon.addr, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let operator = format!(
        "GET /v1/projects HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {OPERATOR_TOKEN}\r\n\r\n"
    );
    let listed = status_of(daemon.addr, &operator).await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    let report = "POST /v1/reports HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";
    let shed = status_of(daemon.addr, report).await;
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");

    // Past the reserve too, connections are closed at once. The reserve turns over in
    // 2 s (a short header timeout, no keep-alive), so health checks get through again
    // while every slot is still held.
    let mut past = Vec::new();
    for _ in 0..200 {
        past.push(TcpStream::connect(daemon.addr).await.unwrap());
    }
    let mut closed = 0;
    for s in past.iter_mut().skip(RESERVE) {
        if closed_by_server(s, Duration::from_secs(1)).await {
            closed += 1;
        }
    }
    // A reserve seat freed by the requests above may go to one of these rather than
    // to one of the first.
    assert!(
        closed >= 200 - RESERVE - 4,
        "connections past the reserve are closed: {closed}"
    );
    healthy_within(daemon.addr, Duration::from_secs(3)).await;

    // Once the clients leave, everyone is served again, and the log says what was shed.
    drop(held);
    drop(past);
    let api = daemon.api.clone();
    eventually("a report answered normally", WAIT, || {
        let api = api.clone();
        async move {
            let raw = api
                .raw(Method::POST, "/v1/reports", None, Some(b"{}".to_vec()))
                .await
                .ok()?;
            (raw.status == 401).then_some(())
        }
    })
    .await;
    eventually("the log to say what was shed", WAIT, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("shedding connections").then_some(())
    })
    .await;
    daemon.terminate().await;
}

#[tokio::test]
async fn with_few_file_descriptors_more_idle_clients_than_it_has_cannot_make_it_unreachable() {
    more_open_files();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conjunctiond.log");
    let daemon = DaemonProcess::start_with_open_files(dir.path(), "", &log, 256).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("raise LimitNOFILE"),
        "it says it serves fewer: {text}"
    );

    let mut idle = Vec::new();
    for _ in 0..1_100 {
        match TcpStream::connect(daemon.addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect failed after {}: {e}", idle.len()),
        }
    }
    // Those past the limit and the reserve are closed at once, and the reserve turns
    // over in 2 s: health checks get through while the clients stay.
    healthy_within(daemon.addr, Duration::from_secs(3)).await;
    for _ in 0..3 {
        let health = status_of(daemon.addr, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    }
    drop(idle);
    assert!(daemon.terminate().await.success());
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_at_once_and_a_slow_body_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[limits]\nbody_timeout_ms = 1000\n";
    let daemon = DaemonProcess::start(dir.path(), config).await;

    // 2 MiB declared, nothing sent: 413 without waiting for it.
    let started = Instant::now();
    let mut s = TcpStream::connect(daemon.addr).await.unwrap();
    let head = format!(
        "PUT /v1/projects/acme%2Fa HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {OPERATOR_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        2 << 20
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .expect("answered before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The daemon reads what the client may still send for the body timeout at most,
    // then closes.
    let closed = Instant::now();
    let mut rest = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
        .await
        .expect("closed within the body timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing more is answered");
    assert!(
        closed.elapsed() < Duration::from_millis(2500),
        "{:?}",
        closed.elapsed()
    );

    // 100 bytes declared, 10 sent: 408 after the body timeout.
    let mut s = TcpStream::connect(daemon.addr).await.unwrap();
    let head = format!(
        "PUT /v1/projects/acme%2Fa HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {OPERATOR_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":\"a"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .expect("answered after the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(
        daemon.api.projects().await.unwrap().is_empty(),
        "nothing was registered"
    );
    daemon.terminate().await;
}

#[tokio::test]
async fn websocket_frames_over_the_limit_are_refused_with_1009_before_they_are_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = DaemonProcess::start(dir.path(), "").await;
    let url = daemon.api.feed_url(None);
    let before = daemon.memory_kib("VmRSS");
    // 40 clients each send a 10 MiB message: refused from its frame header.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let url = url.clone();
        clients.spawn(async move {
            let mut feed = Feed::connect(&url, OPERATOR_TOKEN).await.unwrap();
            feed.next(WAIT).await; // hello
            feed.next(WAIT).await; // snapshot
            feed.try_send_text("x".repeat(10 << 20)).await;
            feed.close_code(WAIT).await
        });
    }
    let codes = clients.join_all().await;
    let peak = daemon.memory_kib("VmHWM");
    assert!(
        codes.iter().all(|c| *c == Some(1009)),
        "each closed with 1009: {codes:?}"
    );
    // 40 x 10 MiB is 400 MiB; refused unread, the daemon's peak stays far below.
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {peak} KiB from {before} KiB at the start"
    );
    // A message under the limit is still read and answered.
    let mut feed = Feed::connect(&url, OPERATOR_TOKEN).await.unwrap();
    feed.next(WAIT).await;
    feed.next(WAIT).await;
    feed.send_text(&"y".repeat(32 * 1024)).await;
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Error { .. }));
    daemon.terminate().await;
}

#[tokio::test]
async fn feed_clients_past_the_cap_are_refused_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = DaemonProcess::start(dir.path(), "[limits]\nfeed_clients = 50\n").await;
    let url = daemon.api.feed_url(None);
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut feed = Feed::connect(&url, OPERATOR_TOKEN).await.unwrap();
        feed.next(WAIT).await;
        held.push(feed);
    }
    let refused = Feed::connect(&url, OPERATOR_TOKEN)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("503"), "{refused}");
    // A seat is given back when its client leaves.
    held.pop().unwrap().close().await;
    let api = daemon.api.clone();
    eventually("a seat for a new client", WAIT, || {
        let url = api.feed_url(None);
        async move { Feed::connect(&url, OPERATOR_TOKEN).await.ok() }
    })
    .await;
    daemon.terminate().await;
}

/// `n` feed clients, each past its websocket handshake and nothing read yet. The
/// handshakes all finish before any client reads: a client that parses its snapshot
/// (a few megabytes, in a debug build) while the others still have their upgrade
/// requests to write would hold them past the daemon's header timeout on a busy
/// machine, and the daemon would rightly close them.
async fn connect_all(url: &str, n: usize) -> Vec<Feed> {
    let mut handshakes = tokio::task::JoinSet::new();
    for _ in 0..n {
        let url = url.to_owned();
        handshakes.spawn(async move { Feed::connect(&url, OPERATOR_TOKEN).await.unwrap() });
    }
    handshakes.join_all().await
}

#[tokio::test]
async fn snapshots_are_built_once_sent_a_few_at_a_time_and_not_held_after() {
    let dir = tempfile::tempdir().unwrap();
    // Room for both rounds of 250 clients, however slowly the first gives back its seats.
    let daemon = DaemonProcess::start(dir.path(), "[limits]\nfeed_clients = 600\n").await;
    // An event of 4,000 builds, so that a snapshot is a few megabytes.
    let mut projects = vec![serde_json::json!({"id": "acme/root", "name": "root"})];
    for i in 0..3_999 {
        projects.push(serde_json::json!({
            "id": format!("acme/d{i}"),
            "name": format!("downstream {i}"),
            "depends_on": [{"project": "acme/root"}],
        }));
    }
    let list = serde_json::to_vec(&serde_json::json!({ "projects": projects })).unwrap();
    let applied = daemon
        .api
        .raw(
            Method::PUT,
            "/v1/projects",
            Some(OPERATOR_TOKEN),
            Some(list),
        )
        .await
        .unwrap();
    assert_eq!(applied.status, 200, "{}", applied.json());
    let token = applied.json()["projects"][0]["report_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = daemon.api.feed_url(None);

    // What 250 connections cost whatever they are sent, measured while the snapshot
    // is still empty: buffers, tasks, and the allocator's arenas. The connections are
    // closed again; what they took is the baseline the snapshots are measured from.
    let mut clients = Vec::new();
    for mut feed in connect_all(&url, 250).await {
        clients.push(tokio::spawn(async move {
            feed.next(WAIT).await;
            feed.next(WAIT).await;
            feed
        }));
    }
    let mut empty = Vec::new();
    for c in clients {
        empty.push(c.await.unwrap());
    }
    for feed in empty {
        feed.close().await;
    }

    let ack = report_root(&daemon.api, &token, "acme/root", "1.0.0").await;
    // The dependents have no trigger, so each fails to trigger; once all have, nothing
    // commits and every client below is sent the same snapshot.
    // 4,000 builds: on PostgreSQL (a round trip per row the writer reads), with the
    // rest of the suite running beside it, that takes longer than the usual bound.
    super::settled_within(&daemon.api, ack.root, Duration::from_secs(90)).await;
    let mut first = Feed::connect(&url, OPERATOR_TOKEN).await.unwrap();
    first.next(WAIT).await;
    let ServerMessage::Snapshot { events, .. } = first.next(WAIT).await else {
        panic!("a snapshot after hello");
    };
    assert_eq!(
        events[0].nodes.len(),
        4_000,
        "the whole event, in one message"
    );
    let size_kib = serde_json::to_string(&events).unwrap().len() as u64 / 1024;
    assert!(size_kib > 512, "a snapshot of {size_kib} KiB");
    first.close().await;

    // 250 clients take the snapshot and stay connected. The high-water mark already
    // holds 250 connections, so what it rises by is what the snapshots cost.
    let before = daemon.memory_kib("VmHWM");
    let mut clients = Vec::new();
    for mut feed in connect_all(&url, 250).await {
        clients.push(tokio::spawn(async move {
            feed.next(Duration::from_secs(60)).await;
            let ServerMessage::Snapshot { events, seq, .. } =
                feed.next(Duration::from_secs(60)).await
            else {
                panic!("a snapshot after hello");
            };
            assert_eq!(events[0].nodes.len(), 4_000);
            (feed, seq)
        }));
    }
    let mut connected = Vec::new();
    let mut seqs = std::collections::BTreeSet::new();
    for c in clients {
        let (feed, seq) = c.await.unwrap();
        connected.push(feed);
        seqs.insert(seq);
    }
    assert_eq!(
        seqs.len(),
        1,
        "one snapshot, of one commit, for all: {seqs:?}"
    );
    let peak = daemon.memory_kib("VmHWM");
    let now = daemon.memory_kib("VmRSS");
    // Held whole per connection, 250 snapshots would take 250 times its size.
    assert!(
        peak < before + 250 * size_kib / 5,
        "peak RSS rose {} KiB for 250 snapshots of {size_kib} KiB",
        peak.saturating_sub(before)
    );
    assert!(
        now < before + 250 * size_kib / 5,
        "with 250 clients connected after their snapshots, RSS is {now} KiB (from {before})"
    );
    drop(connected);
    daemon.terminate().await;
}

#[tokio::test]
async fn a_client_that_writes_its_whole_oversize_body_before_reading_gets_the_413() {
    // As Python's http.client and requests do: headers and all of a 16 MiB body (far
    // more than the socket buffers hold) written before the answer is read.
    let d = conjunction_tests::daemon::TestDaemon::start().await;
    let addr = d.addr;
    for (method, path) in [
        ("PUT", "/v1/projects/acme%2Fa"),
        ("POST", "/v1/reports"),
        ("POST", "/v1/hooks/github/acme%2Fa"),
    ] {
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let body = vec![b' '; 16 << 20];
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {OPERATOR_TOKEN}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes())?;
            s.write_all(&body)?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok::<_, std::io::Error>(answer)
        })
        .await
        .unwrap();
        let answer = answer.unwrap_or_else(|e| panic!("{path}: the client lost the answer: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(
            answer.contains("\"error\":\"body_too_large\""),
            "{path}: {answer}"
        );
    }
    d.stop().await;
}
