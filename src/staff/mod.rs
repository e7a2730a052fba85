//! The operator's staff area: an overview and the job queue (with replay of
//! dead jobs). Staff-only by the `StaffUser` guard on every route.

pub mod views;

use rocket::{State, get, post};

use crate::db::Db;
use crate::jobs;
use crate::web::csrf::CsrfOnly;
use crate::web::paging::PageRequest;
use crate::web::trail::Trail;
use crate::web::{AppError, AppResult, Flash, Page, StaffUser};

#[get("/staff")]
pub async fn index(_staff: StaffUser, trail: Trail<'_>, db: &State<Db>) -> AppResult<Page> {
    // Counts of jobs only.
    trail.nobody();
    let counts = db.run(|conn| jobs::counts(conn).map_err(AppError::from)).await?;
    Ok(Page::view("staff/index", "Staff", views::Index { counts: counts.into_iter().collect() }))
}

/// Jobs on the staff list's page.
const JOBS_PAGE: i64 = 100;

#[get("/staff/jobs?<status>&<page>")]
pub async fn job_list(
    _staff: StaffUser,
    trail: Trail<'_>,
    db: &State<Db>,
    status: Option<&str>,
    page: Option<&str>,
) -> AppResult<Page> {
    // Kinds, states and errors of jobs; their payloads are not shown.
    trail.nobody();
    let filter = status
        .filter(|s| [jobs::status::QUEUED, jobs::status::RUNNING, jobs::status::DONE, jobs::status::DEAD].contains(s))
        .map(str::to_string);
    let f = filter.clone();
    let paging = PageRequest::parse(page, JOBS_PAGE);
    let list = db
        .run(move |conn| jobs::recent(conn, f.as_deref(), paging.offset(), paging.fetch()).map_err(AppError::from))
        .await?;
    let (list, nav) = paging.finish(list, |p| match &filter {
        Some(s) => format!("/staff/jobs?status={s}&page={p}"),
        None => format!("/staff/jobs?page={p}"),
    });
    let jobs = list
        .into_iter()
        .map(|j| views::JobRow {
            badge: match j.status.as_str() {
                "done" => "success",
                "dead" => "danger",
                "running" => "info",
                _ => "muted",
            },
            dead: j.status == jobs::status::DEAD,
            id: j.id,
            kind: j.kind,
            status: j.status,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at.into(),
            last_error: j.last_error,
        })
        .collect();
    Ok(Page::view("staff/jobs", "Jobs", views::Jobs { jobs, filter, nav }))
}

#[post("/staff/jobs/<id>/retry", data = "<_form>")]
pub async fn retry_job(
    _staff: StaffUser,
    trail: Trail<'_>,
    _form: CsrfOnly,
    db: &State<Db>,
    id: i64,
) -> AppResult<Flash> {
    trail.nobody();
    let ok = db.run(move |conn| jobs::retry(conn, id).map_err(AppError::from)).await?;
    Ok(if ok {
        Flash::success("/staff/jobs", format!("Job {id} is queued again."))
    } else {
        Flash::error("/staff/jobs", format!("Job {id} cannot be retried (unknown, running or done)."))
    })
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![index, job_list, retry_job,]
}
