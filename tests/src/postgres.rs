//! A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a data
//! directory in a temporary directory owned by the `postgres` user (initdb refuses to
//! run as root), listening only on a unix socket in that directory (and, for the TLS
//! tests, on a loopback port with a certificate), fsync off: it is thrown away.
//! Stopped and removed when dropped.
//!
//! Without PostgreSQL installed, [`Cluster::start`] says so and answers `None`, and
//! the test is skipped, except under `.ci/run` (`CONJUNCTION_CI` set), where a
//! missing server fails the test: CI installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The loopback port TLS is served on, when asked for.
    pub tls_port: Option<u16>,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`).
fn server_binaries() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

/// The installed server's version, as `postgres --version` says it.
pub fn server_version() -> Option<String> {
    let out = Command::new(server_binaries()?.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A server program, to run as the `postgres` user when the tests run as root.
fn server_program(bin: &Path, program: &str) -> Command {
    let program = bin.join(program);
    if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    }
}

/// Runs a server program, which must succeed.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let out = server_program(bin, program)
        .args(args)
        .output()
        .expect("the PostgreSQL program runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// A new cluster on a unix socket only.
    pub fn start() -> Option<Self> {
        Self::start_with(None, false)
    }

    /// A new cluster on a unix socket that keeps what it commits as a production
    /// server does (`fsync`, full page writes): for benchmarks, where the tests'
    /// cluster would flatter PostgreSQL against redb's fsynced commits.
    pub fn start_durable() -> Option<Self> {
        Self::start_with(None, true)
    }

    /// A new cluster that also serves TLS on a loopback port with `cert` and `key`
    /// (PEM files), beside its unix socket.
    pub fn start_tls(cert: &Path, key: &Path) -> Option<Self> {
        Self::start_with(Some((cert, key)), false)
    }

    fn start_with(tls: Option<(&Path, &Path)>, durable: bool) -> Option<Self> {
        let Some(bin) = server_binaries() else {
            assert!(
                std::env::var_os("CONJUNCTION_CI").is_none(),
                "PostgreSQL's server is missing: install Debian's postgresql package \
                 (`apt-get install -y postgresql`; .ci/run does)"
            );
            eprintln!(
                "skipped: PostgreSQL's server is not installed (apt-get install -y postgresql)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("conjunction-pg-")
            .tempdir()
            .expect("a temporary directory");
        if as_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("chown runs");
            assert!(
                out.status.success(),
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The key must be the server user's and private, or the server refuses it.
        let tls = tls.map(|(cert, key)| {
            let (c, k) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::copy(cert, &c).expect("copy the certificate");
            std::fs::copy(key, &k).expect("copy the key");
            if as_root() {
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&c)
                    .arg(&k)
                    .status()
                    .expect("chown runs");
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600))
                .expect("the key's mode");
            (c, k)
        });
        let data = dir.path().join("data");
        let data_arg = data.to_str().expect("a UTF-8 temporary path");
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data_arg,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = crate::daemon::free_address().port();
        let socket = dir.path().to_str().expect("a UTF-8 temporary path");
        // Tests need no crash safety from a server thrown away at their end.
        let sync = if durable {
            "-c fsync=on -c full_page_writes=on -c synchronous_commit=on"
        } else {
            "-c fsync=off -c full_page_writes=off"
        };
        let mut options = format!("-k {socket} -p {port} {sync}");
        let tls_port = tls.as_ref().map(|(cert, key)| {
            // The server listens on one port for both: the unix socket's name is
            // made of it, so TLS shares it on loopback.
            options.push_str(&format!(
                " -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
            port
        });
        if tls_port.is_none() {
            options.push_str(" -c listen_addresses=''");
        }
        let log = dir.path().join("server.log");
        run(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data_arg,
                "-l",
                log.to_str().expect("a UTF-8 temporary path"),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        Some(Self {
            dir,
            bin,
            port,
            tls_port,
        })
    }

    /// The directory of the unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A connection string for `database` over the unix socket, as user `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.dir.path().display(),
            self.port
        )
    }

    /// Makes a new, empty database and answers its connection string.
    pub fn database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE \"{name}\" TEMPLATE template0"))
            .arg(self.url("postgres"))
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// Runs `sql` in `database` with psql, as the tests' own hand on the database.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(database))
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = server_program(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The environment variable that runs the daemons the harness starts on PostgreSQL:
/// `CONJUNCTION_TEST_STORE=postgres` (`.ci/run` runs the end-to-end suite once so).
pub const STORE_VARIABLE: &str = "CONJUNCTION_TEST_STORE";

/// Whether the harness runs the daemons it starts on PostgreSQL.
pub fn daemons_on_postgres() -> bool {
    match std::env::var(STORE_VARIABLE).as_deref() {
        Ok("postgres") => true,
        Ok("redb") | Err(_) => false,
        Ok(other) => panic!("{STORE_VARIABLE}={other}: say postgres or redb"),
    }
}

/// One cluster for every daemon of this test process, and the databases made in it.
struct Shared {
    cluster: Cluster,
    made: std::sync::Mutex<std::collections::HashSet<String>>,
}

static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();

/// Stops the shared cluster when the test process exits (statics are never
/// dropped, and a server left running would outlive every test run).
extern "C" fn stop_shared() {
    if let Some(shared) = SHARED.get() {
        let data = shared.cluster.dir.path().join("data");
        let _ = server_program(&shared.cluster.bin, "pg_ctl")
            .args(["-D"])
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(shared.cluster.dir.path());
    }
}

/// The store a daemon the harness starts on `data_dir` gets, when it is to run on
/// PostgreSQL: a database of its own in the process's shared cluster, the same one
/// each time the daemon is started on that directory (a restart finds its data).
pub fn store_url_for(data_dir: &Path) -> Option<String> {
    if !daemons_on_postgres() {
        return None;
    }
    let shared = SHARED.get_or_init(|| {
        let cluster = Cluster::start().unwrap_or_else(|| {
            panic!("{STORE_VARIABLE}=postgres, and PostgreSQL's server is not installed")
        });
        // SAFETY: `stop_shared` is an `extern "C" fn` that touches only the static.
        unsafe { libc::atexit(stop_shared) };
        Shared {
            cluster,
            made: std::sync::Mutex::default(),
        }
    });
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    let name = format!("daemon_{:016x}", h.finish());
    let mut made = shared.made.lock().unwrap_or_else(|p| p.into_inner());
    if made.insert(name.clone()) {
        Some(shared.cluster.database(&name))
    } else {
        Some(shared.cluster.url(&name))
    }
}

/// `config_toml` with the store [`store_url_for`] gives `data_dir`, if any.
pub fn with_test_store(config_toml: &str, data_dir: &Path) -> String {
    // A test that names its own database keeps it.
    if config_toml.contains("[store]\nurl = ") {
        return config_toml.to_owned();
    }
    let Some(url) = store_url_for(data_dir) else {
        return config_toml.to_owned();
    };
    let line = format!("url = {}\n", toml_string(&url));
    match config_toml.find("[store]\n") {
        Some(at) => {
            let after = at + "[store]\n".len();
            format!("{}{line}{}", &config_toml[..after], &config_toml[after..])
        }
        None => format!("{config_toml}\n[store]\n{line}"),
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every key and value the store of the daemon on `data_dir` holds, one after
/// another: the redb file's bytes, or the rows of its PostgreSQL database. For
/// tests that look for what must never be stored.
pub fn stored_bytes(data_dir: &Path) -> Vec<u8> {
    let Some(url) = store_url_for(data_dir) else {
        return std::fs::read(data_dir.join("conjunction.redb")).expect("the database file");
    };
    let shared = SHARED.get().expect("the shared cluster");
    let name = url.rsplit("dbname=").next().unwrap_or_default().to_owned();
    let hex = shared.cluster.psql(
        &name,
        "SELECT coalesce(string_agg(encode(key, 'hex') || encode(value, 'hex'), ''), '') FROM store_rows",
    );
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A project named `name` depending on `upstream` (any version), triggered by the
/// webhook at `ci`: the dependents of the PostgreSQL tests.
pub fn dependent_spec(
    name: &str,
    upstream: &conjunction_protocol::ProjectId,
    ci: String,
) -> conjunction_protocol::ProjectSpec {
    conjunction_protocol::ProjectSpec {
        name: name.into(),
        depends_on: vec![conjunction_protocol::Dependency {
            project: upstream.clone(),
            range: None,
            lines: Vec::new(),
        }],
        trigger: Some(conjunction_protocol::TriggerSpec::Webhook {
            url: ci,
            token: None,
            secret: None,
        }),
        ..Default::default()
    }
}

/// A passed root build of `project` at `version`.
pub fn release(
    project: &conjunction_protocol::ProjectId,
    version: &str,
) -> conjunction_protocol::Report {
    conjunction_protocol::Report {
        version: Some(version.into()),
        ..conjunction_protocol::Report::new(
            project.clone(),
            conjunction_protocol::ReportState::Passed,
        )
    }
}
