//! Whether a verified id token's claims are those of an identity a project trusts:
//! every configured id must be the claim's exactly, and the job must be the trusted
//! workflow or pipeline's own.

use conjunction_protocol::identity::TrustedCi;
use serde_json::{Map, Value};

/// Why the claims are not the identity's, in a sentence that names the claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

pub fn matches(identity: &TrustedCi, claims: &Map<String, Value>) -> Result<(), Mismatch> {
    // Issuers write ids as strings (GitHub, GitLab) or numbers; both read the same.
    let claim = |name: &str| -> Option<String> {
        match claims.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let must = |name: &str, wanted: &str| -> Result<(), Mismatch> {
        match claim(name) {
            Some(got) if got == wanted => Ok(()),
            Some(got) => Err(Mismatch(format!(
                "the token's {name} is {got:?}, not the trusted {wanted:?}"
            ))),
            None => Err(Mismatch(format!("the token has no {name} claim"))),
        }
    };
    let optional = |name: &str, wanted: &Option<String>| match wanted {
        Some(w) => must(name, w),
        None => Ok(()),
    };
    match identity {
        TrustedCi::Github {
            repository_id,
            repository_owner_id,
            workflow,
            git_ref,
            environment,
            ..
        } => {
            must("repository_id", repository_id)?;
            must("repository_owner_id", repository_owner_id)?;
            // A pull_request_target job runs with the base repository's identity on a
            // fork's code.
            if claim("event_name").as_deref() == Some("pull_request_target") {
                return Err(Mismatch("a pull_request_target job does not report: it runs another repository's code with this one's identity".into()));
            }
            // The job's own workflow file, in this repository: a reusable workflow
            // called from elsewhere, or another file here, is not the trusted one.
            let repository = claim("repository")
                .ok_or_else(|| Mismatch("the token has no repository claim".into()))?;
            let job = claim("job_workflow_ref")
                .ok_or_else(|| Mismatch("the token has no job_workflow_ref claim".into()))?;
            let file = job
                .split_once('@')
                .map(|(path, _)| path)
                .and_then(|path| path.strip_prefix(&format!("{repository}/.github/workflows/")));
            if file != Some(workflow.as_str()) {
                return Err(Mismatch(format!(
                    "the job runs {job:?}, not {repository}'s .github/workflows/{workflow}"
                )));
            }
            optional("ref", git_ref)?;
            optional("environment", environment)
        }
        TrustedCi::Gitlab {
            project_id,
            namespace_id,
            git_ref,
            protected,
            ..
        } => {
            must("project_id", project_id)?;
            optional("namespace_id", namespace_id)?;
            optional("ref", git_ref)?;
            if *protected {
                must("ref_protected", "true")?;
            }
            Ok(())
        }
        TrustedCi::Buildkite {
            organization_id,
            pipeline_id,
            branch,
            ..
        } => {
            must("organization_id", organization_id)?;
            must("pipeline_id", pipeline_id)?;
            optional("build_branch", branch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn github() -> TrustedCi {
        serde_json::from_value(json!({"kind": "github", "repository_id": "123456",
            "repository_owner_id": "42", "workflow": "release.yml", "ref": "refs/heads/main",
            "repository": "acme/lib"}))
        .unwrap()
    }

    /// Claims as GitHub's documented example has them, for acme/lib's release.yml.
    fn github_claims() -> Map<String, Value> {
        json!({"repository": "acme/lib", "repository_id": "123456", "repository_owner": "acme",
            "repository_owner_id": "42", "workflow": "Release", "ref": "refs/heads/main",
            "event_name": "push", "job_workflow_ref": "acme/lib/.github/workflows/release.yml@refs/heads/main"})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn a_github_workflow_is_matched_on_ids_and_its_own_file() {
        assert_eq!(matches(&github(), &github_claims()), Ok(()));
        let refused = |change: &dyn Fn(&mut Map<String, Value>)| {
            let mut c = github_claims();
            change(&mut c);
            matches(&github(), &c).unwrap_err().0
        };
        // The repository deleted and re-created under the same name has another id.
        assert!(refused(&|c| {
            c.insert("repository_id".into(), json!("999999"));
        })
        .contains("repository_id"));
        assert!(refused(&|c| {
            c.insert("repository_owner_id".into(), json!("7"));
        })
        .contains("repository_owner_id"));
        assert!(refused(&|c| {
            c.insert(
                "job_workflow_ref".into(),
                json!("acme/lib/.github/workflows/test.yml@refs/heads/main"),
            );
        })
        .contains("not acme/lib's"));
        // A reusable workflow of another repository, called by ours.
        assert!(refused(&|c| {
            c.insert(
                "job_workflow_ref".into(),
                json!("evil/tools/.github/workflows/release.yml@main"),
            );
        })
        .contains("evil/tools"));
        assert!(refused(&|c| {
            c.insert("ref".into(), json!("refs/heads/feature"));
        })
        .contains("ref"));
        assert!(refused(&|c| {
            c.insert("event_name".into(), json!("pull_request_target"));
        })
        .contains("pull_request_target"));
        assert!(refused(&|c| {
            c.remove("repository_id");
        })
        .contains("no repository_id"));
    }

    #[test]
    fn gitlab_and_buildkite_are_matched_on_their_ids() {
        let gitlab: TrustedCi =
            serde_json::from_value(json!({"kind": "gitlab", "project_id": "4711",
            "namespace_id": "17", "protected": true}))
            .unwrap();
        let claims = |protected: &str, project: &str| {
            json!({"project_id": project, "namespace_id": "17", "ref": "main", "ref_protected": protected})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(matches(&gitlab, &claims("true", "4711")), Ok(()));
        assert!(matches(&gitlab, &claims("false", "4711")).is_err());
        assert!(matches(&gitlab, &claims("true", "4712")).is_err());
        let buildkite: TrustedCi = serde_json::from_value(json!({"kind": "buildkite",
            "organization_id": "0190a1b2-org", "pipeline_id": "0190a1b2-pipe", "branch": "main"}))
        .unwrap();
        let c = json!({"organization_id": "0190a1b2-org", "pipeline_id": "0190a1b2-pipe", "build_branch": "main"});
        assert_eq!(matches(&buildkite, c.as_object().unwrap()), Ok(()));
        let c =
            json!({"organization_slug": "acme", "pipeline_slug": "lib", "build_branch": "main"});
        assert!(matches(&buildkite, c.as_object().unwrap())
            .unwrap_err()
            .0
            .contains("no organization_id"));
    }

    #[test]
    fn identities_are_configured_with_ids_not_names() {
        let named: TrustedCi =
            serde_json::from_value(json!({"kind": "github", "repository_id": "acme/lib",
            "repository_owner_id": "42", "workflow": "release.yml"}))
            .unwrap();
        assert!(named
            .validate("trusted_ci[0]")
            .unwrap_err()
            .message
            .contains("not a name"));
        let path: TrustedCi =
            serde_json::from_value(json!({"kind": "github", "repository_id": "1",
            "repository_owner_id": "42", "workflow": ".github/workflows/release.yml"}))
            .unwrap();
        assert!(path.validate("trusted_ci[0]").is_err());
        assert!(github().validate("trusted_ci[0]").is_ok());
        assert_eq!(
            github().issuer(),
            conjunction_protocol::identity::GITHUB_ISSUER
        );
        assert_eq!(github().to_string(), "GitHub acme/lib release.yml");
    }
}
