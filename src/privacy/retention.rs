//! Retention (RET-1, RET-2): a period per data category, from configuration,
//! enforced by the scheduled worker and previewed by
//! `lyceum retention run --dry-run`.
//!
//! | category | what goes | default |
//! |---|---|---|
//! | accounts | accounts not signed in to for the period: warned by email, then erased like a learner's own request | 1095 days, warned 30 days before |
//! | course records | enrollments that ended (unenrolled, or access over) that long ago, with their progress, results and quiz answers | kept (0) |
//! | posts | forum threads with no post for the period | kept (0) |
//! | logs | finished jobs (and the mail they carried), expired sign-ins, used or expired links | 90 days |
//! | exam results | results from exam bodies, counted from arrival (CRT-8) | 365 days |
//! | data copies | a learner's downloaded copy, after its link expired | 7 days (`export::EXPORT_DAYS`) |
//! | page views | usage statistics (route, time, browser and system family, country) | 365 days |
//! | cookie choices | the recorded choices of visitors (visitor id, choice, time) | 730 days |
//! | campaign events | newsletter deliveries, opens and clicks | 365 days |
//! | support requests | contact-form requests and their answers, counted from the last activity | 730 days |
//!
//! Each area applies its own rules (`expire` in its lifecycle hooks, run in
//! the order of `privacy::AREAS`); the lines are listed by category.
//!
//! A legal hold (RET-3) on an account overrides every one of these: nothing
//! linked to a held account is deleted, and the dry run lists the accounts it
//! spared.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use crate::config::Config;
use crate::db::Conn;
use crate::db::schema::{inactivity_warnings, legal_holds, role_grants, users};
pub use crate::lifecycle::{Line, Periods};

impl Periods {
    pub fn from_config(config: &Config) -> Periods {
        Periods {
            inactive_account_days: config.retention_inactive_account_days,
            inactive_warning_days: config.retention_inactive_warning_days,
            course_record_days: config.retention_course_record_days,
            forum_post_days: config.retention_forum_post_days,
            log_days: config.retention_log_days,
            certificate_days: config.retention_certificate_days,
            proctoring_days: config.retention_proctoring_days,
            exam_result_days: config.retention_exam_result_days,
            page_view_days: config.retention_page_view_days,
            cookie_choice_days: config.retention_cookie_choice_days,
            campaign_event_days: config.retention_campaign_event_days,
            support_request_days: config.retention_support_request_days,
        }
    }
}

/// A category as the staff page lists it: what goes, and after how long.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Category {
    pub category: &'static str,
    pub what: &'static str,
    pub period: String,
}

impl Periods {
    /// Every category with its period as configured (the README lists the defaults).
    pub fn categories(&self) -> Vec<Category> {
        let days = |d: i64| if d > 0 { format!("{d} days") } else { "kept".to_string() };
        let accounts = if self.inactive_account_days > 0 {
            format!("{} days, warned {} days before", self.inactive_account_days, self.inactive_warning_days)
        } else {
            days(0)
        };
        let rows: [(&'static str, &'static str, String); 12] = [
            ("accounts", "accounts not signed in to: warned by email, then erased", accounts),
            (
                "course records",
                "enrollments that ended, with progress, results and answers",
                days(self.course_record_days),
            ),
            ("posts", "forum threads with no new post", days(self.forum_post_days)),
            ("logs", "finished jobs and their mail, expired sign-ins, used links, texts", days(self.log_days)),
            ("certificates", "certificates, counted from issue", days(self.certificate_days)),
            ("proctoring", "proctoring session references", days(self.proctoring_days)),
            ("exam results", "results from exam bodies, counted from arrival", days(self.exam_result_days)),
            ("data copies", "a learner's copy of their data, after its link expired", days(super::export::EXPORT_DAYS)),
            (
                "page views",
                "usage statistics: route, time, browser and system family, country",
                days(self.page_view_days),
            ),
            ("cookie choices", "recorded cookie choices: visitor id, choice, time", days(self.cookie_choice_days)),
            ("campaign events", "newsletter deliveries, opens and clicks", days(self.campaign_event_days)),
            (
                "support requests",
                "contact-form requests with their answers, counted from the last activity",
                days(self.support_request_days),
            ),
        ];
        rows.into_iter().map(|(category, what, period)| Category { category, what, period }).collect()
    }
}

/// Accounts under a legal hold now.
fn held(conn: &mut Conn) -> QueryResult<Vec<i64>> {
    legal_holds::table.filter(legal_holds::lifted_at.is_null()).select(legal_holds::user_id).distinct().load(conn)
}

/// The order in which a run's lines are listed, by category.
const LISTED: [&str; 11] = [
    "accounts",
    "course records",
    "posts",
    "certificates",
    "proctoring",
    "exam results",
    "page views",
    "cookie choices",
    "campaign events",
    "support requests",
    "logs",
];

/// Applies (or, with `dry_run`, only counts) every retention rule: each
/// area's `expire` hook, in the order of `AREAS`. The mail files in `outbox`
/// of the mail jobs it deletes go with them.
pub fn run(
    conn: &mut Conn,
    p: &Periods,
    outbox: &std::path::Path,
    now: NaiveDateTime,
    dry_run: bool,
) -> QueryResult<Vec<Line>> {
    let held = held(conn)?;
    let expiring = crate::lifecycle::Expiring { periods: p, held: &held, outbox, now, dry_run };
    let mut lines = Vec::new();
    for area in super::AREAS {
        if let Some(expire) = area.expire {
            lines.extend(expire(conn, &expiring)?);
        }
    }
    lines.sort_by_key(|l| LISTED.iter().position(|c| *c == l.category).unwrap_or(LISTED.len()));
    // What was deleted must not stay readable in SQLite's write-ahead log.
    if !dry_run && lines.iter().any(|l| l.count > 0) {
        crate::db::checkpoint(conn)?;
    }
    Ok(lines)
}

/// Warns accounts about to pass the inactivity period and erases those
/// warned long enough ago; returns (warned, erased, spared by a hold).
pub(super) fn inactive_accounts(
    conn: &mut Conn,
    p: &Periods,
    held: &[i64],
    now: NaiveDateTime,
    dry_run: bool,
) -> QueryResult<(usize, usize, usize)> {
    let staff = role_grants::table.filter(role_grants::role.eq("staff")).select(role_grants::user_id);
    // A sign-in after the warning makes it moot.
    let moot: Vec<i64> = inactivity_warnings::table
        .inner_join(users::table)
        .filter(users::last_sign_in_at.gt(inactivity_warnings::warned_at.nullable()))
        .select(inactivity_warnings::user_id)
        .load(conn)?;
    if !dry_run {
        diesel::delete(inactivity_warnings::table.filter(inactivity_warnings::user_id.eq_any(&moot))).execute(conn)?;
    }
    let warn_from = now - Duration::days((p.inactive_account_days - p.inactive_warning_days).max(0));
    let inactive: Vec<(i64, String, String)> = users::table
        .filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()))
        .filter(users::id.ne_all(staff))
        .filter(
            users::last_sign_in_at
                .le(warn_from)
                .or(users::last_sign_in_at.is_null().and(users::created_at.le(warn_from))),
        )
        .select((users::id, users::email, users::username))
        .load(conn)?;
    let warnings: Vec<(i64, NaiveDateTime)> = inactivity_warnings::table
        .filter(inactivity_warnings::user_id.ne_all(&moot))
        .select((inactivity_warnings::user_id, inactivity_warnings::delete_after))
        .load(conn)?;
    let (mut warned, mut erased, mut spared) = (0, 0, 0);
    for (id, email, username) in inactive {
        if held.contains(&id) {
            spared += 1;
            continue;
        }
        match warnings.iter().find(|(user, _)| *user == id) {
            None => {
                warned += 1;
                if dry_run {
                    continue;
                }
                let delete_after = now + Duration::days(p.inactive_warning_days.max(1));
                crate::db::transaction(conn, |conn| {
                    diesel::insert_into(inactivity_warnings::table)
                        .values((
                            inactivity_warnings::user_id.eq(id),
                            inactivity_warnings::warned_at.eq(now),
                            inactivity_warnings::delete_after.eq(delete_after),
                        ))
                        .execute(conn)?;
                    crate::notify::enqueue_email(
                        conn,
                        &email,
                        "Your Lyceum account will be deleted unless you sign in",
                        "inactive_warning",
                        json!({ "username": username, "when": delete_after.format("%e %B %Y").to_string() }),
                    )
                    .map(drop)
                })?;
            }
            Some((_, delete_after)) if *delete_after <= now => {
                if super::erasure::open_for(conn, id)?.is_some() {
                    continue;
                }
                erased += 1;
                if dry_run {
                    continue;
                }
                let details = "Account inactive past the retention period; the learner was warned by email.";
                match super::erasure::start(conn, id, super::source::RETENTION, details, now, false, now) {
                    Ok(_) | Err(super::PrivacyError::Invalid(_)) => {}
                    Err(super::PrivacyError::Db(e)) => return Err(e),
                    Err(super::PrivacyError::NotFound | super::PrivacyError::Gone(_)) => {}
                }
                diesel::delete(inactivity_warnings::table.find(id)).execute(conn)?;
            }
            Some(_) => {}
        }
    }
    Ok((warned, erased, spared))
}
