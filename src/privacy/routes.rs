//! The learner's privacy page (copies of their data, deleting the account,
//! their requests) and the staff pages for data requests, erasures and legal
//! holds.

use super::audit::{Subject, Trail};
use std::sync::Arc;

use rocket::Either;
use rocket::http::ContentType;
use rocket::{FromForm, State, get, post};

use super::{erasure, export, views};
use crate::accounts::service::TrailAccount;
use crate::config::Config;
use crate::db::{Db, now};
use crate::storage::BlobStore;
use crate::web::csrf::CsrfOnly;
use crate::web::format::{Day, Moment};
use crate::web::next::NextPath;
use crate::web::paging::PageRequest;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page, StaffUser};

/// A service outcome as a flash: its message on success, the reason back on
/// the same page when the input was refused, an error page otherwise.
fn settle<T>(back: &str, outcome: super::PResult<T>, done: &str) -> AppResult<Flash> {
    match outcome {
        Ok(_) => Ok(Flash::success(back, done)),
        Err(super::PrivacyError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

#[get("/account/privacy")]
pub async fn page(db: &State<Db>, config: &State<Config>, user: CurrentUser) -> AppResult<Page> {
    let user_id = user.0.id;
    let cool_off = config.erasure_cool_off_days;
    let ctx = db
        .run(move |conn| {
            let exports = export::exports_of(conn, user_id)?;
            let requests = super::my_requests(conn, user_id)?;
            let open = erasure::open_for(conn, user_id)?;
            let now = now();
            Ok::<_, AppError>(views::PrivacyPage {
                exports: exports
                    .iter()
                    .map(|e| views::ExportRow {
                        id: e.id,
                        status: e.status.clone(),
                        asked: Day::from(e.created_at),
                        ready: e.status == export::status::READY && e.expires_at.is_some_and(|at| at > now),
                        building: e.status == export::status::BUILDING,
                        expires: e.expires_at.map(Day::from),
                        size_kib: e.size_bytes.map(|b| (b + 1023) / 1024),
                    })
                    .collect(),
                requests: requests
                    .iter()
                    .map(|r| views::MyRequestRow {
                        id: r.id,
                        kind: r.kind.replace('_', " "),
                        status: r.status.replace('_', " "),
                        received: Day::from(r.received_at),
                        due: Day::from(r.due_at),
                        done: r.done_at.map(Day::from),
                        outcome: r.outcome.clone(),
                    })
                    .collect(),
                due_days: super::DUE_DAYS,
                profiling: views::Profiling::of(super::profiling::objects(conn, user_id)?),
                cool_off_days: cool_off,
                cool_off_plural: cool_off != 1,
                export_days: export::EXPORT_DAYS,
                erasure: open.map(|e| views::OpenErasure {
                    when: Day::from(e.run_after),
                    asked: Day::from(e.created_at),
                    cancellable: e.next_step == 0 && e.state == erasure::state::WAITING,
                    held: e.state == erasure::state::HELD,
                }),
            })
        })
        .await?;
    Ok(Page::view("privacy/page", "Your data and privacy", ctx))
}

#[post("/account/privacy/export", data = "<_form>")]
pub async fn ask_export(
    db: &State<Db>,
    user: CurrentUser,
    state: crate::accounts::signin::SessionGuard,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let user_id = user.0.id;
    let session = state.0.session_id.clone();
    if let Some(go) = crate::accounts::security::require_step_up(db, user_id, session, "/account/privacy").await? {
        return Ok(go);
    }
    db.run(move |conn| match export::request(conn, user_id, now()) {
        Ok(_) => Ok(Flash::success(
            "/account/privacy",
            "We are preparing a copy of your data and will email you a download link when it is ready.",
        )),
        Err(super::PrivacyError::Invalid(m)) => Ok(Flash::info("/account/privacy", m)),
        Err(e) => Err(AppError::from(e)),
    })
    .await
}

#[get("/account/privacy/exports/<id>")]
pub async fn download(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    id: i64,
) -> AppResult<crate::web::download::Download<Vec<u8>>> {
    let user = user.0;
    let blobs = blobs.inner().clone();
    let filename = format!("lyceum-data-{}-{}.zip", user.username, now().format("%Y-%m-%d"));
    let bytes =
        db.run(move |conn| Ok::<_, AppError>(export::download(conn, blobs.as_ref(), user.id, id, now())?)).await?;
    Ok(crate::web::download::Download::new(bytes, ContentType::ZIP, &filename, false))
}

#[derive(FromForm)]
pub struct DeleteForm {
    #[field(default = String::new())]
    password: String,
    #[field(default = false)]
    confirm: bool,
}

#[post("/account/privacy/delete", data = "<form>")]
pub async fn ask_erasure(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    state: crate::accounts::signin::SessionGuard,
    form: CsrfForm<DeleteForm>,
) -> AppResult<Flash> {
    let user_id = user.0.id;
    let session = state.0.session_id.clone();
    if let Some(go) = crate::accounts::security::require_step_up(db, user_id, session, "/account/privacy").await? {
        return Ok(go);
    }
    let f = form.form;
    if !f.confirm {
        return Ok(Flash::error("/account/privacy", "Tick the box to confirm that you want your account deleted."));
    }
    let hash = db
        .run(move |conn| {
            use crate::db::schema::users;
            use diesel::prelude::*;
            Ok::<_, AppError>(users::table.find(user_id).select(users::password_hash).first::<String>(conn)?)
        })
        .await?;
    if !crate::accounts::passwords::verify(f.password, Some(hash)).await {
        return Ok(Flash::error(
            "/account/privacy",
            "That is not your password. Your account was not scheduled for deletion.",
        ));
    }
    let days = config.erasure_cool_off_days;
    db.run(move |conn| match erasure::request(conn, user_id, days, now()) {
        Ok(when) => Ok(Flash::success(
            "/account/privacy",
            format!(
                "Your account will be deleted from {}. Until then you can cancel here.",
                crate::web::format::day(when.date())
            ),
        )),
        Err(super::PrivacyError::Invalid(m)) => Ok(Flash::info("/account/privacy", m)),
        Err(e) => Err(AppError::from(e)),
    })
    .await
}

#[post("/account/privacy/delete/cancel", data = "<_form>")]
pub async fn cancel_erasure(db: &State<Db>, user: CurrentUser, _form: CsrfOnly) -> AppResult<Flash> {
    let user_id = user.0.id;
    db.run(move |conn| {
        let done = "The deletion is cancelled. Your account stays as it is.";
        settle("/account/privacy", erasure::cancel(conn, user_id, now()), done)
    })
    .await
}

/// Rows per page of the staff lists of this area.
const REQUESTS_PAGE: i64 = 50;
const ERASURES_PAGE: i64 = 20;
const HOLDS_PAGE: i64 = 50;
const SUPPORT_PAGE: i64 = 50;
const CAMPAIGNS_PAGE: i64 = 25;
const NOTICES_PAGE: i64 = 25;

/// The address of a staff page with several paged lists, each at its page
/// (a list on its first page is left out of the address).
fn pages_link(path: &str, pages: &[(&str, i64)]) -> String {
    let query: Vec<String> = pages.iter().filter(|(_, p)| *p > 1).map(|(k, p)| format!("{k}={p}")).collect();
    if query.is_empty() { path.to_string() } else { format!("{path}?{}", query.join("&")) }
}

fn request_row(r: &super::RequestRow) -> views::RequestRow {
    views::RequestRow {
        id: r.request.id,
        username: r.username.clone(),
        kind: r.request.kind.replace('_', " "),
        source: r.request.source.replace('_', " "),
        details: r.request.details.clone(),
        status: r.request.status.clone(),
        open: r.request.done_at.is_none(),
        overdue: r.overdue,
        received: Day::from(r.request.received_at),
        due: Day::from(r.request.due_at),
        done: r.request.done_at.map(Day::from),
        outcome: r.request.outcome.clone(),
    }
}

/// The pages the data requests page's four lists are at (`?open=2&holds=3`).
#[derive(FromForm)]
pub struct StaffPages<'r> {
    open: Option<&'r str>,
    closed: Option<&'r str>,
    erasures: Option<&'r str>,
    holds: Option<&'r str>,
}

#[get("/staff/privacy?<pages..>")]
pub async fn staff_page(
    db: &State<Db>,
    config: &State<Config>,
    _staff: StaffUser,
    trail: Trail<'_>,
    pages: StaffPages<'_>,
) -> AppResult<Page> {
    let open = PageRequest::parse(pages.open, REQUESTS_PAGE);
    let closed = PageRequest::parse(pages.closed, REQUESTS_PAGE);
    let erasures = PageRequest::parse(pages.erasures, ERASURES_PAGE);
    let holds = PageRequest::parse(pages.holds, HOLDS_PAGE);
    let at = [("open", open.page()), ("closed", closed.page()), ("erasures", erasures.page()), ("holds", holds.page())];
    let link = move |which: usize, p: i64| {
        let mut pages = at;
        pages[which].1 = p;
        pages_link("/staff/privacy", &pages)
    };
    let (ctx, shown) = db
        .run(move |conn| {
            let now = now();
            let (open_rows, open_nav) =
                open.finish(super::open_requests(conn, now, open.offset(), open.fetch())?, |p| link(0, p));
            let (closed_rows, closed_nav) =
                closed.finish(super::closed_requests(conn, now, closed.offset(), closed.fetch())?, |p| link(1, p));
            let (erasure_rows, erasures_nav) =
                erasures.finish(erasure::page(conn, erasures.offset(), erasures.fetch())?, |p| link(2, p));
            let ids: Vec<i64> = erasure_rows.iter().map(|(e, _)| e.id).collect();
            let logs = erasure::logs_of(conn, &ids)?;
            let mut rows = Vec::new();
            let erasure_people: Vec<i64> = erasure_rows.iter().map(|(e, _)| e.user_id).collect();
            for (e, username) in erasure_rows {
                let log = logs.iter().filter(|l| l.erasure_id == e.id);
                rows.push(views::ErasureRow {
                    id: e.id,
                    username,
                    state: e.state.clone(),
                    asked: Day::from(e.created_at),
                    run_after: Moment(e.run_after),
                    step: erasure::STEPS.get(e.next_step as usize).copied().unwrap_or("finished"),
                    attempts: e.attempts,
                    last_error: e.last_error.clone(),
                    log: log
                        .map(|l| views::ErasureLogRow {
                            step: l.step.clone(),
                            outcome: l.outcome.clone(),
                            detail: l.detail.clone(),
                            at: Moment(l.created_at),
                        })
                        .collect(),
                });
            }
            let (hold_rows, holds_nav) =
                holds.finish(super::holds(conn, holds.offset(), holds.fetch())?, |p| link(3, p));
            // The people whose requests, erasures and holds are listed.
            let shown: Vec<i64> = open_rows
                .iter()
                .chain(&closed_rows)
                .filter_map(|r| r.request.user_id)
                .chain(erasure_people)
                .chain(hold_rows.iter().map(|(h, _)| h.user_id))
                .collect();
            let ctx = views::StaffPage {
                open_requests: open_rows.iter().map(request_row).collect(),
                open_nav,
                closed_requests: closed_rows.iter().map(request_row).collect(),
                closed_nav,
                overdue: super::overdue_requests(conn, now)?,
                erasures: rows,
                erasures_nav,
                holds: hold_rows
                    .iter()
                    .map(|(h, username)| views::HoldRow {
                        id: h.id,
                        username: username.clone(),
                        reason: h.reason.clone(),
                        since: Day::from(h.placed_at),
                    })
                    .collect(),
                holds_nav,
                kinds: &super::kind::ALL,
                due_days: super::DUE_DAYS,
                sources: super::source::STAFF_ENTRY,
                retention: Vec::new(),
            };
            Ok::<_, AppError>((ctx, shown))
        })
        .await?;
    trail.users(shown);
    let ctx = views::StaffPage { retention: super::retention::Periods::from_config(config).categories(), ..ctx };
    Ok(Page::view("privacy/staff", "Data requests", ctx))
}

#[derive(FromForm)]
pub struct NewRequest {
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    source: String,
    #[field(default = String::new())]
    login: String,
    #[field(default = String::new())]
    details: String,
}

fn find_user(conn: &mut crate::db::Conn, login: &str) -> AppResult<i64> {
    crate::accounts::service::find_for_login(conn, login.trim())?
        .map(|u| u.id)
        .ok_or_else(|| AppError::Unprocessable(format!("No account has the username or email “{}”.", login.trim())))
}

/// Staff record a request that arrived by email, post or phone.
#[post("/staff/privacy/requests", data = "<form>")]
pub async fn enter_request(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    form: CsrfForm<NewRequest>,
) -> AppResult<Flash> {
    if !form.form.login.trim().is_empty() {
        trail.account(db, &form.form.login).await;
    } else {
        trail.users(None);
    }
    let f = form.form;
    let by = staff.0.id;
    db.run(move |conn| {
        let back = "/staff/privacy";
        let Some(kind) = super::kind::ALL.iter().find(|k| **k == f.kind) else {
            return Ok(Flash::error(back, "Choose what the request asks for."));
        };
        let Some(source) = super::source::STAFF_ENTRY.iter().find(|s| **s == f.source) else {
            return Ok(Flash::error(back, "Choose how the request arrived."));
        };
        let details = f.details.trim();
        if details.is_empty() || details.chars().count() > 4000 {
            return Ok(Flash::error(back, "Describe the request (who asked, what for), in at most 4000 characters."));
        }
        let user_id = if f.login.trim().is_empty() {
            None
        } else {
            match find_user(conn, &f.login) {
                Ok(id) => Some(id),
                Err(AppError::Unprocessable(m)) => return Ok(Flash::error(back, m)),
                Err(e) => return Err(e),
            }
        };
        let id = super::open_request(conn, user_id, kind, source, details, Some(by), now())?;
        Ok::<_, AppError>(Flash::success(
            back,
            format!("Request #{id} recorded; it is due in {} days.", super::DUE_DAYS),
        ))
    })
    .await
}

#[derive(FromForm)]
pub struct RequestUpdate {
    #[field(default = String::new())]
    status: String,
    #[field(default = String::new())]
    outcome: String,
}

#[post("/staff/privacy/requests/<id>", data = "<form>")]
pub async fn update_request(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<RequestUpdate>,
) -> AppResult<Flash> {
    let subject = db
        .run(move |conn| {
            use crate::db::schema::data_requests;
            use diesel::prelude::*;
            Ok::<_, AppError>(
                data_requests::table.find(id).select(data_requests::user_id).first::<Option<i64>>(conn).optional()?,
            )
        })
        .await?;
    trail.add(Subject::default().item(format!("data request {id}")));
    trail.users(subject.flatten());
    let f = form.form;
    db.run(move |conn| {
        use super::status;
        let back = "/staff/privacy";
        let Some(new_status) =
            [status::IN_PROGRESS, status::DONE, status::REFUSED].into_iter().find(|s| *s == f.status)
        else {
            return Ok(Flash::error(back, "Choose the request's new status."));
        };
        let outcome = f.outcome.trim();
        if new_status != status::IN_PROGRESS && outcome.is_empty() {
            return Ok(Flash::error(back, "Say what was done (or why the request was refused)."));
        }
        use crate::db::schema::data_requests;
        use diesel::prelude::*;
        let current: Option<String> =
            data_requests::table.find(id).select(data_requests::status).first(conn).optional()?;
        match current {
            None => return Err(AppError::NotFound),
            Some(s) if status::CLOSED.contains(&s.as_str()) => {
                return Ok(Flash::error(back, format!("Request #{id} is closed already.")));
            }
            Some(_) => {}
        }
        super::set_request_status(conn, id, new_status, (!outcome.is_empty()).then_some(outcome), now())?;
        Ok::<_, AppError>(Flash::success(back, format!("Request #{id} updated.")))
    })
    .await
}

#[derive(FromForm)]
pub struct HoldForm {
    #[field(default = String::new())]
    login: String,
    #[field(default = String::new())]
    reason: String,
}

#[post("/staff/privacy/holds", data = "<form>")]
pub async fn place_hold(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    form: CsrfForm<HoldForm>,
) -> AppResult<Flash> {
    trail.account(db, &form.form.login).await;
    let f = form.form;
    let by = staff.0.id;
    db.run(move |conn| {
        let back = "/staff/privacy";
        let user_id = match find_user(conn, &f.login) {
            Ok(id) => id,
            Err(AppError::Unprocessable(m)) => return Ok(Flash::error(back, m)),
            Err(e) => return Err(e),
        };
        let done = "Legal hold placed: nothing of this account will be deleted until it is lifted.";
        settle(back, super::place_hold(conn, user_id, &f.reason, by, now()), done)
    })
    .await
}

#[derive(FromForm)]
pub struct LiftForm {
    #[field(default = String::new())]
    reason: String,
}

#[post("/staff/privacy/holds/<id>/lift", data = "<form>")]
pub async fn lift_hold(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<LiftForm>,
) -> AppResult<Flash> {
    let subject = db
        .run(move |conn| {
            use crate::db::schema::legal_holds;
            use diesel::prelude::*;
            Ok::<_, AppError>(legal_holds::table.find(id).select(legal_holds::user_id).first::<i64>(conn).optional()?)
        })
        .await?;
    trail.users(subject);
    let f = form.form;
    let by = staff.0.id;
    db.run(move |conn| {
        let done = "Hold lifted; a deletion it stopped carries on.";
        settle("/staff/privacy", super::lift_hold(conn, id, &f.reason, by, now()), done)
    })
    .await
}

fn choices(p: &super::comms::Preferences) -> views::Choices {
    views::Choices {
        marketing_email: p.marketing_email,
        email_tracking: p.email_tracking,
        object_profiling: p.object_profiling,
    }
}

#[get("/account/communications")]
pub async fn communications(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let user_id = user.0.id;
    let prefs = db.run(move |conn| Ok::<_, AppError>(super::comms::preferences(conn, user_id)?)).await?;
    Ok(Page::view(
        "privacy/communications",
        "Email and profiling",
        views::Communications { choices: choices(&prefs), profiling: views::Profiling::of(prefs.object_profiling) },
    ))
}

#[derive(FromForm)]
pub struct ChoicesForm {
    #[field(default = false)]
    marketing_email: bool,
    #[field(default = false)]
    email_tracking: bool,
    #[field(default = false)]
    object_profiling: bool,
}

#[post("/account/communications", data = "<form>")]
pub async fn set_communications(
    db: &State<Db>,
    user: CurrentUser,
    client: crate::kernel::ClientInfo,
    form: CsrfForm<ChoicesForm>,
) -> AppResult<Flash> {
    let user_id = user.0.id;
    let f = form.form;
    let new = super::comms::Preferences {
        marketing_email: f.marketing_email,
        email_tracking: f.email_tracking,
        object_profiling: f.object_profiling,
    };
    let how = super::comms::How { method: "settings", ip: client.ip.clone(), user_agent: client.user_agent.clone() };
    let changed = db.run(move |conn| Ok::<_, AppError>(super::comms::set(conn, user_id, new, &how, now())?)).await?;
    Ok(if changed.is_empty() {
        Flash::info("/account/communications", "Nothing changed.")
    } else if changed.contains(&"object_profiling") {
        Flash::success(
            "/account/communications",
            "Your choices are saved. The change to your objection is recorded, with its date, among your requests on your privacy page.",
        )
    } else {
        Flash::success("/account/communications", "Your choices are saved. Nothing else about your account changes.")
    })
}

fn unsubscribe_page(status: rocket::http::Status, ctx: views::Unsubscribe) -> Page {
    Page::view("privacy/unsubscribe", "Unsubscribe", ctx).with_status(status)
}

fn bad_unsubscribe_link() -> Page {
    unsubscribe_page(rocket::http::Status::BadRequest, views::Unsubscribe { invalid: true, ..Default::default() })
}

/// The link in every newsletter: a page with one button, no sign-in needed.
#[get("/unsubscribe/<token>")]
pub async fn unsubscribe_form(
    db: &State<Db>,
    signer: &State<super::comms::LinkSigner>,
    token: &str,
) -> AppResult<Page> {
    let Some(user_id) = signer.unsubscriber(token) else { return Ok(bad_unsubscribe_link()) };
    let prefs = db.run(move |conn| Ok::<_, AppError>(super::comms::preferences(conn, user_id)?)).await?;
    Ok(unsubscribe_page(
        rocket::http::Status::Ok,
        views::Unsubscribe { token: Some(token.to_string()), subscribed: prefs.marketing_email, ..Default::default() },
    ))
}

/// RFC 8058 one-click unsubscribe (and the page's button). The signed token
/// is the authority: no sign-in, no CSRF token (mail providers post here
/// with `List-Unsubscribe=One-Click` and nothing else). Repeating it is harmless.
#[post("/unsubscribe/<token>", data = "<body>")]
pub async fn unsubscribe(
    db: &State<Db>,
    signer: &State<super::comms::LinkSigner>,
    client: crate::kernel::ClientInfo,
    token: &str,
    body: rocket::data::Data<'_>,
) -> AppResult<Page> {
    use rocket::data::ToByteUnit;
    let body = body.open(2.kibibytes()).into_string().await.map(|s| s.into_inner()).unwrap_or_default();
    let Some(user_id) = signer.unsubscriber(token) else { return Ok(bad_unsubscribe_link()) };
    let method = if body.contains("List-Unsubscribe=One-Click") { "one_click" } else { "unsubscribe_link" };
    let how = super::comms::How { method, ip: client.ip.clone(), user_agent: client.user_agent.clone() };
    db.run(move |conn| Ok::<_, AppError>(super::comms::unsubscribe(conn, user_id, &how, now())?)).await?;
    Ok(unsubscribe_page(rocket::http::Status::Ok, views::Unsubscribe { done: true, ..Default::default() }))
}

/// The open-counting pixel, in newsletters to learners who allow tracking.
#[get("/o/<token>")]
pub async fn pixel(db: &State<Db>, signer: &State<super::comms::LinkSigner>, token: &str) -> (ContentType, Vec<u8>) {
    const GIF: [u8; 43] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00,
        0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
        0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
    ];
    if let Some((campaign, user)) = signer.tracked(token) {
        let recorded = db
            .run(move |conn| super::comms::record_open(conn, campaign, user, now()).map_err(crate::db::DbError::from))
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a newsletter open");
        }
    }
    (ContentType::GIF, GIF.to_vec())
}

/// A tracked link: records the click, then sends the reader on. Only links of
/// the campaign itself are followed, so this is no open redirect.
#[get("/c/<token>?<to>")]
pub async fn click(
    db: &State<Db>,
    config: &State<Config>,
    signer: &State<super::comms::LinkSigner>,
    token: &str,
    to: &str,
) -> AppResult<rocket::response::Redirect> {
    let (campaign, user) = signer.tracked(token).ok_or(AppError::NotFound)?;
    let (to, base_url) = (to.to_string(), config.base_url());
    let target = db
        .run(move |conn| Ok::<_, AppError>(super::comms::record_click(conn, &base_url, campaign, user, &to, now())?))
        .await?;
    target.map(rocket::response::Redirect::to).ok_or(AppError::NotFound)
}

#[get("/staff/newsletters?<page>")]
pub async fn newsletters(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    // Counts per campaign; no recipient is named.
    trail.nobody();
    let paging = PageRequest::parse(page, CAMPAIGNS_PAGE);
    let ctx = db
        .run(move |conn| {
            use crate::db::schema::communication_preferences as p;
            use diesel::prelude::*;
            let subscribers: i64 = p::table.filter(p::marketing_email.eq(true)).count().get_result(conn)?;
            let campaigns = super::comms::campaigns_with_stats(conn, paging.offset(), paging.fetch())?;
            let (campaigns, nav) = paging.finish(campaigns, |p| format!("/staff/newsletters?page={p}"));
            Ok::<_, AppError>(views::Newsletters {
                subscribers,
                nav,
                campaigns: campaigns
                    .iter()
                    .map(|c| views::CampaignRow {
                        id: c.campaign.id,
                        subject: c.campaign.subject.clone(),
                        sent_on: Day::from(c.campaign.created_at),
                        recipients: c.campaign.recipients,
                        sent: c.sent,
                        opened_by: c.opened_by,
                        clicked_by: c.clicked_by,
                    })
                    .collect(),
            })
        })
        .await?;
    Ok(Page::view("privacy/newsletters", "Newsletters", ctx))
}

#[derive(FromForm)]
pub struct CampaignForm {
    #[field(default = String::new())]
    subject: String,
    #[field(default = String::new())]
    body: String,
}

#[post("/staff/newsletters", data = "<form>")]
pub async fn send_newsletter(
    trail: Trail<'_>,
    db: &State<Db>,
    staff: StaffUser,
    form: CsrfForm<CampaignForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let f = form.form;
    let by = staff.0.id;
    db.run(move |conn| {
        Ok::<_, AppError>(match super::comms::send_campaign(conn, &f.subject, &f.body, by, now()) {
            Ok((_, n)) => {
                Flash::success("/staff/newsletters", format!("The newsletter is on its way to {n} subscriber(s)."))
            }
            Err(m) => Flash::error("/staff/newsletters", m),
        })
    })
    .await
}

#[get("/cookies")]
pub async fn cookie_settings(cookies: &rocket::http::CookieJar<'_>, config: &State<Config>) -> Page {
    let choice = super::cookies::choice(cookies);
    let kept_days = Some(config.retention_page_view_days).filter(|d| *d > 0);
    Page::view(
        "privacy/cookies",
        "Cookies",
        views::CookieSettings { chosen: choice.is_some(), analytics: choice.is_some_and(|c| c.analytics), kept_days },
    )
}

#[derive(FromForm)]
pub struct CookieForm {
    #[field(default = false)]
    analytics: bool,
    #[field(default = String::new())]
    back: String,
}

/// The banner's buttons and the settings page post here; the choice is kept
/// in a first-party cookie and recorded.
#[post("/cookies", data = "<form>")]
pub async fn set_cookies(
    db: &State<Db>,
    cookies: &rocket::http::CookieJar<'_>,
    config: &State<Config>,
    form: CsrfForm<CookieForm>,
) -> AppResult<Flash> {
    let f = form.form;
    let choice = super::cookies::set_choice(cookies, f.analytics, config.is_tls());
    // Under the visitor id only, signed in or not: no account on a choice.
    db.run(move |conn| Ok::<_, AppError>(super::cookies::record(conn, &choice, now())?)).await?;
    // Back to where the banner was, on this site only.
    let back = if f.back.starts_with('/') && !f.back.starts_with("//") && !f.back.contains('\\') {
        f.back
    } else {
        "/cookies".to_string()
    };
    Ok(Flash::success(
        back,
        if f.analytics {
            "Thank you: anonymous usage statistics are on. Change this at any time under Cookies."
        } else {
            "Only essential cookies are used. Change this at any time under Cookies."
        },
    ))
}

#[get("/staff/analytics?<days>")]
pub async fn analytics(
    db: &State<Db>,
    config: &State<Config>,
    _staff: StaffUser,
    trail: Trail<'_>,
    days: Option<i64>,
) -> AppResult<Page> {
    // Totals per route template, for visitors who agreed; no one is named.
    trail.nobody();
    let days = days.unwrap_or(30).clamp(1, 365);
    let totals = db.run(move |conn| Ok::<_, AppError>(super::cookies::totals(conn, days, now())?)).await?;
    let kept = Some(config.retention_page_view_days).filter(|d| *d > 0);
    Ok(Page::view("privacy/analytics", "Usage statistics", views::Analytics { days, totals, kept }))
}

/// A policy page: the current version, "Last updated", and the history.
#[get("/<doc>", rank = 20)]
pub async fn policy_page(db: &State<Db>, doc: &str) -> Option<Page> {
    let kind = super::policies::KINDS.iter().find(|(_, path, _)| path.trim_start_matches('/') == doc)?.0;
    let versions =
        db.run(move |conn| super::policies::history(conn, kind).map_err(crate::db::DbError::from)).await.ok()?;
    let current = versions.first()?;
    Some(Page::view(
        "privacy/policy",
        super::policies::title(kind),
        views::Policy {
            title: super::policies::title(kind),
            version: current.version,
            updated: Day::from(current.published_at),
            body_html: crate::learning::content::render_markdown(&current.body),
            history: versions
                .iter()
                .map(|v| views::PolicyVersionRow {
                    version: v.version,
                    date: Day::from(v.published_at),
                    changes: v.changes.clone(),
                    material: v.material,
                })
                .collect(),
        },
    ))
}

#[get("/staff/policies")]
pub async fn staff_policies(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>) -> AppResult<Page> {
    // The policy texts.
    trail.nobody();
    let ctx = db
        .run(|conn| {
            let mut docs = Vec::new();
            for (kind, path, title) in super::policies::KINDS {
                let current = super::policies::current(conn, kind)?;
                docs.push(views::PolicyDoc {
                    kind,
                    path,
                    title,
                    version: current.as_ref().map(|v| v.version),
                    updated: current.as_ref().map(|v| Day::from(v.published_at)),
                    body: current.map(|v| v.body),
                });
            }
            Ok::<_, AppError>(views::StaffPolicies { docs })
        })
        .await?;
    Ok(Page::view("privacy/staff_policies", "Policies", ctx))
}

#[derive(FromForm)]
pub struct PolicyForm {
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    body: String,
    #[field(default = String::new())]
    changes: String,
    #[field(default = false)]
    material: bool,
}

#[post("/staff/policies", data = "<form>")]
pub async fn publish_policy(
    trail: Trail<'_>,
    db: &State<Db>,
    banner: &State<super::policies::Banner>,
    required: &State<super::policies::Required>,
    staff: StaffUser,
    form: CsrfForm<PolicyForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let f = form.form;
    let by = staff.0.id;
    let (banner, required) = (banner.inner().clone(), required.inner().clone());
    db.run(move |conn| {
        let published = super::policies::publish(conn, &f.kind, &f.body, &f.changes, f.material, by, now());
        Ok::<_, AppError>(match published {
            Ok(version) => {
                banner.refresh(conn, now())?;
                required.refresh(conn)?;
                Flash::success(
                    "/staff/policies",
                    if f.material {
                        format!("Version {version} is published, announced on every page and by email; everyone accepts it before going on, at their next sign-in or their next page.")
                    } else {
                        format!("Version {version} is published.")
                    },
                )
            }
            Err(m) => Flash::error("/staff/policies", m),
        })
    })
    .await
}

/// The acceptance page: for a sign-in held until the changed policies are
/// accepted, or for an open session stopped on its way to `next`.
#[get("/policies/accept?<next>")]
pub async fn accept_form(
    db: &State<Db>,
    viewer: crate::web::guards::Viewer,
    cookies: &rocket::http::CookieJar<'_>,
    next: Option<NextPath>,
) -> AppResult<Either<Page, Flash>> {
    let held = crate::accounts::twofactor::HeldSignIn::take(cookies, crate::accounts::twofactor::stage::POLICIES);
    // A held sign-in keeps its own `next`; an open session goes on to the one given.
    let (user_id, next) = match (held, viewer.0) {
        (Some(held), _) => (held.user_id, None),
        (None, Some(user)) => (user.id, Some(next.unwrap_or_else(NextPath::home))),
        (None, None) => return Ok(Either::Right(Flash::info("/signin", "Please sign in again."))),
    };
    let pending = db.run(move |conn| Ok::<_, AppError>(super::policies::pending(conn, user_id)?)).await?;
    if let (true, Some(next)) = (pending.is_empty(), &next) {
        return Ok(Either::Right(Flash::info(next.as_str(), "There is nothing new to accept.")));
    }
    Ok(Either::Left(Page::view(
        "privacy/accept",
        "We changed our policies",
        views::Accept {
            pending: pending
                .iter()
                .map(|v| views::PendingPolicy {
                    title: super::policies::title(&v.kind),
                    path: super::policies::path(&v.kind),
                    version: v.version,
                    date: Day::from(v.published_at),
                    changes: v.changes.clone(),
                })
                .collect(),
            next: next.map(NextPath::into_string),
        },
    )))
}

#[derive(FromForm)]
pub struct AcceptForm {
    #[field(default = false)]
    accept: bool,
    next: NextPath,
}

#[post("/policies/accept", data = "<form>")]
pub async fn accept(
    db: &State<Db>,
    config: &State<Config>,
    cookies: &rocket::http::CookieJar<'_>,
    client: crate::kernel::ClientInfo,
    viewer: crate::web::guards::Viewer,
    form: CsrfForm<AcceptForm>,
) -> AppResult<Flash> {
    let Some(held) = crate::accounts::twofactor::HeldSignIn::take(cookies, crate::accounts::twofactor::stage::POLICIES)
    else {
        return accept_in_session(db, viewer, client, form.form).await;
    };
    let (user_id, remember, next, second_factor) = (held.user_id, held.remember, held.next.clone(), held.second_factor);
    if !form.form.accept {
        return Ok(Flash::error(
            "/policies/accept",
            "Tick the box to accept the changed policies, or leave without signing in.",
        ));
    }
    let who = client.clone();
    db.run(move |conn| {
        let ids: Vec<i64> = super::policies::pending(conn, user_id)?.iter().map(|v| v.id).collect();
        Ok::<_, AppError>(super::policies::accept(conn, user_id, &ids, "sign_in", &who, now())?)
    })
    .await?;
    crate::accounts::twofactor::HeldSignIn::clear(cookies);
    crate::accounts::signin::start_session(db, config, cookies, &client, user_id, remember, second_factor).await?;
    Ok(Flash::success(crate::web::next::NextPath::or_home(Some(&next)).into_string(), "Thank you. You are signed in."))
}

/// An open session accepts a material change published while it was open,
/// recorded like an acceptance at sign-in, and goes on to `next`.
async fn accept_in_session(
    db: &Db,
    viewer: crate::web::guards::Viewer,
    client: crate::kernel::ClientInfo,
    form: AcceptForm,
) -> AppResult<Flash> {
    let Some(user) = viewer.0 else { return Ok(Flash::info("/signin", "Please sign in again.")) };
    let next = form.next;
    if !form.accept {
        return Ok(Flash::error(
            format!("/policies/accept?next={}", urlencoding::encode(next.as_str())),
            "Tick the box to accept the changed policies, or sign out.",
        ));
    }
    let user_id = user.id;
    db.run(move |conn| {
        let ids: Vec<i64> = super::policies::pending(conn, user_id)?.iter().map(|v| v.id).collect();
        Ok::<_, AppError>(super::policies::accept(conn, user_id, &ids, "session", &client, now())?)
    })
    .await?;
    Ok(Flash::success(next.into_string(), "Thank you for accepting the changed policies."))
}

fn contact_page(values: views::ContactValues, errors: &[(&'static str, String)]) -> Page {
    let errors: std::collections::BTreeMap<&'static str, String> = errors.iter().cloned().collect();
    let failed = !errors.is_empty();
    let page = Page::view("privacy/contact", "Contact us", views::Contact { values, errors });
    if failed { page.with_status(rocket::http::Status::UnprocessableEntity) } else { page }
}

#[get("/contact")]
pub fn contact_form(viewer: crate::web::guards::Viewer) -> Page {
    let values = viewer
        .0
        .map(|u| views::ContactValues {
            name: format!("{} {}", u.first_name, u.last_name).trim().to_string(),
            email: u.email,
            ..Default::default()
        })
        .unwrap_or_default();
    contact_page(values, &[])
}

#[derive(FromForm)]
pub struct ContactForm {
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    email: String,
    #[field(default = String::new())]
    subject: String,
    #[field(default = String::new())]
    message: String,
}

#[post("/contact", data = "<form>")]
pub async fn contact(
    db: &State<Db>,
    limits: &State<crate::web::ratelimit::RateLimits>,
    viewer: crate::web::guards::Viewer,
    client: crate::kernel::ClientInfo,
    form: CsrfForm<ContactForm>,
) -> AppResult<Either<Flash, Page>> {
    limits
        .check_all(crate::web::ratelimit::Action::Contact, &[&client.rate_key()])
        .await
        .map_err(|retry_after| AppError::RateLimited { retry_after })?;
    let f = form.form;
    let values = views::ContactValues {
        name: f.name.clone(),
        email: f.email.clone(),
        subject: f.subject.clone(),
        message: f.message.clone(),
    };
    let user_id = viewer.0.map(|u| u.id);
    let created = db
        .run(move |conn| {
            let contact = super::support::Contact {
                user_id,
                name: &f.name,
                email: &f.email,
                subject: &f.subject,
                message: &f.message,
            };
            Ok::<_, AppError>(super::support::create(conn, &contact, now())?)
        })
        .await?;
    Ok(match created {
        Ok(id) => Either::Left(Flash::success(
            "/contact",
            format!("Thank you. We received your message (request #{id}) and will answer by email."),
        )),
        Err(errors) => Either::Right(contact_page(values, &errors)),
    })
}

#[get("/staff/support?<open>&<answered>")]
pub async fn support_list(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    open: Option<&str>,
    answered: Option<&str>,
) -> AppResult<Page> {
    let open = PageRequest::parse(open, SUPPORT_PAGE);
    let answered = PageRequest::parse(answered, SUPPORT_PAGE);
    let (open_list, answered_list) = db
        .run(move |conn| {
            Ok::<_, AppError>((
                super::support::open(conn, open.offset(), open.fetch())?,
                super::support::answered(conn, answered.offset(), answered.fetch())?,
            ))
        })
        .await?;
    let link = |pages: [(&str, i64); 2]| pages_link("/staff/support", &pages);
    let (open_list, open_nav) = open.finish(open_list, |p| link([("open", p), ("answered", answered.page())]));
    let (answered_list, answered_nav) =
        answered.finish(answered_list, |p| link([("open", open.page()), ("answered", p)]));
    trail.add_all(open_list.iter().chain(&answered_list).map(|r| support_subject(r.id, r.user_id)));
    let row = |r: &super::support::SupportRequest| views::SupportRow {
        id: r.id,
        name: r.name.clone(),
        subject: r.subject.clone(),
        status: r.status.clone(),
        received: Moment(r.created_at),
        open: r.status == super::support::status::OPEN,
    };
    Ok(Page::view(
        "privacy/support_list",
        "Support requests",
        views::SupportList {
            open: open_list.iter().map(row).collect(),
            open_nav,
            answered: answered_list.iter().map(row).collect(),
            answered_nav,
        },
    ))
}

#[get("/staff/support/<id>")]
pub async fn support_request(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, id: i64) -> AppResult<Page> {
    let (request, replies) =
        db.run(move |conn| Ok::<_, AppError>(super::support::get(conn, id)?)).await?.ok_or(AppError::NotFound)?;
    trail.add(support_subject(request.id, request.user_id));
    Ok(Page::view(
        "privacy/support_request",
        format!("Support request #{id}"),
        views::SupportRequest {
            received: Moment(request.created_at),
            closed: request.status == super::support::status::CLOSED,
            request,
            replies: replies
                .iter()
                .map(|(r, by)| views::SupportReply { body: r.body.clone(), by: by.clone(), at: Moment(r.created_at) })
                .collect(),
        },
    ))
}

/// A support request's writer: an account, or (for a visitor) the request
/// itself, which holds their name and email.
fn support_subject(id: i64, user_id: Option<i64>) -> Subject {
    let s = Subject::default().item(format!("support request {id}"));
    Subject { user_id, ..s }
}

#[derive(FromForm)]
pub struct AnswerForm {
    #[field(default = String::new())]
    body: String,
}

#[post("/staff/support/<id>/answer", data = "<form>")]
pub async fn support_answer(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<AnswerForm>,
) -> AppResult<Flash> {
    if let Some((r, _)) = db.run(move |conn| Ok::<_, AppError>(super::support::get(conn, id)?)).await? {
        trail.add(support_subject(r.id, r.user_id));
    }
    let by = staff.0.id;
    let body = form.form.body;
    let back = format!("/staff/support/{id}");
    db.run(move |conn| {
        if super::support::get(conn, id)?.is_none() {
            return Err(AppError::NotFound);
        }
        Ok(match super::support::answer(conn, id, by, &body, now()) {
            Ok(()) => Flash::success(back, "Your answer is on its way by email."),
            Err(m) => Flash::error(back, m),
        })
    })
    .await
}

#[post("/staff/support/<id>/close", data = "<_form>")]
pub async fn support_close(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    if let Some((r, _)) = db.run(move |conn| Ok::<_, AppError>(super::support::get(conn, id)?)).await? {
        trail.add(support_subject(r.id, r.user_id));
    }
    let closed = db.run(move |conn| Ok::<_, AppError>(super::support::close(conn, id, now())?)).await?;
    if !closed {
        return Err(AppError::NotFound);
    }
    Ok(Flash::success("/staff/support", format!("Request #{id} closed.")))
}

#[get("/staff/notices?<page>")]
pub async fn notices_page(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    // Notices and how many accounts each reached; no one is named.
    trail.nobody();
    let paging = PageRequest::parse(page, NOTICES_PAGE);
    let list =
        db.run(move |conn| Ok::<_, AppError>(super::notices::page(conn, paging.offset(), paging.fetch())?)).await?;
    let (list, nav) = paging.finish(list, |p| format!("/staff/notices?page={p}"));
    let notices = list
        .into_iter()
        .map(|(id, title, _, audience, recipients, published, withdrawn)| views::NoticeRow {
            id,
            title,
            audience,
            recipients,
            published: Day::from(published),
            withdrawn: withdrawn.map(Day::from),
        })
        .collect();
    Ok(Page::view("privacy/notices", "Breach notices", views::Notices { notices, nav }))
}

#[derive(FromForm)]
pub struct NoticeForm {
    #[field(default = String::new())]
    title: String,
    #[field(default = String::new())]
    body: String,
    #[field(default = String::new())]
    audience: String,
    #[field(default = String::new())]
    list: String,
    #[field(default = String::new())]
    course: String,
    #[field(default = String::new())]
    since: String,
}

#[post("/staff/notices", data = "<form>")]
pub async fn publish_notice(
    trail: Trail<'_>,
    db: &State<Db>,
    notices: &State<super::notices::Notices>,
    staff: StaffUser,
    form: CsrfForm<NoticeForm>,
) -> AppResult<Flash> {
    trail.nobody();
    use super::notices::Audience;
    let f = form.form;
    let back = "/staff/notices";
    let audience = match f.audience.as_str() {
        "all" => Audience::All,
        "list" => Audience::List(f.list),
        "course" => Audience::Course(f.course),
        "since" => match chrono::NaiveDate::parse_from_str(f.since.trim(), "%Y-%m-%d") {
            Ok(day) => Audience::SignedInSince(day),
            Err(_) => return Ok(Flash::error(back, "Give the date as YYYY-MM-DD.")),
        },
        _ => return Ok(Flash::error(back, "Choose who is affected.")),
    };
    let by = staff.0.id;
    let notices = notices.inner().clone();
    db.run(move |conn| {
        Ok::<_, AppError>(match super::notices::publish(conn, &f.title, &f.body, &audience, by, now()) {
            Ok((_, n)) => {
                notices.refresh(conn)?;
                Flash::success(back, format!("The notice is on the home page and on its way to {n} account(s)."))
            }
            Err(m) => Flash::error(back, m),
        })
    })
    .await
}

#[post("/staff/notices/<id>/withdraw", data = "<_form>")]
pub async fn withdraw_notice(
    trail: Trail<'_>,
    db: &State<Db>,
    notices: &State<super::notices::Notices>,
    _staff: StaffUser,
    id: i64,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    trail.nobody();
    let notices = notices.inner().clone();
    db.run(move |conn| {
        let done = super::notices::withdraw(conn, id, now())?;
        notices.refresh(conn)?;
        Ok::<_, AppError>(if done {
            Flash::success("/staff/notices", "The notice is no longer on the home page.")
        } else {
            Flash::info("/staff/notices", "That notice was withdrawn already.")
        })
    })
    .await
}
