//! Which forums there are: site-wide categories made by staff, and one
//! forum per course run, made on first need.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{FResult, Forum, ForumError};
use crate::db::Conn;
use crate::db::schema::{course_runs, courses, enrollments, forums};
use crate::learning::model::{Course, Run};

/// The forum of a course run, made on first need.
pub fn course_forum(conn: &mut Conn, course: &Course, run: &Run, now: NaiveDateTime) -> QueryResult<Forum> {
    if let Some(f) =
        forums::table.filter(forums::run_id.eq(run.id)).select(Forum::as_select()).first(conn).optional()?
    {
        return Ok(f);
    }
    let slug: String = format!("{}-{}", course.slug, run.run_key)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let slug = format!("course-{slug}-{}", run.id);
    diesel::insert_into(forums::table)
        .values((
            forums::slug.eq(&slug),
            forums::title.eq(format!("{} ({})", course.title, run.run_key)),
            forums::description.eq("Questions and discussion for this course run."),
            forums::run_id.eq(run.id),
            forums::allow_anonymous.eq(true),
            forums::position.eq(0),
            forums::created_at.eq(now),
        ))
        .execute(conn)?;
    forums::table.filter(forums::run_id.eq(run.id)).select(Forum::as_select()).first(conn)
}

/// A site-wide category; staff only (checked by the caller).
pub fn create_site_forum(
    conn: &mut Conn,
    slug: &str,
    title: &str,
    description: &str,
    now: NaiveDateTime,
) -> FResult<Forum> {
    let slug = slug.trim();
    if !crate::kernel::slug::valid_slug(slug) || slug.starts_with("course-") {
        return Err(ForumError::Invalid(
            "A forum's address has 2 to 60 lowercase letters, digits and hyphens, and does not start with “course-”."
                .into(),
        ));
    }
    // These are pages under /forums/ already.
    if ["search", "moderation", "moderators", "posts", "images"].contains(&slug) {
        return Err(ForumError::Invalid(format!("“{slug}” is the address of a page of the forums; choose another.")));
    }
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 120 {
        return Err(ForumError::Invalid("Give the forum a title of at most 120 characters.".into()));
    }
    let position: i32 = forums::table.filter(forums::run_id.is_null()).count().get_result::<i64>(conn)? as i32;
    let inserted = diesel::insert_into(forums::table)
        .values((
            forums::slug.eq(slug),
            forums::title.eq(title),
            forums::description.eq(description.trim()),
            forums::run_id.eq(None::<i64>),
            forums::allow_anonymous.eq(false),
            forums::position.eq(position),
            forums::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ForumError::Invalid("A forum with this address exists already.".into()));
        }
        other => other.map(|_| ())?,
    };
    Ok(forums::table.filter(forums::slug.eq(slug)).select(Forum::as_select()).first(conn)?)
}

pub fn site_forums(conn: &mut Conn) -> QueryResult<Vec<Forum>> {
    forums::table.filter(forums::run_id.is_null()).order(forums::position.asc()).select(Forum::as_select()).load(conn)
}

/// The course forums of the runs a user is enrolled in, made on first need.
pub fn my_course_forums(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<Forum>> {
    let runs: Vec<(Run, Course)> = enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::status.eq(crate::learning::model::EnrollmentStatus::Active.as_str()))
        .select((Run::as_select(), Course::as_select()))
        .load(conn)?;
    runs.iter().map(|(r, c)| course_forum(conn, c, r, now)).collect()
}
