//! The privacy area's own lifecycle hooks (see `crate::lifecycle`), for the
//! tables it owns: erasure deletes the learner's copies, communication
//! choices, surveys answered, notices received, support requests and policy
//! acceptances, and the audit queries that selected them; the audit entries,
//! data requests, erasures and legal holds stay as records. Retention warns
//! and erases inactive accounts and deletes old usage statistics, cookie
//! choices, newsletter events and support requests.

use chrono::Duration;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{
    breach_recipients, campaign_events, communication_choices, communication_preferences, cookie_choices, data_exports,
    inactivity_warnings, page_views, policy_acceptances, support_requests, survey_completions,
};
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Expiring, Line, Section, Step, failure};

const RECORD: &str = "staff who acted, for the record";
const PROOF: &str = "proof of what was asked and done about the person's data (RGT-2, RET-3)";

pub const HOOKS: AreaHooks = AreaHooks {
    name: "privacy",
    covers: &[
        Covered::deleted("data_exports", "user_id"),
        Covered::kept("data_requests", "user_id", PROOF),
        Covered::kept("data_requests", "entered_by", RECORD),
        Covered::kept("erasures", "user_id", PROOF),
        Covered::kept("legal_holds", "user_id", PROOF),
        Covered::kept("legal_holds", "placed_by", RECORD),
        Covered::kept("legal_holds", "lifted_by", RECORD),
        Covered::kept("audit_log", "actor_id", "the audit log is append-only; who acted stays (SEC-4)"),
        Covered::kept(
            "audit_subjects",
            "user_id",
            "the audit log keeps whom each entry named (SEC-4); the queries that selected them go",
        ),
        Covered::deleted("inactivity_warnings", "user_id"),
        Covered::deleted("communication_preferences", "user_id"),
        Covered::deleted("communication_choices", "user_id"),
        Covered::deleted("campaign_events", "user_id"),
        Covered::kept("campaigns", "created_by", RECORD),
        Covered::deleted("survey_completions", "user_id"),
        Covered::deleted("breach_recipients", "user_id"),
        Covered::kept("breach_notices", "created_by", RECORD),
        Covered::deleted("support_requests", "user_id"),
        Covered::kept("support_replies", "staff_id", RECORD),
        Covered::deleted("policy_acceptances", "user_id"),
        Covered::kept("policy_versions", "published_by", RECORD),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: Some(expire),
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    if e.step != Step::DeletePersonalData {
        return Ok(Erased::default());
    }
    let user_id = e.user_id;
    // Files first: a failure leaves the rows, so the retry finds the keys again.
    let files: Vec<String> = data_exports::table
        .filter(data_exports::user_id.eq(user_id))
        .filter(data_exports::blob_key.is_not_null())
        .select(data_exports::blob_key.assume_not_null())
        .load(conn)?;
    for key in &files {
        e.blobs.delete(key).map_err(failure)?;
    }
    let mut n = diesel::delete(data_exports::table.filter(data_exports::user_id.eq(user_id))).execute(conn)?;
    // The audit log keeps its entries and their subject ids; the query strings
    // that selected this person (a username or email) go.
    n += super::audit::erase_queries(conn, user_id, e.username, e.email)?;
    n += diesel::delete(inactivity_warnings::table.filter(inactivity_warnings::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(communication_preferences::table.filter(communication_preferences::user_id.eq(user_id)))
        .execute(conn)?;
    n += diesel::delete(communication_choices::table.filter(communication_choices::user_id.eq(user_id)))
        .execute(conn)?;
    n += diesel::delete(campaign_events::table.filter(campaign_events::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(survey_completions::table.filter(survey_completions::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(breach_recipients::table.filter(breach_recipients::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(
        support_requests::table.filter(support_requests::user_id.eq(user_id).or(support_requests::email.eq(e.email))),
    )
    .execute(conn)?;
    n += diesel::delete(policy_acceptances::table.filter(policy_acceptances::user_id.eq(user_id))).execute(conn)?;
    Ok(Erased { records: n, files: files.len(), ..Erased::default() })
}

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let (p, held, dry_run) = (x.periods, x.held, x.dry_run);
    let mut lines = Vec::new();
    let mut line = |category, count, action: String| lines.push(Line { category, action, count });

    if p.inactive_account_days > 0 {
        let (warned, erased, spared) = super::retention::inactive_accounts(conn, p, held, x.now, dry_run)?;
        let verb = if dry_run { "would be" } else { "" };
        line("accounts", warned, format!("inactive accounts {verb} warned by email"));
        line("accounts", erased, format!("inactive accounts {verb} erased (warned, not signed in since)"));
        line("accounts", spared, "inactive accounts spared by a legal hold".into());
    }

    if p.page_view_days > 0 {
        let before = x.now - Duration::days(p.page_view_days);
        let old = page_views::table.filter(page_views::created_at.le(before));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line("page views", n, format!("usage statistics recorded before {}", before.date()));
    }

    if p.cookie_choice_days > 0 {
        let before = x.now - Duration::days(p.cookie_choice_days);
        let old = cookie_choices::table.filter(cookie_choices::created_at.le(before));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line("cookie choices", n, format!("cookie choices made before {}", before.date()));
    }

    if p.campaign_event_days > 0 {
        let before = x.now - Duration::days(p.campaign_event_days);
        let old = campaign_events::table
            .filter(campaign_events::created_at.le(before))
            .filter(campaign_events::user_id.ne_all(held));
        let n =
            if dry_run { old.count().get_result::<i64>(conn)? as usize } else { diesel::delete(old).execute(conn)? };
        line(
            "campaign events",
            n,
            format!("newsletter deliveries, opens and clicks from before {}, except under a legal hold", before.date()),
        );
    }

    if p.support_request_days > 0 {
        let before = x.now - Duration::days(p.support_request_days);
        // Whatever their state; their answers go with them (ON DELETE CASCADE).
        let old = support_requests::table
            .filter(support_requests::updated_at.le(before))
            .filter(support_requests::user_id.is_null().or(support_requests::user_id.ne_all(held)));
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
    Ok(lines)
}

const EXPORT: &[Section] = &[
    Section {
        name: "communication_choices",
        table: "communication_preferences",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Your choices about the newsletter, tracking in it and profiling, as they stand.",
    },
    Section {
        name: "communication_choice_history",
        table: "communication_choices",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Every change of those choices: when, how (sign-up, settings, unsubscribe link) and from which IP address and device.",
    },
    Section {
        name: "newsletter_events",
        table: "campaign_events",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Newsletters sent to you, and (only if you allowed counting) when you opened them and which links you followed.",
    },
    Section {
        name: "policy_acceptances",
        table: "policy_acceptances",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Each version of the privacy policy, terms and cookie policy you accepted: when, how, from which IP address and device.",
    },
    Section {
        name: "support_requests",
        table: "support_requests",
        filter: "user_id = {u} OR email = (SELECT email FROM users WHERE id = {u})",
        withheld: &[],
        sealed: &[],
        about: "Messages you sent through the contact form.",
    },
    Section {
        name: "support_answers",
        table: "support_replies",
        filter: "request_id IN (SELECT id FROM support_requests WHERE user_id = {u} OR email = (SELECT email FROM users WHERE id = {u}))",
        withheld: &["staff_id"],
        sealed: &[],
        about: "Our answers to those messages.",
    },
    Section {
        name: "breach_notices_sent_to_you",
        table: "breach_notices",
        filter: "id IN (SELECT notice_id FROM breach_recipients WHERE user_id = {u})",
        withheld: &["created_by", "audience", "recipients"],
        sealed: &[],
        about: "Security notices we sent you.",
    },
    Section {
        name: "surveys_answered",
        table: "survey_completions",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "The course runs whose survey you answered. Your answers themselves are stored without any link to you, so they cannot be included.",
    },
    Section {
        name: "data_requests",
        table: "data_requests",
        filter: "user_id = {u}",
        withheld: &["entered_by"],
        sealed: &[],
        about: "Requests you made about your data (like this copy), with the dates they were received, due and answered.",
    },
];
