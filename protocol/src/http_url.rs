//! HTTP URLs, read by one parser: the `url` crate, which the daemon's HTTP client
//! (reqwest) uses to send. Registration checks a URL with it, the API shows the URL
//! it parsed, and the dispatcher sends to that same URL, so what a person sees is
//! where requests go.
//!
//! A URL that other readers would take differently is refused: a backslash (which
//! WHATWG parsers read as `/`), a host that parsing changes (`0x7f.1` is 127.0.0.1,
//! `%65xample.com` is example.com), an `@` inside the user info or in the path. Messages never repeat
//! the URL, which may hold credentials.

use url::Url;

use crate::error::ValidationError;
use crate::limits::MAX_URL;
use crate::text::{check_text, Layout};

/// Parses `raw` as an `http://` or `https://` URL that reads the same to everyone.
/// An http(s) URL of at most [`MAX_URL`] bytes that reads the same to everyone (see
/// [`parse`]).
pub(crate) fn check_url(field: &str, url: &str) -> Result<Url, ValidationError> {
    parse(field, url, MAX_URL)
}

pub fn parse(field: &str, raw: &str, max: usize) -> Result<Url, ValidationError> {
    let refuse = |why: &str| Err(ValidationError::new(field, format!("{field} {why}")));
    check_text(field, raw, max, true, Layout::Line)?;
    if !raw.chars().all(|c| c.is_ascii_graphic()) {
        return refuse("must be printable ASCII without spaces; percent-encode other characters");
    }
    if raw.contains('\\') {
        return refuse("must not contain a backslash, which URL parsers read differently");
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return refuse("must be an http:// or https:// URL");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return refuse("must be an http:// or https:// URL");
    }
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => return refuse(&format!("is not a valid URL ({e})")),
    };
    // The authority as a person reads it: up to the first `/`, `?` or `#`, with the
    // user info before the last `@`.
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    if userinfo.is_some_and(|u| u.contains('@')) {
        return refuse("has an @ in its user info; percent-encode it as %40");
    }
    if url.path().contains('@') {
        // `https://b/t:pw@ci.example/` goes to host b, but reads as credentials for
        // ci.example, and its path is shown.
        return refuse(
            "has an @ in its path, where it reads as credentials; percent-encode it as %40",
        );
    }
    let (host, port) = split_port(host_port);
    if url.host_str().is_none_or(|h| !h.eq_ignore_ascii_case(host)) {
        return refuse("has a host that does not read as written; write the host plainly");
    }
    if let Some(port) = port {
        if port.parse::<u16>().ok() != url.port_or_known_default() {
            return refuse("has a port that does not read as written");
        }
    }
    Ok(url)
}

/// `host[:port]`, with IPv6 literals kept in their brackets.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    let after_literal = host_port.rfind(']').map_or(0, |i| i + 1);
    match host_port[after_literal..].rfind(':') {
        Some(i) => {
            let at = after_literal + i;
            (&host_port[..at], Some(&host_port[at + 1..]))
        }
        None => (host_port, None),
    }
}

/// Whether the URL carries a user name or password.
pub fn has_credentials(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// The URL as it may be shown: scheme, host, port and path, without user info, query
/// or fragment, where credentials hide.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
}

/// [`redact`] for a stored string; one that does not parse is not shown at all.
pub fn redact_str(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => redact(&url),
        Err(_) => "(a URL that does not parse)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 2048;

    #[test]
    fn plain_urls_are_taken_and_shown_without_credentials() {
        for (raw, shown) in [
            ("https://ci.example/hook", "https://ci.example/hook"),
            (
                "https://CI.Example.com:443/hook",
                "https://ci.example.com/hook",
            ),
            (
                "http://127.0.0.1:8080/x?token=abc#frag",
                "http://127.0.0.1:8080/x",
            ),
            (
                "https://bot:hunter2@ci.example/hook?t=abc",
                "https://ci.example/hook",
            ),
            ("http://[::1]:9000/hook", "http://[::1]:9000/hook"),
            ("https://ci.example", "https://ci.example/"),
        ] {
            let url = parse("trigger.url", raw, MAX).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(redact(&url), shown);
            assert_eq!(redact_str(raw), shown);
        }
    }

    #[test]
    fn urls_that_read_differently_to_different_parsers_are_refused_without_echo() {
        for raw in [
            // Shown as ci.good.example by a naive reader, sent to 127.0.0.2.
            "http://127.0.0.2:18986\\@ci.good.example/hook",
            // Malformed user info: the password would be taken for a port or path.
            "http://u:SECRET/slashpw@h/ok",
            "http://u:SECRET?qpw@h/",
            "http://u:SECRET#pw@h/",
            // Hosts that parsing rewrites.
            "http://0x7f.1/hook",
            "http://2130706433/hook",
            "http://%65xample.com/hook",
            "http://a@b@c.example/",
            "https://b/t:SECRET@ci.example/hook",
            "http://h.example:0x50/",
            // Not http, or no host, or spaces.
            "ftp://ci.example/",
            "javascript:alert(1)",
            "http:///path",
            "https://ci.example/a b",
            "https://ci.example/\u{202E}",
        ] {
            let e = parse("trigger.url", raw, MAX).expect_err(raw);
            assert_eq!(e.field, "trigger.url");
            for secret in ["SECRET", "18986", "good", "hunter"] {
                assert!(!e.message.contains(secret), "{raw}: {e}");
            }
        }
    }

    #[test]
    fn credentials_are_seen_in_user_name_or_password() {
        let with = |raw| has_credentials(&parse("u", raw, MAX).unwrap());
        assert!(with("https://bot:pw@ci.example/"));
        assert!(with("https://bot@ci.example/"));
        assert!(with("https://:pw@ci.example/"));
        assert!(!with("https://ci.example/"));
    }
}
