//! Account erasure (RGT-2).
//!
//! Asking (with the password) starts a cool-off (`LYCEUM_ERASURE_COOL_OFF_DAYS`,
//! 7 by default) during which the learner can still sign in and cancel. Then
//! the scheduled worker runs the retirement as an ordered state machine of
//! `STEPS`. Each step is one transaction that also advances `next_step`, so a
//! crash or failure resumes at the step that did not finish, and every step
//! leaves a line in `erasure_log`. A failed step is retried with a growing
//! delay and shown to staff. The steps' work on the areas' tables is done
//! by each area's `erase_user` hook (`crate::lifecycle`), in the order of
//! `privacy::AREAS`, inside the step's transaction. Before every step the
//! account's legal hold is checked (RET-3): a hold parks the erasure as
//! `held`, says so in the log, and lifting the hold resumes it.
//!
//! What is kept, and why (the retention rules name these records):
//! - the `users` row, with every personal field replaced (`retired-<id>`), so
//!   that records kept below still point at an id and nothing else;
//! - the audit log's entries and the subjects they name, by user id (the
//!   query strings that selected the learner are deleted: they could hold
//!   their username or email);
//! - the consent ledger (evidence of every sharing decision; hash-chained,
//!   never changed) and the disclosures (what was given to whom, when);
//! - the data request and this erasure's log (proof the request was answered);
//! - forum posts under a "former member" placeholder, bodies (and the titles
//!   of the threads the learner opened) blanked when
//!   `LYCEUM_ERASURE_BLANK_POSTS` is set (FRM-4).
//!
//! What goes must also be unreadable: mail files naming the learner are
//! deleted, and on SQLite deleted rows are zeroed (`secure_delete`) and the
//! write-ahead log is checkpointed and cut once an erasure finishes
//! (docs/PRIVACY.md).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::{PResult, PrivacyError, kind, source, status as request_status};
use crate::db::Conn;
use crate::db::schema::{erasure_log, erasures, users};
use crate::lifecycle::{Erased, Erasing, Step};
use crate::storage::BlobStore;

pub mod state {
    /// In the cool-off, or due to (re)try at `run_after`.
    pub const WAITING: &str = "waiting";
    pub const RUNNING: &str = "running";
    /// Parked by a legal hold.
    pub const HELD: &str = "held";
    pub const DONE: &str = "done";
    pub const CANCELLED: &str = "cancelled";
}

/// The steps, in order. Their names are what the log and the staff page show.
pub const STEPS: [&str; 7] = [
    "sign_out",
    "withdraw_consents",
    "notify_partners",
    "pseudonymise_posts",
    "delete_personal_data",
    "retire_account",
    "close_request",
];

/// A `running` erasure not touched for this long was abandoned by a crashed worker.
const STALE_MINUTES: i64 = 30;

/// What the worker needs to run erasures.
pub struct Settings<'a> {
    pub blank_posts: bool,
    pub blobs: &'a dyn BlobStore,
    /// The mail file outbox (`data_dir/outbox`).
    pub outbox: &'a std::path::Path,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = erasures)]
pub struct Erasure {
    pub id: i64,
    pub request_id: i64,
    pub user_id: i64,
    pub state: String,
    pub next_step: i32,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub run_after: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = erasure_log)]
pub struct LogLine {
    pub id: i64,
    pub erasure_id: i64,
    pub step: String,
    pub outcome: String,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

const OPEN: [&str; 3] = [state::WAITING, state::RUNNING, state::HELD];

/// The erasure in flight for an account, if any.
pub fn open_for(conn: &mut Conn, user_id: i64) -> QueryResult<Option<Erasure>> {
    erasures::table
        .filter(erasures::user_id.eq(user_id))
        .filter(erasures::state.eq_any(OPEN))
        .select(Erasure::as_select())
        .first(conn)
        .optional()
}

fn already(e: &Erasure) -> PrivacyError {
    PrivacyError::Invalid(format!(
        "You asked for your account to be deleted already, on {}. Nothing more is needed: it will be deleted from {}{}.",
        e.created_at.format("%e %B %Y"),
        e.run_after.format("%e %B %Y"),
        if e.next_step == 0 { ", and you can cancel until then" } else { "" }
    ))
}

/// The learner asks for erasure; returns when it will run. A second request
/// while one is open changes nothing and says so.
pub fn request(conn: &mut Conn, user_id: i64, cool_off_days: i64, now: NaiveDateTime) -> PResult<NaiveDateTime> {
    let run_after = now + Duration::days(cool_off_days.max(0));
    let details = "Delete my account, asked for on the site.";
    start(conn, user_id, source::SELF_SERVICE, details, run_after, true, now)?;
    Ok(run_after)
}

/// Records an erasure request and schedules the erasure at `run_after`,
/// emailing the learner when `tell` (with the date and how to cancel).
pub fn start(
    conn: &mut Conn,
    user_id: i64,
    source: &str,
    details: &str,
    run_after: NaiveDateTime,
    tell: bool,
    now: NaiveDateTime,
) -> PResult<i64> {
    if let Some(open) = open_for(conn, user_id)? {
        return Err(already(&open));
    }
    let inserted = crate::db::transaction(conn, |conn| {
        let request_id = super::open_request(conn, Some(user_id), kind::ERASURE, source, details, None, now)?;
        let id = diesel::insert_into(erasures::table)
            .values((
                erasures::request_id.eq(request_id),
                erasures::user_id.eq(user_id),
                erasures::state.eq(state::WAITING),
                erasures::next_step.eq(0),
                erasures::attempts.eq(0),
                erasures::run_after.eq(run_after),
                erasures::created_at.eq(now),
                erasures::updated_at.eq(now),
            ))
            .returning(erasures::id)
            .get_result(conn)?;
        if tell {
            let (email, username): (String, String) =
                users::table.find(user_id).select((users::email, users::username)).first(conn)?;
            crate::notify::enqueue_email(
                conn,
                &email,
                "Your Lyceum account will be deleted",
                "erasure_scheduled",
                json!({ "username": username, "when": run_after.format("%e %B %Y").to_string() }),
            )?;
        }
        Ok::<_, diesel::result::Error>(id)
    });
    match inserted {
        Ok(id) => Ok(id),
        // Two requests at once: the unique index lets one through.
        Err(e) if crate::db::is_unique_violation(&e) => {
            Err(open_for(conn, user_id)?.map(|e| already(&e)).unwrap_or(PrivacyError::Db(e)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Cancels an erasure that has not started.
pub fn cancel(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> PResult<()> {
    let open = open_for(conn, user_id)?
        .ok_or_else(|| PrivacyError::Invalid("There is no deletion of your account to cancel.".into()))?;
    if open.next_step > 0 || open.state == state::RUNNING {
        return Err(PrivacyError::Invalid(
            "The deletion of your account has started and can no longer be cancelled.".into(),
        ));
    }
    crate::db::transaction(conn, |conn| {
        let n = diesel::update(erasures::table.find(open.id).filter(erasures::next_step.eq(0)))
            .set((erasures::state.eq(state::CANCELLED), erasures::updated_at.eq(now), erasures::finished_at.eq(now)))
            .execute(conn)?;
        if n == 1 {
            super::set_request_status(
                conn,
                open.request_id,
                request_status::CANCELLED,
                Some("Cancelled by the learner."),
                now,
            )?;
            log(conn, open.id, "cancel", "done", "Cancelled by the learner during the cool-off.", now)?;
        }
        Ok(())
    })
}

fn log(
    conn: &mut Conn,
    erasure_id: i64,
    step: &str,
    outcome: &str,
    detail: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(erasure_log::table)
        .values((
            erasure_log::erasure_id.eq(erasure_id),
            erasure_log::step.eq(step),
            erasure_log::outcome.eq(outcome),
            erasure_log::detail.eq(detail),
            erasure_log::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// The log lines of these erasures, in order, in one query.
pub fn logs_of(conn: &mut Conn, erasure_ids: &[i64]) -> QueryResult<Vec<LogLine>> {
    erasure_log::table
        .filter(erasure_log::erasure_id.eq_any(erasure_ids))
        .order(erasure_log::id.asc())
        .select(LogLine::as_select())
        .load(conn)
}

/// A page of the erasures for the staff page with the account's current
/// username: open ones, then the latest finished; `limit` rows from `offset`.
pub fn page(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<(Erasure, String)>> {
    erasures::table
        .inner_join(users::table.on(erasures::user_id.eq(users::id)))
        .order((erasures::finished_at.is_not_null(), erasures::id.desc()))
        .offset(offset)
        .limit(limit)
        .select((Erasure::as_select(), users::username))
        .load(conn)
}

/// Runs every erasure that is due; returns how many finished.
pub fn run_due(conn: &mut Conn, settings: &Settings<'_>, now: NaiveDateTime) -> QueryResult<usize> {
    let stale = now - Duration::minutes(STALE_MINUTES);
    let due: Vec<i64> = erasures::table
        .filter(
            erasures::state
                .eq(state::WAITING)
                .and(erasures::run_after.le(now))
                .or(erasures::state.eq(state::RUNNING).and(erasures::updated_at.lt(stale))),
        )
        .order(erasures::id.asc())
        .select(erasures::id)
        .load(conn)?;
    let mut finished = 0;
    for id in due {
        // Claimed with a conditional update, so two workers never run one erasure.
        let claimed = diesel::update(
            erasures::table.find(id).filter(
                erasures::state
                    .eq(state::WAITING)
                    .and(erasures::run_after.le(now))
                    .or(erasures::state.eq(state::RUNNING).and(erasures::updated_at.lt(stale))),
            ),
        )
        .set((erasures::state.eq(state::RUNNING), erasures::updated_at.eq(now)))
        .execute(conn)?;
        if claimed == 1 && advance(conn, settings, id, now)? {
            finished += 1;
        }
    }
    if finished > 0 {
        crate::db::checkpoint(conn)?;
    }
    Ok(finished)
}

/// Runs the remaining steps of one claimed erasure; true when it finished.
fn advance(conn: &mut Conn, settings: &Settings<'_>, id: i64, now: NaiveDateTime) -> QueryResult<bool> {
    loop {
        let e: Erasure = erasures::table.find(id).select(Erasure::as_select()).first(conn)?;
        let Some(step) = STEPS.get(e.next_step as usize).copied() else {
            return Ok(true);
        };
        if let Some(hold) = super::active_hold(conn, e.user_id)? {
            crate::db::transaction(conn, |conn| {
                diesel::update(erasures::table.find(id))
                    .set((erasures::state.eq(state::HELD), erasures::updated_at.eq(now)))
                    .execute(conn)?;
                log(
                    conn,
                    id,
                    step,
                    "held",
                    &format!("Stopped by a legal hold placed {}: {}", hold.placed_at.format("%e %b %Y"), hold.reason),
                    now,
                )
            })?;
            return Ok(false);
        }
        let result = crate::db::transaction(conn, |conn| {
            let detail = run_step(conn, settings, &e, step, now)?;
            let last = e.next_step as usize + 1 == STEPS.len();
            diesel::update(erasures::table.find(id))
                .set((
                    erasures::next_step.eq(e.next_step + 1),
                    erasures::last_error.eq(None::<String>),
                    erasures::updated_at.eq(now),
                    erasures::state.eq(if last { state::DONE } else { state::RUNNING }),
                    erasures::finished_at.eq(last.then_some(now)),
                ))
                .execute(conn)?;
            log(conn, id, step, "done", &detail, now)?;
            Ok::<_, diesel::result::Error>(last)
        });
        match result {
            Ok(true) => return Ok(true),
            Ok(false) => continue,
            Err(error) => {
                let attempts = e.attempts + 1;
                let retry = now + Duration::minutes(5 * i64::from(attempts.min(12)));
                tracing::warn!(erasure = id, step, attempts, %error, "erasure step failed; retried later");
                crate::db::transaction(conn, |conn| {
                    diesel::update(erasures::table.find(id))
                        .set((
                            erasures::state.eq(state::WAITING),
                            erasures::attempts.eq(attempts),
                            erasures::last_error.eq(format!("{step}: {error}")),
                            erasures::run_after.eq(retry),
                            erasures::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    log(
                        conn,
                        id,
                        step,
                        "failed",
                        &format!("{error}; retried from {}", retry.format("%e %b %Y %H:%M")),
                        now,
                    )
                })?;
                return Ok(false);
            }
        }
    }
}

/// The areas' part in each step, by its name in `STEPS` (closing the request is privacy's own).
fn area_step(step: &str) -> Option<Step> {
    Some(match step {
        "sign_out" => Step::SignOut,
        "withdraw_consents" => Step::WithdrawConsents,
        "notify_partners" => Step::NotifyPartners,
        "pseudonymise_posts" => Step::PseudonymisePosts,
        "delete_personal_data" => Step::DeletePersonalData,
        "retire_account" => Step::RetireAccount,
        _ => return None,
    })
}

/// One step; returns the line for the log. Every step can run again safely.
/// Each area's `erase_user` hook does its part, in the order of `AREAS`.
fn run_step(
    conn: &mut Conn,
    settings: &Settings<'_>,
    e: &Erasure,
    step: &str,
    now: NaiveDateTime,
) -> QueryResult<String> {
    if step == "close_request" {
        super::set_request_status(conn, e.request_id, request_status::DONE, Some("Account erased."), now)?;
        return Ok("Request marked done.".into());
    }
    let Some(area_step) = area_step(step) else {
        return Err(diesel::result::Error::QueryBuilderError(format!("unknown erasure step {step}").into()));
    };
    let (email, username): (String, String) =
        users::table.find(e.user_id).select((users::email, users::username)).first(conn)?;
    let erasing = Erasing {
        step: area_step,
        user_id: e.user_id,
        request_id: e.request_id,
        email: &email,
        username: &username,
        blank_posts: settings.blank_posts,
        blobs: settings.blobs,
        outbox: settings.outbox,
        now,
    };
    let mut total = Erased::default();
    let mut details = Vec::new();
    for area in super::AREAS {
        let Some(erase_user) = area.erase_user else { continue };
        let done = erase_user(conn, &erasing)?;
        total.records += done.records;
        total.files += done.files;
        total.mails += done.mails;
        details.extend(done.detail);
    }
    Ok(if area_step == Step::DeletePersonalData {
        format!("{} record(s), {} file(s) and {} mail file(s) deleted.", total.records, total.files, total.mails)
    } else {
        details.join(" ")
    })
}
