//! `lyceum bench-scale`: a site at MOOC size, measured page by page.
//!
//! On a fresh SQLite file (or an empty PostgreSQL database) it starts from
//! the demo site, then seeds with set-based SQL (`INSERT … SELECT` over
//! `generate_series` on PostgreSQL, over a `WITH RECURSIVE` counter on
//! SQLite; big tables in batches, one transaction each; the indexes the
//! migrations define) to the size `--scale` names: at 1.0, 1,000,000
//! learners, 2,000 courses with a run each, 5,000,000 enrollments (one run
//! with 100,000), 30,000,000 unit completions, 5,000,000 forum posts (one
//! thread with 5,000), a sponsor with 100,000 consenting sponsored learners
//! (the big run's) and an organization with 20,000 staff. The courses are
//! copies of the demo course "Introduction to Python" (its sections twice,
//! so ten units, with their blocks), so every page reads what a real course
//! has. The learners share one password hash, the demo learner's.
//!
//! Then it serves the site on a loopback port in this process and measures,
//! with `lyceum bench`'s client loop (N keep-alive clients for S seconds),
//! the catalog and its search, a unit page of the big course, the dashboard
//! of the demo learner (enrolled in 200 runs), the big thread's first and
//! last pages, the staff certificate list, the organization's staff list,
//! the sponsor report and the big run's gradebook.

use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::bench::{self, Measurement};
use crate::config::Config;
use crate::db::{Conn, Db, DbConnection};

/// The demo learner's enrollments, for the dashboard.
pub const DASHBOARD_ENROLLMENTS: i64 = 200;
/// Unit completions per enrollment (of each course's ten units).
pub const COMPLETIONS_PER_ENROLLMENT: i64 = 6;
/// Rows a batch inserts at most, in one transaction.
const BATCH: i64 = 200_000;
const TEMPLATE_COURSE: &str = "intro-python";
pub const SPONSOR_SLUG: &str = "scale-sponsor";
pub const ORG_SLUG: &str = "scale-org";
const POST_BODY: &str = "I worked through this unit twice. The part about `for` loops over a `range` finally \
    made sense when I printed each value.\n\n- try it with a list\n- then with a string\n\n**Question**: why does \
    `range(3)` stop at 2?";

pub struct Options {
    /// An empty PostgreSQL database; default a fresh SQLite file.
    pub database_url: Option<String>,
    pub scale: f64,
    pub clients: usize,
    pub seconds: u64,
    /// Folder under which the SQLite file and the site's files go (a fresh
    /// subfolder, removed afterwards); default the system's temporary folder.
    pub dir: Option<PathBuf>,
    /// A folder that keeps the seeded site: seeded by the first run that
    /// names it (with its SQLite file, files and a `seeded.json`), served
    /// again without seeding by every later run, and never removed.
    pub site: Option<PathBuf>,
}

/// What a scale asks for (and, counted back from the database, what was seeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub learners: i64,
    pub courses: i64,
    pub enrollments: i64,
    /// Seeded learners' enrollments of the big run (the demo learner's comes on top).
    pub big_run: i64,
    /// Enrollments of the dashboard's learner (the demo learner).
    pub dashboard: i64,
    pub completions: i64,
    pub posts: i64,
    /// Posts of the big thread.
    pub big_thread: i64,
    /// Consenting learners sponsored by the sponsor (the big run's learners).
    pub sponsored: i64,
    /// Staff of the organization.
    pub org_staff: i64,
}

impl Counts {
    /// The sizes at `scale` (1.0 = a million learners). Small scales keep
    /// what the measured pages need: 200 courses for the dashboard's 200
    /// enrollments, and at least a learner per enrollment of the others.
    pub fn at(scale: f64) -> Counts {
        let n = |full: f64| (full * scale).round() as i64;
        let learners = n(1_000_000.0).max(100);
        let courses = n(2_000.0).max(DASHBOARD_ENROLLMENTS);
        let big_run = n(100_000.0).clamp(1, learners);
        let enrollments = n(5_000_000.0).max(big_run + DASHBOARD_ENROLLMENTS + learners);
        let posts = n(5_000_000.0).max(100);
        Counts {
            learners,
            courses,
            enrollments,
            big_run,
            dashboard: DASHBOARD_ENROLLMENTS,
            completions: enrollments * COMPLETIONS_PER_ENROLLMENT,
            posts,
            big_thread: (posts / 2).min(5_000),
            sponsored: big_run,
            org_staff: n(20_000.0).clamp(1, learners),
        }
    }
}

pub struct Results {
    pub backend: &'static str,
    pub scale: f64,
    pub wanted: Counts,
    pub seeded: Counts,
    pub seed_seconds: f64,
    pub clients: usize,
    pub seconds: u64,
    pub pages: Vec<Measurement>,
}

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---- SQL of both backends -----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Pg,
    Sqlite,
}

impl Dialect {
    pub(crate) fn of(conn: &Conn) -> Dialect {
        match conn {
            DbConnection::Pg(_) => Dialect::Pg,
            DbConnection::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The integers `lo..=hi` as a row source with the column `g.n`.
    fn series(self, lo: i64, hi: i64) -> String {
        match self {
            Dialect::Pg => format!("generate_series({lo}::bigint, {hi}::bigint) AS g(n)"),
            Dialect::Sqlite => format!(
                "(WITH RECURSIVE s(n) AS (SELECT {lo} UNION ALL SELECT n + 1 FROM s WHERE n < {hi}) SELECT n FROM s) AS g"
            ),
        }
    }

    fn ts(self, t: NaiveDateTime) -> String {
        let t = t.format("%Y-%m-%d %H:%M:%S");
        match self {
            Dialect::Pg => format!("TIMESTAMP '{t}'"),
            Dialect::Sqlite => format!("'{t}'"),
        }
    }

    /// `t` minus `seconds` (an SQL expression).
    fn before(self, t: NaiveDateTime, seconds: &str) -> String {
        let t = t.format("%Y-%m-%d %H:%M:%S");
        match self {
            Dialect::Pg => format!("(TIMESTAMP '{t}' - ({seconds}) * INTERVAL '1 second')"),
            Dialect::Sqlite => format!("datetime('{t}', '-' || ({seconds}) || ' seconds')"),
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn exec(conn: &mut Conn, sql: &str) -> QueryResult<usize> {
    crate::on_backend!(conn, |c| diesel::sql_query(sql).execute(c))
}

fn exec_in_transaction(conn: &mut Conn, label: &str, sql: &str) -> Result<usize, String> {
    conn.transaction(|c| exec(c, sql)).map_err(|e| format!("seeding {label}: {e}"))
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub(crate) fn scalar(conn: &mut Conn, sql: &str) -> Result<i64, String> {
    crate::on_backend!(conn, |c| diesel::sql_query(sql).get_result::<Number>(c))
        .map(|r| r.n)
        .map_err(|e| format!("{e}: {sql}"))
}

#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    a: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    b: i64,
}

pub(crate) fn pairs(conn: &mut Conn, sql: &str) -> Result<Vec<(i64, i64)>, String> {
    crate::on_backend!(conn, |c| diesel::sql_query(sql).load::<Pair>(c))
        .map(|v| v.into_iter().map(|p| (p.a, p.b)).collect())
        .map_err(|e| format!("{e}: {sql}"))
}

/// The first id of the rows of `table` matching `filter`, checking there are
/// `expect` of them with consecutive ids (the seeding computes ids from it).
fn first_id(conn: &mut Conn, table: &str, filter: &str, expect: i64) -> Result<i64, String> {
    let lo = scalar(conn, &format!("SELECT COALESCE(MIN(id), 0) AS n FROM {table} WHERE {filter}"))?;
    let hi = scalar(conn, &format!("SELECT COALESCE(MAX(id), 0) AS n FROM {table} WHERE {filter}"))?;
    let count = scalar(conn, &format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}"))?;
    if count != expect || hi - lo + 1 != count {
        return Err(format!("{table}: expected {expect} rows with consecutive ids, found {count} ({lo}..{hi})"));
    }
    Ok(lo)
}

/// Runs `sql(lo, hi)` for `1..=total` in batches of `batch`, each in a transaction.
fn batched(
    conn: &mut Conn,
    label: &str,
    total: i64,
    batch: i64,
    sql: impl Fn(i64, i64) -> String,
) -> Result<(), String> {
    let started = Instant::now();
    let mut lo = 1;
    while lo <= total {
        let hi = (lo + batch - 1).min(total);
        exec_in_transaction(conn, label, &sql(lo, hi))?;
        if hi == total || (hi / batch) % 10 == 0 {
            eprintln!("  {label}: {hi} of {total} ({:.0} s)", started.elapsed().as_secs_f64());
        }
        lo = hi + 1;
    }
    Ok(())
}

// ---- seeding -------------------------------------------------------------------------------

/// Where the seeded rows are: first ids and what the pages need.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Seeded {
    pub counts: Counts,
    pub first_course: i64,
    pub first_run: i64,
    pub first_forum: i64,
    pub first_user: i64,
    pub big_thread: i64,
    pub big_forum_slug: String,
    /// The first unit of the big run's course.
    pub big_unit: i64,
}

struct Template {
    course: i64,
    run: i64,
    /// Positions of the copied sections are the template's plus this.
    offset: i64,
    units: i64,
    learner: i64,
    staff: i64,
}

fn template(conn: &mut Conn) -> Result<Template, String> {
    use crate::db::schema::{course_runs, courses, users};
    let course: i64 = crate::on_backend!(conn, |c| courses::table
        .filter(courses::slug.eq(TEMPLATE_COURSE))
        .select(courses::id)
        .first(c))
    .map_err(|e| format!("the demo course {TEMPLATE_COURSE}: {e}"))?;
    let run: i64 = crate::on_backend!(conn, |c| course_runs::table
        .filter(course_runs::course_id.eq(course))
        .order(course_runs::id.asc())
        .select(course_runs::id)
        .first(c))
    .map_err(|e| format!("the run of {TEMPLATE_COURSE}: {e}"))?;
    let user = |conn: &mut Conn, name: &str| -> Result<i64, String> {
        crate::on_backend!(conn, |c| users::table.filter(users::username.eq(name)).select(users::id).first(c))
            .map_err(|e| format!("the demo account {name}: {e}"))
    };
    let learner = user(conn, "learner")?;
    let staff = user(conn, "staff")?;
    let max_position = scalar(
        conn,
        &format!("SELECT CAST(COALESCE(MAX(position), 0) AS BIGINT) AS n FROM sections WHERE course_id = {course}"),
    )?;
    let units = scalar(
        conn,
        &format!(
            "SELECT COUNT(*) AS n FROM units u JOIN sections s ON s.id = u.section_id WHERE s.course_id = {course}"
        ),
    )?;
    if units == 0 {
        return Err(format!("the demo course {TEMPLATE_COURSE} has no units"));
    }
    Ok(Template { course, run, offset: max_position + 1, units, learner, staff })
}

/// Seeds the scale's rows into a database holding the demo site (and nothing more).
pub fn seed(conn: &mut Conn, counts: &Counts) -> Result<Seeded, String> {
    let d = Dialect::of(conn);
    let now = crate::db::now();
    let t = d.ts(now);
    let tpl = template(conn)?;
    let units_per_course = tpl.units * 2;
    if units_per_course != 10 {
        return Err(format!("the demo course should give ten units a copy, not {units_per_course}"));
    }
    let c = counts;
    let (tc, trun, off) = (tpl.course, tpl.run, tpl.offset);

    // Courses, each with a run, the template's sections twice, their units and blocks, and a forum.
    eprintln!("seeding {} courses…", c.courses);
    exec_in_transaction(
        conn,
        "courses",
        &format!(
            "INSERT INTO courses (member_id, slug, title, summary, description, subjects, language, effort, image_blob, \
               published, created_at, updated_at) \
             SELECT t.member_id, 'scale-' || g.n, 'Scale ' || g.n || ': ' || t.title, t.summary, t.description, \
               t.subjects, t.language, t.effort, t.image_blob, TRUE, {t}, {t} \
             FROM {} CROSS JOIN courses t WHERE t.id = {tc} ORDER BY g.n",
            d.series(1, c.courses)
        ),
    )?;
    let first_course = first_id(conn, "courses", "slug LIKE 'scale-%'", c.courses)?;
    let last_course = first_course + c.courses - 1;
    let courses_in = format!("BETWEEN {first_course} AND {last_course}");
    exec_in_transaction(
        conn,
        "runs",
        &format!(
            "INSERT INTO course_runs (course_id, run_key, starts_at, ends_at, enrollment_opens_at, enrollment_closes_at, \
               pacing, access_days, pass_threshold, audit, verified_price_cents, currency, created_at, updated_at) \
             SELECT c.id, r.run_key, r.starts_at, r.ends_at, r.enrollment_opens_at, r.enrollment_closes_at, r.pacing, \
               r.access_days, r.pass_threshold, r.audit, r.verified_price_cents, r.currency, {t}, {t} \
             FROM courses c CROSS JOIN course_runs r WHERE r.id = {trun} AND c.id {courses_in} ORDER BY c.id"
        ),
    )?;
    let first_run = first_id(conn, "course_runs", &format!("course_id {courses_in}"), c.courses)?;
    let last_run = first_run + c.courses - 1;
    let runs_in = format!("BETWEEN {first_run} AND {last_run}");
    exec_in_transaction(
        conn,
        "sections",
        &format!(
            "INSERT INTO sections (course_id, position, title) \
             SELECT c.id, s.position + g.n * {off}, CASE WHEN g.n = 0 THEN s.title ELSE s.title || ' (continued)' END \
             FROM courses c CROSS JOIN sections s CROSS JOIN {} \
             WHERE s.course_id = {tc} AND c.id {courses_in} ORDER BY c.id, g.n, s.position",
            d.series(0, 1)
        ),
    )?;
    let template_section = format!(
        "ts.course_id = {tc} AND ts.position = CASE WHEN ns.position >= {off} THEN ns.position - {off} ELSE ns.position END"
    );
    exec_in_transaction(
        conn,
        "units",
        &format!(
            "INSERT INTO units (section_id, position, title) \
             SELECT ns.id, tu.position, tu.title FROM sections ns \
             JOIN sections ts ON {template_section} JOIN units tu ON tu.section_id = ts.id \
             WHERE ns.course_id {courses_in} ORDER BY ns.course_id, ns.position, tu.position"
        ),
    )?;
    let first_unit = first_id(
        conn,
        "units",
        &format!("section_id IN (SELECT id FROM sections WHERE course_id {courses_in})"),
        c.courses * units_per_course,
    )?;
    exec_in_transaction(
        conn,
        "blocks",
        &format!(
            "INSERT INTO blocks (unit_id, position, kind, data, created_at, updated_at) \
             SELECT nu.id, tb.position, tb.kind, tb.data, {t}, {t} FROM units nu \
             JOIN sections ns ON ns.id = nu.section_id \
             JOIN sections ts ON {template_section} \
             JOIN units tu ON tu.section_id = ts.id AND tu.position = nu.position \
             JOIN blocks tb ON tb.unit_id = tu.id \
             WHERE ns.course_id {courses_in} ORDER BY nu.id, tb.position"
        ),
    )?;
    exec_in_transaction(
        conn,
        "forums",
        &format!(
            "INSERT INTO forums (slug, title, description, run_id, allow_anonymous, position, created_at) \
             SELECT 'course-' || c.slug || '-' || r.run_key || '-' || r.id, c.title || ' (' || r.run_key || ')', \
               'Questions and discussion for this course run.', r.id, TRUE, 0, {t} \
             FROM course_runs r JOIN courses c ON c.id = r.course_id WHERE r.id {runs_in} ORDER BY r.id"
        ),
    )?;
    let first_forum = first_id(conn, "forums", &format!("run_id {runs_in}"), c.courses)?;

    // Learners: the demo learner's password hash, date of birth, terms and policy acceptances.
    eprintln!("seeding {} learners…", c.learners);
    let ada = tpl.learner;
    batched(conn, "learners", c.learners, BATCH, |lo, hi| {
        format!(
            "INSERT INTO users (username, email, first_name, last_name, phone, company, date_of_birth, password_hash, \
               status, email_verified_at, terms_version, terms_accepted_at, created_at, updated_at) \
             SELECT 'scale' || g.n, 'scale' || g.n || '@example.org', \
               CASE g.n % 4 WHEN 0 THEN 'Ada' WHEN 1 THEN 'Alan' WHEN 2 THEN 'Grace' ELSE 'Edsger' END, \
               'Learner ' || g.n, NULL, NULL, d.date_of_birth, d.password_hash, 'active', {t}, d.terms_version, {t}, {t}, {t} \
             FROM {} CROSS JOIN users d WHERE d.id = {ada} ORDER BY g.n",
            d.series(lo, hi)
        )
    })?;
    let first_user = first_id(conn, "users", "username LIKE 'scale%'", c.learners)?;
    let user_of = |n: &str| format!("({first_user} - 1 + {n})");
    batched(conn, "policy acceptances", c.learners, BATCH, |lo, hi| {
        format!(
            "INSERT INTO policy_acceptances (user_id, policy_id, method, ip, user_agent, accepted_at) \
             SELECT u.id, pa.policy_id, pa.method, NULL, NULL, {t} FROM users u CROSS JOIN policy_acceptances pa \
             WHERE pa.user_id = {ada} AND u.id BETWEEN {} AND {}",
            user_of(&lo.to_string()),
            user_of(&hi.to_string())
        )
    })?;

    // Enrollments: the big run's, the demo learner's 200, then the others
    // spread over the other runs (learner u's j-th in run 1 + (u + j·step) mod (courses − 1)).
    eprintln!("seeding {} enrollments…", c.enrollments);
    let enrollment = |user: &str, run: &str| {
        format!(
            "INSERT INTO enrollments (user_id, run_id, track, status, enrolled_at, access_expires_at, unenrolled_at, \
               grade_percent, passed, completed_at, last_activity_at, last_unit_id) \
             SELECT {user}, {run}, CASE WHEN g.n % 5 = 0 THEN 'verified' ELSE 'audit' END, 'active', {}, NULL, NULL, \
               CAST(g.n % 101 AS DOUBLE PRECISION), g.n % 101 >= 60, NULL, {t}, NULL FROM ",
            d.before(now, "g.n % 100000")
        )
    };
    batched(conn, "enrollments of the big run", c.big_run, BATCH, |lo, hi| {
        format!("{}{}", enrollment(&user_of("g.n"), &first_run.to_string()), d.series(lo, hi))
    })?;
    exec_in_transaction(
        conn,
        "the dashboard's enrollments",
        &format!("{}{}", enrollment(&ada.to_string(), &format!("{first_run} + g.n")), d.series(0, c.dashboard - 1)),
    )?;
    let others = c.enrollments - c.big_run - c.dashboard;
    let per_learner = (others + c.learners - 1) / c.learners;
    let step = (c.courses - 1) / per_learner;
    if step < 1 {
        return Err(format!("{others} enrollments do not fit {} learners in {} runs", c.learners, c.courses - 1));
    }
    let (l, runs_but_one) = (c.learners, c.courses - 1);
    batched(conn, "other enrollments", others, BATCH, |lo, hi| {
        let u = format!("(((g.n - 1) % {l}) + 1)");
        let j = format!("((g.n - 1) / {l})");
        format!(
            "{}{}",
            enrollment(&user_of(&u), &format!("{first_run} + 1 + (({u} + {j} * {step}) % {runs_but_one})")),
            d.series(lo, hi)
        )
    })?;
    let first_enrollment = scalar(conn, &format!("SELECT MIN(id) AS n FROM enrollments WHERE run_id {runs_in}"))?;
    let last_enrollment = scalar(conn, &format!("SELECT MAX(id) AS n FROM enrollments WHERE run_id {runs_in}"))?;

    // Six of each course's ten units (its ids are consecutive), varying with the enrollment.
    eprintln!("seeding {} unit completions…", c.completions);
    let span = last_enrollment - first_enrollment + 1;
    batched(conn, "unit completions", span, BATCH / COMPLETIONS_PER_ENROLLMENT, |lo, hi| {
        format!(
            "INSERT INTO unit_completions (enrollment_id, unit_id, completed_at) \
             SELECT e.id, u.id, {t} FROM enrollments e JOIN course_runs r ON r.id = e.run_id \
             JOIN sections s ON s.course_id = r.course_id JOIN units u ON u.section_id = s.id \
             WHERE e.id BETWEEN {} AND {} AND e.run_id {runs_in} AND (u.id + e.id) % 10 < {COMPLETIONS_PER_ENROLLMENT}",
            first_enrollment - 1 + lo,
            first_enrollment - 1 + hi
        )
    })?;

    // The forum: the big thread in the big run's forum (by its learners), then
    // threads of up to 20 posts over every course forum.
    eprintln!("seeding {} forum posts…", c.posts);
    exec_in_transaction(
        conn,
        "the big thread",
        &format!(
            "INSERT INTO forum_threads (forum_id, title, pinned, locked, lock_reason, last_post_at, created_at, version) \
             VALUES ({first_forum}, 'Everyone: introduce yourself here', FALSE, FALSE, NULL, {t}, {}, 1)",
            d.before(now, "864000")
        ),
    )?;
    let big_thread = first_id(conn, "forum_threads", &format!("forum_id = {first_forum}"), 1)?;
    let html = crate::learning::content::render_markdown(POST_BODY);
    let post = |thread: &str, author: &str, ago: &str| {
        format!(
            "INSERT INTO forum_posts (thread_id, parent_id, author_id, anonymous, author_erased, body, body_html, status, \
               endorsed, ip, user_agent, created_at, edited_at, vote_count) \
             SELECT {thread}, NULL, {author}, FALSE, FALSE, {}, {}, '{}', FALSE, NULL, NULL, {}, NULL, 0 FROM ",
            quote(POST_BODY),
            quote(&html),
            crate::forums::status::VISIBLE,
            d.before(now, ago)
        )
    };
    let (bt, b) = (c.big_thread, c.big_run);
    batched(conn, "posts of the big thread", bt, BATCH, |lo, hi| {
        format!(
            "{}{}",
            post(
                &big_thread.to_string(),
                &user_of(&format!("(((g.n - 1) % {b}) + 1)")),
                &format!("({bt} - g.n) * 600 + 600"),
            ),
            d.series(lo, hi)
        )
    })?;
    let rest = c.posts - c.big_thread;
    let per_thread = (rest / c.courses).clamp(1, 20);
    let threads = (rest + per_thread - 1) / per_thread;
    let courses = c.courses;
    batched(conn, "threads", threads, BATCH, |lo, hi| {
        format!(
            "INSERT INTO forum_threads (forum_id, title, pinned, locked, lock_reason, last_post_at, created_at, version) \
             SELECT {first_forum} + (g.n % {courses}), 'Question ' || g.n || ' about this week', FALSE, FALSE, NULL, \
               {}, {}, 1 FROM {}",
            d.before(now, "g.n"),
            d.before(now, "g.n + 1000000"),
            d.series(lo, hi)
        )
    })?;
    let first_thread = first_id(
        conn,
        "forum_threads",
        &format!("forum_id BETWEEN {first_forum} AND {} AND id > {big_thread}", first_forum + c.courses - 1),
        threads,
    )?;
    batched(conn, "posts", rest, BATCH, |lo, hi| {
        format!(
            "{}{}",
            post(
                &format!("{first_thread} + (g.n - 1) / {per_thread}"),
                &user_of(&format!("((g.n * 7919) % {l}) + 1")),
                &format!("({rest} - g.n) * 17 + 600")
            ),
            d.series(lo, hi)
        )
    })?;

    // The sponsor of the big run's learners, with their consent; the
    // organization with its staff; certificates for a tenth of the enrollments.
    eprintln!("seeding the sponsor, the organization and certificates…");
    let partner = |conn: &mut Conn, kind, slug: &str, name: &str| {
        crate::consent::partners::create(conn, kind, slug, name, None, &format!("{slug}@example.org"), now)
            .map_err(|e| format!("the partner {slug}: {e}"))
    };
    let sponsor = partner(conn, crate::consent::PartnerKind::Sponsor, SPONSOR_SLUG, "Scale Sponsor")?;
    let org = partner(conn, crate::consent::PartnerKind::Organization, ORG_SLUG, "Scale Organization")?;
    for p in [&sponsor, &org] {
        crate::consent::partners::appoint(conn, p, tpl.staff, tpl.staff).map_err(err)?;
    }
    let cats = crate::consent::Purpose::Sponsorship.ceiling().to_string();
    let s = sponsor.id;
    let last_big = first_user + c.big_run - 1;
    let expires = d.ts(now + chrono::Duration::days(365));
    for (label, sql) in [
        (
            "allocation",
            format!(
                "INSERT INTO sponsor_allocations (partner_id, run_id, seats, expires_at, note, created_by, created_at) \
                 VALUES ({s}, {first_run}, {b}, {expires}, 'scale', NULL, {t})"
            ),
        ),
        (
            "codes",
            format!(
                "INSERT INTO sponsor_codes (allocation_id, code, invited_email, invited_at, redeemed_by, redeemed_at, created_at) \
                 SELECT a.id, 'SCALE-' || e.user_id, NULL, NULL, e.user_id, {t}, {t} \
                 FROM sponsor_allocations a JOIN enrollments e ON e.run_id = a.run_id \
                 WHERE a.partner_id = {s} AND e.user_id BETWEEN {first_user} AND {last_big} ORDER BY e.user_id"
            ),
        ),
        (
            "sponsorships",
            format!(
                "INSERT INTO sponsorships (partner_id, user_id, run_id, code_id, created_at) \
                 SELECT {s}, sc.redeemed_by, a.run_id, sc.id, {t} \
                 FROM sponsor_codes sc JOIN sponsor_allocations a ON a.id = sc.allocation_id WHERE a.partner_id = {s}"
            ),
        ),
        // The consent state follows ledger rows (a trigger sees to it); the
        // seeded rows are not chained, which only `consent verify` notices.
        (
            "sponsor consent ledger",
            format!(
                "INSERT INTO consent_ledger (user_id, partner_id, purpose, scope, action, categories, method, actor, \
                   created_at, prev_hash, row_hash) \
                 SELECT sp.user_id, {s}, 'sponsorship', 'run:' || sp.run_id, 'grant', '{cats}', 'web_form', 'learner', \
                   {t}, 'scale', 'scale' \
                 FROM sponsorships sp WHERE sp.partner_id = {s}"
            ),
        ),
        (
            "sponsor consents",
            format!(
                "INSERT INTO consents (user_id, partner_id, purpose, scope, status, categories, ledger_id, updated_at) \
                 SELECT l.user_id, l.partner_id, l.purpose, l.scope, 'granted', l.categories, l.id, {t} \
                 FROM consent_ledger l WHERE l.partner_id = {s} AND l.row_hash = 'scale'"
            ),
        ),
        (
            "organization staff",
            format!(
                "INSERT INTO org_staff (id, partner_id, user_id, user_name, user_name_key, external_id, given_name, \
                   family_name, display_name, title, department, work_email, active, version, created_at, updated_at, provisioned) \
                 SELECT 'scale-staff-' || u.id, {}, u.id, u.username, lower(u.username), NULL, u.first_name, u.last_name, \
                   u.first_name || ' ' || u.last_name, NULL, 'Department ' || (u.id % 20), u.email, TRUE, 1, {t}, {t}, FALSE \
                 FROM users u WHERE u.id BETWEEN {first_user} AND {}",
                org.id,
                first_user + c.org_staff - 1
            ),
        ),
    ] {
        exec_in_transaction(conn, label, &sql)?;
    }
    // Status list indexes above the demo's, below twice the certificates' count.
    batched(conn, "certificates", span, BATCH * 10, |lo, hi| {
        format!(
            "INSERT INTO certificates (code, user_id, run_id, member_slug, name_at_issue, course_title, member_name, \
               run_key, grade_percent, issued_at, status_index, revoked_at, revoked_reason, revoked_by) \
             SELECT 'SCALE-' || e.id, e.user_id, e.run_id, m.slug, u.first_name || ' ' || u.last_name, c.title, m.name, \
               r.run_key, 75.0, {t}, 200000 + e.id / 10, NULL, NULL, NULL \
             FROM enrollments e JOIN users u ON u.id = e.user_id JOIN course_runs r ON r.id = e.run_id \
             JOIN courses c ON c.id = r.course_id JOIN members m ON m.id = c.member_id \
             WHERE e.id BETWEEN {} AND {} AND e.id % 10 = 0 AND e.run_id {runs_in}",
            first_enrollment - 1 + lo,
            first_enrollment - 1 + hi
        )
    })?;

    eprintln!("analysing…");
    match d {
        Dialect::Pg => exec(conn, "VACUUM ANALYZE").map_err(err)?,
        Dialect::Sqlite => exec(conn, "ANALYZE").map_err(err)?,
    };
    let seeded = count_seeded(conn, first_run, last_run, first_user, ada, big_thread, s, org.id)?;
    let big_forum_slug = scalar_text(conn, &format!("SELECT slug AS t FROM forums WHERE id = {first_forum}"))?;
    Ok(Seeded {
        counts: seeded,
        first_course,
        first_run,
        first_forum,
        first_user,
        big_thread,
        big_forum_slug,
        big_unit: first_unit,
    })
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

pub(crate) fn scalar_text(conn: &mut Conn, sql: &str) -> Result<String, String> {
    crate::on_backend!(conn, |c| diesel::sql_query(sql).get_result::<Text>(c))
        .map(|r| r.t)
        .map_err(|e| format!("{e}: {sql}"))
}

/// What the database holds, counted back.
#[allow(clippy::too_many_arguments)]
fn count_seeded(
    conn: &mut Conn,
    first_run: i64,
    last_run: i64,
    first_user: i64,
    dashboard_user: i64,
    big_thread: i64,
    sponsor: i64,
    org: i64,
) -> Result<Counts, String> {
    let runs = format!("BETWEEN {first_run} AND {last_run}");
    let mut n = |sql: String| scalar(conn, &sql);
    Ok(Counts {
        learners: n("SELECT COUNT(*) AS n FROM users WHERE username LIKE 'scale%'".into())?,
        courses: n(format!("SELECT COUNT(*) AS n FROM course_runs WHERE id {runs}"))?,
        enrollments: n(format!("SELECT COUNT(*) AS n FROM enrollments WHERE run_id {runs}"))?,
        big_run: n(format!(
            "SELECT COUNT(*) AS n FROM enrollments WHERE run_id = {first_run} AND user_id >= {first_user}"
        ))?,
        dashboard: n(format!(
            "SELECT COUNT(*) AS n FROM enrollments WHERE user_id = {dashboard_user} AND run_id {runs}"
        ))?,
        completions: n(format!(
            "SELECT COUNT(*) AS n FROM unit_completions uc JOIN enrollments e ON e.id = uc.enrollment_id \
             WHERE e.run_id {runs}"
        ))?,
        posts: n(format!(
            "SELECT COUNT(*) AS n FROM forum_posts p JOIN forum_threads t ON t.id = p.thread_id \
             JOIN forums f ON f.id = t.forum_id WHERE f.run_id {runs}"
        ))?,
        big_thread: n(format!("SELECT COUNT(*) AS n FROM forum_posts WHERE thread_id = {big_thread}"))?,
        sponsored: n(format!(
            "SELECT COUNT(*) AS n FROM consents WHERE partner_id = {sponsor} AND status = 'granted' \
             AND user_id >= {first_user}"
        ))?,
        org_staff: n(format!("SELECT COUNT(*) AS n FROM org_staff WHERE partner_id = {org}"))?,
    })
}

// ---- the site --------------------------------------------------------------------------

/// A served site at scale: its address, the seeded rows, the database.
pub(crate) struct Site {
    pub port: u16,
    pub seeded: Seeded,
    pub seed_seconds: f64,
    pub db: Db,
    /// The 64-byte cookie secret the site runs with.
    pub secret: Vec<u8>,
    pub backend: &'static str,
    server: tokio::task::JoinHandle<Result<rocket::Rocket<rocket::Ignite>, rocket::Error>>,
    dir: PathBuf,
    /// A kept site (`--site`): its folder stays.
    kept: bool,
}

impl Site {
    pub(crate) fn stop(self) {
        self.server.abort();
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What a kept site's folder records of its seeding, to serve it again.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSite {
    scale: f64,
    database_url: String,
    /// The cookie secret (base64), which the consent ledger's seal key derives from.
    secret: String,
    seed_seconds: f64,
    seeded: Seeded,
}

const KEPT: &str = "seeded.json";

/// Refuses a PostgreSQL database that holds accounts already: the bench
/// seeds it and keeps the rows.
fn ensure_empty(db: &Db) -> Result<(), String> {
    use crate::db::schema::users;
    db.migrate().map_err(err)?;
    let mut conn = db.get().map_err(err)?;
    let people: i64 = crate::on_backend!(&mut *conn, |c| users::table.count().get_result(c)).map_err(err)?;
    if people > 0 {
        return Err("the bench needs an empty database (it seeds the demo site and millions of rows, and keeps \
                    them); this one has accounts. Create one with `createdb lyceum_scale` and pass its URL."
            .into());
    }
    Ok(())
}

/// Seeds a site at `scale` and serves it on a loopback port in this process;
/// with `site`, a folder a previous run seeded is served again as it is.
pub(crate) async fn serve(
    base: &Config,
    database_url: Option<String>,
    dir: Option<PathBuf>,
    site: Option<PathBuf>,
    scale: f64,
) -> Result<Site, String> {
    use base64::Engine;
    if !(scale > 0.0 && scale <= 10.0) {
        return Err(format!("--scale must be above 0 and at most 10 (1.0 = a million learners), not {scale}"));
    }
    let kept = site.is_some();
    let dir = match site {
        Some(site) => site,
        None => {
            dir.unwrap_or_else(std::env::temp_dir).join(format!("lyceum-bench-scale-{}", uuid::Uuid::new_v4().simple()))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let record = dir.join(KEPT);
    let previous: Option<KeptSite> = if kept && record.exists() {
        let text = std::fs::read_to_string(&record).map_err(|e| format!("{}: {e}", record.display()))?;
        let k: KeptSite = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", record.display()))?;
        if k.scale != scale {
            return Err(format!(
                "{} was seeded at scale {}, not {scale}: name another folder, or that scale",
                dir.display(),
                k.scale
            ));
        }
        Some(k)
    } else {
        None
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(err)?.port();
    let secret = match &previous {
        Some(k) => base64::engine::general_purpose::STANDARD.decode(&k.secret).map_err(err)?,
        None => {
            let mut secret = vec![0u8; 64];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            secret
        }
    };
    let database_url = match &previous {
        Some(k) => k.database_url.clone(),
        None => database_url.unwrap_or_else(|| format!("sqlite://{}", dir.join("scale.db").display())),
    };
    let backend = if database_url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let config = Config {
        database_url,
        data_dir: dir.clone(),
        address: "127.0.0.1".into(),
        port,
        base_url: None,
        demo: true,
        secret_key: Some(base64::engine::general_purpose::STANDARD.encode(&secret)),
        worker: false,
        rate_limit_per_minute: 1_000_000,
        log: "error".into(),
        ..base.clone()
    };
    let result = async {
        let (seeded, seed_seconds, db) = match previous {
            Some(k) => {
                eprintln!("serving the site seeded in {} (seeded in {:.0} s)", dir.display(), k.seed_seconds);
                (k.seeded, k.seed_seconds, crate::open_database(&config).map_err(err)?)
            }
            None => {
                if backend == "PostgreSQL" {
                    ensure_empty(&Db::connect(&config.database_url, 1).map_err(err)?)?;
                }
                let counts = Counts::at(scale);
                let started = Instant::now();
                let db = crate::open_database(&config).map_err(err)?;
                let seeded = {
                    let db = db.clone();
                    tokio::task::spawn_blocking(move || -> Result<Seeded, String> {
                        let mut conn = db.get().map_err(err)?;
                        seed(&mut conn, &counts)
                    })
                    .await
                    .map_err(err)??
                };
                eprintln!("indexing the catalog…");
                {
                    let index = crate::search_index(&config).map_err(err)?;
                    crate::learning::catalog::reindex(&db, &index, |_, _| {}).await.map_err(err)?;
                }
                let seed_seconds = started.elapsed().as_secs_f64();
                eprintln!("seeded in {seed_seconds:.0} s");
                if kept {
                    let k = KeptSite {
                        scale,
                        database_url: config.database_url.clone(),
                        secret: base64::engine::general_purpose::STANDARD.encode(&secret),
                        seed_seconds,
                        seeded: seeded.clone(),
                    };
                    let text = serde_json::to_string_pretty(&k).map_err(err)?;
                    std::fs::write(&record, text).map_err(|e| format!("{}: {e}", record.display()))?;
                    eprintln!("kept in {}: name it again with --site to serve it without seeding", dir.display());
                }
                (seeded, seed_seconds, db)
            }
        };
        let rocket = crate::build_rocket(config.clone()).map_err(err)?;
        let server = tokio::spawn(rocket.launch());
        bench::wait_for(port).await;
        Ok::<_, String>((seeded, seed_seconds, db, server))
    }
    .await;
    match result {
        Ok((seeded, seed_seconds, db, server)) => {
            Ok(Site { port, seeded, seed_seconds, db, secret, backend, server, dir, kept })
        }
        Err(e) => {
            if !kept {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e)
        }
    }
}

// ---- the run ----------------------------------------------------------------------------

pub async fn run(base: &Config, opts: Options) -> Result<Results, String> {
    let site = serve(base, opts.database_url.clone(), opts.dir.clone(), opts.site.clone(), opts.scale).await?;
    let result = measure_pages(&site, &opts).await;
    let Site { seeded, seed_seconds, backend, .. } = &site;
    let (seeded, seed_seconds, backend) = (seeded.counts, *seed_seconds, *backend);
    site.stop();
    Ok(Results {
        backend,
        scale: opts.scale,
        wanted: Counts::at(opts.scale),
        seeded,
        seed_seconds,
        clients: opts.clients,
        seconds: opts.seconds,
        pages: result?,
    })
}

async fn measure_pages(site: &Site, opts: &Options) -> Result<Vec<Measurement>, String> {
    let accounts = crate::demo::accounts();
    let (staff, learner) = (&accounts[0], &accounts[1]);
    let staff = bench::sign_in(site.port, &staff.email, &staff.password).await?;
    let learner = bench::sign_in(site.port, &learner.email, &learner.password).await?;
    let s = &site.seeded;
    let last_page =
        ((s.counts.big_thread - 1 + crate::forums::POSTS_PER_PAGE - 1) / crate::forums::POSTS_PER_PAGE).max(1);
    let thread = format!("/forums/{}/threads/{}", s.big_forum_slug, s.big_thread);
    let pages: Vec<(String, String, &str)> = vec![
        ("catalog /courses".into(), "/courses".into(), ""),
        ("catalog search /courses?q=python".into(), "/courses?q=python".into(), ""),
        (
            format!("unit page of the big course ({} enrolled)", s.counts.big_run),
            format!("/learn/scale-1/units/{}", s.big_unit),
            learner.as_str(),
        ),
        (format!("dashboard, {} enrollments", s.counts.dashboard), "/dashboard".into(), learner.as_str()),
        (format!("big thread ({} posts), first page", s.counts.big_thread), thread.clone(), learner.as_str()),
        (
            format!("big thread ({} posts), last page ({last_page})", s.counts.big_thread),
            format!("{thread}?page={last_page}"),
            learner.as_str(),
        ),
        ("staff: certificates list, page 1".into(), "/staff/certificates?page=1".into(), staff.as_str()),
        (
            format!("partner: organization staff ({} people)", s.counts.org_staff),
            format!("/partners/{ORG_SLUG}/staff"),
            staff.as_str(),
        ),
        (
            format!("partner: sponsor report ({} learners)", s.counts.sponsored),
            format!("/partners/{SPONSOR_SLUG}/report"),
            staff.as_str(),
        ),
        (
            format!("gradebook of the big run ({} enrolled)", s.counts.big_run),
            format!("/studio/runs/{}/gradebook", s.first_run),
            staff.as_str(),
        ),
    ];
    let mut results = Vec::new();
    for (name, path, cookie) in &pages {
        let mut c = bench::Conn::open(site.port).await.map_err(err)?;
        let first = c.send("GET", path, cookie, None).await.map_err(err)?;
        if first.status != 200 {
            return Err(format!("{path} ({name}) answered {}", first.status));
        }
        eprintln!("measuring {name}…");
        bench::measure(name, site.port, path, cookie, opts.clients, 1).await;
        let mut m = bench::measure(name, site.port, path, cookie, opts.clients, opts.seconds).await;
        m.bytes = first.body.len();
        results.push(m);
    }
    Ok(results)
}

/// The results as Markdown, like `lyceum bench`.
pub fn markdown(r: &Results) -> String {
    let s = &r.seeded;
    let mut out = format!(
        "{}, scale {}: seeded {} learners, {} courses with a run each, {} enrollments ({} in the big run), \
         {} unit completions, {} forum posts ({} in the big thread), {} sponsored learners, {} organization staff \
         in {:.0} s (not a result).\n\n\
         | page ({}, scale {}, {} clients, {} s) | requests/s | p50 ms | p99 ms | errors | KB | CPU ms/request |\n\
         |---|---|---|---|---|---|---|\n",
        r.backend,
        r.scale,
        s.learners,
        s.courses,
        s.enrollments,
        s.big_run,
        s.completions,
        s.posts,
        s.big_thread,
        s.sponsored,
        s.org_staff,
        r.seed_seconds,
        r.backend,
        r.scale,
        r.clients,
        r.seconds
    );
    for m in &r.pages {
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {} |\n",
            m.name,
            m.per_second,
            m.p50_ms,
            m.p99_ms,
            m.errors,
            m.bytes as f64 / 1024.0,
            m.cpu_ms.map_or("-".to_string(), |ms| format!("{ms:.3}"))
        ));
    }
    out
}
