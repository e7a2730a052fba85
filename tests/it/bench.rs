//! The benchmarks measure what they say: `lyceum bench` reaches every page it
//! names (the floor routes included) without an error, and `lyceum
//! bench-export` exports every row on each path and leaves nothing behind
//! from the disclosure floor it rolls back, and `lyceum bench-sharing` times
//! a learner's Sharing page over the manifests it seeds.

use diesel::RunQueryDsl;
use lyceum::config::Config;

async fn every_page_and_its_floor_answers(database_url: Option<String>) {
    let opts = lyceum::bench::Options { database_url, clients: 2, seconds: 1 };
    let results = lyceum::bench::run(&Config::default(), opts).await.expect("bench runs");
    let names: Vec<&str> = results.iter().map(|m| m.name.as_str()).collect();
    for expected in [
        "plain-text /healthz",
        "floor: one statement",
        "floor: one statement, layout",
        "floor: signed in, one statement, layout",
        "catalog /courses",
        "course unit page",
        "forum thread, 200 posts",
    ] {
        assert!(names.contains(&expected), "{expected} measured: {names:?}");
    }
    for m in &results {
        assert!(m.requests > 0, "{} was requested", m.name);
        assert_eq!(m.errors, 0, "{} answered every request with a 200", m.name);
    }
    let size = |name: &str| results.iter().find(|m| m.name == name).map_or(0, |m| m.bytes);
    assert_eq!(size("floor: one statement"), 1, "the statement floor answers its one digit");
    assert!(size("floor: one statement, layout") > 1000, "the page floor has the layout");
    assert!(
        size("floor: signed in, one statement, layout") > size("floor: one statement, layout"),
        "signed in, the layout shows the learner's menu"
    );
    assert!(size("forum thread, 200 posts") > size("catalog /courses"));
}

#[rocket::async_test]
async fn bench_reaches_every_page_and_its_floor_on_sqlite() {
    every_page_and_its_floor_answers(None).await;
}

#[rocket::async_test]
async fn bench_reaches_every_page_and_its_floor_on_postgres() {
    let Some(db) = crate::common::postgres::TestDatabase::create() else { return };
    every_page_and_its_floor_answers(Some(db.url.clone())).await;
}

#[rocket::async_test]
async fn bench_export_exports_every_row_and_rolls_its_disclosure_floor_back() {
    let Some(db) = crate::common::postgres::TestDatabase::create() else { return };
    let opts = lyceum::bench_export::Options { database_url: db.url.clone(), rows: 300, learners: 20, report_runs: 1 };
    let r = lyceum::bench_export::run(&Config::default(), opts).await.expect("bench-export runs");
    for phase in [&r.copy, &r.copy_ordered, &r.ungated, &r.gated, &r.disclosures_alone] {
        assert_eq!(phase.rows, 300, "{} covers every enrollment", phase.name);
    }
    let mut conn = lyceum::db::Db::connect(&db.url, 1).expect("connect").get().expect("connection");
    let lyceum::db::DbConnection::Pg(c) = &mut *conn else { panic!("a PostgreSQL connection") };
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = |c: &mut diesel::PgConnection, sql: &str| diesel::sql_query(sql).get_result::<Count>(c).expect(sql).n;
    assert_eq!(count(c, "SELECT count(*) AS n FROM manifests WHERE export_id LIKE 'bench-floor-%'"), 0);
    // The gated export's own rows stay: one per enrollment exported, plus the
    // report's page of sponsored learners.
    let sql =
        "SELECT CAST(coalesce(sum(entries), 0) AS BIGINT) AS n FROM manifests WHERE export_id NOT LIKE 'bench-floor-%'";
    assert!(count(c, sql) >= 300);
    // The storage figure is the gated export's: every record it handed out, once.
    assert_eq!(r.storage.records, 300, "the manifests name each exported record");
    assert!(r.storage.manifests >= 1 && r.storage.bytes > 0);
    let md = lyceum::bench_export::markdown(&r);
    assert!(md.contains("Floor of any gate writing a disclosure row per record"), "{md}");
    assert!(md.contains("bytes per record"), "{md}");
}

/// A small `lyceum bench-sharing`: the learner's page answers over the
/// seeded manifests and shows their records of every export.
async fn bench_sharing_times_the_learners_page(database_url: Option<String>) {
    let opts = lyceum::bench_sharing::Options {
        database_url,
        days: 4,
        partners: 3,
        records: 3_000,
        per_learner: 3,
        requests: 5,
    };
    let r = lyceum::bench_sharing::run(&Config::default(), opts).await.expect("bench-sharing runs");
    assert_eq!(r.manifests, 4 * 3 * 3, "three pages an export, twelve exports");
    assert!(r.learner_records >= 12, "the learner's records of every export: {}", r.learner_records);
    assert_eq!(r.requests, 5);
    assert!(r.p50_ms > 0.0 && r.p99_ms >= r.p50_ms);
    assert!(r.bytes > 1000, "the page was rendered");
    let md = lyceum::bench_sharing::markdown(&r);
    eprintln!("{md}");
    assert!(md.contains("4 days × 3 partners × 3000 records"), "{md}");
}

#[rocket::async_test]
async fn bench_sharing_times_the_learners_page_on_sqlite() {
    bench_sharing_times_the_learners_page(None).await;
}

#[rocket::async_test]
async fn bench_sharing_times_the_learners_page_on_postgres() {
    let Some(db) = crate::common::postgres::TestDatabase::create() else { return };
    bench_sharing_times_the_learners_page(Some(db.url.clone())).await;
}
