//! The organization's pages (SHR-7), for its partner admins: staff, their
//! assigned training and progress (read through the consent gate on the
//! processor basis, so every record seen is a disclosure), a CSV download,
//! a CSV upload of staff, and assigning a course with a due date.

use crate::web::trail::Trail;
use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;
use rocket::http::ContentType;
use rocket::{FromForm, State, get, post};

use super::{OrgError, StaffInput, Target, views};
use crate::config::Config;
use crate::consent::partners::Partner;
use crate::consent::sharing::{self, Want};
use crate::consent::{PartnerKind, Purpose};
use crate::db::schema::{course_runs, courses, org_assignments, org_groups, org_staff, users};
use crate::db::{Conn, Db, now};
use crate::web::format::{Day, Moment};
use crate::web::paging::PageRequest;
use crate::web::upload::{CsvLimit, Upload};
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

/// The organization `slug`, if this user administers it.
fn organization(conn: &mut Conn, user: &crate::kernel::SessionUser, slug: &str) -> AppResult<Partner> {
    let p = crate::consent::partners::managed(conn, user, slug)?.ok_or(AppError::NotFound)?;
    if p.kind() != PartnerKind::Organization {
        return Err(AppError::NotFound);
    }
    Ok(p)
}

/// Staff per page of the dashboard (each with all their assignments).
const STAFF_PAGE: i64 = 50;
/// Filed rights requests per page of the dashboard.
const REQUESTS_PAGE: i64 = 25;

/// One row of the dashboard: a staff member and one of their assignments.
#[derive(Clone)]
struct Line {
    name: String,
    email: String,
    user_name: String,
    title: Option<String>,
    department: Option<String>,
    active: bool,
    last_sign_in: Option<chrono::NaiveDateTime>,
    course: Option<String>,
    due_on: Option<NaiveDate>,
    progress: Option<f64>,
    completed: Option<NaiveDate>,
    overdue: bool,
}

/// Progress and completion by (work email, course slug, run key).
type Seen = HashMap<(String, String, String), (Option<f64>, Option<NaiveDate>)>;

/// Progress of the organization's staff from the gate (each record seen
/// is disclosed on the processor basis, SHR-5): of the learners `only`
/// names (a page of staff), or of all its staff.
fn progress(conn: &mut Conn, p: &Partner, base_url: &str, only: Option<&[i64]>) -> QueryResult<Seen> {
    let t = now();
    let export_id = format!("dashboard:{}", t.date());
    let (purpose, want) = (Purpose::StaffTraining, Want::ALL);
    let shared = match only {
        Some(learners) => sharing::of_learners(conn, p, purpose, want, learners, &export_id, base_url, t)?,
        None => sharing::all(conn, p, purpose, want, &export_id, base_url, t)?,
    };
    let mut seen: Seen = HashMap::new();
    for s in shared {
        let key = (s.learner.email.clone().unwrap_or_default(), s.course.id.clone(), s.course.run.clone());
        let entry = seen.entry(key).or_default();
        if let Some(pr) = s.progress {
            entry.0 = pr.progress_percent;
        }
        if let Some(r) = s.result {
            entry.1 = r.completed_at.map(|c| c.date_naive());
        }
    }
    Ok(seen)
}

type StaffRecord = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<chrono::NaiveDateTime>,
    String,
);

/// The organization's staff in user-name order: `Some((offset, limit))`
/// reads one page, `None` everyone (for the CSV).
fn staff_records(conn: &mut Conn, partner_id: i64, page: Option<(i64, i64)>) -> QueryResult<Vec<StaffRecord>> {
    let mut q = org_staff::table
        .inner_join(users::table)
        .filter(org_staff::partner_id.eq(partner_id))
        .order((org_staff::user_name_key.asc(), org_staff::id.asc()))
        .select((
            org_staff::id,
            org_staff::given_name,
            org_staff::family_name,
            org_staff::display_name,
            org_staff::user_name,
            org_staff::title,
            org_staff::department,
            org_staff::active,
            users::last_sign_in_at,
            org_staff::work_email,
        ))
        .into_boxed();
    if let Some((offset, limit)) = page {
        q = q.offset(offset).limit(limit);
    }
    q.load(conn)
}

/// The lines of these staff: one per assignment, or one for someone with
/// none. `all` says the staff are every one of the organization's (so their
/// assignments are read without a list of ids).
fn lines(conn: &mut Conn, p: &Partner, seen: &Seen, staff: Vec<StaffRecord>, all: bool) -> QueryResult<Vec<Line>> {
    let today = now().date();
    let ids: Vec<&String> = staff.iter().map(|s| &s.0).collect();
    let mut q = org_assignments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(org_assignments::partner_id.eq(p.id))
        .order((courses::title.asc(), course_runs::run_key.asc()))
        .select((
            org_assignments::staff_id,
            courses::title,
            courses::slug,
            course_runs::run_key,
            org_assignments::due_on,
        ))
        .into_boxed();
    if !all {
        q = q.filter(org_assignments::staff_id.eq_any(ids));
    }
    let mut assignments: HashMap<String, Vec<(String, String, String, NaiveDate)>> = HashMap::new();
    for (staff_id, title, slug, run, due) in q.load::<(String, String, String, String, NaiveDate)>(conn)? {
        assignments.entry(staff_id).or_default().push((title, slug, run, due));
    }
    let mut out = Vec::new();
    for (id, given, family, display, user_name, title, department, active, last_sign_in, email) in staff {
        let name = display
            .or_else(|| {
                let n = format!("{} {}", given.unwrap_or_default(), family.unwrap_or_default()).trim().to_string();
                (!n.is_empty()).then_some(n)
            })
            .unwrap_or_else(|| user_name.clone());
        let mine = assignments.get(&id).map(Vec::as_slice).unwrap_or_default();
        let base = Line {
            name,
            email: email.clone(),
            user_name,
            title,
            department,
            active,
            last_sign_in,
            course: None,
            due_on: None,
            progress: None,
            completed: None,
            overdue: false,
        };
        if mine.is_empty() {
            out.push(base);
            continue;
        }
        for (title, slug, run, due) in mine {
            let (progress, completed) =
                seen.get(&(email.clone(), slug.clone(), run.clone())).cloned().unwrap_or_default();
            out.push(Line {
                course: Some(format!("{title} ({run})")),
                due_on: Some(*due),
                overdue: completed.is_none() && *due < today,
                progress,
                completed,
                ..base.clone()
            });
        }
    }
    Ok(out)
}

/// Assignments of all the organization's staff past their due date and
/// not completed, counted in the database. An assignment counts as
/// completed only where the dashboard would show its completion: the gate
/// lets the completed enrollment through (the learner has not restricted
/// sharing, and a live consent for the run, where there is one, covers the
/// completion and the email the dashboard matches it by; otherwise the
/// processor basis covers both) to the staff member's work email.
fn overdue_count(conn: &mut Conn, p: &Partner) -> QueryResult<usize> {
    use crate::consent::{Category, ConsentStatus};
    let today = now().date();
    let covers = |c: Category| format!("(',' || k.categories || ',') LIKE '%,{},%'", c.as_str());
    let completion_seen = format!(
        "EXISTS (SELECT 1 FROM enrollments e \
           JOIN course_runs r ON r.id = e.run_id JOIN courses c ON c.id = r.course_id \
           JOIN members m ON m.id = c.member_id JOIN users u ON u.id = e.user_id \
           WHERE e.user_id = org_staff.user_id AND e.run_id = org_assignments.run_id \
             AND e.completed_at IS NOT NULL AND u.email = org_staff.work_email \
             AND NOT EXISTS (SELECT 1 FROM sharing_restrictions x WHERE x.user_id = e.user_id) \
             AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.user_id = e.user_id \
               AND k.partner_id = org_assignments.partner_id AND k.purpose = '{purpose}' \
               AND k.status = '{granted}' AND k.scope = ('run:' || e.run_id) \
               AND NOT ({completion} AND {email})))",
        purpose = Purpose::StaffTraining.as_str(),
        granted = ConsentStatus::Granted.as_str(),
        completion = covers(Category::Completion),
        email = covers(Category::ProfileEmail),
    );
    let late: i64 = org_assignments::table
        .left_join(org_staff::table)
        .filter(org_assignments::partner_id.eq(p.id))
        .filter(org_assignments::due_on.lt(today))
        .filter(diesel::dsl::not(diesel::dsl::sql::<diesel::sql_types::Bool>(&completion_seen)))
        .count()
        .get_result(conn)?;
    Ok(late as usize)
}

fn request_label(kind: &str) -> &'static str {
    use crate::privacy::kind::*;
    match kind {
        EXPORT => "A copy of their data",
        ERASURE => "Delete their account and data",
        RECTIFICATION => "Correct their data",
        RESTRICTION => "Restrict the use of their data",
        OBJECTION => "Object to a use of their data",
        _ => "Other",
    }
}

/// Which pages of the dashboard's two lists a request asks for, and which
/// course runs the assignment form offers (`?course=`).
#[derive(Clone)]
struct Pages {
    staff: PageRequest,
    requests: PageRequest,
    course: String,
}

impl Pages {
    fn parse(staff: Option<&str>, requests: Option<&str>, course: Option<&str>) -> Pages {
        Pages {
            staff: PageRequest::parse(staff, STAFF_PAGE),
            requests: PageRequest::parse(requests, REQUESTS_PAGE),
            course: course.unwrap_or_default().to_string(),
        }
    }

    /// The dashboard's address with the staff list at `staff` and the requests at `requests`.
    fn link(slug: &str, staff: i64, requests: i64) -> String {
        let mut query = Vec::new();
        if staff > 1 {
            query.push(format!("page={staff}"));
        }
        if requests > 1 {
            query.push(format!("requests={requests}"));
        }
        let path = format!("/partners/{slug}/staff");
        if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
    }
}

/// The dashboard at `pages`, and the staff it shows (for the audit log).
fn dashboard_view(
    conn: &mut Conn,
    p: &Partner,
    base_url: &str,
    pages: Pages,
) -> AppResult<(views::StaffPage, Vec<i64>)> {
    let records = staff_records(conn, p.id, Some((pages.staff.offset(), pages.staff.fetch())))?;
    let requests_at = pages.requests.page();
    let (records, nav) = pages.staff.finish(records, |n| Pages::link(&p.slug, n, requests_at));
    let mut shown: Vec<i64> = org_staff::table
        .filter(org_staff::partner_id.eq(p.id))
        .filter(org_staff::id.eq_any(records.iter().map(|r| r.0.clone()).collect::<Vec<_>>()))
        .select(org_staff::user_id)
        .load(conn)?;
    // The gate is read for the staff on this page only.
    let seen = progress(conn, p, base_url, Some(&shown))?;
    let rows = lines(conn, p, &seen, records, false)?;
    let filed = super::filed_requests(conn, p.id, pages.requests.offset(), pages.requests.fetch())?;
    let staff_at = pages.staff.page();
    let (filed, requests_nav) = pages.requests.finish(filed, |n| Pages::link(&p.slug, staff_at, n));
    // The people the requests name are shown too.
    shown.extend(filed.iter().filter_map(|r| r.0));
    let groups: Vec<(String, String)> = org_groups::table
        .filter(org_groups::partner_id.eq(p.id))
        .order(org_groups::display_name.asc())
        .select((org_groups::id, org_groups::display_name))
        .load(conn)?;
    let staff_count: i64 = org_staff::table
        .filter(org_staff::partner_id.eq(p.id))
        .filter(org_staff::active.eq(true))
        .count()
        .get_result(conn)?;
    let has_staff = diesel::select(diesel::dsl::exists(org_staff::table.filter(org_staff::partner_id.eq(p.id))))
        .get_result(conn)?;
    let view = views::StaffPage {
        partner: views::PartnerRef { slug: p.slug.clone(), name: p.name.clone() },
        rows: rows
            .into_iter()
            .map(|l| views::StaffRow {
                name: l.name,
                email: l.email,
                title: l.title,
                department: l.department,
                active: l.active,
                last_sign_in: l.last_sign_in.map(Moment),
                course: l.course,
                due: l.due_on.map(Day),
                progress: l.progress.map(|p| format!("{p:.0}%")),
                completed: l.completed.map(Day),
                overdue: l.overdue,
            })
            .collect(),
        nav,
        staff_count,
        overdue_count: overdue_count(conn, p)?,
        has_staff,
        requests: filed
            .into_iter()
            .map(|(_, who, kind, status, received, due, done)| views::FiledRow {
                who,
                kind: request_label(&kind),
                status: status.replace('_', " "),
                received: Day::from(received),
                due: Day::from(due),
                done: done.map(Day::from),
            })
            .collect(),
        requests_nav,
        request_kinds: crate::privacy::kind::ALL
            .iter()
            .map(|k| views::Choice { value: k.to_string(), label: request_label(k).to_string() })
            .collect(),
        runs: crate::learning::service::run_choices(
            conn,
            &pages.course,
            &format!("/partners/{}/staff#assign-h", p.slug),
            now(),
        )?,
        groups: groups
            .into_iter()
            .map(|(id, name)| views::Choice { value: format!("group:{id}"), label: name })
            .collect(),
        upload_text: String::new(),
        upload_errors: Vec::new(),
    };
    Ok((view, shown))
}

/// The dashboard's query: the staff page, the requests page, and the
/// search of course runs to assign.
#[derive(FromForm)]
pub struct DashboardQuery<'r> {
    page: Option<&'r str>,
    requests: Option<&'r str>,
    course: Option<&'r str>,
}

#[get("/partners/<slug>/staff?<q..>")]
pub async fn dashboard(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    q: DashboardQuery<'_>,
) -> AppResult<Page> {
    let (slug, user, base) = (slug.to_string(), user.0, config.base_url());
    let pages = Pages::parse(q.page, q.requests, q.course);
    let (name, view, shown) = db
        .run(move |conn| {
            let p = organization(conn, &user, &slug)?;
            let (view, shown) = dashboard_view(conn, &p, &base, pages)?;
            Ok::<_, AppError>((p.name.clone(), view, (p.id, shown)))
        })
        .await?;
    trail.partner_users(shown.0, shown.1);
    Ok(Page::view("orgs/staff", format!("{name}: staff and training"), view))
}

/// The organization's staff the CSV lists, for the audit log.
fn staff_shown(conn: &mut Conn, partner_id: i64) -> QueryResult<(i64, Vec<i64>)> {
    let ids = org_staff::table.filter(org_staff::partner_id.eq(partner_id)).select(org_staff::user_id).load(conn)?;
    Ok((partner_id, ids))
}

/// The dashboard as CSV, for the organization's own records.
#[get("/partners/<slug>/staff.csv")]
pub async fn dashboard_csv(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
) -> AppResult<(ContentType, String)> {
    let (slug, user, base) = (slug.to_string(), user.0, config.base_url());
    let (rows, shown) = db
        .run(move |conn| {
            let p = organization(conn, &user, &slug)?;
            let seen = progress(conn, &p, &base, None)?;
            let staff = staff_records(conn, p.id, None)?;
            Ok::<_, AppError>((lines(conn, &p, &seen, staff, true)?, staff_shown(conn, p.id)?))
        })
        .await?;
    trail.partner_users(shown.0, shown.1);
    let mut w = crate::web::csv::Writer::in_memory();
    let header = [
        "name",
        "email",
        "username",
        "title",
        "department",
        "active",
        "last_sign_in",
        "course",
        "due",
        "progress_percent",
        "completed",
        "overdue",
    ];
    let csv_err = |e: csv::Error| AppError::Internal(e.to_string());
    w.write_record(header).map_err(csv_err)?;
    for l in rows {
        w.write_record([
            l.name,
            l.email,
            l.user_name,
            l.title.unwrap_or_default(),
            l.department.unwrap_or_default(),
            l.active.to_string(),
            l.last_sign_in.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
            l.course.unwrap_or_default(),
            l.due_on.map(|d| d.to_string()).unwrap_or_default(),
            l.progress.map(|p| format!("{p:.0}")).unwrap_or_default(),
            l.completed.map(|d| d.to_string()).unwrap_or_default(),
            l.overdue.to_string(),
        ])
        .map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((ContentType::CSV, String::from_utf8_lossy(&bytes).into_owned()))
}

#[derive(FromForm)]
pub struct AssignForm {
    #[field(default = String::new())]
    run_id: String,
    #[field(default = String::new())]
    target: String,
    /// One person by user name, instead of the target chosen.
    #[field(default = String::new())]
    person: String,
    #[field(default = String::new())]
    due_on: String,
}

#[post("/partners/<slug>/staff/assign", data = "<form>")]
pub async fn assign(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<AssignForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let back = format!("/partners/{slug}/staff");
    let f = &form.form;
    let Ok(run_id) = f.run_id.trim().parse::<i64>() else { return Ok(Flash::error(back, "Choose a course.")) };
    let person = f.person.trim().to_string();
    let target = if person.is_empty() { Target::parse(f.target.trim()) } else { Some(Target::Everyone) };
    let Some(target) = target else {
        return Ok(Flash::error(back, "Choose whom to assign it to."));
    };
    let Ok(due_on) = NaiveDate::parse_from_str(f.due_on.trim(), "%Y-%m-%d") else {
        return Ok(Flash::error(back, "Give a due date."));
    };
    if due_on < now().date() {
        return Ok(Flash::error(back, "The due date has passed already: choose a later one."));
    }
    let (slug, user) = (slug.to_string(), user.0);
    let done = db
        .run(move |conn| {
            let p = organization(conn, &user, &slug)?;
            // A person typed by name is looked up among this organization's staff only.
            let target = if person.is_empty() {
                target
            } else {
                match super::staff_by_id_or_name(conn, p.id, &person) {
                    Ok(s) => Target::Person(s.id),
                    Err(e) => return Ok::<_, AppError>(Err(e)),
                }
            };
            Ok(super::assign(conn, &p, run_id, &target, due_on, user.id, now()))
        })
        .await?;
    Ok(match done {
        Ok(0) => Flash::info(back, "Everyone chosen had this course assigned already."),
        Ok(n) => Flash::success(back, format!("Assigned to {n} staff member(s); each was emailed.")),
        Err(OrgError::Invalid(m)) | Err(OrgError::Conflict(m)) => Flash::error(back, m),
        Err(OrgError::NotFound) => Flash::error(back, "That group or person is not one of your staff."),
        Err(e) => return Err(AppError::Internal(e.to_string())),
    })
}

#[derive(FromForm)]
pub struct UploadForm {
    #[field(default = String::new())]
    csrf_token: String,
    #[field(default = String::new())]
    csv: String,
    csv_file: Upload<CsvLimit>,
}

/// The columns a staff upload has, in any order (the first row names them).
const UPLOAD_COLUMNS: [&str; 6] = ["username", "email", "given_name", "family_name", "title", "department"];

/// Reads an upload: every row valid, or the list of what is wrong (and nothing created).
fn parse_upload(text: &str) -> Result<Vec<StaffInput>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_lowercase()).collect(),
        Err(e) => return Err(vec![format!("The first row could not be read: {e}")]),
    };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(u), Some(e)) = (col("username"), col("email")) else {
        return Err(vec![format!(
            "The first row must name the columns, at least username and email (of {UPLOAD_COLUMNS:?})."
        )]);
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(err) => {
                errors.push(format!("Row {line}: {err}"));
                continue;
            }
        };
        let get = |c: Option<usize>| {
            c.and_then(|c| record.get(c)).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
        };
        let Some(user_name) = get(Some(u)) else {
            errors.push(format!("Row {line}: the username is empty."));
            continue;
        };
        let email = match crate::accounts::domain::Email::parse(&get(Some(e)).unwrap_or_default()) {
            Ok(email) => email.as_str().to_string(),
            Err(m) => {
                errors.push(format!("Row {line}: {m}"));
                continue;
            }
        };
        if out.iter().any(|s: &StaffInput| s.user_name.eq_ignore_ascii_case(&user_name) || s.work_email == email) {
            errors.push(format!("Row {line}: {user_name} or {email} appears twice."));
            continue;
        }
        out.push(StaffInput {
            user_name,
            external_id: None,
            given_name: get(col("given_name")),
            family_name: get(col("family_name")),
            display_name: None,
            title: get(col("title")),
            department: get(col("department")),
            work_email: email,
            active: true,
        });
    }
    if out.is_empty() && errors.is_empty() {
        errors.push("The file has no staff rows.".into());
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[post("/partners/<slug>/staff/upload", data = "<form>")]
pub async fn upload(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    cookies: &rocket::http::CookieJar<'_>,
    form: rocket::form::Form<UploadForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    crate::web::csrf::verify_token(cookies, &form.csrf_token)?;
    trail.partner_page(slug);
    let back = format!("/partners/{slug}/staff");
    // A file is read by the site's encoding rule; pasted text is checked by it.
    let (parsed, text, converted) = match crate::web::csv::form_text(&form.csv, &form.csv_file) {
        Ok(read) => (parse_upload(&read.text), read.text, read.converted_from),
        Err(message) => (Err(vec![message]), form.csv.clone(), None),
    };
    let (slug, user, base) = (slug.to_string(), user.0, config.base_url());
    let first = Pages::parse(None, None, None);
    let outcome = db
        .run(move |conn| {
            let p = organization(conn, &user, &slug)?;
            let people = match parsed {
                Ok(people) => people,
                Err(errors) => return Ok::<_, AppError>(Err((dashboard_view(conn, &p, &base, first)?.0, errors))),
            };
            // All rows or none: the first conflict undoes the rest.
            let created = crate::db::transaction(conn, |conn| {
                let mut n = 0;
                for (i, s) in people.iter().enumerate() {
                    super::create(conn, p.id, s, now()).map_err(|e| match e {
                        OrgError::Db(e) => OrgError::Db(e),
                        other => OrgError::Invalid(format!("Row {}: {other}", i + 2)),
                    })?;
                    n += 1;
                }
                Ok::<_, OrgError>(n)
            });
            match created {
                Ok(n) => Ok(Ok(n)),
                Err(OrgError::Invalid(m)) => Ok(Err((dashboard_view(conn, &p, &base, first)?.0, vec![m]))),
                Err(e) => Err(AppError::Internal(e.to_string())),
            }
        })
        .await?;
    match outcome {
        Ok(n) => {
            Ok(rocket::Either::Left(Flash::success(back, format!("{n} staff member(s) added.{}", read_as(converted)))))
        }
        Err((view, errors)) => {
            let view = views::StaffPage { upload_errors: errors, upload_text: text, ..view };
            Ok(rocket::Either::Right(
                Page::view("orgs/staff", "Staff and training", view)
                    .with_status(rocket::http::Status::UnprocessableEntity),
            ))
        }
    }
}

/// Says which encoding a converted file was read in.
fn read_as(converted: Option<&str>) -> String {
    converted.map(|name| format!(" The file was read as {name} text and converted.")).unwrap_or_default()
}

#[derive(FromForm)]
pub struct RequestForm {
    #[field(default = String::new())]
    staff_id: String,
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    details: String,
}

/// A rights request the organization files for one of its staff (RGT-5).
#[post("/partners/<slug>/staff/requests", data = "<form>")]
pub async fn file_request(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<RequestForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let back = format!("/partners/{slug}/staff#requests");
    let (slug, user) = (slug.to_string(), user.0);
    let (staff_id, kind, details) = (form.form.staff_id.clone(), form.form.kind.clone(), form.form.details.clone());
    let filed = db
        .run(move |conn| {
            let p = organization(conn, &user, &slug)?;
            Ok::<_, AppError>(super::file_request(conn, &p, &staff_id, &kind, &details, user.id, now()))
        })
        .await?;
    Ok(match filed {
        Ok(()) => Flash::success(back, "The request is filed; it is answered within 30 days."),
        Err(OrgError::Invalid(m)) => Flash::error(back, m),
        Err(OrgError::NotFound) => Flash::error(back, "Choose one of your staff."),
        Err(e) => return Err(AppError::Internal(e.to_string())),
    })
}

#[derive(FromForm)]
pub struct EndForm {
    #[field(default = String::new())]
    confirm: String,
}

/// The contract ends: the organization deletes all its staff's data.
#[post("/partners/<slug>/staff/end", data = "<form>")]
pub async fn end_contract(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<EndForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let back = format!("/partners/{slug}/staff");
    let (slug_owned, user, typed) = (slug.to_string(), user.0, form.form.confirm.trim().to_string());
    let ended = db
        .run(move |conn| {
            let p = organization(conn, &user, &slug_owned)?;
            if typed != p.slug {
                return Ok::<_, AppError>(Err(format!("Type {} to confirm.", p.slug)));
            }
            crate::db::transaction(conn, |conn| super::end_contract(conn, p.id, now()))
                .map(Ok)
                .map_err(|e| AppError::Internal(e.to_string()))
        })
        .await?;
    Ok(match ended {
        Ok(n) => Flash::success(back, format!("{n} staff account(s) switched off; their data is being erased.")),
        Err(m) => Flash::error(back, m),
    })
}

#[derive(FromForm)]
pub struct InviteForm {
    #[field(default = String::new())]
    email: String,
}

/// Invites a person who has (or will make) an account of their own.
#[post("/partners/<slug>/staff/invite", data = "<form>")]
pub async fn invite(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<InviteForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let back = format!("/partners/{slug}/staff");
    let email = match crate::accounts::domain::Email::parse(&form.form.email) {
        Ok(e) => e,
        Err(m) => return Ok(Flash::error(back, m)),
    };
    let (slug, user, shown) = (slug.to_string(), user.0, email.as_str().to_string());
    db.run(move |conn| {
        let p = organization(conn, &user, &slug)?;
        Ok::<_, AppError>(super::invite(conn, &p, &email, user.id, now())?)
    })
    .await?;
    Ok(Flash::success(back, format!("Invitation emailed to {shown}.")))
}

/// The invitation, for the person invited: what joining means, before they decide.
#[get("/orgs/join/<token>")]
pub async fn invitation(
    db: &State<Db>,
    viewer: crate::web::guards::Viewer,
    token: &str,
) -> AppResult<rocket::Either<Page, Flash>> {
    if !viewer.signed_in() {
        let next = format!("/orgs/join/{token}");
        return Ok(rocket::Either::Right(Flash::info(
            format!("/signin?next={}", urlencoding::encode(&next)),
            "Sign in (or create an account) to see your invitation.",
        )));
    }
    let token = token.to_string();
    let found = db
        .run(move |conn| {
            let Some((_, partner_id, email)) = super::invitation(conn, &token, now())? else {
                return Ok::<_, AppError>(None);
            };
            Ok(Some((crate::consent::partners::by_id(conn, partner_id)?.name, email)))
        })
        .await?;
    let Some((name, email)) = found else {
        return Err(AppError::Gone("This invitation has expired or was used already. Ask for a new one.".into()));
    };
    let sees: Vec<&str> = Purpose::StaffTraining.ceiling().iter().map(|c| c.label()).collect();
    Ok(rocket::Either::Left(Page::view(
        "orgs/join",
        format!("Join {name}"),
        views::Join { organization: name, email, sees },
    )))
}

#[post("/orgs/join/<token>", data = "<_form>")]
pub async fn accept(
    db: &State<Db>,
    user: CurrentUser,
    token: &str,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    let (token, user_id) = (token.to_string(), user.id);
    let joined = db.run(move |conn| Ok::<_, AppError>(super::accept_invitation(conn, &token, user_id, now()))).await?;
    match joined {
        Ok(name) => {
            Ok(Flash::success("/sharing", format!("You joined {name}'s staff. Your Sharing page shows what it sees.")))
        }
        Err(OrgError::Conflict(m)) => Ok(Flash::error("/dashboard", m)),
        Err(OrgError::NotFound) => {
            Err(AppError::Gone("This invitation has expired or was used already. Ask for a new one.".into()))
        }
        Err(e) => Err(AppError::Internal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_checked_row_by_row_and_name_their_columns() {
        let ok =
            parse_upload("Email,Username,Given_Name\nada@globex.example,ada,Ada\nlin@globex.example,lin,\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].user_name.as_str(), ok[0].given_name.as_deref()), ("ada", Some("Ada")));
        assert_eq!(ok[1].given_name, None);
        let errors = parse_upload(
            "username,email\nada,not-an-email\n,x@y.org\nada,ada@globex.example\nada,ada2@globex.example\n",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("Row 2") && errors[1].starts_with("Row 3") && errors[2].starts_with("Row 5"));
        assert!(parse_upload("name\nada\n").is_err());
        assert!(parse_upload("username,email\n").is_err());
    }
}
