//! `conjunction discover DIR…`: finds the projects of a tree of checkouts (or a
//! monorepo) by their package manifests and says them as a projects file for
//! `conjunction apply`, each with its package and the ranges it declares on the
//! others. Run on a file written before, it edits that file in place: only
//! `depends_on` (and a missing `package`) change, projects found anew are added at
//! the end, and everything a person wrote (contacts, triggers, rules, comments,
//! layout) stays byte for byte.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use conjunction_manifest::resolve::{identity, resolve_with, Options};
use conjunction_manifest::{files, Manifest};
use conjunction_protocol::project::Ecosystem;
use conjunction_protocol::{Dependency, ManifestFile, Package, ProjectId};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

/// Directories never walked into: version control, dependencies fetched by package
/// managers, build output and virtual environments.
const SKIPPED: [&str; 8] = [
    "node_modules",
    "target",
    "vendor",
    "venv",
    "__pycache__",
    "dist",
    "bower_components",
    "site-packages",
];
/// How deep a tree is walked.
const MAX_DEPTH: usize = 24;
/// Most manifest files one walk reads: past it, the walk stops and says so.
const MAX_FILES: usize = 20_000;
/// Largest manifest read; a bigger one is skipped and named.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Discover {
    /// The organisation part of the ids made for projects found anew; the name
    /// of each directory walked when left out.
    pub namespace: Option<String>,
    /// Count development dependencies too.
    pub dev: bool,
}

/// One project found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: ProjectId,
    pub name: String,
    pub package: Option<Package>,
    /// Its manifest, relative to the directory walked.
    pub manifest: String,
    pub depends_on: Vec<Dependency>,
    /// Packages it declares that nothing in the tree (or the file) is.
    pub outside: Vec<String>,
    /// What it declares on a project of the tree that is no range, and what the
    /// files could not say.
    pub notes: Vec<String>,
}

/// Everything a walk found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub projects: Vec<Found>,
    /// Dependency cycles among them, each from its smallest id back to it.
    pub cycles: Vec<Vec<ProjectId>>,
    /// Manifests that could not be read, and why.
    pub unreadable: Vec<String>,
}

/// A manifest file in a walked tree.
struct Seen {
    /// The directory walked that holds it.
    top: usize,
    /// Its path below that directory, `/`-separated.
    path: String,
    content: String,
}

/// Walks `dirs` and reads what the manifests in them declare; `known` are the
/// projects a projects file already names, by package, which dependencies may
/// resolve to as well as to what the walk finds.
pub fn discover(
    dirs: &[PathBuf],
    options: &Discover,
    known: &[(Package, ProjectId)],
) -> anyhow::Result<Discovery> {
    let mut seen = Vec::new();
    let mut out = Discovery::default();
    for (top, dir) in dirs.iter().enumerate() {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        walk(dir, top, "", 0, &mut seen, &mut out.unreadable)?;
    }
    let mut read: Vec<(usize, Ecosystem, Manifest)> = Vec::new();
    for (i, file) in seen.iter().enumerate() {
        if !is_project_manifest(file, &seen) {
            continue;
        }
        let context = context_of(file, &seen);
        match files::read(&context) {
            Ok((ecosystem, manifest)) => read.push((i, ecosystem, manifest)),
            Err(e) => out.unreadable.push(format!("{}: {e}", shown(dirs, file))),
        }
    }
    // Ids for the projects found: the file's own where it names the package.
    let mut ids: HashMap<(Ecosystem, String), ProjectId> = known
        .iter()
        .map(|(p, id)| ((p.ecosystem, identity(p.ecosystem, &p.name)), id.clone()))
        .collect();
    let mut taken: BTreeSet<ProjectId> = known.iter().map(|(_, id)| id.clone()).collect();
    let mut found: Vec<(Found, Ecosystem, &Manifest)> = Vec::new();
    for (i, ecosystem, manifest) in &read {
        let file = &seen[*i];
        // A workspace root or an aggregator POM lists its members, which are the
        // projects; a manifest naming no package is none (a requirements file
        // names none, and stands for its directory).
        let root = !manifest.workspaces.is_empty()
            && matches!(ecosystem, Ecosystem::Npm | Ecosystem::Maven);
        if root || (manifest.name.is_none() && !file.path.ends_with(".txt")) {
            continue;
        }
        let dir_name = file
            .path
            .rsplit_once('/')
            .map(|(d, _)| d.rsplit('/').next().unwrap_or(d).to_owned())
            .unwrap_or_else(|| top_name(&dirs[file.top]));
        let package = manifest.name.clone().map(|name| Package {
            ecosystem: *ecosystem,
            name,
        });
        let name = manifest.name.clone().unwrap_or_else(|| dir_name.clone());
        let key = package
            .as_ref()
            .map(|p| (p.ecosystem, identity(p.ecosystem, &p.name)));
        let id = match key.as_ref().and_then(|k| ids.get(k)) {
            Some(id) => id.clone(),
            None => {
                let namespace = match &options.namespace {
                    Some(n) => n.clone(),
                    None => slug(&top_name(&dirs[file.top])),
                };
                let id = fresh_id(
                    &namespace,
                    &slug(&short_name(*ecosystem, &name)),
                    *ecosystem,
                    &taken,
                )?;
                if let Some(k) = key {
                    ids.insert(k, id.clone());
                }
                id
            }
        };
        taken.insert(id.clone());
        found.push((
            Found {
                id,
                name,
                package,
                manifest: shown(dirs, file),
                depends_on: Vec::new(),
                outside: Vec::new(),
                notes: manifest
                    .missing
                    .iter()
                    .map(|m| format!("{m} is not in the tree, so what it declares is not read"))
                    .collect(),
            },
            *ecosystem,
            manifest,
        ));
    }
    for (project, ecosystem, manifest) in &mut found {
        let ecosystem = *ecosystem;
        let project_of = |name: &str| ids.get(&(ecosystem, identity(ecosystem, name))).cloned();
        let resolution = resolve_with(
            manifest,
            &project_of,
            Some(&project.id),
            Options { dev: options.dev },
        );
        project.depends_on = resolution.depends_on;
        project.notes.extend(resolution.notes);
        for d in &resolution.unregistered {
            if let conjunction_manifest::Spec::Unresolved(why) = &d.spec {
                project
                    .notes
                    .push(format!("{} is unresolved: {why}", d.name));
            }
        }
        let mut outside: Vec<String> = resolution
            .unregistered
            .into_iter()
            .map(|d| d.name)
            .collect();
        outside.sort();
        outside.dedup();
        project.outside = outside;
    }
    out.projects = found.into_iter().map(|(f, _, _)| f).collect();
    out.cycles = cycles(&out.projects);
    Ok(out)
}

fn walk(
    dir: &Path,
    top: usize,
    below: &str,
    depth: usize,
    seen: &mut Vec<Seen>,
    unreadable: &mut Vec<String>,
) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    // The same tree gives the same file, whatever order the disk lists it in.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if below.is_empty() {
            name.clone()
        } else {
            format!("{below}/{name}")
        };
        // Symbolic links are not followed: a link back up would walk for ever.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if name.starts_with('.') || SKIPPED.contains(&name.as_str()) {
                continue;
            }
            walk(&entry.path(), top, &path, depth + 1, seen, unreadable)?;
        } else if kind.is_file() && files::ecosystem_of(&path).is_some() {
            if seen.len() >= MAX_FILES {
                bail!("the tree holds more than {MAX_FILES} manifests; walk fewer directories at once");
            }
            let too_big = entry.metadata().is_ok_and(|m| m.len() > MAX_MANIFEST_BYTES);
            if too_big {
                unreadable.push(format!(
                    "{path}: larger than {MAX_MANIFEST_BYTES} bytes, not read"
                ));
                continue;
            }
            match std::fs::read_to_string(entry.path()) {
                Ok(content) => seen.push(Seen { top, path, content }),
                Err(e) => unreadable.push(format!("{path}: {e}")),
            }
        }
    }
    Ok(())
}

/// Whether `file` describes a project of its own: not a workspace root or an
/// aggregator POM (their members are the projects), not an included requirements
/// file, not a requirements file beside a `pyproject.toml`.
fn is_project_manifest(file: &Seen, seen: &[Seen]) -> bool {
    let (dir, name) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
    let beside = |other: &str| {
        let wanted = if dir.is_empty() {
            other.to_owned()
        } else {
            format!("{dir}/{other}")
        };
        seen.iter().any(|s| s.top == file.top && s.path == wanted)
    };
    match name {
        "requirements.txt" => !beside("pyproject.toml"),
        n if n.ends_with(".txt") => false,
        _ => true,
    }
}

/// `file` and the files of its tree it may refer to: its ecosystem's other
/// manifests (a workspace root, parent POMs, included requirements).
fn context_of(file: &Seen, seen: &[Seen]) -> Vec<ManifestFile> {
    let ecosystem = files::ecosystem_of(&file.path);
    let own_kind = file.path.rsplit('/').next().unwrap_or_default();
    let mut out = vec![ManifestFile {
        path: file.path.clone(),
        content: file.content.clone(),
    }];
    if ecosystem == Some(Ecosystem::Npm) || ecosystem == Some(Ecosystem::Go) {
        return out;
    }
    let dir = file.path.rsplit_once('/').map_or("", |(d, _)| d);
    for other in seen
        .iter()
        .filter(|s| s.top == file.top && s.path != file.path)
    {
        let kind = other.path.rsplit('/').next().unwrap_or_default();
        let other_dir = other.path.rsplit_once('/').map_or("", |(d, _)| d);
        let wanted = match ecosystem {
            // Only roots above it can be its workspace.
            Some(Ecosystem::Cargo) => {
                kind == "Cargo.toml"
                    && (other_dir.is_empty() || dir.starts_with(&format!("{other_dir}/")))
            }
            Some(Ecosystem::Maven) => kind == "pom.xml" || kind.ends_with(".xml"),
            Some(Ecosystem::Pypi) => own_kind.ends_with(".txt") && kind.ends_with(".txt"),
            _ => false,
        };
        if wanted {
            out.push(ManifestFile {
                path: other.path.clone(),
                content: other.content.clone(),
            });
        }
    }
    out
}

fn shown(dirs: &[PathBuf], file: &Seen) -> String {
    if dirs.len() == 1 {
        file.path.clone()
    } else {
        format!("{}/{}", dirs[file.top].display(), file.path)
    }
}

/// The name of a walked directory, as it is (`.` is the current directory's).
fn top_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "projects".into())
}

/// The part of a package name an id is made from: `@acme/lib` is `lib`,
/// `org.acme:lib` is `lib`, `github.com/acme/lib/v2` is `lib`.
fn short_name(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::Npm => name.rsplit('/').next().unwrap_or(name).to_owned(),
        Ecosystem::Maven => name.rsplit(':').next().unwrap_or(name).to_owned(),
        Ecosystem::Go => {
            let mut parts = name.rsplit('/');
            let last = parts.next().unwrap_or(name);
            let is_major = last.len() > 1
                && last.starts_with('v')
                && last[1..].bytes().all(|b| b.is_ascii_digit());
            match parts.next() {
                Some(before) if is_major => before.to_owned(),
                _ => last.to_owned(),
            }
        }
        Ecosystem::Cargo | Ecosystem::Pypi => name.to_owned(),
    }
}

/// `text` as an id segment: lower case, with runs of anything else than a-z, 0-9,
/// `.`, `_` and `-` made one `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(['-', '.']).to_owned();
    if out.is_empty() {
        "project".into()
    } else {
        out
    }
}

/// `namespace/name`, or, when another project has that id, with its ecosystem
/// and then a number after it.
fn fresh_id(
    namespace: &str,
    name: &str,
    ecosystem: Ecosystem,
    taken: &BTreeSet<ProjectId>,
) -> anyhow::Result<ProjectId> {
    let mut candidates = vec![
        format!("{namespace}/{name}"),
        format!("{namespace}/{name}-{}", ecosystem.as_str()),
    ];
    candidates.extend((2..100).map(|n| format!("{namespace}/{name}-{}-{n}", ecosystem.as_str())));
    for c in candidates {
        let id = ProjectId::parse(&c).map_err(|e| anyhow::anyhow!("{}", e.message))?;
        if !taken.contains(&id) {
            return Ok(id);
        }
    }
    bail!("more than a hundred projects of the tree would be called {namespace}/{name}")
}

/// Every dependency cycle among `projects` (strongly connected groups of more than
/// one), each named from its smallest id round to it again.
fn cycles(projects: &[Found]) -> Vec<Vec<ProjectId>> {
    let index: HashMap<&ProjectId, usize> = projects
        .iter()
        .enumerate()
        .map(|(i, p)| (&p.id, i))
        .collect();
    let edges: Vec<Vec<usize>> = projects
        .iter()
        .map(|p| {
            p.depends_on
                .iter()
                .filter_map(|d| index.get(&d.project).copied())
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    let mut reported: BTreeSet<usize> = BTreeSet::new();
    let mut order: Vec<usize> = (0..projects.len()).collect();
    order.sort_by_key(|&i| &projects[i].id);
    for start in order {
        if reported.contains(&start) {
            continue;
        }
        // The shortest way from start back to itself, breadth first.
        let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
        let mut frontier = vec![start];
        let mut closed = None;
        'search: while !frontier.is_empty() {
            let mut next = Vec::new();
            for &at in &frontier {
                for &to in &edges[at] {
                    if to == start {
                        closed = Some(at);
                        break 'search;
                    }
                    if to > start || !reported.contains(&to) {
                        if let std::collections::btree_map::Entry::Vacant(v) = came_from.entry(to) {
                            v.insert(at);
                            next.push(to);
                        }
                    }
                }
            }
            frontier = next;
        }
        if let Some(mut at) = closed {
            let mut ring = vec![start];
            let mut back = vec![at];
            while at != start {
                at = came_from[&at];
                if at != start {
                    back.push(at);
                }
            }
            ring.extend(back.into_iter().rev());
            ring.push(start);
            reported.extend(ring.iter().copied());
            out.push(ring.into_iter().map(|i| projects[i].id.clone()).collect());
        }
    }
    out
}

/// The projects a projects file already names with a package, for resolving.
pub fn known_packages(text: &str) -> anyhow::Result<Vec<(Package, ProjectId)>> {
    let doc: DocumentMut = text
        .parse()
        .context("the projects file is not valid TOML")?;
    let mut out = Vec::new();
    for table in project_tables(&doc) {
        if let (Some(id), Some(package)) = (table_id(table), table_package(table)) {
            out.push((package, id));
        }
    }
    Ok(out)
}

fn project_tables(doc: &DocumentMut) -> impl Iterator<Item = &Table> {
    doc.get("project")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(|a| a.iter())
}

fn table_id(table: &Table) -> Option<ProjectId> {
    ProjectId::parse(table.get("id")?.as_str()?).ok()
}

fn table_package(table: &Table) -> Option<Package> {
    let package = table.get("package")?;
    let get = |key: &str| -> Option<String> {
        match package {
            Item::Value(Value::InlineTable(t)) => t.get(key)?.as_str().map(str::to_owned),
            Item::Table(t) => t.get(key)?.as_str().map(str::to_owned),
            _ => None,
        }
    };
    let ecosystem = Ecosystem::ALL
        .into_iter()
        .find(|e| Some(e.as_str()) == get("ecosystem").as_deref())?;
    Some(Package {
        ecosystem,
        name: get("name")?,
    })
}

/// What `depends_on` in a projects file says, as far as it is ranges.
fn table_depends_on(table: &Table) -> Vec<(ProjectId, Option<String>, bool)> {
    let Some(array) = table.get("depends_on").and_then(Item::as_array) else {
        return Vec::new();
    };
    array
        .iter()
        .filter_map(|v| {
            let t = v.as_inline_table()?;
            let project = ProjectId::parse(t.get("project")?.as_str()?).ok()?;
            let range = t.get("range").and_then(|r| r.as_str()).map(str::to_owned);
            Some((project, range, t.contains_key("lines")))
        })
        .collect()
}

/// A fresh projects file holding everything `discovery` found.
pub fn render(discovery: &Discovery, walked: &[PathBuf]) -> String {
    let walked: Vec<String> = walked.iter().map(|d| d.display().to_string()).collect();
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix(format!(
        "# Projects found by `conjunction discover {}`.\n\
         # Running it again with --write on this file changes only depends_on (and a\n\
         # missing package) and adds the projects it finds anew: contacts, triggers,\n\
         # rules and comments added here are kept as they are.\n",
        walked.join(" ")
    ));
    let mut tables = toml_edit::ArrayOfTables::new();
    for p in &discovery.projects {
        tables.push(new_table(p));
    }
    doc.insert("project", Item::ArrayOfTables(tables));
    doc.to_string()
}

fn new_table(p: &Found) -> Table {
    let mut t = Table::new();
    t.insert("id", toml_edit::value(p.id.as_str()));
    t.insert("name", toml_edit::value(p.name.as_str()));
    if let Some(package) = &p.package {
        t.insert(
            "package",
            Item::Value(Value::InlineTable(package_table(package))),
        );
    }
    t.insert(
        "depends_on",
        Item::Value(Value::Array(depends_on_array(&p.depends_on))),
    );
    if let Some(mut key) = t.key_mut("id") {
        key.leaf_decor_mut()
            .set_prefix(format!("# from {}\n", p.manifest));
    }
    t.decor_mut().set_prefix("\n");
    t
}

fn package_table(package: &Package) -> InlineTable {
    let mut t = InlineTable::new();
    t.insert("ecosystem", package.ecosystem.as_str().into());
    t.insert("name", package.name.as_str().into());
    t
}

/// `[ { project = "acme/lib", range = "^2.1" }, … ]`, one upstream per line.
fn depends_on_array(depends_on: &[Dependency]) -> Array {
    let upstreams: Vec<Upstream> = depends_on.iter().cloned().map(Upstream::Read).collect();
    upstreams_array(&upstreams)
}

/// What an edit of a projects file did, for people.
#[derive(Debug, Default)]
pub struct Edited {
    pub text: String,
    /// `acme/app: depends_on changed`, `acme/new: added`.
    pub changes: Vec<String>,
    /// Projects of the file the walk did not find (kept as they are).
    pub not_found: Vec<ProjectId>,
}

/// `text`, a projects file, with `discovery` put in: each project found is matched
/// with the file's by package (or else by id); only its `depends_on` is written
/// again, and only when it says something else, keeping the upstreams no manifest
/// can name (projects without a package) and those a person gave lines; projects
/// not in the file are added at the end.
pub fn update(text: &str, discovery: &Discovery) -> anyhow::Result<Edited> {
    let mut doc: DocumentMut = text
        .parse()
        .context("the projects file is not valid TOML")?;
    let packaged: BTreeSet<ProjectId> = project_tables(&doc)
        .filter(|t| t.contains_key("package"))
        .filter_map(table_id)
        .chain(
            discovery
                .projects
                .iter()
                .filter(|p| p.package.is_some())
                .map(|p| p.id.clone()),
        )
        .collect();
    let mut edited = Edited::default();
    let mut matched: BTreeSet<usize> = BTreeSet::new();
    let mut added = Vec::new();
    {
        let tables = match doc.get_mut("project") {
            Some(item) => item
                .as_array_of_tables_mut()
                .context("`project` in the projects file is not an array of [[project]] tables")?,
            None => {
                doc.insert(
                    "project",
                    Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
                );
                doc.get_mut("project")
                    .and_then(Item::as_array_of_tables_mut)
                    .context("the projects file's [[project]] tables")?
            }
        };
        for found in &discovery.projects {
            let key = found
                .package
                .as_ref()
                .map(|p| (p.ecosystem, identity(p.ecosystem, &p.name)));
            let at = (0..tables.len()).find(|&i| {
                let t = tables.get(i);
                let package = t.and_then(table_package);
                match (&key, package) {
                    (Some(k), Some(p)) => *k == (p.ecosystem, identity(p.ecosystem, &p.name)),
                    _ => t.and_then(table_id).as_ref() == Some(&found.id),
                }
            });
            let Some(at) = at else {
                added.push(new_table(found));
                edited
                    .changes
                    .push(format!("{}: added, from {}", found.id, found.manifest));
                continue;
            };
            matched.insert(at);
            let Some(table) = tables.get_mut(at) else {
                continue;
            };
            let id = table_id(table).unwrap_or_else(|| found.id.clone());
            if !table.contains_key("package") {
                if let Some(package) = &found.package {
                    table.insert(
                        "package",
                        Item::Value(Value::InlineTable(package_table(package))),
                    );
                    edited.changes.push(format!("{id}: package added"));
                }
            }
            let old = table_depends_on(table);
            let kept = |project: &ProjectId| {
                table
                    .get("depends_on")
                    .and_then(Item::as_array)
                    .and_then(|a| {
                        a.iter().find(|v| {
                            v.as_inline_table()
                                .and_then(|t| t.get("project"))
                                .and_then(Value::as_str)
                                == Some(project.as_str())
                        })
                    })
                    .cloned()
            };
            let mut new: Vec<Upstream> = Vec::new();
            for d in &found.depends_on {
                match old.iter().find(|(p, _, _)| p == &d.project) {
                    // Lines are a person's choice of refs, which a manifest never says.
                    Some((_, _, true)) => new.extend(kept(&d.project).map(Upstream::Kept)),
                    _ => new.push(Upstream::Read(d.clone())),
                }
            }
            // An upstream no manifest can name (it has no package) was put there
            // by a person, and stays.
            for (project, _, lines) in &old {
                let named = found.depends_on.iter().any(|d| &d.project == project);
                if !named && (!packaged.contains(project) || *lines) {
                    new.extend(kept(project).map(Upstream::Kept));
                }
            }
            let same = new.len() == old.len()
                && new.iter().zip(&old).all(|(n, (p, r, _))| match n {
                    Upstream::Kept(_) => true,
                    Upstream::Read(d) => &d.project == p && &d.range == r,
                });
            if same {
                continue;
            }
            let array = upstreams_array(&new);
            match table.get_mut("depends_on") {
                Some(item) => {
                    let decor = item.as_value().map(|v| v.decor().clone());
                    let mut value = Value::Array(array);
                    if let Some(decor) = decor {
                        *value.decor_mut() = decor;
                    }
                    *item = Item::Value(value);
                }
                None => {
                    table.insert("depends_on", Item::Value(Value::Array(array)));
                }
            }
            edited.changes.push(format!("{id}: depends_on changed"));
        }
        for t in added {
            tables.push(t);
        }
        edited.not_found = (0..tables.len())
            .filter(|i| !matched.contains(i))
            .filter_map(|i| tables.get(i).and_then(table_id))
            .filter(|id| !discovery.projects.iter().any(|p| &p.id == id))
            .collect();
    }
    edited.text = doc.to_string();
    Ok(edited)
}

/// One entry of a `depends_on` written again.
enum Upstream {
    /// As the manifests say it.
    Read(Dependency),
    /// As the file has it, copied whole.
    Kept(Value),
}

/// `depends_on` from `upstreams`, one per line.
fn upstreams_array(upstreams: &[Upstream]) -> Array {
    let mut array = Array::new();
    for u in upstreams {
        let mut value = match u {
            Upstream::Kept(v) => v.clone(),
            Upstream::Read(d) => Value::InlineTable(upstream_table(d)),
        };
        value.decor_mut().set_prefix("\n  ");
        value.decor_mut().set_suffix("");
        array.push_formatted(value);
    }
    if !array.is_empty() {
        array.set_trailing_comma(true);
        array.set_trailing("\n");
    }
    array
}

fn upstream_table(d: &Dependency) -> InlineTable {
    let mut t = InlineTable::new();
    t.insert("project", d.project.as_str().into());
    if let Some(r) = &d.range {
        t.insert("range", r.as_str().into());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(id: &str, package: Option<(&str, Ecosystem)>, deps: &[(&str, Option<&str>)]) -> Found {
        Found {
            id: ProjectId::parse(id).unwrap(),
            name: id.into(),
            package: package.map(|(name, ecosystem)| Package {
                ecosystem,
                name: name.into(),
            }),
            manifest: "package.json".into(),
            depends_on: deps
                .iter()
                .map(|(p, r)| Dependency {
                    project: ProjectId::parse(p).unwrap(),
                    range: r.map(str::to_owned),
                    lines: Vec::new(),
                })
                .collect(),
            outside: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn ids_are_made_from_the_packages_own_names() {
        assert_eq!(short_name(Ecosystem::Npm, "@acme/lib"), "lib");
        assert_eq!(
            short_name(Ecosystem::Maven, "org.acme:core-api"),
            "core-api"
        );
        assert_eq!(
            short_name(Ecosystem::Go, "github.com/acme/golib/v2"),
            "golib"
        );
        assert_eq!(short_name(Ecosystem::Go, "gopkg.in/yaml/v3"), "yaml");
        assert_eq!(slug("Acme Lib!"), "acme-lib");
        assert_eq!(slug("---"), "project");
        let taken = BTreeSet::from([ProjectId::parse("acme/lib").unwrap()]);
        assert_eq!(
            fresh_id("acme", "lib", Ecosystem::Cargo, &taken)
                .unwrap()
                .as_str(),
            "acme/lib-cargo"
        );
    }

    #[test]
    fn every_cycle_is_named_once_from_its_smallest_member() {
        let projects = [
            found("acme/a", None, &[("acme/b", None)]),
            found("acme/b", None, &[("acme/c", None)]),
            found("acme/c", None, &[("acme/a", None)]),
            found("acme/d", None, &[("acme/a", None)]),
        ];
        let found = cycles(&projects);
        let named: Vec<Vec<&str>> = found
            .iter()
            .map(|c| c.iter().map(ProjectId::as_str).collect())
            .collect();
        assert_eq!(named, [["acme/a", "acme/b", "acme/c", "acme/a"]]);
    }

    #[test]
    fn an_edit_keeps_what_a_person_wrote_and_changes_only_dependencies() {
        let text = r#"# Our projects.

[[project]]
id = "acme/app"   # the app
name = "App"
package = { ecosystem = "npm", name = "@acme/app" }
# Upstreams, kept by discover.
depends_on = [{ project = "acme/lib", range = "^1" }, { project = "acme/docker-base" }, { project = "acme/old", lines = [{ ref = "v1", range = "^1" }] }] # end
trigger = { kind = "webhook", url = "https://ci.example/app" }
"#;
        let discovery = Discovery {
            projects: vec![
                found(
                    "acme/app",
                    Some(("@acme/app", Ecosystem::Npm)),
                    &[("acme/lib", Some("^2")), ("acme/old", Some("^3"))],
                ),
                found("acme/lib", Some(("@acme/lib", Ecosystem::Npm)), &[]),
                found("acme/old", Some(("@acme/old", Ecosystem::Npm)), &[]),
            ],
            ..Discovery::default()
        };
        let edited = update(text, &discovery).unwrap();
        let want = text.replace(
            r#"[{ project = "acme/lib", range = "^1" }, { project = "acme/docker-base" }, { project = "acme/old", lines = [{ ref = "v1", range = "^1" }] }]"#,
            "[\n  { project = \"acme/lib\", range = \"^2\" },\n  { project = \"acme/old\", lines = [{ ref = \"v1\", range = \"^1\" }] },\n  { project = \"acme/docker-base\" },\n]",
        );
        assert!(
            edited.text.starts_with(&want),
            "{}\n---- wanted it to start with ----\n{want}",
            edited.text
        );
        assert!(edited.text[want.len()..].contains("id = \"acme/lib\""));
        assert_eq!(
            edited.changes,
            [
                "acme/app: depends_on changed",
                "acme/lib: added, from package.json",
                "acme/old: added, from package.json"
            ]
        );
        // Run again on its own output: nothing left to change.
        let again = update(&edited.text, &discovery).unwrap();
        assert_eq!(again.text, edited.text);
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }
}
