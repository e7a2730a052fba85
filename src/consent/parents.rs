//! Consent on behalf of a minor. A learner under 18 may always decline, but
//! their "yes" to sharing is not a consent: it becomes a request their
//! parent or guardian (the one who confirmed the account) decides through an
//! emailed link showing the exact text and categories. Only the parent's
//! decision is written to the ledger, with actor `parent`, method
//! `email_link` and the name they typed. Until then nothing is shared on
//! that basis (a member still gets de-identified records).

use chrono::{Datelike, Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use super::ledger::{self, Action, Entry, Evidence};
use super::texts;
use super::{Categories, Purpose};
use crate::accounts::tokens::digest;
use crate::db::Conn;
use crate::db::schema::{parent_sharing_requests, parental_consents, partners, users};

/// How long a parent's link works.
pub const LIFETIME: Duration = Duration::days(14);

/// The address of the parent who confirmed the account, when the learner is
/// under 18 today.
pub fn minor_parent(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Option<String>> {
    let born: Option<chrono::NaiveDate> = users::table.find(user_id).select(users::date_of_birth).first(conn)?;
    // Only sign-up asks for the date; accounts without one are adults' (staff, operators).
    let Some(born) = born else { return Ok(None) };
    let today = now.date();
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    if age >= 18 {
        return Ok(None);
    }
    parental_consents::table
        .filter(parental_consents::user_id.eq(user_id))
        .order(parental_consents::id.desc())
        .select(parental_consents::parent_email)
        .first(conn)
        .optional()
}

/// Appends the decision, unless it is a learner's own grant while they are
/// a minor: then their parent is asked instead. True when the parent was asked.
pub fn grant_or_ask(conn: &mut Conn, entry: Entry<'_>, now: NaiveDateTime) -> QueryResult<bool> {
    let learners_grant = entry.action == Action::Grant && entry.evidence.actor == "learner";
    if learners_grant
        && let (Some(partner_id), Some(text)) = (entry.partner_id, entry.text)
        && let Some(parent) = minor_parent(conn, entry.user_id, now)?
    {
        ask(conn, &entry, partner_id, text.id, &parent, now)?;
        return Ok(true);
    }
    ledger::append(conn, entry, now)?;
    Ok(false)
}

fn ask(
    conn: &mut Conn,
    entry: &Entry<'_>,
    partner_id: i64,
    text_id: i64,
    parent: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let token = crate::kernel::tokens::random_token(32);
    diesel::insert_into(parent_sharing_requests::table)
        .values((
            parent_sharing_requests::user_id.eq(entry.user_id),
            parent_sharing_requests::partner_id.eq(partner_id),
            parent_sharing_requests::purpose.eq(entry.purpose),
            parent_sharing_requests::scope.eq(entry.scope),
            parent_sharing_requests::categories.eq(entry.categories.to_string()),
            parent_sharing_requests::text_id.eq(text_id),
            parent_sharing_requests::parent_email.eq(parent),
            parent_sharing_requests::token_hash.eq(digest(&token)),
            parent_sharing_requests::created_at.eq(now),
            parent_sharing_requests::expires_at.eq(now + LIFETIME),
        ))
        .execute(conn)?;
    let (first_name, partner): (String, String) = users::table
        .find(entry.user_id)
        .select(users::first_name)
        .first::<String>(conn)
        .and_then(|f| partners::table.find(partner_id).select(partners::name).first(conn).map(|p| (f, p)))?;
    let purpose = Purpose::parse(entry.purpose).map_or(entry.purpose.to_string(), |p| p.label().to_string());
    crate::notify::enqueue_email(
        conn,
        parent,
        &format!("{first_name} asks to share their learning data with {partner}"),
        "parent_sharing",
        json!({ "learner_first_name": first_name, "partner": partner, "purpose": purpose, "path": format!("/parent-sharing/{token}") }),
    )?;
    Ok(())
}

/// A request as the parent's page shows it.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: i64,
    pub user_id: i64,
    pub learner_first_name: String,
    pub partner_id: i64,
    pub partner: String,
    pub purpose: String,
    pub scope: String,
    pub categories: Categories,
    pub text: texts::ConsentText,
    pub parent_email: String,
}

/// The undecided, unexpired request behind a link.
pub fn open(conn: &mut Conn, token: &str, now: NaiveDateTime) -> QueryResult<Option<Request>> {
    type Row = (i64, i64, String, i64, String, String, String, String, i64, String);
    let row: Option<Row> = parent_sharing_requests::table
        .inner_join(users::table)
        .inner_join(partners::table)
        .filter(parent_sharing_requests::token_hash.eq(digest(token)))
        .filter(parent_sharing_requests::decided_at.is_null())
        .filter(parent_sharing_requests::expires_at.gt(now))
        .select((
            parent_sharing_requests::id,
            parent_sharing_requests::user_id,
            users::first_name,
            parent_sharing_requests::partner_id,
            partners::name,
            parent_sharing_requests::purpose,
            parent_sharing_requests::scope,
            parent_sharing_requests::categories,
            parent_sharing_requests::text_id,
            parent_sharing_requests::parent_email,
        ))
        .first(conn)
        .optional()?;
    let Some((id, user_id, first, partner_id, partner, purpose, scope, cats, text_id, parent_email)) = row else {
        return Ok(None);
    };
    let text = texts::by_id(conn, text_id)?;
    Ok(Some(Request {
        id,
        user_id,
        learner_first_name: first,
        partner_id,
        partner,
        purpose,
        scope,
        categories: Categories::parse(&cats),
        text,
        parent_email,
    }))
}

/// The parent's decision: recorded once, in the ledger, as theirs. `None`
/// when the link is no longer open.
pub fn decide(
    conn: &mut Conn,
    token: &str,
    yes: bool,
    parent_name: &str,
    client: &crate::kernel::ClientInfo,
    now: NaiveDateTime,
) -> QueryResult<Option<Request>> {
    crate::db::transaction(conn, |conn| {
        let Some(req) = open(conn, token, now)? else { return Ok(None) };
        let taken = diesel::update(
            parent_sharing_requests::table.find(req.id).filter(parent_sharing_requests::decided_at.is_null()),
        )
        .set((
            parent_sharing_requests::decided_at.eq(now),
            parent_sharing_requests::decision.eq(if yes { "grant" } else { "decline" }),
        ))
        .execute(conn)?;
        if taken != 1 {
            return Ok(None);
        }
        let evidence = Evidence {
            method: "email_link",
            actor: "parent",
            actor_user_id: None,
            actor_name: Some(parent_name.to_string()),
            note: Some(format!("parent or guardian at {}", req.parent_email)),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        };
        ledger::append(
            conn,
            Entry {
                user_id: req.user_id,
                partner_id: Some(req.partner_id),
                purpose: &req.purpose,
                scope: &req.scope,
                action: if yes { Action::Grant } else { Action::Decline },
                categories: &req.categories,
                text: Some(&req.text),
                evidence: &evidence,
            },
            now,
        )?;
        Ok(Some(req))
    })
}

/// The learner's requests still waiting for their parent: (partner, purpose, asked at).
pub fn waiting(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<(String, String, NaiveDateTime)>> {
    parent_sharing_requests::table
        .inner_join(partners::table)
        .filter(parent_sharing_requests::user_id.eq(user_id))
        .filter(parent_sharing_requests::decided_at.is_null())
        .filter(parent_sharing_requests::expires_at.gt(now))
        .order(parent_sharing_requests::id.desc())
        .select((partners::name, parent_sharing_requests::purpose, parent_sharing_requests::created_at))
        .load(conn)
}
