//! `lyceum bench-scale` and `lyceum bench-mix` at a tiny scale on both
//! backends, so they cannot rot: every page is measured without an error,
//! the seeded counts are the scale's, and the mixed workload's learners
//! read and write without an error.

use lyceum::bench_scale::Counts;
use lyceum::config::Config;

const SCALE: f64 = 0.0005;

async fn every_page_at_scale(database_url: Option<String>) {
    let opts =
        lyceum::bench_scale::Options { database_url, scale: SCALE, clients: 2, seconds: 1, dir: None, site: None };
    let r = lyceum::bench_scale::run(&Config::default(), opts).await.expect("bench-scale runs");
    let wanted = Counts::at(SCALE);
    assert_eq!(r.seeded, wanted, "the seeded rows are the scale's");
    assert_eq!(wanted.learners, 500);
    assert_eq!(wanted.enrollments, 2_500);
    assert_eq!(wanted.completions, 6 * 2_500);
    assert_eq!(wanted.dashboard, 200);
    let names: Vec<&str> = r.pages.iter().map(|m| m.name.as_str()).collect();
    for expected in [
        "catalog /courses",
        "catalog search",
        "unit page of the big course",
        "dashboard, 200 enrollments",
        "big thread (1250 posts), first page",
        "big thread (1250 posts), last page (25)",
        "staff: certificates list",
        "partner: organization staff",
        "partner: sponsor report (50 learners)",
        "gradebook of the big run",
    ] {
        assert!(names.iter().any(|n| n.starts_with(expected)), "{expected} measured: {names:?}");
    }
    for m in &r.pages {
        assert!(m.requests > 0, "{} was requested", m.name);
        assert_eq!(m.errors, 0, "{} answered every request with a 200", m.name);
        assert!(m.bytes > 1000, "{} is a page", m.name);
    }
    let md = lyceum::bench_scale::markdown(&r);
    assert!(md.contains("seeded 500 learners"), "{md}");
}

#[rocket::async_test]
async fn bench_scale_measures_every_page_at_a_tiny_scale_on_sqlite() {
    every_page_at_scale(None).await;
}

#[rocket::async_test]
async fn bench_scale_measures_every_page_at_a_tiny_scale_on_postgres() {
    let Some(db) = crate::common::postgres::TestDatabase::create() else { return };
    every_page_at_scale(Some(db.url.clone())).await;
}

async fn learners_read_and_write(database_url: Option<String>) {
    let opts = lyceum::bench_mix::Options {
        database_url,
        scale: SCALE,
        learners: vec![20, 40],
        step_seconds: 2,
        think_ms: 500,
        // A debug build on a shared machine: the test is about errors, not speed.
        p99_limit_ms: 60_000.0,
        dir: None,
        site: None,
    };
    let r = lyceum::bench_mix::run(&Config::default(), opts).await.expect("bench-mix runs");
    assert_eq!(r.seeded, Counts::at(SCALE));
    assert_eq!(r.steps.len(), 2, "both steps ran: {:?}", r.steps);
    for s in &r.steps {
        assert_eq!(s.errors, 0, "no errors at {} learners: {:?}", s.learners, s.error_samples);
        assert!(s.requests > s.learners, "{} learners made {} requests", s.learners, s.requests);
        assert!(s.writes > 0 && s.writes < s.requests, "some requests write: {} of {}", s.writes, s.requests);
    }
    let md = lyceum::bench_mix::markdown(&r);
    assert!(md.contains("| 40 |"), "{md}");
}

#[rocket::async_test]
async fn bench_mix_ramps_signed_in_learners_without_errors_on_sqlite() {
    learners_read_and_write(None).await;
}

#[rocket::async_test]
async fn bench_mix_ramps_signed_in_learners_without_errors_on_postgres() {
    let Some(db) = crate::common::postgres::TestDatabase::create() else { return };
    learners_read_and_write(Some(db.url.clone())).await;
}

/// A site kept with `--site` is seeded once: the next run (here the mixed
/// workload) serves the same rows without seeding, a run at another scale
/// is refused, and the folder stays.
#[tokio::test]
async fn a_kept_site_is_seeded_once_and_served_again() {
    let folder = tempfile::tempdir().expect("a folder");
    let site = folder.path().join("scale-site");
    let opts = lyceum::bench_scale::Options {
        database_url: None,
        scale: SCALE,
        clients: 1,
        seconds: 1,
        dir: None,
        site: Some(site.clone()),
    };
    let first = lyceum::bench_scale::run(&Config::default(), opts).await.expect("bench-scale seeds and keeps");
    assert!(site.join("seeded.json").exists() && site.join("scale.db").exists(), "the site is kept");
    let mix = lyceum::bench_mix::Options {
        database_url: None,
        scale: SCALE,
        learners: vec![10],
        step_seconds: 1,
        think_ms: 500,
        p99_limit_ms: 60_000.0,
        dir: None,
        site: Some(site.clone()),
    };
    let again = lyceum::bench_mix::run(&Config::default(), mix).await.expect("bench-mix serves the kept site");
    assert_eq!(again.seeded, first.seeded, "the same rows");
    // Through JSON and back, a float may differ in its last bit.
    assert!(
        (again.seed_seconds - first.seed_seconds).abs() < 1e-6,
        "not seeded again: the first seeding's time ({}) is reported, not {}",
        first.seed_seconds,
        again.seed_seconds
    );
    assert_eq!(again.steps[0].errors, 0, "{:?}", again.steps[0].error_samples);
    let other = lyceum::bench_scale::Options {
        database_url: None,
        scale: SCALE * 2.0,
        clients: 1,
        seconds: 1,
        dir: None,
        site: Some(site.clone()),
    };
    let refused = lyceum::bench_scale::run(&Config::default(), other).await.err().expect("another scale is refused");
    assert!(refused.contains("was seeded at scale"), "{refused}");
    assert!(site.join("scale.db").exists(), "the folder stays");
}
