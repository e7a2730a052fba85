//! Policies (COM-5): the privacy policy, the terms and the cookie policy are
//! versioned documents staff publish. Each page shows when it was last
//! updated and its history. A version marked material is announced by a site
//! banner (for `BANNER_DAYS`) and by email, and every user must accept it
//! before going on: at sign-in the session starts only once they have, and a
//! session already open is stopped at its next request (`Reacceptance`) and
//! sent to the acceptance page, then on to where it was going. Minor edits
//! need no acceptance. Every acceptance is recorded (version, time, how:
//! `signup`, `sign_in`, or `session` when accepted in an open session).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Method, Status, uri::Origin};
use rocket::response::{self, Redirect, Responder};
use rocket::{Data, Request, get};
use serde::Serialize;
use serde_json::json;

use crate::db::schema::{policy_acceptances, policy_versions, users};
use crate::db::{Conn, Db, DbError};
use crate::web::guards::SessionState;
use crate::web::next::NextPath;

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
            let everyone: Vec<(String, String)> = users::table
                .filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()))
                .select((users::email, users::username))
                .load(conn)?;
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

/// What every new account records at once (accounts' `RecordSignup`): each
/// current policy version ticked at sign-up (COM-5) and the newsletter
/// choice, off unless ticked (COM-1).
pub fn record_signup(
    conn: &mut Conn,
    user_id: i64,
    marketing: bool,
    client: &crate::kernel::ClientInfo,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let versions = current_ids(conn)?;
    accept(conn, user_id, &versions, "signup", client, now)?;
    if marketing {
        let how = super::comms::How { method: "signup", ip: client.ip.clone(), user_agent: client.user_agent.clone() };
        let choice = super::comms::Preferences { marketing_email: true, ..Default::default() };
        super::comms::set(conn, user_id, choice, &how, now)?;
    }
    Ok(())
}

/// Whether the account has policy versions to accept before a session
/// starts (accounts' `PoliciesPending`).
pub fn any_pending(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    Ok(!pending(conn, user_id)?.is_empty())
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
    client: &crate::kernel::ClientInfo,
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
pub struct Banner(pub super::Shown<super::views::PolicyBanner>);

/// The material policy change every page's layout announces, if any
/// (`web::page::LayoutParts`).
pub fn layout_banner(req: &rocket::Request<'_>) -> serde_json::Value {
    serde_json::to_value(req.rocket().state::<Banner>().and_then(|b| b.get())).unwrap_or_default()
}

impl Banner {
    pub fn refresh(&self, conn: &mut Conn, now: NaiveDateTime) -> QueryResult<()> {
        let latest: Option<PolicyVersion> = policy_versions::table
            .filter(policy_versions::material.eq(true))
            .filter(policy_versions::published_at.ge(now - Duration::days(BANNER_DAYS)))
            .order(policy_versions::published_at.desc())
            .select(PolicyVersion::as_select())
            .first(conn)
            .optional()?;
        let value = latest.map(|v| super::views::PolicyBanner {
            title: title(&v.kind),
            path: path(&v.kind),
            date: crate::web::format::Day::from(v.published_at),
            changes: v.changes,
        });
        self.0.set(value);
        Ok(())
    }

    pub fn get(&self) -> Option<super::views::PolicyBanner> {
        self.0.get()
    }
}

/// What an open session must have accepted (COM-5): for each document with
/// a material version, the ids of that version and of every later one
/// (accepting any of them accepts the change). Held in memory, refreshed on
/// publish and re-read at most every `RECHECK` (another process may have
/// published). A person found to have accepted is remembered until the next
/// material change, so their requests cost no query; before that, one
/// indexed query (`policy_acceptances (user_id, policy_id)` is unique).
#[derive(Clone, Default)]
pub struct Required(Arc<Mutex<RequiredState>>);

#[derive(Default)]
struct RequiredState {
    read_at: Option<std::time::Instant>,
    /// Per document with a material version: the ids that satisfy it, the material one first.
    documents: Vec<Vec<i64>>,
    /// People known to have accepted every document of `documents`.
    accepted: HashSet<i64>,
}

/// How long another process's publication may go unseen.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);
/// People remembered as having accepted, at most (then the memory starts afresh).
const REMEMBERED: usize = 100_000;

impl Required {
    fn state(&self) -> std::sync::MutexGuard<'_, RequiredState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn refresh(&self, conn: &mut Conn) -> QueryResult<()> {
        let rows: Vec<(i64, String, i32, bool)> = policy_versions::table
            .order(policy_versions::version.asc())
            .select((policy_versions::id, policy_versions::kind, policy_versions::version, policy_versions::material))
            .load(conn)?;
        let mut documents = Vec::new();
        for (kind, _, _) in KINDS {
            let of_kind = || rows.iter().filter(move |(_, k, _, _)| k == kind);
            let Some(material) = of_kind().filter(|r| r.3).map(|r| r.2).max() else { continue };
            documents.push(of_kind().filter(|r| r.2 >= material).map(|r| r.0).collect::<Vec<_>>());
        }
        let mut state = self.state();
        let material = |d: &[Vec<i64>]| d.iter().map(|ids| ids.first().copied()).collect::<Vec<_>>();
        if material(&state.documents) != material(&documents) {
            state.accepted.clear();
        }
        state.documents = documents;
        state.read_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// Whether `user_id` must accept a material change before going on.
    pub async fn pending_for(&self, db: &Db, user_id: i64) -> Result<bool, DbError> {
        if self.state().read_at.is_none_or(|t| t.elapsed() > RECHECK) {
            let me = self.clone();
            db.run(move |conn| me.refresh(conn).map_err(DbError::Query)).await?;
        }
        let documents = {
            let state = self.state();
            if state.documents.is_empty() || state.accepted.contains(&user_id) {
                return Ok(false);
            }
            state.documents.clone()
        };
        let ids = documents.concat();
        let accepted: Vec<i64> = db
            .run(move |conn| {
                policy_acceptances::table
                    .filter(policy_acceptances::user_id.eq(user_id))
                    .filter(policy_acceptances::policy_id.eq_any(ids))
                    .select(policy_acceptances::policy_id)
                    .load(conn)
                    .map_err(DbError::Query)
            })
            .await?;
        let all = documents.iter().all(|d| d.iter().any(|id| accepted.contains(id)));
        if all {
            let mut state = self.state();
            if state.documents.iter().map(|d| d.first()).eq(documents.iter().map(|d| d.first())) {
                if state.accepted.len() >= REMEMBERED {
                    state.accepted.clear();
                }
                state.accepted.insert(user_id);
            }
        }
        Ok(!all)
    }
}

/// Where a request that must wait for an acceptance is sent (see `Reacceptance`).
pub const INTERRUPTED: &str = "/policies/required";

/// Addresses an open session reaches before accepting: what is needed to
/// read and accept the policies or to leave, the assets, and what answers
/// to its own credential rather than to the session (partner keys, SCIM
/// tokens, signed callbacks, links from mail).
fn open_to_all(path: &str) -> bool {
    const EXACT: [&str; 8] =
        ["/policies/accept", INTERRUPTED, "/signout", "/cookies", "/healthz", "/readyz", "/metrics", "/favicon.ico"];
    const UNDER: [&str; 8] = [
        "/static/",
        "/api/",
        "/scim/v2/",
        "/payments/stripe/webhook",
        "/proctoring/callback",
        "/unsubscribe/",
        "/o/",
        "/c/",
    ];
    EXACT.contains(&path)
        || KINDS.iter().any(|(_, p, _)| *p == path)
        || UNDER.iter().any(|u| path.starts_with(u) || path == u.trim_end_matches('/'))
}

/// Where the person was going: the page asked for, or, for a form posted
/// from a page of the site, that page (the form is not carried out; it is
/// sent again once accepted). Anything else is the dashboard.
fn where_going(req: &Request<'_>) -> NextPath {
    if matches!(req.method(), Method::Get | Method::Head) {
        return NextPath::or_home(Some(&req.uri().to_string()));
    }
    let base = req.rocket().state::<crate::config::Config>().map(|c| c.base_url()).unwrap_or_default();
    let from = req.headers().get_one("Referer").and_then(|r| r.strip_prefix(base.trim_end_matches('/')));
    NextPath::or_home(from.filter(|p| p.starts_with('/')))
}

/// Stops every request of an open session whose person has not accepted the
/// latest material change: it is re-addressed to `INTERRUPTED`, which sends
/// a browser to the acceptance page (keeping where it was going) and answers
/// software with a problem document. Attach after the session lookup.
pub struct Reacceptance;

#[rocket::async_trait]
impl Fairing for Reacceptance {
    fn info(&self) -> Info {
        Info { name: "policy re-acceptance", kind: Kind::Request }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let Some(user_id) = req.local_cache(SessionState::default).user.as_ref().map(|u| u.id) else { return };
        if open_to_all(req.uri().path().as_str()) {
            return;
        }
        let (Some(required), Some(db)) =
            (req.rocket().state::<Required>().cloned(), req.rocket().state::<Db>().cloned())
        else {
            return;
        };
        match required.pending_for(&db, user_id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, "policy acceptance check failed");
                return;
            }
        }
        let next = where_going(req);
        if let Ok(uri) = Origin::parse_owned(format!("{INTERRUPTED}?next={}", urlencoding::encode(next.as_str()))) {
            req.set_method(Method::Get);
            req.set_uri(uri);
        }
    }
}

/// A request stopped by `Reacceptance`.
#[get("/policies/required?<next>")]
pub fn required(next: Option<NextPath>) -> Interrupted {
    Interrupted(next.unwrap_or_else(NextPath::home))
}

pub struct Interrupted(NextPath);

impl<'r> Responder<'r, 'static> for Interrupted {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if crate::web::error::wants_json(req) {
            let detail = "We changed our policies. Accept the new version at /policies/accept before going on.";
            return Ok(crate::web::error::render_error(req, Status::Forbidden, detail, None));
        }
        Redirect::to(format!("/policies/accept?next={}", urlencoding::encode(self.0.as_str()))).respond_to(req)
    }
}
