//! What a project's package manifests declare it depends on, read with each
//! ecosystem's well-kept parser: one module per ecosystem, each turning its files
//! into the same [`Declared`] dependencies, so that the daemon (from a build's
//! manifests) and `conjunction discover` (from checkouts) read them alike. Nothing
//! here does I/O: a caller hands in the files' text.
//!
//! A declared requirement that is no version range (a git or path dependency, a
//! workspace link, a dist-tag) is kept and said to be one ([`Spec`]), never dropped
//! or guessed at.

pub mod cargo;
pub mod files;
pub mod go;
pub mod maven;
pub mod npm;
pub mod python;
pub mod resolve;

/// What a dependency asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A version range in the ecosystem's own syntax (`^1.2`, `>= 1.2.2`, `*`).
    Range(String),
    /// A link to another package of the same workspace or monorepo
    /// (`workspace:^`), which the package manager rewrites on publish.
    Workspace(String),
    /// A directory on disk (`file:./dep`).
    Path(String),
    /// A git repository, perhaps at a ref (`git+https://…#v1`, `user/repo`).
    Git(String),
    /// A tarball's URL.
    Url(String),
    /// A name the registry resolves (`latest`, `next`), or a version from a catalog
    /// elsewhere (pnpm's `catalog:`).
    Tag(String),
    /// What the files given cannot say (a version from a BOM import, a property no
    /// POM sets), and why.
    Unresolved(String),
}

impl Spec {
    /// The range, when the requirement is one.
    pub fn range(&self) -> Option<&str> {
        match self {
            Spec::Range(r) => Some(r),
            _ => None,
        }
    }

    /// Why it is not a range, for people: "a git dependency".
    pub fn not_a_range(&self) -> Option<&'static str> {
        match self {
            Spec::Range(_) => None,
            Spec::Workspace(_) => Some("a link inside the workspace"),
            Spec::Path(_) => Some("a path on disk"),
            Spec::Git(_) => Some("a git dependency"),
            Spec::Url(_) => Some("a tarball URL"),
            Spec::Tag(_) => Some("a tag the registry resolves"),
            Spec::Unresolved(_) => Some("not resolved from the files given"),
        }
    }
}

impl std::fmt::Display for Spec {
    /// As a manifest writes it: `^1.2`, `workspace:^`, a path, a URL; a URL's
    /// credentials (`https://user:token@host/…`) are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Range(s) | Spec::Path(s) | Spec::Tag(s) => f.write_str(s),
            Spec::Git(s) | Spec::Url(s) => f.write_str(&without_credentials(s)),
            Spec::Workspace(s) => write!(f, "workspace:{s}"),
            Spec::Unresolved(why) => write!(f, "unresolved ({why})"),
        }
    }
}

/// `url` with the user and password before its host replaced by `***`.
fn without_credentials(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.into();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '#', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &url[scheme_end + at..]).into(),
        None => url.into(),
    }
}

/// Which of a manifest's sections a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// Needed to run (npm `dependencies`, Cargo `[dependencies]`, …).
    Normal,
    /// Needed to develop and test only.
    Dev,
    /// Needed to build only (Cargo `[build-dependencies]`).
    Build,
    /// Provided by whoever uses the package (npm `peerDependencies`).
    Peer,
    /// Used when present (npm `optionalDependencies`).
    Optional,
}

/// One dependency as a manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The package's name in its registry, after an alias or rename.
    pub name: String,
    /// The name the manifest gives it, when another (an npm alias, a Cargo rename).
    pub local: Option<String>,
    pub spec: Spec,
    pub section: Section,
    /// The dependency may be left out (an optional peer, an optional Cargo crate).
    pub optional: bool,
    /// Needed only by another dependency (Go's `// indirect`).
    pub indirect: bool,
    /// When it applies, as the manifest says it and unevaluated: a PEP 508 marker
    /// (`python_version < '3.11'`), a Cargo target (`cfg(windows)`), a Python extra.
    pub condition: Option<String>,
}

/// What one manifest says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The package it describes, when it names one (a workspace root may not).
    pub name: Option<String>,
    pub version: Option<String>,
    /// The workspace members it lists, as globs relative to it.
    pub workspaces: Vec<String>,
    pub dependencies: Vec<Declared>,
    /// Files it refers to that were not given (a `-r` include), so what they declare
    /// is not here.
    pub missing: Vec<String>,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{file} is not valid {format}: {reason}")]
    Syntax {
        file: String,
        format: &'static str,
        reason: String,
    },
    #[error("{file}: {what}")]
    Shape { file: String, what: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_s_credentials_are_never_shown() {
        let git = Spec::Git("git+https://bot:ghp_secret@github.com/acme/lib.git#v1".into());
        assert_eq!(
            git.to_string(),
            "git+https://***@github.com/acme/lib.git#v1"
        );
        let plain = Spec::Url("https://registry.example/x.tgz".into());
        assert_eq!(plain.to_string(), "https://registry.example/x.tgz");
        let at_in_path = Spec::Git("git+ssh://git@github.com/acme/lib.git".into());
        assert_eq!(
            at_in_path.to_string(),
            "git+ssh://***@github.com/acme/lib.git"
        );
    }
}
