//! systemd: the real `conjunctiond` started the way systemd starts a `Type=notify`
//! service behind a socket unit. A notify socket of the test's own stands in for
//! systemd (the test machine runs no systemd), and the listening socket is passed as
//! file descriptor 3 with `LISTEN_FDS=1` and `LISTEN_PID` set to the daemon's own pid
//! (a shell that sets it to `$$` and execs the daemon keeps its pid), as
//! `conjunctiond.socket` would. The protocol is checked as sd_listen_fds(3),
//! sd_notify(3) and systemd.exec(5) write it, and the health endpoints as
//! orchestrators use them.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::UnixDatagram;

use conjunction_tests::daemon::{binaries, free_address, OPERATOR_TOKEN};

/// The next datagram on the notify socket, as its lines.
async fn next_message(socket: &UnixDatagram, within: Duration) -> Option<Vec<String>> {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(within, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

/// The next message on `socket` with a line starting `prefix`, within `within`.
async fn next_with(socket: &UnixDatagram, prefix: &str, within: Duration) -> Option<Vec<String>> {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let message = next_message(socket, left).await?;
        if message.iter().any(|l| l.starts_with(prefix)) {
            return Some(message);
        }
    }
    None
}

/// How the test stands in for systemd.
struct Unit<'a> {
    /// `LISTEN_PID`: the daemon's own (`$$` of the shell that execs it), or another.
    listen_pid: &'a str,
    /// Variables set besides `NOTIFY_SOCKET` and the `LISTEN_*` ones.
    env: Vec<(&'a str, String)>,
    /// The config file's text, if any.
    config: Option<&'a str>,
    /// Prepares the data directory before the daemon starts.
    prepare: fn(&Path),
}

impl Default for Unit<'_> {
    fn default() -> Self {
        Self {
            listen_pid: "$$",
            env: Vec::new(),
            config: None,
            prepare: |_| {},
        }
    }
}

/// `conjunctiond` started as systemd starts `conjunctiond.service` with its socket.
struct Started {
    child: tokio::process::Child,
    notify: UnixDatagram,
    /// The address of the socket systemd passed.
    passed: std::net::SocketAddr,
    /// The address of `--listen`, which a daemon given a socket must not bind.
    flag: std::net::SocketAddr,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(unit: Unit) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    (unit.prepare)(&data);
    // The socket systemd would have bound from `ListenStream=`.
    let passed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let passed_addr = passed.local_addr().unwrap();
    let passed_fd = passed.as_raw_fd();
    let flag = free_address();
    // `exec` keeps the shell's pid, so `$$` is the daemon's pid, as systemd sets it.
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(format!(
        "LISTEN_PID={}; export LISTEN_PID; exec \"$0\" \"$@\"",
        unit.listen_pid
    ));
    command.arg(binaries().join("conjunctiond"));
    // SAFETY: only dup2, which is async-signal-safe, runs in the child. The new
    // descriptor 3 does not inherit close-on-exec.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(passed_fd, 3) == 3 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
        .arg("--listen")
        .arg(flag.to_string())
        .arg("--data-dir")
        .arg(&data);
    if let Some(text) = unit.config {
        let path = dir.path().join("conjunctiond.toml");
        std::fs::write(&path, text).unwrap();
        command.arg("--config").arg(path);
    }
    command
        .env("CONJUNCTIOND_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("LISTEN_FDS", "1")
        .env_remove("WATCHDOG_USEC")
        .env_remove("STATE_DIRECTORY")
        .env_remove("CONFIGURATION_DIRECTORY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "warn");
    for (k, v) in unit.env {
        command.env(k, v);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("conjunctiond starts");
    drop(passed);
    Started {
        child,
        notify,
        passed: passed_addr,
        flag,
        data,
        _dir: dir,
    }
}

/// Sends SIGTERM and expects STOPPING=1 and a clean exit.
async fn stop(daemon: Started) -> String {
    let pid = daemon.child.id().unwrap() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    next_with(&daemon.notify, "STOPPING=1", Duration::from_secs(10))
        .await
        .expect("conjunctiond tells systemd it is stopping");
    let out = tokio::time::timeout(Duration::from_secs(20), daemon.child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn under_systemd_it_uses_the_passed_socket_says_ready_once_it_answers_and_pings_the_watchdog()
{
    let daemon = start(Unit {
        env: vec![("WATCHDOG_USEC", "600000".into())],
        ..Unit::default()
    });
    let (passed_addr, flag_addr) = (daemon.passed, daemon.flag);

    // READY=1 comes with a status line, and the port answers the moment it comes.
    let ready = next_with(&daemon.notify, "READY=1", Duration::from_secs(20))
        .await
        .expect("conjunctiond tells systemd it is ready");
    let health = reqwest::get(format!("http://{passed_addr}/healthz"))
        .await
        .expect("the passed socket answers as soon as READY=1 is sent");
    assert_eq!(health.status(), 200);
    assert_eq!(get(passed_addr, "/readyz").await.0, 200);
    let status = ready
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .expect("a status line comes with READY=1");
    assert_eq!(
        status,
        format!("serving 0 projects on {passed_addr}; 0 triggers and 0 notices queued; 0 cascades in progress")
    );
    assert!(
        std::net::TcpStream::connect(flag_addr).is_err(),
        "--listen is not bound when systemd passed a socket"
    );

    // The watchdog: systemd asked for a ping every 600 ms; each follows a commit.
    let mut pings = 0;
    let watching = Instant::now();
    while pings < 3 {
        next_with(&daemon.notify, "WATCHDOG=1", Duration::from_secs(2))
            .await
            .expect("watchdog pings keep coming");
        pings += 1;
    }
    assert!(
        watching.elapsed() < Duration::from_secs(3),
        "{:?}",
        watching.elapsed()
    );
    stop(daemon).await;
}

#[tokio::test]
async fn a_socket_passed_to_another_process_is_left_alone() {
    // LISTEN_FDS with the pid of someone else (a parent that did not clear its
    // environment): sd_listen_fds(3) says the descriptors are not this process's.
    let daemon = start(Unit {
        listen_pid: "1",
        ..Unit::default()
    });
    next_with(&daemon.notify, "READY=1", Duration::from_secs(20))
        .await
        .expect("ready");
    assert_eq!(
        get(daemon.flag, "/readyz").await.0,
        200,
        "it listens where --listen says"
    );
    // The passed socket is open (the kernel queues the connection) but nobody serves it.
    let unanswered = reqwest::Client::new()
        .get(format!("http://{}/healthz", daemon.passed))
        .timeout(Duration::from_millis(700))
        .send()
        .await;
    assert!(unanswered.is_err(), "{unanswered:?}");
    let log = stop(daemon).await;
    assert!(log.contains("LISTEN_PID is not this one's"), "{log}");
}

#[tokio::test]
async fn the_status_line_is_refreshed_every_few_seconds_without_a_watchdog() {
    let daemon = start(Unit::default());
    next_with(&daemon.notify, "READY=1", Duration::from_secs(20))
        .await
        .expect("ready");
    // A change shows within a pulse (two seconds by default).
    let spec = conjunction_protocol::ProjectSpec {
        name: "Acme Lib".into(),
        ..Default::default()
    };
    let api = conjunction_tui::client::Client::new(
        &format!("http://{}", daemon.passed),
        Some(OPERATOR_TOKEN.into()),
    );
    api.put_project(&super::pid("acme/lib"), &spec)
        .await
        .unwrap();
    let changed = next_with(
        &daemon.notify,
        "STATUS=serving 1 project ",
        Duration::from_secs(4),
    )
    .await
    .expect("the status line follows the change");
    assert!(
        !changed.iter().any(|l| l == "WATCHDOG=1"),
        "no watchdog was asked for: {changed:?}"
    );
    // Nothing changes: the same line again within a few seconds all the same.
    let again = Instant::now();
    next_with(
        &daemon.notify,
        "STATUS=serving 1 project ",
        Duration::from_secs(8),
    )
    .await
    .expect("the status line is sent again");
    assert!(
        again.elapsed() >= Duration::from_secs(3),
        "{:?}",
        again.elapsed()
    );
    stop(daemon).await;
}

#[tokio::test]
async fn a_journal_stream_that_is_not_stderr_is_not_written_to() {
    // Inherited from a service whose stderr was the journal, but this stderr is a pipe.
    let daemon = start(Unit {
        env: vec![
            ("JOURNAL_STREAM", "8:12345".into()),
            ("RUST_LOG", "info".into()),
        ],
        ..Unit::default()
    });
    next_with(&daemon.notify, "READY=1", Duration::from_secs(20))
        .await
        .expect("ready");
    let log = stop(daemon).await;
    assert!(
        log.contains("conjunctiond is serving"),
        "the log goes to stderr as text: {log}"
    );
}

/// Stops one thread of another process (and only that thread) while it lives, through
/// ptrace's SEIZE and INTERRUPT, as a disk that stops answering stops the thread
/// waiting on it; dropping it lets the thread go on.
struct Stopped(libc::pid_t);

impl Stopped {
    fn thread(pid: u32, name: &str) -> Self {
        // The kernel keeps 15 bytes of a thread's name.
        let name = &name[..name.len().min(15)];
        let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .find(|tid| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                    .is_ok_and(|comm| comm.trim() == name)
            })
            .unwrap_or_else(|| panic!("a thread named {name} in process {pid}"));
        // SAFETY: ptrace and waitpid on a thread of our own child; the status is a
        // local the call writes.
        unsafe {
            assert_eq!(
                libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0),
                0,
                "PTRACE_SEIZE: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0), 0);
            let mut status = 0;
            assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid);
        }
        Stopped(tid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above; the thread is in a ptrace stop.
        unsafe {
            libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_writer_makes_healthz_and_readyz_answer_503_until_it_commits_again() {
    let daemon = start(Unit {
        config: Some("[health]\npulse_ms = 100\nstall_ms = 1000\n"),
        ..Unit::default()
    });
    next_with(&daemon.notify, "READY=1", Duration::from_secs(20))
        .await
        .expect("ready");
    let addr = daemon.passed;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let stopped = Stopped::thread(daemon.child.id().unwrap(), "conjunction-writer");
    let stalled = conjunction_tests::eventually(
        "the writer to be called stalled",
        Duration::from_secs(10),
        || async {
            let (status, body) = get(addr, "/healthz").await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(stalled["writer"], "stalled", "{stalled}");
    assert!(stalled["stalled_ms"].as_u64().unwrap() > 1000, "{stalled}");
    assert!(
        stalled["message"].as_str().unwrap().contains("stall_ms"),
        "{stalled}"
    );
    let (status, ready) = get(addr, "/readyz").await;
    assert_eq!((status, ready["status"].as_str()), (503, Some("stalled")));
    // Reads need no writer: the daemon still answers them.
    assert_eq!(get(addr, "/v1/projects").await.0, 200);

    drop(stopped);
    conjunction_tests::eventually(
        "the writer to commit again",
        Duration::from_secs(10),
        || async { (get(addr, "/healthz").await.0 == 200).then_some(()) },
    )
    .await;
    assert_eq!(get(addr, "/readyz").await.0, 200);
    stop(daemon).await;
}

#[tokio::test]
async fn readyz_answers_503_until_the_daemon_has_read_its_disk_and_requests_wait_for_it() {
    // The build token key is a pipe nobody writes yet: reading the disk waits on it, as
    // on a slow disk or a long repair.
    let daemon = start(Unit {
        prepare: |data| {
            let key = std::ffi::CString::new(
                data.join("build-token.key")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .unwrap();
            // SAFETY: mkfifo(3) with a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(key.as_ptr(), 0o600) }, 0);
        },
        ..Unit::default()
    });
    let addr = daemon.passed;
    let starting =
        conjunction_tests::eventually("the socket to answer", Duration::from_secs(10), || async {
            reqwest::get(format!("http://{addr}/readyz")).await.ok()
        })
        .await;
    assert_eq!(starting.status(), 503);
    let body: serde_json::Value = starting.json().await.unwrap();
    assert_eq!(body["status"], "starting");
    let (status, health) = get(addr, "/healthz").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (503, Some("starting")),
        "{health}"
    );
    // An API request waits for the API, as it would in the listen backlog.
    let waiting = tokio::spawn(get(addr, "/v1/projects"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "answered before the daemon serves");
    assert!(
        next_message(&daemon.notify, Duration::from_millis(10))
            .await
            .is_none(),
        "no READY=1 yet"
    );

    std::fs::write(daemon.data.join("build-token.key"), "ab".repeat(32)).unwrap();
    next_with(&daemon.notify, "READY=1", Duration::from_secs(20))
        .await
        .expect("ready once the key is read");
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let (status, projects) = waiting.await.unwrap();
    assert_eq!(status, 200, "the request that waited is served: {projects}");
    stop(daemon).await;
}

/// Runs `conjunctiond check-config --config <file with text>`.
async fn check_config(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conjunctiond.toml");
    std::fs::write(&path, text).unwrap();
    let out = tokio::process::Command::new(binaries().join("conjunctiond"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("CONFIGURATION_DIRECTORY")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_config_passes_a_good_file_and_names_the_key_of_a_bad_one() {
    let (ok, out, err) = check_config(
        "listen = \"127.0.0.1:7431\"\n[releases]\nenvironments = [\"dev\", \"prod\"]\n[notify]\nmax_attempts = 3\n",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.ends_with(" is valid\n"), "{out}");

    for (text, key) in [
        ("[dispatch]\nmax_atempts = 3\n", "max_atempts"),
        ("colour = \"blue\"\n", "colour"),
        ("[store]\ncache_mib = 0\n", "cache_mib"),
        (
            "[notify.smtp]\nhost = \"mail\"\nfrom = \"ci@x\"\nsecurity = \"ssl\"\n",
            "security",
        ),
    ] {
        let (ok, _, err) = check_config(text).await;
        assert!(!ok, "{text} passed");
        assert!(err.contains(key), "{text}: {err}");
    }
    let (ok, _, err) = check_config(
        "[notify.smtp]\nhost = \"mail\"\nfrom = \"ci@x\"\npassword_file = \"/nonexistent/smtp-password\"\n",
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("password_file") && err.contains("/nonexistent/smtp-password"),
        "{err}"
    );
}
