//! Verified certificates (CRT-1 … CRT-7): payment for the verified track,
//! identity checks, financial assistance, issuance, public verification and
//! signed Open Badges credentials, and the hooks the privacy area calls.
//!
//! A certificate is earned by an enrollment on the verified track that passed
//! while its learner holds a valid identity check. Whichever of the three
//! happens last (passing, paying or being granted the track, the identity
//! approval) calls [`issue_if_earned`], which issues at most once per learner
//! and run.

pub mod assistance;
pub mod credential;
pub mod identity;
pub mod lifecycle;
pub mod payments;
pub mod proctoring;
pub mod render;
pub mod routes;
pub mod views;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use rand::Rng;
use serde::Serialize;
use serde_json::json;

use crate::db::schema::{certificates, course_runs, courses, enrollments, identity_checks, members, users};
use crate::db::{Conn, is_unique_violation};
use crate::learning::model::Enrollment;
use crate::learning::service::Track;
use crate::web::AppError;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    /// Refused input, in words for the person who sent it.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Pool(#[from] crate::db::DbError),
    #[error("file storage: {0}")]
    Storage(String),
    /// The payment or proctoring service failed or answered unexpectedly.
    #[error("{0}")]
    Provider(String),
}

pub type CResult<T> = Result<T, CertError>;

impl From<CertError> for AppError {
    fn from(e: CertError) -> Self {
        match e {
            CertError::NotFound => AppError::NotFound,
            CertError::Forbidden(m) => AppError::Forbidden(m),
            CertError::Invalid(m) => AppError::Unprocessable(m),
            CertError::Db(e) => e.into(),
            CertError::Pool(e) => AppError::Db(e),
            CertError::Storage(m) => AppError::Internal(m),
            CertError::Provider(m) => AppError::Internal(m),
        }
    }
}

impl From<crate::storage::StoreError> for CertError {
    fn from(e: crate::storage::StoreError) -> Self {
        match e {
            crate::storage::StoreError::Db(e) => CertError::Db(e),
            other => CertError::Storage(other.to_string()),
        }
    }
}

impl From<crate::storage::BlobError> for CertError {
    fn from(e: crate::storage::BlobError) -> Self {
        CertError::Storage(e.to_string())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = certificates)]
pub struct Certificate {
    pub id: i64,
    pub code: String,
    pub user_id: Option<i64>,
    pub run_id: Option<i64>,
    pub member_slug: String,
    pub name_at_issue: String,
    pub course_title: String,
    pub member_name: String,
    pub run_key: String,
    pub grade_percent: f64,
    pub issued_at: NaiveDateTime,
    pub status_index: i64,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<String>,
    pub revoked_by: Option<i64>,
}

impl Certificate {
    pub fn is_valid(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Verification codes: 16 characters from an alphabet without look-alikes,
/// shown in groups of four (`K7QM-…`). 80 bits: not guessable.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn new_code() -> String {
    let mut rng = rand::thread_rng();
    let chars: Vec<char> = (0..16).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A code as people type it: upper case, dashes optional, spaces ignored.
pub fn normalise_code(input: &str) -> Option<String> {
    let raw: String =
        input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    if raw.len() != 16 || !raw.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(raw.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-"))
}

/// The learner's identity check that is approved and still valid at `now`.
pub fn identity_valid(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<bool> {
    let n: i64 = identity_checks::table
        .filter(identity_checks::user_id.eq(user_id))
        .filter(identity_checks::status.eq(identity::status::APPROVED))
        .filter(identity_checks::valid_until.gt(now))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn by_code(conn: &mut Conn, code: &str) -> QueryResult<Option<Certificate>> {
    certificates::table.filter(certificates::code.eq(code)).select(Certificate::as_select()).first(conn).optional()
}

pub fn for_user_run(conn: &mut Conn, user_id: i64, run_id: i64) -> QueryResult<Option<Certificate>> {
    certificates::table
        .filter(certificates::user_id.eq(user_id))
        .filter(certificates::run_id.eq(run_id))
        .select(Certificate::as_select())
        .first(conn)
        .optional()
}

pub fn of_user(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<Certificate>> {
    certificates::table
        .filter(certificates::user_id.eq(user_id))
        .order(certificates::issued_at.desc())
        .select(Certificate::as_select())
        .load(conn)
}

/// An index of the revocation list that no certificate holds, drawn at
/// random: indexes handed out in order would tell a verifier when a
/// credential was issued and how many were issued before it. The list keeps
/// at most half of its entries taken (it grows by the Bitstring Status List
/// minimum, 131,072 entries, as needed), so a draw is free at least half the
/// time and 64 taken draws in a row do not happen in practice.
fn free_status_index(conn: &mut Conn) -> QueryResult<i64> {
    let taken: i64 = certificates::table.count().get_result(conn)?;
    let block = credential::STATUS_LIST_BITS as u64;
    let wanted = u64::try_from(taken).unwrap_or(0).saturating_add(1).saturating_mul(2);
    let size = i64::try_from(wanted.div_ceil(block).saturating_mul(block)).unwrap_or(i64::MAX);
    let mut rng = rand::thread_rng();
    for _ in 0..64 {
        let candidate = rng.gen_range(0..size);
        let held: i64 =
            certificates::table.filter(certificates::status_index.eq(candidate)).count().get_result(conn)?;
        if held == 0 {
            return Ok(candidate);
        }
    }
    Err(diesel::result::Error::RollbackTransaction)
}

/// The learner's certificate of a run, once issued, as learning's dashboard
/// shows it: its verification code and whether it is valid.
pub fn badge(conn: &mut Conn, user_id: i64, run_id: i64) -> QueryResult<Option<(String, bool)>> {
    Ok(for_user_run(conn, user_id, run_id)?.map(|c| {
        let valid = c.is_valid();
        (c.code, valid)
    }))
}

/// What a passing grade sets off (learning's `OnPass`): the certificate,
/// when it is earned.
pub fn on_passing_grade(conn: &mut Conn, user_id: i64, run_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    issue_if_earned(conn, user_id, run_id, now).map(drop)
}

/// Issues the certificate of this learner's enrollment in this run when it is
/// earned (verified track, passed, valid identity check) and none exists yet
/// (CRT-3). A revoked certificate is not reissued by itself. Emails the learner.
pub fn issue_if_earned(
    conn: &mut Conn,
    user_id: i64,
    run_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<Certificate>> {
    let enrollment: Option<Enrollment> = enrollments::table
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::run_id.eq(run_id))
        .select(Enrollment::as_select())
        .first(conn)
        .optional()?;
    let Some(e) = enrollment else { return Ok(None) };
    if e.track != Track::Verified.as_str() || !e.passed || e.status != crate::learning::model::EnrollmentStatus::Active
    {
        return Ok(None);
    }
    if for_user_run(conn, user_id, run_id)?.is_some() || !identity_valid(conn, user_id, now)? {
        return Ok(None);
    }
    let (first, last, email): (String, String, String) =
        users::table.find(user_id).select((users::first_name, users::last_name, users::email)).first(conn)?;
    let (run_key, course_title, course_slug, member_slug, member_name): (String, String, String, String, String) =
        course_runs::table
            .inner_join(courses::table.inner_join(members::table))
            .filter(course_runs::id.eq(run_id))
            .select((course_runs::run_key, courses::title, courses::slug, members::slug, members::name))
            .first(conn)?;
    let name = format!("{first} {last}").trim().to_string();
    // Two issuances racing for the same status index: the loser draws again.
    for _ in 0..5 {
        let status_index = free_status_index(conn)?;
        let code = new_code();
        let inserted = diesel::insert_into(certificates::table)
            .values((
                certificates::code.eq(&code),
                certificates::user_id.eq(user_id),
                certificates::run_id.eq(run_id),
                certificates::member_slug.eq(&member_slug),
                certificates::name_at_issue.eq(&name),
                certificates::course_title.eq(&course_title),
                certificates::member_name.eq(&member_name),
                certificates::run_key.eq(&run_key),
                certificates::grade_percent.eq(e.grade_percent),
                certificates::issued_at.eq(now),
                certificates::status_index.eq(status_index),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {
                crate::notify::enqueue_email(
                    conn,
                    &email,
                    &format!("Your certificate for {course_title}"),
                    "certificate_issued",
                    json!({
                        "first_name": first, "course": course_title, "member": member_name,
                        "path": format!("/certificates/{code}"), "course_path": format!("/learn/{course_slug}"),
                    }),
                )?;
                return by_code(conn, &code);
            }
            Err(e) if is_unique_violation(&e) => {
                if for_user_run(conn, user_id, run_id)?.is_some() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(diesel::result::Error::RollbackTransaction)
}

/// Issues whatever this learner has earned across runs (after an identity approval).
pub fn issue_all_earned(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<usize> {
    let runs: Vec<i64> = enrollments::table
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::track.eq(Track::Verified.as_str()))
        .filter(enrollments::passed.eq(true))
        .select(enrollments::run_id)
        .load(conn)?;
    let mut n = 0;
    for run_id in runs {
        if issue_if_earned(conn, user_id, run_id, now)?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// Revokes a certificate with a reason (CRT-4); false when it already was.
pub fn revoke(conn: &mut Conn, id: i64, by: Option<i64>, reason: &str, now: NaiveDateTime) -> CResult<bool> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(CertError::Invalid("Give a reason for the revocation (at most 500 characters).".into()));
    }
    let n = diesel::update(certificates::table.find(id).filter(certificates::revoked_at.is_null()))
        .set((
            certificates::revoked_at.eq(now),
            certificates::revoked_reason.eq(reason),
            certificates::revoked_by.eq(by),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The privacy area's hook at erasure (CRT-6, CRT-2): identity images and
/// applications go; certificates stay for their retention period but no
/// longer point at the account; payments keep their amounts, not the payer.
pub fn on_erasure(conn: &mut Conn, blobs: &dyn crate::storage::BlobStore, user_id: i64) -> CResult<usize> {
    let mut n = identity::forget(conn, blobs, user_id)?;
    use crate::db::schema::{assistance_applications, payments};
    n += diesel::delete(assistance_applications::table.filter(assistance_applications::user_id.eq(user_id)))
        .execute(conn)?;
    n += diesel::update(certificates::table.filter(certificates::user_id.eq(user_id)))
        .set(certificates::user_id.eq(None::<i64>))
        .execute(conn)?;
    n += diesel::update(payments::table.filter(payments::user_id.eq(user_id)))
        .set(payments::user_id.eq(None::<i64>))
        .execute(conn)?;
    Ok(n)
}

/// Certificates issued before `days` ago go (CRT-6); 0 keeps them for ever.
/// Returns how many went (or would go).
pub fn expire(conn: &mut Conn, days: i64, now: NaiveDateTime, dry_run: bool) -> QueryResult<usize> {
    if days <= 0 {
        return Ok(0);
    }
    let old = certificates::table.filter(certificates::issued_at.le(now - Duration::days(days)));
    if dry_run { Ok(old.count().get_result::<i64>(conn)? as usize) } else { diesel::delete(old).execute(conn) }
}

/// Gives the learner the verified track of a run without payment (financial
/// assistance, staff grant) or after payment; keeps their progress.
pub fn grant_verified(conn: &mut Conn, user_id: i64, run_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    let run: crate::learning::model::Run =
        course_runs::table.find(run_id).select(crate::learning::model::Run::as_select()).first(conn)?;
    let existing: Option<Enrollment> = enrollments::table
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::run_id.eq(run_id))
        .select(Enrollment::as_select())
        .first(conn)
        .optional()?;
    let expires = run.access_days.map(|d| now + Duration::days(i64::from(d)));
    match existing {
        Some(e) if e.has_access(now) => {
            diesel::update(enrollments::table.find(e.id))
                .set(enrollments::track.eq(Track::Verified.as_str()))
                .execute(conn)?;
        }
        Some(e) => {
            diesel::update(enrollments::table.find(e.id))
                .set((
                    enrollments::track.eq(Track::Verified.as_str()),
                    enrollments::status.eq(crate::learning::model::EnrollmentStatus::Active.as_str()),
                    enrollments::enrolled_at.eq(now),
                    enrollments::access_expires_at.eq(expires),
                    enrollments::unenrolled_at.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(enrollments::table)
                .values((
                    enrollments::user_id.eq(user_id),
                    enrollments::run_id.eq(run_id),
                    enrollments::track.eq(Track::Verified.as_str()),
                    enrollments::status.eq(crate::learning::model::EnrollmentStatus::Active.as_str()),
                    enrollments::enrolled_at.eq(now),
                    enrollments::access_expires_at.eq(expires),
                ))
                .execute(conn)?;
        }
    }
    issue_if_earned(conn, user_id, run_id, now)?;
    Ok(())
}

/// Back to the audit track (a refund); the certificate, if any, is revoked.
pub fn downgrade(conn: &mut Conn, user_id: i64, run_id: i64, reason: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(enrollments::table.filter(enrollments::user_id.eq(user_id)).filter(enrollments::run_id.eq(run_id)))
        .set(enrollments::track.eq(Track::Audit.as_str()))
        .execute(conn)?;
    if let Some(c) = for_user_run(conn, user_id, run_id)? {
        diesel::update(certificates::table.find(c.id).filter(certificates::revoked_at.is_null()))
            .set((certificates::revoked_at.eq(now), certificates::revoked_reason.eq(reason)))
            .execute(conn)?;
    }
    Ok(())
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::buy,
        routes::buy_seats,
        routes::returned,
        routes::cancelled,
        routes::webhook,
        routes::verification_page,
        routes::submit_verification,
        routes::identity_queue,
        routes::identity_review,
        routes::identity_image,
        routes::identity_decide,
        routes::assistance_form,
        routes::apply,
        routes::assistance_list,
        routes::assistance_decide,
        routes::mine,
        routes::verify_page,
        routes::find_page,
        routes::png,
        routes::pdf,
        routes::credential_jwt,
        routes::credential_json,
        routes::jwks,
        routes::issuer_profile,
        routes::status_list,
        routes::staff_list,
        routes::revoke,
        routes::grant,
        routes::payments_page,
        routes::refund,
        routes::start_proctoring,
        routes::proctoring_page,
        routes::proctoring_callback,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_and_typed_back_in_any_case() {
        let code = new_code();
        assert_eq!(code.len(), 19);
        assert_eq!(normalise_code(&code.to_lowercase().replace('-', " ")), Some(code.clone()));
        assert_eq!(normalise_code("not-a-code"), None);
        assert_eq!(normalise_code("0000-0000-0000-0000"), None, "0 is not in the alphabet");
    }
}
