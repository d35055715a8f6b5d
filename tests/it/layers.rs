//! The source's layers, read from its `crate::`, `super::` and child-module paths: no module
//! uses one above it (docs/architecture.md draws them), and no files depend on each other in
//! a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module may use its own layer and those below.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("config", 1),
    ("metrics", 1),
    ("worker", 1),
    ("store", 2),
    ("content", 3),
    ("feeds", 3),
    ("site", 3),
    ("mail", 3),
    ("bounces", 3),
    ("insight", 3),
    ("subscribers", 4),
    ("digest", 4),
    ("websub", 4),
    ("auth", 4),
    ("schedule", 5),
    ("doctor", 5),
    ("startup", 6),
    ("web", 7),
    ("cli", 7),
];

type ModPath = Vec<String>;

struct Source {
    files: BTreeMap<ModPath, PathBuf>,
    /// `pub use child::{A, B}` in a module: where `module::A` really lives.
    exports: BTreeMap<ModPath, ModPath>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_path(file: &Path) -> ModPath {
    let relative = file.strip_prefix(src_dir()).unwrap().with_extension("");
    let mut parts: ModPath = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// The identifier path starting at `text` (`store::subscribers::find`), up to a brace.
fn path_at(text: &str) -> Vec<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every path that follows `prefix` in `text`, including each item of `prefix{a, b::c}`.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                found.push(path_at(item.trim()));
            }
        } else {
            found.push(path_at(rest));
        }
    }
    found
}

/// The code outside comments, re-exports, module declarations and the test module at the
/// end of a file (tests may reach anything they check).
fn code_lines(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("//") || l.starts_with("pub use ") || l.starts_with("mod ") || l.starts_with("pub mod "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Source {
    fn read() -> Self {
        let mut files = BTreeMap::new();
        let mut exports = BTreeMap::new();
        for entry in walkdir::WalkDir::new(src_dir()) {
            let entry = entry.unwrap();
            if entry.path().extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let path = entry.path().to_path_buf();
            let module = module_path(&path);
            if entry.file_name() == "mod.rs" || entry.file_name() == "lib.rs" {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
                    let Some((child, items)) = line.trim_end_matches(';').split_once("::") else {
                        continue;
                    };
                    let items = items.trim_start_matches('{').trim_end_matches('}');
                    for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                        let name = item.rsplit("::").next().unwrap().rsplit(" as ").next().unwrap();
                        let mut from = module.clone();
                        from.push(name.to_owned());
                        let mut to = module.clone();
                        to.push(child.to_owned());
                        to.extend(item.split("::").take(item.split("::").count() - 1).map(str::to_owned));
                        exports.insert(from, to);
                    }
                }
            }
            if module.is_empty() {
                continue;
            }
            files.insert(module, path);
        }
        Self { files, exports }
    }

    /// The file that defines what `path` names: the longest prefix that is a file, after
    /// following re-exports.
    fn resolve(&self, path: &[String]) -> Option<ModPath> {
        for n in (1..=path.len()).rev() {
            let prefix = &path[..n];
            if n < path.len() {
                let mut named = prefix.to_vec();
                named.push(path[n].clone());
                if let Some(real) = self.exports.get(&named) {
                    let mut through = real.clone();
                    through.extend_from_slice(&path[n + 1..]);
                    return self.resolve(&through);
                }
            }
            if self.files.contains_key(prefix) {
                return Some(prefix.to_vec());
            }
        }
        None
    }

    /// Which files each file uses.
    fn edges(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut edges = BTreeMap::new();
        for (module, path) in &self.files {
            let text = std::fs::read_to_string(path).unwrap();
            let children: Vec<&str> = text
                .lines()
                .filter_map(|l| {
                    let l = l.trim();
                    l.strip_prefix("pub mod ")
                        .or_else(|| l.strip_prefix("mod "))?
                        .strip_suffix(';')
                })
                .collect();
            let code = code_lines(&text);
            let parent = &module[..module.len() - 1];
            let mut wanted: Vec<ModPath> = paths_after(&code, "crate::");
            for relative in paths_after(&code, "super::") {
                let mut p = parent.to_vec();
                p.extend(relative);
                wanted.push(p);
            }
            for child in children {
                if !paths_after(&code, &format!("{child}::")).is_empty() {
                    let mut p = module.clone();
                    p.push(child.to_owned());
                    wanted.push(p);
                }
            }
            let used: BTreeSet<ModPath> = wanted
                .iter()
                .filter_map(|p| self.resolve(p))
                .filter(|p| p != module)
                .collect();
            edges.insert(module.clone(), used);
        }
        edges
    }
}

fn layer(module: &ModPath) -> u8 {
    let top = module[0].as_str();
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .unwrap_or_else(|| panic!("src/{top} is in no layer: add it to LAYERS and to docs/architecture.md"))
        .1
}

#[test]
fn no_module_uses_one_above_it() {
    let source = Source::read();
    let mut wrong = Vec::new();
    for (from, uses) in source.edges() {
        for to in uses {
            if layer(&to) > layer(&from) {
                wrong.push(format!("{} uses {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "upward dependencies:\n{}", wrong.join("\n"));
}

/// Tarjan's strongly connected components: any with more than one file is a cycle.
fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in &s.edges[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_files_depend_on_each_other_in_a_cycle() {
    let found = cycles(&Source::read().edges());
    let described: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(|m| m.join("::")).collect::<Vec<_>>().join(" <-> "))
        .collect();
    assert!(described.is_empty(), "cycles:\n{}", described.join("\n"));
}

#[test]
fn the_reader_finds_dependencies_written_every_way() {
    // The check is only as good as its reading of the source: these are the forms used.
    let text = "use crate::{config::Settings, store::{self, Db}};\nfn f() { super::Site::new(); crate::domain::Slug::parse(); }";
    let crate_paths = paths_after(&code_lines(text), "crate::");
    assert!(crate_paths.contains(&vec!["config".to_owned(), "Settings".to_owned()]));
    assert!(crate_paths.contains(&vec!["store".to_owned()]));
    assert!(crate_paths.contains(&vec!["domain".to_owned(), "Slug".to_owned(), "parse".to_owned()]));
    assert_eq!(
        paths_after(text, "super::"),
        vec![vec!["Site".to_owned(), "new".to_owned()]]
    );
    // A re-export is followed to the file that defines the item.
    let source = Source::read();
    assert_eq!(
        source.resolve(&["site".into(), "DocumentCache".into()]),
        Some(vec!["site".to_owned(), "cache".to_owned()])
    );
    // And a real dependency is seen.
    let edges = source.edges();
    assert!(edges[&vec!["web".to_owned()]].contains(&vec!["startup".to_owned()]));
}
