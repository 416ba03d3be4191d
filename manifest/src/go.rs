//! Go's `go.mod`, by the grammar of the Go modules reference (a line-oriented
//! format with no good Rust parser: gomod-rs silently stops at a directive it does
//! not know, so a small reader of our own): `module`, `require` (single lines and
//! blocks, `// indirect` kept), `replace` (a local path makes the module a path
//! dependency, another module takes its place at its version), `exclude` (versions
//! never used, which declare nothing); every other directive (`go`, `toolchain`,
//! `retract`, `godebug`, `tool`, `ignore`, …) is passed over. A module path keeps
//! its major version suffix (`…/v3`): in Go it is another module.

use crate::{Declared, Manifest, ManifestError, Section, Spec};

/// Reads `text`, the contents of `file` (a `go.mod`).
pub fn read(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let mut manifest = Manifest::default();
    let mut replaced: Vec<Replace> = Vec::new();
    let mut block: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let (line, comment) = split_comment(raw);
        let line = line.trim();
        let bad = |what: &str| ManifestError::Shape {
            file: file.to_owned(),
            what: format!("line {}: {what}", n + 1),
        };
        if line.is_empty() {
            continue;
        }
        let (verb, rest) = match &block {
            Some(_) if line == ")" => {
                block = None;
                continue;
            }
            Some(verb) => (verb.clone(), line),
            None => {
                let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let rest = rest.trim();
                if rest == "(" {
                    block = Some(verb.to_owned());
                    continue;
                }
                (verb.to_owned(), rest)
            }
        };
        let words = words(rest).map_err(|e| bad(&e))?;
        match verb.as_str() {
            "module" => manifest.name = words.first().cloned(),
            "require" => {
                let [path, version] = words.as_slice() else {
                    return Err(bad("a require names a module and its version"));
                };
                manifest.dependencies.push(Declared {
                    name: path.clone(),
                    local: None,
                    spec: Spec::Range(version.clone()),
                    section: Section::Normal,
                    optional: false,
                    indirect: comment.is_some_and(is_indirect),
                    condition: None,
                });
            }
            "replace" => {
                let arrow = words
                    .iter()
                    .position(|w| w == "=>")
                    .ok_or_else(|| bad("a replace has `=>` between the old and the new"))?;
                let (old, new) = words.split_at(arrow);
                let new = &new[1..];
                let old_version = old.get(1).cloned();
                let (name, spec) = match new {
                    [path] if is_local(path) => (old[0].clone(), Spec::Path(path.clone())),
                    [module, version] => (module.clone(), Spec::Range(version.clone())),
                    _ => {
                        return Err(bad(
                            "a replace names a directory, or a module and its version",
                        ))
                    }
                };
                let Some(first) = old.first() else {
                    return Err(bad("a replace names the module it replaces"));
                };
                replaced.push(Replace {
                    old: first.clone(),
                    old_version,
                    name,
                    spec,
                });
            }
            // Excluded versions are never used; they declare no dependency.
            "exclude" => {}
            _ => {}
        }
    }
    // A replacement applies to the module's require (of one version, or of any).
    for Replace {
        old,
        old_version,
        name,
        spec,
    } in replaced
    {
        for dep in manifest.dependencies.iter_mut().filter(|d| d.name == old) {
            let version = dep.spec.range().map(str::to_owned);
            if old_version.is_some() && old_version != version {
                continue;
            }
            if name != old {
                dep.local = Some(old.clone());
                dep.name = name.clone();
            }
            dep.spec = spec.clone();
        }
    }
    Ok(manifest)
}

/// A `replace` directive: the module (of one version, or of any) and what takes its
/// place, under the name it is then known by.
struct Replace {
    old: String,
    old_version: Option<String>,
    name: String,
    spec: Spec,
}

/// A line without its `//` comment, and the comment.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    // A `//` inside a quoted string is no comment, but module paths and versions
    // never hold one: only a quoted path might, and that is checked by `words`.
    match line.find("//") {
        Some(i) if !line[..i].contains(['"', '`']) => (&line[..i], Some(&line[i + 2..])),
        _ => (line, None),
    }
}

/// `// indirect`, or `// indirect; reason`, as the go command writes it.
fn is_indirect(comment: &str) -> bool {
    let c = comment.trim();
    c == "indirect" || c.starts_with("indirect;")
}

/// The words of a directive, a quoted one (`"path"` or `` `path` ``) unquoted.
fn words(rest: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' || c == '`' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next() {
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => word.extend(chars.next()),
                    Some(ch) => word.push(ch),
                    None => return Err("a quoted string is not closed".into()),
                }
            }
            out.push(word);
            continue;
        }
        let mut word = String::new();
        while let Some(&ch) = chars.peek() {
            if ch.is_whitespace() {
                break;
            }
            word.push(ch);
            chars.next();
        }
        out.push(word);
    }
    Ok(out)
}

/// A replacement that is a directory: `./api`, `../x`, `/abs`.
fn is_local(path: &str) -> bool {
    path.starts_with("./")
        || path.starts_with("../")
        || path.starts_with('/')
        || path == "."
        || path == ".."
}
