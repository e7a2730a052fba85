//! Page contexts are typed: every page takes a `Serialize` struct of its
//! area's `views.rs` (`Page::view`); `Page` has no constructor that takes a
//! JSON value, so a misspelt key is a compile error or, for a key only the
//! template names, a render error in strict mode (the link walk renders
//! every page). What `json!` remains is counted per area below and may only
//! fall: JSON documents (APIs, exports, credentials), job payloads and email
//! contexts, which are not page contexts. A new `json!` fails here, and so
//! does a count that fell without the list following it (lower it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `json!` outside `#[cfg(test)]` code, per top-level module, today.
const JSON_BUDGET: &[(&str, usize)] = &[
    ("accounts", 11),
    ("certificates", 23),
    // Ten JSON documents, and the canonical form a manifest's chain hashes.
    ("consent", 11),
    ("exams", 5),
    ("forums", 2),
    // The Studio's image upload answer (JSON), the reindex job's payload,
    // two emails and the list of runs other areas' forms offer.
    ("learning", 6),
    ("notify", 5),
    ("orgs", 42),
    ("privacy", 21),
    ("web", 6),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `json!` of a file before its test module.
fn json_outside_tests(code: &str) -> usize {
    code.split("#[cfg(test)]").next().unwrap_or_default().matches("json!").count()
}

/// The count of `json!` per top-level module, in code outside test modules.
fn json_counts() -> BTreeMap<String, usize> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src").flatten() {
        let path = entry.path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path.clone());
        }
        let n: usize =
            files.iter().map(|f| json_outside_tests(&std::fs::read_to_string(f).expect("readable source"))).sum();
        if n > 0 {
            counts.insert(name, n);
        }
    }
    counts
}

#[test]
fn json_page_contexts_only_decrease() {
    let counts = json_counts();
    let budget: BTreeMap<String, usize> = JSON_BUDGET.iter().map(|(a, n)| (a.to_string(), *n)).collect();
    let mut problems = Vec::new();
    for (area, n) in &counts {
        match budget.get(area) {
            None => problems.push(format!("{area} has {n} json! and is not listed: use a typed view (Page::view)")),
            Some(b) if n > b => problems.push(format!(
                "{area} has {n} json!, more than its {b}: give the new page a Serialize struct in {area}/views.rs"
            )),
            Some(b) if n < b => problems.push(format!("{area} has {n} json!, fewer than {b}: lower its entry to {n}")),
            Some(_) => {}
        }
    }
    for area in budget.keys().filter(|a| !counts.contains_key(*a)) {
        problems.push(format!("{area} has no json! left: remove its entry"));
    }
    assert!(problems.is_empty(), "{problems:#?}\ncounts today: {counts:?}");
}

/// The check itself: code counts, a test module does not, and every area
/// is counted (learning, once left to its rewrite, too).
#[test]
fn the_check_counts_json_in_code_but_not_in_tests() {
    let sample = "fn a() -> Value { json!({ \"a\": json!(1) }) }\n#[cfg(test)]\nmod tests { fn b() { json!(1); } }";
    assert_eq!(json_outside_tests(sample), 2);
    assert_eq!(json_outside_tests("fn a() {}"), 0);
    let counts = json_counts();
    assert!(counts.contains_key("learning"), "learning is counted: {counts:?}");
    assert!(counts.contains_key("accounts") && !counts.contains_key("db"), "{counts:?}");
}

/// Every page renders a typed view: `Page` has no constructor taking a
/// JSON value, and no `Page::view` call is handed one built with `json!`.
#[test]
fn no_page_context_is_built_with_json() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let code = std::fs::read_to_string(&file).expect("readable source");
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, _) in code.match_indices("Page::view(") {
            let call: String = code[at..].chars().take_while(|c| *c != ';').collect();
            if call.contains("json!(") || call.contains("serde_json::Value") {
                found.push(format!("{}: {}", file.display(), call.lines().next().unwrap_or_default()));
            }
        }
        let standalone = |at: usize| !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if code.match_indices("Page::new(").any(|(at, _)| standalone(at)) {
            found.push(format!("{}: Page::new", file.display()));
        }
    }
    assert!(found.is_empty(), "page contexts built from JSON: {found:#?}");
}
