//! Starting the daemon for a test: in-process through `serve`, or as the real
//! `conjunctiond` binary in its own process (for crash tests).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use conjunction_daemon::DispatchConfig;
use conjunction_daemon::Settings;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use conjunction_tui::client::Client as Api;

pub const OPERATOR_TOKEN: &str = "cjo_test-operator-token";

/// Dispatch settings that keep retry tests fast.
pub fn fast_dispatch() -> DispatchConfig {
    DispatchConfig {
        timeout_ms: 2_000,
        max_attempts: 5,
        backoff_base_ms: 20,
        backoff_max_ms: 200,
        concurrency: 64,
        // A test's mock CI is one host serving every project.
        per_host: 64,
    }
}

/// A daemon running inside the test process.
pub struct TestDaemon {
    pub addr: SocketAddr,
    pub api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDaemon {
    /// Starts a daemon with a fresh temporary data directory.
    pub async fn start() -> Self {
        Self::start_adjusted(|_| {}).await
    }

    /// Starts a daemon with a fresh temporary data directory after `adjust` has
    /// changed the configuration.
    pub async fn start_adjusted(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = Settings::new(dir.path());
        config.dispatch = fast_dispatch();
        adjust(&mut config);
        let mut d = Self::start_with(config).await;
        d._dir = Some(dir);
        d
    }

    /// Starts a daemon with `config`, adding the test operator token.
    pub async fn start_with(mut config: Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        config.operator_tokens = vec![OPERATOR_TOKEN.into()];
        if config.store.url.is_none() {
            config.store.url = crate::postgres::store_url_for(&config.data_dir);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            conjunction_daemon::serve(config, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("daemon runs");
        });
        Self {
            addr,
            api: Api::new(&format!("http://{addr}"), Some(OPERATOR_TOKEN.into())),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The data directory a daemon started by [`TestDaemon::start`] made.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir
            .as_ref()
            .map(|d| d.path())
            .expect("a daemon with its own data directory")
    }

    /// Shuts the daemon down gracefully and waits until it has closed its database.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("daemon task ends cleanly");
        }
        self._dir.take()
    }
}

/// Builds the workspace's binaries once per test run and returns the directory
/// holding them, next to the test executable's own profile directory.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        // Under `cargo test`, the same targets: with `--tests`, dev-dependencies switch
        // on the same features of shared crates, so after the workspace's test build
        // this is only a freshness check (without it cargo built the daemon and its
        // dependencies a second time, and CI's disk ran out). Benches build the
        // release binaries on their own: `--benches` or `--tests` there was measured
        // to rebuild the daemon on every run, which plain `--bins` does not.
        cmd.args(["build", "--quiet", "--workspace", "--bins"]);
        if cfg!(debug_assertions) {
            cmd.arg("--tests");
        } else {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>
        exe.parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps")
            .to_owned()
    })
}

/// Runs the `conjunctiond` command with `args`, with the tests' operator token and
/// none of the systemd directories the environment may name: whether it succeeded,
/// and what it printed (standard output, then standard error).
pub async fn run_conjunctiond<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = tokio::process::Command::new(binaries().join("conjunctiond"))
        .args(args)
        .env("CONJUNCTIOND_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env_remove("STATE_DIRECTORY")
        .env_remove("CONFIGURATION_DIRECTORY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("conjunctiond runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Where a daemon's output goes: appended to `log`, or to the test's own output.
fn output(log: Option<&Path>) -> Stdio {
    match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("log file"),
        ),
        None => Stdio::inherit(),
    }
}

/// A loopback address with a port nobody listens on right now.
pub fn free_address() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("address")
}

/// The real `conjunctiond` binary running in a child process.
pub struct DaemonProcess {
    pub addr: SocketAddr,
    pub api: Api,
    child: tokio::process::Child,
}

impl DaemonProcess {
    /// Starts `conjunctiond` on a free loopback port with `data_dir` and `config_toml`
    /// as its config file, and waits until it answers `/healthz`.
    pub async fn start(data_dir: &Path, config_toml: &str) -> Self {
        Self::start_on(free_address(), data_dir, config_toml).await
    }

    /// Registers the projects of `file` with the real `conjunction apply -f`, as an
    /// operator would, and panics when it fails.
    pub async fn apply(&self, file: &Path) {
        let status = tokio::process::Command::new(binaries().join("conjunction"))
            .args(["apply", "-f"])
            .arg(file)
            .env("CONJUNCTION_URL", format!("http://{}", self.addr))
            .env("CONJUNCTION_TOKEN", OPERATOR_TOKEN)
            .stdout(Stdio::null())
            .status()
            .await
            .expect("conjunction apply runs");
        assert!(
            status.success(),
            "conjunction apply -f {} failed",
            file.display()
        );
    }

    /// Like [`DaemonProcess::start`], with its log at `info` written to `log`.
    pub async fn start_logging(data_dir: &Path, config_toml: &str, log: &Path) -> Self {
        let addr = free_address();
        Self::spawn(addr, data_dir, config_toml, Some(log)).await
    }

    /// Like [`DaemonProcess::start_logging`], on a given address.
    pub async fn start_on_logging(
        addr: SocketAddr,
        data_dir: &Path,
        config_toml: &str,
        log: &Path,
    ) -> Self {
        Self::spawn(addr, data_dir, config_toml, Some(log)).await
    }

    /// Like [`DaemonProcess::start`], on a given address: to restart a daemon where
    /// its clients expect it.
    pub async fn start_on(addr: SocketAddr, data_dir: &Path, config_toml: &str) -> Self {
        Self::spawn(addr, data_dir, config_toml, None).await
    }

    /// Runs `conjunctiond` on `data_dir` expecting it to refuse to start: waits (up to
    /// 20 s) for it to exit and returns how it exited and what it wrote to stderr.
    pub async fn refused_start(data_dir: &Path) -> (std::process::ExitStatus, String) {
        let run = tokio::process::Command::new(binaries().join("conjunctiond"))
            .arg("--listen")
            .arg(free_address().to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .env("CONJUNCTIOND_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env_remove("STATE_DIRECTORY")
            .env_remove("CONFIGURATION_DIRECTORY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("conjunctiond exits instead of serving")
            .expect("conjunctiond runs");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn spawn(
        addr: SocketAddr,
        data_dir: &Path,
        config_toml: &str,
        log: Option<&Path>,
    ) -> Self {
        let mut daemon = Self::spawn_only(addr, data_dir, config_toml, log, None);
        if let Some(status) = daemon.answering().await {
            panic!("conjunctiond exited at start ({status}); its output is above or in its log");
        }
        daemon
    }

    /// Like [`DaemonProcess::start_logging`], with at most `open_files` open files (the
    /// soft and hard limit, as systemd's `LimitNOFILE` sets them).
    pub async fn start_with_open_files(
        data_dir: &Path,
        config_toml: &str,
        log: &Path,
        open_files: u64,
    ) -> Self {
        let mut daemon = Self::spawn_only(
            free_address(),
            data_dir,
            config_toml,
            Some(log),
            Some(open_files),
        );
        if let Some(status) = daemon.answering().await {
            panic!(
                "conjunctiond exited at start ({status}); see {}",
                log.display()
            );
        }
        daemon
    }

    fn spawn_only(
        addr: SocketAddr,
        data_dir: &Path,
        config_toml: &str,
        log: Option<&Path>,
        open_files: Option<u64>,
    ) -> Self {
        let config_path = data_dir.join("test-conjunctiond.toml");
        std::fs::create_dir_all(data_dir).expect("data directory");
        let config_toml = crate::postgres::with_test_store(config_toml, data_dir);
        std::fs::write(&config_path, config_toml).expect("config file");
        let mut command = tokio::process::Command::new(binaries().join("conjunctiond"));
        if let Some(n) = open_files {
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: only setrlimit, which is async-signal-safe, runs in the child.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(&config_path)
            .env("CONJUNCTIOND_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env_remove("STATE_DIRECTORY")
            .env_remove("CONFIGURATION_DIRECTORY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
            .stdout(output(log))
            .stderr(output(log))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("conjunctiond starts");
        let api = Api::new(&format!("http://{addr}"), Some(OPERATOR_TOKEN.into()));
        Self { addr, api, child }
    }

    /// Starts `conjunctiond` on `data_dir` with its log in `log`, as a start that may
    /// be refused: the running daemon once it answers `/healthz`, or how it exited.
    pub async fn try_start(data_dir: &Path, log: &Path) -> Result<Self, std::process::ExitStatus> {
        let mut daemon = Self::spawn_only(free_address(), data_dir, "", Some(log), None);
        match daemon.answering().await {
            None => Ok(daemon),
            Some(status) => Err(status),
        }
    }

    /// Waits (up to 20 s) until the daemon answers `/healthz`; `Some` when it exited
    /// first.
    async fn answering(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if self.api.health().await.is_ok() {
                return None;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after 20 s waiting for conjunctiond to answer /healthz"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends SIGTERM and waits (up to 20 s) for the process to exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the daemon is running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the daemon exits after SIGTERM")
            .expect("child is reaped")
    }

    /// How the process exited, if it has.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    /// A memory figure of the process from `/proc/<pid>/status`, in KiB: `VmRSS` (resident
    /// now) or `VmHWM` (the peak since start, or since `/proc/<pid>/clear_refs` reset it).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the daemon is running")
    }

    /// Kills the process with SIGKILL: no shutdown, no flushing, nothing.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL is sent");
        self.child.wait().await.expect("child is reaped");
    }
}
