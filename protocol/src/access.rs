//! Who may do what: the roles a person's token carries, the projects a maintainer
//! reaches, and the bodies of the token API (`/v1/tokens`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ValidationError;
use crate::id::ProjectId;
use crate::limits::{MAX_PROJECT_ID, MAX_SHORT_TEXT};
use crate::time::Timestamp;

/// Most patterns one maintainer token lists.
pub const MAX_PATTERNS: usize = 32;

/// The projects a maintainer reaches: one project (`acme/app`) or a namespace with
/// everything under it (`acme/*` reaches `acme/app` and `acme/tools/cli`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectPattern {
    /// The project id, or the namespace without its `/*`.
    path: String,
    namespace: bool,
}

impl ProjectPattern {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let fail = |why: &str| {
            ValidationError::new(
                "scope",
                format!(
                    "{s:?} is not a project pattern: {why} (expected \"acme/app\" or \"acme/*\")"
                ),
            )
        };
        if s.len() > MAX_PROJECT_ID {
            return Err(fail("it is longer than 128 characters"));
        }
        match s.strip_suffix("/*") {
            Some(namespace) => {
                if namespace.is_empty() {
                    return Err(fail(
                        "a namespace is needed before '/*'; an operator token reaches everything",
                    ));
                }
                // A namespace is a project id's leading segments: check them as the
                // segments of an id would be checked.
                ProjectId::parse(&format!("{namespace}/x")).map_err(|_| {
                    fail("namespace segments may only hold a-z, 0-9, '.', '_' and '-'")
                })?;
                Ok(Self {
                    path: namespace.to_owned(),
                    namespace: true,
                })
            }
            None => {
                if s.contains('*') {
                    return Err(fail("'*' may only stand alone as the last segment"));
                }
                let id = ProjectId::parse(s).map_err(|e| fail(&e.message))?;
                Ok(Self {
                    path: id.as_str().to_owned(),
                    namespace: false,
                })
            }
        }
    }

    /// Whether `project` is this project or under this namespace.
    pub fn covers(&self, project: &ProjectId) -> bool {
        let id = project.as_str();
        if self.namespace {
            id.strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        } else {
            id == self.path
        }
    }

    /// Whether everything this pattern reaches is reached by `wider` too.
    pub fn within(&self, wider: &ProjectPattern) -> bool {
        if !wider.namespace {
            return !self.namespace && self.path == wider.path;
        }
        self.path == wider.path
            || self
                .path
                .strip_prefix(wider.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for ProjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if self.namespace {
            f.write_str("/*")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ProjectPattern {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ProjectPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProjectPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a person's token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case", try_from = "ScopeWire")]
pub enum Scope {
    /// Read everything but secrets: projects, cascades, releases, impact previews
    /// and the feed.
    Viewer,
    /// What a viewer may, and manage the projects it reaches: register and change
    /// them, rotate their report tokens, rebuild their builds, test their notify
    /// rules, and issue viewer tokens and maintainer tokens no wider than its own.
    Maintainer { of: Vec<ProjectPattern> },
    /// Everything, including tokens for others.
    Operator,
}

/// A scope as JSON has it. Read through this so that a field a role does not take
/// (`of` on a viewer) is refused: serde lets extra fields of a tagged unit variant
/// through.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeWire {
    role: Role,
    of: Option<Vec<ProjectPattern>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Role {
    Viewer,
    Maintainer,
    Operator,
}

impl TryFrom<ScopeWire> for Scope {
    type Error = String;
    fn try_from(wire: ScopeWire) -> Result<Self, String> {
        match (wire.role, wire.of) {
            (Role::Maintainer, Some(of)) => Ok(Scope::Maintainer { of }),
            (Role::Maintainer, None) => Err("a maintainer scope needs `of`: the projects or namespaces it reaches, such as [\"acme/*\"]".into()),
            (Role::Viewer, None) => Ok(Scope::Viewer),
            (Role::Operator, None) => Ok(Scope::Operator),
            (_, Some(_)) => Err("`of` is for maintainer scopes only; a viewer reads everything and an operator does everything".into()),
        }
    }
}

impl Scope {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Scope::Maintainer { of } = self {
            if of.is_empty() {
                return Err(ValidationError::new(
                    "scope.of",
                    "a maintainer token needs at least one project or namespace, such as \"acme/*\"",
                ));
            }
            if of.len() > MAX_PATTERNS {
                return Err(ValidationError::new(
                    "scope.of",
                    format!(
                        "a maintainer token may list at most {MAX_PATTERNS} projects or namespaces"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether this scope may change `project` (its settings, builds and rules).
    pub fn manages(&self, project: &ProjectId) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Maintainer { of } => of.iter().any(|p| p.covers(project)),
            Scope::Viewer => false,
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Scope::Operator)
    }

    /// Whether a holder of this scope may issue (or revoke) a token of `other`'s:
    /// an operator any; a maintainer viewer tokens and maintainer tokens that reach
    /// nothing it does not; a viewer none.
    pub fn may_issue(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Operator, _) => true,
            (Scope::Maintainer { .. }, Scope::Viewer) => true,
            (Scope::Maintainer { of: mine }, Scope::Maintainer { of: theirs }) => {
                theirs.iter().all(|t| mine.iter().any(|m| t.within(m)))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Scope {
    /// `viewer`, `maintainer acme/*, other/app`, `operator`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Viewer => f.write_str("viewer"),
            Scope::Operator => f.write_str("operator"),
            Scope::Maintainer { of } => {
                f.write_str("maintainer ")?;
                for (i, p) in of.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// Who a connection's token says is asking, as the feed's hello tells the client, so
/// that a terminal UI can grey what its token may not do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerView {
    pub name: String,
    pub scope: Scope,
}

impl CallerView {
    /// Why this caller may not change `project`, if it may not: "rebuilding a build of
    /// acme/app needs a maintainer of acme/app; …" begins with `doing`.
    pub fn refusal(&self, project: &ProjectId, doing: &str) -> Option<String> {
        if self.scope.manages(project) {
            return None;
        }
        Some(format!(
            "{doing} needs a maintainer of {project}; {}",
            self.reach()
        ))
    }

    /// What the token reaches, to end a refusal with: `"vera" is a viewer token,
    /// which only reads`.
    pub fn reach(&self) -> String {
        match &self.scope {
            Scope::Viewer => format!("{:?} is a viewer token, which only reads", self.name),
            other => format!(
                "{:?} is a{} {other} token",
                self.name,
                if matches!(other, Scope::Operator) {
                    "n"
                } else {
                    ""
                }
            ),
        }
    }
}

/// What stands in for an email address a viewer may not see.
pub const HIDDEN_ADDRESS: &str = "(address hidden)";

/// `text` with every email address in it replaced by [`HIDDEN_ADDRESS`], or `None`
/// when it holds none. An address is a local part and a domain with a dot around an
/// `@`; a chat handle (`@ana`) is not one.
pub fn hide_addresses(text: &str) -> Option<String> {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let domain = |c: char| c.is_ascii_alphanumeric() || ".-".contains(c);
    let mut out = String::new();
    let mut copied = 0;
    let mut found = false;
    for (at, _) in text.match_indices('@') {
        if at < copied {
            continue;
        }
        let start = text[copied..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| local(c))
            .last()
            .map_or(at, |(i, _)| copied + i);
        let host_len = text[at + 1..]
            .char_indices()
            .take_while(|&(_, c)| domain(c))
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        let host = text[at + 1..at + 1 + host_len].trim_end_matches('.');
        let is_address =
            start < at && host.contains('.') && !host.starts_with('.') && !host.ends_with('-');
        if is_address {
            out.push_str(&text[copied..start]);
            out.push_str(HIDDEN_ADDRESS);
            copied = at + 1 + host.len();
            found = true;
        }
    }
    found.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// Takes every email address out of a JSON answer or feed message for a viewer of a
/// daemon that hides them: `email` fields are removed, and addresses inside other
/// strings (a channel named `ana@acme.example by email`) are replaced. Returns whether
/// anything was hidden.
pub fn hide_addresses_in(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => match hide_addresses(s) {
            Some(hidden) => {
                *s = hidden;
                true
            }
            None => false,
        },
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |hid, v| hide_addresses_in(v) | hid),
        serde_json::Value::Object(fields) => {
            let mut hid = fields.remove("email").is_some();
            for v in fields.values_mut() {
                hid |= hide_addresses_in(v);
            }
            hid
        }
        _ => false,
    }
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who or what holds it, as the audit trail will name it: `ana`, `acme-ci-bot`.
    pub name: String,
    pub scope: Scope,
    /// When it stops working; never, when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl TokenRequest {
    pub fn validate(&self, now: Timestamp) -> Result<(), ValidationError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_SHORT_TEXT / 4 {
            return Err(ValidationError::new(
                "name",
                "a token needs a name of 1 to 64 characters, such as \"ana\" or \"acme-release-bot\"",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "a token's name may not hold control characters",
            ));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(ValidationError::new(
                "expires_at",
                "expires_at is in the past; give a time to come, or leave it out for a token that does not expire",
            ));
        }
        self.scope.validate()
    }
}

/// A person's token as `GET /v1/tokens` shows it: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Stable handle for revoking it (`DELETE /v1/tokens/{id}`).
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub created_at: Timestamp,
    /// The name of the token that issued it.
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When it was last used, kept to the minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
}

/// The answer to `POST /v1/tokens`: the token, shown this once, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProjectPattern {
        ProjectPattern::parse(s).unwrap()
    }

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    #[test]
    fn a_namespace_covers_everything_under_it_and_nothing_beside_it() {
        assert!(p("acme/*").covers(&id("acme/app")));
        assert!(p("acme/*").covers(&id("acme/tools/cli")));
        assert!(!p("acme/*").covers(&id("acme-labs/app")));
        assert!(!p("acme/*").covers(&id("other/acme")));
        assert!(p("acme/app").covers(&id("acme/app")));
        assert!(!p("acme/app").covers(&id("acme/app/sub")));
        assert!(!p("acme/app").covers(&id("acme/application")));
    }

    #[test]
    fn patterns_refuse_what_is_not_a_project_or_namespace() {
        for bad in [
            "*",
            "/*",
            "acme",
            "acme/*/x",
            "ac*me/app",
            "Acme/*",
            "acme/../*",
        ] {
            assert!(ProjectPattern::parse(bad).is_err(), "{bad} was taken");
        }
        assert_eq!(p("gnome/gtk/*").to_string(), "gnome/gtk/*");
    }

    #[test]
    fn a_maintainer_issues_only_what_it_reaches() {
        let acme = Scope::Maintainer {
            of: vec![p("acme/*")],
        };
        let narrower = Scope::Maintainer {
            of: vec![p("acme/app"), p("acme/tools/*")],
        };
        let wider = Scope::Maintainer {
            of: vec![p("acme/app"), p("other/*")],
        };
        assert!(acme.may_issue(&Scope::Viewer));
        assert!(acme.may_issue(&acme));
        assert!(acme.may_issue(&narrower));
        assert!(!acme.may_issue(&wider));
        assert!(!acme.may_issue(&Scope::Operator));
        assert!(!narrower.may_issue(&acme));
        assert!(!Scope::Viewer.may_issue(&Scope::Viewer));
        assert!(Scope::Operator.may_issue(&Scope::Operator));
        // `acme/app` alone does not reach `acme/app/*`.
        let app = Scope::Maintainer {
            of: vec![p("acme/app")],
        };
        assert!(!app.may_issue(&Scope::Maintainer {
            of: vec![p("acme/app/*")]
        }));
    }

    #[test]
    fn addresses_are_hidden_and_chat_handles_are_not() {
        assert_eq!(
            hide_addresses("ana@acme.example by email").as_deref(),
            Some("(address hidden) by email")
        );
        assert_eq!(
            hide_addresses("a.b+x@mail.acme.org, and c@d.io.").as_deref(),
            Some("(address hidden), and (address hidden).")
        );
        assert_eq!(hide_addresses("@ana on Slack"), None);
        assert_eq!(hide_addresses("user@localhost"), None);
        assert_eq!(hide_addresses("no address"), None);
        let mut v = serde_json::json!({
            "contacts": [{"name": "Ana", "email": "ana@acme.example", "chat": "@ana"}],
            "notify": [{"channel": "ops@acme.example by email"}],
        });
        assert!(hide_addresses_in(&mut v));
        assert_eq!(
            v,
            serde_json::json!({
                "contacts": [{"name": "Ana", "chat": "@ana"}],
                "notify": [{"channel": "(address hidden) by email"}],
            })
        );
        assert!(!hide_addresses_in(&mut v));
    }

    #[test]
    fn scopes_read_as_json_with_their_role() {
        let scope: Scope =
            serde_json::from_str(r#"{"role":"maintainer","of":["acme/*"]}"#).unwrap();
        assert_eq!(scope.to_string(), "maintainer acme/*");
        assert!(serde_json::from_str::<Scope>(r#"{"role":"root"}"#).is_err());
        assert!(serde_json::from_str::<Scope>(r#"{"role":"viewer","of":["x/*"]}"#).is_err());
    }
}
