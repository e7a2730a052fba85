//! `lyceum bench-sharing`: a learner's Sharing page after a year of daily
//! exports (issue target: 365 daily million-row exports to three partners,
//! the page under 50 ms). Serves a fresh demo site on a loopback port,
//! seeds the disclosure manifests of `days` × `partners` member exports of
//! `records` records each directly (set-based: each export's pages are built
//! once, then one `INSERT … SELECT` per day writes every partner's copy of
//! them), signs the demo learner in and times their `/sharing` page over
//! real HTTP, one request at a time.
//!
//! What is real: the manifests table, its indexes and the lookup; each
//! export's pages as the gate writes them now (1,000 records a page, by
//! learner then enrollment, so a page's learners are a run of ids and its
//! enrollment ids are scattered over the site, as enrollments arrive in
//! time); the signed-in learner's own enrollments inside their page of
//! every export; the page rendered through the site.
//! What is not: the other learners and their enrollments exist only as ids
//! in the bitmaps (no `users` or `enrollments` rows); each page is one
//! manifest (one group: de-identified, one field list) where a real page
//! has one per basis and field list; the export's recipients are names
//! without partner rows; and the manifests are not chained (dummy hashes,
//! no seal): `lyceum consent verify` would reject them. The seeded rows
//! stay on PostgreSQL (use an empty database); a SQLite site is removed.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use roaring::RoaringTreemap;

use crate::bench::{Conn as Http, sign_in, wait_for};
use crate::config::Config;
use crate::db::DbConnection;
use crate::db::schema::{course_runs, enrollments, users};

pub struct Options {
    /// An empty PostgreSQL database; default a fresh SQLite file.
    pub database_url: Option<String>,
    /// Daily exports per partner.
    pub days: i64,
    pub partners: i64,
    /// Records of each export.
    pub records: i64,
    /// Records per learner (their enrollments in the member's courses).
    pub per_learner: i64,
    /// Timed requests of the page (after three warm-up requests).
    pub requests: usize,
}

pub struct Results {
    pub backend: &'static str,
    pub manifests: i64,
    pub seed_seconds: f64,
    /// Records of the learner in the manifests (their log's entries).
    pub learner_records: usize,
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bytes: usize,
    pub options: Options,
}

/// Records a page of an export, as the API pages them.
const PAGE: i64 = 1_000;
/// Where the synthetic enrollment ids start: above any real one.
const SYNTHETIC_ENROLLMENTS: i64 = 1 << 40;
const FIELDS: &str = "learner.id,enrollment.course,enrollment.track,enrollment.status,enrollment.enrolled_at";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One page of an export: its learners, records and ranges.
struct Page {
    learners: RoaringTreemap,
    records: RoaringTreemap,
}

/// The pages of one export: learners 1..=L with `per_learner` records each,
/// walked by learner then enrollment, 1,000 records a page. A learner's
/// enrollment ids are spread over the site (a multiplicative permutation),
/// except the signed-in learner's, which are their real ones.
fn pages(opts: &Options, learner: i64, own: &[i64]) -> Vec<Page> {
    let learners = (opts.records / opts.per_learner.max(1)).max(learner);
    let n = (learners * opts.per_learner) as u64;
    // A step coprime with n spreads consecutive indexes over [0, n).
    let mut step = (n as f64 * 0.618_033_988_7) as u64 | 1;
    while gcd(step, n) != 1 {
        step += 2;
    }
    let mut out = Vec::new();
    let mut page = Page { learners: RoaringTreemap::new(), records: RoaringTreemap::new() };
    for u in 1..=learners {
        let ids: Vec<u64> = if u == learner {
            own.iter().map(|e| *e as u64).collect()
        } else {
            (0..opts.per_learner)
                .map(|k| {
                    let i = ((u - 1) * opts.per_learner + k) as u64;
                    SYNTHETIC_ENROLLMENTS as u64 + (i.wrapping_mul(step) % n)
                })
                .collect()
        };
        for id in ids {
            page.learners.insert(u as u64);
            page.records.insert(id);
            if page.records.len() as i64 == PAGE {
                out.push(std::mem::replace(
                    &mut page,
                    Page { learners: RoaringTreemap::new(), records: RoaringTreemap::new() },
                ));
            }
        }
    }
    if !page.records.is_empty() {
        out.push(page);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn blob(conn: &DbConnection, bytes: &[u8]) -> String {
    match conn {
        DbConnection::Pg(_) => format!("decode('{}', 'hex')", hex::encode(bytes)),
        DbConnection::Sqlite(_) => format!("X'{}'", hex::encode(bytes)),
    }
}

/// The demo learner's id and enrollments (enrolled in the first run when
/// they have none).
fn learner_and_records(conn: &mut DbConnection, email: &str) -> QueryResult<(i64, Vec<i64>)> {
    let id: i64 = users::table.filter(users::email.eq(email)).select(users::id).first(conn)?;
    let mut own: Vec<i64> =
        enrollments::table.filter(enrollments::user_id.eq(id)).select(enrollments::id).load(conn)?;
    if own.is_empty() {
        let run: i64 = course_runs::table.order(course_runs::id).select(course_runs::id).first(conn)?;
        let now = crate::db::now();
        let e: i64 = diesel::insert_into(enrollments::table)
            .values((
                enrollments::user_id.eq(id),
                enrollments::run_id.eq(run),
                enrollments::track.eq("audit"),
                enrollments::status.eq("active"),
                enrollments::enrolled_at.eq(now),
                enrollments::grade_percent.eq(0.0),
                enrollments::passed.eq(false),
            ))
            .returning(enrollments::id)
            .get_result(conn)?;
        own.push(e);
    }
    Ok((id, own))
}

/// Seeds the manifests; answers how many.
fn seed(conn: &mut DbConnection, opts: &Options, learner: i64, own: &[i64]) -> Result<i64, String> {
    let pages = pages(opts, learner, own);
    diesel::sql_query(
        "CREATE TEMPORARY TABLE bench_sharing_pages (page BIGINT NOT NULL, learners BYTEA NOT NULL, \
         records BYTEA NOT NULL, user_min BIGINT NOT NULL, user_max BIGINT NOT NULL, record_min BIGINT NOT NULL, \
         record_max BIGINT NOT NULL, entries BIGINT NOT NULL, user_span SMALLINT NOT NULL)",
    )
    .execute(conn)
    .map_err(err)?;
    for (i, p) in pages.iter().enumerate() {
        let (umin, umax) = (p.learners.min().unwrap_or(0) as i64, p.learners.max().unwrap_or(0) as i64);
        let sql = format!(
            "INSERT INTO bench_sharing_pages VALUES ({}, {}, {}, {umin}, {umax}, {}, {}, {}, {})",
            i + 1,
            blob(conn, &crate::consent::manifests::encode(&p.learners)),
            blob(conn, &crate::consent::manifests::encode(&p.records)),
            p.records.min().unwrap_or(0),
            p.records.max().unwrap_or(0),
            p.records.len(),
            crate::consent::manifests::span_class(umin, umax),
        );
        diesel::sql_query(sql).execute(conn).map_err(err)?;
    }
    diesel::sql_query("CREATE TEMPORARY TABLE bench_sharing_partners (n BIGINT NOT NULL, recipient TEXT NOT NULL)")
        .execute(conn)
        .map_err(err)?;
    for n in 1..=opts.partners {
        diesel::sql_query(format!("INSERT INTO bench_sharing_partners VALUES ({n}, 'Partner {n}')"))
            .execute(conn)
            .map_err(err)?;
    }
    let zero = "0".repeat(64);
    let today = chrono::Utc::now().date_naive().and_hms_opt(3, 0, 0).expect("a time");
    let started = Instant::now();
    for day in 1..=opts.days {
        let at = (today - chrono::Duration::days(opts.days - day)).format("%Y-%m-%d %H:%M:%S");
        let at = match conn {
            DbConnection::Pg(_) => format!("TIMESTAMP '{at}'"),
            DbConnection::Sqlite(_) => format!("'{at}'"),
        };
        let sql = format!(
            "INSERT INTO manifests (partner_id, recipient, purpose, basis, fields, record_kind, export_id, part, \
             state, created_at, ledger_head, learners, records, user_min, user_max, record_min, record_max, entries, \
             erased, set_digest, erased_digest, prev_hash, hash, user_span) \
             SELECT CAST(NULL AS BIGINT), p.recipient, 'member_sharing', 'deidentified', '{FIELDS}', 'enrollment', \
             'bench-sharing-' || p.n || '-{day}', g.page, 'delivered', {at}, 0, g.learners, g.records, \
             g.user_min, g.user_max, g.record_min, g.record_max, g.entries, 0, '{zero}', '{zero}', '{zero}', \
             '{zero}', g.user_span FROM bench_sharing_partners p CROSS JOIN bench_sharing_pages g \
             ORDER BY p.n, g.page"
        );
        diesel::sql_query(sql).execute(conn).map_err(err)?;
        if day % 30 == 0 || day == opts.days {
            eprintln!(
                "bench-sharing: {day}/{} days of exports seeded ({:.0} s)",
                opts.days,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let DbConnection::Pg(_) = conn {
        diesel::sql_query("ANALYZE manifests").execute(conn).map_err(err)?;
    } else {
        diesel::sql_query("ANALYZE").execute(conn).map_err(err)?;
    }
    Ok(pages.len() as i64 * opts.days * opts.partners)
}

pub async fn run(base: &Config, opts: Options) -> Result<Results, String> {
    if opts.days < 1 || opts.partners < 1 || opts.records < 1 || opts.per_learner < 1 || opts.requests < 1 {
        return Err("days, partners, records, per-learner and requests must each be at least 1".into());
    }
    let dir = std::env::temp_dir().join(format!("lyceum-bench-sharing-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(err)?.port();
    let config = Config {
        database_url: opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display())),
        data_dir: dir.clone(),
        address: "127.0.0.1".into(),
        port,
        base_url: None,
        demo: true,
        secret_key: None,
        rate_limit_per_minute: 100_000,
        log: "error".into(),
        ..base.clone()
    };
    let backend = if config.database_url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let rocket = crate::build_rocket(config.clone()).map_err(err)?;
    let server = tokio::spawn(rocket.launch());
    wait_for(port).await;
    let outcome = measure(&config, &opts, port).await;
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    let (manifests, seed_seconds, learner_records, timings, bytes) = outcome?;
    let pct = |p: f64| {
        timings.get(((timings.len() as f64 * p) as usize).min(timings.len() - 1)).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Results {
        backend,
        manifests,
        seed_seconds,
        learner_records,
        requests: timings.len(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: timings.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        bytes,
        options: opts,
    })
}

type Measured = (i64, f64, usize, Vec<Duration>, usize);

async fn measure(config: &Config, opts: &Options, port: u16) -> Result<Measured, String> {
    let account = crate::demo::accounts().remove(1);
    let cookie = sign_in(port, &account.email, &account.password).await?;
    let db = crate::open_database(config).map_err(err)?;
    let seeded = {
        let (db, email) = (db.clone(), account.email.clone());
        let o = Options { database_url: None, ..*opts };
        tokio::task::spawn_blocking(move || -> Result<(i64, f64, i64), String> {
            let mut conn = db.get().map_err(err)?;
            let (learner, own) = learner_and_records(&mut conn, &email).map_err(err)?;
            let t = Instant::now();
            let n = seed(&mut conn, &o, learner, &own)?;
            Ok((n, t.elapsed().as_secs_f64(), learner))
        })
        .await
        .map_err(err)??
    };
    let (manifests, seed_seconds, learner) = seeded;
    let learner_records = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let mut conn = db.get().map_err(err)?;
            Ok(crate::consent::manifests::disclosures_of(&mut conn, learner, i64::MAX).map_err(err)?.len())
        })
        .await
        .map_err(err)??
    };
    let mut http = Http::open(port).await.map_err(err)?;
    let mut bytes = 0;
    for _ in 0..3 {
        let r = http.send("GET", "/sharing", &cookie, None).await.map_err(err)?;
        if r.status != 200 {
            return Err(format!("the Sharing page answered {}", r.status));
        }
        bytes = r.body.len();
    }
    let mut timings = Vec::with_capacity(opts.requests);
    for _ in 0..opts.requests {
        let t = Instant::now();
        let r = http.send_with("GET", "/sharing", &cookie, None, crate::bench::Body::Discard).await.map_err(err)?;
        timings.push(t.elapsed());
        if r.status != 200 {
            return Err(format!("the Sharing page answered {}", r.status));
        }
    }
    timings.sort_unstable();
    Ok((manifests, seed_seconds, learner_records, timings, bytes))
}

pub fn markdown(r: &Results) -> String {
    let o = &r.options;
    format!(
        "| Sharing page ({}) | manifests | learner's records | seeded in s | requests | p50 ms | p99 ms | max ms | KB |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} days × {} partners × {} records ({} per learner) | {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.1} |\n",
        r.backend,
        o.days,
        o.partners,
        o.records,
        o.per_learner,
        r.manifests,
        r.learner_records,
        r.seed_seconds,
        r.requests,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.bytes as f64 / 1024.0
    )
}
