//! The studio: where member staff build courses in the browser, import and
//! export packages, publish runs, read the gradebook and write announcements.
//! Every route checks authorship through `authoring`; nobody sees or edits a
//! member's content without belonging to it.

use crate::web::trail::Trail;
use std::sync::Arc;

use rocket::form::Form;
use rocket::http::{ContentType, CookieJar, Status};
use rocket::response::stream::TextStream;
use rocket::{FromForm, State, get, post};

use crate::accounts::service::TrailAccount;
use crate::db::{Db, now};
use crate::learning::authoring::{self, RunInput};
use crate::learning::service::{self as learning};
use crate::learning::{package, transfer, views};
use crate::storage::BlobStore;
use crate::web::csrf::verify_token;
use crate::web::download::Download;
use crate::web::format::{Day, iso};
use crate::web::upload::{ImageShape, ImageUpload, Upload, UploadLimit, store_image};
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

/// A studio action's outcome: success as given, a refused input as an error
/// message back on the page it came from, anything else as an error page.
fn settle<T>(r: Result<T, learning::LearningError>, back: String, ok: impl FnOnce(T) -> Flash) -> AppResult<Flash> {
    match r {
        Ok(v) => Ok(ok(v)),
        Err(learning::LearningError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

#[get("/studio")]
pub async fn index(db: &State<Db>, user: CurrentUser, trail: Trail<'_>) -> AppResult<Page> {
    // Members and their courses.
    trail.nobody();
    let u = user.0.clone();
    let members = db
        .run(move |conn| {
            let mut out = Vec::new();
            for m in authoring::members_for(conn, &u)? {
                let courses = authoring::courses_of_member(conn, m.id)?.iter().map(views::StudioCourse::of).collect();
                out.push(views::StudioMemberCard {
                    manage: learning::can_manage_member(&u, m.id),
                    slug: m.slug,
                    name: m.name,
                    courses,
                });
            }
            Ok::<_, AppError>(out)
        })
        .await?;
    if members.is_empty() && !user.is_staff() {
        return Err(AppError::Forbidden("The studio is for the staff of member institutions.".into()));
    }
    Ok(Page::view("studio/index", "Studio", views::StudioIndexView { members, is_staff: user.is_staff() }))
}

#[derive(FromForm)]
pub struct MemberForm {
    #[field(default = String::new())]
    slug: String,
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    description: String,
}

#[post("/studio/members", data = "<form>")]
pub async fn create_member(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    form: CsrfForm<MemberForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let f = form.form;
    let r = db
        .run(move |conn| {
            Ok::<_, AppError>(authoring::create_member(conn, &user, &f.slug, &f.name, &f.description, now()))
        })
        .await?;
    match r {
        Ok(m) => Ok(Flash::success(format!("/studio/members/{}", m.slug), format!("{} is now a member.", m.name))),
        Err(learning::LearningError::Invalid(m)) => Ok(Flash::error("/studio", m)),
        Err(e) => Err(e.into()),
    }
}

#[get("/studio/members/<slug>")]
pub async fn member(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, slug: &str) -> AppResult<Page> {
    let slug = slug.to_string();
    let (view, shown) = db
        .run(move |conn| {
            let m = authoring::member_by_slug(conn, &slug)?;
            if !learning::can_author(&user, m.id) {
                return Err(AppError::NotFound);
            }
            let staff = authoring::member_staff(conn, m.id)?;
            let shown: Vec<i64> = {
                use crate::db::schema::role_grants;
                use diesel::prelude::*;
                role_grants::table
                    .filter(role_grants::scope.eq(format!("member:{}", m.id)))
                    .select(role_grants::user_id)
                    .load(conn)?
            };
            let courses = authoring::courses_of_member(conn, m.id)?.iter().map(views::StudioCourse::of).collect();
            Ok((
                views::StudioMemberView {
                    manage: learning::can_manage_member(&user, m.id),
                    member: views::MemberView {
                        slug: m.slug,
                        name: m.name,
                        description: m.description,
                        logo: m.logo_blob.map(|k| format!("/media/{k}")),
                    },
                    staff: staff
                        .into_iter()
                        .map(|(username, role)| views::StaffMember { username, role: role.to_string() })
                        .collect(),
                    courses,
                },
                shown,
            ))
        })
        .await?;
    // The member's staff are listed.
    trail.users(shown);
    let title = view.member.name.clone();
    Ok(Page::view("studio/member", title, view))
}

#[derive(FromForm)]
pub struct AppointForm {
    #[field(default = String::new())]
    login: String,
    #[field(default = String::new())]
    role: String,
}

#[post("/studio/members/<slug>/staff", data = "<form>")]
pub async fn appoint(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<AppointForm>,
) -> AppResult<Flash> {
    trail.account(db, &form.form.login).await;
    let slug = slug.to_string();
    let back = format!("/studio/members/{slug}");
    let Some(role) = authoring::member_role(&form.form.role) else {
        return Ok(Flash::error(back, "Choose a role: member admin, instructor or course staff."));
    };
    let login = form.form.login.clone();
    let r = db
        .run(move |conn| {
            let m = authoring::member_by_slug(conn, &slug)?;
            Ok::<_, AppError>(authoring::appoint(conn, &user, &m, &login, role))
        })
        .await?;
    settle(r, back.clone(), |username| {
        Flash::success(back, format!("{username} is now {}.", role.as_str().replace('_', " ")))
    })
}

#[post("/studio/members/<slug>/logo", data = "<form>")]
pub async fn member_logo(
    trail: Trail<'_>,
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    slug: &str,
    form: Form<ImageUpload>,
) -> AppResult<Flash> {
    trail.nobody();
    verify_token(cookies, &form.csrf_token)?;
    let back = format!("/studio/members/{slug}");
    let slug = slug.to_string();
    let u = user.0.clone();
    let member = db.run(move |conn| authoring::member_by_slug(conn, &slug).map_err(AppError::from)).await?;
    if !learning::can_manage_member(&u, member.id) {
        return Err(AppError::Forbidden("Only this member's administrators can change its logo.".into()));
    }
    let key = match store_image(db, blobs, &form.image, ImageShape::Fit(512)).await? {
        Ok(k) => k,
        Err(m) => return Ok(Flash::error(back, m)),
    };
    db.run(move |conn| authoring::set_member_logo(conn, &user, &member, &key, now()).map_err(AppError::from)).await?;
    Ok(Flash::success(back, "The logo is updated."))
}

#[post("/studio/courses/<slug>/image", data = "<form>")]
pub async fn course_image(
    trail: Trail<'_>,
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    slug: &str,
    form: Form<ImageUpload>,
) -> AppResult<Flash> {
    trail.nobody();
    verify_token(cookies, &form.csrf_token)?;
    let back = format!("/studio/courses/{slug}");
    let slug = slug.to_string();
    let course = db.run(move |conn| authoring::authorable(conn, &user, &slug).map_err(AppError::from)).await?;
    let key = match store_image(db, blobs, &form.image, ImageShape::Fit(1600)).await? {
        Ok(k) => k,
        Err(m) => return Ok(Flash::error(back, m)),
    };
    db.run(move |conn| {
        authoring::set_course_image(conn, &course, &key, now())?;
        Ok::<_, AppError>(())
    })
    .await?;
    Ok(Flash::success(back, "The course image is updated."))
}

#[derive(FromForm)]
pub struct CourseForm {
    #[field(default = String::new())]
    member: String,
    #[field(default = String::new())]
    slug: String,
    #[field(default = String::new())]
    title: String,
    #[field(default = String::new())]
    summary: String,
    #[field(default = String::new())]
    description: String,
    #[field(default = String::new())]
    subjects: String,
    #[field(default = String::from("en"))]
    language: String,
    #[field(default = String::new())]
    effort: String,
}

#[post("/studio/courses", data = "<form>")]
pub async fn create_course(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    form: CsrfForm<CourseForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let f = form.form;
    let back = format!("/studio/members/{}", f.member);
    let r = db
        .run(move |conn| {
            let m = authoring::member_by_slug(conn, &f.member)?;
            let input = match authoring::parse_course(
                &f.slug,
                &f.title,
                &f.summary,
                &f.description,
                &f.subjects,
                &f.language,
                &f.effort,
            ) {
                Ok(i) => i,
                Err(e) => return Ok(Err(e)),
            };
            Ok::<_, AppError>(authoring::create_course(conn, &user, &m, &input, now()))
        })
        .await?;
    settle(r, back, |c| {
        Flash::success(
            format!("/studio/courses/{}", c.slug),
            "Course created. Add sections, units and a run, then publish.",
        )
    })
}

#[get("/studio/courses/<slug>")]
pub async fn course(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, slug: &str) -> AppResult<Page> {
    // The course's settings, runs and outline.
    trail.nobody();
    let slug = slug.to_string();
    let view = db
        .run(move |conn| {
            let c = authoring::authorable(conn, &user, &slug)?;
            let m = learning::member(conn, c.member_id)?;
            let runs = learning::runs(conn, c.id)?;
            let outline = learning::outline(conn, c.id)?;
            Ok::<_, AppError>(views::StudioCourseView {
                course: views::StudioCourseDetails {
                    slug: c.slug,
                    title: c.title,
                    summary: c.summary,
                    description: c.description,
                    subjects: c.subjects,
                    language: c.language,
                    effort: c.effort,
                    published: c.published,
                    image: c.image_blob.map(|k| format!("/media/{k}")),
                },
                member: views::MemberLink { slug: m.slug, name: m.name },
                runs: runs
                    .into_iter()
                    .map(|r| views::StudioRun {
                        id: r.id,
                        key: r.run_key,
                        starts: r.starts_at.into(),
                        ends: r.ends_at.map(Day::from),
                        pacing: r.pacing,
                        access_days: r.access_days,
                        pass_threshold: r.pass_threshold,
                    })
                    .collect(),
                sections: outline
                    .into_iter()
                    .map(|(s, us)| views::StudioSection {
                        id: s.id,
                        title: s.title,
                        units: us.into_iter().map(|u| views::StudioUnit { id: u.id, title: u.title }).collect(),
                    })
                    .collect(),
            })
        })
        .await?;
    let title = format!("Edit {}", view.course.title);
    Ok(Page::view("studio/course", title, view))
}

#[post("/studio/courses/<slug>/details", data = "<form>")]
pub async fn update_course(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    form: CsrfForm<CourseForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let slug = slug.to_string();
    let f = form.form;
    let back = format!("/studio/courses/{slug}");
    let r = db
        .run(move |conn| {
            let c = authoring::authorable(conn, &user, &slug)?;
            let input = match authoring::parse_course(
                &c.slug,
                &f.title,
                &f.summary,
                &f.description,
                &f.subjects,
                &f.language,
                &f.effort,
            ) {
                Ok(i) => i,
                Err(e) => return Ok(Err(e)),
            };
            Ok::<_, AppError>(authoring::update_course(conn, &c, &input, now()))
        })
        .await?;
    match r {
        Ok(()) => Ok(Flash::success(back, "Course details saved.")),
        Err(learning::LearningError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(FromForm)]
pub struct PublishForm {
    #[field(default = false)]
    published: bool,
}

#[post("/studio/courses/<slug>/publish", data = "<form>")]
pub async fn publish(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    form: CsrfForm<PublishForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let slug = slug.to_string();
    let published = form.form.published;
    let back = format!("/studio/courses/{slug}");
    let r = db
        .run(move |conn| {
            let c = authoring::authorable(conn, &user, &slug)?;
            Ok::<_, AppError>(authoring::set_published(conn, &c, published, now()))
        })
        .await?;
    match r {
        Ok(()) => Ok(Flash::success(
            back,
            if published {
                "The course is published in the catalog."
            } else {
                "The course is hidden from the catalog."
            },
        )),
        Err(learning::LearningError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(FromForm)]
pub struct RunForm {
    #[field(default = String::new())]
    key: String,
    #[field(default = String::new())]
    starts_at: String,
    #[field(default = String::new())]
    ends_at: String,
    #[field(default = String::new())]
    enrollment_opens_at: String,
    #[field(default = String::new())]
    enrollment_closes_at: String,
    #[field(default = String::from("self"))]
    pacing: String,
    #[field(default = String::new())]
    access_days: String,
    #[field(default = String::from("60"))]
    pass_threshold: String,
    #[field(default = false)]
    audit: bool,
    #[field(default = String::new())]
    verified_price: String,
}

fn parse_run(f: &RunForm) -> Result<RunInput, learning::LearningError> {
    use learning::LearningError::Invalid;
    let int = |s: &str, what: &str| -> Result<Option<i32>, learning::LearningError> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse::<i32>().map(Some).map_err(|_| Invalid(format!("The {what} must be a whole number.")))
        }
    };
    let price = {
        let p = f.verified_price.trim();
        if p.is_empty() {
            None
        } else {
            let v: f64 =
                p.parse().map_err(|_| Invalid("The verified price must be a number like 49 or 49.00.".into()))?;
            if !(0.0..=100_000.0).contains(&v) {
                return Err(Invalid("The verified price must be between 0 and 100000.".into()));
            }
            Some((v * 100.0).round() as i32)
        }
    };
    Ok(RunInput {
        key: f.key.trim().to_string(),
        starts_at: authoring::parse_time(&f.starts_at, "start")?
            .ok_or_else(|| Invalid("Please give the run a start date.".into()))?,
        ends_at: authoring::parse_time(&f.ends_at, "end")?,
        enrollment_opens_at: authoring::parse_time(&f.enrollment_opens_at, "enrollment opening")?,
        enrollment_closes_at: authoring::parse_time(&f.enrollment_closes_at, "enrollment closing")?,
        pacing: f.pacing.clone(),
        access_days: int(&f.access_days, "access length")?,
        pass_threshold: int(&f.pass_threshold, "pass threshold")?.unwrap_or(60),
        audit: f.audit,
        verified_price_cents: price,
        currency: "USD".into(),
    })
}

#[post("/studio/courses/<slug>/runs", data = "<form>")]
pub async fn add_run(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    form: CsrfForm<RunForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let slug = slug.to_string();
    let back = format!("/studio/courses/{slug}");
    let run = match parse_run(&form.form) {
        Ok(r) => r,
        Err(e) => return Ok(Flash::error(back, e.to_string())),
    };
    let r = db
        .run(move |conn| {
            let c = authoring::authorable(conn, &user, &slug)?;
            Ok::<_, AppError>(authoring::add_run(conn, &c, &run, now()))
        })
        .await?;
    match r {
        Ok(()) => Ok(Flash::success(back, "Run added.")),
        Err(learning::LearningError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(FromForm)]
pub struct OutlineForm {
    #[field(default = String::new())]
    action: String,
    #[field(default = 0)]
    id: i64,
    #[field(default = String::new())]
    title: String,
}

#[post("/studio/courses/<slug>/outline", data = "<form>")]
pub async fn outline(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    form: CsrfForm<OutlineForm>,
) -> AppResult<Flash> {
    trail.nobody();
    let slug = slug.to_string();
    let back = format!("/studio/courses/{slug}");
    let f = form.form;
    let r = db
        .run(move |conn| {
            let c = authoring::authorable(conn, &user, &slug)?;
            let r = match f.action.as_str() {
                "add_section" => authoring::add_section(conn, &c, &f.title),
                "add_unit" => authoring::add_unit(conn, &c, f.id, &f.title).map(|_| ()),
                other => authoring::outline_action(conn, &c, other, f.id, &f.title),
            };
            if r.is_ok() {
                authoring::queue_reindex(conn, c.id)?;
            }
            Ok::<_, AppError>(r)
        })
        .await?;
    match r {
        Ok(()) => Ok(Flash::success(back, "Outline saved.")),
        Err(learning::LearningError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

/// A course package upload: the same bound as `lyceum course import`.
pub struct PackageLimit;
impl UploadLimit for PackageLimit {
    const BYTES: u64 = package::MAX_PACKAGE_BYTES;
    const WHAT: &'static str = "course package";
}

/// A file offered in a course (a resource or video block).
pub struct CourseFileLimit;
impl UploadLimit for CourseFileLimit {
    const BYTES: u64 = 200 * 1024 * 1024;
    const WHAT: &'static str = "file";
}

#[derive(FromForm)]
pub struct ImportForm {
    #[field(default = String::new())]
    csrf_token: String,
    #[field(default = String::new())]
    member: String,
    package: Upload<PackageLimit>,
}

#[post("/studio/import", data = "<form>")]
pub async fn import(
    trail: Trail<'_>,
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    form: Form<ImportForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    trail.nobody();
    verify_token(cookies, &form.csrf_token)?;
    let bytes = form.package.required()?.to_vec();
    let member_slug = form.member.clone();
    let blobs = blobs.inner().clone();
    let result = db
        .run(move |conn| {
            let m = authoring::member_by_slug(conn, &member_slug)?;
            if !learning::can_author(&user, m.id) {
                return Err(AppError::NotFound);
            }
            let pkg = match package::read_zip(&bytes) {
                Ok(p) => p,
                Err(problems) => return Ok(Err(problems)),
            };
            Ok(transfer::import(conn, blobs.as_ref(), &user, &m, &pkg))
        })
        .await?;
    match result {
        Ok(course) => Ok(rocket::Either::Left(Flash::success(
            format!("/studio/courses/{}", course.slug),
            format!("Imported {}.", course.title),
        ))),
        Err(problems) => Ok(rocket::Either::Right(
            Page::view(
                "studio/import_problems",
                "The package was not imported",
                views::ImportProblemsView { problems: problems.iter().map(|p| p.to_string()).collect() },
            )
            .with_status(Status::UnprocessableEntity),
        )),
    }
}

#[get("/studio/courses/<slug>/export")]
pub async fn export(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
) -> AppResult<Download<Vec<u8>>> {
    // The course package: content, no learner's records.
    trail.nobody();
    let slug = slug.to_string();
    let blobs = blobs.inner().clone();
    db.run(move |conn| {
        let c = authoring::authorable(conn, &user, &slug)?;
        let pkg = transfer::export(conn, blobs.as_ref(), &c).map_err(AppError::Internal)?;
        let zip = package::write_zip(&pkg).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Download::new(zip, ContentType::ZIP, &format!("{}.zip", c.slug), false))
    })
    .await
}

#[get("/studio/runs/<id>/gradebook")]
pub async fn gradebook(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, id: i64) -> AppResult<Page> {
    let (view, course_id, shown) = db
        .run(move |conn| {
            let (run, course) = learning::run_by_id(conn, id)?;
            if !learning::can_author(&user, course.member_id) {
                return Err(AppError::NotFound);
            }
            let cols = learning::quiz_columns(conn, course.id)?;
            let ids: Vec<i64> = cols.iter().map(|(i, _)| *i).collect();
            let (rows, _) = learning::gradebook_page(conn, &run, &ids, 0, 500)?;
            let shown = enrolled(conn, run.id, Some(500))?;
            let view = views::GradebookView {
                truncated: rows.len() >= 500,
                course: views::CourseLink { slug: course.slug, title: course.title },
                run: views::GradebookRun { id: run.id, key: run.run_key, pass_threshold: run.pass_threshold },
                columns: cols.into_iter().map(|(_, t)| t).collect(),
                rows: rows
                    .into_iter()
                    .map(|r| views::GradebookLine {
                        username: r.username,
                        track: r.track,
                        enrolled: r.enrolled_at.into(),
                        units_done: r.units_done,
                        scores: r.quiz_scores.iter().map(|s| s.map(|v| format!("{:.0}", v * 100.0))).collect(),
                        grade: format!("{:.1}", r.grade_percent),
                        passed: r.passed,
                        completed: r.completed_at.map(Day::from),
                    })
                    .collect(),
            };
            Ok::<_, AppError>((view, course.id, shown))
        })
        .await?;
    trail.course_users(course_id, shown);
    Ok(Page::view("studio/gradebook", "Gradebook", view))
}

/// The gradebook as CSV, streamed a page of learners at a time.
#[get("/studio/runs/<id>/gradebook.csv")]
pub async fn gradebook_csv(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    id: i64,
) -> AppResult<Download<TextStream![String]>> {
    let db2 = db.inner().clone();
    let (run, course, cols, shown) = db2
        .run(move |conn| {
            let (run, course) = learning::run_by_id(conn, id)?;
            if !learning::can_author(&user, course.member_id) {
                return Err(AppError::NotFound);
            }
            let cols = learning::quiz_columns(conn, course.id)?;
            let shown = enrolled(conn, run.id, None)?;
            Ok::<_, AppError>((run, course, cols, shown))
        })
        .await?;
    // Every learner of the run (the log keeps the first of them and a count).
    trail.course_users(course.id, shown);
    let filename = format!("{}-{}-gradebook.csv", course.slug, run.run_key);
    let db = db.inner().clone();
    let stream = TextStream! {
        let mut header = vec!["username".to_string(), "track".into(), "enrolled_at".into(), "units_completed".into()];
        header.extend(cols.iter().map(|(_, t)| t.clone()));
        header.extend(["grade_percent".to_string(), "passed".into(), "completed_at".into()]);
        yield csv_line(&header);
        let ids: Vec<i64> = cols.iter().map(|(i, _)| *i).collect();
        let mut after = 0;
        loop {
            let (r2, ids2) = (run.clone(), ids.clone());
            let page = db.run(move |conn| learning::gradebook_page(conn, &r2, &ids2, after, 500).map_err(AppError::from)).await;
            let Ok((rows, next)) = page else { break };
            for r in rows {
                let mut cells = vec![r.username, r.track, iso(r.enrolled_at), r.units_done.to_string()];
                cells.extend(r.quiz_scores.iter().map(|s| s.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_default()));
                cells.extend([format!("{:.2}", r.grade_percent), r.passed.to_string(), r.completed_at.map(iso).unwrap_or_default()]);
                yield csv_line(&cells);
            }
            match next { Some(n) => after = n, None => break }
        }
    };
    Ok(Download::new(stream, ContentType::CSV, &filename, false))
}

/// The learners of a run, as the gradebook lists them (by enrollment).
fn enrolled(conn: &mut crate::db::Conn, run_id: i64, limit: Option<i64>) -> diesel::QueryResult<Vec<i64>> {
    use crate::db::schema::enrollments;
    use diesel::prelude::*;
    let q = enrollments::table
        .filter(enrollments::run_id.eq(run_id))
        .order(enrollments::id.asc())
        .select(enrollments::user_id);
    match limit {
        Some(n) => q.limit(n).load(conn),
        None => q.load(conn),
    }
}

fn csv_line(cells: &[String]) -> String {
    let mut w = crate::web::csv::Writer::in_memory();
    let _ = w.write_record(cells);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[derive(FromForm)]
pub struct AnnounceForm {
    #[field(default = String::new())]
    subject: String,
    #[field(default = String::new())]
    body: String,
}

#[post("/studio/runs/<id>/announce", data = "<form>")]
pub async fn announce(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<AnnounceForm>,
) -> AppResult<Flash> {
    let f = form.form;
    let back = format!("/studio/runs/{id}/gradebook");
    let (r, course_id) = db
        .run(move |conn| {
            let (run, course) = learning::run_by_id(conn, id)?;
            if !learning::can_author(&user, course.member_id) {
                return Err(AppError::NotFound);
            }
            let sent = learning::announce(conn, user.id, &course, &run, &f.subject, &f.body, now());
            Ok::<_, AppError>((sent, course.id))
        })
        .await?;
    // Mailed to the run's learners: the course, and the run as the item.
    trail.add(crate::web::trail::Subject::of_course(course_id).item(format!("run {id}")));
    settle(r, back.clone(), |n| Flash::success(back, format!("Announcement sent to {n} learner(s).")))
}
