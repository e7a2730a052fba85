//! Demo mode: on first start with an empty database, a staff admin and a
//! learner with known passwords, shown on the home page so a new user can look
//! around at once. Never runs when `demo` is off.

use diesel::prelude::*;

use crate::accounts::domain::{Email, PersonName, Username};
use crate::accounts::roles::{self, Role};
use crate::accounts::{passwords, service};
use crate::db::{Conn, schema::users};
use crate::learning::{authoring, package, transfer};
use crate::storage::BlobStore;
use crate::web::page::DemoAccount;
use rust_embed::RustEmbed;

pub fn accounts() -> Vec<DemoAccount> {
    vec![
        DemoAccount {
            role: "Staff".into(),
            email: "staff@demo.lyceum.local".into(),
            password: "lyceum-staff-demo".into(),
        },
        DemoAccount {
            role: "Learner".into(),
            email: "learner@demo.lyceum.local".into(),
            password: "lyceum-learner-demo".into(),
        },
        DemoAccount {
            role: "Sponsor (Acme Corp)".into(),
            email: "sponsor@demo.lyceum.local".into(),
            password: "lyceum-sponsor-demo".into(),
        },
    ]
}

/// Seeds the demo accounts and courses when there are no users; returns whether it did.
pub fn seed_if_empty(conn: &mut Conn, blobs: &dyn BlobStore) -> Result<bool, String> {
    let count: i64 = users::table.count().get_result(conn).map_err(|e| e.to_string())?;
    if count > 0 {
        return Ok(false);
    }
    let people = [
        ("staff", "Grace", "Hopper", true),
        ("learner", "Ada", "Lovelace", false),
        ("sponsor", "Katherine", "Johnson", false),
    ];
    let mut ids = Vec::new();
    for (account, (username, first, last, staff)) in accounts().iter().zip(people) {
        let hash = passwords::hash_blocking(&account.password)?;
        let id = service::insert_operator_account(
            conn,
            &Username::parse(username)?,
            &Email::parse(&account.email)?,
            &PersonName::parse(first, "first name")?,
            &PersonName::parse(last, "last name")?,
            &hash,
        )
        .map_err(|e| e.to_string())?;
        ids.push(id);
        if staff {
            roles::grant(conn, id, Role::Staff, "", None).map_err(|e| e.to_string())?;
            let author = crate::kernel::SessionUser {
                id,
                username: username.into(),
                first_name: first.into(),
                last_name: last.into(),
                email: account.email.clone(),
                email_verified: true,
                roles: vec![(Role::Staff, String::new())],
            };
            seed_courses(conn, blobs, &author)?;
        }
    }
    seed_partners(conn, ids[0], ids[2]).map_err(|e| e.to_string())?;
    seed_certificate(conn, ids[0], ids[1]).map_err(|e| e.to_string())?;
    Ok(true)
}

/// The demo learner finished Climate Science on the verified track (a staff
/// grant), with her identity checked: a certificate to look at and verify.
fn seed_certificate(conn: &mut Conn, staff_id: i64, learner_id: i64) -> diesel::QueryResult<()> {
    use crate::db::schema::{course_runs, courses, enrollments, identity_checks};
    let now = crate::db::now();
    let run: Option<i64> = course_runs::table
        .inner_join(courses::table)
        .filter(courses::slug.eq("climate-science"))
        .select(course_runs::id)
        .first(conn)
        .optional()?;
    let Some(run_id) = run else { return Ok(()) };
    diesel::insert_into(identity_checks::table)
        .values((
            identity_checks::user_id.eq(learner_id),
            identity_checks::status.eq(crate::certificates::identity::status::APPROVED),
            identity_checks::submitted_at.eq(now),
            identity_checks::decided_at.eq(now),
            identity_checks::decided_by.eq(staff_id),
            identity_checks::valid_until.eq(now + chrono::Duration::days(365)),
        ))
        .execute(conn)?;
    crate::certificates::grant_verified(conn, learner_id, run_id, now)?;
    diesel::update(
        enrollments::table.filter(enrollments::user_id.eq(learner_id)).filter(enrollments::run_id.eq(run_id)),
    )
    .set((enrollments::grade_percent.eq(92.0), enrollments::passed.eq(true), enrollments::completed_at.eq(now)))
    .execute(conn)?;
    crate::certificates::issue_if_earned(conn, learner_id, run_id, now).map(|_| ())
}

/// Partners to try sharing with: each member asks for name and email at
/// enrollment; Acme Corp (run by the demo sponsor) holds seats in the first
/// course's run; a research lab can read aggregates.
fn seed_partners(conn: &mut Conn, staff_id: i64, sponsor_id: i64) -> diesel::QueryResult<()> {
    use crate::consent::{Categories, Category, PartnerKind, partners, sponsors};
    use crate::db::schema::{course_runs, courses};
    let now = crate::db::now();
    let fields = Categories::of([Category::ProfileName, Category::ProfileEmail]);
    use crate::db::schema::members;
    let all: Vec<crate::learning::model::Member> =
        members::table.order(members::id).select(crate::learning::model::Member::as_select()).load(conn)?;
    for member in all {
        let p = partners::for_member(conn, &member)?;
        partners::set_profile_fields(conn, &p, &fields)?;
    }
    let invalid = |e: partners::PartnerError| match e {
        partners::PartnerError::Db(d) => d,
        other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
    };
    let acme = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "learning@acme.example", now)
        .map_err(invalid)?;
    partners::appoint(conn, &acme, sponsor_id, staff_id)?;
    let first_run: Option<i64> = course_runs::table
        .inner_join(courses::table)
        .filter(courses::published.eq(true))
        .order((courses::title.asc(), course_runs::id.asc()))
        .select(course_runs::id)
        .first(conn)
        .optional()?;
    if let Some(run_id) = first_run {
        let seats = sponsors::SeatRequest {
            run_id,
            seats: 10,
            expires_at: now + chrono::Duration::days(365),
            note: "Demo seats",
            by: Some(staff_id),
        };
        sponsors::allocate(conn, &acme, &seats, now).map_err(|e| match e {
            sponsors::SponsorError::Db(d) => d,
            other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
        })?;
    }
    partners::create(conn, PartnerKind::Researcher, "edlab", "Education Research Lab", None, "lab@uni.example", now)
        .map_err(invalid)?;
    // An exam body with an online sitting of the first course (CRT-8), run by staff.
    let board = partners::create(
        conn,
        PartnerKind::ExamBody,
        "skills-board",
        "Open Skills Board",
        None,
        "exams@skills.example",
        now,
    )
    .map_err(invalid)?;
    partners::appoint(conn, &board, staff_id, staff_id)?;
    let first_course: Option<i64> = courses::table
        .filter(courses::published.eq(true))
        .order(courses::title.asc())
        .select(courses::id)
        .first(conn)
        .optional()?;
    if let Some(course_id) = first_course {
        let day = |d| (now + chrono::Duration::days(d)).date();
        let input = crate::exams::SessionInput {
            course_id,
            title: "Certificate exam, online sitting".into(),
            starts_local: day(60).and_hms_opt(10, 0, 0).unwrap_or(now),
            time_zone: "Europe/London".into(),
            mode: crate::exams::ONLINE.into(),
            location: String::new(),
            capacity: 30,
            deadline_local: day(45).and_hms_opt(17, 0, 0).unwrap_or(now),
        };
        crate::exams::create_session(conn, &board, &input, now).map_err(|e| match e {
            crate::exams::ExamError::Db(d) => d,
            other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
        })?;
    }
    Ok(())
}

#[derive(RustEmbed)]
#[folder = "demo/"]
struct DemoFiles;

#[derive(serde::Deserialize)]
struct DemoMembers {
    members: Vec<DemoMember>,
}

#[derive(serde::Deserialize)]
struct DemoMember {
    slug: String,
    name: String,
    description: String,
}

/// The demo members and their courses, from the packages in `demo/`
/// (embedded in the binary), imported through the same path as any package.
fn seed_courses(conn: &mut Conn, blobs: &dyn BlobStore, author: &crate::kernel::SessionUser) -> Result<(), String> {
    let now = crate::db::now();
    let members_toml = DemoFiles::get("members.toml").ok_or("demo/members.toml is missing")?;
    let list: DemoMembers = toml::from_str(&String::from_utf8_lossy(&members_toml.data)).map_err(|e| e.to_string())?;
    for m in &list.members {
        authoring::create_member(conn, author, &m.slug, &m.name, &m.description, now).map_err(|e| e.to_string())?;
    }
    let mut courses: Vec<String> = DemoFiles::iter()
        .filter_map(|p| p.strip_prefix("courses/").and_then(|r| r.strip_suffix("/course.toml")).map(str::to_string))
        .collect();
    courses.sort();
    for slug in courses {
        let prefix = format!("courses/{slug}/");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let mut member_slug = None;
        for path in DemoFiles::iter().filter(|p| p.starts_with(&prefix)) {
            let file = DemoFiles::get(&path).ok_or("demo file vanished")?;
            let mut bytes = file.data.into_owned();
            let rel = &path[prefix.len()..];
            if rel == "course.toml" {
                // `member = "…"` is a demo-only key naming the member; the package format has none.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let (member_lines, rest): (Vec<&str>, Vec<&str>) =
                    text.lines().partition(|l| l.trim_start().starts_with("member ="));
                member_slug = member_lines.first().and_then(|l| l.split('"').nth(1)).map(str::to_string);
                bytes = (rest.join("\n") + "\n").into_bytes();
            }
            zip.start_file(rel, zip::write::SimpleFileOptions::default()).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut zip, &bytes).map_err(|e| e.to_string())?;
        }
        let bytes = zip.finish().map_err(|e| e.to_string())?.into_inner();
        let member_slug = member_slug.ok_or_else(|| format!("demo course {slug} names no member"))?;
        let member = authoring::member_by_slug(conn, &member_slug).map_err(|e| e.to_string())?;
        let pkg = package::read_zip(&bytes).map_err(|p| problems(&slug, &p))?;
        let course = transfer::import(conn, blobs, author, &member, &pkg).map_err(|p| problems(&slug, &p))?;
        authoring::set_published(conn, &course, true, now).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn problems(slug: &str, problems: &[package::PackageProblem]) -> String {
    format!("demo course {slug}: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
}

/// A thread of `posts` visible posts (Markdown, some with comments) by the
/// demo learner in the course forum, as a busy discussion would have (for
/// the benchmarks and the forum's paging test); returns the thread's path.
pub fn seed_thread(db: &crate::db::Db, posts: usize) -> Result<String, String> {
    use crate::db::schema::{forum_posts, forum_threads, forums, users};
    use diesel::prelude::*;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let conn = &mut *conn;
    let now = crate::db::now();
    let slug: String = forums::table
        .filter(forums::run_id.is_not_null())
        .order(forums::id.asc())
        .select(forums::slug)
        .first(conn)
        .map_err(|e| format!("no course forum: {e}"))?;
    let forum_id: i64 =
        forums::table.filter(forums::slug.eq(&slug)).select(forums::id).first(conn).map_err(|e| e.to_string())?;
    let author: i64 =
        users::table.filter(users::username.eq("learner")).select(users::id).first(conn).map_err(|e| e.to_string())?;
    let thread: i64 = diesel::insert_into(forum_threads::table)
        .values((
            forum_threads::forum_id.eq(forum_id),
            forum_threads::title.eq("How do list comprehensions work?"),
            forum_threads::pinned.eq(false),
            forum_threads::locked.eq(false),
            forum_threads::last_post_at.eq(now),
            forum_threads::created_at.eq(now),
        ))
        .returning(forum_threads::id)
        .get_result(conn)
        .map_err(|e| e.to_string())?;
    let mut parent = None;
    for i in 0..posts {
        let body = format!(
            "Post {i}: a list comprehension like `[x * x for x in range(10)]` builds a list.\n\n- one\n- two\n\n**Tip**: read it left to right."
        );
        let html = crate::learning::content::render_markdown(&body);
        let id: i64 = diesel::insert_into(forum_posts::table)
            .values((
                forum_posts::thread_id.eq(thread),
                forum_posts::parent_id.eq(if i % 4 == 3 { parent } else { None }),
                forum_posts::author_id.eq(author),
                forum_posts::anonymous.eq(false),
                forum_posts::author_erased.eq(false),
                forum_posts::body.eq(&body),
                forum_posts::body_html.eq(&html),
                forum_posts::status.eq(crate::forums::status::VISIBLE),
                forum_posts::endorsed.eq(false),
                forum_posts::created_at.eq(now),
            ))
            .returning(forum_posts::id)
            .get_result(conn)
            .map_err(|e| e.to_string())?;
        if i > 0 && i % 4 != 3 {
            parent = Some(id);
        }
    }
    Ok(format!("/forums/{slug}/threads/{thread}"))
}
