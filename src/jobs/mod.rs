//! Durable background work: the `jobs` table is the queue. Handlers must be
//! idempotent (a job may run again after a crash); failures retry with
//! exponential backoff and end in the `dead` state after `max_attempts`, where
//! staff can see and replay them. The worker runs inside the web process or as
//! `lyceum worker`.
//!
//! Claiming is one conditional UPDATE (`… WHERE id = ? AND status = 'queued'`):
//! exactly one worker wins on either backend, without backend-specific locking.

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::{Conn, Db, DbError, schema::jobs};
use crate::notify::Mailer;

pub mod lifecycle;

pub mod status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const DEAD: &str = "dead";
}

pub const DEFAULT_MAX_ATTEMPTS: i32 = 6;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: NaiveDateTime,
    pub locked_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

/// Adds a job in the caller's transaction, so it exists exactly when the
/// change that caused it was committed.
pub fn enqueue(conn: &mut Conn, kind: &str, payload: &serde_json::Value) -> QueryResult<i64> {
    enqueue_with_attempts(conn, kind, payload, DEFAULT_MAX_ATTEMPTS)
}

/// As [`enqueue`], for a job that may fail `max_attempts` times before it is dead.
pub fn enqueue_with_attempts(
    conn: &mut Conn,
    kind: &str,
    payload: &serde_json::Value,
    max_attempts: i32,
) -> QueryResult<i64> {
    let now = crate::db::now();
    diesel::insert_into(jobs::table)
        .values((
            jobs::kind.eq(kind),
            jobs::payload.eq(payload.to_string()),
            jobs::status.eq(status::QUEUED),
            jobs::attempts.eq(0),
            jobs::max_attempts.eq(max_attempts),
            jobs::run_at.eq(now),
            jobs::created_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .returning(jobs::id)
        .get_result(conn)
}

/// Delay before attempt `n + 1`: 30 s, 1 min, 2 min, … capped at 1 hour.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 8) as u32 - 1;
    Duration::seconds((30i64 << exp).min(3600))
}

/// Claims the next due job. A `running` job locked longer than `stale_after`
/// was abandoned by a crashed worker and is queued again first.
fn claim_next(conn: &mut Conn, now: NaiveDateTime, stale_after: Duration) -> QueryResult<Option<Job>> {
    diesel::update(jobs::table.filter(jobs::status.eq(status::RUNNING)).filter(jobs::locked_at.lt(now - stale_after)))
        .set((jobs::status.eq(status::QUEUED), jobs::locked_at.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    for _ in 0..5 {
        let candidate: Option<i64> = jobs::table
            .filter(jobs::status.eq(status::QUEUED))
            .filter(jobs::run_at.le(now))
            .order((jobs::run_at.asc(), jobs::id.asc()))
            .select(jobs::id)
            .first(conn)
            .optional()?;
        let Some(id) = candidate else { return Ok(None) };
        let won = diesel::update(jobs::table.find(id).filter(jobs::status.eq(status::QUEUED)))
            .set((
                jobs::status.eq(status::RUNNING),
                jobs::locked_at.eq(now),
                jobs::attempts.eq(jobs::attempts + 1),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)?;
        if won == 1 {
            return jobs::table.find(id).select(Job::as_select()).first(conn).optional();
        }
    }
    Ok(None)
}

fn finish(conn: &mut Conn, job: &Job, outcome: Result<(), String>, now: NaiveDateTime) -> QueryResult<()> {
    match outcome {
        Ok(()) => diesel::update(jobs::table.find(job.id))
            .set((
                jobs::status.eq(status::DONE),
                jobs::finished_at.eq(now),
                jobs::updated_at.eq(now),
                jobs::locked_at.eq(None::<NaiveDateTime>),
                jobs::last_error.eq(None::<String>),
                // A finished job keeps no personal data (links, addresses).
                jobs::payload.eq("{}"),
            ))
            .execute(conn)
            .map(|_| ()),
        Err(error) => {
            let dead = job.attempts >= job.max_attempts;
            diesel::update(jobs::table.find(job.id))
                .set((
                    jobs::status.eq(if dead { status::DEAD } else { status::QUEUED }),
                    jobs::run_at.eq(now + backoff(job.attempts)),
                    jobs::last_error.eq(error.chars().take(2000).collect::<String>()),
                    jobs::updated_at.eq(now),
                    jobs::locked_at.eq(None::<NaiveDateTime>),
                    jobs::finished_at.eq(if dead { Some(now) } else { None }),
                ))
                .execute(conn)
                .map(|_| ())
        }
    }
}

/// Puts a dead (or waiting) job back at the front of the queue with fresh attempts.
pub fn retry(conn: &mut Conn, id: i64) -> QueryResult<bool> {
    let now = crate::db::now();
    let n = diesel::update(
        jobs::table.find(id).filter(jobs::status.ne(status::RUNNING)).filter(jobs::status.ne(status::DONE)),
    )
    .set((
        jobs::status.eq(status::QUEUED),
        jobs::attempts.eq(0),
        jobs::run_at.eq(now),
        jobs::finished_at.eq(None::<NaiveDateTime>),
        jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn recent(conn: &mut Conn, only_status: Option<&str>, limit: i64) -> QueryResult<Vec<Job>> {
    let mut query = jobs::table.select(Job::as_select()).order(jobs::id.desc()).limit(limit).into_boxed();
    if let Some(s) = only_status {
        query = query.filter(jobs::status.eq(s.to_string()));
    }
    query.load(conn)
}

pub fn counts(conn: &mut Conn) -> QueryResult<Vec<(String, i64)>> {
    jobs::table.group_by(jobs::status).select((jobs::status, diesel::dsl::count_star())).load(conn)
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub mailer: Arc<Mailer>,
    pub search: Arc<dyn crate::search::SearchIndex>,
    pub forum_search: Arc<dyn crate::search::SearchIndex<crate::search::ThreadDocument>>,
    /// The site's public URL, for links in what jobs send.
    pub base_url: String,
    /// Where pushes to partners may connect.
    pub outbound: crate::net::Outbound,
    pub blobs: Arc<dyn crate::storage::BlobStore>,
    /// Blank an erased learner's forum posts rather than keep their text.
    pub erasure_blank_posts: bool,
    pub retention: crate::privacy::retention::Periods,
    /// The mail file outbox, whose files erasure and retention remove.
    pub outbox: std::path::PathBuf,
    /// Signs unsubscribe and tracking links in newsletters.
    pub signer: crate::privacy::comms::LinkSigner,
    /// The site banner announcing a material policy change, refreshed each scheduled run.
    pub policy_banner: crate::privacy::policies::Banner,
    /// Breach notices in force, shown on the home page.
    pub notices: crate::privacy::notices::Notices,
    /// How long a job may stay `running` before it counts as abandoned.
    pub stale_after: Duration,
}

impl Worker {
    async fn handle(&self, job: &Job) -> Result<(), String> {
        let payload: serde_json::Value = serde_json::from_str(&job.payload).map_err(|e| format!("bad payload: {e}"))?;
        match job.kind.as_str() {
            crate::notify::SEND_EMAIL => {
                let mailer = self.mailer.clone();
                let job_id = job.id;
                tokio::task::spawn_blocking(move || mailer.deliver(job_id, &payload))
                    .await
                    .map_err(|e| e.to_string())?
            }
            crate::learning::authoring::INDEX_COURSE => {
                let id = payload["course_id"].as_i64().ok_or("payload has no course_id")?;
                let doc = self
                    .db
                    .run(move |conn| crate::learning::catalog::document(conn, id).map_err(DbError::from))
                    .await
                    .map_err(|e| e.to_string())?;
                match doc {
                    Some((true, doc)) => self.search.upsert(vec![doc]).await.map_err(|e| e.to_string()),
                    _ => self.search.remove(id).await.map_err(|e| e.to_string()),
                }
            }
            crate::forums::search::INDEX_THREAD => {
                let id = payload["thread_id"].as_i64().ok_or("payload has no thread_id")?;
                let doc = self
                    .db
                    .run(move |conn| crate::forums::search::document(conn, id).map_err(DbError::from))
                    .await
                    .map_err(|e| e.to_string())?;
                match doc {
                    Some(doc) => self.forum_search.upsert(vec![doc]).await.map_err(|e| e.to_string()),
                    None => self.forum_search.remove(id).await.map_err(|e| e.to_string()),
                }
            }
            crate::privacy::comms::SEND_NEWSLETTER => {
                let campaign = payload["campaign_id"].as_i64().ok_or("payload has no campaign_id")?;
                let user = payload["user_id"].as_i64().ok_or("payload has no user_id")?;
                let (signer, base_url) = (self.signer.clone(), self.base_url.clone());
                let mail = self
                    .db
                    .run(move |conn| {
                        crate::privacy::comms::newsletter_payload(
                            conn,
                            &signer,
                            &base_url,
                            campaign,
                            user,
                            crate::db::now(),
                        )
                        .map_err(DbError::from)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                match mail {
                    // Withdrawn since the campaign was sent: nothing goes out.
                    None => Ok(()),
                    Some(mail) => {
                        let mailer = self.mailer.clone();
                        let job_id = job.id;
                        tokio::task::spawn_blocking(move || mailer.deliver(job_id, &mail))
                            .await
                            .map_err(|e| e.to_string())?
                    }
                }
            }
            crate::privacy::export::EXPORT => {
                let id = payload["export_id"].as_i64().ok_or("payload has no export_id")?;
                let blobs = self.blobs.clone();
                let base_url = self.base_url.clone();
                self.db
                    .run(move |conn| Ok::<_, DbError>(crate::privacy::export::run(conn, blobs.as_ref(), id, &base_url)))
                    .await
                    .map_err(|e| e.to_string())?
            }
            crate::consent::push::PUSH => {
                let id = payload["send_id"].as_i64().ok_or("payload has no send_id")?;
                crate::consent::push::deliver(&self.db, id, &self.base_url, &self.outbound).await
            }
            other => Err(format!("no handler for job kind '{other}'")),
        }
    }

    /// Runs due jobs until none is left; returns how many ran.
    pub async fn run_due(&self) -> Result<usize, DbError> {
        let mut ran = 0;
        loop {
            let stale = self.stale_after;
            let next =
                self.db.run(move |conn| claim_next(conn, crate::db::now(), stale).map_err(DbError::from)).await?;
            let Some(job) = next else { return Ok(ran) };
            let outcome = self.handle(&job).await;
            if let Err(e) = &outcome {
                tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %e, "job failed");
            }
            self.db.run(move |conn| finish(conn, &job, outcome, crate::db::now()).map_err(DbError::from)).await?;
            ran += 1;
        }
    }

    /// Work that is due by the clock rather than queued: run-start
    /// reminders, partner pushes whose slot has come, erasures whose
    /// cool-off is over and data copies whose link expired.
    pub async fn run_scheduled(&self) -> Result<usize, DbError> {
        let blobs = self.blobs.clone();
        let blank_posts = self.erasure_blank_posts;
        let retention = self.retention;
        let banner = self.policy_banner.clone();
        let notices = self.notices.clone();
        let outbox = self.outbox.clone();
        self.db
            .run(move |conn| {
                let now = crate::db::now();
                banner.refresh(conn, now)?;
                notices.refresh(conn)?;
                let reminders = crate::learning::service::send_start_reminders(conn, now)?
                    + crate::orgs::send_due_reminders(conn, now)?;
                let pushes = crate::consent::push::schedule_due(conn, now)?;
                let settings =
                    crate::privacy::erasure::Settings { blank_posts, blobs: blobs.as_ref(), outbox: &outbox };
                // Retention first: an account it hands to erasure is erased in the same run.
                let retained = crate::privacy::retention::run(conn, &retention, &outbox, now, false)?;
                let erased = crate::privacy::erasure::run_due(conn, &settings, now)?;
                let expired = crate::privacy::export::expire(conn, blobs.as_ref(), now)?;
                for line in retained.iter().filter(|line| line.count > 0) {
                    tracing::info!(category = line.category, count = line.count, "retention: {}", line.action);
                }
                Ok::<_, DbError>(reminders + pushes + erased + expired)
            })
            .await
    }

    /// The worker loop: polls once a second, checks the clock once a minute.
    pub async fn run_forever(self) {
        let mut tick = 0u64;
        loop {
            if tick.is_multiple_of(60)
                && let Err(e) = self.run_scheduled().await
            {
                tracing::error!(error = %e, "scheduled work");
            }
            tick += 1;
            if let Err(e) = self.run_due().await {
                tracing::error!(error = %e, "job worker");
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(2), Duration::seconds(60));
        assert_eq!(backoff(20), Duration::seconds(3600));
    }
}
