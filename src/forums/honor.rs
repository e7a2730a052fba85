//! Honor-code reports (FRM-6): a learner or course staff member reports
//! cheating or plagiarism by a learner of the same course; the course's
//! staff track it from open through investigating to a decision (upheld or
//! dismissed) with a note. The learner reported never sees who reported.

use crate::web::trail::Trail;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::{FromForm, State, get, post};

use super::views::{CourseLink, HonorItem, HonorListPage, HonorReportPage, KindChoice};
use crate::db::schema::{honor_reports, users};
use crate::db::{Conn, Db, now};
use crate::kernel::SessionUser;
use crate::learning::model::Course;
use crate::learning::service::{self as learning, LearningError};
use crate::web::format::Day;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

pub const KINDS: [(&str, &str); 3] = [
    ("plagiarism", "Plagiarism"),
    ("cheating", "Cheating on an assessment"),
    ("other", "Other breach of the honor code"),
];
pub const STATUSES: [&str; 4] = ["open", "investigating", "upheld", "dismissed"];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = honor_reports)]
pub struct HonorReport {
    pub id: i64,
    pub course_id: i64,
    pub subject_id: i64,
    pub reporter_id: Option<i64>,
    pub kind: String,
    pub description: String,
    pub status: String,
    pub decision_note: Option<String>,
    pub decided_by: Option<i64>,
    pub decided_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

fn member_of_course(conn: &mut Conn, user: &SessionUser, course: &Course, now: NaiveDateTime) -> bool {
    learning::can_author(user, course.member_id) || learning::active_enrollment(conn, user.id, course.id, now).is_ok()
}

/// Files a report; the error is a message for the reporter.
pub fn file(
    conn: &mut Conn,
    reporter: &SessionUser,
    course: &Course,
    (subject, kind, description): (&str, &str, &str),
    now: NaiveDateTime,
) -> QueryResult<Result<i64, String>> {
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        return Ok(Err("Choose what kind of breach this is.".into()));
    }
    let description = description.trim();
    if description.chars().count() < 20 || description.chars().count() > 5000 {
        return Ok(Err("Describe what happened in 20 to 5,000 characters, with where to look.".into()));
    }
    let subject_id: Option<i64> = users::table
        .filter(users::username.eq(subject.trim()))
        .select(users::id)
        .first(conn)
        .optional()?
        .filter(|id| *id != reporter.id);
    let enrolled = match subject_id {
        Some(id) => learning::enrollment_in_course(conn, id, course.id)?.is_some(),
        None => false,
    };
    let (Some(subject_id), true) = (subject_id, enrolled) else {
        return Ok(Err("No other learner of this course has that username.".into()));
    };
    let id = diesel::insert_into(honor_reports::table)
        .values((
            honor_reports::course_id.eq(course.id),
            honor_reports::subject_id.eq(subject_id),
            honor_reports::reporter_id.eq(reporter.id),
            honor_reports::kind.eq(kind),
            honor_reports::description.eq(description),
            honor_reports::status.eq("open"),
            honor_reports::created_at.eq(now),
            honor_reports::updated_at.eq(now),
        ))
        .returning(honor_reports::id)
        .get_result(conn)?;
    Ok(Ok(id))
}

/// Moves a report on; a final decision needs a note.
pub fn decide(
    conn: &mut Conn,
    staff: &SessionUser,
    course: &Course,
    id: i64,
    (status, note): (&str, &str),
    now: NaiveDateTime,
) -> QueryResult<Result<(), String>> {
    if !STATUSES.contains(&status) || status == "open" {
        return Ok(Err("Choose investigating, upheld or dismissed.".into()));
    }
    let note = note.trim();
    let final_decision = status == "upheld" || status == "dismissed";
    if final_decision && note.chars().count() < 5 {
        return Ok(Err("Give the reason for the decision; it is kept with the report.".into()));
    }
    let n = diesel::update(
        honor_reports::table.filter(honor_reports::id.eq(id)).filter(honor_reports::course_id.eq(course.id)),
    )
    .set((
        honor_reports::status.eq(status),
        honor_reports::decision_note.eq((!note.is_empty()).then_some(note)),
        honor_reports::decided_by.eq(final_decision.then_some(staff.id)),
        honor_reports::decided_at.eq(final_decision.then_some(now)),
        honor_reports::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(if n == 1 { Ok(()) } else { Err("That report does not exist.".into()) })
}

/// The kinds of breach to choose from, `chosen` selected.
fn kinds(chosen: &str) -> Vec<KindChoice> {
    KINDS.iter().map(|(value, label)| KindChoice { value, label, selected: *value == chosen }).collect()
}

#[get("/learn/<slug>/honor")]
pub async fn form(db: &State<Db>, user: CurrentUser, slug: &str) -> AppResult<Page> {
    let slug = slug.to_string();
    let ctx = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            if !member_of_course(conn, &user, &course, now()) {
                return Err(AppError::Forbidden("Only the course's learners and staff can report here.".into()));
            }
            Ok(HonorReportPage {
                course: CourseLink { slug: course.slug, title: course.title },
                kinds: kinds(""),
                subject: String::new(),
                description: String::new(),
                error: None,
                done: false,
            })
        })
        .await?;
    Ok(Page::view("forums/honor_report", "Report a breach of the honor code", ctx))
}

#[derive(FromForm)]
pub struct ReportForm {
    #[field(default = String::new())]
    subject: String,
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    description: String,
}

#[post("/learn/<slug>/honor", data = "<form>")]
pub async fn submit(db: &State<Db>, user: CurrentUser, slug: &str, form: CsrfForm<ReportForm>) -> AppResult<Page> {
    let slug = slug.to_string();
    let f = form.form;
    db.run(move |conn| {
        let course = learning::course_by_slug(conn, &slug)?;
        if !member_of_course(conn, &user, &course, now()) {
            return Err(AppError::Forbidden("Only the course's learners and staff can report here.".into()));
        }
        let outcome = file(conn, &user, &course, (&f.subject, &f.kind, &f.description), now())?;
        let ctx = |error: Option<String>, done: bool| HonorReportPage {
            course: CourseLink { slug: course.slug, title: course.title },
            kinds: kinds(&f.kind),
            subject: f.subject,
            description: f.description,
            error,
            done,
        };
        Ok(match outcome {
            Ok(_) => Page::view("forums/honor_report", "Report received", ctx(None, true)),
            Err(m) => Page::view("forums/honor_report", "Report a breach of the honor code", ctx(Some(m), false))
                .with_status(rocket::http::Status::UnprocessableEntity),
        })
    })
    .await
}

fn authorable(conn: &mut Conn, user: &SessionUser, slug: &str) -> AppResult<Course> {
    crate::learning::authoring::authorable(conn, user, slug).map_err(|e| match e {
        LearningError::Forbidden(_) => AppError::NotFound,
        other => other.into(),
    })
}

#[get("/studio/courses/<slug>/honor")]
pub async fn list(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, slug: &str) -> AppResult<Page> {
    let slug = slug.to_string();
    let (ctx, course_id, people) = db
        .run(move |conn| {
            let course = authorable(conn, &user, &slug)?;
            let rows: Vec<(HonorReport, String)> = honor_reports::table
                .inner_join(users::table.on(users::id.eq(honor_reports::subject_id)))
                .filter(honor_reports::course_id.eq(course.id))
                .order(honor_reports::id.desc())
                .select((HonorReport::as_select(), users::username))
                .load(conn)?;
            let mut items = Vec::new();
            let mut people = Vec::new();
            for (r, subject) in rows {
                people.push(r.subject_id);
                people.extend(r.reporter_id);
                let reporter: Option<String> = match r.reporter_id {
                    Some(id) => users::table.find(id).select(users::username).first(conn).optional()?,
                    None => None,
                };
                items.push(HonorItem {
                    id: r.id,
                    subject,
                    reporter,
                    open: r.status == "open" || r.status == "investigating",
                    kind: r.kind,
                    description: r.description,
                    status: r.status,
                    note: r.decision_note,
                    filed: Day::from(r.created_at),
                });
            }
            Ok::<_, AppError>((
                HonorListPage { course: CourseLink { slug: course.slug, title: course.title }, reports: items },
                course.id,
                people,
            ))
        })
        .await?;
    trail.course_users(course_id, people);
    Ok(Page::view("forums/honor_list", "Honor-code reports", ctx))
}

#[derive(FromForm)]
pub struct DecisionForm {
    #[field(default = String::new())]
    status: String,
    #[field(default = String::new())]
    note: String,
}

#[post("/studio/courses/<slug>/honor/<id>", data = "<form>")]
pub async fn update(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    form: CsrfForm<DecisionForm>,
) -> AppResult<Flash> {
    let slug = slug.to_string();
    let f = form.form;
    let (flash, course_id, subject) = db
        .run(move |conn| {
            let course = authorable(conn, &user, &slug)?;
            let subject: Option<i64> = honor_reports::table
                .find(id)
                .filter(honor_reports::course_id.eq(course.id))
                .select(honor_reports::subject_id)
                .first(conn)
                .optional()?;
            let back = format!("/studio/courses/{}/honor", course.slug);
            let flash = match decide(conn, &user, &course, id, (&f.status, &f.note), now())? {
                Ok(()) => Flash::success(back, "Saved."),
                Err(m) => Flash::error(back, m),
            };
            Ok::<_, AppError>((flash, course.id, subject))
        })
        .await?;
    trail.course_users(course_id, subject);
    Ok(flash)
}
