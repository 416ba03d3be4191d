//! Jenkins: the description of the upstream's own build (`POST
//! {build}/submitDescription`, Run/Update, an API token so no crumb is needed), the
//! only thing core Jenkins lets an outsider write on a build. The build's URL is the
//! root report's, and must be under the target's instance: the credentials go to no
//! other host.

use super::Shown;
use crate::call::{self, Failure};

/// The build URL `build` if it lies under the instance at `instance`.
fn under(build: &str, instance: &str) -> Option<String> {
    let build = url::Url::parse(build).ok()?;
    let instance = url::Url::parse(instance).ok()?;
    let same_origin = build.origin() == instance.origin();
    let base = instance.path().trim_end_matches('/');
    let inside = build.path().starts_with(&format!("{base}/"));
    (same_origin && inside && build.query().is_none()).then(|| {
        build
            .as_str()
            .split('#')
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned()
    })
}

pub async fn report(
    client: &reqwest::Client,
    instance: &str,
    user: &str,
    token: &str,
    shown: &Shown,
) -> Result<(), Failure> {
    let build = shown
        .build_url
        .as_deref()
        .and_then(|u| under(u, instance))
        .ok_or_else(|| {
            Failure::Refused(format!(
                "the upstream's report names no Jenkins build URL under {instance}, so there is no build to describe"
            ))
        })?;
    let description = format!(
        "conjunction, dependents of {}: {}",
        shown.title(),
        shown.told.line
    );
    let request = client
        .post(format!("{build}/submitDescription"))
        .basic_auth(user, Some(token))
        .form(&[("description", description.as_str())]);
    let target = format!("{build}/submitDescription");
    // Jenkins answers the form with a redirect to the build page (302): that is
    // its success, and the redirect is not followed.
    let response = request.send().await.map_err(|e| Failure::Transient {
        error: call::describe_send_error(&target, &e),
        retry_after: None,
    })?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return Ok(());
    }
    let headers = response.headers().clone();
    let body = call::read_body(response, call::ANSWER_BYTES).await;
    Err(call::judge(
        "Jenkins",
        &format!("build {build}"),
        status,
        &headers,
        &body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_build_on_the_configured_instance_is_described() {
        assert_eq!(
            under(
                "https://ci.example/jenkins/job/lib/12/",
                "https://ci.example/jenkins"
            )
            .as_deref(),
            Some("https://ci.example/jenkins/job/lib/12")
        );
        assert_eq!(
            under(
                "https://evil.example/jenkins/job/lib/12/",
                "https://ci.example/jenkins"
            ),
            None
        );
        assert_eq!(
            under(
                "https://ci.example/jenkinsx/job/lib/12/",
                "https://ci.example/jenkins"
            ),
            None
        );
    }
}
