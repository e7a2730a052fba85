//! Exams with partner exam bodies (CRT-8, SHR-3).
//!
//! An exam body offers sessions for a course: a date in its own time zone,
//! online or at a centre, a capacity and a booking deadline. A learner
//! enrolled in the course books, reschedules or cancels; booking records the
//! learner's consent for the candidate details (name, email, date of birth)
//! under the purpose "exam registration", and, separately and only when
//! ticked, for their support needs. The exam body reads its candidates
//! through the gate (`consent::sharing::exam_candidates`), so each one is a
//! disclosure. Results come back by the exam body's API key or a CSV upload,
//! once per booking however often they are sent; the learner sees them and
//! is emailed. A sponsor who funded the course sees a result only under the
//! learner's own consent for that purpose. Results are purged by retention
//! after the configured period unless a legal hold stands.
//!
//! Support needs are optional, sealed at rest (SEC-2) and read only by the
//! support team, each view audited (SEC-4). Malpractice cases on a booking
//! record their disclosure to the exam body with its legal reference (SHR-8).

pub mod lifecycle;
pub mod routes;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone};
use diesel::prelude::*;
use serde_json::json;

use crate::consent::ledger::{Action, Entry, Evidence};
use crate::consent::partners::{self, Partner};
use crate::consent::{PartnerKind, Purpose, sponsors, texts};
use crate::db::Conn;
use crate::db::schema::{
    course_runs, courses, enrollments, exam_bookings, exam_results, exam_sessions, malpractice_cases,
    partners as ptable, sponsorships, support_needs, users,
};
use crate::kernel::SessionUser;
use crate::kernel::vault;

pub use crate::consent::exam_records::{ADJUSTMENTS_FIELD, BOOKED, NEEDS_FIELD, course_scope};

pub const ONLINE: &str = "online";
pub const CENTRE: &str = "centre";
pub const CANCELLED: &str = "cancelled";
const MAX_TEXT: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum ExamError {
    #[error("{0}")]
    Invalid(String),
    #[error("No such exam session or booking.")]
    NotFound,
    #[error("This session is full. Choose another session.")]
    Full,
    #[error("Booking for this session has closed.")]
    Closed,
    #[error("{0}")]
    Conflict(String),
    #[error("Sealed data could not be read: {0}")]
    Vault(#[from] vault::VaultError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub type EResult<T> = Result<T, ExamError>;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = exam_sessions)]
pub struct Session {
    pub id: i64,
    pub partner_id: i64,
    pub course_id: i64,
    pub title: String,
    pub starts_at: NaiveDateTime,
    pub time_zone: String,
    pub mode: String,
    pub location: String,
    pub capacity: i32,
    pub booked: i32,
    pub booking_deadline: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl Session {
    fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// A UTC instant as the session's local time, naming the zone.
    pub fn local(&self, t: NaiveDateTime) -> String {
        let zone = self.zone();
        format!("{} ({})", zone.from_utc_datetime(&t).format("%a %e %B %Y, %H:%M"), self.time_zone)
    }

    pub fn open(&self, now: NaiveDateTime) -> bool {
        now < self.booking_deadline && self.booked < self.capacity
    }

    pub fn json(&self, now: NaiveDateTime) -> serde_json::Value {
        json!({
            "id": self.id, "title": self.title, "starts": self.local(self.starts_at),
            "starts_utc": self.starts_at.and_utc().to_rfc3339(), "time_zone": self.time_zone,
            "online": self.mode == ONLINE, "mode": if self.mode == ONLINE { "Online" } else { "At a centre" },
            "location": self.location, "capacity": self.capacity, "booked": self.booked,
            "free": (self.capacity - self.booked).max(0), "deadline": self.local(self.booking_deadline),
            "open": self.open(now), "full": self.booked >= self.capacity, "closed": now >= self.booking_deadline,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = exam_bookings)]
pub struct Booking {
    pub id: i64,
    pub session_id: i64,
    pub user_id: i64,
    pub reference: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub cancelled_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = exam_results)]
pub struct ExamResult {
    pub id: i64,
    pub booking_id: i64,
    pub user_id: i64,
    pub grade: String,
    pub score: Option<f64>,
    pub passed: bool,
    pub source: String,
    pub received_at: NaiveDateTime,
}

impl ExamResult {
    /// The score as people read it: 72, not 72.0.
    pub fn score_text(&self) -> Option<String> {
        self.score.map(|s| if s.fract() == 0.0 { format!("{s:.0}") } else { s.to_string() })
    }

    /// For pages and mail: grade, score as text, passed.
    pub fn shown(&self) -> serde_json::Value {
        json!({ "grade": self.grade, "score": self.score_text(), "passed": self.passed })
    }

    pub fn json(&self) -> serde_json::Value {
        json!({ "grade": self.grade, "score": self.score, "passed": self.passed,
                "received_at": self.received_at.and_utc().to_rfc3339() })
    }
}

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

/// A partner's sessions with their course titles, soonest first.
pub fn sessions_of(conn: &mut Conn, partner: &Partner) -> QueryResult<Vec<(Session, String)>> {
    exam_sessions::table
        .inner_join(courses::table)
        .filter(exam_sessions::partner_id.eq(partner.id))
        .order(exam_sessions::starts_at.asc())
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

/// The sponsors who funded this learner's place in a run of the course.
pub fn funders(conn: &mut Conn, user_id: i64, course_id: i64) -> QueryResult<Vec<(Partner, i64)>> {
    let rows: Vec<(i64, i64)> = sponsorships::table
        .inner_join(course_runs::table)
        .filter(sponsorships::user_id.eq(user_id))
        .filter(course_runs::course_id.eq(course_id))
        .select((sponsorships::partner_id, sponsorships::run_id))
        .load(conn)?;
    rows.into_iter().map(|(p, run)| Ok((partners::by_id(conn, p)?, run))).collect()
}

/// The learner's decisions on the booking form.
pub struct BookingChoice {
    /// Asked for when the account has none; kept on the account.
    pub date_of_birth: Option<NaiveDate>,
    pub registration_text_id: i64,
    /// The separate support-needs question, when it was shown: the text and
    /// whether the learner ticked it (unticked by default, never bundled).
    pub support: Option<(i64, bool)>,
    /// Per funder (partner id): the text shown and whether they agreed.
    pub funders: Vec<(i64, i64, bool)>,
}

fn text_for(conn: &mut Conn, id: i64, partner: &Partner, purpose: Purpose) -> EResult<texts::ConsentText> {
    texts::by_id(conn, id)
        .optional()?
        .filter(|t| sponsors::text_fits(t, partner, purpose))
        .ok_or_else(|| ExamError::Invalid("The consent text you saw is no longer valid. Please book again.".into()))
}

/// Takes a seat in the session and returns it, or says why not. The
/// conditional update is the transaction's first statement, so two bookings
/// racing for the last seat cannot both win, and on SQLite the write lock is
/// taken before anything is read (a deferred transaction that reads first
/// fails with "database is locked" when another writer commits in between).
fn claim_seat(conn: &mut Conn, session_id: i64, now: NaiveDateTime) -> EResult<Session> {
    let taken = diesel::update(
        exam_sessions::table
            .find(session_id)
            .filter(exam_sessions::booked.lt(exam_sessions::capacity))
            .filter(exam_sessions::booking_deadline.gt(now)),
    )
    .set(exam_sessions::booked.eq(exam_sessions::booked + 1))
    .execute(conn)?;
    let s = session(conn, session_id)?;
    if taken == 1 {
        Ok(s)
    } else if now >= s.booking_deadline {
        Err(ExamError::Closed)
    } else {
        Err(ExamError::Full)
    }
}

fn release_seat(conn: &mut Conn, session_id: i64) -> QueryResult<()> {
    diesel::update(exam_sessions::table.find(session_id).filter(exam_sessions::booked.gt(0)))
        .set(exam_sessions::booked.eq(exam_sessions::booked - 1))
        .execute(conn)
        .map(drop)
}

fn live_booking_in_course(conn: &mut Conn, user_id: i64, session: &Session) -> QueryResult<Option<Booking>> {
    exam_bookings::table
        .inner_join(exam_sessions::table)
        .filter(exam_bookings::user_id.eq(user_id))
        .filter(exam_bookings::status.eq(BOOKED))
        .filter(exam_sessions::course_id.eq(session.course_id))
        .filter(exam_sessions::partner_id.eq(session.partner_id))
        .select(Booking::as_select())
        .first(conn)
        .optional()
}

fn insert_booking(conn: &mut Conn, session: &Session, user_id: i64, now: NaiveDateTime) -> EResult<Booking> {
    let reference = format!("EX-{}", crate::kernel::tokens::random_token(9).replace(['-', '_'], "x").to_uppercase());
    let id: i64 = diesel::insert_into(exam_bookings::table)
        .values((
            exam_bookings::session_id.eq(session.id),
            exam_bookings::user_id.eq(user_id),
            exam_bookings::reference.eq(reference),
            exam_bookings::status.eq(BOOKED),
            exam_bookings::created_at.eq(now),
        ))
        .returning(exam_bookings::id)
        .get_result(conn)?;
    Ok(exam_bookings::table.find(id).select(Booking::as_select()).first(conn)?)
}

/// Books a seat: checks enrollment, date of birth and capacity, and records
/// the registration consent (and, separately, the support-needs and funder
/// decisions) in one transaction.
pub fn book(
    conn: &mut Conn,
    user: &SessionUser,
    session_id: i64,
    choice: &BookingChoice,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> EResult<Booking> {
    crate::db::transaction(conn, |conn| {
        let s = claim_seat(conn, session_id, now)?;
        let body = partners::by_id(conn, s.partner_id)?;
        let registration = text_for(conn, choice.registration_text_id, &body, Purpose::ExamRegistration)?;
        crate::learning::service::active_enrollment(conn, user.id, s.course_id, now)
            .map_err(|_| ExamError::Invalid("Enroll in the course before booking its exam.".into()))?;
        if live_booking_in_course(conn, user.id, &s)?.is_some() {
            return Err(ExamError::Conflict(
                "You already hold a booking for this exam. Reschedule it from My exams instead.".into(),
            ));
        }
        let dob: Option<NaiveDate> = users::table.find(user.id).select(users::date_of_birth).first(conn)?;
        if dob.is_none() {
            let Some(given) = choice.date_of_birth else {
                return Err(ExamError::Invalid("The exam body needs your date of birth to register you.".into()));
            };
            if given >= now.date() || given.year_ce().1 < 1900 {
                return Err(ExamError::Invalid("Please enter your real date of birth.".into()));
            }
            diesel::update(users::table.find(user.id)).set(users::date_of_birth.eq(Some(given))).execute(conn)?;
        }
        let booking = insert_booking(conn, &s, user.id, now)?;
        let scope = course_scope(s.course_id);
        let decide = |conn: &mut Conn, partner: &Partner, purpose: Purpose, agree: bool, text: &texts::ConsentText| {
            crate::consent::parents::grant_or_ask(
                conn,
                Entry {
                    user_id: user.id,
                    partner_id: Some(partner.id),
                    purpose: purpose.as_str(),
                    scope: &scope,
                    action: if agree { Action::Grant } else { Action::Decline },
                    categories: &purpose.ceiling(),
                    text: Some(text),
                    evidence,
                },
                now,
            )
        };
        decide(conn, &body, Purpose::ExamRegistration, true, &registration)?;
        if let Some((text_id, agree)) = choice.support {
            // Unticked is a decline: an earlier yes for this exam stops here.
            let text = text_for(conn, text_id, &body, Purpose::ExamSupport)?;
            decide(conn, &body, Purpose::ExamSupport, agree, &text)?;
        }
        let funded = funders(conn, user.id, s.course_id)?;
        for (partner_id, text_id, agree) in &choice.funders {
            let Some((sponsor, _)) = funded.iter().find(|(p, _)| p.id == *partner_id) else {
                return Err(ExamError::Invalid("That sponsor did not fund your place in this course.".into()));
            };
            let text = text_for(conn, *text_id, sponsor, Purpose::ExamResults)?;
            decide(conn, sponsor, Purpose::ExamResults, *agree, &text)?;
        }
        Ok(booking)
    })
}

fn own_live_booking(conn: &mut Conn, user_id: i64, booking_id: i64) -> EResult<(Booking, Session)> {
    let found: Option<(Booking, Session)> = exam_bookings::table
        .inner_join(exam_sessions::table)
        .filter(exam_bookings::id.eq(booking_id))
        .filter(exam_bookings::user_id.eq(user_id))
        .select((Booking::as_select(), Session::as_select()))
        .first(conn)
        .optional()?;
    let (b, s) = found.ok_or(ExamError::NotFound)?;
    if b.status != BOOKED {
        return Err(ExamError::Conflict("This booking is cancelled already.".into()));
    }
    Ok((b, s))
}

fn mark_cancelled(conn: &mut Conn, b: &Booking, now: NaiveDateTime) -> EResult<()> {
    let has_result: i64 = exam_results::table.filter(exam_results::booking_id.eq(b.id)).count().get_result(conn)?;
    if has_result > 0 {
        return Err(ExamError::Conflict("This exam has a result already; it can no longer be changed.".into()));
    }
    diesel::update(exam_bookings::table.find(b.id).filter(exam_bookings::status.eq(BOOKED)))
        .set((exam_bookings::status.eq(CANCELLED), exam_bookings::cancelled_at.eq(now)))
        .execute(conn)?;
    release_seat(conn, b.session_id)?;
    Ok(())
}

/// Cancels the learner's booking and frees the seat; the exam body sees it
/// as cancelled.
pub fn cancel(conn: &mut Conn, user_id: i64, booking_id: i64, now: NaiveDateTime) -> EResult<()> {
    crate::db::transaction(conn, |conn| {
        let (b, s) = own_live_booking(conn, user_id, booking_id)?;
        if now >= s.starts_at {
            return Err(ExamError::Conflict("This exam has started; it can no longer be cancelled.".into()));
        }
        mark_cancelled(conn, &b, now)
    })
}

/// Moves a booking to another open session of the same exam body and course:
/// the old one is cancelled and a new one made, under the same consent.
pub fn reschedule(conn: &mut Conn, user_id: i64, booking_id: i64, to: i64, now: NaiveDateTime) -> EResult<Booking> {
    crate::db::transaction(conn, |conn| {
        let target = claim_seat(conn, to, now)?;
        let (b, s) = own_live_booking(conn, user_id, booking_id)?;
        if target.id == s.id || target.course_id != s.course_id || target.partner_id != s.partner_id {
            return Err(ExamError::Invalid("Choose another session of the same exam.".into()));
        }
        if now >= s.starts_at {
            return Err(ExamError::Conflict("This exam has started; it can no longer be moved.".into()));
        }
        mark_cancelled(conn, &b, now)?;
        insert_booking(conn, &target, user_id, now)
    })
}

/// One of the learner's bookings, for "My exams".
pub struct MyBooking {
    pub booking: Booking,
    pub session: Session,
    pub course: String,
    pub exam_body: String,
    pub result: Option<ExamResult>,
}

pub fn bookings_of(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<MyBooking>> {
    let rows: Vec<(Booking, Session, String, String)> = exam_bookings::table
        .inner_join(exam_sessions::table.inner_join(courses::table).inner_join(ptable::table))
        .filter(exam_bookings::user_id.eq(user_id))
        .order(exam_bookings::id.desc())
        .select((Booking::as_select(), Session::as_select(), courses::title, ptable::name))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0.id).collect();
    let mut results: Vec<ExamResult> =
        exam_results::table.filter(exam_results::booking_id.eq_any(&ids)).select(ExamResult::as_select()).load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(booking, session, course, exam_body)| {
            let result = results.iter().position(|r| r.booking_id == booking.id).map(|i| results.swap_remove(i));
            MyBooking { booking, session, course, exam_body, result }
        })
        .collect())
}

/// A result as an exam body sends it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ResultInput {
    /// The booking reference the exam body received with the candidate.
    pub booking: String,
    pub grade: String,
    #[serde(default)]
    pub score: Option<f64>,
    pub passed: bool,
}

pub enum Recorded {
    New(ExamResult),
    /// The same result was received before; nothing changed.
    Same(ExamResult),
}

impl ResultInput {
    fn check(&self) -> EResult<()> {
        let grade = self.grade.trim();
        if grade.is_empty() || grade.chars().count() > 100 {
            return Err(ExamError::Invalid("`grade` must be between 1 and 100 characters.".into()));
        }
        if let Some(s) = self.score
            && !(s.is_finite() && (0.0..=100_000.0).contains(&s))
        {
            return Err(ExamError::Invalid("`score` must be a number from 0 to 100000.".into()));
        }
        Ok(())
    }

    fn same_as(&self, r: &ExamResult) -> bool {
        r.grade == self.grade.trim() && r.score == self.score && r.passed == self.passed
    }
}

/// Records a result from `partner` for one of its bookings, once: the same
/// result again is acknowledged and changes nothing; a different one for the
/// same booking is refused. The learner is emailed when it is new.
pub fn record_result(
    conn: &mut Conn,
    partner: &Partner,
    input: &ResultInput,
    source: &str,
    now: NaiveDateTime,
) -> EResult<Recorded> {
    record_result_in(conn, partner, None, input, source, now)
}

/// `record_result`, for a booking of one session only when `session` is given.
fn record_result_in(
    conn: &mut Conn,
    partner: &Partner,
    session: Option<i64>,
    input: &ResultInput,
    source: &str,
    now: NaiveDateTime,
) -> EResult<Recorded> {
    input.check()?;
    let mut q = exam_bookings::table
        .inner_join(exam_sessions::table)
        .filter(exam_bookings::reference.eq(input.booking.trim()))
        .filter(exam_sessions::partner_id.eq(partner.id))
        .select((Booking::as_select(), Session::as_select()))
        .into_boxed();
    if let Some(id) = session {
        q = q.filter(exam_bookings::session_id.eq(id));
    }
    let found: Option<(Booking, Session)> = q.first(conn).optional()?;
    // Another body's booking is as unknown as a made-up one.
    let (booking, session) = found.ok_or(ExamError::NotFound)?;
    let existing = |conn: &mut Conn| -> QueryResult<Option<ExamResult>> {
        exam_results::table
            .filter(exam_results::booking_id.eq(booking.id))
            .select(ExamResult::as_select())
            .first(conn)
            .optional()
    };
    let compare = |r: ExamResult| {
        if input.same_as(&r) {
            Ok(Recorded::Same(r))
        } else {
            Err(ExamError::Conflict(format!(
                "Booking {} has a different result already; results are not overwritten.",
                booking.reference
            )))
        }
    };
    if let Some(r) = existing(conn)? {
        return compare(r);
    }
    if booking.status != BOOKED {
        return Err(ExamError::Conflict(format!("Booking {} was cancelled; it takes no result.", booking.reference)));
    }
    // A result cannot come before the exam took place.
    if now < session.starts_at {
        return Err(ExamError::Conflict(format!(
            "Booking {} is for an exam that has not taken place yet (it starts {}); send its result afterwards.",
            booking.reference,
            session.local(session.starts_at)
        )));
    }
    let inserted = crate::db::transaction(conn, |conn| {
        let id: i64 = diesel::insert_into(exam_results::table)
            .values((
                exam_results::booking_id.eq(booking.id),
                exam_results::user_id.eq(booking.user_id),
                exam_results::grade.eq(input.grade.trim()),
                exam_results::score.eq(input.score),
                exam_results::passed.eq(input.passed),
                exam_results::source.eq(source),
                exam_results::received_at.eq(now),
            ))
            .returning(exam_results::id)
            .get_result(conn)?;
        let r: ExamResult = exam_results::table.find(id).select(ExamResult::as_select()).first(conn)?;
        let (email, username): (String, String) =
            users::table.find(booking.user_id).select((users::email, users::username)).first(conn)?;
        crate::notify::enqueue_email(
            conn,
            &email,
            "Your exam result",
            "exam_result",
            json!({
                "username": username, "exam": session.title, "grade": r.grade, "score": r.score_text(),
                "passed": r.passed, "reference": booking.reference,
            }),
        )?;
        Ok::<_, diesel::result::Error>(r)
    });
    match inserted {
        Ok(r) => Ok(Recorded::New(r)),
        // The same result sent twice at once: the second finds the first.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            compare(existing(conn)?.ok_or(ExamError::NotFound)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads a CSV of results (`booking,grade,score,passed`): every row valid, or
/// the list of what is wrong.
pub fn parse_results_csv(text: &str) -> Result<Vec<ResultInput>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_lowercase()).collect(),
        Err(e) => return Err(vec![format!("The first row could not be read: {e}")]),
    };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(b), Some(g), Some(p)) = (col("booking"), col("grade"), col("passed")) else {
        return Err(vec!["The first row must name the columns booking, grade, score and passed.".into()]);
    };
    let s = col("score");
    let mut out: Vec<ResultInput> = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("Row {line}: {e}"));
                continue;
            }
        };
        let get = |c: usize| record.get(c).unwrap_or("").trim().to_string();
        let passed = match get(p).to_lowercase().as_str() {
            "yes" | "true" | "pass" | "passed" | "1" => true,
            "no" | "false" | "fail" | "failed" | "0" => false,
            other => {
                errors.push(format!("Row {line}: passed must be yes or no, not “{other}”."));
                continue;
            }
        };
        let score = match s.map(get).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push(format!("Row {line}: the score “{v}” is not a number."));
                    continue;
                }
            },
        };
        let input = ResultInput { booking: get(b), grade: get(g), score, passed };
        if let Err(e) = input.check() {
            errors.push(format!("Row {line}: {e}"));
            continue;
        }
        if out.iter().any(|r| r.booking == input.booking) {
            errors.push(format!("Row {line}: booking {} appears twice.", input.booking));
            continue;
        }
        out.push(input);
    }
    if out.is_empty() && errors.is_empty() {
        errors.push("The file has no result rows.".into());
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Records an upload's rows, all or none: (new, already received).
pub fn record_upload(
    conn: &mut Conn,
    partner: &Partner,
    session_id: i64,
    rows: &[ResultInput],
    now: NaiveDateTime,
) -> EResult<(usize, usize)> {
    crate::db::transaction(conn, |conn| {
        let (mut new, mut same) = (0, 0);
        for (i, row) in rows.iter().enumerate() {
            match record_result_in(conn, partner, Some(session_id), row, "csv", now) {
                Ok(Recorded::New(_)) => new += 1,
                Ok(Recorded::Same(_)) => same += 1,
                Err(ExamError::Db(e)) => return Err(ExamError::Db(e)),
                Err(ExamError::NotFound) => {
                    return Err(ExamError::Invalid(format!(
                        "Row {}: booking “{}” is not a booking in this session.",
                        i + 2,
                        row.booking
                    )));
                }
                Err(e) => return Err(ExamError::Invalid(format!("Row {}: {e}", i + 2))),
            }
        }
        Ok((new, same))
    })
}

/// Results received before the period are deleted, except a held account's.
pub fn purge_results(
    conn: &mut Conn,
    days: i64,
    held: &[i64],
    now: NaiveDateTime,
    dry_run: bool,
) -> QueryResult<usize> {
    if days <= 0 {
        return Ok(0);
    }
    let old = exam_results::table
        .filter(exam_results::received_at.le(now - Duration::days(days)))
        .filter(exam_results::user_id.ne_all(held));
    if dry_run { Ok(old.count().get_result::<i64>(conn)? as usize) } else { diesel::delete(old).execute(conn) }
}

/// A learner's support needs, opened.
pub struct SupportNeeds {
    pub needs: String,
    pub adjustments: String,
    pub updated_at: NaiveDateTime,
}

pub fn support_needs_of(conn: &mut Conn, user_id: i64) -> EResult<Option<SupportNeeds>> {
    let row: Option<(String, String, NaiveDateTime)> = support_needs::table
        .find(user_id)
        .select((support_needs::needs, support_needs::adjustments, support_needs::updated_at))
        .first(conn)
        .optional()?;
    let Some((needs, adjustments, updated_at)) = row else { return Ok(None) };
    Ok(Some(SupportNeeds {
        needs: vault::open(NEEDS_FIELD, &needs)?,
        adjustments: vault::open(ADJUSTMENTS_FIELD, &adjustments)?,
        updated_at,
    }))
}

pub fn save_support_needs(
    conn: &mut Conn,
    user_id: i64,
    needs: &str,
    adjustments: &str,
    now: NaiveDateTime,
) -> EResult<()> {
    let (needs, adjustments) = (needs.trim(), adjustments.trim());
    if needs.is_empty() && adjustments.is_empty() {
        return Err(ExamError::Invalid(
            "Describe your needs or the adjustments you need, or delete the record instead.".into(),
        ));
    }
    if needs.chars().count() > MAX_TEXT || adjustments.chars().count() > MAX_TEXT {
        return Err(ExamError::Invalid(format!("Each answer can be at most {MAX_TEXT} characters.")));
    }
    let sealed_needs = vault::seal(NEEDS_FIELD, needs)?;
    let sealed_adjustments = vault::seal(ADJUSTMENTS_FIELD, adjustments)?;
    crate::db::transaction(conn, |conn| {
        diesel::delete(support_needs::table.find(user_id)).execute(conn)?;
        diesel::insert_into(support_needs::table)
            .values((
                support_needs::user_id.eq(user_id),
                support_needs::needs.eq(sealed_needs),
                support_needs::adjustments.eq(sealed_adjustments),
                support_needs::updated_at.eq(now),
            ))
            .execute(conn)
    })?;
    Ok(())
}

pub fn delete_support_needs(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(support_needs::table.find(user_id)).execute(conn)
}

/// Who has recorded support needs (for the support team's list): user id,
/// username, updated.
pub fn with_support_needs(conn: &mut Conn) -> QueryResult<Vec<(i64, String, NaiveDateTime)>> {
    support_needs::table
        .inner_join(users::table.on(users::id.eq(support_needs::user_id)))
        .order(users::username.asc())
        .select((users::id, users::username, support_needs::updated_at))
        .load(conn)
}

/// A malpractice case with its booking, for the staff pages.
pub struct Case {
    pub id: i64,
    pub details: String,
    pub status: String,
    pub outcome: Option<String>,
    pub disclosure_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub reference: String,
    pub user_id: i64,
    pub username: String,
    pub exam: String,
    pub exam_body: String,
    pub exam_body_id: i64,
}

type CaseRow =
    ((i64, String, String, Option<String>, Option<i64>, NaiveDateTime), (String, i64), String, (String, i64, String));

fn case_rows(conn: &mut Conn, id: Option<i64>) -> QueryResult<Vec<Case>> {
    let mut q = malpractice_cases::table
        .inner_join(
            exam_bookings::table
                .inner_join(users::table.on(users::id.eq(exam_bookings::user_id)))
                .inner_join(exam_sessions::table.inner_join(ptable::table)),
        )
        .order(malpractice_cases::id.desc())
        .select((
            (
                malpractice_cases::id,
                malpractice_cases::details,
                malpractice_cases::status,
                malpractice_cases::outcome,
                malpractice_cases::disclosure_id,
                malpractice_cases::created_at,
            ),
            (exam_bookings::reference, exam_bookings::user_id),
            users::username,
            (exam_sessions::title, ptable::id, ptable::name),
        ))
        .into_boxed();
    if let Some(id) = id {
        q = q.filter(malpractice_cases::id.eq(id));
    }
    let rows: Vec<CaseRow> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(
                (id, details, status, outcome, disclosure_id, created_at),
                (reference, user_id),
                username,
                (exam, pid, pname),
            )| {
                Case {
                    id,
                    details,
                    status,
                    outcome,
                    disclosure_id,
                    created_at,
                    reference,
                    user_id,
                    username,
                    exam,
                    exam_body: pname,
                    exam_body_id: pid,
                }
            },
        )
        .collect())
}

pub fn cases(conn: &mut Conn) -> QueryResult<Vec<Case>> {
    case_rows(conn, None)
}

pub fn case(conn: &mut Conn, id: i64) -> EResult<Case> {
    case_rows(conn, Some(id))?.pop().ok_or(ExamError::NotFound)
}

/// Opens a case on the booking with this reference.
pub fn open_case(conn: &mut Conn, reference: &str, details: &str, by: i64, now: NaiveDateTime) -> EResult<i64> {
    let details = details.trim();
    if details.is_empty() || details.chars().count() > MAX_TEXT {
        return Err(ExamError::Invalid(format!("Describe what happened (at most {MAX_TEXT} characters).")));
    }
    let booking: Option<i64> = exam_bookings::table
        .filter(exam_bookings::reference.eq(reference.trim()))
        .select(exam_bookings::id)
        .first(conn)
        .optional()?;
    let booking =
        booking.ok_or_else(|| ExamError::Invalid(format!("No booking has the reference “{}”.", reference.trim())))?;
    Ok(diesel::insert_into(malpractice_cases::table)
        .values((
            malpractice_cases::booking_id.eq(booking),
            malpractice_cases::opened_by.eq(Some(by)),
            malpractice_cases::details.eq(details),
            malpractice_cases::status.eq("open"),
            malpractice_cases::created_at.eq(now),
        ))
        .returning(malpractice_cases::id)
        .get_result(conn)?)
}

/// Records the case's disclosure to the exam body under a legal basis with
/// its reference (SHR-8); the learner sees it on their Sharing page.
pub fn disclose_case(
    conn: &mut Conn,
    id: i64,
    legal_reference: &str,
    fields: &str,
    by: i64,
    now: NaiveDateTime,
) -> EResult<i64> {
    let (legal_reference, fields) = (legal_reference.trim(), fields.trim());
    if legal_reference.is_empty() || fields.is_empty() {
        return Err(ExamError::Invalid("Give the legal basis with its reference, and what was disclosed.".into()));
    }
    crate::db::transaction(conn, |conn| {
        let c = case(conn, id)?;
        if c.disclosure_id.is_some() {
            return Err(ExamError::Conflict("This case's disclosure is recorded already.".into()));
        }
        let note = format!("Malpractice case {} on booking {} ({})", c.id, c.reference, c.exam);
        let disclosure = crate::consent::sharing::record_legal(
            conn,
            &crate::consent::sharing::LegalDisclosure {
                user_id: c.user_id,
                partner_id: Some(c.exam_body_id),
                recipient: &c.exam_body,
                legal_reference,
                fields,
                note: &note,
                recorded_by: by,
            },
            now,
        )?;
        diesel::update(malpractice_cases::table.find(id))
            .set(malpractice_cases::disclosure_id.eq(Some(disclosure)))
            .execute(conn)?;
        Ok(disclosure)
    })
}

pub fn close_case(conn: &mut Conn, id: i64, outcome: &str, now: NaiveDateTime) -> EResult<()> {
    let outcome = outcome.trim();
    if outcome.is_empty() || outcome.chars().count() > MAX_TEXT {
        return Err(ExamError::Invalid("Record the outcome to close the case.".into()));
    }
    let n = diesel::update(malpractice_cases::table.find(id).filter(malpractice_cases::status.eq("open")))
        .set((
            malpractice_cases::status.eq("closed"),
            malpractice_cases::outcome.eq(Some(outcome)),
            malpractice_cases::closed_at.eq(Some(now)),
        ))
        .execute(conn)?;
    if n == 0 { Err(ExamError::Conflict("This case is closed already.".into())) } else { Ok(()) }
}

/// What erasure deletes: support needs and bookings (with their results and cases).
pub fn erase(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    let mut n = diesel::delete(support_needs::table.find(user_id)).execute(conn)?;
    let bookings = exam_bookings::table.filter(exam_bookings::user_id.eq(user_id)).select(exam_bookings::id);
    n += diesel::delete(malpractice_cases::table.filter(malpractice_cases::booking_id.eq_any(bookings)))
        .execute(conn)?;
    n += diesel::delete(exam_results::table.filter(exam_results::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(exam_bookings::table.filter(exam_bookings::user_id.eq(user_id))).execute(conn)?;
    Ok(n)
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::mine,
        routes::book_form,
        routes::book,
        routes::reschedule_form,
        routes::reschedule,
        routes::cancel,
        routes::needs_form,
        routes::save_needs,
        routes::delete_needs,
        routes::needs_list,
        routes::needs_of,
        routes::sessions,
        routes::create_session,
        routes::session_page,
        routes::upload_results,
        routes::cases,
        routes::open_case,
        routes::case_page,
        routes::disclose,
        routes::close_case,
        routes::api_candidates,
        routes::api_result,
        routes::api_funded,
    ]
}
