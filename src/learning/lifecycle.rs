//! The learning area's lifecycle hooks (see `crate::lifecycle`): erasure
//! deletes the learner's enrollments (their progress, quiz answers and
//! attendance go with them) and course feedback; the copy of their data gives
//! those; retention deletes course records that ended long ago.

use chrono::Duration;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{course_feedback, enrollments};
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Expiring, Line, Section, Step};

pub const HOOKS: AreaHooks = AreaHooks {
    name: "learning",
    covers: &[
        Covered::deleted("enrollments", "user_id"),
        Covered::deleted("course_feedback", "user_id"),
        Covered::kept(
            "announcements",
            "author_id",
            "course staff's announcements to a run stay with the course, under a retired author",
        ),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: Some(expire),
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    if e.step != Step::DeletePersonalData {
        return Ok(Erased::default());
    }
    // Completions, quiz answers and attendance go with their enrollments.
    let mut n = diesel::delete(enrollments::table.filter(enrollments::user_id.eq(e.user_id))).execute(conn)?;
    n += diesel::delete(course_feedback::table.filter(course_feedback::user_id.eq(e.user_id))).execute(conn)?;
    Ok(Erased::records(n))
}

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let days = x.periods.course_record_days;
    if days <= 0 {
        return Ok(Vec::new());
    }
    let before = x.now - Duration::days(days);
    let ended = enrollments::unenrolled_at
        .le(before)
        .or(enrollments::unenrolled_at.is_null().and(enrollments::access_expires_at.le(before)));
    let target = enrollments::table.filter(ended).filter(enrollments::user_id.ne_all(x.held));
    let n = if x.dry_run {
        target.count().get_result::<i64>(conn)? as usize
    } else {
        diesel::delete(target).execute(conn)?
    };
    Ok(vec![Line {
        category: "course records",
        count: n,
        action: format!("enrollments ended before {} (with progress and answers)", before.date()),
    }])
}

const ENROLLED: &str = "enrollment_id IN (SELECT id FROM enrollments WHERE user_id = {u})";

const EXPORT: &[Section] = &[
    Section {
        name: "enrollments",
        table: "enrollments",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Courses you enrolled in: track, status, access end, grade, pass and completion.",
    },
    Section {
        name: "unit_completions",
        table: "unit_completions",
        filter: ENROLLED,
        withheld: &[],
        sealed: &[],
        about: "Units you completed, per enrollment.",
    },
    Section {
        name: "quiz_answers",
        table: "quiz_attempts",
        filter: ENROLLED,
        withheld: &[],
        sealed: &[],
        about: "Every quiz answer you submitted, with its score.",
    },
    Section {
        name: "live_attendance",
        table: "live_attendance",
        filter: ENROLLED,
        withheld: &[],
        sealed: &[],
        about: "Live sessions you joined through the site.",
    },
    Section {
        name: "course_feedback",
        table: "course_feedback",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Ratings and comments you gave courses.",
    },
];
