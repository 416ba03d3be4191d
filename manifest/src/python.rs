//! Python's manifests: `pyproject.toml` (PEP 621 `[project]` dependencies and
//! optional dependencies, PEP 735 `[dependency-groups]` with their
//! `include-group`s, and Poetry's own tables), read with the toml crate, each
//! requirement string read by uv's PEP 508 parser (names normalised, markers kept
//! and not evaluated); and `requirements.txt`, its pip options set aside and its
//! `-r` includes followed among the files given (`-c` constraints pin versions,
//! they declare nothing).

use std::str::FromStr;

use toml::{Table, Value};
use uv_pep508::{Requirement, VersionOrUrl};

use crate::{Declared, Manifest, ManifestError, Section, Spec};

fn shape(file: &str, what: impl Into<String>) -> ManifestError {
    ManifestError::Shape {
        file: file.to_owned(),
        what: what.into(),
    }
}

/// One PEP 508 requirement, in `section`; `condition` joins an extra's or a
/// group's name to its marker.
pub fn requirement(
    file: &str,
    text: &str,
    section: Section,
    optional: bool,
    context: Option<&str>,
) -> Result<Declared, ManifestError> {
    let r = Requirement::<uv_pep508::VerbatimUrl>::from_str(text.trim())
        .map_err(|e| shape(file, format!("{text:?} is no PEP 508 requirement: {e}")))?;
    let spec = match &r.version_or_url {
        None => Spec::Range("*".into()),
        Some(VersionOrUrl::VersionSpecifier(s)) if s.is_empty() => Spec::Range("*".into()),
        Some(VersionOrUrl::VersionSpecifier(s)) => Spec::Range(s.to_string()),
        Some(VersionOrUrl::Url(url)) => {
            let given = url.given().unwrap_or(url.as_str()).to_owned();
            if given.starts_with("git+") {
                Spec::Git(given)
            } else if given.starts_with("file:") || !given.contains("://") {
                Spec::Path(given)
            } else {
                Spec::Url(given)
            }
        }
    };
    let marker = r.marker.try_to_string();
    let condition = match (context, marker) {
        (Some(c), Some(m)) => Some(format!("{c}; {m}")),
        (Some(c), None) => Some(c.to_owned()),
        (None, m) => m,
    };
    Ok(Declared {
        name: r.name.to_string(),
        local: None,
        spec,
        section,
        optional,
        indirect: false,
        condition,
    })
}

/// Reads `text`, the contents of `file` (a `pyproject.toml`).
pub fn pyproject(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let root: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ManifestError::Syntax {
            file: file.to_owned(),
            format: "TOML",
            reason: e.message().to_owned(),
        })?;
    let mut out = Manifest::default();
    let project = root.get("project").and_then(Value::as_table);
    let poetry = root
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(Value::as_table);
    let text_at = |t: Option<&Table>, key: &str| {
        t.and_then(|t| t.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    out.name = text_at(project, "name").or_else(|| text_at(poetry, "name"));
    out.version = text_at(project, "version").or_else(|| text_at(poetry, "version"));
    if let Some(project) = project {
        for r in strings(file, project.get("dependencies"), "project.dependencies")? {
            out.dependencies
                .push(requirement(file, r, Section::Normal, false, None)?);
        }
        if let Some(extras) = project.get("optional-dependencies") {
            let extras = extras
                .as_table()
                .ok_or_else(|| shape(file, "project.optional-dependencies maps extras to lists"))?;
            for (extra, list) in extras {
                let at = format!("project.optional-dependencies.{extra}");
                for r in strings(file, Some(list), &at)? {
                    let context = format!("extra {extra}");
                    out.dependencies.push(requirement(
                        file,
                        r,
                        Section::Optional,
                        true,
                        Some(&context),
                    )?);
                }
            }
        }
    }
    if let Some(groups) = root.get("dependency-groups") {
        let groups = groups
            .as_table()
            .ok_or_else(|| shape(file, "dependency-groups maps group names to lists"))?;
        for name in groups.keys() {
            let mut seen = Vec::new();
            for r in group(file, groups, name, &mut seen)? {
                let context = format!("group {name}");
                out.dependencies
                    .push(requirement(file, &r, Section::Dev, false, Some(&context))?);
            }
        }
    }
    if let Some(poetry) = poetry {
        read_poetry(file, poetry, &mut out)?;
    }
    Ok(out)
}

/// A list of requirement strings at `at`, or none.
fn strings<'v>(
    file: &str,
    value: Option<&'v Value>,
    at: &str,
) -> Result<Vec<&'v str>, ManifestError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| shape(file, format!("{at} is a list of requirements")))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| shape(file, format!("{at} holds requirement strings")))
        })
        .collect()
}

/// The requirements of dependency group `name`, its `include-group`s expanded
/// (PEP 735); a group that includes itself is refused, as the PEP says.
fn group(
    file: &str,
    groups: &Table,
    name: &str,
    seen: &mut Vec<String>,
) -> Result<Vec<String>, ManifestError> {
    if seen.iter().any(|s| s == name) {
        return Err(shape(
            file,
            format!("dependency group {name} includes itself"),
        ));
    }
    seen.push(name.to_owned());
    let list = groups
        .get(name)
        .and_then(Value::as_array)
        .ok_or_else(|| shape(file, format!("dependency group {name} is not a list")))?;
    let mut out = Vec::new();
    for item in list {
        match item {
            Value::String(r) => out.push(r.clone()),
            Value::Table(t) => {
                let included = t
                    .get("include-group")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        shape(
                            file,
                            format!("dependency group {name} has a table that is no include-group"),
                        )
                    })?;
                out.extend(group(file, groups, included, seen)?);
            }
            _ => {
                return Err(shape(
                    file,
                    format!("dependency group {name} holds strings and include-groups"),
                ))
            }
        }
    }
    seen.pop();
    Ok(out)
}

/// Poetry's `[tool.poetry.dependencies]`, its legacy `dev-dependencies` and its
/// groups. A value is a version constraint in Poetry's syntax (`^1.2`, kept as it
/// is written), a table (`version`, `optional`, `python`, `markers`, `path`, `git`,
/// `url`), or a list of such tables (one constraint per Python version).
fn read_poetry(file: &str, poetry: &Table, out: &mut Manifest) -> Result<(), ManifestError> {
    let mut sections: Vec<(&Table, Section, Option<String>)> = Vec::new();
    if let Some(t) = poetry.get("dependencies").and_then(Value::as_table) {
        sections.push((t, Section::Normal, None));
    }
    if let Some(t) = poetry.get("dev-dependencies").and_then(Value::as_table) {
        sections.push((t, Section::Dev, None));
    }
    if let Some(groups) = poetry.get("group").and_then(Value::as_table) {
        for (name, g) in groups {
            if let Some(t) = g.get("dependencies").and_then(Value::as_table) {
                sections.push((t, Section::Dev, Some(format!("group {name}"))));
            }
        }
    }
    for (table, section, context) in sections {
        for (name, value) in table {
            // The interpreter, not a package.
            if name == "python" {
                continue;
            }
            let constraints: Vec<&Value> = match value {
                Value::Array(list) => list.iter().collect(),
                one => vec![one],
            };
            for c in constraints {
                out.dependencies.push(poetry_dependency(
                    file,
                    name,
                    c,
                    section,
                    context.as_deref(),
                )?);
            }
        }
    }
    Ok(())
}

fn poetry_dependency(
    file: &str,
    name: &str,
    value: &Value,
    section: Section,
    context: Option<&str>,
) -> Result<Declared, ManifestError> {
    let normalised = uv_normalize::PackageName::from_str(name)
        .map_err(|e| shape(file, format!("{name:?} is no package name: {e}")))?
        .to_string();
    let (spec, optional, condition) = match value {
        Value::String(v) => (poetry_range(v), false, None),
        Value::Table(t) => {
            let get = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
            let spec = if let Some(v) = get("version") {
                poetry_range(&v)
            } else if let Some(git) = get("git") {
                let at = get("rev").or_else(|| get("tag")).or_else(|| get("branch"));
                Spec::Git(at.map_or(git.clone(), |at| format!("{git}#{at}")))
            } else if let Some(path) = get("path") {
                Spec::Path(path)
            } else if let Some(url) = get("url") {
                Spec::Url(url)
            } else {
                Spec::Range("*".into())
            };
            let mut when: Vec<String> = context.map(str::to_owned).into_iter().collect();
            if let Some(p) = get("python") {
                when.push(format!("python {p}"));
            }
            if let Some(m) = get("markers") {
                when.push(m);
            }
            let optional = t.get("optional").and_then(Value::as_bool).unwrap_or(false);
            (spec, optional, (!when.is_empty()).then(|| when.join("; ")))
        }
        _ => {
            return Err(shape(
                file,
                format!("tool.poetry dependency {name} is a constraint string or a table"),
            ))
        }
    };
    Ok(Declared {
        name: normalised,
        local: None,
        spec,
        section,
        optional,
        indirect: false,
        condition: condition.or_else(|| context.map(str::to_owned)),
    })
}

/// A Poetry constraint as the PEP 440 specifiers it means (Poetry's documentation,
/// "Dependency specification"): `^1.2` is `>=1.2,<2.0`, `~1.2.3` is `>=1.2.3,<1.3.0`,
/// `1.2.*` is `==1.2.*`, a bare version is exact; comparisons pass as they are. An
/// `||` has no PEP 440 form, so such a constraint is kept unresolved.
pub fn poetry_range(text: &str) -> Spec {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return Spec::Range("*".into());
    }
    if text.contains("||") {
        return Spec::Unresolved(format!(
            "Poetry's {text:?} is an alternative, which PEP 440 cannot say"
        ));
    }
    let mut parts = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let Some(pep440) = poetry_part(part) else {
            return Spec::Unresolved(format!("Poetry's {part:?} does not read as a constraint"));
        };
        parts.push(pep440);
    }
    let joined = parts.join(", ");
    match uv_pep508::uv_pep440::VersionSpecifiers::from_str(&joined) {
        Ok(specifiers) => Spec::Range(specifiers.to_string()),
        Err(e) => Spec::Unresolved(format!(
            "Poetry's {text:?} gives {joined:?}, which PEP 440 does not read: {e}"
        )),
    }
}

/// One comma-separated part of a Poetry constraint, as PEP 440.
fn poetry_part(part: &str) -> Option<String> {
    let release = |v: &str| -> Option<Vec<u64>> {
        let numbers: Option<Vec<u64>> = v.split('.').map(|n| n.parse().ok()).collect();
        numbers.filter(|n| !n.is_empty() && n.len() <= 3)
    };
    let dotted = |n: &[u64]| n.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
    if let Some(v) = part.strip_prefix('^') {
        let n = release(v.trim())?;
        // The first non-zero part may not change; all zeros, the last given may not.
        let keep = n.iter().position(|&x| x != 0).unwrap_or(n.len() - 1);
        let mut upper = n[..=keep].to_vec();
        upper[keep] += 1;
        return Some(format!(">={}, <{}", dotted(&n), dotted(&upper)));
    }
    if let Some(v) = part.strip_prefix('~').filter(|v| !v.starts_with('=')) {
        let n = release(v.trim())?;
        let keep = if n.len() == 1 { 0 } else { 1 };
        let mut upper = n[..=keep].to_vec();
        upper[keep] += 1;
        return Some(format!(">={}, <{}", dotted(&n), dotted(&upper)));
    }
    if part.starts_with(['<', '>', '=', '!', '~']) {
        return Some(part.replace(' ', ""));
    }
    // A bare version, or a wildcard (`1.2.*`), is that version.
    Some(format!("=={part}"))
}

/// Reads requirements file `file` (with `-r` includes, paths relative to it),
/// asking `open` for each file's text; a file it cannot give is listed as missing.
pub fn requirements(
    file: &str,
    open: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    let mut out = Manifest::default();
    let mut seen = Vec::new();
    requirements_into(file, open, &mut out, &mut seen)?;
    Ok(out)
}

fn requirements_into(
    file: &str,
    open: &dyn Fn(&str) -> Option<String>,
    out: &mut Manifest,
    seen: &mut Vec<String>,
) -> Result<(), ManifestError> {
    if seen.iter().any(|s| s == file) {
        return Ok(());
    }
    seen.push(file.to_owned());
    let Some(text) = open(file) else {
        out.missing.push(file.to_owned());
        return Ok(());
    };
    // Continuation lines end in a backslash; a comment starts a line or follows
    // whitespace.
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    for raw in joined.lines() {
        let line = match raw
            .find(" #")
            .or_else(|| raw.trim_start().starts_with('#').then_some(0))
        {
            Some(0) => "",
            Some(i) => &raw[..i],
            None => raw,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let argument = |w: &mut std::str::SplitWhitespace<'_>, flag: &str| {
            line.strip_prefix(flag)
                .filter(|rest| rest.starts_with('=') && flag.starts_with("--"))
                .map(|rest| rest[1..].trim().to_owned())
                .or_else(|| w.next().map(str::to_owned))
        };
        match first {
            "-r" | "--requirement" => {
                if let Some(included) = argument(&mut words, first) {
                    let path = relative(file, &included);
                    requirements_into(&path, open, out, seen)?;
                }
            }
            // Constraints pin what something else asks for; they ask for nothing.
            "-c" | "--constraint" => {}
            "-e" | "--editable" => {
                if let Some(target) = argument(&mut words, first) {
                    out.dependencies.push(Declared {
                        name: target.clone(),
                        local: None,
                        spec: if target.contains("://") {
                            Spec::Url(target)
                        } else {
                            Spec::Path(target)
                        },
                        section: Section::Normal,
                        optional: false,
                        indirect: false,
                        condition: None,
                    });
                }
            }
            other if other.starts_with('-') => {}
            _ => {
                // Per-requirement options (`--hash=…`) follow the requirement.
                let requirement_text = match line.find(" --") {
                    Some(i) => &line[..i],
                    None => line,
                };
                out.dependencies.push(requirement(
                    file,
                    requirement_text,
                    Section::Normal,
                    false,
                    None,
                )?);
            }
        }
    }
    Ok(())
}

/// `included` as a path relative to `file`'s directory.
fn relative(file: &str, included: &str) -> String {
    match file.rsplit_once('/') {
        Some((dir, _)) if !included.starts_with('/') => {
            crate::files::normalize(&format!("{dir}/{included}"))
        }
        _ => included.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poetry_constraints_are_the_pep_440_specifiers_its_documentation_gives() {
        for (poetry, pep440) in [
            ("^1.2.3", ">=1.2.3, <2"),
            ("^1.2", ">=1.2, <2"),
            ("^0.2.3", ">=0.2.3, <0.3"),
            ("^0.0.3", ">=0.0.3, <0.0.4"),
            ("^0.0", ">=0.0, <0.1"),
            ("^0", ">=0, <1"),
            ("~1.2.3", ">=1.2.3, <1.3"),
            ("~1.2", ">=1.2, <1.3"),
            ("~1", ">=1, <2"),
            ("1.2.*", "==1.2.*"),
            ("1.2.3", "==1.2.3"),
            (">= 1.2, < 1.5", ">=1.2, <1.5"),
            ("~=1.4", "~=1.4"),
            ("*", "*"),
        ] {
            assert_eq!(poetry_range(poetry), Spec::Range(pep440.into()), "{poetry}");
        }
        assert!(matches!(poetry_range("~2.7 || ^3.5"), Spec::Unresolved(_)));
        assert!(matches!(poetry_range("^banana"), Spec::Unresolved(_)));
    }
}
