//! Bookings: taking a seat with the learner's consents (registration,
//! support needs, funders), cancelling and rescheduling, "My exams".

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::consent::ledger::{Action, Entry, Evidence};
use crate::consent::partners::{self, Partner};
use crate::consent::{Purpose, sponsors, texts};
use crate::db::Conn;
use crate::db::schema::{
    course_runs, courses, exam_bookings, exam_results, exam_sessions, partners as ptable, sponsorships, users,
};
use crate::kernel::SessionUser;

use super::model::{Booking, ExamResult, Session};
use super::sessions::session;
use super::{BOOKED, CANCELLED, EResult, ExamError, course_scope};

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

/// A change a learner makes to their booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Cancel,
    Move,
}

/// Why a booking can no longer be cancelled or moved, or `None` when it can:
/// it must be live, its exam not started and without a result. "My exams"
/// offers the buttons on this rule, and [`cancel`] and [`reschedule`]
/// enforce it.
pub fn change_refused(
    b: &Booking,
    s: &Session,
    has_result: bool,
    change: Change,
    now: NaiveDateTime,
) -> Option<ExamError> {
    if b.status != BOOKED {
        return Some(ExamError::Conflict("This booking is cancelled already.".into()));
    }
    if now >= s.starts_at {
        let verb = match change {
            Change::Cancel => "cancelled",
            Change::Move => "moved",
        };
        return Some(ExamError::Conflict(format!("This exam has started; it can no longer be {verb}.")));
    }
    if has_result {
        return Some(ExamError::Conflict("This exam has a result already; it can no longer be changed.".into()));
    }
    None
}

/// The learner's booking with its session, when `change` may still be made.
fn own_changeable_booking(
    conn: &mut Conn,
    user_id: i64,
    booking_id: i64,
    change: Change,
    now: NaiveDateTime,
) -> EResult<(Booking, Session)> {
    let found: Option<(Booking, Session)> = exam_bookings::table
        .inner_join(exam_sessions::table)
        .filter(exam_bookings::id.eq(booking_id))
        .filter(exam_bookings::user_id.eq(user_id))
        .select((Booking::as_select(), Session::as_select()))
        .first(conn)
        .optional()?;
    let (b, s) = found.ok_or(ExamError::NotFound)?;
    let results: i64 = exam_results::table.filter(exam_results::booking_id.eq(b.id)).count().get_result(conn)?;
    match change_refused(&b, &s, results > 0, change, now) {
        Some(refused) => Err(refused),
        None => Ok((b, s)),
    }
}

fn mark_cancelled(conn: &mut Conn, b: &Booking, now: NaiveDateTime) -> EResult<()> {
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
        let (b, _) = own_changeable_booking(conn, user_id, booking_id, Change::Cancel, now)?;
        mark_cancelled(conn, &b, now)
    })
}

/// Moves a booking to another open session of the same exam body and course:
/// the old one is cancelled and a new one made, under the same consent.
pub fn reschedule(conn: &mut Conn, user_id: i64, booking_id: i64, to: i64, now: NaiveDateTime) -> EResult<Booking> {
    crate::db::transaction(conn, |conn| {
        let target = claim_seat(conn, to, now)?;
        let (b, s) = own_changeable_booking(conn, user_id, booking_id, Change::Move, now)?;
        if target.id == s.id || !target.same_exam(&s) {
            return Err(ExamError::Invalid("Choose another session of the same exam.".into()));
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

impl MyBooking {
    /// Why this booking can no longer be changed (see [`change_refused`]).
    pub fn change_refused(&self, change: Change, now: NaiveDateTime) -> Option<ExamError> {
        change_refused(&self.booking, &self.session, self.result.is_some(), change, now)
    }
}

/// Whether the learner holds a live booking for the exam of session `s`:
/// one per exam (course and exam body), which [`book`] enforces; the others
/// are reached by rescheduling it.
pub fn holds_exam(bookings: &[MyBooking], s: &Session) -> bool {
    bookings.iter().any(|b| b.booking.status == BOOKED && b.session.same_exam(s))
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
