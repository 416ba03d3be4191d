//! Where the command line and the terminal UI find the daemon: flags, then
//! `CONJUNCTION_URL` / `CONJUNCTION_TOKEN`, then the config file in the platform's
//! config directory (`config.toml` with `url` and `token`), then the default address.

use std::path::PathBuf;

use serde::Deserialize;

pub const DEFAULT_URL: &str = "http://127.0.0.1:7431";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// The resolved connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub url: String,
    pub token: Option<String>,
}

/// The config file's path on this platform.
pub fn config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "conjunction", "conjunction")
        .map(|d| d.config_dir().join("config.toml"))
}

#[derive(Debug, thiserror::Error)]
#[error("the config file {path} is not valid: {message}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

/// Resolves the connection from flags, the environment and the config file.
pub fn resolve(
    flag_url: Option<String>,
    flag_token: Option<String>,
    env: impl Fn(&str) -> Option<String>,
    file: Option<PathBuf>,
) -> Result<Connection, ConfigError> {
    let from_file = match file {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                path: path.clone(),
                message: e.to_string(),
            })?;
            toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError {
                path,
                message: e.to_string(),
            })?
        }
        _ => FileConfig::default(),
    };
    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    Ok(Connection {
        url: non_empty(flag_url)
            .or_else(|| non_empty(env("CONJUNCTION_URL")))
            .or(from_file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
        token: non_empty(flag_token)
            .or_else(|| non_empty(env("CONJUNCTION_TOKEN")))
            .or(from_file.token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "url = \"http://file:1\"\ntoken = \"file-token\"\n").unwrap();
        let env = |k: &str| (k == "CONJUNCTION_URL").then(|| "http://env:2".to_owned());
        let c = resolve(None, None, env, Some(file.clone())).unwrap();
        assert_eq!(c.url, "http://env:2");
        assert_eq!(c.token.as_deref(), Some("file-token"));
        let c = resolve(
            Some("http://flag:3".into()),
            Some("t".into()),
            env,
            Some(file),
        )
        .unwrap();
        assert_eq!(
            c,
            Connection {
                url: "http://flag:3".into(),
                token: Some("t".into())
            }
        );
        let c = resolve(None, None, |_| None, None).unwrap();
        assert_eq!(c.url, DEFAULT_URL);
    }
}
