//! Course search: the same behaviour from the embedded tantivy index and from
//! Meilisearch (typos, prefixes, member names, upsert, remove, clear, reopen).

use std::sync::Arc;

use lyceum::search::{self, CourseDocument, SearchIndex};

use crate::common;

const PYTHON: i64 = 1;
const STATISTICS: i64 = 2;
const CLIMATE: i64 = 3;
const ESSAYS: i64 = 4;

fn course(id: i64, title: &str, summary: &str, description: &str, member: &str, subjects: &[&str]) -> CourseDocument {
    CourseDocument {
        id,
        slug: title.to_lowercase().replace(' ', "-"),
        title: title.into(),
        summary: summary.into(),
        description: description.into(),
        member: member.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        language: "en".into(),
    }
}

fn catalog() -> Vec<CourseDocument> {
    vec![
        course(
            PYTHON,
            "Introduction to Python",
            "Write your first programs and learn to think like a programmer.",
            "Variables, loops and functions, then small projects: a quiz game, a budget tracker \
             and a program that reads files.",
            "Northbridge University",
            &["Computer Science", "Programming"],
        ),
        course(
            STATISTICS,
            "Statistics for Everyone",
            "Averages, spread and uncertainty without the jargon.",
            "Read charts critically, understand sampling and surveys, and see why correlation \
             is not causation.",
            "Open Coast College",
            &["Mathematics", "Data Analysis"],
        ),
        course(
            CLIMATE,
            "Climate Science Basics",
            "How the greenhouse effect works and what the evidence shows.",
            "Carbon dioxide, oceans, ice sheets and weather records: the physics behind a warming \
             planet, explained step by step.",
            "Halden Polytechnic",
            &["Earth Science", "Environment"],
        ),
        course(
            ESSAYS,
            "Writing Better Essays",
            "Plan, draft and revise essays that make a clear argument.",
            "Thesis statements, paragraph structure, evidence and editing, with feedback on \
             three short essays.",
            "Open Coast College",
            &["Humanities", "Writing"],
        ),
    ]
}

/// Course 4 with a new title and no word of its old one left anywhere.
fn renamed_essays() -> CourseDocument {
    course(
        ESSAYS,
        "Persuasive Speaking Workshop",
        "Plan, rehearse and deliver a talk people remember.",
        "Structure an argument, handle questions from the audience and calm your nerves.",
        "Open Coast College",
        &["Humanities", "Rhetoric"],
    )
}

async fn hits(index: &Arc<dyn SearchIndex>, query: &str) -> Vec<i64> {
    let found = index.search(query, 10).await.unwrap();
    let mut unique = found.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), found.len(), "{query:?}: duplicate ids in {found:?}");
    found
}

async fn first_hit(index: &Arc<dyn SearchIndex>, query: &str) -> Option<i64> {
    hits(index, query).await.first().copied()
}

/// The behaviour both backends must share. `reopen` opens the same index again
/// (same directory, or same Meilisearch index); this function drops its first
/// handle before calling it, so what the second one finds came from storage.
async fn exercise_backend(index: Arc<dyn SearchIndex>, reopen: impl Fn() -> Arc<dyn SearchIndex>) {
    let backend = index.backend_name();
    // Twice: upsert is idempotent.
    index.upsert(catalog()).await.unwrap();
    index.upsert(catalog()).await.unwrap();

    assert_eq!(hits(&index, "").await, Vec::<i64>::new(), "{backend}: empty query");
    assert_eq!(hits(&index, "  \t ").await, Vec::<i64>::new(), "{backend}: blank query");
    assert_eq!(first_hit(&index, "python").await, Some(PYTHON), "{backend}: exact word");
    assert_eq!(first_hit(&index, "pyhton").await, Some(PYTHON), "{backend}: transposed letters");
    assert_eq!(first_hit(&index, "statistcs").await, Some(STATISTICS), "{backend}: missing letter");
    assert_eq!(first_hit(&index, "clim").await, Some(CLIMATE), "{backend}: prefix of the last word");
    assert_eq!(first_hit(&index, "Halden").await, Some(CLIMATE), "{backend}: member name");
    let mut open_coast = hits(&index, "open coast college").await;
    assert!(open_coast.len() >= 2, "{backend}: member with two courses: {open_coast:?}");
    open_coast.truncate(2);
    open_coast.sort();
    assert_eq!(open_coast, [STATISTICS, ESSAYS], "{backend}: both of the member's courses first");
    assert_eq!(index.search("open coast college", 1).await.unwrap().len(), 1, "{backend}: limit");
    assert_eq!(first_hit(&index, "Essays").await, Some(ESSAYS), "{backend}: before the rename");

    // A changed title replaces the old document rather than adding a second one.
    index.upsert(vec![renamed_essays()]).await.unwrap();
    assert_eq!(hits(&index, "persuasive").await, [ESSAYS], "{backend}: new title");
    assert!(!hits(&index, "essays").await.contains(&ESSAYS), "{backend}: old title is gone");
    assert_eq!(first_hit(&index, "rhetoric").await, Some(ESSAYS), "{backend}: new subject");

    index.remove(PYTHON).await.unwrap();
    assert!(!hits(&index, "python").await.contains(&PYTHON), "{backend}: removed");
    index.remove(PYTHON).await.unwrap();
    assert_eq!(first_hit(&index, "statistics").await, Some(STATISTICS), "{backend}: others stay after remove");

    drop(index);
    let index = reopen();
    assert_eq!(first_hit(&index, "statistics").await, Some(STATISTICS), "{backend}: kept after reopen");
    assert_eq!(first_hit(&index, "climate").await, Some(CLIMATE), "{backend}: kept after reopen");
    assert_eq!(hits(&index, "persuasive").await, [ESSAYS], "{backend}: renamed course kept after reopen");
    assert!(!hits(&index, "python").await.contains(&PYTHON), "{backend}: removal kept after reopen");

    index.clear().await.unwrap();
    for query in ["statistics", "climate", "persuasive", "open coast college"] {
        assert_eq!(hits(&index, query).await, Vec::<i64>::new(), "{backend}: {query:?} after clear");
    }
    // Still usable after a clear.
    index.upsert(vec![renamed_essays()]).await.unwrap();
    assert_eq!(hits(&index, "persuasive").await, [ESSAYS], "{backend}: usable after clear");
}

#[rocket::async_test]
async fn embedded_index_tolerates_typos_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let open = || search::open(dir.path(), None, None, "courses").unwrap();
    let index = open();
    assert_eq!(index.backend_name(), "embedded");
    assert!(dir.path().join("search").is_dir(), "the index lives in data_dir/search");
    exercise_backend(index, open).await;
}

#[rocket::async_test]
async fn embedded_index_opened_twice_in_one_process_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let first = search::open(dir.path(), None, None, "courses").unwrap();
    let second = search::open(dir.path(), None, None, "courses").unwrap();
    first.upsert(catalog()).await.unwrap();
    assert_eq!(first_hit(&second, "climate").await, Some(CLIMATE));
    second.remove(CLIMATE).await.unwrap();
    assert_eq!(first_hit(&first, "climate").await, None);
}

#[rocket::async_test]
async fn open_picks_the_backend_and_needs_no_server_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let blank = search::open(dir.path(), Some("  "), None, "courses").unwrap();
    assert_eq!(blank.backend_name(), "embedded", "a blank URL means not configured");
    drop(blank);
    // Nothing listens on port 1: opening still succeeds, the first real request fails cleanly.
    let meili = search::open(dir.path(), Some("http://127.0.0.1:1/"), None, "courses").unwrap();
    assert_eq!(meili.backend_name(), "meilisearch");
    assert_eq!(meili.search(" ", 10).await.unwrap(), Vec::<i64>::new(), "blank queries never reach the server");
    let err = meili.search("python", 10).await.unwrap_err();
    assert!(matches!(err, search::SearchError::Meili(_)), "{err:?}");
}

#[rocket::async_test]
async fn meilisearch_index_tolerates_typos_and_persists() {
    let Some((url, key)) = common::meilisearch() else { return };
    let name = common::unique_index_name();
    let dir = tempfile::tempdir().unwrap();
    let open = || search::open(dir.path(), Some(&url), key.as_deref(), &name).unwrap();
    let index = open();
    assert_eq!(index.backend_name(), "meilisearch");
    exercise_backend(index, open).await;

    // Only reached on success; a failed run leaves its uniquely named index for inspection.
    let client = meilisearch_sdk::client::Client::new(url.trim_end_matches('/'), key.as_deref()).unwrap();
    let task = client.delete_index(&name).await.unwrap();
    task.wait_for_completion(&client, None, None).await.unwrap();
}

fn thread(id: i64, forum_id: i64, title: &str, posts: &[&str]) -> search::ThreadDocument {
    search::ThreadDocument { id, forum_id, title: title.into(), posts: posts.iter().map(|p| p.to_string()).collect() }
}

/// Forum threads: any post's words find the thread, and a search confined to
/// some forums finds nothing outside them.
async fn exercise_threads(index: Arc<dyn SearchIndex<search::ThreadDocument>>) {
    let backend = index.backend_name();
    index
        .upsert(vec![
            thread(1, 10, "Loops in Python", &["How do comprehensions work?", "See the generator chapter."]),
            thread(2, 20, "Evening study group", &["We meet on Tuesdays to revise comprehensions."]),
            thread(3, 30, "Exam dates", &["When is the final?"]),
        ])
        .await
        .unwrap();
    let mut all = index.search("comprehensions", 10).await.unwrap();
    all.sort_unstable();
    assert_eq!(all, [1, 2], "{backend}: every forum");
    assert_eq!(index.search_in("comprehensoins", Some(vec![20, 30]), 10).await.unwrap(), [2], "{backend}: typo");
    assert_eq!(index.search_in("generator", Some(vec![20, 30]), 10).await.unwrap(), Vec::<i64>::new());
    assert_eq!(index.search_in("generator", Some(vec![]), 10).await.unwrap(), Vec::<i64>::new(), "{backend}");
    index.upsert(vec![thread(1, 10, "Loops in Python", &["[removed at the author's request]"])]).await.unwrap();
    assert_eq!(index.search("generator", 10).await.unwrap(), Vec::<i64>::new(), "{backend}: replaced");
    index.remove(2).await.unwrap();
    assert_eq!(index.search("tuesdays", 10).await.unwrap(), Vec::<i64>::new(), "{backend}: removed");
}

#[rocket::async_test]
async fn embedded_forum_index_confines_search_to_forums() {
    let dir = tempfile::tempdir().unwrap();
    let index = search::open_for::<search::ThreadDocument>(dir.path(), None, None, "forum_threads").unwrap();
    assert!(dir.path().join("search-forums").is_dir(), "beside the course index, not in it");
    exercise_threads(index).await;
}

#[rocket::async_test]
async fn meilisearch_forum_index_confines_search_to_forums() {
    let Some((url, key)) = common::meilisearch() else { return };
    let name = common::unique_index_name();
    let dir = tempfile::tempdir().unwrap();
    let index = search::open_for::<search::ThreadDocument>(dir.path(), Some(&url), key.as_deref(), &name).unwrap();
    exercise_threads(index).await;
    let client = meilisearch_sdk::client::Client::new(url.trim_end_matches('/'), key.as_deref()).unwrap();
    let task = client.delete_index(&name).await.unwrap();
    task.wait_for_completion(&client, None, None).await.unwrap();
}
