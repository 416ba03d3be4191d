//! `conjunction apply -f projects.toml`: registers a file of projects.
//!
//! The file holds `[[project]]` tables with an `id` and the fields of
//! `PUT /v1/projects/{id}`. Secret fields (`report_token`, `trigger.token`,
//! `trigger.secret`) may be written `"env:NAME"` to take them from the environment,
//! so the file itself can be committed. The whole file is sent as one list
//! (`PUT /v1/projects`): every project is applied, or none.

use conjunction_protocol::{ProjectEntry, ProjectId, TriggerSpec};
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
    #[error("{}", .0.iter().map(|(p, m)| format!("{p}: {m}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<(ProjectId, String)>),
}

/// Parses a projects file and resolves `env:` secrets with `env`.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ProjectEntry>, ApplyError> {
    let file: ProjectsFile = toml::from_str(text).map_err(|e| ApplyError::Parse(e.to_string()))?;
    let mut out = Vec::with_capacity(file.project.len());
    let mut invalid = Vec::new();
    for mut entry in file.project {
        let id = entry.id.clone();
        let resolve = |field: &'static str, value: &mut Option<String>| -> Result<(), ApplyError> {
            if let Some(var) = value.as_deref().and_then(|v| v.strip_prefix("env:")) {
                let var = var.to_owned();
                *value = Some(env(&var).ok_or_else(|| ApplyError::MissingEnv {
                    project: id.clone(),
                    field,
                    var,
                })?);
            }
            Ok(())
        };
        resolve("report_token", &mut entry.spec.report_token)?;
        if let Some(TriggerSpec::Webhook { token, secret, .. }) = &mut entry.spec.trigger {
            resolve("trigger.token", token)?;
            resolve("trigger.secret", secret)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_missing_env_secret_is_named() {
        let err = parse(FILE, |_| None).unwrap_err();
        assert!(err.to_string().contains("LIB_TOKEN"), "{err}");
    }
}
