//! The audit log (SEC-4). Every request by someone acting in a role — staff,
//! moderators, member and course staff, partner staff, auditors — to a page
//! that shows or changes other people's data is written to `audit_log`: who,
//! in which roles, viewed (GET) or changed (POST) which path, with what
//! result, from where, when. The `Audit` fairing does it for every such
//! route at once, so a new staff page cannot forget to. Query strings are
//! left out (they can hold an email address that must not outlive an
//! erasure). The table is append-only: triggers in both databases refuse
//! updates and deletes. Only auditors read it, at `/audit`, and their reading
//! is logged too. Staff appoint auditors, never themselves.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Method;
use rocket::{FromForm, Request, Response, State, get, post};
use serde::Serialize;
use serde_json::json;

use crate::accounts::roles::{self, Role};
use crate::db::schema::{audit_log, role_grants, users};
use crate::db::{Conn, Db, now};
use crate::web::guards::SessionState;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page, StaffUser};

/// Pages that show or change other people's data.
const AUDITED: [&str; 9] = [
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

fn audited(path: &str) -> bool {
    AUDITED.iter().any(|p| path == p.trim_end_matches('/') || path.starts_with(p))
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
        let Some(user) = req.local_cache(SessionState::default).user.clone() else { return };
        if user.roles.is_empty() {
            return;
        }
        let Some(db) = req.rocket().state::<Db>() else { return };
        let roles: Vec<String> = user
            .roles
            .iter()
            .map(|(r, s)| if s.is_empty() { r.as_str().to_string() } else { format!("{}:{s}", r.as_str()) })
            .collect();
        let entry = (
            audit_log::actor_id.eq(user.id),
            audit_log::actor.eq(user.username.clone()),
            audit_log::roles.eq(roles.join(" ")),
            audit_log::action.eq(if req.method() == Method::Get { "view" } else { "change" }),
            audit_log::method.eq(req.method().as_str()),
            audit_log::path.eq(path.chars().take(500).collect::<String>()),
            audit_log::status.eq(i32::from(res.status().code)),
            audit_log::ip.eq(crate::web::guards::client_ip(req).map(|ip| ip.to_string())),
            audit_log::created_at.eq(now()),
        );
        let written = db
            .run(move |conn| {
                diesel::insert_into(audit_log::table).values(entry).execute(conn).map_err(crate::db::DbError::from)
            })
            .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
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
}

/// What an auditor searches by; every part optional.
#[derive(Debug, Default, FromForm)]
pub struct Search {
    pub actor: Option<String>,
    pub path: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

pub const PAGE: i64 = 200;

pub fn search(conn: &mut Conn, s: &Search) -> QueryResult<Vec<Entry>> {
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
    let day =
        |d: &Option<String>| d.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
    if let Some(from) = day(&s.from) {
        q = q.filter(audit_log::created_at.ge(from.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if let Some(to) = day(&s.to) {
        q = q.filter(audit_log::created_at.lt(to.succ_opt().unwrap_or(to).and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    q.order(audit_log::id.desc()).limit(PAGE).load(conn)
}

#[get("/audit?<search..>")]
pub async fn page(db: &State<Db>, user: CurrentUser, search: Search) -> AppResult<Page> {
    if !user.has_role(Role::Auditor) {
        return Err(AppError::Forbidden("The audit log is for auditors only.".into()));
    }
    let values = json!({
        "actor": search.actor, "path": search.path, "action": search.action, "from": search.from, "to": search.to,
    });
    let entries = db.run(move |conn| Ok::<_, AppError>(self::search(conn, &search)?)).await?;
    Ok(Page::new(
        "privacy/audit",
        "Audit log",
        json!({
            "values": values,
            "entries": entries.iter().map(|e| json!({
                "at": e.created_at.format("%Y-%m-%d %H:%M:%S").to_string(), "actor": e.actor, "roles": e.roles,
                "action": e.action, "path": e.path, "status": e.status, "ip": e.ip,
            })).collect::<Vec<_>>(),
            "limit": PAGE,
        }),
    ))
}

/// A site-wide role staff appoint others to: auditors, who read the audit
/// log, and support staff, who read recorded support needs.
struct Appointed {
    role: Role,
    path: &'static str,
    title: &'static str,
    about: &'static str,
    appointed: &'static str,
}

const AUDITORS: Appointed = Appointed {
    role: Role::Auditor,
    path: "/staff/auditors",
    title: "Auditors",
    about: "Auditors read the audit log of every view and change of people's data. Appoint someone other than yourself.",
    appointed: "can now read the audit log",
};

const SUPPORT_TEAM: Appointed = Appointed {
    role: Role::Support,
    path: "/staff/support-team",
    title: "Support team",
    about: "The support team reads the support needs learners record, to arrange adjustments. Each time they open one it is written to the audit log. Appoint someone other than yourself.",
    appointed: "can now read recorded support needs",
};

async fn holders_page(db: &State<Db>, a: &'static Appointed) -> AppResult<Page> {
    let role = a.role.as_str();
    let list: Vec<(i64, String)> = db
        .run(move |conn| {
            Ok::<_, AppError>(
                role_grants::table
                    .inner_join(users::table)
                    .filter(role_grants::role.eq(role))
                    .select((users::id, users::username))
                    .load(conn)?,
            )
        })
        .await?;
    Ok(Page::new(
        "privacy/auditors",
        a.title,
        json!({
            "title": a.title, "about": a.about, "path": a.path,
            "holders": list.iter().map(|(id, name)| json!({ "id": id, "username": name })).collect::<Vec<_>>(),
        }),
    ))
}

async fn appoint_to(db: &State<Db>, staff: StaffUser, login: String, a: &'static Appointed) -> AppResult<Flash> {
    let by = staff.0.id;
    db.run(move |conn| {
        let Some(user) = crate::accounts::service::find_for_login(conn, login.trim())? else {
            return Ok(Flash::error(a.path, format!("No account has the username or email “{}”.", login.trim())));
        };
        if user.id == by {
            return Ok(Flash::error(a.path, "Another person must check your work: you cannot appoint yourself."));
        }
        roles::grant(conn, user.id, a.role, "", Some(by))?;
        Ok::<_, AppError>(Flash::success(a.path, format!("{} {}.", user.username, a.appointed)))
    })
    .await
}

async fn remove_from(db: &State<Db>, id: i64, a: &'static Appointed) -> AppResult<Flash> {
    let removed = db.run(move |conn| Ok::<_, AppError>(roles::revoke(conn, id, a.role, "")?)).await?;
    Ok(if removed {
        Flash::success(a.path, "The role is taken back.")
    } else {
        Flash::info(a.path, "That person did not hold the role.")
    })
}

#[get("/staff/auditors")]
pub async fn auditors(db: &State<Db>, _staff: StaffUser) -> AppResult<Page> {
    holders_page(db, &AUDITORS).await
}

#[derive(FromForm)]
pub struct AppointForm {
    #[field(default = String::new())]
    login: String,
}

#[post("/staff/auditors", data = "<form>")]
pub async fn appoint(db: &State<Db>, staff: StaffUser, form: CsrfForm<AppointForm>) -> AppResult<Flash> {
    appoint_to(db, staff, form.form.login, &AUDITORS).await
}

#[post("/staff/auditors/<id>/remove", data = "<_form>")]
pub async fn remove(db: &State<Db>, _staff: StaffUser, id: i64, _form: crate::web::csrf::CsrfOnly) -> AppResult<Flash> {
    remove_from(db, id, &AUDITORS).await
}

#[get("/staff/support-team")]
pub async fn support_team(db: &State<Db>, _staff: StaffUser) -> AppResult<Page> {
    holders_page(db, &SUPPORT_TEAM).await
}

#[post("/staff/support-team", data = "<form>")]
pub async fn appoint_support(db: &State<Db>, staff: StaffUser, form: CsrfForm<AppointForm>) -> AppResult<Flash> {
    appoint_to(db, staff, form.form.login, &SUPPORT_TEAM).await
}

#[post("/staff/support-team/<id>/remove", data = "<_form>")]
pub async fn remove_support(
    db: &State<Db>,
    _staff: StaffUser,
    id: i64,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    remove_from(db, id, &SUPPORT_TEAM).await
}
