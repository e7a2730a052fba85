//! Learning logic over a connection: course outlines, enrollment (CRS-1,
//! CRS-5, ACC-3), progress, quiz attempts and grading (CRS-2), attendance
//! (CRS-7), feedback, announcements and reminders (CRS-4), the gradebook.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use crate::db::schema::{
    announcements, blocks, course_feedback, course_runs, courses, enrollments, live_attendance, members, quiz_attempts,
    sections, unit_completions, units, users,
};
use crate::db::{Conn, is_unique_violation};
use crate::kernel::Role;
use crate::kernel::SessionUser;
use crate::learning::content::{Answers, BlockData, QuestionResult, Quiz, ShowAnswers};
use crate::learning::hooks::{LearningHooks, OnPass, ProctoringStatus};
use crate::learning::model::{
    Block, Course, Enrollment, EnrollmentStatus, Member, Run, Section, Unit, proctoring_status,
};
use crate::notify::enqueue_email;

#[derive(Debug, thiserror::Error)]
pub enum LearningError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub type LResult<T> = Result<T, LearningError>;

impl From<crate::db::DbError> for LearningError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Query(q) => LearningError::Db(q),
            other => LearningError::Invalid(other.to_string()),
        }
    }
}

/// Who may build and run a member's courses: operator staff, or the member's
/// own admins, instructors and course staff. Nobody else, whatever the URL says.
pub fn can_author(user: &SessionUser, member_id: i64) -> bool {
    let scope = format!("member:{member_id}");
    user.is_staff()
        || [Role::MemberAdmin, Role::Instructor, Role::CourseStaff].into_iter().any(|r| user.has_role_in(r, &scope))
}

pub fn can_manage_member(user: &SessionUser, member_id: i64) -> bool {
    user.is_staff() || user.has_role_in(Role::MemberAdmin, &format!("member:{member_id}"))
}

pub fn course_by_slug(conn: &mut Conn, slug: &str) -> LResult<Course> {
    courses::table
        .filter(courses::slug.eq(slug))
        .select(Course::as_select())
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)
}

pub fn member(conn: &mut Conn, id: i64) -> LResult<Member> {
    members::table.find(id).select(Member::as_select()).first(conn).optional()?.ok_or(LearningError::NotFound)
}

/// Every run of every course, for a form's list of runs: `{id, label}` with
/// the label "Course title (run key)", by title then start.
/// How many course runs a form's picker lists at once; a search finds the others.
pub const RUN_CHOICES: i64 = 50;

/// One course run as a form offers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOption {
    pub id: i64,
    pub label: String,
}

/// The course runs a form offers (assigning training, allocating seats): at
/// most [`RUN_CHOICES`], those whose course title, address or run key holds
/// `find` (every run when it is empty), runs not yet ended first, then the
/// latest start; with how many matched, so the page can say a search would
/// find the rest. Reads one page, never every run of the site.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunChoices {
    pub options: Vec<RunOption>,
    /// Runs that match `find`, listed or not.
    pub matched: i64,
    /// How many are listed.
    pub listed: usize,
    /// More matched than are listed.
    pub more: bool,
    pub find: String,
    /// Where the search form goes (the page's address and the form's anchor).
    pub action: String,
}

pub fn run_choices(conn: &mut Conn, find: &str, action: &str, now: NaiveDateTime) -> QueryResult<RunChoices> {
    let find: String = find.trim().chars().take(100).collect();
    let like = format!("%{}%", find.to_lowercase().replace(['%', '_', '\\'], ""));
    let matching = || {
        let mut q = course_runs::table.inner_join(courses::table).into_boxed();
        if !find.is_empty() {
            q = q.filter(
                crate::db::lower(courses::title)
                    .like(like.clone())
                    .or(crate::db::lower(courses::slug).like(like.clone()))
                    .or(crate::db::lower(course_runs::run_key).like(like.clone())),
            );
        }
        q
    };
    let matched: i64 = matching().count().get_result(conn)?;
    // Not ended first (an open run has no end), then the latest start.
    let ended = course_runs::ends_at.is_not_null().and(course_runs::ends_at.lt(now));
    let rows: Vec<(i64, String, String)> = matching()
        .order((ended.asc(), course_runs::starts_at.desc(), courses::title.asc(), course_runs::id.asc()))
        .limit(RUN_CHOICES)
        .select((course_runs::id, courses::title, course_runs::run_key))
        .load(conn)?;
    let options: Vec<RunOption> =
        rows.into_iter().map(|(id, t, k)| RunOption { id, label: format!("{t} ({k})") }).collect();
    Ok(RunChoices {
        more: matched > options.len() as i64,
        listed: options.len(),
        options,
        matched,
        find,
        action: action.to_string(),
    })
}

pub fn runs(conn: &mut Conn, course_id: i64) -> QueryResult<Vec<Run>> {
    course_runs::table
        .filter(course_runs::course_id.eq(course_id))
        .order(course_runs::starts_at.asc())
        .select(Run::as_select())
        .load(conn)
}

/// The course's outline: sections in order, each with its units in order
/// (one query: a row per unit, or one row for a section without units).
pub fn outline(conn: &mut Conn, course_id: i64) -> QueryResult<Vec<(Section, Vec<Unit>)>> {
    let rows: Vec<(Section, Option<Unit>)> = crate::on_backend!(conn, |c| sections::table
        .left_join(units::table)
        .filter(sections::course_id.eq(course_id))
        .order((sections::position.asc(), sections::id.asc(), units::position.asc(), units::id.asc()))
        .select((Section::as_select(), Option::<Unit>::as_select()))
        .load(c))?;
    let mut out: Vec<(Section, Vec<Unit>)> = Vec::new();
    for (section, unit) in rows {
        if out.last().is_none_or(|(s, _)| s.id != section.id) {
            out.push((section, Vec::new()));
        }
        if let (Some(unit), Some((_, us))) = (unit, out.last_mut()) {
            us.push(unit);
        }
    }
    Ok(out)
}

pub fn unit_ids(conn: &mut Conn, course_id: i64) -> QueryResult<Vec<i64>> {
    Ok(outline(conn, course_id)?.into_iter().flat_map(|(_, us)| us.into_iter().map(|u| u.id)).collect())
}

pub fn blocks_of(conn: &mut Conn, unit_id: i64) -> QueryResult<Vec<Block>> {
    crate::on_backend!(conn, |c| blocks::table
        .filter(blocks::unit_id.eq(unit_id))
        .order((blocks::position.asc(), blocks::id.asc()))
        .select(Block::as_select())
        .load(c))
}

pub fn block_data(block: &Block) -> LResult<BlockData> {
    serde_json::from_str(&block.data).map_err(|e| LearningError::Invalid(format!("block {} is damaged: {e}", block.id)))
}

/// The unit with its course, when it belongs to that course.
pub fn unit_in_course(conn: &mut Conn, course_id: i64, unit_id: i64) -> LResult<Unit> {
    let (unit, section_course): (Unit, i64) = units::table
        .inner_join(sections::table)
        .filter(units::id.eq(unit_id))
        .select((Unit::as_select(), sections::course_id))
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)?;
    if section_course != course_id {
        return Err(LearningError::NotFound);
    }
    Ok(unit)
}

pub fn block_in_course(conn: &mut Conn, course_id: i64, block_id: i64) -> LResult<Block> {
    let (block, course): (Block, i64) = blocks::table
        .inner_join(units::table.inner_join(sections::table))
        .filter(blocks::id.eq(block_id))
        .select((Block::as_select(), sections::course_id))
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)?;
    if course != course_id {
        return Err(LearningError::NotFound);
    }
    Ok(block)
}

/// The learner's enrollment in any run of the course (the most recent).
pub fn enrollment_in_course(conn: &mut Conn, user_id: i64, course_id: i64) -> QueryResult<Option<(Enrollment, Run)>> {
    crate::on_backend!(conn, |c| enrollments::table
        .inner_join(course_runs::table)
        .filter(enrollments::user_id.eq(user_id))
        .filter(course_runs::course_id.eq(course_id))
        .filter(enrollments::status.eq(EnrollmentStatus::Active.as_str()))
        .order((enrollments::enrolled_at.desc(), enrollments::id.desc()))
        .select((Enrollment::as_select(), Run::as_select()))
        .first(c)
        .optional())
}

/// The learner's most recent active enrollment in the course with this slug,
/// with its run and the course: one query for the common case of a learner
/// opening a course they take (see `enrollment_in_course` for the order).
pub fn enrollment_by_slug(conn: &mut Conn, user_id: i64, slug: &str) -> QueryResult<Option<(Enrollment, Run, Course)>> {
    crate::on_backend!(conn, |c| enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(enrollments::user_id.eq(user_id))
        .filter(courses::slug.eq(slug))
        .filter(enrollments::status.eq(EnrollmentStatus::Active.as_str()))
        .order((enrollments::enrolled_at.desc(), enrollments::id.desc()))
        .select((Enrollment::as_select(), Run::as_select(), Course::as_select()))
        .first(c)
        .optional())
}

/// An enrollment that still gives access, or a clear reason why not.
pub fn active_enrollment(
    conn: &mut Conn,
    user_id: i64,
    course_id: i64,
    now: NaiveDateTime,
) -> LResult<(Enrollment, Run)> {
    match enrollment_in_course(conn, user_id, course_id)? {
        Some((e, r)) if e.has_access(now) => Ok((e, r)),
        Some(_) => Err(LearningError::Forbidden(
            "Your access to this course has ended. You can enroll again in an open run.".into(),
        )),
        None => Err(LearningError::Forbidden("Please enroll in this course to see its content.".into())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Audit,
    Verified,
}

impl Track {
    pub fn parse(s: &str) -> Option<Track> {
        match s {
            "audit" => Some(Track::Audit),
            "verified" => Some(Track::Verified),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Audit => "audit",
            Track::Verified => "verified",
        }
    }
}

/// Enrolls a verified learner in an open run (ACC-3, CRS-1); access ends
/// `access_days` after enrollment when the run says so (CRS-5). Queues the
/// confirmation email (CRS-4).
pub fn enroll(
    conn: &mut Conn,
    user: &SessionUser,
    course: &Course,
    run_key: &str,
    track: Track,
    now: NaiveDateTime,
) -> LResult<Enrollment> {
    let run = open_run(conn, user, course, run_key, now)?;
    match track {
        Track::Audit if !run.audit => return Err(LearningError::Invalid("This run has no audit track.".into())),
        // The verified track is bought, granted or sponsored: never handed out here.
        Track::Verified => {
            return Err(LearningError::Invalid(
                "Enroll in the free audit track first; then upgrade from the course page by buying the certificate or applying for financial assistance."
                    .into(),
            ));
        }
        _ => {}
    }
    write_enrollment(conn, user, course, &run, track, now)
}

/// Enrolls in the verified track on a seat someone else paid for (a
/// sponsor); the same checks as `enroll` apart from the price.
pub fn enroll_paid_by_other(
    conn: &mut Conn,
    user: &SessionUser,
    course: &Course,
    run_key: &str,
    now: NaiveDateTime,
) -> LResult<Enrollment> {
    let run = open_run(conn, user, course, run_key, now)?;
    write_enrollment(conn, user, course, &run, Track::Verified, now)
}

/// The run a learner may enroll in now: verified email (ACC-3), published
/// course, open enrollment window.
fn open_run(conn: &mut Conn, user: &SessionUser, course: &Course, run_key: &str, now: NaiveDateTime) -> LResult<Run> {
    if !user.email_verified {
        return Err(LearningError::Forbidden(
            "Please confirm your email address before enrolling: follow the link we emailed you, or ask for a new one on your dashboard.".into(),
        ));
    }
    if !course.published {
        return Err(LearningError::NotFound);
    }
    let run: Run = course_runs::table
        .filter(course_runs::course_id.eq(course.id))
        .filter(course_runs::run_key.eq(run_key))
        .select(Run::as_select())
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)?;
    if !run.enrollment_open(now) {
        return Err(LearningError::Invalid("Enrollment in this run is closed.".into()));
    }
    Ok(run)
}

fn write_enrollment(
    conn: &mut Conn,
    user: &SessionUser,
    course: &Course,
    run: &Run,
    track: Track,
    now: NaiveDateTime,
) -> LResult<Enrollment> {
    let expires = run.access_days.map(|d| now + Duration::days(i64::from(d)));
    crate::db::transaction(conn, |conn| {
        let existing: Option<Enrollment> = enrollments::table
            .filter(enrollments::user_id.eq(user.id))
            .filter(enrollments::run_id.eq(run.id))
            .select(Enrollment::as_select())
            .first(conn)
            .optional()?;
        let id = match existing {
            // Already in: kept as is, unless this enrollment upgrades the track.
            Some(e) if e.has_access(now) && (e.track == track.as_str() || track == Track::Audit) => return Ok(e),
            Some(e) => {
                // An upgrade (a paid or sponsored seat) keeps the date the
                // learner enrolled; coming back after leaving starts anew.
                let enrolled_at = if e.has_access(now) { e.enrolled_at } else { now };
                diesel::update(enrollments::table.find(e.id))
                    .set((
                        enrollments::status.eq(EnrollmentStatus::Active.as_str()),
                        enrollments::track.eq(track.as_str()),
                        enrollments::enrolled_at.eq(enrolled_at),
                        enrollments::access_expires_at.eq(expires),
                        enrollments::unenrolled_at.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?;
                e.id
            }
            None => diesel::insert_into(enrollments::table)
                .values((
                    enrollments::user_id.eq(user.id),
                    enrollments::run_id.eq(run.id),
                    enrollments::track.eq(track.as_str()),
                    enrollments::status.eq(EnrollmentStatus::Active.as_str()),
                    enrollments::enrolled_at.eq(now),
                    enrollments::access_expires_at.eq(expires),
                ))
                .returning(enrollments::id)
                .get_result(conn)
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        LearningError::Invalid("You are already enrolled.".into())
                    } else {
                        e.into()
                    }
                })?,
        };
        enqueue_email(
            conn,
            &user.email,
            &format!("You are enrolled in {}", course.title),
            "enrolled",
            json!({
                "first_name": user.first_name, "course": course.title, "path": format!("/learn/{}", course.slug),
                "starts": crate::web::format::day(run.starts_at.date()),
                "access_until": expires.map(|e| crate::web::format::day(e.date())),
            }),
        )?;
        enrollments::table.find(id).select(Enrollment::as_select()).first(conn).map_err(Into::into)
    })
}

pub fn unenroll(conn: &mut Conn, user_id: i64, course_id: i64, now: NaiveDateTime) -> LResult<()> {
    let (e, _) = enrollment_in_course(conn, user_id, course_id)?.ok_or(LearningError::NotFound)?;
    diesel::update(enrollments::table.find(e.id))
        .set((enrollments::status.eq(EnrollmentStatus::Unenrolled.as_str()), enrollments::unenrolled_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub fn completed_units(conn: &mut Conn, enrollment_id: i64) -> QueryResult<HashSet<i64>> {
    let done: Vec<i64> = crate::on_backend!(conn, |c| unit_completions::table
        .filter(unit_completions::enrollment_id.eq(enrollment_id))
        .select(unit_completions::unit_id)
        .load(c))?;
    Ok(done.into_iter().collect())
}

/// Remembers where the learner is, for "continue where you left off".
pub fn touch(conn: &mut Conn, enrollment_id: i64, unit_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    crate::on_backend!(conn, |c| diesel::update(enrollments::table.find(enrollment_id))
        .set((enrollments::last_activity_at.eq(now), enrollments::last_unit_id.eq(unit_id)))
        .execute(c))
    .map(|_| ())
}

pub fn complete_unit(
    conn: &mut Conn,
    enrollment: &Enrollment,
    course: &Course,
    unit_id: i64,
    now: NaiveDateTime,
) -> LResult<()> {
    unit_in_course(conn, course.id, unit_id)?;
    let done: i64 = unit_completions::table
        .filter(unit_completions::enrollment_id.eq(enrollment.id))
        .filter(unit_completions::unit_id.eq(unit_id))
        .count()
        .get_result(conn)?;
    if done == 0 {
        diesel::insert_into(unit_completions::table)
            .values((
                unit_completions::enrollment_id.eq(enrollment.id),
                unit_completions::unit_id.eq(unit_id),
                unit_completions::completed_at.eq(now),
            ))
            .execute(conn)?;
    }
    touch(conn, enrollment.id, unit_id, now)?;
    Ok(())
}

/// Where a learner goes on in a course, for the "continue" links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Nothing read yet: the first unfinished unit.
    Start(i64),
    /// The unit last read, not finished yet.
    Resume(i64),
    /// The last unit read is finished: the next unfinished one.
    Next(i64),
    /// Every unit finished, or the course passed: the course-complete page,
    /// never a finished unit.
    Finished,
}

/// Every unit of a non-empty course finished.
pub fn all_done(order: &[i64], done: &HashSet<i64>) -> bool {
    !order.is_empty() && order.iter().all(|u| done.contains(u))
}

/// The step after `last` (the unit last read) over the units in `order`
/// with those in `done` finished; `passed` when the course is passed.
/// `None` for a course without units.
pub fn next_step(order: &[i64], done: &HashSet<i64>, last: Option<i64>, passed: bool) -> Option<NextStep> {
    if passed || all_done(order, done) {
        return Some(NextStep::Finished);
    }
    let first_open = |from: usize| order[from..].iter().chain(order[..from].iter()).find(|u| !done.contains(u));
    match last.and_then(|l| order.iter().position(|u| *u == l)) {
        Some(p) if !done.contains(&order[p]) => Some(NextStep::Resume(order[p])),
        Some(p) => first_open(p + 1).map(|u| NextStep::Next(*u)),
        None => first_open(0).map(|u| NextStep::Start(*u)),
    }
}

/// Attempts so far at a quiz: (attempt number, score, answers).
pub fn attempts(conn: &mut Conn, enrollment_id: i64, block_id: i64) -> QueryResult<Vec<(i32, f64, String)>> {
    crate::on_backend!(conn, |c| quiz_attempts::table
        .filter(quiz_attempts::enrollment_id.eq(enrollment_id))
        .filter(quiz_attempts::block_id.eq(block_id))
        .order(quiz_attempts::attempt.asc())
        .select((quiz_attempts::attempt, quiz_attempts::score, quiz_attempts::answers))
        .load(c))
}

pub struct AttemptOutcome {
    pub score: f64,
    pub results: Vec<QuestionResult>,
    pub attempts_left: u32,
}

/// How an attempt went, against the run's pass mark: the colour a result is
/// shown in follows this, so a fail is never shown as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At or above the pass mark.
    Pass,
    /// Something right, but under the pass mark.
    Partial,
    /// Nothing right.
    Fail,
}

impl Verdict {
    /// `score` in 0..=1, `pass_threshold` in percent.
    pub fn of(score: f64, pass_threshold: i32) -> Verdict {
        if score * 100.0 + 1e-9 >= f64::from(pass_threshold) && score > 0.0 {
            Verdict::Pass
        } else if score > 0.0 {
            Verdict::Partial
        } else {
            Verdict::Fail
        }
    }
}

/// Why a learner may not send answers to a quiz now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSubmit {
    /// An author previewing the course, not enrolled in it.
    Preview,
    /// A proctored exam outside a proctoring session (CRT-7).
    Proctoring,
    /// Past the quiz's due date.
    Due,
    /// Every attempt used.
    AttemptsUsed,
}

impl From<NoSubmit> for LearningError {
    fn from(why: NoSubmit) -> Self {
        match why {
            NoSubmit::Preview => LearningError::Forbidden("Previews cannot submit quizzes.".into()),
            NoSubmit::Proctoring => LearningError::Forbidden(
                "This exam is proctored: start a proctoring session from the exam's page first.".into(),
            ),
            NoSubmit::Due => LearningError::Invalid("This quiz was due and no longer takes answers.".into()),
            NoSubmit::AttemptsUsed => LearningError::Invalid("You have used all your attempts at this quiz.".into()),
        }
    }
}

/// The learner's last graded attempt at a quiz.
#[derive(Debug, Clone)]
pub struct LastAttempt {
    pub number: i32,
    pub score: f64,
    pub answers: Answers,
    pub results: Vec<QuestionResult>,
}

/// One learner's standing at one quiz, and the two rules that follow from
/// it: whether they may send answers now (`may_submit`) and whether the
/// correct answers and the author's explanations may be shown (`reveal`).
/// The quiz on the unit page and the submit handler both ask this type;
/// neither decides on its own.
#[derive(Debug, Clone)]
pub struct QuizStanding {
    /// Attempts the quiz allows.
    pub attempts: u32,
    pub used: u32,
    /// Best score so far, 0..=1.
    pub best: Option<f64>,
    pub last: Option<LastAttempt>,
    /// The status of the latest proctoring session (proctored exams only).
    pub session_status: Option<String>,
    in_session: bool,
    submit: Result<(), NoSubmit>,
    reveal: bool,
}

impl QuizStanding {
    /// The rules over what is known: `enrolled` (false for a preview), the
    /// attempts so far in order as (number, score, answers), the latest
    /// proctoring session's status, the time.
    pub fn new(
        quiz: &Quiz,
        enrolled: bool,
        tries: &[(i32, f64, String)],
        session_status: Option<String>,
        now: NaiveDateTime,
    ) -> QuizStanding {
        let used = tries.len() as u32;
        let best = tries.iter().map(|(_, s, _)| *s).fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        let last = tries.last().map(|(number, score, answers)| {
            let answers: Answers = serde_json::from_str(answers).unwrap_or_default();
            let (_, results) = quiz.grade(&answers);
            LastAttempt { number: *number, score: *score, answers, results }
        });
        let in_session =
            session_status.as_deref().is_some_and(|s| s == proctoring_status::OPEN || s == proctoring_status::PASSED);
        let due_passed = quiz.due_at.is_some_and(|d| now > d);
        let submit = if !enrolled {
            Err(NoSubmit::Preview)
        } else if quiz.proctored && !in_session {
            Err(NoSubmit::Proctoring)
        } else if due_passed {
            Err(NoSubmit::Due)
        } else if used >= quiz.attempts {
            Err(NoSubmit::AttemptsUsed)
        } else {
            Ok(())
        };
        let reveal = match quiz.show_answers {
            ShowAnswers::AfterLastAttempt => used >= quiz.attempts,
            ShowAnswers::AfterDue => due_passed,
        };
        QuizStanding { attempts: quiz.attempts, used, best, last, session_status, in_session, submit, reveal }
    }

    /// The standing of the learner with `enrollment` (none: a preview) at
    /// the quiz in `block`, read from the database.
    pub fn load(
        conn: &mut Conn,
        proctoring: ProctoringStatus,
        enrollment: Option<&Enrollment>,
        block: &Block,
        quiz: &Quiz,
        now: NaiveDateTime,
    ) -> LResult<QuizStanding> {
        let (tries, session) = match enrollment {
            Some(e) => {
                let session = match quiz.proctored {
                    true => proctoring(conn, e.id, block.id)?,
                    false => None,
                };
                (attempts(conn, e.id, block.id)?, session)
            }
            None => (Vec::new(), None),
        };
        Ok(QuizStanding::new(quiz, enrollment.is_some(), &tries, session, now))
    }

    /// Whether the learner may send answers now, or why not.
    pub fn may_submit(&self) -> Result<(), NoSubmit> {
        self.submit
    }

    /// Whether the correct answers and the explanations may be shown: after
    /// the last attempt, or after the due date, as the quiz says.
    pub fn reveal(&self) -> bool {
        self.reveal
    }

    pub fn left(&self) -> u32 {
        self.attempts.saturating_sub(self.used)
    }

    /// Within (or after a passed) proctoring session.
    pub fn in_session(&self) -> bool {
        self.in_session
    }
}

/// Records a graded attempt and recomputes the course grade.
#[allow(clippy::too_many_arguments)]
pub fn submit_quiz(
    conn: &mut Conn,
    hooks: &LearningHooks,
    enrollment: &Enrollment,
    run: &Run,
    block: &Block,
    quiz: &Quiz,
    answers: &Answers,
    now: NaiveDateTime,
) -> LResult<AttemptOutcome> {
    crate::db::transaction(conn, |conn| {
        // Asked again inside the transaction that writes the attempt, so two
        // submissions at once cannot both take the last attempt.
        let standing = QuizStanding::load(conn, hooks.proctoring_status, Some(enrollment), block, quiz, now)?;
        standing.may_submit()?;
        let used = standing.used;
        let (score, results) = quiz.grade(answers);
        diesel::insert_into(quiz_attempts::table)
            .values((
                quiz_attempts::enrollment_id.eq(enrollment.id),
                quiz_attempts::block_id.eq(block.id),
                quiz_attempts::attempt.eq((used + 1) as i32),
                quiz_attempts::answers.eq(serde_json::to_string(answers).unwrap_or_default()),
                quiz_attempts::score.eq(score),
                quiz_attempts::submitted_at.eq(now),
            ))
            .execute(conn)?;
        touch(conn, enrollment.id, block.unit_id, now)?;
        recompute_grade(conn, enrollment.id, run, run.course_id, now, hooks.on_pass)?;
        Ok(AttemptOutcome { score, results, attempts_left: quiz.attempts - used - 1 })
    })
}

/// Every quiz of the course with its block, in the course's order, in one query.
pub fn quiz_blocks(conn: &mut Conn, course_id: i64) -> LResult<Vec<(Block, Quiz)>> {
    let rows: Vec<Block> = blocks::table
        .inner_join(units::table.inner_join(sections::table))
        .filter(sections::course_id.eq(course_id))
        .filter(blocks::kind.eq("quiz"))
        .order((sections::position.asc(), units::position.asc(), blocks::position.asc(), blocks::id.asc()))
        .select(Block::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|b| match block_data(&b)? {
            BlockData::Quiz(q) => Ok((b, q)),
            _ => Err(LearningError::Invalid("quiz block without a quiz".into())),
        })
        .collect()
}

/// Every quiz of the course with its weight.
fn quizzes(conn: &mut Conn, course_id: i64) -> LResult<Vec<(i64, Quiz)>> {
    Ok(quiz_blocks(conn, course_id)?.into_iter().map(|(b, q)| (b.id, q)).collect())
}

/// Weighted grade over the best attempt at each quiz; passing sets the
/// completion date once (CRS-2).
pub fn recompute_grade(
    conn: &mut Conn,
    enrollment_id: i64,
    run: &Run,
    course_id: i64,
    now: NaiveDateTime,
    on_pass: OnPass,
) -> LResult<f64> {
    let qs = quizzes(conn, course_id)?;
    let best: Vec<(i64, Option<f64>)> = quiz_attempts::table
        .filter(quiz_attempts::enrollment_id.eq(enrollment_id))
        .group_by(quiz_attempts::block_id)
        .select((quiz_attempts::block_id, diesel::dsl::max(quiz_attempts::score)))
        .load(conn)?;
    let best: HashMap<i64, f64> = best.into_iter().map(|(b, s)| (b, s.unwrap_or(0.0))).collect();
    let total_weight: f64 = qs.iter().map(|(_, q)| q.weight).sum();
    let grade = if total_weight > 0.0 {
        100.0 * qs.iter().map(|(id, q)| q.weight * best.get(id).copied().unwrap_or(0.0)).sum::<f64>() / total_weight
    } else {
        0.0
    };
    let grade = (grade * 100.0).round() / 100.0;
    let passed = total_weight > 0.0 && grade + 1e-9 >= f64::from(run.pass_threshold);
    let current: Enrollment = enrollments::table.find(enrollment_id).select(Enrollment::as_select()).first(conn)?;
    let completed_at = match (current.completed_at, passed) {
        (Some(t), _) => Some(t),
        (None, true) => Some(now),
        (None, false) => None,
    };
    diesel::update(enrollments::table.find(enrollment_id))
        .set((
            enrollments::grade_percent.eq(grade),
            enrollments::passed.eq(passed),
            enrollments::completed_at.eq(completed_at),
        ))
        .execute(conn)?;
    if passed {
        // A verified learner with a valid identity check gets the certificate now (CRT-3).
        on_pass(conn, current.user_id, current.run_id, now)?;
    }
    Ok(grade)
}

/// Records attendance when the learner joins a live session through the
/// platform's link (CRS-2, CRS-7); returns where to send them.
pub fn join_live(conn: &mut Conn, enrollment: &Enrollment, block: &Block, now: NaiveDateTime) -> LResult<String> {
    let BlockData::Live { link, .. } = block_data(block)? else { return Err(LearningError::NotFound) };
    let seen: i64 = live_attendance::table
        .filter(live_attendance::enrollment_id.eq(enrollment.id))
        .filter(live_attendance::block_id.eq(block.id))
        .count()
        .get_result(conn)?;
    if seen == 0 {
        diesel::insert_into(live_attendance::table)
            .values((
                live_attendance::enrollment_id.eq(enrollment.id),
                live_attendance::block_id.eq(block.id),
                live_attendance::joined_at.eq(now),
            ))
            .execute(conn)?;
    }
    touch(conn, enrollment.id, block.unit_id, now)?;
    Ok(link)
}

pub fn attended(conn: &mut Conn, enrollment_id: i64) -> QueryResult<HashSet<i64>> {
    Ok(live_attendance::table
        .filter(live_attendance::enrollment_id.eq(enrollment_id))
        .select(live_attendance::block_id)
        .load::<i64>(conn)?
        .into_iter()
        .collect())
}

/// One rating (1–5) and comment per learner and course, from enrolled learners.
pub fn leave_feedback(
    conn: &mut Conn,
    user_id: i64,
    course_id: i64,
    rating: i32,
    comment: &str,
    now: NaiveDateTime,
) -> LResult<()> {
    if enrollment_in_course(conn, user_id, course_id)?.is_none() {
        return Err(LearningError::Forbidden("Only learners enrolled in this course can rate it.".into()));
    }
    if !(1..=5).contains(&rating) {
        return Err(LearningError::Invalid("Please choose a rating from 1 to 5.".into()));
    }
    if comment.chars().count() > 2000 {
        return Err(LearningError::Invalid("Please keep your comment under 2000 characters.".into()));
    }
    let existing: Option<i64> = course_feedback::table
        .filter(course_feedback::user_id.eq(user_id))
        .filter(course_feedback::course_id.eq(course_id))
        .select(course_feedback::id)
        .first(conn)
        .optional()?;
    match existing {
        Some(id) => diesel::update(course_feedback::table.find(id))
            .set((
                course_feedback::rating.eq(rating),
                course_feedback::comment.eq(comment),
                course_feedback::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::insert_into(course_feedback::table)
            .values((
                course_feedback::user_id.eq(user_id),
                course_feedback::course_id.eq(course_id),
                course_feedback::rating.eq(rating),
                course_feedback::comment.eq(comment),
                course_feedback::created_at.eq(now),
                course_feedback::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// Average rating and count, for the about page.
pub fn rating(conn: &mut Conn, course_id: i64) -> QueryResult<(Option<f64>, i64)> {
    let ratings: Vec<i32> = course_feedback::table
        .filter(course_feedback::course_id.eq(course_id))
        .select(course_feedback::rating)
        .load(conn)?;
    let n = ratings.len() as i64;
    let avg = (n > 0).then(|| ratings.iter().map(|r| f64::from(*r)).sum::<f64>() / n as f64);
    Ok((avg, n))
}

/// A course announcement to every learner with access (CRS-4), one email job each.
pub fn announce(
    conn: &mut Conn,
    author_id: i64,
    course: &Course,
    run: &Run,
    subject: &str,
    body: &str,
    now: NaiveDateTime,
) -> LResult<usize> {
    let subject = subject.trim();
    let body = body.trim();
    if subject.is_empty() || subject.chars().count() > 200 {
        return Err(LearningError::Invalid("Please give the announcement a subject (at most 200 characters).".into()));
    }
    if body.is_empty() || body.chars().count() > 20_000 {
        return Err(LearningError::Invalid("Please write the announcement (at most 20,000 characters).".into()));
    }
    crate::db::transaction(conn, |conn| {
        diesel::insert_into(announcements::table)
            .values((
                announcements::run_id.eq(run.id),
                announcements::author_id.eq(author_id),
                announcements::subject.eq(subject),
                announcements::body.eq(body),
                announcements::created_at.eq(now),
            ))
            .execute(conn)?;
        let learners: Vec<(Enrollment, String, String)> = enrollments::table
            .inner_join(users::table)
            .filter(enrollments::run_id.eq(run.id))
            .filter(enrollments::status.eq(EnrollmentStatus::Active.as_str()))
            .select((Enrollment::as_select(), users::email, users::first_name))
            .load(conn)?;
        let mut sent = 0;
        for (_, email, first_name) in learners.into_iter().filter(|(e, _, _)| e.has_access(now)) {
            enqueue_email(
                conn,
                &email,
                &format!("{}: {subject}", course.title),
                "announcement",
                json!({ "first_name": first_name, "course": course.title, "body": body, "path": format!("/learn/{}", course.slug) }),
            )?;
            sent += 1;
        }
        Ok(sent)
    })
}

/// Reminders for runs starting within two days, sent once per run (CRS-4).
/// Run by the worker on every pass; idempotent through `reminder_sent_at`.
pub fn send_start_reminders(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<usize> {
    let due: Vec<(Run, Course)> = course_runs::table
        .inner_join(courses::table)
        .filter(course_runs::reminder_sent_at.is_null())
        .filter(course_runs::starts_at.gt(now))
        .filter(course_runs::starts_at.le(now + Duration::days(2)))
        .select((Run::as_select(), Course::as_select()))
        .load(conn)?;
    let mut sent = 0;
    for (run, course) in due {
        crate::db::transaction(conn, |conn| {
            let claimed =
                diesel::update(course_runs::table.find(run.id).filter(course_runs::reminder_sent_at.is_null()))
                    .set(course_runs::reminder_sent_at.eq(now))
                    .execute(conn)?;
            if claimed == 0 {
                return Ok::<_, diesel::result::Error>(());
            }
            let learners: Vec<(String, String)> = enrollments::table
                .inner_join(users::table)
                .filter(enrollments::run_id.eq(run.id))
                .filter(enrollments::status.eq(EnrollmentStatus::Active.as_str()))
                .select((users::email, users::first_name))
                .load(conn)?;
            for (email, first_name) in learners {
                enqueue_email(
                    conn,
                    &email,
                    &format!("{} starts soon", course.title),
                    "run_reminder",
                    json!({ "first_name": first_name, "course": course.title, "starts": crate::web::format::moment(run.starts_at), "path": format!("/learn/{}", course.slug) }),
                )?;
                sent += 1;
            }
            Ok(())
        })?;
    }
    Ok(sent)
}

/// One learner's standing in a run, for the dashboard, progress page and gradebook.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Standing {
    pub units_total: usize,
    pub units_done: usize,
    pub progress_percent: u32,
    pub grade_percent: f64,
    pub passed: bool,
    pub completed_at: Option<crate::web::format::Day>,
}

pub fn standing(conn: &mut Conn, enrollment: &Enrollment, course_id: i64) -> QueryResult<Standing> {
    let all = unit_ids(conn, course_id)?;
    let done = completed_units(conn, enrollment.id)?;
    Ok(standing_of(enrollment, &all, &done))
}

/// [`standing`] over the course's units in order (`all`) and those finished (`done`).
pub fn standing_of(enrollment: &Enrollment, all: &[i64], done: &HashSet<i64>) -> Standing {
    let units_done = all.iter().filter(|u| done.contains(u)).count();
    Standing {
        units_total: all.len(),
        units_done,
        progress_percent: if all.is_empty() { 0 } else { (100 * units_done / all.len()) as u32 },
        grade_percent: enrollment.grade_percent,
        passed: enrollment.passed,
        completed_at: enrollment.completed_at.map(crate::web::format::Day::from),
    }
}

/// The learner's active enrollments with their course, for the dashboard.
pub fn my_courses(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<(Enrollment, Run, Course)>> {
    enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::status.eq(EnrollmentStatus::Active.as_str()))
        .order(enrollments::last_activity_at.desc())
        .select((Enrollment::as_select(), Run::as_select(), Course::as_select()))
        .load(conn)
}

/// A row of the gradebook: the learner by username (not real name), their standing.
pub struct GradebookRow {
    pub username: String,
    pub track: String,
    pub enrolled_at: NaiveDateTime,
    pub units_done: usize,
    pub quiz_scores: Vec<Option<f64>>,
    pub grade_percent: f64,
    pub passed: bool,
    pub completed_at: Option<NaiveDateTime>,
}

/// Gradebook of a run in pages of `page_size` enrollments, so the CSV can be
/// streamed without loading every learner at once.
pub fn gradebook_page(
    conn: &mut Conn,
    run: &Run,
    quiz_ids: &[i64],
    after_id: i64,
    page_size: i64,
) -> QueryResult<(Vec<GradebookRow>, Option<i64>)> {
    let page: Vec<(Enrollment, String)> = enrollments::table
        .inner_join(users::table)
        .filter(enrollments::run_id.eq(run.id))
        .filter(enrollments::id.gt(after_id))
        .order(enrollments::id.asc())
        .limit(page_size)
        .select((Enrollment::as_select(), users::username))
        .load(conn)?;
    let ids: Vec<i64> = page.iter().map(|(e, _)| e.id).collect();
    let done: Vec<(i64, i64)> = unit_completions::table
        .filter(unit_completions::enrollment_id.eq_any(&ids))
        .group_by(unit_completions::enrollment_id)
        .select((unit_completions::enrollment_id, diesel::dsl::count_star()))
        .load(conn)?;
    let done: HashMap<i64, i64> = done.into_iter().collect();
    let best: Vec<(i64, i64, Option<f64>)> = quiz_attempts::table
        .filter(quiz_attempts::enrollment_id.eq_any(&ids))
        .group_by((quiz_attempts::enrollment_id, quiz_attempts::block_id))
        .select((quiz_attempts::enrollment_id, quiz_attempts::block_id, diesel::dsl::max(quiz_attempts::score)))
        .load(conn)?;
    let mut scores: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for (e, b, s) in best {
        scores.insert((e, b), s.unwrap_or(0.0));
    }
    let next = (page.len() as i64 == page_size).then(|| page.last().map(|(e, _)| e.id)).flatten();
    let rows = page
        .into_iter()
        .map(|(e, username)| GradebookRow {
            username,
            track: e.track.clone(),
            enrolled_at: e.enrolled_at,
            units_done: done.get(&e.id).copied().unwrap_or(0) as usize,
            quiz_scores: quiz_ids.iter().map(|q| scores.get(&(e.id, *q)).copied()).collect(),
            grade_percent: e.grade_percent,
            passed: e.passed,
            completed_at: e.completed_at,
        })
        .collect();
    Ok((rows, next))
}

/// Quiz blocks of a course in outline order with their titles (gradebook columns).
pub fn quiz_columns(conn: &mut Conn, course_id: i64) -> LResult<Vec<(i64, String)>> {
    let mut cols = Vec::new();
    for (_, us) in outline(conn, course_id)? {
        for u in us {
            for b in blocks_of(conn, u.id)? {
                if let BlockData::Quiz(q) = block_data(&b)? {
                    cols.push((b.id, q.title));
                }
            }
        }
    }
    Ok(cols)
}

pub fn run_by_id(conn: &mut Conn, run_id: i64) -> LResult<(Run, Course)> {
    course_runs::table
        .inner_join(courses::table)
        .filter(course_runs::id.eq(run_id))
        .select((Run::as_select(), Course::as_select()))
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)
}
