//! Financial assistance (CRT-5): a learner who cannot pay applies for a run;
//! staff decide; approval gives the verified track of that run for free and
//! the learner is emailed the decision either way.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::{CResult, CertError};
use crate::db::Conn;
use crate::db::schema::{assistance_applications, course_runs, courses, users};

pub mod status {
    pub const PENDING: &str = "pending";
    pub const APPROVED: &str = "approved";
    pub const DENIED: &str = "denied";
}

/// Each answer: required, and at most this many characters.
pub const MAX_CHARS: usize = 4000;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = assistance_applications)]
pub struct Application {
    pub id: i64,
    pub user_id: i64,
    pub run_id: i64,
    pub reason: String,
    pub circumstances: String,
    pub goals: String,
    pub status: String,
    pub submitted_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    pub decided_by: Option<i64>,
    pub note: Option<String>,
}

pub struct Answers<'a> {
    pub reason: &'a str,
    pub circumstances: &'a str,
    pub goals: &'a str,
}

/// Field errors in the learner's words, keyed by field.
pub fn check(a: &Answers<'_>) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    for (field, label, value) in [
        ("reason", "why you are applying", a.reason),
        ("circumstances", "your circumstances", a.circumstances),
        ("goals", "your goals", a.goals),
    ] {
        let n = value.trim().chars().count();
        if n < 10 {
            errors.push((field, format!("Tell us {label} in a sentence or two.")));
        } else if n > MAX_CHARS {
            errors.push((field, format!("Keep {label} to {MAX_CHARS} characters (now {n}).")));
        }
    }
    errors
}

pub fn for_user_run(conn: &mut Conn, user_id: i64, run_id: i64) -> QueryResult<Option<Application>> {
    assistance_applications::table
        .filter(assistance_applications::user_id.eq(user_id))
        .filter(assistance_applications::run_id.eq(run_id))
        .order(assistance_applications::id.desc())
        .select(Application::as_select())
        .first(conn)
        .optional()
}

/// Files an application; one open or approved application per learner and run.
/// Why the learner may not apply for a run, given their application for it,
/// or `None` when they may (none yet, or the last was declined): the form is
/// offered on this rule and [`apply`] enforces it.
pub fn refusal(existing: Option<&Application>) -> Option<&'static str> {
    match existing?.status.as_str() {
        status::DENIED => None,
        status::PENDING => Some("You have already applied for this run; we will email you our decision."),
        _ => Some("Your application for this run was approved."),
    }
}

pub fn apply(conn: &mut Conn, user_id: i64, run_id: i64, a: &Answers<'_>, now: NaiveDateTime) -> CResult<i64> {
    if let Some((_, message)) = check(a).into_iter().next() {
        return Err(CertError::Invalid(message));
    }
    if let Some(refused) = refusal(for_user_run(conn, user_id, run_id)?.as_ref()) {
        return Err(CertError::Invalid(refused.into()));
    }
    Ok(diesel::insert_into(assistance_applications::table)
        .values((
            assistance_applications::user_id.eq(user_id),
            assistance_applications::run_id.eq(run_id),
            assistance_applications::reason.eq(a.reason.trim()),
            assistance_applications::circumstances.eq(a.circumstances.trim()),
            assistance_applications::goals.eq(a.goals.trim()),
            assistance_applications::status.eq(status::PENDING),
            assistance_applications::submitted_at.eq(now),
        ))
        .returning(assistance_applications::id)
        .get_result(conn)?)
}

/// Staff decide; approval grants the verified track of the run for free.
pub fn decide(conn: &mut Conn, id: i64, by: i64, approve: bool, note: &str, now: NaiveDateTime) -> CResult<()> {
    let note = note.trim();
    if note.chars().count() > 1000 {
        return Err(CertError::Invalid("A note can be at most 1,000 characters.".into()));
    }
    if !approve && note.is_empty() {
        return Err(CertError::Invalid("Tell the learner why the application is declined.".into()));
    }
    crate::db::transaction(conn, |conn| {
        let app: Application = assistance_applications::table
            .find(id)
            .select(Application::as_select())
            .first(conn)
            .optional()?
            .ok_or(CertError::NotFound)?;
        if app.status != status::PENDING {
            return Err(CertError::Invalid("This application was already decided.".into()));
        }
        diesel::update(assistance_applications::table.find(id))
            .set((
                assistance_applications::status.eq(if approve { status::APPROVED } else { status::DENIED }),
                assistance_applications::decided_at.eq(now),
                assistance_applications::decided_by.eq(by),
                assistance_applications::note.eq((!note.is_empty()).then_some(note)),
            ))
            .execute(conn)?;
        if approve {
            super::grant_verified(conn, app.user_id, app.run_id, now)?;
        }
        let (email, first): (String, String) =
            users::table.find(app.user_id).select((users::email, users::first_name)).first(conn)?;
        let (title, slug): (String, String) = course_runs::table
            .inner_join(courses::table)
            .filter(course_runs::id.eq(app.run_id))
            .select((courses::title, courses::slug))
            .first(conn)?;
        crate::notify::enqueue_email(
            conn,
            &email,
            &format!("Your financial assistance application for {title}"),
            "assistance_decided",
            json!({ "first_name": first, "course": title, "approved": approve, "note": note, "path": format!("/learn/{slug}") }),
        )?;
        Ok(())
    })
}

/// Applications for the staff page: pending first, then the latest decided.
pub fn list(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<(Application, String, String, String)>> {
    assistance_applications::table
        .inner_join(users::table)
        .inner_join(course_runs::table.inner_join(courses::table))
        // "pending" sorts after "denied" and "approved": open applications first.
        .order((assistance_applications::status.desc(), assistance_applications::id.desc()))
        .offset(offset)
        .limit(limit)
        .select((Application::as_select(), users::username, courses::title, course_runs::run_key))
        .load(conn)
}
