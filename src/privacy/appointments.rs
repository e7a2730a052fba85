//! Site-wide roles that staff appoint others to, each by another person:
//! auditors, who read the audit log (`super::audit`), and the support team,
//! who read the support needs learners record.

use diesel::prelude::*;
use rocket::{FromForm, State, get, post};

use super::views;
use crate::accounts::roles::{self, Role};
use crate::db::Db;
use crate::db::schema::{role_grants, users};
use crate::web::paging::PageRequest;
use crate::web::trail::Trail;
use crate::web::{AppError, AppResult, CsrfForm, Flash, Page, StaffUser};

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

/// People listed per page.
const HOLDERS_PAGE: i64 = 50;

async fn holders_page(db: &State<Db>, trail: Trail<'_>, a: &'static Appointed, page: Option<&str>) -> AppResult<Page> {
    let role = a.role.as_str();
    let paging = PageRequest::parse(page, HOLDERS_PAGE);
    let list: Vec<(i64, String)> = db
        .run(move |conn| {
            Ok::<_, AppError>(
                role_grants::table
                    .inner_join(users::table)
                    .filter(role_grants::role.eq(role))
                    .order((users::username.asc(), users::id.asc()))
                    .offset(paging.offset())
                    .limit(paging.fetch())
                    .select((users::id, users::username))
                    .load(conn)?,
            )
        })
        .await?;
    let (list, nav) = paging.finish(list, |p| format!("{}?page={p}", a.path));
    trail.users(list.iter().map(|(id, _)| *id));
    Ok(Page::view(
        "privacy/auditors",
        a.title,
        views::Holders {
            title: a.title,
            about: a.about,
            path: a.path,
            holders: list.into_iter().map(|(id, username)| views::Holder { id, username }).collect(),
            nav,
        },
    ))
}

async fn appoint_to(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    login: String,
    a: &'static Appointed,
) -> AppResult<Flash> {
    let by = staff.0.id;
    let (flash, target) = db
        .run(move |conn| {
            let Some(user) = crate::accounts::service::find_for_login(conn, login.trim())? else {
                let m = format!("No account has the username or email “{}”.", login.trim());
                return Ok((Flash::error(a.path, m), None));
            };
            if user.id == by {
                let m = "Another person must check your work: you cannot appoint yourself.";
                return Ok((Flash::error(a.path, m), Some(user.id)));
            }
            roles::grant(conn, user.id, a.role, "", Some(by))?;
            Ok::<_, AppError>((Flash::success(a.path, format!("{} {}.", user.username, a.appointed)), Some(user.id)))
        })
        .await?;
    trail.users(target);
    Ok(flash)
}

async fn remove_from(db: &State<Db>, id: i64, a: &'static Appointed) -> AppResult<Flash> {
    let removed = db.run(move |conn| Ok::<_, AppError>(roles::revoke(conn, id, a.role, "")?)).await?;
    Ok(if removed {
        Flash::success(a.path, "The role is taken back.")
    } else {
        Flash::info(a.path, "That person did not hold the role.")
    })
}

#[get("/staff/auditors?<page>")]
pub async fn auditors(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    holders_page(db, trail, &AUDITORS, page).await
}

#[derive(FromForm)]
pub struct AppointForm {
    #[field(default = String::new())]
    login: String,
}

#[post("/staff/auditors", data = "<form>")]
pub async fn appoint(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    form: CsrfForm<AppointForm>,
) -> AppResult<Flash> {
    appoint_to(db, staff, trail, form.form.login, &AUDITORS).await
}

#[post("/staff/auditors/<id>/remove", data = "<_form>")]
pub async fn remove(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    trail.user(id);
    remove_from(db, id, &AUDITORS).await
}

#[get("/staff/support-team?<page>")]
pub async fn support_team(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    holders_page(db, trail, &SUPPORT_TEAM, page).await
}

#[post("/staff/support-team", data = "<form>")]
pub async fn appoint_support(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    form: CsrfForm<AppointForm>,
) -> AppResult<Flash> {
    appoint_to(db, staff, trail, form.form.login, &SUPPORT_TEAM).await
}

#[post("/staff/support-team/<id>/remove", data = "<_form>")]
pub async fn remove_support(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    trail.user(id);
    remove_from(db, id, &SUPPORT_TEAM).await
}
