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
//! A legal hold (RET-3) on an account overrides every one of these: nothing
//! linked to a held account is deleted, and the dry run lists the accounts it
//! spared.

use chrono::{Duration, NaiveDateTime};
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use serde_json::json;

use crate::config::Config;
use crate::db::Conn;
use crate::db::schema::{
    account_tokens, campaign_events, cookie_choices, enrollments, forum_posts, forum_threads, inactivity_warnings,
    jobs, legal_holds, page_views, role_grants, sessions, support_requests, users,
};

/// The periods in days; 0 keeps the category for ever.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    pub inactive_account_days: i64,
    pub inactive_warning_days: i64,
    pub course_record_days: i64,
    pub forum_post_days: i64,
    pub log_days: i64,
    /// Certificates, counted from issue, whether or not the account still exists (CRT-6).
    pub certificate_days: i64,
    /// Proctoring session references (CRT-7).
    pub proctoring_days: i64,
    /// Exam results, counted from arrival (CRT-8).
    pub exam_result_days: i64,
    /// Page views (usage statistics), counted from the view.
    pub page_view_days: i64,
    /// Recorded cookie choices, counted from the choice.
    pub cookie_choice_days: i64,
    /// Newsletter events (sent, opened, clicked), counted from the event.
    pub campaign_event_days: i64,
    /// Support requests with their answers, counted from their last activity.
    pub support_request_days: i64,
}

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

/// One line of what a run did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub category: &'static str,
    pub action: String,
    pub count: usize,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<15} {:>7}  {}", self.category, self.count, self.action)
    }
}

/// Accounts under a legal hold now.
fn held(conn: &mut Conn) -> QueryResult<Vec<i64>> {
    legal_holds::table.filter(legal_holds::lifted_at.is_null()).select(legal_holds::user_id).distinct().load(conn)
}

/// Applies (or, with `dry_run`, only counts) every retention rule. The
/// mail files in `outbox` of the mail jobs it deletes go with them.
pub fn run(
    conn: &mut Conn,
    p: &Periods,
    outbox: &std::path::Path,
    now: NaiveDateTime,
    dry_run: bool,
) -> QueryResult<Vec<Line>> {
    let held = held(conn)?;
    let mut lines = Vec::new();
    let mut line = |category, count, action: String| lines.push(Line { category, action, count });

    if p.inactive_account_days > 0 {
        let (warned, erased, spared) = inactive_accounts(conn, p, &held, now, dry_run)?;
        let verb = if dry_run { "would be" } else { "" };
        line("accounts", warned, format!("inactive accounts {verb} warned by email"));
        line("accounts", erased, format!("inactive accounts {verb} erased (warned, not signed in since)"));
        line("accounts", spared, "inactive accounts spared by a legal hold".into());
    }

    if p.course_record_days > 0 {
        let before = now - Duration::days(p.course_record_days);
        let ended = enrollments::unenrolled_at
            .le(before)
            .or(enrollments::unenrolled_at.is_null().and(enrollments::access_expires_at.le(before)));
        let target = enrollments::table.filter(ended).filter(enrollments::user_id.ne_all(&held));
        let n = if dry_run {
            target.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(target).execute(conn)?
        };
        line("course records", n, format!("enrollments ended before {} (with progress and answers)", before.date()));
    }

    if p.forum_post_days > 0 {
        let before = now - Duration::days(p.forum_post_days);
        // A thread goes whole, and not while any of its posts belongs to a held account.
        let touched_by_held = forum_posts::table
            .filter(forum_posts::thread_id.eq(forum_threads::id))
            .filter(forum_posts::author_id.eq_any(&held));
        let ids: Vec<i64> = forum_threads::table
            .filter(forum_threads::last_post_at.le(before))
            .filter(not(exists(touched_by_held)))
            .select(forum_threads::id)
            .load(conn)?;
        if !dry_run {
            diesel::delete(forum_threads::table.filter(forum_threads::id.eq_any(&ids))).execute(conn)?;
            for id in &ids {
                crate::forums::search::queue_index(conn, *id)?;
            }
        }
        line("posts", ids.len(), format!("forum threads quiet since before {}", before.date()));
    }

    if p.certificate_days > 0 {
        let n = crate::certificates::expire(conn, p.certificate_days, now, dry_run)?;
        let before = now - Duration::days(p.certificate_days);
        line("certificates", n, format!("certificates issued before {}", before.date()));
    }

    if p.proctoring_days > 0 {
        let n = crate::certificates::proctoring::purge(conn, p.proctoring_days, now, dry_run)?;
        let before = now - Duration::days(p.proctoring_days);
        line("proctoring", n, format!("proctoring session references from before {}", before.date()));
    }

    if p.exam_result_days > 0 {
        let n = crate::exams::purge_results(conn, p.exam_result_days, &held, now, dry_run)?;
        let before = now - Duration::days(p.exam_result_days);
        line("exam results", n, format!("exam results received before {}, except under a legal hold", before.date()));
    }

    if p.page_view_days > 0 {
        let before = now - Duration::days(p.page_view_days);
        let old = page_views::table.filter(page_views::created_at.le(before));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line("page views", n, format!("usage statistics recorded before {}", before.date()));
    }

    if p.cookie_choice_days > 0 {
        let before = now - Duration::days(p.cookie_choice_days);
        let old = cookie_choices::table.filter(cookie_choices::created_at.le(before));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line("cookie choices", n, format!("cookie choices made before {}", before.date()));
    }

    if p.campaign_event_days > 0 {
        let before = now - Duration::days(p.campaign_event_days);
        let old = campaign_events::table
            .filter(campaign_events::created_at.le(before))
            .filter(campaign_events::user_id.ne_all(&held));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line(
            "campaign events",
            n,
            format!("newsletter deliveries, opens and clicks from before {}, except under a legal hold", before.date()),
        );
    }

    if p.support_request_days > 0 {
        let before = now - Duration::days(p.support_request_days);
        // Whatever their state; their answers go with them (ON DELETE CASCADE).
        let old = support_requests::table
            .filter(support_requests::updated_at.le(before))
            .filter(support_requests::user_id.is_null().or(support_requests::user_id.ne_all(&held)));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line(
            "support requests",
            n,
            format!(
                "support requests untouched since before {}, with their answers, except under a legal hold",
                before.date()
            ),
        );
    }

    if p.log_days > 0 {
        let before = now - Duration::days(p.log_days);
        let finished = jobs::table
            .filter(jobs::status.eq_any([crate::jobs::status::DONE, crate::jobs::status::DEAD]))
            .filter(jobs::updated_at.le(before));
        let n = if dry_run {
            finished.count().get_result::<i64>(conn)? as usize
        } else {
            let mail: Vec<i64> =
                finished.clone().filter(jobs::kind.eq(crate::notify::SEND_EMAIL)).select(jobs::id).load(conn)?;
            let n = diesel::delete(finished).execute(conn)?;
            // After the rows: a failure here leaves files, never a row without its file.
            crate::notify::remove_outbox_mail(outbox, &mail)
                .map_err(|e| diesel::result::Error::QueryBuilderError(format!("outbox: {e}").into()))?;
            n
        };
        line("logs", n, format!("finished jobs (and the mail they carried) from before {}", before.date()));
        let expired = sessions::table.filter(sessions::expires_at.le(now)).filter(sessions::user_id.ne_all(&held));
        let n = if dry_run {
            expired.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(expired).execute(conn)?
        };
        line("logs", n, "expired sign-ins".into());
        let stale = account_tokens::table
            .filter(account_tokens::expires_at.le(before).or(account_tokens::used_at.le(before)))
            .filter(account_tokens::user_id.ne_all(&held));
        let n = if dry_run {
            stale.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(stale).execute(conn)?
        };
        line("logs", n, format!("used or expired email links from before {}", before.date()));
        use crate::db::schema::sms_outbox;
        let texts = sms_outbox::table.filter(sms_outbox::created_at.le(before));
        let n = if dry_run {
            texts.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(texts).execute(conn)?
        };
        line("logs", n, format!("texts kept in the outbox from before {}", before.date()));
    }
    // What was deleted must not stay readable in SQLite's write-ahead log.
    if !dry_run && lines.iter().any(|l| l.count > 0) {
        crate::db::checkpoint(conn)?;
    }
    Ok(lines)
}

/// Warns accounts about to pass the inactivity period and erases those
/// warned long enough ago; returns (warned, erased, spared by a hold).
fn inactive_accounts(
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
        .filter(users::status.eq("active"))
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
