//! Communications (COM-1, COM-2, RET-4) and objection (RGT-3, RGT-4).
//!
//! Marketing email goes only to learners who opted in (unchecked at sign-up,
//! editable in settings), and the opt-in stands until they withdraw it; no
//! retention rule touches it. Every newsletter carries a one-click
//! unsubscribe (RFC 8058: `List-Unsubscribe` with an HTTPS link and
//! `List-Unsubscribe-Post`), signed with the site's secret so it works
//! without signing in and cannot be forged for someone else. Opens and clicks
//! are recorded only for learners who allowed tracking and did not object to
//! profiling (`profiling::allows`); everyone else gets the links as written
//! and no pixel. Objecting to profiling, and withdrawing the objection, are
//! data requests recorded as carried out at once.
//! Transactional mail (sign-in, enrollment, erasure…) does not look here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::db::Conn;
use crate::db::schema::{campaign_events, campaigns, communication_choices, communication_preferences, users};
pub use crate::kernel::signer::LinkSigner;

pub const SEND_NEWSLETTER: &str = "newsletter.send";

/// The choices, all off when the learner never set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = communication_preferences)]
pub struct Preferences {
    pub marketing_email: bool,
    pub email_tracking: bool,
    pub object_profiling: bool,
}

pub fn preferences(conn: &mut Conn, user_id: i64) -> QueryResult<Preferences> {
    Ok(communication_preferences::table
        .find(user_id)
        .select(Preferences::as_select())
        .first(conn)
        .optional()?
        .unwrap_or_default())
}

/// How a choice was made, kept with it.
pub struct How<'a> {
    /// `signup`, `settings`, `unsubscribe_link`, `one_click`.
    pub method: &'a str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Stores new choices and records each one that changed; returns the changed
/// names. An objection to profiling, or its withdrawal, is also a data request
/// (RGT-5), recorded as carried out at once with what was done.
pub fn set(
    conn: &mut Conn,
    user_id: i64,
    new: Preferences,
    how: &How<'_>,
    now: NaiveDateTime,
) -> QueryResult<Vec<&'static str>> {
    crate::db::transaction(conn, |conn| {
        super::lock_person(conn, user_id)?;
        let old = preferences(conn, user_id)?;
        let changed: Vec<(&'static str, bool)> = [
            ("marketing_email", old.marketing_email, new.marketing_email),
            ("email_tracking", old.email_tracking, new.email_tracking),
            ("object_profiling", old.object_profiling, new.object_profiling),
        ]
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(name, _, after)| (name, after))
        .collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        diesel::delete(communication_preferences::table.find(user_id)).execute(conn)?;
        diesel::insert_into(communication_preferences::table)
            .values((
                communication_preferences::user_id.eq(user_id),
                communication_preferences::marketing_email.eq(new.marketing_email),
                communication_preferences::email_tracking.eq(new.email_tracking),
                communication_preferences::object_profiling.eq(new.object_profiling),
                communication_preferences::updated_at.eq(now),
            ))
            .execute(conn)?;
        for (choice, value) in &changed {
            diesel::insert_into(communication_choices::table)
                .values((
                    communication_choices::user_id.eq(user_id),
                    communication_choices::choice.eq(choice),
                    communication_choices::value.eq(value),
                    communication_choices::method.eq(how.method),
                    communication_choices::ip.eq(&how.ip),
                    communication_choices::user_agent.eq(&how.user_agent),
                    communication_choices::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        if old.object_profiling != new.object_profiling {
            record_objection(conn, user_id, new.object_profiling, how, now)?;
        }
        Ok(changed.into_iter().map(|(name, _)| name).collect())
    })
}

/// The data request of an objection to profiling (`on`) or its withdrawal,
/// done as it is made.
fn record_objection(conn: &mut Conn, user_id: i64, on: bool, how: &How<'_>, now: NaiveDateTime) -> QueryResult<i64> {
    use super::{kind, profiling, source};
    let place = if how.method == "settings" { "on the email and profiling settings page" } else { "on the site" };
    let (kind, details, outcome) = if on {
        let removed = profiling::on_objection(conn, user_id)?;
        (kind::OBJECTION, format!("Objection to profiling, made {place}."), profiling::objection_outcome(removed))
    } else {
        (
            kind::OBJECTION_WITHDRAWN,
            format!("Objection to profiling withdrawn {place}."),
            "Objection withdrawn: each use of profiling is again as the other choices allow (newsletter counting \
             only with consent to it, usage statistics as the cookie settings allow)."
                .to_string(),
        )
    };
    super::record_carried_out(conn, user_id, kind, source::SELF_SERVICE, &details, &outcome, None, now)
}

/// Turns marketing email off from a signed link; false when it was off already.
pub fn unsubscribe(conn: &mut Conn, user_id: i64, how: &How<'_>, now: NaiveDateTime) -> QueryResult<bool> {
    let current = preferences(conn, user_id)?;
    if !current.marketing_email {
        return Ok(false);
    }
    set(conn, user_id, Preferences { marketing_email: false, ..current }, how, now).map(|changed| !changed.is_empty())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = campaigns)]
pub struct Campaign {
    pub id: i64,
    pub subject: String,
    pub body: String,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
    pub recipients: i32,
}

/// Staff send a newsletter: one job per learner who opted in now (each job checks again before sending).
pub fn send_campaign(
    conn: &mut Conn,
    subject: &str,
    body: &str,
    by: i64,
    now: NaiveDateTime,
) -> Result<(i64, usize), String> {
    let (subject, body) = (subject.trim(), body.trim());
    if subject.is_empty() || subject.chars().count() > 150 {
        return Err("Give the newsletter a subject of at most 150 characters.".into());
    }
    if body.is_empty() || body.len() > 100_000 {
        return Err("Write the newsletter (Markdown, at most 100 000 characters).".into());
    }
    crate::db::transaction(conn, |conn| {
        let recipients: Vec<i64> = communication_preferences::table
            .inner_join(users::table)
            .filter(communication_preferences::marketing_email.eq(true))
            .filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()))
            .filter(users::email_verified_at.is_not_null())
            .select(users::id)
            .load(conn)?;
        let id: i64 = diesel::insert_into(campaigns::table)
            .values((
                campaigns::subject.eq(subject),
                campaigns::body.eq(body),
                campaigns::created_by.eq(by),
                campaigns::created_at.eq(now),
                campaigns::recipients.eq(recipients.len() as i32),
            ))
            .returning(campaigns::id)
            .get_result(conn)?;
        for user in &recipients {
            crate::jobs::enqueue(conn, SEND_NEWSLETTER, &json!({ "campaign_id": id, "user_id": user }))?;
        }
        Ok::<_, diesel::result::Error>((id, recipients.len()))
    })
    .map_err(|e| e.to_string())
}

fn event(
    conn: &mut Conn,
    campaign_id: i64,
    user_id: i64,
    kind: &str,
    url: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(campaign_events::table)
        .values((
            campaign_events::campaign_id.eq(campaign_id),
            campaign_events::user_id.eq(user_id),
            campaign_events::kind.eq(kind),
            campaign_events::url.eq(url),
            campaign_events::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// The `http(s)` links of a rendered body, in order, without repeats.
fn links(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"href="(https?://[^"]+)""#).expect("a valid pattern");
    let mut out: Vec<String> = Vec::new();
    for c in re.captures_iter(html) {
        let link = c[1].replace("&amp;", "&");
        if !out.contains(&link) {
            out.push(link);
        }
    }
    out
}

/// A campaign's body as mailed: HTML and text with every relative link made
/// absolute on the site's base URL (an email has no page to be relative to).
fn campaign_parts(body: &str, base_url: &str) -> (String, String) {
    match url::Url::parse(&format!("{}/", base_url.trim_end_matches('/'))) {
        Ok(base) => (
            crate::learning::content::render_markdown_absolute(body, &base),
            crate::learning::content::markdown_with_absolute_links(body, &base),
        ),
        Err(_) => (crate::learning::content::render_markdown(body), body.to_string()),
    }
}

/// The newsletter job: the mail payload for one recipient, or `None` when
/// they withdrew since the campaign was sent (or are gone).
pub fn newsletter_payload(
    conn: &mut Conn,
    signer: &LinkSigner,
    base_url: &str,
    campaign_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<serde_json::Value>> {
    let prefs = preferences(conn, user_id)?;
    let user: Option<(String, String, String)> = users::table
        .find(user_id)
        .filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()))
        .select((users::email, users::username, users::first_name))
        .first(conn)
        .optional()?;
    let (Some((email, username, first_name)), true) = (user, prefs.marketing_email) else { return Ok(None) };
    let campaign: Campaign = campaigns::table.find(campaign_id).select(Campaign::as_select()).first(conn)?;
    let (mut html, text) = campaign_parts(&campaign.body, base_url);
    let opens = super::profiling::allows(&prefs, super::profiling::Use::NewsletterOpens);
    let clicks = super::profiling::allows(&prefs, super::profiling::Use::NewsletterClicks);
    let token = signer.tracking_token(campaign_id, user_id);
    if clicks {
        for link in links(&html) {
            let escaped = link.replace('&', "&amp;");
            let via = format!(
                "{base_url}/c/{token}?to={}",
                percent_encoding::utf8_percent_encode(&link, percent_encoding::NON_ALPHANUMERIC)
            );
            html = html.replace(&format!("href=\"{escaped}\""), &format!("href=\"{via}\""));
        }
    }
    event(conn, campaign_id, user_id, "sent", None, now)?;
    let unsubscribe = format!("{base_url}/unsubscribe/{}", signer.unsubscribe_token(user_id));
    Ok(Some(json!({
        "to": email,
        "subject": campaign.subject,
        "template": "newsletter",
        "list_unsubscribe": unsubscribe,
        "ctx": {
            "name": if first_name.is_empty() { username } else { first_name },
            "body_html": html,
            "body_text": text,
            "newsletter": true,
            "unsubscribe": unsubscribe,
            "pixel": opens.then(|| format!("{base_url}/o/{token}")),
        },
    })))
}

/// An open, from the pixel; ignored unless the recipient allows tracking and did not object.
pub fn record_open(conn: &mut Conn, campaign_id: i64, user_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    if super::profiling::allows(&preferences(conn, user_id)?, super::profiling::Use::NewsletterOpens) {
        event(conn, campaign_id, user_id, "open", None, now)?;
    }
    Ok(())
}

/// A click: where to send the reader, when `to` is a link of the campaign
/// (never an open redirect); recorded only when the recipient allows tracking and did not object.
pub fn record_click(
    conn: &mut Conn,
    base_url: &str,
    campaign_id: i64,
    user_id: i64,
    to: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let Some(body) = campaigns::table.find(campaign_id).select(campaigns::body).first::<String>(conn).optional()?
    else {
        return Ok(None);
    };
    if !links(&campaign_parts(&body, base_url).0).iter().any(|l| l == to) {
        return Ok(None);
    }
    if super::profiling::allows(&preferences(conn, user_id)?, super::profiling::Use::NewsletterClicks) {
        event(conn, campaign_id, user_id, "click", Some(to), now)?;
    }
    Ok(Some(to.to_string()))
}

/// A campaign with its counts, for staff: aggregates only.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignStats {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub sent: i64,
    pub opened_by: i64,
    pub clicked_by: i64,
}

/// A page of campaigns, the newest first: `limit` rows from `offset`.
pub fn campaigns_with_stats(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<CampaignStats>> {
    let list: Vec<Campaign> = campaigns::table
        .order(campaigns::id.desc())
        .offset(offset)
        .limit(limit)
        .select(Campaign::as_select())
        .load(conn)?;
    let ids: Vec<i64> = list.iter().map(|c| c.id).collect();
    // One query for every count: people per campaign and kind of event.
    let counts: Vec<(i64, String, i64)> = campaign_events::table
        .filter(campaign_events::campaign_id.eq_any(&ids))
        .group_by((campaign_events::campaign_id, campaign_events::kind))
        .select((
            campaign_events::campaign_id,
            campaign_events::kind,
            diesel::dsl::count(campaign_events::user_id).aggregate_distinct(),
        ))
        .load(conn)?;
    let count = |campaign: i64, kind: &str| {
        counts.iter().find(|(c, k, _)| *c == campaign && k == kind).map_or(0, |(_, _, n)| *n)
    };
    Ok(list
        .into_iter()
        .map(|campaign| {
            let id = campaign.id;
            CampaignStats {
                campaign,
                sent: count(id, "sent"),
                opened_by: count(id, "open"),
                clicked_by: count(id, "click"),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_once_and_unescaped() {
        let html = r#"<a href="https://a.example/x?y=1&amp;z=2">a</a> <a href="https://a.example/x?y=1&amp;z=2">b</a> <a href="/local">c</a>"#;
        assert_eq!(links(html), ["https://a.example/x?y=1&z=2"]);
    }
}
