//! `lyceum bench-export`: the partner export and the sponsor report on
//! PostgreSQL, measured against the targets in `docs/DESIGN-RULES.md`. On an
//! empty database it seeds (set-based SQL) one member institution with `rows`
//! enrollments and one sponsor with `learners` sponsored, consented learners,
//! then measures:
//!
//! - `COPY (<the gate's candidate query>) TO STDOUT` of the same rows, read
//!   through libpq by this process (the baseline);
//! - the same candidate query paged by enrollment id (1000 a page) into the
//!   partner CSV adapter, with no consent lookup and no disclosure row (the
//!   export without the gate);
//! - the real export: `sharing::next_page` pages through the same CSV
//!   adapter, writing one disclosure row per record, as the partner API does;
//! - the sponsor completion report: real `GET /partners/<slug>/report`
//!   requests of a signed-in sponsor admin through Rocket's in-process
//!   client, plus an in-process breakdown (gate, context, template).
//!
//! Output bytes are counted and dropped, never kept. Peak memory is the
//! process's resident high-water mark, reset before each phase (Linux).

use std::io::BufRead;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::pg::{CopyFormat, CopyTarget, Pg};
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use partner_adapters::{CourseRef, ExportOptions, Format, Learner, RecordKind, SharedEnrollment, SharedRecord};

use crate::config::Config;
use crate::consent::partners::{self, Partner};
use crate::consent::sharing::{self, Want};
use crate::consent::{Categories, Category, PartnerKind, Purpose, report};
use crate::db::schema::{course_runs, courses, enrollments, members, users};
use crate::db::{Conn, Db, DbConnection};

/// Page size of the partner API (`consent::api`).
const PAGE: i64 = 1000;
const BASE_URL: &str = "http://lyceum.bench";
const MEMBER_SLUG: &str = "bench-university";
const SPONSOR_SLUG: &str = "bench-sponsor";
const ADMIN_EMAIL: &str = "sponsor-admin@bench.invalid";
const ADMIN_PASSWORD: &str = "bench sponsor admin password";
/// Courses (one run each) the member's enrollments are spread over.
const MEMBER_COURSES: i64 = 10;
/// Units of the sponsored course; learner progress is 0..=UNITS of them.
const UNITS: i64 = 10;

pub struct Options {
    pub database_url: String,
    /// Enrollments of the member institution to export.
    pub rows: i64,
    /// Sponsored, consented learners on the sponsor report.
    pub learners: i64,
    /// Timed report requests (after one warm-up request).
    pub report_runs: usize,
}

/// One measured pass over the export.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub memory: Memory,
    /// CPU seconds of this process (all threads) during the phase.
    pub client_cpu: f64,
    /// CPU seconds of the PostgreSQL backend serving the phase, when the
    /// server runs on this machine and its /proc entry is readable.
    pub server_cpu: Option<f64>,
}

impl Phase {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// Resident memory of this process, KiB: at the start of a phase and its peak.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub start_kib: u64,
    pub peak_kib: u64,
}

#[derive(Debug, Clone)]
pub struct ReportTiming {
    pub learners: usize,
    /// Wall time of each timed request, ms.
    pub requests_ms: Vec<f64>,
    pub body_bytes: usize,
    /// In-process medians, ms: the gate (`report::rows`), `report::context`,
    /// and the `consent/report` template without the layout.
    pub gate_ms: f64,
    pub context_ms: f64,
    pub render_ms: f64,
    pub memory: Memory,
}

pub struct Results {
    /// The server's version and the settings that bear on write cost.
    pub server: String,
    /// /proc/loadavg before and after the export phases: other work on the machine.
    pub load: (String, String),
    pub rows: i64,
    pub learners: i64,
    pub seed_seconds: f64,
    pub copy: Phase,
    pub copy_ordered: Phase,
    pub ungated: Phase,
    pub gated: Phase,
    /// The disclosure rows alone, written by the server in one statement.
    pub disclosures_alone: Phase,
    /// What the gated export's record costs on disk.
    pub storage: Storage,
    pub report: ReportTiming,
}

/// The manifests after the gated export: how many, how many records they
/// name, and the table's whole size (heap, TOAST and every index).
pub struct Storage {
    pub manifests: i64,
    pub records: i64,
    pub bytes: i64,
}

impl Storage {
    pub fn bytes_per_record(&self) -> f64 {
        self.bytes as f64 / self.records.max(1) as f64
    }
}

#[derive(diesel::QueryableByName)]
struct StorageRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    manifests: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    records: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bytes: i64,
}

/// The manifests table as the gated export left it (the seed writes none),
/// after `VACUUM` so the size is the table's, not dead tuples'.
fn storage(conn: &mut Conn) -> Result<Storage, String> {
    let c = pg(conn)?;
    diesel::sql_query("VACUUM ANALYZE manifests").execute(c).map_err(err)?;
    let row: StorageRow = diesel::sql_query(
        "SELECT count(*)::bigint AS manifests, coalesce(sum(entries), 0)::bigint AS records, \
         pg_total_relation_size('manifests')::bigint AS bytes FROM manifests",
    )
    .get_result(c)
    .map_err(err)?;
    Ok(Storage { manifests: row.manifests, records: row.records, bytes: row.bytes })
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---- memory and CPU ------------------------------------------------------------

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the resident high-water mark (Linux: "5" to clear_refs) and
/// returns the current resident size.
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:")
}

fn peak_since(start_kib: u64) -> Memory {
    Memory { start_kib, peak_kib: status_kib("VmHWM:").max(start_kib) }
}

/// User + system CPU seconds of a process from /proc/<pid>/stat (fields 14
/// and 15, in clock ticks of 1/100 s, the Linux default).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn backend_pid(c: &mut PgConnection) -> Option<String> {
    count(c, "SELECT pg_backend_pid()::bigint AS n").ok().map(|n| n.to_string())
}

/// Wall time, CPU on both sides and peak memory of one phase.
struct Meter {
    started: Instant,
    rss_kib: u64,
    client_cpu: f64,
    backend: Option<(String, f64)>,
}

impl Meter {
    fn start(c: &mut PgConnection) -> Meter {
        let backend = backend_pid(c).and_then(|pid| cpu_seconds(&pid).map(|cpu| (pid, cpu)));
        let rss_kib = reset_peak();
        Meter { started: Instant::now(), rss_kib, client_cpu: cpu_seconds("self").unwrap_or(0.0), backend }
    }

    fn finish(self, name: &str, rows: u64, bytes: u64) -> Phase {
        let seconds = self.started.elapsed().as_secs_f64();
        Phase {
            name: name.into(),
            rows,
            bytes,
            seconds,
            memory: peak_since(self.rss_kib),
            client_cpu: cpu_seconds("self").unwrap_or(0.0) - self.client_cpu,
            server_cpu: self.backend.and_then(|(pid, before)| cpu_seconds(&pid).map(|after| after - before)),
        }
    }
}

/// Progress on stderr every 100 pages, to show whether the rate holds as the
/// export (and the disclosures table) grows.
fn progress(label: &str, pages: u64, rows: u64, started: Instant) {
    if pages.is_multiple_of(100) {
        let s = started.elapsed().as_secs_f64();
        eprintln!("    {label}: {rows} rows in {s:.1} s ({:.0} rows/s so far)", rows as f64 / s.max(1e-9));
    }
}

// ---- the database -------------------------------------------------------------

fn pg(conn: &mut Conn) -> Result<&mut PgConnection, String> {
    match conn {
        DbConnection::Pg(c) => Ok(c),
        DbConnection::Sqlite(_) => Err("bench-export measures PostgreSQL; pass a postgres:// URL".into()),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(c: &mut PgConnection, sql: &str) -> QueryResult<i64> {
    diesel::sql_query(sql).get_result::<Count>(c).map(|r| r.n)
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

fn server_facts(c: &mut PgConnection) -> String {
    diesel::sql_query(
        "SELECT 'PostgreSQL ' || current_setting('server_version') || ', fsync=' || current_setting('fsync') \
         || ', synchronous_commit=' || current_setting('synchronous_commit') \
         || ', shared_buffers=' || current_setting('shared_buffers') AS t",
    )
    .get_result::<Text>(c)
    .map(|r| r.t)
    .unwrap_or_else(|e| format!("unknown server ({e})"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Refuses any database but an empty one (or an empty, migrated Lyceum one):
/// the bench writes a million rows and never cleans up.
fn ensure_empty(c: &mut PgConnection) -> Result<(), String> {
    let tables = count(
        c,
        "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'",
    )
    .map_err(err)?;
    if tables == 0 {
        return Ok(());
    }
    let used = count(
        c,
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM members) + (SELECT count(*) FROM partners) AS n",
    );
    match used {
        Ok(0) => Ok(()),
        _ => Err("bench-export needs an empty PostgreSQL database (it seeds a million rows and keeps them); \
             this one already holds tables or data. Create one with `createdb lyceum_bench` and pass its URL."
            .into()),
    }
}

/// A timestamp without time zone, in UTC like `crate::db::now()`.
const T: &str = "(now() AT TIME ZONE 'UTC')::timestamp(0)";

fn seed_catalog(c: &mut PgConnection) -> QueryResult<()> {
    c.batch_execute(&format!(
        "INSERT INTO members (slug, name, description, created_at, updated_at) VALUES
           ('{MEMBER_SLUG}', 'Bench University', 'Owns the exported courses.', {T}, {T}),
           ('bench-academy', 'Bench Academy', 'Owns the sponsored course.', {T}, {T});
         INSERT INTO courses (member_id, slug, title, summary, description, subjects, language, published, created_at, updated_at)
           SELECT m.id, 'bench-course-' || g, 'Data Export ' || g, 'A course.', 'A course.', 'data', 'en', TRUE, {T}, {T}
           FROM members m, generate_series(1, {MEMBER_COURSES}) g WHERE m.slug = '{MEMBER_SLUG}';
         INSERT INTO courses (member_id, slug, title, summary, description, subjects, language, published, created_at, updated_at)
           SELECT m.id, 'bench-sponsored', 'Sponsored Skills', 'A course.', 'A course.', 'data', 'en', TRUE, {T}, {T}
           FROM members m WHERE m.slug = 'bench-academy';
         INSERT INTO course_runs (course_id, run_key, starts_at, pacing, pass_threshold, audit, currency, created_at, updated_at)
           SELECT c.id, '2026', {T} - interval '90 days', 'self', 60, TRUE, 'EUR', {T}, {T}
           FROM courses c WHERE c.slug LIKE 'bench-%' ORDER BY c.id;
         INSERT INTO sections (course_id, position, title)
           SELECT c.id, 1, 'Everything' FROM courses c WHERE c.slug = 'bench-sponsored';
         INSERT INTO units (section_id, position, title)
           SELECT s.id, g, 'Unit ' || g FROM sections s JOIN courses c ON c.id = s.course_id,
             generate_series(1, {UNITS}) g WHERE c.slug = 'bench-sponsored';"
    ))
}

/// Learners, their enrollments, consents, sponsorships, unit completions.
fn seed_people(c: &mut PgConnection, opts: &Options, member: &Partner, sponsor: &Partner) -> QueryResult<()> {
    let (rows, learners) = (opts.rows, opts.learners);
    let people = rows.max(learners);
    let member_cats = Categories::of(Category::COURSE.iter().copied()).to_string();
    let sponsor_cats = Purpose::Sponsorship.ceiling().to_string();
    let (m, s) = (member.id, sponsor.id);
    c.batch_execute(&format!(
        "INSERT INTO users (username, email, first_name, last_name, company, date_of_birth, password_hash, status,
                            email_verified_at, terms_version, terms_accepted_at, created_at, updated_at)
           SELECT 'learner' || g, 'learner' || g || '@example.org',
                  (ARRAY['Ada','Alan','Grace','Edsger','Barbara','Donald','Frances','Ken'])[1 + g % 8],
                  'Number ' || g, CASE WHEN g % 4 = 0 THEN 'Company ' || (g % 97) END,
                  DATE '1990-01-01', '!', 'active', {T}, '2026-11-01', {T}, {T}, {T}
           FROM generate_series(1, {people}) g;
         WITH l AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM users WHERE username LIKE 'learner%' ORDER BY id LIMIT {rows}),
              r AS (SELECT cr.id, row_number() OVER (ORDER BY cr.id) - 1 AS k FROM course_runs cr
                    JOIN courses c ON c.id = cr.course_id JOIN members m ON m.id = c.member_id WHERE m.slug = '{MEMBER_SLUG}')
         INSERT INTO enrollments (user_id, run_id, track, status, enrolled_at, access_expires_at, unenrolled_at,
                                  grade_percent, passed, completed_at, last_activity_at)
           SELECT l.id, r.id, CASE WHEN l.k % 5 = 0 THEN 'verified' ELSE 'audit' END,
                  CASE WHEN l.k % 20 = 0 THEN 'unenrolled' ELSE 'active' END,
                  {T} - (l.k % 2000) * interval '1 hour',
                  CASE WHEN l.k % 7 = 0 THEN {T} + interval '30 days' END,
                  CASE WHEN l.k % 20 = 0 THEN {T} END,
                  (l.k % 101)::float8, l.k % 101 >= 60,
                  CASE WHEN l.k % 3 = 0 THEN {T} - (l.k % 50) * interval '1 day' END,
                  {T} - (l.k % 30) * interval '1 day'
           FROM l JOIN r ON r.k = l.k % {MEMBER_COURSES} ORDER BY l.id;
         -- Half the enrollments carry a live consent naming every category; a
         -- tenth a withdrawn one; the rest none (both become de-identified).
         -- The consent state follows ledger rows (a trigger sees to it); the
         -- seeded rows are not chained, which only `consent verify` notices.
         INSERT INTO consent_ledger (user_id, partner_id, purpose, scope, action, categories, method, actor,
                                     created_at, prev_hash, row_hash)
           SELECT e.user_id, {m}, 'member_sharing', 'run:' || e.run_id,
                  CASE WHEN e.id % 2 = 0 THEN 'grant' ELSE 'withdraw' END, '{member_cats}', 'web_form', 'learner',
                  {T}, 'bench', 'bench'
           FROM enrollments e WHERE e.id % 2 = 0 OR e.id % 10 = 1;
         INSERT INTO consents (user_id, partner_id, purpose, scope, status, categories, ledger_id, updated_at)
           SELECT l.user_id, l.partner_id, l.purpose, l.scope,
                  CASE WHEN l.action = 'grant' THEN 'granted' ELSE 'withdrawn' END, l.categories, l.id, {T}
           FROM consent_ledger l WHERE l.partner_id = {m} AND l.row_hash = 'bench';
         WITH l AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM users WHERE username LIKE 'learner%' ORDER BY id LIMIT {learners}),
              r AS (SELECT cr.id FROM course_runs cr JOIN courses c ON c.id = cr.course_id WHERE c.slug = 'bench-sponsored')
         INSERT INTO enrollments (user_id, run_id, track, status, enrolled_at, grade_percent, passed, completed_at, last_activity_at)
           SELECT l.id, r.id, 'verified', 'active', {T} - (l.k % 60) * interval '1 day', (l.k % 101)::float8, l.k % 101 >= 60,
                  CASE WHEN l.k % 11 = {UNITS} THEN {T} - (l.k % 56) * interval '1 day' END,
                  CASE WHEN l.k % 11 > 0 THEN {T} - (l.k % 20) * interval '1 day' END
           FROM l, r ORDER BY l.id;
         WITH e AS (SELECT e.id, e.run_id, row_number() OVER (ORDER BY e.id) AS k FROM enrollments e
                    JOIN course_runs cr ON cr.id = e.run_id JOIN courses c ON c.id = cr.course_id WHERE c.slug = 'bench-sponsored')
         INSERT INTO unit_completions (enrollment_id, unit_id, completed_at)
           SELECT e.id, u.id, {T} FROM e JOIN sections s ON true JOIN units u ON u.section_id = s.id
           JOIN courses c ON c.id = s.course_id AND c.slug = 'bench-sponsored' WHERE u.position <= e.k % 11;
         INSERT INTO sponsor_allocations (partner_id, run_id, seats, expires_at, note, created_at)
           SELECT {s}, cr.id, {learners}, {T} + interval '1 year', 'bench', {T}
           FROM course_runs cr JOIN courses c ON c.id = cr.course_id WHERE c.slug = 'bench-sponsored';
         INSERT INTO sponsor_codes (allocation_id, code, redeemed_by, redeemed_at, created_at)
           SELECT a.id, 'BENCH-' || e.user_id, e.user_id, {T}, {T}
           FROM sponsor_allocations a JOIN enrollments e ON e.run_id = a.run_id WHERE a.partner_id = {s};
         INSERT INTO sponsorships (partner_id, user_id, run_id, code_id, created_at)
           SELECT {s}, sc.redeemed_by, a.run_id, sc.id, {T}
           FROM sponsor_codes sc JOIN sponsor_allocations a ON a.id = sc.allocation_id WHERE a.partner_id = {s};
         INSERT INTO consent_ledger (user_id, partner_id, purpose, scope, action, categories, method, actor,
                                     created_at, prev_hash, row_hash)
           SELECT sp.user_id, {s}, 'sponsorship', 'run:' || sp.run_id, 'grant', '{sponsor_cats}', 'web_form', 'learner',
                  {T}, 'bench', 'bench'
           FROM sponsorships sp WHERE sp.partner_id = {s};
         INSERT INTO consents (user_id, partner_id, purpose, scope, status, categories, ledger_id, updated_at)
           SELECT l.user_id, l.partner_id, l.purpose, l.scope, 'granted', l.categories, l.id, {T}
           FROM consent_ledger l WHERE l.partner_id = {s} AND l.row_hash = 'bench';"
    ))
}

struct Seeded {
    member: Partner,
    sponsor: Partner,
}

fn seed(conn: &mut Conn, opts: &Options) -> Result<Seeded, String> {
    pg(conn)?.transaction(seed_catalog).map_err(err)?;
    let now = crate::db::now();
    let member_id: i64 =
        members::table.filter(members::slug.eq(MEMBER_SLUG)).select(members::id).first(conn).map_err(err)?;
    let member = partners::create(
        conn,
        PartnerKind::Member,
        &format!("member-{MEMBER_SLUG}"),
        "Bench University",
        Some(member_id),
        "privacy@bench-university.invalid",
        now,
    )
    .map_err(err)?;
    partners::set_profile_fields(
        conn,
        &member,
        &Categories::of([Category::ProfileName, Category::ProfileEmail, Category::ProfileUsername]),
    )
    .map_err(err)?;
    let sponsor = partners::create(
        conn,
        PartnerKind::Sponsor,
        SPONSOR_SLUG,
        "Bench Sponsor",
        None,
        "reports@bench-sponsor.invalid",
        now,
    )
    .map_err(err)?;
    pg(conn)?.transaction(|c| seed_people(c, opts, &member, &sponsor)).map_err(err)?;
    // Production tables are vacuumed and analysed; a fresh bulk load is not.
    pg(conn)?
        .batch_execute(
            "VACUUM (ANALYZE) users, members, courses, course_runs, sections, units, enrollments, \
             unit_completions, consents, sponsor_allocations, sponsor_codes, sponsorships, partners",
        )
        .map_err(err)?;
    // The admin who opens the report, signed in with a password like anyone.
    use crate::accounts::domain::{Email, PersonName, Username};
    let hash = crate::accounts::passwords::hash_blocking(ADMIN_PASSWORD)?;
    let admin = crate::accounts::service::insert_operator_account(
        conn,
        &Username::parse("sponsoradmin")?,
        &Email::parse(ADMIN_EMAIL)?,
        &PersonName::parse("Sponsor", "first name")?,
        &PersonName::parse("Admin", "last name")?,
        &hash,
    )
    .map_err(err)?;
    partners::appoint(conn, &sponsor, admin, admin).map_err(err)?;
    Ok(Seeded { member, sponsor })
}

// ---- the export without the gate ------------------------------------------------

type Candidate = (
    (
        i64,
        i64,
        i64,
        String,
        String,
        NaiveDateTime,
        Option<NaiveDateTime>,
        f64,
        bool,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
    ),
    (String, i64, String, String, String, NaiveDateTime, Option<NaiveDateTime>),
    (String, String, String, String, Option<String>),
);

/// The gate's candidate query for a member partner (`sharing::candidates`),
/// built the same way (boxed), with nothing after it.
fn candidates(conn: &mut Conn, member_id: i64, after: sharing::Position) -> QueryResult<Vec<Candidate>> {
    enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table.inner_join(members::table)))
        .inner_join(users::table)
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(enrollments.user_id, enrollments.id) > (")
                .bind::<diesel::sql_types::BigInt, _>(after.user_id)
                .sql(", ")
                .bind::<diesel::sql_types::BigInt, _>(after.enrollment_id)
                .sql(")"),
        )
        // As the gate bounds it (`sharing::candidates`).
        .filter(users::id.ge(after.user_id))
        .order((enrollments::user_id.asc(), enrollments::id.asc()))
        .limit(PAGE)
        .select((
            (
                enrollments::id,
                enrollments::user_id,
                enrollments::run_id,
                enrollments::track,
                enrollments::status,
                enrollments::enrolled_at,
                enrollments::access_expires_at,
                enrollments::grade_percent,
                enrollments::passed,
                enrollments::completed_at,
                enrollments::last_activity_at,
            ),
            (
                course_runs::run_key,
                courses::id,
                courses::slug,
                courses::title,
                members::slug,
                course_runs::starts_at,
                course_runs::ends_at,
            ),
            (users::username, users::first_name, users::last_name, users::email, users::company),
        ))
        .into_boxed()
        .filter(courses::member_id.eq(member_id))
        .load(conn)
}

/// The record the gate would build for a fully consented learner.
fn plain_record(row: Candidate, now: NaiveDateTime) -> SharedRecord {
    let (e, c, u) = row;
    let (eid, user_id, _run_id, track, status, enrolled_at, expires, ..) = e;
    let (run_key, _course_id, slug, title, member_slug, starts_at, ends_at) = c;
    let (username, first, last, email, company) = u;
    let state = sharing::enrollment_state(&status, expires, now);
    SharedRecord::Enrollment(SharedEnrollment {
        cursor: sharing::encode_position(sharing::Position { user_id, enrollment_id: eid }, "bench"),
        learner: Learner {
            id: username.clone(),
            pseudonymous: false,
            username: Some(username),
            name: Some(format!("{first} {last}").trim().to_string()),
            email: Some(email),
            company,
        },
        course: CourseRef {
            url: format!("{BASE_URL}/courses/{slug}"),
            id: slug,
            title,
            run: run_key,
            member: member_slug,
            starts_at: starts_at.and_utc(),
            ends_at: ends_at.map(|t| t.and_utc()),
        },
        track,
        status: state.to_string(),
        enrolled_at: enrolled_at.and_utc(),
    })
}

fn csv_adapter() -> Box<dyn partner_adapters::Adapter> {
    Format::Csv.adapter(&ExportOptions::new(RecordKind::Enrollment, BASE_URL, chrono::Utc::now()))
}

fn ungated(conn: &mut Conn, member: &Partner) -> Result<Phase, String> {
    let member_id = member.member_id.ok_or("the member partner has no member")?;
    let meter = Meter::start(pg(conn)?);
    let t = Instant::now();
    let mut pages = 0;
    let mut adapter = csv_adapter();
    let mut out = Vec::new();
    adapter.begin(&mut out).map_err(err)?;
    let (mut rows, mut bytes, mut after) = (0u64, out.len() as u64, sharing::Position::START);
    loop {
        let page = candidates(conn, member_id, after).map_err(err)?;
        let full = page.len() as i64 == PAGE;
        let last = page.last().map(|r| sharing::Position { user_id: r.0.1, enrollment_id: r.0.0 });
        let now = crate::db::now();
        // A fresh buffer per page, as the API yields one per page.
        let mut out = Vec::new();
        for row in page {
            adapter.record(&plain_record(row, now), &mut out).map_err(err)?;
            rows += 1;
        }
        bytes += out.len() as u64;
        pages += 1;
        progress("without the gate", pages, rows, t);
        match (full, last) {
            (true, Some(n)) => after = n,
            _ => break,
        }
    }
    out.clear();
    adapter.finish(&mut out).map_err(err)?;
    bytes += out.len() as u64;
    Ok(meter.finish("export without the gate", rows, bytes))
}

// ---- the export through the gate ----------------------------------------------------

fn gated(conn: &mut Conn, member: &Partner) -> Result<Phase, String> {
    let meter = Meter::start(pg(conn)?);
    let t = Instant::now();
    let mut pages = 0;
    let export_id = format!("bench-{}", uuid::Uuid::new_v4());
    let want = Want { enrollment: true, progress: false, result: false };
    let mut adapter = csv_adapter();
    let mut out = Vec::new();
    adapter.begin(&mut out).map_err(err)?;
    let (mut rows, mut bytes, mut after) = (0u64, out.len() as u64, sharing::Position::START);
    loop {
        let req = sharing::Request {
            partner: member,
            purpose: Purpose::MemberSharing,
            want,
            after,
            limit: PAGE,
            export_id: &export_id,
            base_url: BASE_URL,
        };
        let page = sharing::next_page(conn, &req, crate::db::now()).map_err(err)?;
        let mut out = Vec::new();
        for shared in &page.shared {
            for rec in shared.records() {
                adapter.record(&rec, &mut out).map_err(err)?;
                rows += 1;
            }
        }
        bytes += out.len() as u64;
        pages += 1;
        progress("through the gate", pages, rows, t);
        match page.next_after {
            Some(n) => after = n,
            None => break,
        }
    }
    out.clear();
    adapter.finish(&mut out).map_err(err)?;
    bytes += out.len() as u64;
    Ok(meter.finish("export through the gate", rows, bytes))
}

/// The floor under the gate's cost: the export's disclosure rows (one per
/// enrollment of the member, as SHR-5 asks) written by the server itself in
/// one `INSERT … SELECT`, with no client, no arrays, no consent lookup and no
/// at-most-once probe, then rolled back. No gate that writes a row per record
/// can add less than this to an export.
fn disclosures_alone(conn: &mut Conn, member: &Partner) -> Result<Phase, String> {
    let member_id = member.member_id.ok_or("the member partner has no member")?;
    let c = pg(conn)?;
    let meter = Meter::start(c);
    let mut rows = 0u64;
    let rolled_back = c.transaction::<(), diesel::result::Error, _>(|c| {
        // The row-per-record table the log was before manifests, with its
        // indexes, for this measure alone (it goes with the rollback).
        diesel::sql_query(
            "CREATE TEMP TABLE disclosures (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             user_id BIGINT NOT NULL, partner_id BIGINT, recipient TEXT NOT NULL, purpose TEXT NOT NULL, \
             fields TEXT NOT NULL, basis TEXT NOT NULL, consent_ledger_id BIGINT, export_id TEXT NOT NULL, \
             record_key TEXT NOT NULL, created_at TIMESTAMP NOT NULL) ON COMMIT DROP",
        )
        .execute(c)?;
        diesel::sql_query("CREATE INDEX ON disclosures(user_id)").execute(c)?;
        diesel::sql_query("CREATE INDEX ON disclosures(export_id, user_id)").execute(c)?;
        rows = diesel::sql_query(
            "INSERT INTO disclosures (user_id, partner_id, recipient, purpose, fields, basis, consent_ledger_id, \
             export_id, record_key, created_at) \
             SELECT e.user_id, $1, $2, 'member_sharing', 'enrollment,profile', 'consent', e.id, $3, \
               'enrollment:' || e.id, now() \
             FROM enrollments e JOIN course_runs r ON r.id = e.run_id JOIN courses c ON c.id = r.course_id \
             WHERE c.member_id = $4",
        )
        .bind::<diesel::sql_types::BigInt, _>(member.id)
        .bind::<diesel::sql_types::Text, _>(&member.name)
        .bind::<diesel::sql_types::Text, _>(format!("bench-floor-{}", uuid::Uuid::new_v4()))
        .bind::<diesel::sql_types::BigInt, _>(member_id)
        .execute(c)? as u64;
        Err(diesel::result::Error::RollbackTransaction)
    });
    match rolled_back {
        Err(diesel::result::Error::RollbackTransaction) => {
            Ok(meter.finish("disclosure rows alone (server-side INSERT … SELECT, rolled back)", rows, 0))
        }
        Err(e) => Err(e.to_string()),
        Ok(()) => Err("the disclosure floor was not rolled back".into()),
    }
}

// ---- COPY ---------------------------------------------------------------------------

/// The member whose rows `CandidateCopy` selects: a COPY target is static SQL.
static COPY_MEMBER: AtomicI64 = AtomicI64::new(0);

/// `COPY (<the gate's candidate query, all pages at once>) TO STDOUT`.
/// Diesel's `copy_to` takes tables and columns; `CopyTarget` is its public
/// trait for the target, implemented here for a subquery.
struct CandidateCopy<const ORDERED: bool>;

fn candidate_sql(member_id: i64, ordered: bool) -> String {
    format!(
        "SELECT e.id, e.user_id, e.run_id, e.track, e.status, e.enrolled_at, e.access_expires_at, e.grade_percent, \
         e.passed, e.completed_at, e.last_activity_at, r.run_key, c.id, c.slug, c.title, m.slug, \
         u.username, u.first_name, u.last_name, u.email, u.company \
         FROM enrollments e JOIN course_runs r ON r.id = e.run_id JOIN courses c ON c.id = r.course_id \
         JOIN members m ON m.id = c.member_id JOIN users u ON u.id = e.user_id \
         WHERE c.member_id = {member_id}{}",
        if ordered { " ORDER BY e.user_id, e.id" } else { "" }
    )
}

impl<const ORDERED: bool> CopyTarget for CandidateCopy<ORDERED> {
    type Table = enrollments::table;
    type SqlType = diesel::sql_types::BigInt;

    fn walk_target(mut pass: AstPass<'_, '_, Pg>) -> QueryResult<()> {
        pass.push_sql(&format!("({})", candidate_sql(COPY_MEMBER.load(Ordering::Relaxed), ORDERED)));
        Ok(())
    }
}

fn drain(mut reader: impl BufRead) -> std::io::Result<(u64, u64)> {
    let (mut rows, mut bytes) = (0u64, 0u64);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((rows, bytes));
        }
        rows += buf.iter().filter(|b| **b == b'\n').count() as u64;
        bytes += buf.len() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Runs on a connection of its own: Diesel 2.3's `load_raw` never collects
/// the COPY's final result (libpq's `PQgetResult`), so the connection
/// answers "another command is already in progress" afterwards.
fn copy<const ORDERED: bool>(url: &str, member: &Partner) -> Result<Phase, String> {
    COPY_MEMBER.store(member.member_id.ok_or("the member partner has no member")?, Ordering::Relaxed);
    let mut c = PgConnection::establish(url).map_err(err)?;
    let meter = Meter::start(&mut c);
    let reader =
        diesel::copy_to(CandidateCopy::<ORDERED>).with_format(CopyFormat::Csv).load_raw(&mut c).map_err(err)?;
    let (rows, bytes) = drain(reader).map_err(err)?;
    let name = if ORDERED { "COPY (same query ORDER BY user_id, id) TO STDOUT" } else { "COPY (same query) TO STDOUT" };
    Ok(meter.finish(name, rows, bytes))
}

// ---- the sponsor report -----------------------------------------------------------------

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker)? + marker.len();
    Some(html[at..].split('"').next()?.to_string())
}

async fn sponsor_report(base: &Config, opts: &Options, sponsor: &Partner) -> Result<ReportTiming, String> {
    use base64::Engine;
    use rocket::http::{ContentType, Status};
    use rocket::local::asynchronous::Client;

    let dir = std::env::temp_dir().join(format!("lyceum-bench-export-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let mut secret = vec![0u8; 64];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let config = Config {
        database_url: opts.database_url.clone(),
        data_dir: dir.clone(),
        base_url: Some(BASE_URL.into()),
        demo: false,
        secret_key: Some(base64::engine::general_purpose::STANDARD.encode(&secret)),
        worker: false,
        rate_limit_per_minute: 100_000,
        db_pool_size: 4,
        log: "error".into(),
        ..base.clone()
    };
    let result = async {
        let rocket = crate::build_rocket(config).map_err(err)?;
        let client = Client::tracked(rocket).await.map_err(err)?;
        let remote = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
        let page = client.get("/signin").remote(remote).dispatch().await;
        let token = csrf_in(&page.into_string().await.unwrap_or_default()).ok_or("no CSRF token on /signin")?;
        let form = format!(
            "csrf_token={}&login={}&password={}",
            crate::web::page::url_encode(&token),
            crate::web::page::url_encode(ADMIN_EMAIL),
            crate::web::page::url_encode(ADMIN_PASSWORD)
        );
        let signed = client.post("/signin").header(ContentType::Form).remote(remote).body(form).dispatch().await;
        if signed.status() != Status::SeeOther {
            return Err(format!("the sponsor admin's sign-in answered {}", signed.status()));
        }
        let path = format!("/partners/{}/report", sponsor.slug);
        let expect = format!("{} learner(s).", opts.learners);
        let start = reset_peak();
        let mut requests_ms = Vec::new();
        let mut body_bytes = 0;
        // One warm-up request, then the timed ones.
        for i in 0..=opts.report_runs {
            let t = Instant::now();
            let res = client.get(path.clone()).remote(remote).dispatch().await;
            let status = res.status();
            let body = res.into_string().await.unwrap_or_default();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if status != Status::Ok || !body.contains(&expect) {
                return Err(format!("{path} answered {status} without “{expect}”"));
            }
            body_bytes = body.len();
            if i > 0 {
                requests_ms.push(ms);
            }
        }
        let memory = peak_since(start);
        // Where the time goes, in-process on the same data.
        let templates = client.rocket().state::<crate::web::page::Templates>().ok_or("the app has no templates")?;
        let db = client.rocket().state::<Db>().ok_or("the app has no database")?;
        let mut conn = db.get().map_err(err)?;
        let (mut gate, mut context, mut render) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..opts.report_runs.max(1) {
            let export_id = format!("report-bench-{}", uuid::Uuid::new_v4());
            let t = Instant::now();
            let filter = report::Filter { page: Some(1), ..Default::default() };
            let built =
                report::build(&mut conn, sponsor, &export_id, BASE_URL, filter, crate::db::now()).map_err(err)?;
            gate.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let ctx = serde_json::to_value(report::context(sponsor, &built, filter, crate::db::now())).map_err(err)?;
            context.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let html = templates.render_html("consent/report", &ctx).map_err(err)?;
            render.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(html);
        }
        Ok(ReportTiming {
            learners: opts.learners as usize,
            requests_ms,
            body_bytes,
            gate_ms: median(&gate),
            context_ms: median(&context),
            render_ms: median(&render),
            memory,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

// ---- the run -----------------------------------------------------------------------------

pub async fn run(base: &Config, opts: Options) -> Result<Results, String> {
    if !(opts.database_url.starts_with("postgres://") || opts.database_url.starts_with("postgresql://")) {
        return Err("bench-export measures PostgreSQL (COPY is the baseline): pass --database-url postgres://…".into());
    }
    if opts.rows < 1 || opts.learners < 1 {
        return Err("--rows and --learners must be at least 1".into());
    }
    let db = Db::connect(&opts.database_url, 2).map_err(err)?;
    let server = {
        let mut conn = db.get().map_err(err)?;
        ensure_empty(pg(&mut conn)?)?;
        server_facts(pg(&mut conn)?)
    };
    db.migrate().map_err(err)?;
    let rows = opts.rows;
    let learners = opts.learners;
    eprintln!("seeding {rows} enrollments and {learners} sponsored learners…");
    let t = Instant::now();
    let (seeded, opts) = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> Result<(Seeded, Options), String> {
            let mut conn = db.get().map_err(err)?;
            let seeded = seed(&mut conn, &opts)?;
            Ok((seeded, opts))
        })
        .await
        .map_err(err)??
    };
    let seed_seconds = t.elapsed().as_secs_f64();
    eprintln!("seeded in {seed_seconds:.1} s; measuring the export…");
    let member = seeded.member.clone();
    let url = opts.database_url.clone();
    let load_before = loadavg();
    let (copy, copy_ordered, ungated, gated, disclosures_alone, storage) = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> Result<(Phase, Phase, Phase, Phase, Phase, Storage), String> {
            let mut conn = db.get().map_err(err)?;
            // A warm-up pass reads every table once, so no phase pays for a cold cache.
            copy::<false>(&url, &member)?;
            let copy_plain = copy::<false>(&url, &member)?;
            eprintln!("  COPY: {:.0} rows/s", copy_plain.rows_per_second());
            let copy_ordered = copy::<true>(&url, &member)?;
            eprintln!("  COPY ordered: {:.0} rows/s", copy_ordered.rows_per_second());
            let ungated = ungated(&mut conn, &member)?;
            eprintln!("  without the gate: {:.0} rows/s", ungated.rows_per_second());
            let gated = gated(&mut conn, &member)?;
            eprintln!("  through the gate: {:.0} rows/s", gated.rows_per_second());
            let storage = storage(&mut conn)?;
            eprintln!("  manifests: {:.1} bytes per record", storage.bytes_per_record());
            let alone = disclosures_alone(&mut conn, &member)?;
            eprintln!("  disclosure rows alone: {:.0} rows/s", alone.rows_per_second());
            Ok((copy_plain, copy_ordered, ungated, gated, alone, storage))
        })
        .await
        .map_err(err)??
    };
    let load = (load_before, loadavg());
    eprintln!("measuring the sponsor report…");
    let report = sponsor_report(base, &opts, &seeded.sponsor).await?;
    Ok(Results {
        server,
        load,
        rows,
        learners,
        seed_seconds,
        copy,
        copy_ordered,
        ungated,
        gated,
        disclosures_alone,
        storage,
        report,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The results as Markdown, like `lyceum bench`.
pub fn markdown(r: &Results) -> String {
    let base = r.copy.rows_per_second();
    let mut s = format!(
        "{}; load average {} before the export phases, {} after.\n\
         Seeded {} enrollments and {} sponsored learners in {:.1} s (not a result).\n\n\
         | export of {} enrollment rows (PostgreSQL) | rows | s | rows/s | vs COPY | MB out | lyceum CPU s | PG backend CPU s | RSS at start MiB | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        r.server, r.load.0, r.load.1, r.rows, r.learners, r.seed_seconds, r.rows
    );
    for p in [&r.copy, &r.copy_ordered, &r.ungated, &r.gated, &r.disclosures_alone] {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} | {:.2} | {:.1} | {:.1} | {} | {:.1} | {:.1} |\n",
            p.name,
            p.rows,
            p.seconds,
            p.rows_per_second(),
            p.rows_per_second() / base,
            p.bytes as f64 / 1e6,
            p.client_cpu,
            p.server_cpu.map_or("–".to_string(), |c| format!("{c:.1}")),
            mib(p.memory.start_kib),
            mib(p.memory.peak_kib)
        ));
    }
    let overhead = (r.gated.seconds / r.ungated.seconds - 1.0) * 100.0;
    let floor = r.disclosures_alone.seconds / r.ungated.seconds * 100.0;
    s.push_str(&format!(
        "\nGate overhead (gated time / ungated time − 1): {overhead:.0} %\n\
         Floor of any gate writing a disclosure row per record (those rows alone / ungated time): {floor:.0} %\n\n"
    ));
    let st = &r.storage;
    s.push_str(&format!(
        "Disclosure record of the gated export: {} manifests naming {} records, {} bytes with TOAST and indexes \
         ({:.1} bytes per record)\n\n",
        st.manifests,
        st.records,
        st.bytes,
        st.bytes_per_record()
    ));
    let rep = &r.report;
    let max = rep.requests_ms.iter().copied().fold(0.0, f64::max);
    s.push_str(&format!(
        "| sponsor report, {} learners | requests | median ms | max ms | page KB | gate ms | context ms | template ms | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | GET /partners/…/report (signed in) | {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        rep.learners,
        rep.requests_ms.len(),
        median(&rep.requests_ms),
        max,
        rep.body_bytes as f64 / 1000.0,
        rep.gate_ms,
        rep.context_ms,
        rep.render_ms,
        mib(rep.memory.peak_kib)
    ));
    s
}
