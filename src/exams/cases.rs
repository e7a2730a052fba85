//! Malpractice cases on a booking and their disclosure to the exam body
//! under a legal basis (SHR-8).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{exam_bookings, exam_sessions, malpractice_cases, partners as ptable, users};

use super::{EResult, ExamError, MAX_TEXT};

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

impl Case {
    pub fn is_open(&self) -> bool {
        self.status == "open"
    }
}

/// Cases, newest first: the one with `id`, or `limit` from `offset`.
fn case_rows(conn: &mut Conn, id: Option<i64>, offset: i64, limit: i64) -> QueryResult<Vec<Case>> {
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
    q = q.offset(offset).limit(limit);
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

/// A page of cases, newest first: `limit` from `offset`.
pub fn cases(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<Case>> {
    case_rows(conn, None, offset, limit)
}

pub fn case(conn: &mut Conn, id: i64) -> EResult<Case> {
    case_rows(conn, Some(id), 0, 1)?.pop().ok_or(ExamError::NotFound)
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
