//! Settings: the one place where the daemon's defaults, its config file, the
//! environment and the command line meet.
//!
//! Each subsystem defines its own section next to its code ([`StoreConfig`] in the
//! store, [`LimitsConfig`] in the server, [`DispatchConfig`] in the dispatcher, …);
//! [`Settings`] composes them and is both the file's format (`conjunctiond.toml`) and
//! what [`crate::serve`] runs with. Sources, strongest first: systemd's
//! `$STATE_DIRECTORY`, `$CONFIGURATION_DIRECTORY` and `$CREDENTIALS_DIRECTORY`; then
//! command-line flags; then the config file; then the platform's directories and the
//! built-in defaults. Operator tokens add up: systemd's credential, then
//! `CONJUNCTIOND_OPERATOR_TOKEN`, then the file's list.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::FeedConfig;
use crate::channels::NotifyConfig;
use crate::health::HealthConfig;
use crate::metrics::MetricsConfig;
use crate::outbox::triggers::DispatchConfig;
use crate::planner::ReleasesConfig;
use crate::reconcile::ReconcileConfig;
use crate::retention::RetentionConfig;
use crate::server::LimitsConfig;
use crate::store::StoreConfig;
use crate::writer::Clock;

/// The config file's name in `$CONFIGURATION_DIRECTORY` and the platform's config
/// directory.
pub const CONFIG_FILE: &str = "conjunctiond.toml";

/// Everything the daemon runs with, as the config file spells it; what only the
/// environment, the command line or a test sets is not read from the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where to listen when systemd passes no socket.
    pub listen: SocketAddr,
    /// The database and the generated token files.
    pub data_dir: PathBuf,
    /// The URL CI systems reach the daemon at, for the report URL in trigger payloads.
    /// Defaults to `http://<listen address>`.
    pub public_url: Option<String>,
    /// Operator tokens; when empty, one is read from or generated into
    /// `<data_dir>/operator.token`.
    pub operator_tokens: Vec<String>,
    pub dispatch: DispatchConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub reconcile: ReconcileConfig,
    pub releases: ReleasesConfig,
    pub notify: NotifyConfig,
    pub forge: crate::outbox::forges::ForgeConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
    pub access: crate::auth::AccessConfig,
    pub oidc: crate::oidc::OidcConfig,
    pub health: HealthConfig,
    /// The live feed's budgets; not in the file.
    #[serde(skip)]
    pub feed: FeedConfig,
    /// The time retention goes by: the system's, or a test's own.
    #[serde(skip)]
    pub clock: Clock,
    /// Tell systemd how the daemon is doing (readiness, status, watchdog, stopping)
    /// when it runs under it (`NOTIFY_SOCKET`). On for `conjunctiond`, off for daemons
    /// inside tests.
    #[serde(skip)]
    pub service_manager: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: PathBuf::new(),
            public_url: None,
            operator_tokens: Vec::new(),
            dispatch: DispatchConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            reconcile: ReconcileConfig::default(),
            releases: ReleasesConfig::default(),
            notify: NotifyConfig::default(),
            forge: crate::outbox::forges::ForgeConfig::default(),
            metrics: MetricsConfig::default(),
            retention: RetentionConfig::default(),
            access: crate::auth::AccessConfig::default(),
            oidc: crate::oidc::OidcConfig::default(),
            health: HealthConfig::default(),
            feed: FeedConfig::default(),
            clock: Clock::system(),
            service_manager: false,
        }
    }
}

/// The default address: loopback only.
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7431))
}

/// What the command line says; `None` leaves it to the other sources.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub public_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    // The sources are not repeated in the messages: `anyhow` prints them as causes.
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no data directory: pass --data-dir")]
    NoDataDir,
    #[error("config file {path} is not usable: {message}")]
    Files { path: PathBuf, message: String },
}

impl Settings {
    /// Defaults for a daemon on `data_dir`, as tests and the demo start one.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// The config file to read: `$CONFIGURATION_DIRECTORY`'s when it has one, else
    /// the one `--config` names, else the platform config directory's when it exists.
    pub fn config_file(flags: &Flags) -> Option<PathBuf> {
        systemd_dir("CONFIGURATION_DIRECTORY")
            .map(|d| d.join(CONFIG_FILE))
            .filter(|p| p.exists())
            .or(flags.config.clone())
            .or_else(|| {
                platform_dirs()
                    .map(|d| d.config_dir().join(CONFIG_FILE))
                    .filter(|p| p.exists())
            })
    }

    /// Reads and checks the config file alone.
    pub fn read_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The settings from every source, merged: the defaults, then the config file,
    /// then the environment and `flags`.
    pub fn load(flags: &Flags) -> Result<Self, SettingsError> {
        let mut settings = match Self::config_file(flags) {
            Some(path) => Self::read_file(&path)?,
            None => Self::default(),
        };
        settings.data_dir = systemd_dir("STATE_DIRECTORY")
            .or(flags.data_dir.clone())
            .or_else(|| {
                let from_file = std::mem::take(&mut settings.data_dir);
                (!from_file.as_os_str().is_empty()).then_some(from_file)
            })
            .or_else(|| platform_dirs().map(|d| d.data_dir().to_owned()))
            .ok_or(SettingsError::NoDataDir)?;
        if let Some(listen) = flags.listen {
            settings.listen = listen;
        }
        if let Some(url) = &flags.public_url {
            settings.public_url = Some(url.clone());
        }
        let mut tokens = Vec::new();
        if let Some(creds) = systemd_dir("CREDENTIALS_DIRECTORY") {
            if let Ok(text) = std::fs::read_to_string(creds.join("operator-token")) {
                tokens.push(text.trim().to_owned());
            }
        }
        if let Ok(token) = std::env::var("CONJUNCTIOND_OPERATOR_TOKEN") {
            if !token.trim().is_empty() {
                tokens.push(token.trim().to_owned());
            }
        }
        tokens.append(&mut settings.operator_tokens);
        settings.operator_tokens = tokens;
        settings.service_manager = true;
        Ok(settings)
    }

    /// Reads the secrets the settings name by file (the SMTP and IRC passwords and CA
    /// files, the metrics scraper's token), as the daemon does at start.
    pub fn read_named_files(&mut self) -> Result<(), String> {
        self.notify.load_files()?;
        self.metrics.load_files()
    }

    /// Checks a config file the way `conjunctiond check-config` does: every key known,
    /// every value usable, every file it names readable.
    pub fn check_file(path: &Path) -> Result<(), SettingsError> {
        Self::read_file(path)?
            .read_named_files()
            .map_err(|message| SettingsError::Files {
                path: path.to_owned(),
                message,
            })
    }

    /// The URL CI systems reach the daemon at: `public_url`, or else the address it
    /// listens on.
    pub fn public_url(&self, address: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"))
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(crate::store::DATABASE_FILE)
    }
}

/// A directory systemd names in `var`; when a unit names several, separated by `:`,
/// the first.
fn systemd_dir(var: &str) -> Option<PathBuf> {
    let value = std::env::var_os(var)?;
    let first = value.to_str()?.split(':').next()?.to_owned();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

fn platform_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "conjunction", "conjunctiond")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_parses() {
        let c: Settings =
            toml::from_str(include_str!("../../packaging/conjunctiond.toml")).unwrap();
        assert_eq!(c.listen, Settings::default().listen);
        assert_eq!(c.dispatch, DispatchConfig::default());
        assert_eq!(c.store, StoreConfig::default());
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.releases, ReleasesConfig::default());
    }

    #[test]
    fn environments_are_listed_in_order_and_checked() {
        let c: Settings =
            toml::from_str("[releases]\nenvironments = [\"dev\", \"staging\", \"prod\"]").unwrap();
        assert_eq!(c.releases.environments.names(), ["dev", "staging", "prod"]);
        for bad in ["[]", "[\"dev\", \"dev\"]", "[\"Prod\"]"] {
            let refused = toml::from_str::<Settings>(&format!("[releases]\nenvironments = {bad}"));
            assert!(refused.is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn viewers_see_addresses_unless_the_file_says_otherwise() {
        let c: Settings = toml::from_str("").unwrap();
        assert!(c.access.viewers_see_email);
        let c: Settings = toml::from_str("[access]\nviewers_see_email = false").unwrap();
        assert!(!c.access.viewers_see_email);
        assert!(toml::from_str::<Settings>("[access]\nviewers = false").is_err());
    }

    #[test]
    fn retention_takes_whole_or_fractional_days_above_zero() {
        let c: Settings = toml::from_str("[retention]\nkeep_days = 90").unwrap();
        assert_eq!(
            c.retention.keep(),
            std::time::Duration::from_secs(90 * 24 * 3600)
        );
        let c: Settings = toml::from_str("[retention]\nkeep_days = 0.5").unwrap();
        assert_eq!(
            c.retention.keep(),
            std::time::Duration::from_secs(12 * 3600)
        );
        assert_eq!(c.retention.keep_per_upstream, 20);
        for bad in [
            "keep_days = 0",
            "keep_days = -1",
            "keep_per_upstream = 0",
            "keep = 3",
        ] {
            assert!(
                toml::from_str::<Settings>(&format!("[retention]\n{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_cache_size_is_given_in_mebibytes_and_not_zero() {
        let c: Settings = toml::from_str("[store]\ncache_mib = 256").unwrap();
        assert_eq!(c.store.cache_bytes, 256 << 20);
        let refused = toml::from_str::<Settings>("[store]\ncache_mib = 0").unwrap_err();
        assert!(refused.to_string().contains("at least 1"), "{refused}");
        assert!(toml::from_str::<Settings>("[store]\ncache_mib = -3").is_err());
    }

    #[test]
    fn the_config_file_refuses_unknown_keys() {
        assert!(toml::from_str::<Settings>("listen = \"127.0.0.1:1\"\ncolour = 1").is_err());
        let c: Settings =
            toml::from_str("operator_tokens = [\"a\"]\n[dispatch]\nmax_attempts = 3").unwrap();
        assert_eq!(c.dispatch.max_attempts, 3);
        assert_eq!(c.dispatch.timeout_ms, DispatchConfig::default().timeout_ms);
    }
}
