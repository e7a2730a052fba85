//! Privacy rights (RGT-1, RGT-2, RGT-5) and legal holds (RET-3).
//!
//! Every request a person makes about their data — a copy, erasure,
//! rectification, restriction, objection — is a `data_requests` row with the
//! date it was received, the date it is due (30 days later) and the date it
//! was answered, whether the learner made it on the site or staff entered one
//! that arrived by email. Copies are built by a job (`export`); erasure is a
//! cancellable cool-off followed by an ordered, resumable run of steps
//! (`erasure`). A legal hold on an account stops every deletion for it until
//! staff lift it, each with a reason.

pub mod appointments;
pub mod audit;
pub mod comms;
pub mod cookies;
pub mod erasure;
pub mod export;
pub mod jobs;
pub mod lifecycle;
pub mod notices;
pub mod policies;
pub mod profiling;
pub mod retention;
pub mod routes;
pub mod support;
pub mod surveys;
pub mod vault;
pub mod views;

use std::sync::{Arc, RwLock};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::Conn;
use crate::db::schema::{data_requests, erasures, legal_holds, users};
use crate::lifecycle::AreaHooks;

/// Every area's lifecycle hooks, the one list that erasure, the copy of a
/// learner's data and retention run, in this order (see `crate::lifecycle`).
/// An area not listed here is neither erased nor exported nor expired.
pub const AREAS: &[AreaHooks] = &[
    crate::accounts::lifecycle::HOOKS,
    crate::learning::lifecycle::HOOKS,
    crate::consent::lifecycle::HOOKS,
    crate::exams::lifecycle::HOOKS,
    crate::certificates::lifecycle::HOOKS,
    crate::forums::lifecycle::HOOKS,
    lifecycle::HOOKS,
    crate::notify::lifecycle::HOOKS,
];

/// Something every page (or the home page) shows, computed from the database
/// when it changes rather than on every request.
pub struct Shown<T>(Arc<RwLock<Option<T>>>);

impl<T> Clone for Shown<T> {
    fn clone(&self) -> Self {
        Shown(self.0.clone())
    }
}

impl<T> Default for Shown<T> {
    fn default() -> Self {
        Shown(Arc::new(RwLock::new(None)))
    }
}

impl<T: Clone> Shown<T> {
    pub fn set(&self, value: Option<T>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = value;
        }
    }

    pub fn get(&self) -> Option<T> {
        self.0.read().ok().and_then(|v| v.clone())
    }
}

/// How long a change that another instance made to what every page shows
/// (a material policy change's banner, breach notices, the policies an open
/// session must accept) may go unseen here.
pub const SHARED_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps this process's copies of what every page shows (the policy
/// banner, the breach notices, the policies an open session must accept) in
/// step with the database when another instance changes them: every
/// [`SHARED_RECHECK`] they are read again, in the background, so no request
/// waits for it. The instance that makes a change refreshes at once.
pub struct SharedRecheck {
    pub db: crate::db::Db,
    pub banner: policies::Banner,
    pub notices: notices::Notices,
    pub required: policies::Required,
}

#[rocket::async_trait]
impl rocket::fairing::Fairing for SharedRecheck {
    fn info(&self) -> rocket::fairing::Info {
        rocket::fairing::Info { name: "shared page state recheck", kind: rocket::fairing::Kind::Liftoff }
    }

    async fn on_liftoff(&self, rocket: &rocket::Rocket<rocket::Orbit>) {
        let (db, banner, notices, required) =
            (self.db.clone(), self.banner.clone(), self.notices.clone(), self.required.clone());
        let mut shutdown = rocket.shutdown();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SHARED_RECHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate; start-up has just read them
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tick.tick() => {}
                }
                let (banner, notices, required) = (banner.clone(), notices.clone(), required.clone());
                let read = db
                    .run(move |conn| {
                        banner.refresh(conn, crate::db::now())?;
                        notices.refresh(conn)?;
                        required.refresh(conn)?;
                        Ok::<_, crate::db::DbError>(())
                    })
                    .await;
                if let Err(e) = read {
                    tracing::warn!(error = %e, "could not recheck the policy banner and notices");
                }
            }
        });
    }
}

/// Days the operator has to answer a request.
pub const DUE_DAYS: i64 = 30;

/// What a request asks for.
pub mod kind {
    pub const EXPORT: &str = "export";
    pub const ERASURE: &str = "erasure";
    pub const RECTIFICATION: &str = "rectification";
    pub const RESTRICTION: &str = "restriction";
    pub const OBJECTION: &str = "objection";
    /// Lifting a restriction is a request of its own, with its own dates.
    pub const RESTRICTION_LIFTED: &str = "restriction_lifted";
    /// Withdrawing an objection, likewise.
    pub const OBJECTION_WITHDRAWN: &str = "objection_withdrawn";
    pub const ALL: [&str; 7] =
        [EXPORT, ERASURE, RECTIFICATION, RESTRICTION, RESTRICTION_LIFTED, OBJECTION, OBJECTION_WITHDRAWN];
}

/// How a request reached the operator.
pub mod source {
    pub const SELF_SERVICE: &str = "self_service";
    pub const EMAIL: &str = "email";
    pub const POST: &str = "post";
    pub const PHONE: &str = "phone";
    /// Started by the retention rules, not by a person.
    pub const RETENTION: &str = "retention";
    /// Asked by the person's organization, the controller of their record (SHR-7).
    pub const ORGANIZATION: &str = "organization";
    /// Carried out by staff for the person, who asked by email, post or
    /// phone; the details hold staff's note of why and how.
    pub const STAFF: &str = "staff";
    pub const STAFF_ENTRY: &[&str] = &[EMAIL, POST, PHONE];
}

pub mod status {
    pub const RECEIVED: &str = "received";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const DONE: &str = "done";
    pub const CANCELLED: &str = "cancelled";
    pub const REFUSED: &str = "refused";
    pub const CLOSED: [&str; 3] = [DONE, CANCELLED, REFUSED];
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Gone(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub type PResult<T> = Result<T, PrivacyError>;

impl From<PrivacyError> for crate::web::AppError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::Invalid(m) => crate::web::AppError::Unprocessable(m),
            PrivacyError::NotFound => crate::web::AppError::NotFound,
            PrivacyError::Gone(m) => crate::web::AppError::Gone(m),
            PrivacyError::Db(e) => crate::web::AppError::from(e),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = data_requests)]
pub struct DataRequest {
    pub id: i64,
    pub user_id: Option<i64>,
    pub kind: String,
    pub source: String,
    pub details: String,
    pub status: String,
    pub outcome: Option<String>,
    pub entered_by: Option<i64>,
    pub received_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub done_at: Option<NaiveDateTime>,
}

/// Records a request; returns its id.
pub fn open_request(
    conn: &mut Conn,
    user_id: Option<i64>,
    kind: &str,
    source: &str,
    details: &str,
    entered_by: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(data_requests::table)
        .values((
            data_requests::user_id.eq(user_id),
            data_requests::kind.eq(kind),
            data_requests::source.eq(source),
            data_requests::details.eq(details),
            data_requests::status.eq(status::RECEIVED),
            data_requests::entered_by.eq(entered_by),
            data_requests::received_at.eq(now),
            data_requests::due_at.eq(now + Duration::days(DUE_DAYS)),
        ))
        .returning(data_requests::id)
        .get_result(conn)
}

/// Records a request that was carried out as it was made (a self-service
/// restriction or objection, or staff acting at once for the person): received
/// and done at `now`, with what was done. When the person has an open request
/// of the same kind (one staff entered from an email, say), that one is
/// answered instead of a second one recorded beside it. Returns its id.
#[allow(clippy::too_many_arguments)]
pub fn record_carried_out(
    conn: &mut Conn,
    user_id: i64,
    kind: &str,
    source: &str,
    details: &str,
    outcome: &str,
    entered_by: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    crate::db::transaction(conn, |conn| {
        let open: Option<i64> = data_requests::table
            .filter(data_requests::user_id.eq(user_id))
            .filter(data_requests::kind.eq(kind))
            .filter(data_requests::status.ne_all(status::CLOSED))
            .order(data_requests::id.asc())
            .select(data_requests::id)
            .first(conn)
            .optional()?;
        let id = match open {
            Some(id) => id,
            None => open_request(conn, Some(user_id), kind, source, details, entered_by, now)?,
        };
        set_request_status(conn, id, status::DONE, Some(outcome), now)?;
        Ok(id)
    })
}

/// A restriction of all of a learner's sharing, or its lifting, recorded as
/// a data request carried out at once (RGT-5; consent's
/// `RestrictionCarriedOut`): the learner's own from the sharing page, or
/// staff's for the learner with their note.
pub fn restriction_carried_out(
    conn: &mut Conn,
    user_id: i64,
    on: bool,
    evidence: &crate::consent::ledger::Evidence,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let (kind, asked, outcome) = if on {
        (
            kind::RESTRICTION,
            "Restriction of all sharing with partners",
            "All sharing frozen: no partner receives anything until the restriction is lifted, and each \
             partner that received data is told to delete it.",
        )
    } else {
        (
            kind::RESTRICTION_LIFTED,
            "Lifting of the restriction of sharing",
            "Restriction lifted: the consents in force apply again.",
        )
    };
    let (source, details, entered_by) = match (evidence.actor, &evidence.note) {
        ("staff", note) => (
            source::STAFF,
            format!("{asked}, carried out by staff for the learner. Note: {}", note.as_deref().unwrap_or("")),
            evidence.actor_user_id,
        ),
        _ => (source::SELF_SERVICE, format!("{asked}, made by the learner on the sharing page."), None),
    };
    record_carried_out(conn, user_id, kind, source, &details, outcome, entered_by, now)?;
    Ok(())
}

/// Serialises changes to one person's choices (an objection): two clicks that
/// race each other see one another's outcome, not the same old state. A
/// no-key lock, so rows that refer to the account are not held up. SQLite's
/// write transactions are serial already.
pub fn lock_person(conn: &mut Conn, user_id: i64) -> QueryResult<()> {
    if let crate::db::DbConnection::Pg(pg) = conn {
        users::table.find(user_id).select(users::id).for_no_key_update().first::<i64>(pg).optional()?;
    }
    Ok(())
}

/// Moves a request on: `in_progress`, or one of the closed states with an outcome.
pub fn set_request_status(
    conn: &mut Conn,
    id: i64,
    new_status: &str,
    outcome: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let closed = status::CLOSED.contains(&new_status);
    diesel::update(data_requests::table.find(id))
        .set((
            data_requests::status.eq(new_status),
            data_requests::outcome.eq(outcome),
            data_requests::done_at.eq(closed.then_some(now)),
        ))
        .execute(conn)
        .map(drop)
}

/// A request with the username of the person it concerns.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    #[serde(flatten)]
    pub request: DataRequest,
    pub username: Option<String>,
    pub overdue: bool,
}

/// A page of the open requests for the staff page, the soonest due first:
/// `limit` rows from `offset`.
pub fn open_requests(conn: &mut Conn, now: NaiveDateTime, offset: i64, limit: i64) -> QueryResult<Vec<RequestRow>> {
    let rows: Vec<(DataRequest, Option<String>)> = data_requests::table
        .left_join(users::table.on(data_requests::user_id.eq(users::id.nullable())))
        .filter(data_requests::status.ne_all(status::CLOSED))
        .order((data_requests::due_at.asc(), data_requests::id.asc()))
        .offset(offset)
        .limit(limit)
        .select((DataRequest::as_select(), users::username.nullable()))
        .load(conn)?;
    Ok(with_overdue(rows, now))
}

/// A page of the closed requests for the staff page, the latest answered first.
pub fn closed_requests(conn: &mut Conn, now: NaiveDateTime, offset: i64, limit: i64) -> QueryResult<Vec<RequestRow>> {
    let rows: Vec<(DataRequest, Option<String>)> = data_requests::table
        .left_join(users::table.on(data_requests::user_id.eq(users::id.nullable())))
        .filter(data_requests::status.eq_any(status::CLOSED))
        .order((data_requests::done_at.desc(), data_requests::id.desc()))
        .offset(offset)
        .limit(limit)
        .select((DataRequest::as_select(), users::username.nullable()))
        .load(conn)?;
    Ok(with_overdue(rows, now))
}

/// How many open requests are past their due date (counted in the database).
pub fn overdue_requests(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<i64> {
    data_requests::table
        .filter(data_requests::status.ne_all(status::CLOSED))
        .filter(data_requests::done_at.is_null())
        .filter(data_requests::due_at.lt(now))
        .count()
        .get_result(conn)
}

fn with_overdue(rows: Vec<(DataRequest, Option<String>)>, now: NaiveDateTime) -> Vec<RequestRow> {
    rows.into_iter()
        .map(|(request, username)| RequestRow {
            overdue: request.done_at.is_none() && request.due_at < now,
            request,
            username,
        })
        .collect()
}

pub fn my_requests(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<DataRequest>> {
    data_requests::table
        .filter(data_requests::user_id.eq(user_id))
        .order(data_requests::id.desc())
        .select(DataRequest::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = legal_holds)]
pub struct LegalHold {
    pub id: i64,
    pub user_id: i64,
    pub reason: String,
    pub placed_by: Option<i64>,
    pub placed_at: NaiveDateTime,
    pub lifted_by: Option<i64>,
    pub lifted_at: Option<NaiveDateTime>,
    pub lift_reason: Option<String>,
}

/// The hold in force on an account, if any.
pub fn active_hold(conn: &mut Conn, user_id: i64) -> QueryResult<Option<LegalHold>> {
    legal_holds::table
        .filter(legal_holds::user_id.eq(user_id))
        .filter(legal_holds::lifted_at.is_null())
        .order(legal_holds::id.asc())
        .select(LegalHold::as_select())
        .first(conn)
        .optional()
}

fn reason_text(reason: &str, what: &str) -> PResult<String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(PrivacyError::Invalid(format!("Give the reason for {what} (at most 1000 characters).")));
    }
    Ok(reason.to_string())
}

/// Places a legal hold (RET-3): from now on no deletion touches the account.
pub fn place_hold(conn: &mut Conn, user_id: i64, reason: &str, by: i64, now: NaiveDateTime) -> PResult<i64> {
    let reason = reason_text(reason, "the hold")?;
    if let Some(hold) = active_hold(conn, user_id)? {
        return Err(PrivacyError::Invalid(format!(
            "This account is under a legal hold already (since {}): {}",
            hold.placed_at.format("%e %b %Y"),
            hold.reason
        )));
    }
    Ok(diesel::insert_into(legal_holds::table)
        .values((
            legal_holds::user_id.eq(user_id),
            legal_holds::reason.eq(reason),
            legal_holds::placed_by.eq(by),
            legal_holds::placed_at.eq(now),
        ))
        .returning(legal_holds::id)
        .get_result(conn)?)
}

/// Lifts a hold; an erasure it parked resumes at its next step.
pub fn lift_hold(conn: &mut Conn, hold_id: i64, reason: &str, by: i64, now: NaiveDateTime) -> PResult<()> {
    let reason = reason_text(reason, "lifting the hold")?;
    crate::db::transaction(conn, |conn| {
        let hold: LegalHold = legal_holds::table
            .find(hold_id)
            .select(LegalHold::as_select())
            .first(conn)
            .optional()?
            .ok_or(PrivacyError::NotFound)?;
        if hold.lifted_at.is_some() {
            return Err(PrivacyError::Invalid("This hold was lifted already.".into()));
        }
        diesel::update(legal_holds::table.find(hold_id))
            .set((legal_holds::lifted_by.eq(by), legal_holds::lifted_at.eq(now), legal_holds::lift_reason.eq(reason)))
            .execute(conn)?;
        diesel::update(
            erasures::table.filter(erasures::user_id.eq(hold.user_id)).filter(erasures::state.eq(erasure::state::HELD)),
        )
        .set((erasures::state.eq(erasure::state::WAITING), erasures::run_after.eq(now), erasures::updated_at.eq(now)))
        .execute(conn)?;
        Ok(())
    })
}

/// A page of the holds in force, with the account's username, for the staff
/// page: `limit` rows from `offset`, the oldest first.
pub fn holds(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<(LegalHold, String)>> {
    legal_holds::table
        .inner_join(users::table.on(legal_holds::user_id.eq(users::id)))
        .filter(legal_holds::lifted_at.is_null())
        .order(legal_holds::id.asc())
        .offset(offset)
        .limit(limit)
        .select((LegalHold::as_select(), users::username))
        .load(conn)
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::page,
        routes::ask_export,
        routes::download,
        routes::ask_erasure,
        routes::cancel_erasure,
        routes::staff_page,
        routes::enter_request,
        routes::update_request,
        routes::place_hold,
        routes::lift_hold,
        routes::cookie_settings,
        audit::page,
        appointments::auditors,
        appointments::appoint,
        appointments::remove,
        appointments::support_team,
        appointments::appoint_support,
        appointments::remove_support,
        surveys::form,
        surveys::submit_form,
        surveys::course_results,
        routes::contact_form,
        routes::contact,
        routes::support_list,
        routes::support_request,
        routes::support_answer,
        routes::support_close,
        routes::notices_page,
        routes::publish_notice,
        routes::withdraw_notice,
        routes::policy_page,
        routes::staff_policies,
        routes::publish_policy,
        routes::accept_form,
        routes::accept,
        policies::required,
        routes::set_cookies,
        routes::analytics,
        routes::communications,
        routes::set_communications,
        routes::unsubscribe_form,
        routes::unsubscribe,
        routes::pixel,
        routes::click,
        routes::newsletters,
        routes::send_newsletter,
    ]
}
