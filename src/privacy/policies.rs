//! Policies (COM-5): the privacy policy, the terms and the cookie policy are
//! versioned documents staff publish. Each page shows when it was last
//! updated and its history. A version marked material is announced by a site
//! banner (for `BANNER_DAYS`) and by email, and every user must accept it at
//! their next sign-in: the session starts only once they have. Minor edits
//! need no acceptance. Every acceptance is recorded (version, time, how).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::db::Conn;
use crate::db::schema::{policy_acceptances, policy_versions, users};

/// The documents, their addresses and titles.
pub const KINDS: [(&str, &str, &str); 3] = [
    ("privacy", "/privacy", "Privacy policy"),
    ("terms", "/terms", "Terms of use"),
    ("cookies", "/cookie-policy", "Cookie policy"),
];
/// Days a material change is announced on every page.
pub const BANNER_DAYS: i64 = 30;

pub fn title(kind: &str) -> &'static str {
    KINDS.iter().find(|(k, _, _)| *k == kind).map_or("Policy", |(_, _, t)| *t)
}

pub fn path(kind: &str) -> &'static str {
    KINDS.iter().find(|(k, _, _)| *k == kind).map_or("/", |(_, p, _)| *p)
}

fn default_body(kind: &str) -> &'static str {
    match kind {
        "privacy" => include_str!("../../docs/policies/privacy.md"),
        "terms" => include_str!("../../docs/policies/terms.md"),
        _ => include_str!("../../docs/policies/cookies.md"),
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = policy_versions)]
pub struct PolicyVersion {
    pub id: i64,
    pub kind: String,
    pub version: i32,
    pub body: String,
    pub changes: String,
    pub material: bool,
    pub published_by: Option<i64>,
    pub published_at: NaiveDateTime,
}

/// Publishes version 1 of any document that has none (the operator replaces it).
pub fn ensure_defaults(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<()> {
    for (kind, _, _) in KINDS {
        let any: i64 = policy_versions::table.filter(policy_versions::kind.eq(kind)).count().get_result(conn)?;
        if any == 0 {
            diesel::insert_into(policy_versions::table)
                .values((
                    policy_versions::kind.eq(kind),
                    policy_versions::version.eq(1),
                    policy_versions::body.eq(default_body(kind)),
                    policy_versions::changes.eq("First version."),
                    policy_versions::material.eq(false),
                    policy_versions::published_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Every version of a document, newest first.
pub fn history(conn: &mut Conn, kind: &str) -> QueryResult<Vec<PolicyVersion>> {
    policy_versions::table
        .filter(policy_versions::kind.eq(kind))
        .order(policy_versions::version.desc())
        .select(PolicyVersion::as_select())
        .load(conn)
}

pub fn current(conn: &mut Conn, kind: &str) -> QueryResult<Option<PolicyVersion>> {
    Ok(history(conn, kind)?.into_iter().next())
}

/// Publishes a new version; a material one is emailed to every active account. Returns its number.
pub fn publish(
    conn: &mut Conn,
    kind: &str,
    body: &str,
    changes: &str,
    material: bool,
    by: i64,
    now: NaiveDateTime,
) -> Result<i32, String> {
    if !KINDS.iter().any(|(k, _, _)| *k == kind) {
        return Err("Choose which policy this is.".into());
    }
    let (body, changes) = (body.trim(), changes.trim());
    if body.is_empty() || body.len() > 200_000 {
        return Err("Write the policy (Markdown, at most 200 000 characters).".into());
    }
    if changes.is_empty() || changes.chars().count() > 2000 {
        return Err("Say in a sentence or two what changed; readers see it.".into());
    }
    crate::db::transaction(conn, |conn| {
        let last = current(conn, kind)?;
        let version = last.map_or(1, |v| v.version + 1);
        diesel::insert_into(policy_versions::table)
            .values((
                policy_versions::kind.eq(kind),
                policy_versions::version.eq(version),
                policy_versions::body.eq(body),
                policy_versions::changes.eq(changes),
                policy_versions::material.eq(material),
                policy_versions::published_by.eq(by),
                policy_versions::published_at.eq(now),
            ))
            .execute(conn)?;
        if material {
            let everyone: Vec<(String, String)> =
                users::table.filter(users::status.eq("active")).select((users::email, users::username)).load(conn)?;
            for (email, username) in everyone {
                crate::notify::enqueue_email(
                    conn,
                    &email,
                    &format!("We changed our {}", title(kind).to_lowercase()),
                    "policy_changed",
                    json!({ "username": username, "policy": title(kind), "path": path(kind), "changes": changes }),
                )?;
            }
        }
        Ok::<_, diesel::result::Error>(version)
    })
    .map_err(|e| e.to_string())
}

/// The material versions `user_id` has not accepted (nor a later version of the same document).
pub fn pending(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<PolicyVersion>> {
    let mut out = Vec::new();
    for (kind, _, _) in KINDS {
        let Some(material) = policy_versions::table
            .filter(policy_versions::kind.eq(kind))
            .filter(policy_versions::material.eq(true))
            .order(policy_versions::version.desc())
            .select(PolicyVersion::as_select())
            .first(conn)
            .optional()?
        else {
            continue;
        };
        let accepted: i64 = policy_acceptances::table
            .inner_join(policy_versions::table)
            .filter(policy_acceptances::user_id.eq(user_id))
            .filter(policy_versions::kind.eq(kind))
            .filter(policy_versions::version.ge(material.version))
            .count()
            .get_result(conn)?;
        if accepted == 0 {
            out.push(current(conn, kind)?.unwrap_or(material));
        }
    }
    Ok(out)
}

/// Records acceptance of these versions.
pub fn accept(
    conn: &mut Conn,
    user_id: i64,
    ids: &[i64],
    method: &str,
    client: &crate::web::ClientInfo,
    now: NaiveDateTime,
) -> QueryResult<()> {
    for id in ids {
        let already: i64 = policy_acceptances::table
            .filter(policy_acceptances::user_id.eq(user_id))
            .filter(policy_acceptances::policy_id.eq(id))
            .count()
            .get_result(conn)?;
        if already == 0 {
            diesel::insert_into(policy_acceptances::table)
                .values((
                    policy_acceptances::user_id.eq(user_id),
                    policy_acceptances::policy_id.eq(id),
                    policy_acceptances::method.eq(method),
                    policy_acceptances::ip.eq(&client.ip),
                    policy_acceptances::user_agent.eq(&client.user_agent),
                    policy_acceptances::accepted_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// The current version of every document, for sign-up (terms and privacy notice accepted together).
pub fn current_ids(conn: &mut Conn) -> QueryResult<Vec<i64>> {
    let mut ids = Vec::new();
    for (kind, _, _) in KINDS {
        ids.extend(current(conn, kind)?.map(|v| v.id));
    }
    Ok(ids)
}

/// The announcement of the latest material change, shown on every page for
/// `BANNER_DAYS`; held in memory and refreshed on publish and by the worker.
#[derive(Clone, Default)]
pub struct Banner(pub super::Shown);

impl Banner {
    pub fn refresh(&self, conn: &mut Conn, now: NaiveDateTime) -> QueryResult<()> {
        let latest: Option<PolicyVersion> = policy_versions::table
            .filter(policy_versions::material.eq(true))
            .filter(policy_versions::published_at.ge(now - Duration::days(BANNER_DAYS)))
            .order(policy_versions::published_at.desc())
            .select(PolicyVersion::as_select())
            .first(conn)
            .optional()?;
        let value = latest.map(|v| {
            json!({
                "title": title(&v.kind), "path": path(&v.kind),
                "date": v.published_at.format("%e %B %Y").to_string(), "changes": v.changes,
            })
        });
        self.0.set(value);
        Ok(())
    }

    pub fn get(&self) -> Option<Value> {
        self.0.get()
    }
}
