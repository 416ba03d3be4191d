//! Configuration: what `serve` needs, where it comes from, and the operator token.
//!
//! Sources, strongest first: systemd's `$STATE_DIRECTORY`, `$CONFIGURATION_DIRECTORY`
//! and `$CREDENTIALS_DIRECTORY`; then command-line flags; then the config file; then
//! the platform's directories and built-in defaults.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::BuildTokens;
use crate::dispatch::DispatchConfig;
use crate::notify::NotifyConfig;
use crate::planner::Environments;
use crate::reconcile::ReconcileConfig;

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7431";
/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "conjunction.redb";
/// The generated operator token inside the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The key build tokens are derived from, inside the data directory.
pub const BUILD_TOKEN_KEY_FILE: &str = "build-token.key";

/// Everything `serve` needs besides its listener.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The URL CI systems reach the daemon at, for the report URL in trigger payloads.
    /// Defaults to `http://<listen address>`.
    pub public_url: Option<String>,
    /// Operator tokens; when empty, one is read from or generated into
    /// `<data_dir>/operator.token`.
    pub operator_tokens: Vec<String>,
    pub dispatch: DispatchConfig,
    pub feed: FeedConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub reconcile: ReconcileConfig,
    pub releases: ReleasesConfig,
    pub notify: NotifyConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
    pub health: crate::health::HealthConfig,
    /// The time retention goes by; the system's, or a test's own.
    pub clock: Clock,
    /// Tell systemd how the daemon is doing (readiness, status, watchdog, stopping)
    /// when it runs under it (`NOTIFY_SOCKET`). Off for daemons inside tests.
    pub service_manager: bool,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            public_url: None,
            operator_tokens: Vec::new(),
            dispatch: DispatchConfig::default(),
            feed: FeedConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            reconcile: ReconcileConfig::default(),
            releases: ReleasesConfig::default(),
            notify: NotifyConfig::default(),
            metrics: MetricsConfig::default(),
            retention: RetentionConfig::default(),
            health: crate::health::HealthConfig::default(),
            clock: Clock::system(),
            service_manager: false,
        }
    }
}

/// Release lines (`[releases]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleasesConfig {
    /// The environments a release is promoted through, in order; a root report
    /// without `environment` is a release into the first.
    pub environments: Environments,
}

/// What one client may take (`[limits]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once; a few more are kept for `/healthz` and operators.
    /// Lowered at start when the open file limit has no room for them.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may stay idle, in milliseconds.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body, in milliseconds.
    pub body_timeout_ms: u64,
    /// Live feed (websocket) clients at once.
    pub feed_clients: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            feed_clients: 256,
        }
    }
}

/// The database's settings (`[store]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Memory for redb's page cache, in bytes (`cache_mib` in the file). The cache
    /// grows to this size as pages are read and then stays; the daemon's resident
    /// memory is about this much plus what it serves. redb's own default is 1 GiB.
    #[serde(rename = "cache_mib", deserialize_with = "mebibytes")]
    pub cache_bytes: usize,
    /// Record redb's allocator state with every commit, so that a start after a crash
    /// takes milliseconds instead of reading the whole file (2.4 s at 1M builds), at
    /// about 10% more per commit. Off by default; see docs/operations.md.
    pub quick_repair: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            quick_repair: false,
        }
    }
}

fn mebibytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let mib = u32::deserialize(d)?;
    if mib == 0 {
        return Err(serde::de::Error::custom("cache_mib must be at least 1"));
    }
    Ok(usize::try_from(mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20))
}

/// Limits of the live feed.
#[derive(Debug, Clone, Copy)]
pub struct FeedConfig {
    /// Root events in a snapshot.
    pub snapshot_roots: usize,
    /// Nodes in a snapshot: the nodes of the newest root events are included, whole
    /// events only, until this many; the others are summaries.
    pub snapshot_nodes: usize,
    /// The most missed events a resuming client is sent one by one; further behind,
    /// it gets a fresh snapshot.
    pub max_replay: u64,
    /// How long one send to a client may take before the client is dropped.
    pub send_timeout: std::time::Duration,
    /// Events kept for subscribers that are behind; one further behind catches up
    /// from the event log.
    pub buffer: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            snapshot_roots: 50,
            snapshot_nodes: 5_000,
            max_replay: 10_000,
            send_timeout: std::time::Duration::from_secs(10),
            buffer: 4096,
        }
    }
}

/// The config file (`conjunctiond.toml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    #[serde(default)]
    pub operator_tokens: Vec<String>,
    #[serde(default)]
    pub dispatch: DispatchConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    #[serde(default)]
    pub releases: ReleasesConfig,
    #[serde(default)]
    pub notify: NotifyConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub health: crate::health::HealthConfig,
}

/// What is kept, and for how long (`[retention]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Prune at all. With it off, everything is kept forever.
    pub enabled: bool,
    /// Finished root events (with their builds) and events of the log are kept this
    /// many days (a fraction, such as 0.5, keeps hours).
    #[serde(deserialize_with = "positive_days")]
    pub keep_days: f64,
    /// The last this many root events of every upstream are kept however old, so
    /// verdicts and badges always have something to compare with.
    #[serde(deserialize_with = "at_least_one_usize")]
    pub keep_per_upstream: usize,
    /// How often retention looks for what to prune, in milliseconds.
    #[serde(deserialize_with = "at_least_one")]
    pub interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_days: 90.0,
            keep_per_upstream: 20,
            interval_ms: 10 * 60 * 1000,
        }
    }
}

fn positive_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let days = f64::deserialize(d)?;
    if !(days.is_finite() && days > 0.0) {
        return Err(serde::de::Error::custom("must be a number of days above 0"));
    }
    Ok(days)
}

impl RetentionConfig {
    /// How long finished root events and the log are kept.
    pub fn keep(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.keep_days * 24.0 * 3600.0)
    }
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn at_least_one_usize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_least_one(d).map(|n| n as usize)
}

/// The time, as retention reads it.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> conjunction_protocol::Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self::new(
            || conjunction_protocol::Timestamp::from_system_time(std::time::SystemTime::now()),
        )
    }

    pub fn new(now: impl Fn() -> conjunction_protocol::Timestamp + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(now))
    }

    pub fn now(&self) -> conjunction_protocol::Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// `GET /metrics` (`[metrics]` in the config file): off unless enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` to operator tokens (and to `token_file`'s token).
    pub enabled: bool,
    /// A file holding a token that may read `/metrics` and nothing else, for a
    /// scraper. Setting it enables `/metrics`.
    pub token_file: Option<PathBuf>,
    /// The token read from `token_file` at start.
    #[serde(skip)]
    pub token: Option<String>,
}

impl MetricsConfig {
    pub fn is_on(&self) -> bool {
        self.enabled || self.token_file.is_some() || self.token.is_some()
    }

    /// Reads `token_file`, once, at start.
    pub fn load_files(&mut self) -> Result<(), String> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read [metrics] token_file {}: {e}", path.display()))?;
            let token = text.trim();
            if token.len() < 16 {
                return Err(format!(
                    "[metrics] token_file {} holds {} characters; a token needs at least 16",
                    path.display(),
                    token.len()
                ));
            }
            self.token = Some(token.to_owned());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The sources are not repeated in the messages: `anyhow` prints them as causes.
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot keep the operator token at {}", path.display())]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot keep the build token key at {}", path.display())]
    BuildTokenKey {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// The operator tokens to accept. When none are configured, the token in
/// `<data_dir>/operator.token` is used, generated (mode 0600) on first start; the
/// second value is then that file's path.
pub fn operator_tokens(config: &Config) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    if !config.operator_tokens.is_empty() {
        return Ok((config.operator_tokens.clone(), None));
    }
    let path = config.data_dir.join(OPERATOR_TOKEN_FILE);
    let fail = |source| ConfigError::Token {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            return Ok((vec![text.trim().to_owned()], Some(path)))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let token = crate::auth::generate_token("cjo");
    write_private(&path, &token).map_err(fail)?;
    Ok((vec![token], Some(path)))
}

/// The key build tokens are derived from: read from `<data_dir>/build-token.key`, or
/// generated there (mode 0600) on first start. `true` when it was generated now.
pub fn build_token_key(config: &Config) -> Result<(BuildTokens, bool), ConfigError> {
    let path = config.data_dir.join(BUILD_TOKEN_KEY_FILE);
    let fail = |source| ConfigError::BuildTokenKey {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut key = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
                fail(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "it should hold 64 hexadecimal digits; remove it to have a new key made \
                     (triggers still queued are then sent with new tokens)",
                ))
            })?;
            Ok((BuildTokens::new(key), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            write_private(&path, &hex::encode(key)).map_err(fail)?;
            Ok((BuildTokens::new(key), true))
        }
        Err(e) => Err(fail(e)),
    }
}

/// Writes `text` and a newline to a new file only its owner can read, and syncs it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_token_is_generated_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path());
        let (first, path) = operator_tokens(&config).unwrap();
        let (second, _) = operator_tokens(&config).unwrap();
        assert_eq!(first, second);
        let path = path.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_tokens_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.operator_tokens = vec!["cjo_configured".into()];
        let (tokens, path) = operator_tokens(&config).unwrap();
        assert_eq!(tokens, ["cjo_configured"]);
        assert!(path.is_none());
        assert!(!dir.path().join(OPERATOR_TOKEN_FILE).exists());
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let c: FileConfig =
            toml::from_str(include_str!("../../packaging/conjunctiond.toml")).unwrap();
        assert_eq!(c.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(c.dispatch, DispatchConfig::default());
        assert_eq!(c.store, StoreConfig::default());
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.releases, ReleasesConfig::default());
    }

    #[test]
    fn environments_are_listed_in_order_and_checked() {
        let c: FileConfig =
            toml::from_str("[releases]\nenvironments = [\"dev\", \"staging\", \"prod\"]").unwrap();
        assert_eq!(c.releases.environments.names(), ["dev", "staging", "prod"]);
        for bad in ["[]", "[\"dev\", \"dev\"]", "[\"Prod\"]"] {
            let refused =
                toml::from_str::<FileConfig>(&format!("[releases]\nenvironments = {bad}"));
            assert!(refused.is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn retention_takes_whole_or_fractional_days_above_zero() {
        let c: FileConfig = toml::from_str("[retention]\nkeep_days = 90").unwrap();
        assert_eq!(
            c.retention.keep(),
            std::time::Duration::from_secs(90 * 24 * 3600)
        );
        let c: FileConfig = toml::from_str("[retention]\nkeep_days = 0.5").unwrap();
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
                toml::from_str::<FileConfig>(&format!("[retention]\n{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_cache_size_is_given_in_mebibytes_and_not_zero() {
        let c: FileConfig = toml::from_str("[store]\ncache_mib = 256").unwrap();
        assert_eq!(c.store.cache_bytes, 256 << 20);
        let refused = toml::from_str::<FileConfig>("[store]\ncache_mib = 0").unwrap_err();
        assert!(refused.to_string().contains("at least 1"), "{refused}");
        assert!(toml::from_str::<FileConfig>("[store]\ncache_mib = -3").is_err());
    }

    #[test]
    fn the_config_file_refuses_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\ncolour = 1").is_err());
        let c: FileConfig =
            toml::from_str("operator_tokens = [\"a\"]\n[dispatch]\nmax_attempts = 3").unwrap();
        assert_eq!(c.dispatch.max_attempts, 3);
        assert_eq!(c.dispatch.timeout_ms, DispatchConfig::default().timeout_ms);
    }
}
