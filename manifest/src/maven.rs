//! Maven's `pom.xml`, tokenised by quick-xml: a project's `<dependencies>` (and
//! those it inherits from the parent POMs it is given), each named
//! `groupId:artifactId`, its version's `${property}` references resolved from the
//! chain's `<properties>` and `project.*`, a dependency without a version given one
//! by the chain's `<dependencyManagement>`. What needs the network (a BOM import, a
//! parent outside the tree) is said to be unresolved, never guessed. Scopes map to
//! sections: `test` is dev, `provided` is a peer, the rest run.

use std::collections::BTreeMap;

use quick_xml::events::Event;

use crate::{Declared, Manifest, ManifestError, Section, Spec};

/// An element with its children and its text, as much of XML as a POM uses.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    /// The elements at `path` (`dependencies/dependency`).
    fn all(&self, path: &[&str]) -> Vec<&Element> {
        match path {
            [] => vec![self],
            [first, rest @ ..] => self
                .children
                .iter()
                .filter(|c| c.name == *first)
                .flat_map(|c| c.all(rest))
                .collect(),
        }
    }
}

fn parse(file: &str, text: &str) -> Result<Element, ManifestError> {
    let syntax = |reason: String| ManifestError::Syntax {
        file: file.to_owned(),
        format: "XML",
        reason,
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader
            .read_event()
            .map_err(|e| syntax(format!("at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::Start(start) => stack.push(Element {
                name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                ..Element::default()
            }),
            Event::Empty(empty) => {
                let element = Element {
                    name: String::from_utf8_lossy(empty.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(element);
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .filter(|_| !stack.is_empty())
                    .ok_or_else(|| syntax("a closing tag without its opening one".into()))?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(done);
                }
            }
            Event::Text(t) => {
                let t = t.xml_content().map_err(|e| syntax(e.to_string()))?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&t);
                }
            }
            Event::CData(t) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| syntax(e.to_string()))?;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_owned)
                        .ok_or_else(|| syntax(format!("the entity &{name}; is not defined")))?,
                };
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(syntax("the document ends inside an element".into()));
    }
    let document = stack.pop().unwrap_or_default();
    document
        .children
        .into_iter()
        .find(|c| c.name == "project")
        .ok_or_else(|| ManifestError::Shape {
            file: file.to_owned(),
            what: "a POM's root element is <project>".into(),
        })
}

/// Reads `text`, the contents of `file`; `parents` are the texts of its parent POM,
/// that one's parent, and so on, as far as the tree holds them.
pub fn read(file: &str, text: &str, parents: &[&str]) -> Result<Manifest, ManifestError> {
    let project = parse(file, text)?;
    let mut chain = vec![project];
    for (i, parent) in parents.iter().enumerate() {
        chain.push(parse(&format!("parent {} of {file}", i + 1), parent)?);
    }
    let own = &chain[0];
    let parent_of = |p: &Element, field: &str| p.child("parent").and_then(|x| x.text_of(field));
    let group = own.text_of("groupId").or_else(|| parent_of(own, "groupId"));
    let version = own.text_of("version").or_else(|| parent_of(own, "version"));
    // Properties, the farthest ancestor first so that nearer ones win.
    let mut properties: BTreeMap<String, String> = BTreeMap::new();
    for pom in chain.iter().rev() {
        for p in pom
            .child("properties")
            .map(|p| p.children.iter())
            .into_iter()
            .flatten()
        {
            properties.insert(p.name.clone(), p.text.trim().to_owned());
        }
    }
    for (key, value) in [
        ("project.version", &version),
        ("project.groupId", &group),
        ("project.parent.version", &parent_of(own, "version")),
        ("project.parent.groupId", &parent_of(own, "groupId")),
    ] {
        if let Some(v) = value {
            properties.insert(key.to_owned(), v.clone());
        }
    }
    // Managed versions, the nearest POM's winning; BOM imports are not dependencies.
    let mut managed: BTreeMap<String, String> = BTreeMap::new();
    let mut boms = 0usize;
    for pom in chain.iter().rev() {
        for d in pom.all(&["dependencyManagement", "dependencies", "dependency"]) {
            if d.text_of("scope").as_deref() == Some("import") {
                boms += 1;
                continue;
            }
            if let (Some(key), Some(v)) = (coordinates(d, &properties), d.text_of("version")) {
                managed.insert(key, v);
            }
        }
    }
    let mut out = Manifest {
        name: match (&group, own.text_of("artifactId")) {
            (Some(g), Some(a)) => Some(format!("{g}:{a}")),
            _ => None,
        },
        version: version.clone(),
        workspaces: own
            .all(&["modules", "module"])
            .iter()
            .map(|m| m.text.trim().to_owned())
            .collect(),
        ..Manifest::default()
    };
    // Its own dependencies, then those it inherits that it does not declare itself.
    for pom in &chain {
        for d in pom.all(&["dependencies", "dependency"]) {
            let Some(name) = coordinates(d, &properties) else {
                continue;
            };
            if out.dependencies.iter().any(|x| x.name == name) {
                continue;
            }
            let declared = d.text_of("version").or_else(|| managed.get(&name).cloned());
            let spec = match declared {
                Some(v) => match substitute(&v, &properties) {
                    Ok(v) => Spec::Range(v),
                    Err(why) => Spec::Unresolved(why),
                },
                None if boms > 0 => Spec::Unresolved(
                    "its version comes from a BOM import, which is read from the repository, not the tree".into(),
                ),
                None => Spec::Unresolved("no version, and none managed in the POMs given".into()),
            };
            let section = match d.text_of("scope").as_deref() {
                Some("test") => Section::Dev,
                Some("provided") => Section::Peer,
                _ => Section::Normal,
            };
            out.dependencies.push(Declared {
                name,
                local: None,
                spec,
                section,
                optional: d.text_of("optional").as_deref() == Some("true"),
                indirect: false,
                condition: None,
            });
        }
    }
    Ok(out)
}

/// `groupId:artifactId` of a dependency, its properties resolved.
fn coordinates(d: &Element, properties: &BTreeMap<String, String>) -> Option<String> {
    let g = substitute(&d.text_of("groupId")?, properties).ok()?;
    let a = substitute(&d.text_of("artifactId")?, properties).ok()?;
    Some(format!("{g}:{a}"))
}

/// `text` with every `${name}` replaced, properties that name others included; why
/// not, when a reference is to a property no POM given sets, or leads round in a
/// circle.
fn substitute(text: &str, properties: &BTreeMap<String, String>) -> Result<String, String> {
    /// More references than any real version holds: past them, a circle.
    const ROUNDS: usize = 16;
    let mut out = text.to_owned();
    for _ in 0..ROUNDS {
        let Some(start) = out.find("${") else {
            return Ok(out);
        };
        let Some(len) = out[start..].find('}') else {
            return Ok(out);
        };
        let name = &out[start + 2..start + len];
        let Some(value) = properties.get(name) else {
            return Err(format!(
                "the property ${{{name}}} is not set in the POMs given"
            ));
        };
        out.replace_range(start..start + len + 1, value);
    }
    Err(format!(
        "the properties in {text:?} refer to each other in a circle"
    ))
}

/// Where a POM says its parent is: `groupId:artifactId`, and the path of the
/// parent's file relative to it (`../pom.xml` when it says none; empty when it says
/// the parent is not in the tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub coordinates: Option<String>,
    pub relative_path: String,
}

/// The parent `text` (the contents of `file`) names, if any.
pub fn parent(file: &str, text: &str) -> Result<Option<ParentRef>, ManifestError> {
    let project = parse(file, text)?;
    let Some(parent) = project.child("parent") else {
        return Ok(None);
    };
    let coordinates = match (parent.text_of("groupId"), parent.text_of("artifactId")) {
        (Some(g), Some(a)) => Some(format!("{g}:{a}")),
        _ => None,
    };
    // Maven's default; `<relativePath/>` (empty) means look in the repository only.
    let relative_path = match parent.child("relativePath") {
        None => "../pom.xml".to_owned(),
        Some(p) => p.text.trim().to_owned(),
    };
    Ok(Some(ParentRef {
        coordinates,
        relative_path,
    }))
}

/// `groupId:artifactId` of the project `text` describes (its group inherited from
/// its parent when it gives none).
pub fn coordinates_of(file: &str, text: &str) -> Result<Option<String>, ManifestError> {
    let project = parse(file, text)?;
    let parent_group = project.child("parent").and_then(|p| p.text_of("groupId"));
    Ok(
        match (
            project.text_of("groupId").or(parent_group),
            project.text_of("artifactId"),
        ) {
            (Some(g), Some(a)) => Some(format!("{g}:{a}")),
            _ => None,
        },
    )
}
