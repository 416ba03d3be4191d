//! The secrets the daemon keeps in its data directory: the operator token generated on
//! first start (when none is configured) and the key build tokens are derived from.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::BuildTokens;

/// The generated operator token inside the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The key build tokens are derived from, inside the data directory.
pub const BUILD_TOKEN_KEY_FILE: &str = "build-token.key";

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    // The sources are not repeated in the messages: `anyhow` prints them as causes.
    #[error("cannot keep the operator token at {}", path.display())]
    Operator {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot keep the build token key at {}", path.display())]
    BuildTokenKey {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The operator tokens to accept. When none are configured, the token in
/// `<data_dir>/operator.token` is used, generated (mode 0600) on first start; the
/// second value is then that file's path.
pub fn operator_tokens(
    data_dir: &Path,
    configured: &[String],
) -> Result<(Vec<String>, Option<PathBuf>), TokenFileError> {
    if !configured.is_empty() {
        return Ok((configured.to_vec(), None));
    }
    let path = data_dir.join(OPERATOR_TOKEN_FILE);
    let fail = |source| TokenFileError::Operator {
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
    let token = super::generate_token("cjo");
    write_private(&path, &token).map_err(fail)?;
    Ok((vec![token], Some(path)))
}

/// The key build tokens are derived from: read from `<data_dir>/build-token.key`, or
/// generated there (mode 0600) on first start. `true` when it was generated now.
pub fn build_token_key(data_dir: &Path) -> Result<(BuildTokens, bool), TokenFileError> {
    let path = data_dir.join(BUILD_TOKEN_KEY_FILE);
    let fail = |source| TokenFileError::BuildTokenKey {
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
        let (first, path) = operator_tokens(dir.path(), &[]).unwrap();
        let (second, _) = operator_tokens(dir.path(), &[]).unwrap();
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
        let (tokens, path) = operator_tokens(dir.path(), &["cjo_configured".into()]).unwrap();
        assert_eq!(tokens, ["cjo_configured"]);
        assert!(path.is_none());
        assert!(!dir.path().join(OPERATOR_TOKEN_FILE).exists());
    }
}
