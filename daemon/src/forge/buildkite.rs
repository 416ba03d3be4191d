//! Buildkite: an annotation on the upstream's own build through the REST API
//! (`write_builds`), under one context that each update rewrites; the build's number
//! comes from its run (a Buildkite webhook) or its URL (`…/builds/42`).

use conjunction_protocol::forge::{Outlook, BUILDKITE_API};

use super::{table, Shown};
use crate::call::{self, Failure};

/// One annotation per build may have a given context.
const CONTEXT: &str = "conjunction";
/// The agent's limit on an annotation's body, kept by the REST call too.
const MAX_BODY: usize = 1024 * 1024;

/// The build number in a Buildkite build URL of `org`'s `pipeline`.
fn number_in(url: &str, org: &str, pipeline: &str) -> Option<u64> {
    let parsed = url::Url::parse(url).ok()?;
    let parts: Vec<&str> = parsed.path_segments()?.collect();
    match parts.as_slice() {
        [o, p, "builds", n, ..] if *o == org && *p == pipeline => n.parse().ok(),
        _ => None,
    }
}

pub async fn report(
    client: &reqwest::Client,
    api_url: Option<&str>,
    org: &str,
    pipeline: &str,
    token: &str,
    shown: &Shown,
) -> Result<(), Failure> {
    let number = shown
        .build_number
        .or_else(|| shown.build_url.as_deref().and_then(|u| number_in(u, org, pipeline)))
        .ok_or_else(|| {
            Failure::Refused(format!(
                "the upstream's Buildkite build is not known: report with its build URL (https://buildkite.com/{org}/{pipeline}/builds/N)"
            ))
        })?;
    let style = match shown.told.outlook {
        Outlook::Pending => "info",
        Outlook::Success => "success",
        Outlook::Failure => "error",
    };
    let mut body = format!(
        "#### Dependents of {}\n\n**{}**\n\n",
        shown.title(),
        shown.told.line
    );
    let budget = MAX_BODY - body.len();
    body.push_str(&table::markdown(shown, budget));
    let api = api_url.unwrap_or(BUILDKITE_API).trim_end_matches('/');
    call::send(
        client,
        call::bearer(
            client.post(format!(
                "{api}/v2/organizations/{org}/pipelines/{pipeline}/builds/{number}/annotations"
            )),
            token,
        )
        .json(&serde_json::json!({
            "body": body,
            "style": style,
            "context": CONTEXT,
            "append": false,
        })),
        "Buildkite",
        &format!("build {number} of {org}/{pipeline}"),
        |_, _, _| async { Ok(()) },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_number_is_read_from_its_own_pipeline_s_url_only() {
        assert_eq!(
            number_in(
                "https://buildkite.com/acme/lib/builds/42#job",
                "acme",
                "lib"
            ),
            Some(42)
        );
        assert_eq!(
            number_in("https://buildkite.com/acme/other/builds/42", "acme", "lib"),
            None
        );
    }
}
