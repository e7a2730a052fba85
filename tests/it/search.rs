//! Course search: the same behaviour from the embedded tantivy index and from
//! Meilisearch (typos, prefixes, member names, upsert, remove, clear, reopen).

use std::sync::Arc;

use lyceum::search::{self, CourseDocument, SearchIndex};

use diesel::prelude::*;
use rocket::http::Status;

use crate::common::{self, TestApp};
use crate::learning::seed_course;
use crate::{on_both, on_meilisearch};

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

/// A rebuild fills a replacement set while searches keep answering from the
/// current documents, swaps it in at once, and leaves the index as it was
/// when dropped unfinished.
async fn exercise_rebuild(index: Arc<dyn SearchIndex>) {
    let backend = index.backend_name();
    index.upsert(catalog()).await.unwrap();

    let abandoned = {
        let mut rebuild = index.rebuild().await.unwrap();
        rebuild.add(vec![renamed_essays()]).await.unwrap();
        rebuild
    };
    drop(abandoned);
    assert_eq!(first_hit(&index, "python").await, Some(PYTHON), "{backend}: an unfinished rebuild changes nothing");
    assert_eq!(hits(&index, "persuasive").await, Vec::<i64>::new(), "{backend}: nor adds anything");

    let mut rebuild = index.rebuild().await.unwrap();
    let new_set = [catalog()[1].clone(), renamed_essays()];
    rebuild.add(new_set[..1].to_vec()).await.unwrap();
    // Searches meanwhile answer from the whole current set.
    for (query, id) in [("python", PYTHON), ("statistics", STATISTICS), ("climate", CLIMATE), ("essays", ESSAYS)] {
        assert_eq!(first_hit(&index, query).await, Some(id), "{backend}: {query:?} during the rebuild");
    }
    rebuild.add(new_set[1..].to_vec()).await.unwrap();
    assert_eq!(hits(&index, "persuasive").await, Vec::<i64>::new(), "{backend}: not swapped in before finish");
    rebuild.finish().await.unwrap();

    assert_eq!(hits(&index, "python").await, Vec::<i64>::new(), "{backend}: only the new set after the swap");
    assert_eq!(hits(&index, "climate").await, Vec::<i64>::new(), "{backend}: only the new set after the swap");
    assert_eq!(first_hit(&index, "statistcs").await, Some(STATISTICS), "{backend}: typos still tolerated");
    assert_eq!(hits(&index, "persuasive").await, [ESSAYS], "{backend}: the new set");
    // Writes go on as before after a rebuild.
    index.upsert(vec![catalog()[0].clone()]).await.unwrap();
    assert_eq!(first_hit(&index, "pyhton").await, Some(PYTHON), "{backend}: written after the rebuild");
}

#[rocket::async_test]
async fn embedded_index_rebuilds_beside_the_live_documents() {
    let dir = tempfile::tempdir().unwrap();
    exercise_rebuild(search::open(dir.path(), None, None, "courses").unwrap()).await;
}

#[rocket::async_test]
async fn meilisearch_index_rebuilds_beside_the_live_documents() {
    let Some((url, key)) = common::meilisearch() else { return };
    let name = common::unique_index_name();
    let dir = tempfile::tempdir().unwrap();
    exercise_rebuild(search::open(dir.path(), Some(&url), key.as_deref(), &name).unwrap()).await;
    let client = meilisearch_sdk::client::Client::new(url.trim_end_matches('/'), key.as_deref()).unwrap();
    let index = client.get_index(format!("{name}__rebuild")).await;
    assert!(index.is_err(), "the staging index is deleted after the swap");
    let task = client.delete_index(&name).await.unwrap();
    task.wait_for_completion(&client, None, None).await.unwrap();
}

/// The course index and the forum index the app serves from.
fn app_indexes(app: &TestApp) -> (Arc<dyn SearchIndex>, Arc<dyn SearchIndex<search::ThreadDocument>>) {
    let rocket = app.client.rocket();
    (
        rocket.state::<Arc<dyn SearchIndex>>().expect("course index").clone(),
        rocket.state::<Arc<dyn SearchIndex<search::ThreadDocument>>>().expect("forum index").clone(),
    )
}

/// A staff member opens a site forum and a thread in it; returns the forum's path.
async fn staff_thread(app: &TestApp, title: &str, body: &str) -> String {
    let grace = crate::sharing::verified(app, "grace").await;
    crate::sharing::run(app, |conn| {
        lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")
    })
    .await;
    crate::sharing::as_user(app, &grace).await;
    let res = app.post_form("/forums", &[("slug", "general"), ("title", "General")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app.post_form("/forums/general/threads", &[("title", title), ("body", body)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    "/forums/general".into()
}

async fn reindex_from_the_database(app: TestApp) {
    // `lyceum search reindex`: an index that lost its documents is rebuilt from the database.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff_thread(&app, "Welcome", "Introduce yourself and say which tide tables you read.").await;
    app.run_jobs().await;
    let (courses, threads) = app_indexes(&app);
    assert_eq!(courses.search("pyhton", 10).await.unwrap().len(), 1);
    courses.clear().await.unwrap();
    threads.clear().await.unwrap();
    let (_, page) = app.get("/courses?q=pyhton").await;
    assert!(!page.contains("Introduction to Python"), "the index lost the course");

    let db = app.db();
    let mut reports = Vec::new();
    let indexed =
        lyceum::learning::catalog::reindex(&db, &courses, |done, total| reports.push((done, total))).await.unwrap();
    assert_eq!((indexed, reports), (1, vec![(1, 1)]), "one published course, progress reported");
    assert_eq!(lyceum::forums::search::reindex(&db, &threads, |_, _| {}).await.unwrap(), 1);
    let (_, page) = app.get("/courses?q=pyhton").await;
    assert!(page.contains("Introduction to Python"), "{page}");
    let (_, page) = app.get("/forums/search?q=tide").await;
    assert!(page.contains("Welcome"), "{page}");
}
on_both!(search_reindex_rebuilds_from_the_database, reindex_from_the_database);
on_meilisearch!(search_reindex_rebuilds_meilisearch_from_the_database, reindex_from_the_database);

/// Index updates wait in the jobs table: changes made while the search server
/// is unreachable are searchable once it is back and the jobs run again.
async fn updates_survive_a_search_outage(app: TestApp) {
    let url = app.config.search_url.clone().expect("on Meilisearch");
    // The same indexes, through a port nothing listens on.
    let down = "http://127.0.0.1:1";
    let key = app.config.search_key.as_deref();
    let services = lyceum::Services {
        search: search::open(app.dir.path(), Some(down), key, &app.config.search_index("courses")).unwrap(),
        forum_search: search::open_for(app.dir.path(), Some(down), key, &app.config.search_index("forum_threads"))
            .unwrap(),
        ..lyceum::services(&app.config).unwrap()
    };
    let outage = lyceum::worker_with(&app.config, app.db(), &services);
    assert_ne!(url, down);

    // In this order: signing up runs the jobs due, through the app's own worker.
    staff_thread(&app, "Welcome", "Introduce yourself and say which tide tables you read.").await;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    assert!(outage.run_due().await.unwrap() >= 2, "the index jobs ran and failed");
    let waiting = crate::sharing::run(&app, |conn| {
        use lyceum::db::schema::jobs;
        jobs::table
            .filter(jobs::kind.eq_any(["index_course", "index_forum_thread"]))
            .select((jobs::status, jobs::last_error, jobs::max_attempts))
            .load::<(String, Option<String>, i32)>(conn)
    })
    .await;
    assert!(waiting.len() >= 2, "{waiting:?}");
    for (status, error, max_attempts) in &waiting {
        assert_eq!(status, "queued", "retried later, not dropped: {waiting:?}");
        assert!(error.as_deref().is_some_and(|e| e.contains("Meilisearch")), "{waiting:?}");
        assert!(*max_attempts >= 20, "an outage of hours is waited out, not dead-lettered: {waiting:?}");
    }
    let (_, page) = app.get("/courses?q=pyhton").await;
    assert!(!page.contains("Introduction to Python"), "not indexed yet");

    // The backoff has passed and the server answers again.
    crate::sharing::run(&app, |conn| {
        use lyceum::db::schema::jobs;
        diesel::update(jobs::table.filter(jobs::status.eq("queued")))
            .set(jobs::run_at.eq(lyceum::db::now()))
            .execute(conn)
    })
    .await;
    assert!(app.run_jobs().await >= 2);
    let (_, page) = app.get("/courses?q=pyhton").await;
    assert!(page.contains("Introduction to Python"), "{page}");
    let (_, page) = app.get("/forums/search?q=tide").await;
    assert!(page.contains("Welcome"), "{page}");
}
on_meilisearch!(search_updates_survive_a_meilisearch_outage, updates_survive_a_search_outage);

#[rocket::async_test]
async fn a_second_process_on_the_embedded_index_is_refused_naming_meilisearch() {
    // The app holds the embedded index; another process cannot open it, and says what to do instead.
    let app = TestApp::sqlite().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lyceum"))
        .args(["search", "reindex"])
        .env("LYCEUM_DATABASE_URL", &app.config.database_url)
        .env("LYCEUM_DATA_DIR", app.config.data_dir.clone())
        .env("LYCEUM_DEMO", "false")
        .env("LYCEUM_SECRET_KEY", common::TEST_SECRET)
        .env("LYCEUM_LOG", "warn")
        .env_remove("LYCEUM_SEARCH_URL")
        .output()
        .expect("the lyceum binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert!(stderr.contains("Meilisearch") && stderr.contains("LYCEUM_SEARCH_URL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(app);
}

#[rocket::async_test]
async fn meilisearch_index_recovers_when_the_server_lost_it() {
    // The server loses its data (a fresh volume, a restore from before the
    // index existed) while Lyceum runs: searches and writes carry on, and the
    // settings (forums are filterable) come back.
    let Some((url, key)) = common::meilisearch() else { return };
    let name = common::unique_index_name();
    let dir = tempfile::tempdir().unwrap();
    let index = search::open_for::<search::ThreadDocument>(dir.path(), Some(&url), key.as_deref(), &name).unwrap();
    index.upsert(vec![thread(1, 10, "Loops in Python", &["How do comprehensions work?"])]).await.unwrap();
    let client = meilisearch_sdk::client::Client::new(url.trim_end_matches('/'), key.as_deref()).unwrap();
    let lose = || async {
        let task = client.delete_index(&name).await.unwrap();
        task.wait_for_completion(&client, None, None).await.unwrap();
    };

    lose().await;
    assert_eq!(index.search("comprehensions", 10).await.unwrap(), Vec::<i64>::new(), "a lost index finds nothing");
    lose().await;
    // Meilisearch creates a missing index on a write, without Lyceum's settings.
    index.upsert(vec![thread(2, 20, "Evening study group", &["Comprehensions on Tuesdays."])]).await.unwrap();
    assert_eq!(index.search_in("comprehensions", Some(vec![20, 30]), 10).await.unwrap(), [2], "filtered again");
    assert_eq!(index.search("comprehensions", 10).await.unwrap(), [2]);
    lose().await;
}

async fn search_server_down(app: TestApp) {
    // The catalog still lists courses; a search says plainly that search is down, not "server error".
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let (status, page) = app.get("/courses").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Introduction to Python"));
    let (status, page) = app.get("/courses?q=python").await;
    assert_eq!(status, Status::ServiceUnavailable, "{page}");
    assert!(page.contains("Search is unavailable right now"), "{page}");
    assert!(!page.contains("127.0.0.1:1"), "no internal detail: {page}");
    let forum = staff_thread(&app, "Welcome", "Introduce yourself.").await;
    let (status, page) = app.get(&format!("{forum}/search?q=welcome")).await;
    assert_eq!(status, Status::ServiceUnavailable, "{page}");
    assert!(page.contains("Search is unavailable right now"), "{page}");
}
on_both!(search_while_the_search_server_is_down_says_so, search_server_down, |c| {
    c.search_url = Some("http://127.0.0.1:1".into())
});

async fn reindex_during_changes(app: TestApp) {
    // `lyceum search reindex` while one course is unpublished and another
    // renamed (after the rebuild read them, before it is swapped in): the
    // index ends as the database is, whatever the worker did meanwhile.
    use lyceum::db::schema::courses;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    seed_course(&app, "northbridge", "tide-tables", "Reading Tide Tables", None).await;
    app.run_jobs().await;
    let (index, _) = app_indexes(&app);
    assert_eq!(index.search("pyhton", 10).await.unwrap().len(), 1);
    let db = app.db();
    let changer = db.clone();
    let indexed = lyceum::learning::catalog::reindex(&db, &index, move |_, _| {
        let mut conn = changer.get().expect("a connection");
        let id = |conn: &mut lyceum::db::Conn, slug: &str| -> i64 {
            courses::table.filter(courses::slug.eq(slug.to_string())).select(courses::id).first(conn).unwrap()
        };
        let (python, tides) = (id(&mut conn, "intro-python"), id(&mut conn, "tide-tables"));
        diesel::update(courses::table.find(python)).set(courses::published.eq(false)).execute(&mut *conn).unwrap();
        lyceum::learning::authoring::queue_reindex(&mut conn, python).unwrap();
        diesel::update(courses::table.find(tides))
            .set(courses::title.eq("Reading Harbour Charts"))
            .execute(&mut *conn)
            .unwrap();
        lyceum::learning::authoring::queue_reindex(&mut conn, tides).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(indexed, 2, "both courses were read as they were");
    assert!(index.search("pyhton", 10).await.unwrap().is_empty(), "the unpublished course is not searchable");
    let tides: i64 = crate::sharing::run(&app, |conn| {
        courses::table.filter(courses::slug.eq("tide-tables")).select(courses::id).first(conn)
    })
    .await;
    assert_eq!(index.search("harbour", 10).await.unwrap(), [tides], "the renamed course is found by its new title");
    // The jobs the changes queued change nothing more when they run.
    app.run_jobs().await;
    assert!(index.search("pyhton", 10).await.unwrap().is_empty());
    assert_eq!(index.search("harbour", 10).await.unwrap(), [tides]);
}
on_both!(search_reindex_ends_as_the_database_is_after_changes_meanwhile, reindex_during_changes);
on_meilisearch!(search_reindex_on_meilisearch_ends_as_the_database_is_after_changes_meanwhile, reindex_during_changes);
