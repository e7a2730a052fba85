//! Account erasure (RGT-2).
//!
//! Asking (with the password) starts a cool-off (`LYCEUM_ERASURE_COOL_OFF_DAYS`,
//! 7 by default) during which the learner can still sign in and cancel. Then
//! the scheduled worker runs the retirement as an ordered state machine of
//! `STEPS`. Each step is one transaction that also advances `next_step`, so a
//! crash or failure resumes at the step that did not finish, and every step
//! leaves a line in `erasure_log`. A failed step is retried with a growing
//! delay and shown to staff. Before every step the account's legal hold is
//! checked (RET-3): a hold parks the erasure as `held`, says so in the log,
//! and lifting the hold resumes it.
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

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::{PResult, PrivacyError, kind, source, status as request_status};
use crate::consent::Categories;
use crate::consent::ledger::{self, Action, Entry, Evidence};
use crate::db::Conn;
use crate::db::schema::{
    account_tokens, consents, course_feedback, data_exports, disclosures, enrollments, erasure_log, erasures,
    forum_bans, forum_follows, forum_reads, forum_reports, honor_reports, jobs, parent_sharing_requests,
    parental_consents, partners, profiles, role_grants, sessions, sharing_restrictions, sponsor_codes, sponsorships,
    users,
};
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

/// Erasures for the staff page with the account's current username: open ones, then the latest finished.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<(Erasure, String)>> {
    erasures::table
        .inner_join(users::table.on(erasures::user_id.eq(users::id)))
        .order((erasures::finished_at.is_not_null(), erasures::id.desc()))
        .limit(200)
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

/// One step; returns the line for the log. Every step can run again safely.
fn run_step(
    conn: &mut Conn,
    settings: &Settings<'_>,
    e: &Erasure,
    step: &str,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let user_id = e.user_id;
    match step {
        "sign_out" => {
            let n = diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
            diesel::delete(account_tokens::table.filter(account_tokens::user_id.eq(user_id))).execute(conn)?;
            Ok(format!("{n} session(s) ended; sign-in, reset and verification links cancelled."))
        }
        "withdraw_consents" => {
            let live: Vec<(i64, String, String, String)> = consents::table
                .filter(consents::user_id.eq(user_id))
                .filter(consents::status.eq("granted"))
                .select((consents::partner_id, consents::purpose, consents::scope, consents::categories))
                .load(conn)?;
            let evidence = Evidence {
                method: "erasure",
                actor: "learner",
                actor_user_id: Some(user_id),
                actor_name: None,
                note: Some(format!("Account erasure, request #{}", e.request_id)),
                ip: None,
                user_agent: None,
            };
            for (partner_id, purpose, scope, categories) in &live {
                let categories = Categories::parse(categories);
                ledger::append(
                    conn,
                    Entry {
                        user_id,
                        partner_id: Some(*partner_id),
                        purpose,
                        scope,
                        action: Action::Withdraw,
                        categories: &categories,
                        text: None,
                        evidence: &evidence,
                    },
                    now,
                )?;
            }
            Ok(format!("{} consent(s) withdrawn in the ledger.", live.len()))
        }
        "notify_partners" => {
            // Every identifier any partner holds departs, on every channel it came by.
            let departed = crate::consent::departures::reconcile(
                conn,
                user_id,
                crate::consent::departures::Reason::Erased,
                true,
                now,
            )?;
            let told: Vec<i64> = disclosures::table
                .filter(disclosures::user_id.eq(user_id))
                .filter(disclosures::partner_id.is_not_null())
                .select(disclosures::partner_id.assume_not_null())
                .distinct()
                .load(conn)?;
            let username: String = users::table.find(user_id).select(users::username).first(conn)?;
            let mut names = Vec::new();
            for partner_id in told {
                let partner = crate::consent::partners::by_id(conn, partner_id)?;
                // The identifiers this partner holds: the username in identified records, the pseudonym in the others.
                let identified: i64 = disclosures::table
                    .filter(disclosures::user_id.eq(user_id))
                    .filter(disclosures::partner_id.eq(partner_id))
                    .filter(disclosures::fields.like("%learner.username%"))
                    .count()
                    .get_result(conn)?;
                // And the code of each run whose records reached it without identity.
                let keys: Vec<String> = disclosures::table
                    .filter(disclosures::user_id.eq(user_id))
                    .filter(disclosures::partner_id.eq(partner_id))
                    .filter(disclosures::basis.eq("deidentified"))
                    .select(disclosures::record_key)
                    .distinct()
                    .load(conn)?;
                let eids: Vec<i64> = keys.iter().filter_map(|k| k.strip_prefix("enrollment:")?.parse().ok()).collect();
                let runs: Vec<i64> = crate::db::schema::enrollments::table
                    .filter(crate::db::schema::enrollments::id.eq_any(&eids))
                    .select(crate::db::schema::enrollments::run_id)
                    .distinct()
                    .load(conn)?;
                let codes: Vec<String> = runs.iter().map(|run| partner.run_pseudonym(user_id, *run)).collect();
                let contact: String = partners::table.find(partner_id).select(partners::contact_email).first(conn)?;
                // Through the job queue: durable, retried, and visible to staff when it fails.
                crate::notify::enqueue_email(
                    conn,
                    &contact,
                    "Erasure notice: delete a learner's data",
                    "erasure_notice",
                    json!({
                        "partner": partner.name,
                        "username": (identified > 0).then_some(&username),
                        "pseudonym": partner.pseudonym(user_id),
                        "named": partner.named_pseudonym(user_id),
                        "codes": codes,
                        "request": e.request_id,
                    }),
                )?;
                names.push(partner.name);
            }
            Ok(if names.is_empty() {
                "No partner ever received this learner's data.".into()
            } else {
                format!(
                    "Erasure notice sent to {}; {departed} departure(s) queued for their feeds and pushes.",
                    names.join(", ")
                )
            })
        }
        "pseudonymise_posts" => {
            let n = crate::forums::erase_author(conn, user_id, settings.blank_posts)?;
            Ok(format!(
                "{n} forum post(s) now shown as a former member's{}.",
                if settings.blank_posts { ", their text removed" } else { "" }
            ))
        }
        "delete_personal_data" => delete_personal_data(conn, settings, user_id),
        "retire_account" => {
            diesel::update(users::table.find(user_id))
                .set((
                    users::username.eq(format!("retired-{user_id}")),
                    users::email.eq(format!("retired-{user_id}@erased.invalid")),
                    users::first_name.eq(""),
                    users::last_name.eq(""),
                    users::phone.eq(None::<String>),
                    users::company.eq(None::<String>),
                    users::date_of_birth.eq(None::<NaiveDate>),
                    // No password hash verifies against this.
                    users::password_hash.eq("!erased"),
                    users::status.eq("erased"),
                    users::email_verified_at.eq(None::<NaiveDateTime>),
                    users::last_sign_in_at.eq(None::<NaiveDateTime>),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok("Account retired: name, email, username, phone, company and date of birth replaced.".into())
        }
        "close_request" => {
            super::set_request_status(conn, e.request_id, request_status::DONE, Some("Account erased."), now)?;
            Ok("Request marked done.".into())
        }
        other => Err(diesel::result::Error::QueryBuilderError(format!("unknown erasure step {other}").into())),
    }
}

fn delete_personal_data(conn: &mut Conn, settings: &Settings<'_>, user_id: i64) -> QueryResult<String> {
    let (email, username): (String, String) =
        users::table.find(user_id).select((users::email, users::username)).first(conn)?;
    // Files first: a failure leaves the rows, so the retry finds the keys again.
    let mut files: Vec<String> = data_exports::table
        .filter(data_exports::user_id.eq(user_id))
        .filter(data_exports::blob_key.is_not_null())
        .select(data_exports::blob_key.assume_not_null())
        .load(conn)?;
    let avatar: Option<Option<String>> =
        profiles::table.find(user_id).select(profiles::avatar_key).first(conn).optional()?;
    files.extend(avatar.flatten());
    for key in &files {
        settings.blobs.delete(key).map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
    }
    let mails = crate::notify::remove_outbox_mail_naming(settings.outbox, &email)
        .map_err(|e| diesel::result::Error::QueryBuilderError(format!("outbox: {e}").into()))?;
    // Identity images and applications go; certificates stay, detached (CRT-6).
    let mut n = crate::certificates::on_erasure(conn, settings.blobs, user_id).map_err(|e| match e {
        crate::certificates::CertError::Db(e) => e,
        other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
    })?;
    n += diesel::delete(data_exports::table.filter(data_exports::user_id.eq(user_id))).execute(conn)?;
    // The audit log keeps its entries and their subject ids; the query strings
    // that selected this person (a username or email) go.
    n += super::audit::erase_queries(conn, user_id, &username, &email)?;
    n += diesel::delete(profiles::table.filter(profiles::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(role_grants::table.filter(role_grants::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(parental_consents::table.filter(parental_consents::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(parent_sharing_requests::table.filter(parent_sharing_requests::user_id.eq(user_id)))
        .execute(conn)?;
    {
        use crate::db::schema::{
            oidc_links, oidc_pending, recovery_codes, security_events, sign_in_guesses, sms_codes, sms_numbers,
            totp_credentials,
        };
        n += diesel::delete(sign_in_guesses::table.filter(sign_in_guesses::user_id.eq(user_id))).execute(conn)?;
        n += diesel::delete(oidc_links::table.filter(oidc_links::user_id.eq(user_id))).execute(conn)?;
        n += diesel::delete(oidc_pending::table.filter(oidc_pending::user_id.eq(user_id))).execute(conn)?;
        n += diesel::delete(totp_credentials::table.filter(totp_credentials::user_id.eq(user_id))).execute(conn)?;
        n += diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
        // Before the number itself: it is what finds the texts.
        n += crate::accounts::sms::erase_outbox_texts(conn, user_id)?;
        n += diesel::delete(sms_numbers::table.filter(sms_numbers::user_id.eq(user_id))).execute(conn)?;
        n += diesel::delete(sms_codes::table.filter(sms_codes::user_id.eq(user_id))).execute(conn)?;
        n += diesel::delete(security_events::table.filter(security_events::user_id.eq(user_id))).execute(conn)?;
    }
    n += crate::exams::erase(conn, user_id)?;
    // Completions, quiz answers and attendance go with their enrollments.
    n += diesel::delete(enrollments::table.filter(enrollments::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(course_feedback::table.filter(course_feedback::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(sponsorships::table.filter(sponsorships::user_id.eq(user_id))).execute(conn)?;
    n += diesel::update(sponsor_codes::table.filter(sponsor_codes::invited_email.eq(&email)))
        .set(sponsor_codes::invited_email.eq(None::<String>))
        .execute(conn)?;
    n += diesel::delete(consents::table.filter(consents::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(sharing_restrictions::table.filter(sharing_restrictions::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(
        crate::db::schema::inactivity_warnings::table
            .filter(crate::db::schema::inactivity_warnings::user_id.eq(user_id)),
    )
    .execute(conn)?;
    use crate::db::schema::{campaign_events, communication_choices, communication_preferences};
    n += diesel::delete(communication_preferences::table.filter(communication_preferences::user_id.eq(user_id)))
        .execute(conn)?;
    n += diesel::delete(communication_choices::table.filter(communication_choices::user_id.eq(user_id)))
        .execute(conn)?;
    n += diesel::delete(campaign_events::table.filter(campaign_events::user_id.eq(user_id))).execute(conn)?;
    use crate::db::schema::{breach_recipients, policy_acceptances, support_requests};
    n += diesel::delete(
        crate::db::schema::survey_completions::table.filter(crate::db::schema::survey_completions::user_id.eq(user_id)),
    )
    .execute(conn)?;
    n += diesel::delete(breach_recipients::table.filter(breach_recipients::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(
        support_requests::table.filter(support_requests::user_id.eq(user_id).or(support_requests::email.eq(&email))),
    )
    .execute(conn)?;
    n += diesel::delete(policy_acceptances::table.filter(policy_acceptances::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(forum_follows::table.filter(forum_follows::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(forum_reads::table.filter(forum_reads::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(forum_bans::table.filter(forum_bans::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(forum_reports::table.filter(forum_reports::reporter_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(honor_reports::table.filter(honor_reports::subject_id.eq(user_id))).execute(conn)?;
    n += diesel::update(honor_reports::table.filter(honor_reports::reporter_id.eq(user_id)))
        .set(honor_reports::reporter_id.eq(None::<i64>))
        .execute(conn)?;
    // Mail to the learner in the queue (its payload holds the address). One
    // being sent right now would survive the delete: the step waits for it.
    let pattern = format!("%\"to\":\"{}\"%", email.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let to_learner = || {
        jobs::table
            .filter(jobs::kind.eq(crate::notify::SEND_EMAIL))
            .filter(jobs::payload.like(pattern.clone()).escape('\\'))
    };
    let sending: i64 = to_learner().filter(jobs::status.eq(crate::jobs::status::RUNNING)).count().get_result(conn)?;
    if sending > 0 {
        return Err(diesel::result::Error::QueryBuilderError(
            "a message to the learner is being sent right now; the step is retried once it is out".into(),
        ));
    }
    n += diesel::delete(to_learner()).execute(conn)?;
    Ok(format!("{n} record(s), {} file(s) and {mails} mail file(s) deleted.", files.len()))
}
