//! systemd: the real `conjunctiond` started the way systemd starts a `Type=notify`
//! service behind a socket unit. A notify socket of the test's own stands in for
//! systemd (the test machine runs no systemd), and the listening socket is passed as
//! file descriptor 3 with `LISTEN_FDS=1`, as `conjunctiond.socket` would.

use std::os::fd::AsRawFd;
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

#[tokio::test]
async fn under_systemd_it_uses_the_passed_socket_says_ready_once_it_answers_and_pings_the_watchdog()
{
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    // The socket systemd would have bound from `ListenStream=`.
    let passed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let passed_addr = passed.local_addr().unwrap();
    let passed_fd = passed.as_raw_fd();
    // An address of its own it must not bind, since it was handed one.
    let flag_addr = free_address();

    let mut command = tokio::process::Command::new(binaries().join("conjunctiond"));
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
    let mut child = command
        .arg("--listen")
        .arg(flag_addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("CONJUNCTIOND_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "600000")
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID")
        .env_remove("STATE_DIRECTORY")
        .env_remove("CONFIGURATION_DIRECTORY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("conjunctiond starts");
    drop(passed);

    // READY=1 comes with a status line, and the port answers the moment it comes.
    let started = Instant::now();
    let ready = loop {
        let message = next_message(&notify, Duration::from_secs(20))
            .await
            .expect("conjunctiond tells systemd it is ready");
        if message.iter().any(|l| l == "READY=1") {
            break message;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{message:?}");
    };
    let health = reqwest::get(format!("http://{passed_addr}/healthz"))
        .await
        .expect("the passed socket answers as soon as READY=1 is sent");
    assert_eq!(health.status(), 200);
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
        let message = next_message(&notify, Duration::from_secs(2))
            .await
            .expect("watchdog pings keep coming");
        if message.iter().any(|l| l == "WATCHDOG=1") {
            pings += 1;
        }
    }
    assert!(
        watching.elapsed() < Duration::from_secs(3),
        "{:?}",
        watching.elapsed()
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let stopping = loop {
        let message = next_message(&notify, Duration::from_secs(10))
            .await
            .expect("conjunctiond tells systemd it is stopping");
        if message.iter().any(|l| l == "STOPPING=1") {
            break true;
        }
    };
    assert!(stopping);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
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
