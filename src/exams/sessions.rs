//! Exam sessions: what an exam body creates (a date in its own time zone,
//! online or at a centre, a capacity, a booking deadline) and the lists of
//! sessions a learner may book.

use chrono::{NaiveDateTime, TimeZone};
use diesel::prelude::*;

use crate::consent::PartnerKind;
use crate::consent::partners::Partner;
use crate::db::Conn;
use crate::db::schema::{course_runs, courses, enrollments, exam_sessions, partners as ptable};

use super::model::Session;
use super::{CENTRE, EResult, ExamError, ONLINE};

/// What an exam body enters for a new session; times are local to `time_zone`.
pub struct SessionInput {
    pub course_id: i64,
    pub title: String,
    pub starts_local: NaiveDateTime,
    pub time_zone: String,
    pub mode: String,
    pub location: String,
    pub capacity: i32,
    pub deadline_local: NaiveDateTime,
}

fn to_utc(zone: chrono_tz::Tz, local: NaiveDateTime, what: &str) -> EResult<NaiveDateTime> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Ok(t.naive_utc()),
        chrono::LocalResult::Ambiguous(_, _) => Err(ExamError::Invalid(format!(
            "The {what} falls in the hour the clocks go back in {zone}, so it happens twice. Choose another time."
        ))),
        chrono::LocalResult::None => Err(ExamError::Invalid(format!(
            "The {what} falls in the hour the clocks skip in {zone}, so it never happens. Choose another time."
        ))),
    }
}

pub fn create_session(
    conn: &mut Conn,
    partner: &Partner,
    input: &SessionInput,
    now: NaiveDateTime,
) -> EResult<Session> {
    if partner.kind() != PartnerKind::ExamBody {
        return Err(ExamError::Invalid("Only exam bodies offer exam sessions.".into()));
    }
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ExamError::Invalid("Please give the session a title (at most 200 characters).".into()));
    }
    let zone: chrono_tz::Tz = input.time_zone.trim().parse().map_err(|_| {
        ExamError::Invalid(format!(
            "“{}” is not a time zone. Use a name such as Europe/London or America/New_York.",
            input.time_zone.trim()
        ))
    })?;
    let mode = input.mode.as_str();
    if mode != ONLINE && mode != CENTRE {
        return Err(ExamError::Invalid("Choose whether the exam is online or at a centre.".into()));
    }
    let location = input.location.trim();
    if mode == CENTRE && location.is_empty() {
        return Err(ExamError::Invalid("Give the address of the exam centre.".into()));
    }
    if location.chars().count() > 500 {
        return Err(ExamError::Invalid("The location is too long (at most 500 characters).".into()));
    }
    if !(1..=100_000).contains(&input.capacity) {
        return Err(ExamError::Invalid("The capacity must be between 1 and 100000 candidates.".into()));
    }
    let starts_at = to_utc(zone, input.starts_local, "start")?;
    let deadline = to_utc(zone, input.deadline_local, "booking deadline")?;
    if starts_at <= now {
        return Err(ExamError::Invalid("The exam must start in the future.".into()));
    }
    if deadline > starts_at || deadline <= now {
        return Err(ExamError::Invalid(
            "The booking deadline must be in the future and before the exam starts.".into(),
        ));
    }
    let exists: i64 = courses::table.filter(courses::id.eq(input.course_id)).count().get_result(conn)?;
    if exists == 0 {
        return Err(ExamError::Invalid("Choose a course for the exam.".into()));
    }
    let id: i64 = diesel::insert_into(exam_sessions::table)
        .values((
            exam_sessions::partner_id.eq(partner.id),
            exam_sessions::course_id.eq(input.course_id),
            exam_sessions::title.eq(title),
            exam_sessions::starts_at.eq(starts_at),
            exam_sessions::time_zone.eq(zone.name()),
            exam_sessions::mode.eq(mode),
            exam_sessions::location.eq(location),
            exam_sessions::capacity.eq(input.capacity),
            exam_sessions::booked.eq(0),
            exam_sessions::booking_deadline.eq(deadline),
            exam_sessions::created_at.eq(now),
        ))
        .returning(exam_sessions::id)
        .get_result(conn)?;
    session(conn, id)
}

pub fn session(conn: &mut Conn, id: i64) -> EResult<Session> {
    exam_sessions::table.find(id).select(Session::as_select()).first(conn).optional()?.ok_or(ExamError::NotFound)
}

/// A page of a partner's sessions with their course titles, soonest first:
/// `limit` rows from `offset`.
pub fn sessions_of(conn: &mut Conn, partner: &Partner, offset: i64, limit: i64) -> QueryResult<Vec<(Session, String)>> {
    exam_sessions::table
        .inner_join(courses::table)
        .filter(exam_sessions::partner_id.eq(partner.id))
        .order((exam_sessions::starts_at.asc(), exam_sessions::id.asc()))
        .offset(offset)
        .limit(limit)
        .select((Session::as_select(), courses::title))
        .load(conn)
}

/// Sessions still taking bookings for the courses a learner is enrolled in,
/// with course title and exam body name.
pub fn bookable_for(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<(Session, String, String)>> {
    let enrolled = enrollments::table
        .inner_join(course_runs::table)
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::status.eq(crate::learning::model::EnrollmentStatus::Active.as_str()))
        .select(course_runs::course_id);
    exam_sessions::table
        .inner_join(courses::table)
        .inner_join(ptable::table)
        .filter(exam_sessions::course_id.eq_any(enrolled))
        .filter(exam_sessions::booking_deadline.gt(now))
        .order(exam_sessions::starts_at.asc())
        .select((Session::as_select(), courses::title, ptable::name))
        .load(conn)
}

/// How many sessions of a course still take bookings.
pub fn open_count(conn: &mut Conn, course_id: i64, now: NaiveDateTime) -> QueryResult<i64> {
    exam_sessions::table
        .filter(exam_sessions::course_id.eq(course_id))
        .filter(exam_sessions::booking_deadline.gt(now))
        .filter(exam_sessions::booked.lt(exam_sessions::capacity))
        .count()
        .get_result(conn)
}
