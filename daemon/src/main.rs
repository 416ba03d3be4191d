//! `conjunctiond`: the conjunction daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use conjunction_daemon::config::{FileConfig, DEFAULT_LISTEN};
use conjunction_daemon::Config;

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
}

fn systemd_dir(var: &str) -> Option<PathBuf> {
    // systemd lists several directories separated by ':' when a unit names several.
    let value = std::env::var_os(var)?;
    let first = value.to_str()?.split(':').next()?.to_owned();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// Logs to the journal, with fields, when systemd says stderr is the journal
/// (`JOURNAL_STREAM`); otherwise as text to stderr.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,tower_http=warn".into())
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journal) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter())
                .with(journal.with_syslog_identifier("conjunctiond".into()))
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
    let passed = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .context("LISTEN_FDS names a socket that is not a listening TCP socket")?;
    init_logging();
    let args = Args::parse();
    let dirs = directories::ProjectDirs::from("org", "conjunction", "conjunctiond");

    let config_path = systemd_dir("CONFIGURATION_DIRECTORY")
        .map(|d| d.join("conjunctiond.toml"))
        .filter(|p| p.exists())
        .or(args.config.clone())
        .or_else(|| {
            dirs.as_ref()
                .map(|d| d.config_dir().join("conjunctiond.toml"))
                .filter(|p| p.exists())
        });
    if let Some(Command::CheckConfig) = args.command {
        let Some(path) = &config_path else {
            anyhow::bail!(
                "no config file: pass --config FILE, or put conjunctiond.toml in $CONFIGURATION_DIRECTORY or the platform config directory"
            );
        };
        let mut file = FileConfig::load(path)?;
        file.notify
            .load_files()
            .and_then(|()| file.metrics.load_files())
            .map_err(|e| anyhow::anyhow!("config file {} is not usable: {e}", path.display()))?;
        println!("{} is valid", path.display());
        return Ok(());
    }
    let file = match &config_path {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };

    let data_dir = systemd_dir("STATE_DIRECTORY")
        .or(args.data_dir)
        .or(file.data_dir.clone())
        .or_else(|| dirs.as_ref().map(|d| d.data_dir().to_owned()))
        .context("no data directory: pass --data-dir")?;

    let mut operator_tokens = Vec::new();
    if let Some(creds) = systemd_dir("CREDENTIALS_DIRECTORY") {
        let path = creds.join("operator-token");
        if let Ok(text) = std::fs::read_to_string(&path) {
            operator_tokens.push(text.trim().to_owned());
        }
    }
    if let Ok(token) = std::env::var("CONJUNCTIOND_OPERATOR_TOKEN") {
        if !token.trim().is_empty() {
            operator_tokens.push(token.trim().to_owned());
        }
    }
    operator_tokens.extend(file.operator_tokens.iter().cloned());

    if args.check_database {
        let path = data_dir.join(conjunction_daemon::config::DATABASE_FILE);
        let size = conjunction_daemon::store::Store::check(&path)?;
        println!(
            "{} is intact ({size} bytes, every page verified)",
            path.display()
        );
        return Ok(());
    }

    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
    let mut config = Config::new(data_dir);
    config.public_url = args.public_url.or(file.public_url);
    config.operator_tokens = operator_tokens;
    config.dispatch = file.dispatch;
    config.reconcile = file.reconcile;
    config.releases = file.releases;
    config.notify = file.notify;
    config.metrics = file.metrics;
    config.store = file.store;
    config.limits = file.limits;
    config.service_manager = true;

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
        conjunction_daemon::serve(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
