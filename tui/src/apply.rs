//! `conjunction apply -f projects.toml`: registers a file of projects.
//!
//! The file holds `[[project]]` tables with an `id` and the fields of
//! `PUT /v1/projects/{id}`. Every secret field (`report_token`, the trigger's `token`,
//! `secret` and `api_token`, the source's `secret`, `token` and `signing_token`) may
//! be written `"env:NAME"` to take it from the environment, or `"file:PATH"` to take
//! it from a file (its first line; a relative path is read from the projects file's
//! directory), so the file itself can be committed. The whole file is sent as one
//! list (`PUT /v1/projects`): every project is applied, or none.

use std::path::{Path, PathBuf};

use conjunction_protocol::{ProjectEntry, ProjectId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectsFile {
    #[serde(default)]
    pub project: Vec<ProjectEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the projects file is not valid: {0}")]
    Parse(String),
    #[error("{project}: {field} names the environment variable {var}, which is not set")]
    MissingEnv {
        project: ProjectId,
        field: &'static str,
        var: String,
    },
    #[error("{project}: {field} names the file {}, which cannot be read: {reason}", path.display())]
    UnreadableFile {
        project: ProjectId,
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{}", .0.iter().map(|(p, m)| format!("{p}: {m}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<(ProjectId, String)>),
}

/// Where `env:` and `file:` secrets are looked up.
pub struct Secrets<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The directory relative `file:` paths start from.
    pub dir: &'a Path,
}

/// Parses a projects file and resolves `env:` secrets with `env`, and `file:`
/// secrets relative to the current directory.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ProjectEntry>, ApplyError> {
    parse_with(
        text,
        &Secrets {
            env: &env,
            dir: Path::new("."),
        },
    )
}

pub fn parse_with(text: &str, secrets: &Secrets<'_>) -> Result<Vec<ProjectEntry>, ApplyError> {
    let file: ProjectsFile = toml::from_str(text).map_err(|e| ApplyError::Parse(e.to_string()))?;
    let mut out = Vec::with_capacity(file.project.len());
    let mut invalid = Vec::new();
    for mut entry in file.project {
        let id = entry.id.clone();
        let spec = &mut entry.spec;
        let mut fields: Vec<(&'static str, &mut String)> = Vec::new();
        if let Some(t) = &mut spec.report_token {
            fields.push(("report_token", t));
        }
        if let Some(t) = &mut spec.trigger {
            fields.extend(t.secrets_mut());
        }
        if let Some(s) = &mut spec.source {
            fields.extend(s.secrets_mut());
        }
        for rule in &mut spec.notify {
            fields.extend(rule.channel.secrets_mut());
        }
        for target in &mut spec.report_to {
            fields.extend(target.forge.secrets_mut());
        }
        for (field, value) in fields {
            resolve(&id, field, value, secrets)?;
        }
        match entry.spec.validate(&entry.id) {
            Ok(()) => out.push(entry),
            Err(e) => invalid.push((entry.id, e.message)),
        }
    }
    if invalid.is_empty() {
        Ok(out)
    } else {
        Err(ApplyError::Invalid(invalid))
    }
}

/// Replaces an `env:NAME` or `file:PATH` reference with the secret it names.
fn resolve(
    project: &ProjectId,
    field: &'static str,
    value: &mut String,
    secrets: &Secrets<'_>,
) -> Result<(), ApplyError> {
    if let Some(var) = value.strip_prefix("env:") {
        *value = (secrets.env)(var).ok_or_else(|| ApplyError::MissingEnv {
            project: project.clone(),
            field,
            var: var.to_owned(),
        })?;
    } else if let Some(path) = value.strip_prefix("file:") {
        let path = secrets.dir.join(path);
        let text = std::fs::read_to_string(&path).map_err(|e| ApplyError::UnreadableFile {
            project: project.clone(),
            field,
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // A token is the file's first line; a PEM key (a GitHub App's) is all of it.
        *value = if text.trim_start().starts_with("-----BEGIN ") {
            text.trim().to_owned() + "\n"
        } else {
            text.lines().next().unwrap_or_default().trim().to_owned()
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::TriggerSpec;

    const FILE: &str = r#"
[[project]]
id = "acme/lib"
name = "Acme Lib"
report_token = "env:LIB_TOKEN"

[[project]]
id = "acme/app"
name = "Acme App"
contacts = [{ name = "Ana Ortiz", email = "ana@acme.example", chat = "@ana", role = "maintainer" }]
depends_on = [{ project = "acme/lib", range = "^1.2" }]
trigger = { kind = "webhook", url = "https://ci.example/hook", secret = "env:APP_SECRET" }
"#;

    #[test]
    fn env_secrets_are_resolved() {
        let env = |k: &str| match k {
            "LIB_TOKEN" => Some("lib-token-0123456789".to_owned()),
            "APP_SECRET" => Some("s3cret".to_owned()),
            _ => None,
        };
        let entries = parse(FILE, env).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].spec.report_token.as_deref(),
            Some("lib-token-0123456789")
        );
        match &entries[1].spec.trigger {
            Some(TriggerSpec::Webhook { secret, .. }) => {
                assert_eq!(secret.as_deref(), Some("s3cret"))
            }
            other => panic!("unexpected trigger {other:?}"),
        }
    }

    #[test]
    fn every_invalid_project_is_named_and_unknown_fields_are_refused() {
        let text = r#"
[[project]]
id = "acme/a"
name = ""

[[project]]
id = "acme/b"
name = "B"
depends_on = [{ project = "acme/b" }]
"#;
        let err = parse(text, |_| None).unwrap_err().to_string();
        assert!(err.contains("acme/a: name must not be empty"), "{err}");
        assert!(
            err.contains("acme/b: acme/b cannot depend on itself"),
            "{err}"
        );
        let typo = "[[project]]\nid = \"acme/a\"\nname = \"A\"\ndepend_on = []\n";
        assert!(
            parse(typo, |_| None).is_err(),
            "a misspelt field is refused"
        );
    }

    #[test]
    fn a_forge_s_app_key_comes_from_a_file_and_its_token_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
        std::fs::write(dir.path().join("app.pem"), pem).unwrap();
        let text = r#"
[[project]]
id = "acme/lib"
name = "Lib"

[[project.report_to]]
kind = "github"
repo = "acme/lib"
app = { id = "31337", private_key = "file:app.pem" }

[[project.report_to]]
kind = "gitlab"
url = "https://gitlab.example"
project = "acme/lib"
token = "env:GITLAB_TOKEN"
needs_bump_fails = true
"#;
        let env = |k: &str| (k == "GITLAB_TOKEN").then(|| "glpat-x".to_owned());
        let entries = parse_with(
            text,
            &Secrets {
                env: &env,
                dir: dir.path(),
            },
        )
        .unwrap();
        let mut spec = entries[0].spec.clone();
        let secrets: Vec<String> = spec
            .report_to
            .iter_mut()
            .flat_map(|t| t.forge.secrets_mut().into_iter().map(|(_, v)| v.clone()))
            .collect();
        assert!(
            secrets[0].starts_with("-----BEGIN RSA PRIVATE KEY-----\nMIIE"),
            "{secrets:?}"
        );
        assert_eq!(secrets[1], "glpat-x");
        assert!(spec.report_to[1].needs_bump_fails);
    }

    #[test]
    fn native_secrets_come_from_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gh-token"), "ghp_fromfile\n").unwrap();
        let text = r#"
[[project]]
id = "acme/app"
name = "App"
trigger = { kind = "github", repo = "acme/app", workflow = "downstream.yml", ref = "main", token = "file:gh-token" }
source = { kind = "github", secret = "env:HOOK_SECRET" }
"#;
        let env = |k: &str| (k == "HOOK_SECRET").then(|| "whsecret".to_owned());
        let entries = parse_with(
            text,
            &Secrets {
                env: &env,
                dir: dir.path(),
            },
        )
        .unwrap();
        let mut spec = entries[0].spec.clone();
        let trigger = spec.trigger.as_mut().unwrap();
        assert_eq!(*trigger.secrets_mut()[0].1, "ghp_fromfile");
        let source = spec.source.as_mut().unwrap();
        assert_eq!(*source.secrets_mut()[0].1, "whsecret");
        let missing = text.replace("file:gh-token", "file:nope");
        let err = parse_with(
            &missing,
            &Secrets {
                env: &env,
                dir: dir.path(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("trigger.token") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn every_example_file_is_accepted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let env = |_: &str| Some("a-secret-from-the-environment".to_owned());
                let entries = parse_with(
                    &text,
                    &Secrets {
                        env: &env,
                        dir: &dir,
                    },
                )
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!entries.is_empty(), "{}", path.display());
                checked += 1;
            }
        }
        assert!(
            checked >= 2,
            "examples/projects.toml and examples/native.toml"
        );
    }

    #[test]
    fn a_missing_env_secret_is_named() {
        let err = parse(FILE, |_| None).unwrap_err();
        assert!(err.to_string().contains("LIB_TOKEN"), "{err}");
    }
}
