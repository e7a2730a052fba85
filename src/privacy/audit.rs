//! The audit log (SEC-4). Every request by someone acting in a role — staff,
//! moderators, member and course staff, partner staff, auditors — or by a
//! partner's API key, to a page that shows or changes other people's data is
//! written to `audit_log`: who, in which roles, viewed (GET) or changed
//! (POST) which path, with what result, from where, when. The `Audit` fairing
//! does it for every such route at once, so a new staff page cannot forget
//! to.
//!
//! Each entry names whose data it was: every audited handler takes the
//! [`Trail`] guard and declares the people (user ids) it showed or changed,
//! with the partner or course where it applies, or an item (an export id, a
//! case, a run) when a page is about many people at once, or that the page
//! shows no one's personal data. These go to `audit_subjects`. A GET answered
//! 2xx without a declaration is logged as an error (and the link walk of
//! every role fails on it). The query string that selected the subjects
//! goes to `audit_queries`, apart: it can hold an email address or a
//! username, so erasing a person deletes the queries of the entries naming
//! them and of those that searched for them ([`erase_queries`]); the entries
//! and the subject's id stay. `audit_log` and `audit_subjects` are
//! append-only (triggers in both databases refuse updates and deletes);
//! `audit_queries` refuses updates. Only auditors read the log, at `/audit`,
//! also by whose data it was, and their reading is logged too. Staff appoint
//! auditors, never themselves. A learner's copy of their data lists the
//! entries naming them (`export::staff_access`), by role.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Method;
use rocket::{FromForm, Request, Response, State, get};
use serde::Serialize;

use super::views;
use crate::accounts::roles::Role;
use crate::db::schema::{audit_log, audit_queries, audit_subjects, partners, users};
use crate::db::{Conn, Db, DbConnection, now};
use crate::web::guards::SessionState;
use crate::web::{AppError, AppResult, CurrentUser, Page};

/// Pages that show or change other people's data.
pub const AUDITED: [&str; 9] = [
    "/staff",
    "/audit",
    "/forums/moderation",
    "/forums/posts/",
    "/forums/moderators",
    "/studio",
    "/partners",
    "/outbox",
    "/api/v1/",
];

pub fn audited(path: &str) -> bool {
    AUDITED.iter().any(|p| path == p.trim_end_matches('/') || path.starts_with(p))
}

/// Longest query string kept, in characters.
const MAX_QUERY: usize = 1000;

/// What `audit_log.declared` says.
pub mod declared {
    /// The entry's `audit_subjects` rows name whose data it was (none when
    /// the page showed nobody, an empty search say).
    pub const SUBJECTS: &str = "subjects";
    /// The page shows no one's personal data.
    pub const NONE: &str = "none";
}

pub use crate::web::trail::{ApiCaller, Declared, MAX_SUBJECTS, Subject, Trail};

/// The query string as name=value pairs, decoded (what an auditor reads),
/// or None when there is none.
fn query_of(req: &Request<'_>) -> Option<String> {
    let q = req.uri().query()?;
    let pairs: Vec<String> =
        q.segments().map(|(k, v)| if v.is_empty() { k.to_string() } else { format!("{k}={v}") }).collect();
    let text = pairs.join("&");
    (!text.is_empty()).then(|| text.chars().take(MAX_QUERY).collect())
}

/// The values of a stored query, to match an erased person's username or email.
pub fn query_values(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').map(|pair| pair.split_once('=').map_or(pair, |(_, v)| v).trim())
}

/// Writes the audit line of every audited request made in a role.
pub struct Audit;

#[rocket::async_trait]
impl Fairing for Audit {
    fn info(&self) -> Info {
        Info { name: "audit log", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let path = req.uri().path().as_str().to_string();
        if !audited(&path) || !matches!(req.method(), Method::Get | Method::Post) {
            return;
        }
        let (actor_id, actor, roles) =
            if let Some((key_id, prefix, partner)) = req.local_cache(ApiCaller::default).0.clone() {
                // A partner's API key (whatever session cookie came along) has no
                // account: actor 0, named by the key's id and public prefix.
                (0, format!("API key {key_id} ({prefix})"), format!("partner_api:partner:{partner}"))
            } else if let Some(user) = req.local_cache(SessionState::default).user.clone() {
                if user.roles.is_empty() {
                    return;
                }
                let roles: Vec<String> = user
                    .roles
                    .iter()
                    .map(|(r, s)| if s.is_empty() { r.as_str().to_string() } else { format!("{}:{s}", r.as_str()) })
                    .collect();
                (user.id, user.username.clone(), roles.join(" "))
            } else {
                return;
            };
        let Some(db) = req.rocket().state::<Db>() else { return };
        let declaration = req.local_cache(Declared::default).take();
        let status = res.status();
        let declared_as = if declaration.named || !declaration.subjects.is_empty() {
            Some(declared::SUBJECTS)
        } else if declaration.nobody {
            Some(declared::NONE)
        } else {
            None
        };
        if declared_as.is_none() && req.method() == Method::Get && status.class().is_success() {
            // Every audited page declares whose data it shows (or that it shows no one's).
            tracing::error!(path = %path, "an audited page answered without declaring whose personal data it showed");
        }
        let mut subjects = declaration.subjects;
        let partner_slugs = declaration.partner_slugs;
        if declaration.more > 0 {
            subjects.push(Subject::default().item(format!("and {} more", declaration.more)));
        }
        let query = query_of(req);
        let entry = (
            audit_log::actor_id.eq(actor_id),
            audit_log::actor.eq(actor),
            audit_log::roles.eq(roles),
            audit_log::action.eq(if req.method() == Method::Get { "view" } else { "change" }),
            audit_log::method.eq(req.method().as_str()),
            audit_log::path.eq(path.chars().take(500).collect::<String>()),
            audit_log::status.eq(i32::from(status.code)),
            audit_log::ip.eq(crate::web::guards::client_ip(req).map(|ip| ip.to_string())),
            audit_log::created_at.eq(now()),
            audit_log::declared.eq(declared_as),
        );
        let written = db
            .run(move |conn| {
                crate::db::transaction(conn, |conn| {
                    let id: i64 = diesel::insert_into(audit_log::table)
                        .values(entry)
                        .returning(audit_log::id)
                        .get_result(conn)?;
                    if !partner_slugs.is_empty() {
                        let ids: Vec<i64> = partners::table
                            .filter(partners::slug.eq_any(&partner_slugs))
                            .select(partners::id)
                            .load(conn)?;
                        subjects.extend(ids.into_iter().map(Subject::of_partner));
                    }
                    let rows: Vec<_> = subjects
                        .into_iter()
                        .map(|s| {
                            (
                                audit_subjects::audit_id.eq(id),
                                audit_subjects::user_id.eq(s.user_id),
                                audit_subjects::partner_id.eq(s.partner_id),
                                audit_subjects::course_id.eq(s.course_id),
                                audit_subjects::item.eq(s.item),
                            )
                        })
                        .collect();
                    // Multi-row inserts exist per backend, not on the combined one.
                    for chunk in rows.chunks(100) {
                        match conn {
                            DbConnection::Sqlite(c) => {
                                diesel::insert_into(audit_subjects::table).values(chunk).execute(c)?
                            }
                            DbConnection::Pg(c) => {
                                diesel::insert_into(audit_subjects::table).values(chunk).execute(c)?
                            }
                        };
                    }
                    if let Some(query) = query {
                        diesel::insert_into(audit_queries::table)
                            .values((audit_queries::audit_id.eq(id), audit_queries::query.eq(query)))
                            .execute(conn)?;
                    }
                    Ok::<_, diesel::result::Error>(())
                })
                .map_err(crate::db::DbError::from)
            })
            .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

/// Erasure (RGT-2): deletes the query strings of the entries that name the
/// person, and of those that searched for their username or email. The
/// entries and their subject ids stay (the account row keeps only its id).
pub fn erase_queries(conn: &mut Conn, user_id: i64, username: &str, email: &str) -> QueryResult<usize> {
    let naming = audit_subjects::table.filter(audit_subjects::user_id.eq(user_id)).select(audit_subjects::audit_id);
    let mut n = diesel::delete(audit_queries::table.filter(audit_queries::audit_id.eq_any(naming))).execute(conn)?;
    let wanted: Vec<String> =
        [username, email].iter().map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty()).collect();
    let mut matching = Vec::new();
    for value in &wanted {
        let like = format!("%{}%", value.replace(['%', '_', '\\'], ""));
        let candidates: Vec<(i64, String)> = audit_queries::table
            .filter(crate::accounts::service::lower(audit_queries::query).like(like))
            .select((audit_queries::audit_id, audit_queries::query))
            .load(conn)?;
        matching.extend(
            candidates
                .into_iter()
                .filter(|(_, q)| query_values(q).any(|v| v.to_lowercase() == *value))
                .map(|(id, _)| id),
        );
    }
    if !matching.is_empty() {
        n += diesel::delete(audit_queries::table.filter(audit_queries::audit_id.eq_any(matching))).execute(conn)?;
    }
    Ok(n)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct Entry {
    pub id: i64,
    pub actor_id: i64,
    pub actor: String,
    pub roles: String,
    pub action: String,
    pub method: String,
    pub path: String,
    pub status: i32,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
    pub declared: Option<String>,
}

/// What an auditor searches by; every part optional.
#[derive(Debug, Default, FromForm)]
pub struct Search {
    pub actor: Option<String>,
    pub path: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Whose data: a user id or a username.
    pub subject: Option<String>,
    /// Which page of the lines found (`?page=`, 1-based).
    pub page: Option<String>,
}

impl Search {
    /// The address of page `page` of this search (its empty fields left out).
    pub fn link(&self, page: i64) -> String {
        let fields = [
            ("actor", &self.actor),
            ("path", &self.path),
            ("action", &self.action),
            ("from", &self.from),
            ("to", &self.to),
            ("subject", &self.subject),
        ];
        let mut query: Vec<String> = fields
            .into_iter()
            .filter_map(|(name, value)| value.as_deref().filter(|v| !v.trim().is_empty()).map(|v| (name, v)))
            .map(|(name, value)| format!("{name}={}", urlencoding::encode(value)))
            .collect();
        if page > 1 {
            query.push(format!("page={page}"));
        }
        if query.is_empty() { "/audit".to_string() } else { format!("/audit?{}", query.join("&")) }
    }
}

/// Lines per page of the audit log.
pub const PAGE: i64 = 200;

/// Subjects shown per entry on the auditor's page (the rest are counted).
const SHOWN_SUBJECTS: usize = 20;

/// The account a subject search names: a user id, or a username.
fn subject_id(conn: &mut Conn, subject: &str) -> QueryResult<Option<i64>> {
    if let Ok(id) = subject.parse::<i64>() {
        return Ok(Some(id));
    }
    users::table
        .filter(crate::accounts::service::lower(users::username).eq(subject.to_lowercase()))
        .select(users::id)
        .first(conn)
        .optional()
}

/// The lines a search finds, newest first: `limit` of them after skipping `offset`.
pub fn search(conn: &mut Conn, s: &Search, offset: i64, limit: i64) -> QueryResult<Vec<Entry>> {
    let mut q = audit_log::table.select(Entry::as_select()).into_boxed();
    if let Some(actor) = s.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        q = q.filter(audit_log::actor.eq(actor.to_string()));
    }
    if let Some(path) = s.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        q = q.filter(audit_log::path.like(format!("{}%", path.replace('%', ""))));
    }
    if let Some(action) = s.action.as_deref().filter(|a| ["view", "change"].contains(a)) {
        q = q.filter(audit_log::action.eq(action.to_string()));
    }
    if let Some(subject) = s.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let Some(id) = subject_id(conn, subject)? else { return Ok(Vec::new()) };
        let naming = audit_subjects::table.filter(audit_subjects::user_id.eq(id)).select(audit_subjects::audit_id);
        q = q.filter(audit_log::id.eq_any(naming));
    }
    let day =
        |d: &Option<String>| d.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
    if let Some(from) = day(&s.from) {
        q = q.filter(audit_log::created_at.ge(from.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if let Some(to) = day(&s.to) {
        q = q.filter(audit_log::created_at.lt(to.succ_opt().unwrap_or(to).and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    q.order(audit_log::id.desc()).offset(offset).limit(limit).load(conn)
}

/// A subject of an entry: (entry id, subject, the account's current username).
pub type Named = (i64, Subject, Option<String>);

/// The subjects (with the account's current username, `retired-<id>` once
/// erased) and query of each entry.
pub fn subjects_of(
    conn: &mut Conn,
    entries: &[i64],
) -> QueryResult<(Vec<Named>, std::collections::HashMap<i64, String>)> {
    type Row = (i64, Option<i64>, Option<i64>, Option<i64>, Option<String>, Option<String>);
    let mut subjects = Vec::new();
    for chunk in entries.chunks(500) {
        let rows: Vec<Row> = audit_subjects::table
            .left_join(users::table.on(audit_subjects::user_id.eq(users::id.nullable())))
            .filter(audit_subjects::audit_id.eq_any(chunk))
            .order(audit_subjects::id)
            .select((
                audit_subjects::audit_id,
                audit_subjects::user_id,
                audit_subjects::partner_id,
                audit_subjects::course_id,
                audit_subjects::item,
                users::username.nullable(),
            ))
            .load(conn)?;
        subjects.extend(rows.into_iter().map(|(a, user_id, partner_id, course_id, item, name)| {
            (a, Subject { user_id, partner_id, course_id, item }, name)
        }));
    }
    let queries = audit_queries::table
        .filter(audit_queries::audit_id.eq_any(entries))
        .select((audit_queries::audit_id, audit_queries::query))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    Ok((subjects, queries))
}

fn describe(s: &Subject, name: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(id) = s.user_id {
        parts.push(name.map_or_else(|| format!("user {id}"), |n| format!("user {id} ({n})")));
    }
    if let Some(id) = s.partner_id {
        parts.push(format!("partner {id}"));
    }
    if let Some(id) = s.course_id {
        parts.push(format!("course {id}"));
    }
    if let Some(item) = &s.item {
        parts.push(item.clone());
    }
    parts.join(", ")
}

#[get("/audit?<search..>")]
pub async fn page(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, search: Search) -> AppResult<Page> {
    if !user.has_role(Role::Auditor) {
        return Err(AppError::Forbidden("The audit log is for auditors only.".into()));
    }
    let values = views::AuditSearch {
        actor: search.actor.clone(),
        path: search.path.clone(),
        action: search.action.clone(),
        from: search.from.clone(),
        to: search.to.clone(),
        subject: search.subject.clone(),
    };
    let paging = crate::web::paging::PageRequest::parse(search.page.as_deref(), PAGE);
    let (entries, nav, subjects, queries) = db
        .run(move |conn| {
            let entries = self::search(conn, &search, paging.offset(), paging.fetch())?;
            let (entries, nav) = paging.finish(entries, |n| search.link(n));
            let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
            let (subjects, queries) = subjects_of(conn, &ids)?;
            Ok::<_, AppError>((entries, nav, subjects, queries))
        })
        .await?;
    // The auditor sees who was named in each entry: those are the subjects of this view.
    trail.users(subjects.iter().filter_map(|(_, s, _)| s.user_id));
    let mut by_entry: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for (entry, s, name) in &subjects {
        by_entry.entry(*entry).or_default().push(describe(s, name.as_deref()));
    }
    let entries = entries
        .into_iter()
        .map(|e| {
            let named = by_entry.remove(&e.id).unwrap_or_default();
            let more = named.len().saturating_sub(SHOWN_SUBJECTS);
            views::AuditRow {
                at: e.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                query: queries.get(&e.id).cloned(),
                subjects: named.into_iter().take(SHOWN_SUBJECTS).collect(),
                more,
                no_personal_data: e.declared.as_deref() == Some(declared::NONE),
                undeclared: e.declared.is_none(),
                actor: e.actor,
                roles: e.roles,
                action: e.action,
                path: e.path,
                status: e.status,
                ip: e.ip,
            }
        })
        .collect();
    Ok(Page::view("privacy/audit", "Audit log", views::Audit { values, entries, limit: PAGE, nav }))
}
