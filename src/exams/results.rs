//! Results from exam bodies, by API or CSV upload, recorded once per booking;
//! their purge after the retention period.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use crate::consent::partners::Partner;
use crate::db::Conn;
use crate::db::schema::{exam_bookings, exam_results, exam_sessions, users};

use super::model::{Booking, ExamResult, Session};
use super::{BOOKED, EResult, ExamError};

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
