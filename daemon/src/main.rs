//! `conjunctiond`: the conjunction daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use conjunction_daemon::Passed;
use conjunction_daemon::{Flags, Settings};

/// Links CI pipelines across projects: takes build reports, triggers dependents,
/// and streams every cascade live.
#[derive(Parser, Debug)]
#[command(name = "conjunctiond", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on [default: 127.0.0.1:7431]; a socket passed by systemd
    /// (LISTEN_FDS) wins
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the database and the generated operator token
    /// ($STATE_DIRECTORY wins when set)
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Config file (TOML) [default: $CONFIGURATION_DIRECTORY/conjunctiond.toml, then the
    /// platform config dir]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// URL at which CI systems reach this daemon, used in trigger payloads
    #[arg(long)]
    public_url: Option<String>,
    /// Verify every page of the database file in the data directory, say whether it
    /// is intact, and exit (0 when it is) without serving. Stop the daemon first.
    #[arg(long)]
    check_database: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the config file (every key known, every value usable, the files it names
    /// readable) and exit: 0 when it is, 1 with what is wrong and where.
    CheckConfig,
    /// Ask the running daemon for a consistent copy of its database, taken while it
    /// serves, and save it to FILE (verified before it is kept).
    Backup {
        /// Where to save the copy; it must not exist
        #[arg(long)]
        to: PathBuf,
        /// The daemon's URL [default: http://<listen address>]
        #[arg(long)]
        url: Option<String>,
    },
    /// Put a backup in place as the database of the data directory, with the daemon
    /// stopped; the database there is kept beside it as conjunction.redb.before-restore-*.
    Restore {
        /// The backup to restore
        #[arg(long)]
        from: PathBuf,
    },
    /// Copy the whole store, with every event, build, token hash and outbox entry,
    /// from a redb file into an empty PostgreSQL database, or from a PostgreSQL
    /// database into a new redb file, and verify every table by count and checksum.
    /// Stop every daemon on either side first.
    MigrateStore {
        /// A redb file (conjunction.redb), or a PostgreSQL database as [store] url names
        /// one (postgres://… or host=… dbname=…), without a password
        #[arg(long)]
        from: String,
        /// A PostgreSQL database no daemon has written to, or a redb file that does
        /// not exist
        #[arg(long)]
        to: String,
        /// The PostgreSQL password's file [default: the config's [store] password_file]
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// A CA to check the PostgreSQL server's certificate against [default: the
        /// config's [store] ca_file]
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

/// Logs to the journal, with fields, when stderr is the journal (`JOURNAL_STREAM`
/// names stderr's own device and inode); otherwise as text to stderr.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,tower_http=warn".into())
    };
    if conjunction_daemon::stderr_is_journal() {
        if let Ok(journal) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter())
                .with(
                    journal
                        .with_syslog_identifier("conjunctiond".into())
                        // `journalctl BUILD=…`, not `F_BUILD=…`.
                        .with_field_prefix(None),
                )
                .init();
            return;
        }
    }
    tracing_subscriber::fmt()
        // Colours only for a person at a terminal, never into a file or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(filter())
        .init();
}

fn main() -> anyhow::Result<()> {
    // Before any thread starts: a socket systemd passed, taken out of the environment.
    let passed = conjunction_daemon::passed_socket()
        .context("LISTEN_FDS names a socket that is not a listening TCP socket")?;
    init_logging();
    let passed = match passed {
        Passed::Socket(socket) => Some(socket),
        Passed::NotOurs { listen_pid } => {
            tracing::warn!(
                listen_pid = listen_pid.as_deref().unwrap_or("(not set)"),
                pid = std::process::id(),
                "LISTEN_FDS is set for another process (LISTEN_PID is not this one's); not using the sockets it names"
            );
            None
        }
        Passed::Nothing => None,
    };
    let args = Args::parse();
    let flags = Flags {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        config: args.config.clone(),
        public_url: args.public_url.clone(),
    };
    if let Some(Command::CheckConfig) = args.command {
        let Some(path) = Settings::config_file(&flags) else {
            anyhow::bail!(
                "no config file: pass --config FILE, or put conjunctiond.toml in $CONFIGURATION_DIRECTORY or the platform config directory"
            );
        };
        Settings::check_file(&path)?;
        println!("{} is valid", path.display());
        return Ok(());
    }
    let settings = Settings::load(&flags)?;

    match &args.command {
        Some(Command::Backup { to, url }) => {
            let url = url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.listen));
            let token = match settings.operator_tokens.first() {
                Some(t) => t.clone(),
                None => std::fs::read_to_string(settings.data_dir.join(conjunction_daemon::OPERATOR_TOKEN_FILE))
                    .map(|t| t.trim().to_owned())
                    .context("no operator token: set CONJUNCTIOND_OPERATOR_TOKEN, or run where the data directory's operator.token is readable")?,
            };
            return backup(&url, &token, to);
        }
        Some(Command::Restore { from }) if settings.store.url.is_some() => {
            anyhow::bail!(
                "this daemon's store is PostgreSQL ([store] url): restore it with the database's own tools (pg_restore of a pg_dump, or a base backup); `restore` puts a redb backup in place (docs/operations.md)"
            )
        }
        Some(Command::Restore { from }) => return restore(from, &settings.data_dir),
        Some(Command::MigrateStore {
            from,
            to,
            password_file,
            ca_file,
        }) => {
            let pg = |url: &str| conjunction_daemon::postgres::PgConfig {
                url: url.to_owned(),
                password_file: password_file
                    .clone()
                    .or_else(|| settings.store.password_file.clone()),
                ca_file: ca_file.clone().or_else(|| settings.store.ca_file.clone()),
            };
            return match (is_postgres(from), is_postgres(to)) {
                (false, true) => migrate_store(Move::IntoPostgres(from.into(), pg(to))),
                (true, false) => migrate_store(Move::OutOfPostgres(pg(from), to.into())),
                (true, true) => anyhow::bail!(
                    "both --from and --to are PostgreSQL: copy between PostgreSQL databases with pg_dump and pg_restore"
                ),
                (false, false) => anyhow::bail!(
                    "neither --from nor --to is a PostgreSQL database (postgres://… or host=… dbname=…): copy a redb file with `conjunctiond backup` or cp while the daemon is stopped"
                ),
            };
        }
        _ => {}
    }

    if args.check_database && settings.store.url.is_some() {
        anyhow::bail!(
            "this daemon's store is PostgreSQL ([store] url): --check-database verifies a redb file; PostgreSQL checks its own pages (data checksums, amcheck)"
        );
    }
    if args.check_database {
        let path = settings.database_path();
        let size = conjunction_daemon::Store::check(&path)?;
        println!(
            "{} is intact ({size} bytes, every page verified)",
            path.display()
        );
        return Ok(());
    }

    let listen = settings.listen;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = match passed {
            Some(socket) => {
                socket.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(socket)?;
                tracing::info!(address = %listener.local_addr()?, "using the socket systemd passed");
                listener
            }
            None => tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?,
        };
        conjunction_daemon::serve(settings, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Whether `place` names a PostgreSQL database rather than a file: a `postgres://`
/// URL, or libpq's `key=value` form (`host=/run/postgresql dbname=conjunction`).
fn is_postgres(place: &str) -> bool {
    const KEYS: [&str; 8] = [
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "sslmode",
        "application_name",
        "connect_timeout",
    ];
    place.starts_with("postgres://")
        || place.starts_with("postgresql://")
        || place.split_whitespace().all(|word| {
            word.split_once('=')
                .is_some_and(|(key, _)| KEYS.contains(&key))
        })
}

/// Which way `migrate-store` copies.
enum Move {
    IntoPostgres(PathBuf, conjunction_daemon::postgres::PgConfig),
    OutOfPostgres(conjunction_daemon::postgres::PgConfig, PathBuf),
}

/// Copies the store as `how` says and prints what each table came to.
fn migrate_store(how: Move) -> anyhow::Result<()> {
    use conjunction_daemon::postgres::{connect, copy, migrate};
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = std::time::Instant::now();
    let (copied, into) = runtime.block_on(async {
        match &how {
            Move::IntoPostgres(file, pg) => {
                let mut client = connect(pg).await.context("cannot reach PostgreSQL")?;
                let migrated = migrate(&mut client).await?;
                if migrated.from < migrated.to {
                    println!(
                        "schema brought from step {} to step {}",
                        migrated.from, migrated.to
                    );
                }
                let copied = copy::copy_into(file, &mut client)
                    .await
                    .with_context(|| format!("cannot copy {}", file.display()))?;
                anyhow::Ok((copied, "the database".to_owned()))
            }
            Move::OutOfPostgres(pg, file) => {
                let mut client = connect(pg).await.context("cannot reach PostgreSQL")?;
                let copied = copy::copy_out(&mut client, file)
                    .await
                    .with_context(|| format!("cannot copy into {}", file.display()))?;
                anyhow::Ok((copied, file.display().to_string()))
            }
        }
    })?;
    println!("{:<18} {:>10}  sha-256", "table", "rows");
    for t in &copied {
        println!("{:<18} {:>10}  {}", t.name, t.rows, hex::encode(t.checksum));
    }
    println!(
        "copied {} rows of {} tables into {into} in {:.1} s; every table's count and checksum match",
        copied.iter().map(|t| t.rows).sum::<u64>(),
        copied.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Saves the running daemon's backup to `to`: written beside it, verified page by
/// page, then renamed into place.
fn backup(url: &str, token: &str, to: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    if to.exists() {
        anyhow::bail!("{} exists; give a new file", to.display());
    }
    let partial = to.with_extension("partial");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let seq = runtime.block_on(async {
        let endpoint = format!("{}/v1/backup", url.trim_end_matches('/'));
        let mut response = reqwest::Client::new()
            .post(&endpoint)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the daemon refused the backup ({status}): {body}");
        }
        let seq = response
            .headers()
            .get(conjunction_daemon::BACKUP_SEQ_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        let mut out = std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        while let Some(chunk) = response.chunk().await.context("the backup was cut off")? {
            out.write_all(&chunk)
                .with_context(|| format!("cannot write {}", partial.display()))?;
        }
        out.sync_all()?;
        anyhow::Ok(seq)
    });
    let seq = match seq {
        Ok(seq) => seq,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    if let Err(e) = conjunction_daemon::Store::check(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(e).context("the backup received does not verify; nothing was kept");
    }
    std::fs::rename(&partial, to)?;
    let bytes = std::fs::metadata(to)?.len();
    println!(
        "backed up to {}: {bytes} bytes, every page verified, events up to {seq}",
        to.display()
    );
    Ok(())
}

/// Puts the backup `from` in place as the data directory's database, the daemon
/// stopped. The database there (if any) is kept beside it.
fn restore(from: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let db = data_dir.join(conjunction_daemon::DATABASE_FILE);
    if db.exists() && in_use(&db)? {
        anyhow::bail!(
            "{} is in use: stop the daemon (systemctl stop conjunctiond) before restoring",
            db.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    // The backup is only read: it may be on read-only media. The copy is what is
    // checked, so what goes in place is exactly what was verified.
    let restoring = db.with_extension("restoring");
    std::fs::copy(from, &restoring)
        .with_context(|| format!("cannot copy {} into {}", from.display(), data_dir.display()))?;
    // A copy takes the backup's mode, which on read-only media may say read-only.
    std::fs::set_permissions(&restoring, std::fs::Permissions::from_mode(0o600))?;
    let size = match conjunction_daemon::Store::check(&restoring) {
        Ok(size) => size,
        Err(e) => {
            let _ = std::fs::remove_file(&restoring);
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("{} is not a usable backup", from.display()));
        }
    };
    std::fs::File::open(&restoring)?.sync_all()?;
    if db.exists() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let aside = data_dir.join(format!(
            "{}.before-restore-{secs}",
            conjunction_daemon::DATABASE_FILE
        ));
        std::fs::rename(&db, &aside)?;
        println!("kept the database that was there as {}", aside.display());
    }
    std::fs::rename(&restoring, &db)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    println!(
        "restored {} ({size} bytes, every page verified) as {}; start the daemon",
        from.display(),
        db.display()
    );
    Ok(())
}

/// Whether another process (a running daemon) has the database open: redb refuses a
/// read-only open, which changes nothing, of a file a writer holds.
fn in_use(db: &std::path::Path) -> anyhow::Result<bool> {
    match redb::ReadOnlyDatabase::open(db) {
        Ok(_) => Ok(false),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Ok(true),
        // A damaged file is not in use; it is set aside all the same.
        Err(_) => Ok(false),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a SIGTERM right after READY=1 (a `systemctl stop`
/// of a service that just started) must find them, or it would kill the process
/// before it says STOPPING=1 and closes its database.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {}
            () = wait(terminate) => {}
        }
    }
}
