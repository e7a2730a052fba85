//! `docs/PROMISES.md` cannot drift from the code: every promise ID that code,
//! templates, docs or tests cite is listed there, every listed promise names
//! at least one test, and every test it names still exists.
//!
//! A promise is cited as `ACC-8` in text, or by a test name that starts with
//! lowercased IDs (`frm_1_frm_3_…`). The families (`ACC`, `CRS`, …) are the
//! ones the page's headings declare, so a new ID in a known family is caught.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

const PAGE: &str = "docs/PROMISES.md";
/// Where promises are cited, relative to the repository root.
const CITING: &[&str] = &["src", "tests", "partner-adapters", "templates", "docs", "static", "benches", "README.md"];
const TEXT_FILES: &[&str] = &["rs", "hbs", "md", "css", "js", "mjs", "toml", "html", "sql", "py", "txt"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the page says: the families its headings declare, and per promise ID
/// the test names its entry gives; `named` is every test name on the page.
struct Page {
    families: BTreeSet<String>,
    entries: BTreeMap<String, Vec<String>>,
    named: BTreeSet<String>,
    duplicates: Vec<String>,
}

fn parse(page: &str) -> Page {
    let family = Regex::new(r"^## .*\(([A-Z]{3})\)\s*$").unwrap();
    let entry = Regex::new(r"^- \*\*([A-Z]{3}-[0-9]+)\*\* ").unwrap();
    let test_name = Regex::new(r"`([a-z_][a-z0-9_]*(?:::[a-z0-9_]+)+)`").unwrap();
    let mut parsed =
        Page { families: BTreeSet::new(), entries: BTreeMap::new(), named: BTreeSet::new(), duplicates: Vec::new() };
    let mut current: Option<String> = None;
    for line in page.lines() {
        if let Some(c) = family.captures(line) {
            parsed.families.insert(c[1].to_string());
            current = None;
        } else if let Some(c) = entry.captures(line) {
            let id = c[1].to_string();
            if parsed.entries.insert(id.clone(), Vec::new()).is_some() {
                parsed.duplicates.push(id.clone());
            }
            current = Some(id);
        } else if line.starts_with('#') || !line.starts_with("  ") {
            current = None;
        }
        for c in test_name.captures_iter(line) {
            parsed.named.insert(c[1].to_string());
            if let Some(id) = &current {
                parsed.entries.get_mut(id).unwrap().push(c[1].to_string());
            }
        }
    }
    parsed
}

fn text_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "node_modules" || name == "target" {
            return;
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
        children.sort();
        for child in children {
            text_files(&child, out);
        }
    } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| TEXT_FILES.contains(&e)) {
        out.push(path.to_path_buf());
    }
}

/// Every promise ID of the given families cited outside the page, with the
/// first file citing it.
fn cited(root: &Path, families: &BTreeSet<String>) -> BTreeMap<String, String> {
    let upper: Vec<&str> = families.iter().map(String::as_str).collect();
    let lower: Vec<String> = families.iter().map(|f| f.to_lowercase()).collect();
    let in_text = Regex::new(&format!(r"\b({})-([0-9]+)\b", upper.join("|"))).unwrap();
    let one = format!(r"(?:{})_[0-9]+_", lower.join("|"));
    let in_name = Regex::new(&format!(r"\b((?:{one})+)")).unwrap();
    let split = Regex::new(&format!(r"({})_([0-9]+)_", lower.join("|"))).unwrap();
    let mut files = Vec::new();
    for top in CITING {
        text_files(&root.join(top), &mut files);
    }
    let mut found = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if rel == PAGE {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let mut ids = Vec::new();
        for c in in_text.captures_iter(&text) {
            ids.push(format!("{}-{}", &c[1], &c[2]));
        }
        for c in in_name.captures_iter(&text) {
            for part in split.captures_iter(&c[1]) {
                ids.push(format!("{}-{}", part[1].to_uppercase(), &part[2]));
            }
        }
        for id in ids {
            found.entry(id).or_insert_with(|| rel.clone());
        }
    }
    found
}

/// The functions, modules and `on_both!` tests a Rust file declares (read once).
fn declared_in(file: &Path) -> BTreeSet<String> {
    static CACHE: Mutex<BTreeMap<PathBuf, BTreeSet<String>>> = Mutex::new(BTreeMap::new());
    static ITEM: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:\bfn|\bmod|on_both\w*!\()\s*([a-z_][a-z0-9_]*)").unwrap());
    CACHE
        .lock()
        .unwrap()
        .entry(file.to_path_buf())
        .or_insert_with(|| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            ITEM.captures_iter(&text).map(|c| c[1].to_string()).collect()
        })
        .clone()
}

/// Whether a test named as on the page exists: `privacy::rgt_1_…` in
/// `tests/it/privacy.rs`, `lyceum::a::b::tests::x` in `src/a/b.rs` (or
/// `src/a/b/mod.rs`), `partner_adapters::…` in `partner-adapters/src/`.
fn test_exists(root: &Path, name: &str) -> bool {
    let mut segments: Vec<&str> = name.split("::").collect();
    let test = segments.pop().unwrap();
    let (mut dir, mut file) = match segments.first() {
        Some(&"lyceum") => (root.join("src"), Some(root.join("src/lib.rs"))),
        Some(&"partner_adapters") => {
            (root.join("partner-adapters/src"), Some(root.join("partner-adapters/src/lib.rs")))
        }
        _ => (root.join("tests/it"), None),
    };
    if file.is_some() {
        segments.remove(0);
    }
    let mut inline = Vec::new();
    for segment in segments {
        if !inline.is_empty() {
            inline.push(segment);
        } else if dir.join(format!("{segment}.rs")).is_file() {
            file = Some(dir.join(format!("{segment}.rs")));
            dir = dir.join(segment);
        } else if dir.join(segment).join("mod.rs").is_file() {
            file = Some(dir.join(segment).join("mod.rs"));
            dir = dir.join(segment);
        } else {
            inline.push(segment);
        }
    }
    let Some(file) = file else { return false };
    let declared = declared_in(&file);
    inline.iter().all(|m| declared.contains(*m)) && declared.contains(test)
}

/// What is wrong between the page's text and the repository at `root`.
fn problems(root: &Path, page: &str) -> Vec<String> {
    let page = parse(page);
    let mut problems = Vec::new();
    if page.families.is_empty() || page.entries.is_empty() {
        problems.push(format!("{PAGE} declares no promise families or no promises"));
    }
    for id in &page.duplicates {
        problems.push(format!("{id} is listed twice in {PAGE}"));
    }
    for (id, file) in cited(root, &page.families) {
        if !page.entries.contains_key(&id) {
            problems.push(format!("{id} is cited in {file} but not listed in {PAGE}"));
        }
    }
    for (id, tests) in &page.entries {
        if tests.is_empty() {
            problems.push(format!("{id} names no test that proves it"));
        }
    }
    for name in &page.named {
        if !test_exists(root, name) {
            problems.push(format!("{PAGE} names `{name}`, which is not a test in the repository"));
        }
    }
    problems
}

#[test]
fn every_cited_promise_is_listed_with_tests_that_exist() {
    let root = root();
    let page = std::fs::read_to_string(root.join(PAGE)).unwrap();
    let problems = problems(&root, &page);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The walk did find citations: the page is not checked against nothing.
    let parsed = parse(&page);
    assert!(cited(&root, &parsed.families).len() >= 50);
}

#[test]
fn the_check_notices_an_unlisted_promise_a_bare_one_and_a_vanished_test() {
    let root = root();
    let page = std::fs::read_to_string(root.join(PAGE)).unwrap();
    let entry = Regex::new(r"(?m)^- \*\*SEC-1\*\* .*\n  Tests: .*\n").unwrap();
    assert!(entry.is_match(&page), "the page lists SEC-1 with its tests");
    let without = entry.replace(&page, "");
    let bare = page.replace(
        "`security::sec_1_every_form_is_csrf_protected`",
        "`security::sec_1_every_form_is_csrf_protected_once_upon_a_time`",
    );
    assert!(problems(&root, &without).iter().any(|p| p.starts_with("SEC-1 is cited in ")), "unlisted");
    assert!(
        problems(&root, &bare).iter().any(|p| p.contains("sec_1_every_form_is_csrf_protected_once_upon_a_time")),
        "vanished test"
    );
    let no_tests = Regex::new(r"(?m)^(- \*\*SEC-1\*\* .*\n)  Tests: .*\n").unwrap().replace(&page, "$1");
    assert!(problems(&root, &no_tests).contains(&"SEC-1 names no test that proves it".to_string()), "bare");
    assert!(test_exists(&root, "lyceum::kernel::vault::tests::seals_opens_and_rotates_by_rewrapping"));
    assert!(!test_exists(&root, "lyceum::kernel::vault::tests::no_such_test"));
    assert!(!test_exists(&root, "no_such_area::rgt_1_a_learner_downloads_a_copy_of_their_data"));
}
