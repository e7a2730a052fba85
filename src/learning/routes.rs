//! Learner-facing pages: catalog and search, course about pages, enrollment,
//! the dashboard, the course outline, units with their blocks, quizzes, live
//! sessions, resources and feedback. Thin: parse, call a service, render.

use std::sync::Arc;

use rocket::http::{ContentType, Status};
use rocket::response::Redirect;
use rocket::{Either, FromForm, State, get, post};
use serde_json::Value;

use crate::db::{Db, now};
use crate::learning::catalog::{self, Filters};
use crate::learning::content::{Answers, BlockData, embed_url, render_markdown};
use crate::learning::hooks::{LearningHooks, ProctoringStatus, SharingAnswer};
use crate::learning::model::{Block, Course, Enrollment};
use crate::learning::service::{self as learning, LearningError, NextStep, NoSubmit, Track, Verdict};
use crate::learning::views;
use crate::media::files;
use crate::search::SearchIndex;
use crate::storage::BlobStore;
use crate::web::csrf::CsrfOnly;
use crate::web::format::Day;
use crate::web::guards::Viewer;
use crate::web::page::Fragment;
use crate::web::paging::PageRequest;
use crate::web::{AppError, AppResult, ClientInfo, CsrfForm, CurrentUser, Flash, Page};

impl From<LearningError> for AppError {
    fn from(e: LearningError) -> Self {
        match e {
            LearningError::NotFound => AppError::NotFound,
            LearningError::Forbidden(m) => AppError::Forbidden(m),
            LearningError::Invalid(m) => AppError::Unprocessable(m),
            LearningError::Db(e) => AppError::from(e),
        }
    }
}

fn nonempty(v: Option<&str>) -> Option<String> {
    v.map(str::trim).filter(|s| !s.is_empty() && s.len() <= 100).map(str::to_string)
}

#[allow(clippy::too_many_arguments)]
#[get("/courses?<q>&<member>&<subject>&<language>&<pacing>&<open>&<page>")]
pub async fn catalog_page(
    db: &State<Db>,
    search: &State<Arc<dyn SearchIndex>>,
    q: Option<&str>,
    member: Option<&str>,
    subject: Option<&str>,
    language: Option<&str>,
    pacing: Option<&str>,
    open: Option<bool>,
    page: Option<&str>,
) -> AppResult<Page> {
    let query = nonempty(q);
    let ranked = match &query {
        Some(text) => Some(search.search(text, 100).await.map_err(|e| AppError::SearchUnavailable(e.to_string()))?),
        None => None,
    };
    let filters = Filters {
        member: nonempty(member),
        subject: nonempty(subject),
        language: nonempty(language),
        pacing: nonempty(pacing).filter(|p| p == "self" || p == "instructor"),
        open_only: open.unwrap_or(false),
    };
    let at = PageRequest::parse(page, catalog::PAGE_SIZE);
    let f = filters.clone();
    let (found, catalog::Facets { members, subjects, languages }) = db
        .run(move |conn| {
            let found = catalog::page(conn, &f, ranked.as_deref(), at, now())?;
            Ok::<_, AppError>((found, catalog::facets(conn)?))
        })
        .await?;
    let view = views::CatalogView {
        count: found.total,
        past_end: at.past(found.total),
        nav: at.nav_of(found.total, |n| filters.link(query.as_deref(), n)),
        cards: found.cards,
        q: query,
        members: members
            .into_iter()
            .map(|(slug, name)| views::MemberFacet {
                selected: filters.member.as_deref() == Some(slug.as_str()),
                slug,
                name,
            })
            .collect(),
        subjects: subjects
            .into_iter()
            .map(|slug| views::SubjectFacet { selected: filters.subject.as_deref() == Some(slug.as_str()), slug })
            .collect(),
        languages: languages
            .into_iter()
            .map(|code| views::LanguageFacet { selected: filters.language.as_deref() == Some(code.as_str()), code })
            .collect(),
        pacing: filters.pacing,
        open: filters.open_only,
    };
    Ok(Page::view("learning/catalog", "Course catalog", view))
}

#[get("/courses/<slug>")]
pub async fn about(db: &State<Db>, hooks: &State<LearningHooks>, viewer: Viewer, slug: &str) -> AppResult<Page> {
    let slug = slug.to_string();
    let user = viewer.0.clone();
    let hooks = **hooks;
    let buying = hooks.buying;
    let view = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            let may_preview = user.as_ref().is_some_and(|u| learning::can_author(u, course.member_id));
            if !course.published && !may_preview {
                return Err(AppError::NotFound);
            }
            let member = learning::member(conn, course.member_id)?;
            let runs = learning::runs(conn, course.id)?;
            let outline = learning::outline(conn, course.id)?;
            let enrollment = match &user {
                Some(u) => learning::enrollment_in_course(conn, u.id, course.id)?,
                None => None,
            };
            let (avg, ratings) = learning::rating(conn, course.id)?;
            let sharing = (hooks.sharing_offer)(conn, &member)?;
            let t = now();
            let exams = (hooks.open_exams)(conn, course.id, t)?;
            Ok(views::AboutView {
                exams,
                course: views::CourseSummary::of(&course),
                description_html: render_markdown(&course.description),
                member: views::MemberView {
                    name: member.name.clone(),
                    slug: member.slug.clone(),
                    description: member.description.clone(),
                    logo: member.logo_blob.as_ref().map(|k| format!("/media/{k}")),
                },
                runs: runs
                    .iter()
                    .map(|r| views::RunView {
                        key: r.run_key.clone(),
                        starts: r.starts_at.into(),
                        ends: r.ends_at.map(Day::from),
                        pacing: if r.pacing == "self" { "Self-paced" } else { "Instructor-paced" },
                        access_days: r.access_days,
                        pass_threshold: r.pass_threshold,
                        open: r.enrollment_open(t),
                        audit: r.audit,
                        // A price only for what can be bought here.
                        verified_price: r
                            .verified_price_cents
                            .filter(|c| buying && *c > 0)
                            .map(|c| format!("{:.2} {}", f64::from(c) / 100.0, r.currency)),
                    })
                    .collect(),
                outline: outline
                    .iter()
                    .map(|(s, us)| views::AboutSection {
                        title: s.title.clone(),
                        units: us.iter().map(|u| views::AboutUnit { title: u.title.clone() }).collect(),
                    })
                    .collect(),
                enrolled: enrollment.as_ref().is_some_and(|(e, _)| e.has_access(t)),
                expired: enrollment.as_ref().is_some_and(|(e, _)| !e.has_access(t)),
                signed_in: user.is_some(),
                verified: user.as_ref().is_some_and(|u| u.email_verified),
                rating: avg.map(|a| format!("{a:.1}")),
                ratings,
                may_author: may_preview,
                sharing,
            })
        })
        .await?;
    let title = view.course.title.clone();
    page("learning/about", title, &view)
}

/// A page from its typed view.
fn page(template: &'static str, title: impl Into<String>, view: &impl serde::Serialize) -> AppResult<Page> {
    Ok(Page::view(template, title, view))
}

#[derive(FromForm)]
pub struct EnrollForm {
    #[field(default = String::new())]
    run: String,
    #[field(default = String::from("audit"))]
    track: String,
    /// The learner's answer to the member-sharing question: `yes` or `no`.
    #[field(default = String::new())]
    share: String,
    /// The version of the sharing text the page showed.
    text_id: Option<i64>,
}

#[post("/courses/<slug>/enroll", data = "<form>")]
pub async fn enroll(
    db: &State<Db>,
    hooks: &State<LearningHooks>,
    user: CurrentUser,
    client: ClientInfo,
    slug: &str,
    form: CsrfForm<EnrollForm>,
) -> AppResult<Flash> {
    let Some(track) = Track::parse(&form.form.track) else {
        return Err(AppError::Unprocessable("Please choose the audit or the verified track.".into()));
    };
    let share = match form.form.share.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        "" => None,
        _ => return Err(AppError::Unprocessable("Please answer the sharing question with yes or no.".into())),
    };
    let text_id = form.form.text_id;
    let slug = slug.to_string();
    let run = form.form.run.clone();
    let back = format!("/courses/{slug}");
    let sharing_answered = hooks.sharing_answered;
    let result = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            let member = learning::member(conn, course.member_id)?;
            // Enrollment and the sharing decision stand or fall together.
            Ok::<_, AppError>(crate::db::transaction::<_, LearningError, _>(conn, |conn| {
                let enrollment = learning::enroll(conn, &user.0, &course, &run, track, now())?;
                let answer = SharingAnswer {
                    user_id: user.id,
                    run_id: enrollment.run_id,
                    share: share.map(|s| (s, text_id)),
                    client: &client,
                };
                sharing_answered(conn, &member, &answer, now())?.map_err(LearningError::Invalid)?;
                Ok(course)
            }))
        })
        .await?;
    match result {
        Ok(course) => Ok(Flash::success(
            format!("/learn/{}", course.slug),
            format!("You are enrolled in {}. Welcome!", course.title),
        )),
        Err(LearningError::Forbidden(m)) | Err(LearningError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

#[post("/courses/<slug>/unenroll", data = "<_form>")]
pub async fn unenroll(db: &State<Db>, user: CurrentUser, slug: &str, _form: CsrfOnly) -> AppResult<Flash> {
    let slug = slug.to_string();
    let id = user.id;
    let title = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            learning::unenroll(conn, id, course.id, now())?;
            Ok::<_, AppError>(course.title)
        })
        .await?;
    Ok(Flash::info("/dashboard", format!("You have left {title}. Your progress is kept if you enroll again.")))
}

#[get("/dashboard")]
pub async fn dashboard(db: &State<Db>, hooks: &State<LearningHooks>, user: CurrentUser) -> AppResult<Page> {
    let id = user.id;
    let certificate_of = hooks.certificate;
    let courses = db
        .run(move |conn| {
            let t = now();
            let mut out = Vec::new();
            for (e, run, course) in learning::my_courses(conn, id)? {
                let order = learning::unit_ids(conn, course.id)?;
                let done = learning::completed_units(conn, e.id)?;
                let next_step = learning::next_step(&order, &done, e.last_unit_id, e.completed_at.is_some())
                    .map(|s| views::StepLink::of(&course.slug, s));
                let certificate = certificate_of(conn, id, run.id)?;
                out.push(views::DashboardCourse {
                    certificate: certificate.map(|(code, valid)| views::CertificateBadge { valid, code }),
                    standing: learning::standing_of(&e, &order, &done),
                    title: course.title,
                    slug: course.slug,
                    next_step,
                    access: e.has_access(t),
                    access_until: e.access_expires_at.map(Day::from),
                    starts: run.starts_at.into(),
                    track: e.track,
                });
            }
            Ok::<_, AppError>(out)
        })
        .await?;
    let me =
        views::Me { first_name: user.first_name.clone(), verified: user.email_verified, email: user.email.clone() };
    page("accounts/dashboard", "Your dashboard", &views::DashboardView { me, courses })
}

/// A course's content as the learner (or an author previewing) sees it.
struct Access {
    course: Course,
    /// `None` when an author previews without being enrolled.
    enrollment: Option<Enrollment>,
    run: Option<crate::learning::model::Run>,
}

/// The way into a course's content: in, or (for a published course the
/// person is not, or no longer, enrolled in) the page that says why and
/// offers the way in.
enum Gate {
    In(Box<Access>),
    Out(Box<views::EnrollFirstView>),
}

fn gate(conn: &mut crate::db::Conn, user: &crate::kernel::SessionUser, slug: &str) -> AppResult<Gate> {
    // A learner opening a course they take: one query. Everyone else (staff
    // previewing, access ended, not enrolled) takes the longer way below.
    if let Some((e, run, course)) = learning::enrollment_by_slug(conn, user.id, slug)?
        && e.has_access(now())
    {
        return Ok(Gate::In(Box::new(Access { course, enrollment: Some(e), run: Some(run) })));
    }
    let course = learning::course_by_slug(conn, slug)?;
    match learning::active_enrollment(conn, user.id, course.id, now()) {
        Ok((e, r)) => Ok(Gate::In(Box::new(Access { course, enrollment: Some(e), run: Some(r) }))),
        Err(_) if learning::can_author(user, course.member_id) => {
            Ok(Gate::In(Box::new(Access { course, enrollment: None, run: None })))
        }
        Err(LearningError::Forbidden(message)) if course.published => Ok(Gate::Out(Box::new(views::EnrollFirstView {
            enroll_href: format!("/courses/{}#enroll", course.slug),
            course: views::CourseSummary::of(&course),
            message,
        }))),
        Err(LearningError::Forbidden(_)) => Err(AppError::NotFound),
        Err(e) => Err(e.into()),
    }
}

fn access(conn: &mut crate::db::Conn, user: &crate::kernel::SessionUser, slug: &str) -> AppResult<Access> {
    match gate(conn, user, slug)? {
        Gate::In(a) => Ok(*a),
        Gate::Out(v) => Err(AppError::Forbidden(v.message)),
    }
}

/// A page of the course's content, or the 403 page that offers the way in.
fn shown<T: serde::Serialize>(
    shown: Result<T, Box<views::EnrollFirstView>>,
    template: &'static str,
    title: impl FnOnce(&T) -> String,
) -> AppResult<Page> {
    match shown {
        Ok(view) => page(template, title(&view), &view),
        Err(out) => enroll_first(&out),
    }
}

/// The page a course's pages show someone who has not enrolled (403).
fn enroll_first(out: &views::EnrollFirstView) -> AppResult<Page> {
    Ok(page("learning/enroll_first", out.course.title.clone(), out)?.with_status(Status::Forbidden))
}

#[get("/learn/<slug>")]
pub async fn course_home(
    db: &State<Db>,
    hooks: &State<LearningHooks>,
    user: CurrentUser,
    slug: &str,
) -> AppResult<Page> {
    let slug = slug.to_string();
    let hooks = **hooks;
    let buying = hooks.buying;
    let view = db
        .run(move |conn| {
            let a = match gate(conn, &user, &slug)? {
                Gate::In(a) => *a,
                Gate::Out(v) => return Ok(Err(v)),
            };
            let outline = learning::outline(conn, a.course.id)?;
            let order: Vec<i64> = outline.iter().flat_map(|(_, us)| us.iter().map(|u| u.id)).collect();
            let done = match &a.enrollment {
                Some(e) => learning::completed_units(conn, e.id)?,
                None => Default::default(),
            };
            let next_step = match &a.enrollment {
                Some(e) => learning::next_step(&order, &done, e.last_unit_id, e.completed_at.is_some()),
                None => order.first().map(|u| NextStep::Start(*u)),
            };
            let certificate = match (&a.enrollment, &a.run) {
                (Some(e), Some(run)) => {
                    Some((hooks.certificate_card)(conn, user.id, run, &a.course.slug, &e.track, buying)?)
                }
                _ => None,
            };
            Ok::<_, AppError>(Ok(views::CourseHomeView {
                certificate,
                preview: a.enrollment.is_none(),
                standing: a.enrollment.as_ref().map(|e| learning::standing_of(e, &order, &done)),
                pass_threshold: a.run.as_ref().map(|r| r.pass_threshold),
                next_step: next_step.map(|s| views::StepLink::of(&a.course.slug, s)),
                sections: views::outline(&a.course.slug, &outline, &done, None),
                course: views::CourseSummary::of(&a.course),
            }))
        })
        .await?;
    shown(view, "learning/course", |v| v.course.title.clone())
}

/// The page at the end of a course: the grade against the pass mark, passed
/// or not, what remains, and the way to the certificate.
#[get("/learn/<slug>/complete")]
pub async fn course_complete(
    db: &State<Db>,
    hooks: &State<LearningHooks>,
    user: CurrentUser,
    slug: &str,
) -> AppResult<Page> {
    let slug = slug.to_string();
    let hooks = **hooks;
    let buying = hooks.buying;
    let view = db
        .run(move |conn| {
            let a = match gate(conn, &user, &slug)? {
                Gate::In(a) => *a,
                Gate::Out(v) => return Ok(Err(v)),
            };
            let (Some(e), Some(run)) = (&a.enrollment, &a.run) else {
                return Err(AppError::Forbidden(
                    "A preview has no result: the course-complete page is for enrolled learners.".into(),
                ));
            };
            let t = now();
            let sections = learning::outline(conn, a.course.id)?;
            let units: Vec<&crate::learning::model::Unit> = sections.iter().flat_map(|(_, us)| us.iter()).collect();
            let order: Vec<i64> = units.iter().map(|u| u.id).collect();
            let done = learning::completed_units(conn, e.id)?;
            let open: Vec<views::UnitLink> =
                units.iter().filter(|u| !done.contains(&u.id)).map(|u| views::UnitLink::of(&slug, u)).collect();
            let mut retry = Vec::new();
            if !e.passed {
                // The course's quizzes in one query; each one's attempts in another.
                for (b, quiz) in learning::quiz_blocks(conn, a.course.id)? {
                    let standing = learning::QuizStanding::load(conn, hooks.proctoring_status, Some(e), &b, &quiz, t)?;
                    if standing.may_submit().is_ok() && standing.best.unwrap_or(0.0) < 1.0 {
                        retry.push(views::RetryQuiz {
                            title: quiz.title.clone(),
                            href: format!("/learn/{slug}/units/{}#block-{}", b.unit_id, b.id),
                            best: format!("{:.0}", standing.best.unwrap_or(0.0) * 100.0),
                            left: standing.left(),
                        });
                    }
                }
            }
            let card = (hooks.certificate_card)(conn, user.id, run, &slug, &e.track, buying)?;
            let flag = |k: &str| card.get(k).and_then(Value::as_bool).unwrap_or(false);
            let issued = card.get("certificate").filter(|c| !c.is_null()).map(|c| views::CertificateBadge {
                code: c.get("code").and_then(Value::as_str).unwrap_or_default().to_string(),
                valid: c.get("valid").and_then(Value::as_bool).unwrap_or(false),
            });
            let standing = learning::standing_of(e, &order, &done);
            Ok::<_, AppError>(Ok(views::CompleteView {
                finished: learning::all_done(&order, &done),
                units_done: standing.units_done,
                units_total: standing.units_total,
                grade: views::percent(e.grade_percent),
                pass_threshold: run.pass_threshold,
                passed: e.passed,
                completed_at: standing.completed_at,
                more_remaining: open.len().saturating_sub(5),
                remaining: open.into_iter().take(5).collect(),
                retry,
                certificate: views::CertificatePath {
                    issued,
                    offered: flag("offered"),
                    verified_track: flag("verified"),
                    identity_ok: flag("identity_ok"),
                    identity_pending: flag("identity_pending"),
                    card: format!("/learn/{slug}#certificate-card"),
                },
                course: views::CourseSummary::of(&a.course),
            }))
        })
        .await?;
    shown(view, "learning/complete", |v| format!("{}: your result", v.course.title))
}

/// A block as the unit template shows it.
#[allow(clippy::too_many_arguments)]
fn block_view(
    conn: &mut crate::db::Conn,
    proctoring: ProctoringStatus,
    slug: &str,
    b: &Block,
    enrollment: Option<&Enrollment>,
    pass_threshold: Option<i32>,
    attended: bool,
    answer_errors: &[(usize, String)],
    t: chrono::NaiveDateTime,
) -> AppResult<views::BlockView> {
    Ok(match learning::block_data(b)? {
        BlockData::Text { markdown } => views::BlockView::Text { id: b.id, html: render_markdown(&markdown) },
        BlockData::Video { url, file, transcript } => views::BlockView::Video {
            id: b.id,
            embed: url.as_deref().and_then(embed_url),
            url,
            file: file.map(|_| format!("/learn/{slug}/files/{}", b.id)),
            transcript_html: transcript.map(|t| render_markdown(&t)),
        },
        BlockData::Resource { title, file } => views::BlockView::Resource {
            id: b.id,
            title,
            filename: file.filename,
            href: format!("/learn/{slug}/files/{}", b.id),
        },
        BlockData::Live { title, starts_at, link: _ } => views::BlockView::Live {
            id: b.id,
            title,
            starts: starts_at.into(),
            href: format!("/learn/{slug}/live/{}", b.id),
            attended,
            past: starts_at < t,
        },
        BlockData::Quiz(quiz) => {
            let standing = learning::QuizStanding::load(conn, proctoring, enrollment, b, &quiz, t)?;
            views::BlockView::Quiz(views::QuizView::new(b.id, slug, &quiz, &standing, pass_threshold, answer_errors))
        }
    })
}

async fn unit_page(
    db: &Db,
    hooks: &LearningHooks,
    user: CurrentUser,
    slug: String,
    unit_id: i64,
    answer_errors: Vec<(usize, String)>,
) -> AppResult<Page> {
    let has_errors = !answer_errors.is_empty();
    let proctoring = hooks.proctoring_status;
    let view = db
        .run(move |conn| {
            let a = match gate(conn, &user, &slug)? {
                Gate::In(a) => *a,
                Gate::Out(v) => return Ok(Err(v)),
            };
            // The outline gives the unit (when it is in this course), its
            // section and its neighbours in one query.
            let sections = learning::outline(conn, a.course.id)?;
            let order: Vec<(&crate::learning::model::Section, &crate::learning::model::Unit)> =
                sections.iter().flat_map(|(s, us)| us.iter().map(move |u| (s, u))).collect();
            let pos = order.iter().position(|(_, u)| u.id == unit_id).ok_or(AppError::NotFound)?;
            let (section, unit) = order[pos];
            let prev = pos.checked_sub(1).and_then(|p| order.get(p)).map(|(_, u)| views::UnitLink::of(&slug, u));
            let next = order.get(pos + 1).map(|(_, u)| views::UnitLink::of(&slug, u));
            let t = now();
            // Reading a unit records where the learner is, but only when that
            // changed or a while has passed: a page view should rarely be a write.
            if let Some(e) = &a.enrollment
                && (e.last_unit_id != Some(unit.id)
                    || e.last_activity_at.is_none_or(|at| t - at > chrono::Duration::minutes(5)))
            {
                learning::touch(conn, e.id, unit.id, t)?;
            }
            let blocks = learning::blocks_of(conn, unit.id)?;
            let attended = match &a.enrollment {
                Some(e) if blocks.iter().any(|b| b.kind == "live") => learning::attended(conn, e.id)?,
                _ => Default::default(),
            };
            let done = match &a.enrollment {
                Some(e) => learning::completed_units(conn, e.id)?,
                None => Default::default(),
            };
            let pass_threshold = a.run.as_ref().map(|r| r.pass_threshold);
            let blocks = blocks
                .iter()
                .map(|b| {
                    block_view(
                        conn,
                        proctoring,
                        &slug,
                        b,
                        a.enrollment.as_ref(),
                        pass_threshold,
                        attended.contains(&b.id),
                        &answer_errors,
                        t,
                    )
                })
                .collect::<AppResult<Vec<_>>>()?;
            let view = views::UnitView {
                course: views::CourseSummary::of(&a.course),
                unit: views::UnitHead { id: unit.id, title: unit.title.clone(), done: done.contains(&unit.id) },
                blocks,
                prev,
                next,
                preview: a.enrollment.is_none(),
                position: pos + 1,
                total: order.len(),
                units_done: order.iter().filter(|(_, u)| done.contains(&u.id)).count(),
                section: section.title.clone(),
            };
            Ok::<_, AppError>(Ok((view, views::outline(&slug, &sections, &done, Some(unit.id)))))
        })
        .await?;
    // Each section of the outline is rendered once for everyone who sees it
    // with the same ticks and current unit (every learner who has not begun
    // it, or finished it) and kept: the outline is most of a unit page's
    // template work.
    let page = match view {
        Ok((view, outline)) => {
            let sections = outline
                .into_iter()
                .map(|section| {
                    let key = Fragment::key("learning/outline_section", &section);
                    Fragment::new("learning/outline_section", key, move || section)
                })
                .collect();
            page("learning/unit", view.unit.title.clone(), &view)?.with_fragments("outline_html", sections)
        }
        Err(out) => enroll_first(&out)?,
    };
    Ok(if has_errors { page.with_status(Status::UnprocessableEntity) } else { page })
}

#[get("/learn/<slug>/units/<unit_id>")]
pub async fn unit(
    db: &State<Db>,
    hooks: &State<LearningHooks>,
    user: CurrentUser,
    slug: &str,
    unit_id: i64,
) -> AppResult<Page> {
    unit_page(db, hooks, user, slug.to_string(), unit_id, Vec::new()).await
}

/// Marks a unit finished and goes on: to the next unit, or, when this was
/// the last unit left, to the course-complete page.
#[post("/learn/<slug>/units/<unit_id>/complete", data = "<_form>")]
pub async fn complete(
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    unit_id: i64,
    _form: CsrfOnly,
) -> AppResult<Redirect> {
    let slug = slug.to_string();
    let to = db
        .run(move |conn| {
            let a = access(conn, &user, &slug)?;
            let e = a.enrollment.ok_or_else(|| AppError::Forbidden("Previews do not record progress.".into()))?;
            let order = learning::unit_ids(conn, a.course.id)?;
            let before = learning::completed_units(conn, e.id)?;
            learning::complete_unit(conn, &e, &a.course, unit_id, now())?;
            let mut after = before.clone();
            after.insert(unit_id);
            let finished_now = !learning::all_done(&order, &before) && learning::all_done(&order, &after);
            let next = order.iter().position(|u| *u == unit_id).and_then(|p| order.get(p + 1));
            Ok::<_, AppError>(match next {
                _ if finished_now => format!("/learn/{slug}/complete"),
                Some(n) => format!("/learn/{slug}/units/{n}"),
                None if learning::all_done(&order, &after) => format!("/learn/{slug}/complete"),
                None => format!("/learn/{slug}"),
            })
        })
        .await?;
    Ok(Redirect::to(to))
}

/// What became of answers sent to a quiz.
enum QuizReply {
    /// Answers that could not be graded: the unit again, with field errors.
    Unfit(i64, Vec<(usize, String)>),
    /// Graded (or refused by the quiz's rules), in a run with this pass mark.
    Graded(i64, i32, Result<learning::AttemptOutcome, LearningError>),
}

#[post("/learn/<slug>/quiz/<block_id>", data = "<form>")]
pub async fn submit_quiz(
    db: &State<Db>,
    hooks: &State<LearningHooks>,
    user: CurrentUser,
    slug: &str,
    block_id: i64,
    form: CsrfForm<QuizForm>,
) -> AppResult<Either<Flash, Page>> {
    let mut answers: Answers = Answers::new();
    for (name, value) in &form.form.fields {
        if let Some(idx) = name.strip_prefix('q').and_then(|n| n.parse::<usize>().ok())
            && idx < 500
        {
            answers.entry(idx).or_default().push(value.clone());
        }
    }
    let slug_s = slug.to_string();
    let u = user.clone();
    let h = **hooks;
    let reply = db
        .run(move |conn| {
            let a = access(conn, &u, &slug_s)?;
            let block = learning::block_in_course(conn, a.course.id, block_id)?;
            let BlockData::Quiz(quiz) = learning::block_data(&block)? else { return Err(AppError::NotFound) };
            let t = now();
            // The rules the page showed, asked again: may this learner send answers now?
            let standing =
                learning::QuizStanding::load(conn, h.proctoring_status, a.enrollment.as_ref(), &block, &quiz, t)?;
            let (Some(e), Some(run), Ok(())) = (a.enrollment, a.run, standing.may_submit()) else {
                let why = standing.may_submit().err().unwrap_or(NoSubmit::Preview);
                return Ok(QuizReply::Graded(block.unit_id, 0, Err(why.into())));
            };
            let errors = quiz.check(&answers);
            if !errors.is_empty() {
                return Ok(QuizReply::Unfit(
                    block.unit_id,
                    errors.into_iter().map(|e| (e.question, e.message)).collect::<Vec<_>>(),
                ));
            }
            let result = learning::submit_quiz(conn, &h, &e, &run, &block, &quiz, &answers, t);
            Ok(QuizReply::Graded(block.unit_id, run.pass_threshold, result))
        })
        .await?;
    match reply {
        QuizReply::Unfit(unit_id, errors) => {
            Ok(Either::Right(unit_page(db, hooks, user, slug.to_string(), unit_id, errors).await?))
        }
        QuizReply::Graded(unit_id, pass_threshold, Ok(o)) => {
            let to = format!("/learn/{slug}/units/{unit_id}#block-{block_id}");
            let message = format!(
                "You scored {:.0}% ({} of {} right). {}",
                o.score * 100.0,
                o.results.iter().filter(|r| r.correct).count(),
                o.results.len(),
                if o.attempts_left > 0 {
                    format!("Attempts left: {}.", o.attempts_left)
                } else {
                    "That was your last attempt.".into()
                }
            );
            // The colour follows the result: green only at or above the pass mark.
            Ok(Either::Left(match Verdict::of(o.score, pass_threshold) {
                Verdict::Pass => Flash::success(to, message),
                Verdict::Partial => Flash::info(to, message),
                Verdict::Fail => Flash::error(to, message),
            }))
        }
        QuizReply::Graded(unit_id, _, Err(LearningError::Invalid(m))) => {
            Ok(Either::Left(Flash::error(format!("/learn/{slug}/units/{unit_id}#block-{block_id}"), m)))
        }
        QuizReply::Graded(_, _, Err(e)) => Err(e.into()),
    }
}

/// Quiz answers arrive as `q0=1&q1=0&q1=2&q2=3.5`: kept as raw pairs and
/// parsed against the quiz, whose shape the form type cannot know.
pub struct QuizForm {
    fields: Vec<(String, String)>,
}

#[rocket::async_trait]
impl<'r> rocket::form::FromForm<'r> for QuizForm {
    type Context = Vec<(String, String)>;
    fn init(_: rocket::form::Options) -> Self::Context {
        Vec::new()
    }
    fn push_value(ctxt: &mut Self::Context, field: rocket::form::ValueField<'r>) {
        if ctxt.len() < 2000 {
            ctxt.push((field.name.to_string(), field.value.to_string()));
        }
    }
    async fn push_data(_: &mut Self::Context, _: rocket::form::DataField<'r, '_>) {}
    fn finalize(ctxt: Self::Context) -> rocket::form::Result<'r, Self> {
        Ok(QuizForm { fields: ctxt })
    }
}

#[get("/learn/<slug>/live/<block_id>")]
pub async fn join_live(db: &State<Db>, user: CurrentUser, slug: &str, block_id: i64) -> AppResult<Redirect> {
    let slug = slug.to_string();
    let link = db
        .run(move |conn| {
            let a = access(conn, &user, &slug)?;
            let block = learning::block_in_course(conn, a.course.id, block_id)?;
            match a.enrollment {
                Some(e) => Ok::<_, AppError>(learning::join_live(conn, &e, &block, now())?),
                None => match learning::block_data(&block)? {
                    BlockData::Live { link, .. } => Ok(link),
                    _ => Err(AppError::NotFound),
                },
            }
        })
        .await?;
    Ok(Redirect::to(link))
}

pub use crate::web::download::Download;

/// A file someone uploaded, sent so that it cannot act as a page of this
/// site: its type from [`files::serve`], `nosniff`, a `sandbox` policy that
/// makes it an opaque origin running nothing, and a download unless it is a
/// PDF or media the page plays.
pub struct UserFile {
    body: Vec<u8>,
    served: files::Served,
}

impl<'r> rocket::response::Responder<'r, 'static> for UserFile {
    fn respond_to(self, _req: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        let safe: String =
            self.served.filename.chars().filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c)).collect();
        let disposition =
            format!("{}; filename=\"{}\"", if self.served.inline { "inline" } else { "attachment" }, safe);
        rocket::Response::build()
            .header(ContentType::parse_flexible(&self.served.content_type).unwrap_or(ContentType::Binary))
            .raw_header("Content-Security-Policy", files::CSP)
            .raw_header("X-Content-Type-Options", "nosniff")
            .raw_header("Content-Disposition", disposition)
            .sized_body(self.body.len(), std::io::Cursor::new(self.body))
            .ok()
    }
}

/// Minutes a link to a file on the separate user-content origin works.
const FILE_LINK_MINUTES: i64 = 5;

#[get("/learn/<slug>/files/<block_id>")]
pub async fn file(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    config: &State<crate::config::Config>,
    signer: &State<crate::kernel::LinkSigner>,
    user: CurrentUser,
    slug: &str,
    block_id: i64,
) -> AppResult<Either<UserFile, Redirect>> {
    let slug = slug.to_string();
    let blobs = blobs.inner().clone();
    let media_origin = config.media_base_url();
    let signer = signer.inner().clone();
    db.run(move |conn| {
        let a = access(conn, &user, &slug)?;
        let block = learning::block_in_course(conn, a.course.id, block_id)?;
        let (file, usage) = match learning::block_data(&block)? {
            BlockData::Resource { file, .. } => (file, files::Use::Resource),
            BlockData::Video { file: Some(file), .. } => (file, files::Use::Video),
            _ => return Err(AppError::NotFound),
        };
        // With a user-content origin, the file is fetched there under a
        // short-lived signed link; the site's own origin never serves it.
        if let Some(origin) = media_origin {
            let until = (now() + chrono::Duration::minutes(FILE_LINK_MINUTES)).and_utc().timestamp();
            let tag = if usage == files::Use::Video { "v" } else { "r" };
            let token =
                signer.sign("user-file", &format!("{}.{tag}.{until}.{}", file.key, hex::encode(&file.filename)));
            return Ok(Either::Right(Redirect::to(format!("{origin}/files/{token}"))));
        }
        let body = blobs.get(&file.key).map_err(|e| AppError::Internal(e.to_string()))?.ok_or(AppError::NotFound)?;
        let served = files::serve(&body, usage, &file.filename);
        Ok(Either::Left(UserFile { body, served }))
    })
    .await
}

/// A course file on the user-content origin, by a link `file` signed.
#[get("/files/<token>")]
pub async fn signed_file(
    blobs: &State<Arc<dyn BlobStore>>,
    signer: &State<crate::kernel::LinkSigner>,
    token: &str,
) -> AppResult<UserFile> {
    let what = signer.verify("user-file", token).ok_or(AppError::NotFound)?;
    let mut parts = what.splitn(4, '.');
    let (Some(key), Some(tag), Some(until), Some(name)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AppError::NotFound);
    };
    let until: i64 = until.parse().map_err(|_| AppError::NotFound)?;
    if now().and_utc().timestamp() > until {
        return Err(AppError::Gone("This link to a file has expired; open the file from its course again.".into()));
    }
    let filename = hex::decode(name).ok().and_then(|b| String::from_utf8(b).ok()).ok_or(AppError::NotFound)?;
    let usage = if tag == "v" { files::Use::Video } else { files::Use::Resource };
    let (key, blobs) = (key.to_string(), blobs.inner().clone());
    let body = tokio::task::spawn_blocking(move || blobs.get(&key))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|_| AppError::NotFound)?
        .ok_or(AppError::NotFound)?;
    let served = files::serve(&body, usage, &filename);
    Ok(UserFile { body, served })
}

/// Public images (course covers, member logos, avatars): re-encoded on
/// upload, so only the two types the encoder writes are ever served here,
/// and only when the bytes are what the record says.
#[get("/media/<key>")]
pub async fn media(db: &State<Db>, blobs: &State<Arc<dyn BlobStore>>, key: &str) -> AppResult<UserFile> {
    let key = key.to_string();
    let blobs = blobs.inner().clone();
    db.run(move |conn| {
        let ct = crate::storage::content_type(conn, &key)?.ok_or(AppError::NotFound)?;
        // Only PNG or JPEG whose bytes match the record are served.
        if !matches!(ct.as_str(), "image/png" | "image/jpeg") {
            return Err(AppError::NotFound);
        }
        let body = blobs.get(&key).map_err(|_| AppError::NotFound)?.ok_or(AppError::NotFound)?;
        let format = crate::media::servable_image(&ct, &body).ok_or(AppError::NotFound)?;
        let filename =
            format!("{}.{}", &key[..key.len().min(16)], if format == image::ImageFormat::Png { "png" } else { "jpg" });
        Ok(UserFile { body, served: files::Served { content_type: ct, inline: true, filename } })
    })
    .await
}

#[derive(FromForm)]
pub struct FeedbackForm {
    #[field(default = 0)]
    rating: i32,
    #[field(default = String::new())]
    comment: String,
}

#[post("/courses/<slug>/feedback", data = "<form>")]
pub async fn feedback(db: &State<Db>, user: CurrentUser, slug: &str, form: CsrfForm<FeedbackForm>) -> AppResult<Flash> {
    let slug = slug.to_string();
    let (rating, comment) = (form.form.rating, form.form.comment.trim().to_string());
    let back = format!("/learn/{slug}");
    let id = user.id;
    let r = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            Ok::<_, AppError>(learning::leave_feedback(conn, id, course.id, rating, &comment, now()))
        })
        .await?;
    match r {
        Ok(()) => Ok(Flash::success(back, "Thank you for your feedback.")),
        Err(LearningError::Invalid(m)) | Err(LearningError::Forbidden(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}
