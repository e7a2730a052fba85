//! Durable background work: the `jobs` table is the queue. Handlers must be
//! idempotent (a job may run again after a crash); failures retry with
//! exponential backoff and end in the `dead` state after `max_attempts`, where
//! staff can see and replay them. The worker runs inside the web process or as
//! `lyceum worker`.
//!
//! The queue knows no business area: each area names its job kinds and
//! offers the handler that runs them, and `lib.rs` registers both in a
//! [`Registry`] together with the work that is due by the clock (as
//! crates.io's `BackgroundJob` runner does). What a handler needs (a search
//! index, a mailer, a signer) it captures when it is registered.
//!
//! Claiming is one conditional UPDATE (`… WHERE id = ? AND status = 'queued'`):
//! exactly one worker wins on either backend, without backend-specific locking.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::{Conn, Db, DbError, schema::jobs};

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
    if let crate::db::DbConnection::Pg(pg) = conn {
        return claim_next_skipping_locked(pg, now);
    }
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

/// On PostgreSQL, workers do not race for the same row: each takes the
/// oldest due job that no other transaction holds (`FOR UPDATE SKIP
/// LOCKED`), so however many workers poll, none waits on another's choice or
/// gives up while jobs are due.
fn claim_next_skipping_locked(conn: &mut diesel::PgConnection, now: NaiveDateTime) -> QueryResult<Option<Job>> {
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let claimed: Option<Claimed> = diesel::sql_query(
        "UPDATE jobs SET status = $2, locked_at = $1, attempts = attempts + 1, updated_at = $1 \
         WHERE id = (SELECT id FROM jobs WHERE status = $3 AND run_at <= $1 \
                     ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id",
    )
    .bind::<diesel::sql_types::Timestamp, _>(now)
    .bind::<diesel::sql_types::Text, _>(status::RUNNING)
    .bind::<diesel::sql_types::Text, _>(status::QUEUED)
    .get_result(conn)
    .optional()?;
    match claimed {
        Some(c) => jobs::table.find(c.id).select(Job::as_select()).first(conn).optional(),
        None => Ok(None),
    }
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

pub fn recent(conn: &mut Conn, only_status: Option<&str>, offset: i64, limit: i64) -> QueryResult<Vec<Job>> {
    let mut query =
        jobs::table.select(Job::as_select()).order(jobs::id.desc()).offset(offset).limit(limit).into_boxed();
    if let Some(s) = only_status {
        query = query.filter(jobs::status.eq(s.to_string()));
    }
    query.load(conn)
}

/// Jobs not yet done, by status (queued, running, dead): the queue depth
/// and the dead letters of the operator's metrics, without counting the
/// done ones.
pub fn open_counts(conn: &mut Conn) -> QueryResult<Vec<(String, i64)>> {
    jobs::table
        .filter(jobs::status.ne(status::DONE))
        .group_by(jobs::status)
        .select((jobs::status, diesel::dsl::count_star()))
        .load(conn)
}

pub fn counts(conn: &mut Conn) -> QueryResult<Vec<(String, i64)>> {
    jobs::table.group_by(jobs::status).select((jobs::status, diesel::dsl::count_star())).load(conn)
}

/// One claimed job as its handler sees it: the id (stable across retries, so
/// a mail's Message-ID or an outbox file can be named after it) and the
/// payload it was queued with.
pub struct Run {
    pub id: i64,
    pub payload: serde_json::Value,
}

/// What a handler's run resolves to: `Err` is kept as the job's last error
/// and the job retried.
pub type Outcome = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

type Handler = Arc<dyn Fn(Run) -> Outcome + Send + Sync>;
type Task = Arc<dyn Fn(&mut Conn, NaiveDateTime) -> Result<usize, DbError> + Send + Sync>;

/// The job kinds the worker can run, each with its handler, and the work
/// that is due by the clock, in the order it runs.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Handler>,
    scheduled: Vec<Task>,
}

impl Registry {
    /// Runs jobs of `kind` with `handler`. A kind is registered once.
    pub fn handle<F, Fut>(&mut self, kind: &'static str, handler: F) -> &mut Self
    where
        F: Fn(Run) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let previous = self.handlers.insert(kind, Arc::new(move |run| Box::pin(handler(run)) as Outcome));
        assert!(previous.is_none(), "job kind {kind} registered twice");
        self
    }

    /// Runs `task` on every scheduled run (once a minute), after the tasks
    /// registered before it, in one blocking database call; it answers how
    /// many things it did.
    pub fn every_minute<F>(&mut self, task: F) -> &mut Self
    where
        F: Fn(&mut Conn, NaiveDateTime) -> Result<usize, DbError> + Send + Sync + 'static,
    {
        self.scheduled.push(Arc::new(task));
        self
    }

    /// The registered job kinds.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }
}

/// Everything a handler may use: the database and the registered handlers.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub registry: Arc<Registry>,
    /// How long a job may stay `running` before it counts as abandoned.
    pub stale_after: Duration,
}

impl Worker {
    async fn handle(&self, job: &Job) -> Result<(), String> {
        let payload: serde_json::Value = serde_json::from_str(&job.payload).map_err(|e| format!("bad payload: {e}"))?;
        match self.registry.handlers.get(job.kind.as_str()) {
            Some(handler) => handler(Run { id: job.id, payload }).await,
            None => Err(format!("no handler for job kind '{}'", job.kind)),
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

    /// Work that is due by the clock rather than queued (the registered
    /// tasks, in order); returns how many things they did.
    pub async fn run_scheduled(&self) -> Result<usize, DbError> {
        let registry = self.registry.clone();
        self.db
            .run(move |conn| {
                let now = crate::db::now();
                let mut done = 0;
                for task in &registry.scheduled {
                    done += task(conn, now)?;
                }
                Ok::<_, DbError>(done)
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
