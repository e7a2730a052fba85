//! The direction of dependencies between the library's top-level modules
//! (`src/<module>` or `src/<module>.rs`), read from the `crate::` paths in
//! their code. A module that uses another through `crate::other` depends on
//! it. Dependencies point one way (see the picture in `docs/ARCHITECTURE.md`):
//! no two modules use each other, directly or through others, so an import
//! that closes a circle fails here. A lower area that needs something of an
//! area built on it declares a hook (`accounts::hooks`, `learning::hooks`,
//! `consent::hooks`) that `lib.rs` fills in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules declared in `lib.rs`.
fn modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|m| m.trim_end_matches(';').trim().to_string())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first identifier of each path in `crate::…` occurrences of `code`,
/// including each branch of a `crate::{a, b::c}` group. Comments are skipped.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // e.g. `$crate::`, `my_crate::`
        }
        let tail = rest.trim_start();
        if let Some(group) = tail.strip_prefix('{') {
            // Top-level items of the group: split at commas outside braces.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(tail));
        }
    }
    found.remove("");
    found
}

/// Which top-level module uses which, from the source tree.
fn graph() -> Graph {
    let modules = modules();
    let mut graph = Graph::new();
    for m in &modules {
        let mut files = Vec::new();
        let dir = src().join(m);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src().join(format!("{m}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(!files.is_empty(), "module {m} has no source");
        let uses = graph.entry(m.clone()).or_default();
        for f in files {
            let code = std::fs::read_to_string(&f).expect("a source file");
            uses.extend(crate_paths(&code).into_iter().filter(|d| d != m && modules.contains(d)));
        }
    }
    graph
}

/// Tarjan's strongly connected components; only those of two or more modules.
fn circles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The dependencies that lie on a circle: both ends in one component.
fn circular_edges(graph: &Graph) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for component in circles(graph) {
        for from in &component {
            for to in graph.get(from).into_iter().flatten() {
                if component.contains(to) {
                    out.insert((from.clone(), to.clone()));
                }
            }
        }
    }
    out
}

/// What is wrong with `graph`: each dependency that lies on a circle.
fn problems(graph: &Graph) -> Vec<String> {
    circular_edges(graph)
        .into_iter()
        .map(|(a, b)| format!("`{a}` uses `{b}`, which closes a circle of modules"))
        .collect()
}

#[test]
fn the_modules_depend_on_each_other_in_no_circle() {
    let graph = graph();
    let found = problems(&graph);
    let components: Vec<String> =
        circles(&graph).iter().map(|c| c.iter().cloned().collect::<Vec<_>>().join(", ")).collect();
    assert!(found.is_empty(), "{}\n(modules on a circle now: {components:?})", found.join("\n"));
}

#[test]
fn the_check_notices_an_import_that_closes_a_circle() {
    let mut graph = graph();
    assert!(problems(&graph).is_empty());
    // `db` sits at the bottom; importing a business area from it would
    // close a circle through every area that uses the database.
    graph.get_mut("db").expect("the db module").insert("accounts".into());
    let found = problems(&graph);
    assert!(found.iter().any(|p| p.contains("`db` uses `accounts`")), "{found:?}");
    // Parsing: grouped imports and inline paths count; comments and `$crate` do not.
    let paths = crate_paths(
        "use crate::{db::{Conn, now}, web::AppError};\nlet x = crate::jobs::enqueue();\n// crate::forums\n$crate::notify",
    );
    assert_eq!(paths, ["db", "jobs", "web"].into_iter().map(String::from).collect());
}
