//! Exports that cannot lie about being complete: a partner pulls a large
//! export over real HTTP from the launched site; the database fails midway
//! (SQLite: another connection holds the write lock past the busy timeout;
//! PostgreSQL: every connection of the site is terminated), and the client's
//! body read must fail rather than end normally. Whole exports carry figures
//! a partner can check: the JSON Lines summary line and the summary endpoint.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use lyceum::db::schema::{course_runs, courses};
use sha2::{Digest, Sha256};

use crate::browser::{free_port, wait_for};
use crate::common::TestApp;
use crate::learning::seed_course;
use crate::on_both;
use crate::sharing::{key_for, member_partner, run};

/// Enrollments in the export: several pages of 1,000, far more than the
/// site reads ahead of a client that is still reading.
const LEARNERS: usize = 6000;

/// The site on a real port, over the test app's database.
pub(crate) async fn serve(app: &TestApp) -> String {
    let port = free_port();
    let mut config = app.config.clone();
    config.address = "127.0.0.1".into();
    config.port = port;
    let rocket = lyceum::build_rocket(config).expect("app builds");
    tokio::spawn(rocket.launch());
    wait_for(&format!("127.0.0.1:{port}")).await;
    format!("http://127.0.0.1:{port}")
}

/// A member partner with `LEARNERS` enrollments in its course (all
/// de-identified: nobody consented) and a key that reads them.
async fn member_with_learners(app: &TestApp) -> String {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(app, c.member_id, &[]).await;
    let key = key_for(app, &partner, &["enrollments"]).await;
    let sqlite = app.pg.is_none();
    run(app, move |conn| {
        let run_id: i64 = course_runs::table
            .inner_join(courses::table)
            .filter(courses::slug.eq("intro-python"))
            .select(course_runs::id)
            .first(conn)?;
        let t = if sqlite { "'2026-11-01 00:00:00'" } else { "TIMESTAMP '2026-11-01 00:00:00'" };
        diesel::sql_query(format!(
            "INSERT INTO users (username, email, first_name, last_name, password_hash, status, email_verified_at,
                                terms_version, terms_accepted_at, created_at, updated_at)
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {LEARNERS})
             SELECT 'learner' || n, 'learner' || n || '@example.org', 'Ada', 'Number ' || n, '!', 'active', {t},
                    '2026-11-01', {t}, {t}, {t} FROM g"
        ))
        .execute(conn)?;
        diesel::sql_query(format!(
            "INSERT INTO enrollments (user_id, run_id, track, status, enrolled_at, grade_percent, passed)
             SELECT id, {run_id}, 'audit', 'active', {t}, 0, false FROM users WHERE username LIKE 'learner%' ORDER BY id"
        ))
        .execute(conn)
    })
    .await;
    key
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The JSON Lines body split into its record lines and its summary line.
fn split_summary(body: &[u8]) -> (&[u8], serde_json::Value) {
    let text = body.strip_suffix(b"\n").expect("the body ends with a line end");
    let at = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let summary: serde_json::Value = serde_json::from_slice(&text[at..]).expect("the last line is JSON");
    (&body[..at], summary)
}

fn record_lines(records: &[u8]) -> Vec<serde_json::Value> {
    records.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
}

async fn get(http: &reqwest::Client, url: &str, key: &str) -> reqwest::Response {
    http.get(url).bearer_auth(key).send().await.expect("the site answers")
}

/// The summary of an export once it has ended (it is recorded as the
/// stream ends, and after a failure in the background).
async fn ended_summary(http: &reqwest::Client, site: &str, key: &str, id: &str) -> serde_json::Value {
    let mut last = String::new();
    for _ in 0..100 {
        let res = get(http, &format!("{site}/api/v1/exports/summary/{id}"), key).await;
        // After the PostgreSQL failure, each of the site's pooled connections
        // fails its next query once before the pool replaces it.
        if res.status().is_server_error() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(res.status(), 200);
        let summary: serde_json::Value = res.json().await.unwrap();
        if summary["status"] != "running" {
            return summary;
        }
        last = summary.to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the export never ended: {last}")
}

async fn whole_exports_carry_checkable_figures(app: TestApp) {
    // A partner can check that an export it received is complete.
    let key = member_with_learners(&app).await;
    let site = serve(&app).await;
    let http = reqwest::Client::new();

    // JSON Lines: every record line, then the summary line over every byte before it.
    let res = get(&http, &format!("{site}/api/v1/exports/enrollments?format=jsonl"), &key).await;
    assert_eq!(res.status(), 200);
    let id = res.headers().get("Lyceum-Export-Id").expect("an export id").to_str().unwrap().to_string();
    let body = res.bytes().await.expect("the whole body");
    let (records, summary) = split_summary(&body);
    let lines = record_lines(records);
    assert_eq!(lines.len(), LEARNERS);
    assert!(lines.iter().all(|l| l["type"] == "enrollment"), "record lines keep their shape");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["export_id"], id.as_str());
    assert_eq!(summary["records"], LEARNERS);
    assert_eq!(summary["bytes"], records.len());
    assert_eq!(summary["sha256"], sha256_hex(records));
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["cursor"], lines.last().unwrap()["cursor"], "the cursor to resume after this export");
    let stored = ended_summary(&http, &site, &key, &id).await;
    assert_eq!((stored["status"].as_str(), stored["complete"].as_bool()), (Some("complete"), Some(true)));
    assert_eq!((&stored["records"], &stored["sha256"]), (&summary["records"], &summary["sha256"]));

    // Resuming from the summary's cursor: nothing new, and a summary saying so.
    let cursor = summary["cursor"].as_str().unwrap();
    let url = format!("{site}/api/v1/exports/enrollments?format=jsonl&since={cursor}");
    let rest = get(&http, &url, &key).await.bytes().await.unwrap();
    let (records, summary) = split_summary(&rest);
    assert!(records.is_empty());
    assert_eq!((summary["records"].as_u64(), summary["cursor"].as_str()), (Some(0), Some(cursor)));
    assert_eq!(summary["sha256"], sha256_hex(b""));

    // CSV: the id in the header, the figures of the exact bytes at the summary endpoint.
    let res = get(&http, &format!("{site}/api/v1/exports/enrollments?format=csv"), &key).await;
    assert_eq!(res.status(), 200);
    let id = res.headers().get("Lyceum-Export-Id").expect("an export id").to_str().unwrap().to_string();
    let csv = res.bytes().await.unwrap();
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(&csv[..]).records().collect::<Result<_, _>>().expect("CSV rows");
    assert_eq!(rows.len(), LEARNERS);
    let summary = ended_summary(&http, &site, &key, &id).await;
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["format"], "csv");
    assert_eq!(summary["kind"], "enrollments");
    assert_eq!(summary["records"], LEARNERS);
    assert_eq!(summary["bytes"], csv.len());
    assert_eq!(summary["sha256"], sha256_hex(&csv));

    // Another partner's key cannot read it: the same 404 as for an unknown id.
    let other = seed_course(&app, "larkfield", "statistics-basics", "Statistics", None).await;
    let other = member_partner(&app, other.member_id, &[]).await;
    let other_key = key_for(&app, &other, &["enrollments"]).await;
    for (id, key) in [(id.as_str(), other_key.as_str()), ("api-no-such-export", key.as_str())] {
        let res = get(&http, &format!("{site}/api/v1/exports/summary/{id}"), key).await;
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = res.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("no export"), "{problem}");
    }
    let res = http.get(format!("{site}/api/v1/exports/summary/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 401, "a key is required");
}
on_both!(whole_exports_carry_a_count_and_digest_the_partner_can_check, whole_exports_carry_checkable_figures, |c| {
    c.db_busy_timeout_ms = 300
});

/// Breaks the database under the site as soon as the first page of the
/// export has been written (its disclosures are committed), whatever the
/// client has read by then: SQLite, another connection takes the write lock
/// and holds it until released; PostgreSQL, every other connection to the
/// database is terminated. The receiver gets, once it is broken, the sender
/// that releases the lock (dropping it does too).
fn break_database_after_first_page(app: &TestApp) -> std::sync::mpsc::Receiver<std::sync::mpsc::Sender<()>> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let (broke, broken) = std::sync::mpsc::channel();
    let pg = app.pg.as_ref().map(|db| db.url.clone());
    let path = app.dir.path().join("lyceum.db");
    std::thread::spawn(move || {
        let count = "SELECT CAST(coalesce(sum(entries), 0) AS BIGINT) AS n FROM manifests";
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (release, released) = std::sync::mpsc::channel::<()>();
        match pg {
            None => {
                let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                c.batch_execute("PRAGMA busy_timeout = 30000;").unwrap();
                while diesel::sql_query(count).get_result::<Count>(&mut c).unwrap().n < 1000 {
                    assert!(std::time::Instant::now() < deadline, "the export never wrote a page");
                    std::thread::sleep(Duration::from_millis(2));
                }
                // Waits for a page being written to commit, then keeps every writer out.
                c.batch_execute("BEGIN EXCLUSIVE;").unwrap();
                broke.send(release).unwrap();
                let _ = released.recv();
                c.batch_execute("ROLLBACK;").unwrap();
            }
            Some(url) => {
                let mut c = PgConnection::establish(&url).unwrap();
                while diesel::sql_query(count).get_result::<Count>(&mut c).unwrap().n < 1000 {
                    assert!(std::time::Instant::now() < deadline, "the export never wrote a page");
                    std::thread::sleep(Duration::from_millis(2));
                }
                let killed = diesel::sql_query(
                    "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .get_result::<Count>(&mut c)
                .unwrap();
                assert!(killed.n > 0, "the site's connections were terminated");
                broke.send(release).unwrap();
            }
        }
    });
    broken
}

async fn a_failed_export_is_cut_off(app: TestApp) {
    // An export the server could not finish never ends like a whole one.
    let key = member_with_learners(&app).await;
    let site = serve(&app).await;
    let http = reqwest::Client::new();
    let broken = break_database_after_first_page(&app);
    let mut res = get(&http, &format!("{site}/api/v1/exports/enrollments?format=jsonl"), &key).await;
    assert_eq!(res.status(), 200);
    let id = res.headers().get("Lyceum-Export-Id").expect("an export id").to_str().unwrap().to_string();
    let mut received = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match res.chunk().await {
                Ok(Some(bytes)) => received.extend_from_slice(&bytes),
                Err(e) => return Err(e),
                Ok(None) => return Ok(()),
            }
        }
    })
    .await
    .expect("the response ends one way or the other");
    let release = broken.try_recv().expect("the database failed while the export was being sent");
    let error = end.expect_err("the client sees the transfer fail, not a normal end of the body");
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    drop(release);

    // What did arrive: whole record lines up to the cut, and no summary line.
    let whole = received.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines = record_lines(&received[..whole]);
    // (The cut may also drop bytes the server had not yet written out.)
    assert!(lines.len() < LEARNERS, "cut midway: {} records", lines.len());
    assert!(lines.iter().all(|l| l["type"] == "enrollment"), "no summary line in a cut-off export");
    let summary = ended_summary(&http, &site, &key, &id).await;
    assert_eq!((summary["status"].as_str(), summary["complete"].as_bool()), (Some("failed"), Some(false)));
    assert!(summary["sha256"].is_null(), "no digest to mistake for a whole export's");

    // The partner resumes from its last whole record and gets the rest, whole.
    let since = lines.last().map(|l| format!("&since={}", l["cursor"].as_str().unwrap())).unwrap_or_default();
    let url = format!("{site}/api/v1/exports/enrollments?format=jsonl{since}");
    let mut rest = get(&http, &url, &key).await;
    for _ in 0..10 {
        if !rest.status().is_server_error() {
            break;
        }
        rest = get(&http, &url, &key).await;
    }
    let rest = rest.bytes().await.expect("the rest arrives whole");
    let (records, summary) = split_summary(&rest);
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["sha256"], sha256_hex(records));
    assert_eq!(lines.len() + record_lines(records).len(), LEARNERS, "nothing lost, nothing twice");
}
on_both!(an_export_the_database_fails_midway_is_cut_off, a_failed_export_is_cut_off, |c| {
    c.db_busy_timeout_ms = 300
});
