//! The rooms of each crate (its top-level modules) import each other without a circle:
//! read from the `crate::` and `super::` paths of every source file, so a new import
//! that closes one fails here with the circle named. Files inside one room may
//! import each other freely.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which rooms each room's files name, for the crate whose sources are in `src`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut rooms = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("the crate's sources") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        if (path.is_dir() || path.extension().is_some_and(|e| e == "rs"))
            && !matches!(name, "lib" | "main")
        {
            rooms.insert(name.to_owned());
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(src) {
        let module = module_path(src, &file);
        let Some(room) = module.first().cloned() else {
            continue; // lib.rs and main.rs are the crate itself
        };
        let text = std::fs::read_to_string(&file).expect("a source file");
        for named in named_from_root(&text, &module) {
            if named != room && rooms.contains(&named) {
                edges.entry(room.clone()).or_default().insert(named);
            }
        }
    }
    edges
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module a file is: `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`; the
/// crate root is empty.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file of the crate");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
        parts.clear();
    }
    parts
}

/// The first segment after the crate root of every path in `text` that starts there:
/// `crate::x`, `crate::{x, y::z}`, and `super::…::x` climbing to the root from
/// `module`. Comments are skipped.
fn named_from_root(text: &str, module: &[String]) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut named = BTreeSet::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let starts_word = at == 0 || !is_ident(bytes[at - 1]);
        let after = if starts_word && rest.starts_with("crate::") {
            Some(at + "crate::".len())
        } else if starts_word && rest.starts_with("super::") {
            // Count the supers; a path reaching the root names a room.
            let mut depth = 0;
            let mut end = at;
            while code[end..].starts_with("super::") {
                depth += 1;
                end += "super::".len();
            }
            if depth != module.len() {
                at = end;
                continue;
            }
            Some(end)
        } else {
            None
        };
        match after {
            Some(start) => {
                if code[start..].starts_with('{') {
                    let close = matching_brace(&code, start);
                    for item in top_level_items(&code[start + 1..close]) {
                        named.insert(item);
                    }
                    at = close;
                } else {
                    let end = code[start..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(code.len(), |n| start + n);
                    named.insert(code[start..end].to_owned());
                    at = end;
                }
            }
            None => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    named
}

fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// The first segment of each item of a `{…}` group: `a, b::c, d::{e}` gives a, b, d.
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        if depth == 0 || c == '{' {
            current.push(c);
        }
    }
    items.push(current);
    items
        .iter()
        .filter_map(|item| {
            let first = item.trim().split("::").next()?.trim();
            let first = first.split_whitespace().next()?;
            (!first.is_empty() && first != "self").then(|| first.to_owned())
        })
        .collect()
}

/// Every circle among the rooms: the strongly connected components of more than one
/// room (Tarjan's algorithm).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Search<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, room: &'a str) {
            let n = self.index.len();
            self.index.insert(room, n);
            self.low.insert(room, n);
            self.stack.push(room);
            for next in self.edges.get(room).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[room].min(self.low[next]);
                    self.low.insert(room, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[room].min(self.index[next]);
                    self.low.insert(room, low);
                }
            }
            if self.low[room] == self.index[room] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    component.push(top.to_owned());
                    if top == room {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for room in edges.keys() {
        if !search.index.contains_key(room.as_str()) {
            search.visit(room);
        }
    }
    search.found
}

fn assert_no_circle(krate: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let edges = imports(&src);
    assert!(!edges.is_empty(), "{krate}: no imports read from {src:?}");
    let found = circles(&edges);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let uses: Vec<String> = c
                .iter()
                .map(|room| {
                    let inside: Vec<&str> = edges[room]
                        .iter()
                        .filter(|r| c.contains(r))
                        .map(String::as_str)
                        .collect();
                    format!("{room} uses {}", inside.join(", "))
                })
                .collect();
            uses.join("; ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "{krate}/src has import circles between rooms: {}",
        described.join(" | ")
    );
}

#[test]
fn the_daemons_rooms_import_each_other_without_a_circle() {
    assert_no_circle("daemon");
}

#[test]
fn the_clients_rooms_import_each_other_without_a_circle() {
    assert_no_circle("tui");
}

#[test]
fn the_protocols_rooms_import_each_other_without_a_circle() {
    assert_no_circle("protocol");
}

#[test]
fn a_circle_is_found_through_groups_and_supers() {
    let a = named_from_root(
        "use crate::{b::X, c};\nuse super::super::d::Y; // crate::e\n",
        &["a".into(), "inner".into()],
    );
    assert_eq!(
        a,
        BTreeSet::from(["b".to_owned(), "c".to_owned(), "d".to_owned()])
    );
    let edges = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("d".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circles(&edges), vec![vec!["a", "b", "c"]]);
}
