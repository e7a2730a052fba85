//! Proctored exams (CRT-7): a quiz marked `proctored` is taken during a
//! session of a third-party proctoring service, behind `ProctoringProvider`.
//! Lyceum keeps only the service's session reference and its outcome (never
//! recordings, images or the service's notes beyond one line), and purges
//! references older than the configured period (default one year).
//!
//! The REST contract of the provided backend:
//! - `POST {base}/sessions` with `Authorization: Bearer {key}` and JSON
//!   `{"exam": {"id", "title"}, "candidate", "callback_url", "return_url"}`
//!   answers `{"id", "launch_url"}`. The candidate is a pseudonym, never a
//!   name or an email address.
//! - The outcome comes back as `POST /proctoring/callback` with JSON
//!   `{"session", "outcome": "passed" | "failed", "detail"}`, signed in the
//!   `Proctoring-Signature` header as `t=…,v1=hex(HMAC-SHA256(secret, "t.body"))`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::payments::{WebhookError, check_signature};
use crate::db::Conn;
use crate::db::schema::{certificates, course_runs, enrollments, proctoring_sessions, quiz_attempts};

pub use crate::learning::model::proctoring_status as status;

/// What the service needs to open a session.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub exam_id: String,
    pub exam_title: String,
    pub candidate: String,
    pub callback_url: String,
    pub return_url: String,
}

#[derive(Debug, Clone)]
pub struct Created {
    pub reference: String,
    pub launch_url: String,
}

/// The service's verdict on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reference: String,
    pub passed: bool,
    pub detail: String,
}

#[rocket::async_trait]
pub trait ProctoringProvider: Send + Sync {
    async fn create_session(&self, request: &SessionRequest) -> Result<Created, String>;
    /// Checks the callback's signature and parses it; `now` in Unix seconds.
    fn verify_callback(&self, signature: Option<&str>, body: &[u8], now: i64) -> Result<Outcome, WebhookError>;
}

pub struct RestProctoring {
    base: String,
    key: String,
    secret: String,
    http: reqwest::Client,
    /// Why the configured service may not be reached, if it may not.
    refused: Option<String>,
}

impl RestProctoring {
    pub fn new(base: &str, key: &str, secret: &str, outbound: &crate::net::Outbound) -> RestProctoring {
        RestProctoring {
            refused: outbound.refusal(base),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
            secret: secret.to_string(),
            http: outbound.client_builder().timeout(std::time::Duration::from_secs(20)).build().unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct CreatedBody {
    id: String,
    launch_url: String,
}

#[derive(Deserialize)]
struct CallbackBody {
    session: String,
    outcome: String,
    #[serde(default)]
    detail: String,
}

#[rocket::async_trait]
impl ProctoringProvider for RestProctoring {
    async fn create_session(&self, r: &SessionRequest) -> Result<Created, String> {
        if let Some(refused) = &self.refused {
            return Err(format!("proctoring service: {refused}"));
        }
        let body = json!({
            "exam": { "id": r.exam_id, "title": r.exam_title },
            "candidate": r.candidate,
            "callback_url": r.callback_url,
            "return_url": r.return_url,
        });
        let response = self
            .http
            .post(format!("{}/sessions", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("proctoring service: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("proctoring service answered {status}"));
        }
        let created: CreatedBody = response.json().await.map_err(|e| format!("proctoring service: {e}"))?;
        let safe = created.launch_url.starts_with("https://") || created.launch_url.starts_with("http://");
        if created.id.is_empty() || created.id.len() > 200 || !safe {
            return Err("proctoring service returned an unusable session".into());
        }
        Ok(Created { reference: created.id, launch_url: created.launch_url })
    }

    fn verify_callback(&self, signature: Option<&str>, body: &[u8], now: i64) -> Result<Outcome, WebhookError> {
        check_signature(&self.secret, signature, body, now)?;
        let b: CallbackBody = serde_json::from_slice(body).map_err(|_| WebhookError::BadEvent)?;
        let passed = match b.outcome.as_str() {
            "passed" => true,
            "failed" => false,
            _ => return Err(WebhookError::BadEvent),
        };
        Ok(Outcome { reference: b.session, passed, detail: b.detail.chars().take(200).collect() })
    }
}

/// The configured service, if any: without one, proctored exams cannot be taken.
#[derive(Clone)]
pub struct Proctoring {
    pub provider: Option<std::sync::Arc<dyn ProctoringProvider>>,
    salt: [u8; 32],
}

impl Proctoring {
    pub fn from_config(config: &crate::config::Config, site_secret: &[u8]) -> Proctoring {
        let provider: Option<std::sync::Arc<dyn ProctoringProvider>> =
            match (&config.proctoring_url, &config.proctoring_key, &config.proctoring_secret) {
                (Some(url), Some(key), Some(secret)) if !url.trim().is_empty() => {
                    Some(std::sync::Arc::new(RestProctoring::new(
                        url,
                        key,
                        secret,
                        &crate::net::Outbound::new(&config.outbound_allow).unwrap_or_default(),
                    )))
                }
                _ => None,
            };
        let salt =
            Sha256::new_with_prefix(b"lyceum proctoring candidate\0").chain_update(site_secret).finalize().into();
        Proctoring { provider, salt }
    }

    /// The pseudonym the service knows a learner by: stable per site and
    /// learner, meaningless elsewhere.
    pub fn candidate(&self, user_id: i64) -> String {
        let digest = Sha256::new_with_prefix(self.salt).chain_update(user_id.to_be_bytes()).finalize();
        format!("c-{}", hex::encode(&digest[..12]))
    }
}

/// The learner's latest session for this exam: (reference, status).
pub fn latest(conn: &mut Conn, enrollment_id: i64, block_id: i64) -> QueryResult<Option<(String, String)>> {
    proctoring_sessions::table
        .filter(proctoring_sessions::enrollment_id.eq(enrollment_id))
        .filter(proctoring_sessions::block_id.eq(block_id))
        .order(proctoring_sessions::id.desc())
        .select((proctoring_sessions::provider_ref, proctoring_sessions::status))
        .first(conn)
        .optional()
}

/// The status of the latest session of an enrollment at a quiz block
/// (learning's `ProctoringStatus`).
pub fn latest_status(conn: &mut Conn, enrollment_id: i64, block_id: i64) -> QueryResult<Option<String>> {
    Ok(latest(conn, enrollment_id, block_id)?.map(|(_, status)| status))
}

/// Answers to a proctored exam count only during (or after a passed) session.
pub fn may_submit(conn: &mut Conn, enrollment_id: i64, block_id: i64) -> QueryResult<bool> {
    Ok(latest(conn, enrollment_id, block_id)?.is_some_and(|(_, s)| s == status::OPEN || s == status::PASSED))
}

pub fn record(
    conn: &mut Conn,
    enrollment_id: i64,
    block_id: i64,
    created: &Created,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(proctoring_sessions::table)
        .values((
            proctoring_sessions::enrollment_id.eq(enrollment_id),
            proctoring_sessions::block_id.eq(block_id),
            proctoring_sessions::provider_ref.eq(&created.reference),
            proctoring_sessions::launch_url.eq(&created.launch_url),
            proctoring_sessions::status.eq(status::OPEN),
            proctoring_sessions::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Applies the service's verdict once. A failed session voids the exam's
/// attempts (scored 0), the grade is recomputed, and a certificate that no
/// longer stands is revoked. Returns false for an unknown or decided session.
pub fn apply(conn: &mut Conn, outcome: &Outcome, now: NaiveDateTime) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        let row: Option<(i64, i64, i64, String)> = proctoring_sessions::table
            .filter(proctoring_sessions::provider_ref.eq(&outcome.reference))
            .select((
                proctoring_sessions::id,
                proctoring_sessions::enrollment_id,
                proctoring_sessions::block_id,
                proctoring_sessions::status,
            ))
            .first(conn)
            .optional()?;
        let Some((id, enrollment_id, block_id, current)) = row else { return Ok(false) };
        if current != status::OPEN {
            return Ok(false);
        }
        let verdict = if outcome.passed { status::PASSED } else { status::FAILED };
        diesel::update(proctoring_sessions::table.find(id))
            .set((
                proctoring_sessions::status.eq(verdict),
                proctoring_sessions::outcome.eq(&outcome.detail),
                proctoring_sessions::decided_at.eq(now),
            ))
            .execute(conn)?;
        if outcome.passed {
            return Ok(true);
        }
        diesel::update(
            quiz_attempts::table
                .filter(quiz_attempts::enrollment_id.eq(enrollment_id))
                .filter(quiz_attempts::block_id.eq(block_id)),
        )
        .set(quiz_attempts::score.eq(0.0))
        .execute(conn)?;
        let e: crate::learning::model::Enrollment = enrollments::table
            .find(enrollment_id)
            .select(crate::learning::model::Enrollment::as_select())
            .first(conn)?;
        let run: crate::learning::model::Run =
            course_runs::table.find(e.run_id).select(crate::learning::model::Run::as_select()).first(conn)?;
        crate::learning::service::recompute_grade(
            conn,
            enrollment_id,
            &run,
            run.course_id,
            now,
            super::on_passing_grade,
        )
        .map_err(|err| diesel::result::Error::QueryBuilderError(err.to_string().into()))?;
        let still_passes: bool = enrollments::table.find(enrollment_id).select(enrollments::passed).first(conn)?;
        if !still_passes {
            diesel::update(
                certificates::table
                    .filter(certificates::user_id.eq(e.user_id))
                    .filter(certificates::run_id.eq(e.run_id))
                    .filter(certificates::revoked_at.is_null()),
            )
            .set((
                certificates::revoked_at.eq(now),
                certificates::revoked_reason.eq("The proctoring review of an exam found a violation."),
            ))
            .execute(conn)?;
        }
        Ok(true)
    })
}

/// Session references older than `days` go (CRT-7); 0 keeps them.
pub fn purge(conn: &mut Conn, days: i64, now: NaiveDateTime, dry_run: bool) -> QueryResult<usize> {
    if days <= 0 {
        return Ok(0);
    }
    let old = proctoring_sessions::table.filter(proctoring_sessions::created_at.le(now - Duration::days(days)));
    if dry_run { Ok(old.count().get_result::<i64>(conn)? as usize) } else { diesel::delete(old).execute(conn) }
}
