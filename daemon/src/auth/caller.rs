//! Who is asking: the name and scope behind a person's token or an operator token,
//! and when each person's token was last used, kept to the minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use conjunction_protocol::access::{CallerView, Scope};
use conjunction_protocol::audit::Actor;
use conjunction_protocol::{ProjectId, Timestamp};

/// How often a token's last-used time is written at most: it is kept coarsely, so
/// that using a token is a read and not a write.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// What people's tokens may read (`[access]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Whether viewer tokens see contacts' email addresses. On by default: whom to
    /// contact is the point; a public instance may turn it off, and then viewers see
    /// contacts by name and chat handle only, and no address anywhere.
    pub viewers_see_email: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            viewers_see_email: true,
        }
    }
}

/// A person (or a tool acting for one) with a token the daemon accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, as the audit trail and the log name it.
    pub name: String,
    /// The id of the stored token; none for a token of the operator token files.
    pub token: Option<String>,
    pub scope: Scope,
    /// When the token stops working, if it does.
    pub expires_at: Option<Timestamp>,
}

impl Caller {
    /// A holder of a token from the operator token files.
    pub fn operator() -> Self {
        Self {
            name: "operator".into(),
            token: None,
            scope: Scope::Operator,
            expires_at: None,
        }
    }

    /// `ana (maintainer acme/*)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.scope)
    }

    pub fn manages(&self, project: &ProjectId) -> bool {
        self.scope.manages(project)
    }

    /// Whether this caller is shown email addresses, under `access`.
    pub fn sees_addresses(&self, access: AccessConfig) -> bool {
        access.viewers_see_email || !matches!(self.scope, Scope::Viewer)
    }

    /// The caller as a client is told it (the feed's hello), and as refusals
    /// describe what its token reaches.
    pub fn view(&self) -> CallerView {
        CallerView {
            name: self.name.clone(),
            scope: self.scope.clone(),
        }
    }

    /// The caller as the audit trail names it.
    pub fn actor(&self) -> Actor {
        Actor::Person {
            name: self.name.clone(),
            scope: self.scope.clone(),
        }
    }

    /// Whether this caller may see and revoke the person's token `id` of `scope`,
    /// issued by the token `issuer`: an operator any; anyone its own token and the
    /// tokens it issued; a maintainer the maintainer tokens that reach nothing it
    /// does not. A maintainer does not reach viewer tokens others issued: viewers are
    /// not in a namespace.
    pub fn may_revoke(&self, id: &str, scope: &Scope, issuer: Option<&str>) -> bool {
        let mine = self.token.as_deref();
        self.scope.is_operator()
            || mine.is_some_and(|m| m == id || Some(m) == issuer)
            || (matches!(
                (&self.scope, scope),
                (Scope::Maintainer { .. }, Scope::Maintainer { .. })
            ) && self.scope.may_issue(scope))
    }
}

/// When each person's token was last written down as used.
#[derive(Debug, Default)]
pub struct LastUsed(Mutex<HashMap<String, Instant>>);

impl LastUsed {
    /// Whether token `id`'s use at `now` should be written: the first use since the
    /// daemon started, or the first one [`LAST_USED_EVERY`] after the last written.
    pub fn due(&self, id: &str, now: Instant) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(id) {
            Some(at) if now.duration_since(*at) < LAST_USED_EVERY => false,
            _ => {
                seen.insert(id.to_owned(), now);
                true
            }
        }
    }

    /// Forgets a revoked token.
    pub fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::access::ProjectPattern;

    fn maintainer(of: &str, token: &str) -> Caller {
        Caller {
            name: token.into(),
            token: Some(token.into()),
            scope: Scope::Maintainer {
                of: vec![ProjectPattern::parse(of).unwrap()],
            },
            expires_at: None,
        }
    }

    #[test]
    fn a_maintainer_revokes_its_own_its_issued_and_narrower_maintainer_tokens() {
        let acme = maintainer("acme/*", "t1");
        let app = Scope::Maintainer {
            of: vec![ProjectPattern::parse("acme/app").unwrap()],
        };
        let other = Scope::Maintainer {
            of: vec![ProjectPattern::parse("other/*").unwrap()],
        };
        assert!(acme.may_revoke("t1", &acme.scope, None));
        assert!(acme.may_revoke("t2", &app, None));
        assert!(!acme.may_revoke("t3", &other, None));
        assert!(acme.may_revoke("t4", &Scope::Viewer, Some("t1")));
        assert!(!acme.may_revoke("t5", &Scope::Viewer, Some("t9")));
        assert!(Caller::operator().may_revoke("t7", &Scope::Operator, None));
        let viewer = Caller {
            name: "v".into(),
            token: Some("t8".into()),
            scope: Scope::Viewer,
            expires_at: None,
        };
        assert!(viewer.may_revoke("t8", &Scope::Viewer, None));
        assert!(!viewer.may_revoke("t4", &Scope::Viewer, Some("t1")));
    }

    #[test]
    fn a_token_is_written_down_as_used_at_most_once_a_minute() {
        let used = LastUsed::default();
        let t = Instant::now();
        assert!(used.due("a", t));
        assert!(!used.due("a", t + Duration::from_secs(59)));
        assert!(used.due("b", t + Duration::from_secs(1)));
        assert!(used.due("a", t + LAST_USED_EVERY));
        used.forget("a");
        assert!(used.due("a", t + LAST_USED_EVERY + Duration::from_secs(1)));
    }
}
