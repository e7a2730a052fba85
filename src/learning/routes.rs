//! Learner-facing pages: catalog and search, course about pages, enrollment,
//! the dashboard, the course outline, units with their blocks, quizzes, live
//! sessions, resources and feedback. Thin: parse, call a service, render.

use std::sync::Arc;

use rocket::http::{ContentType, Status};
use rocket::response::Redirect;
use rocket::{Either, FromForm, State, get, post};
use serde_json::{Value, json};

use crate::consent::ledger::Evidence;
use crate::db::{Db, now};
use crate::learning::catalog::{self, Filters};
use crate::learning::content::{Answers, BlockData, ShowAnswers, embed_url, render_markdown};
use crate::learning::model::{Block, Course, Enrollment};
use crate::learning::service::{self as learning, LearningError, Track};
use crate::media::files;
use crate::search::SearchIndex;
use crate::storage::BlobStore;
use crate::web::csrf::CsrfOnly;
use crate::web::guards::Viewer;
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
#[get("/courses?<q>&<member>&<subject>&<language>&<pacing>&<open>")]
pub async fn catalog_page(
    db: &State<Db>,
    search: &State<Arc<dyn SearchIndex>>,
    q: Option<&str>,
    member: Option<&str>,
    subject: Option<&str>,
    language: Option<&str>,
    pacing: Option<&str>,
    open: Option<bool>,
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
    let f = filters.clone();
    let (cards, catalog::Facets { members, subjects, languages }) = db
        .run(move |conn| {
            let cards = catalog::cards(conn, &f, ranked.as_deref(), now())?;
            Ok::<_, AppError>((cards, catalog::facets(conn)?))
        })
        .await?;
    Ok(Page::new(
        "learning/catalog",
        "Course catalog",
        json!({
            "cards": cards, "q": query, "count": cards.len(),
            "members": members.iter().map(|(s, n)| json!({"slug": s, "name": n, "selected": filters.member.as_deref() == Some(s)})).collect::<Vec<_>>(),
            "subjects": subjects.iter().map(|s| json!({"slug": s, "selected": filters.subject.as_deref() == Some(s)})).collect::<Vec<_>>(),
            "languages": languages.iter().map(|s| json!({"code": s, "selected": filters.language.as_deref() == Some(s)})).collect::<Vec<_>>(),
            "pacing": filters.pacing, "open": filters.open_only,
        }),
    ))
}

#[get("/courses/<slug>")]
pub async fn about(db: &State<Db>, viewer: Viewer, slug: &str) -> AppResult<Page> {
    let slug = slug.to_string();
    let user = viewer.0.clone();
    let ctx = db
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
            let sharing = crate::consent::member::offer(conn, &member)?;
            let t = now();
            let exams = crate::exams::open_count(conn, course.id, t)?;
            Ok(json!({
                "exams": exams,
                "course": course_json(&course),
                "description_html": render_markdown(&course.description),
                "member": { "name": member.name, "slug": member.slug, "description": member.description, "logo": member.logo_blob.map(|k| format!("/media/{k}")) },
                "runs": runs.iter().map(|r| json!({
                    "key": r.run_key, "starts": r.starts_at.format("%e %B %Y").to_string(),
                    "ends": r.ends_at.map(|e| e.format("%e %B %Y").to_string()),
                    "pacing": if r.pacing == "self" { "Self-paced" } else { "Instructor-paced" },
                    "access_days": r.access_days, "pass_threshold": r.pass_threshold, "open": r.enrollment_open(t),
                    "audit": r.audit, "verified_price": r.verified_price_cents.map(|c| format!("{:.2} {}", f64::from(c) / 100.0, r.currency)),
                })).collect::<Vec<_>>(),
                "outline": outline.iter().map(|(s, us)| json!({ "title": s.title, "units": us.iter().map(|u| json!({"title": u.title})).collect::<Vec<_>>() })).collect::<Vec<_>>(),
                "enrolled": enrollment.as_ref().is_some_and(|(e, _)| e.has_access(t)),
                "expired": enrollment.as_ref().is_some_and(|(e, _)| !e.has_access(t)),
                "signed_in": user.is_some(),
                "verified": user.as_ref().is_some_and(|u| u.email_verified),
                "rating": avg.map(|a| format!("{a:.1}")), "ratings": ratings,
                "may_author": may_preview,
                "sharing": sharing.json(),
            }))
        })
        .await?;
    let title = ctx["course"]["title"].as_str().unwrap_or("Course").to_string();
    Ok(Page::new("learning/about", title, ctx))
}

fn course_json(c: &Course) -> Value {
    json!({
        "slug": c.slug, "title": c.title, "summary": c.summary, "subjects": c.subject_list(),
        "language": c.language, "effort": c.effort, "image": c.image_blob.as_ref().map(|k| format!("/media/{k}")),
        "published": c.published,
    })
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
    let result = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            let member = learning::member(conn, course.member_id)?;
            let evidence = Evidence::learner_web(user.id, &client);
            // Enrollment and the sharing decision stand or fall together.
            Ok::<_, AppError>(crate::db::transaction::<_, LearningError, _>(conn, |conn| {
                let offer = crate::consent::member::offer(conn, &member)?;
                let enrollment = learning::enroll(conn, &user.0, &course, &run, track, now())?;
                if let (true, Some(share)) = (offer.asks_consent(), share) {
                    crate::consent::member::decide(
                        conn,
                        user.id,
                        &offer,
                        enrollment.run_id,
                        (share, text_id),
                        &evidence,
                        now(),
                    )?
                    .map_err(LearningError::Invalid)?;
                }
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
pub async fn dashboard(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let id = user.id;
    let courses = db
        .run(move |conn| {
            let t = now();
            let mut out = Vec::new();
            for (e, run, course) in learning::my_courses(conn, id)? {
                let st = learning::standing(conn, &e, course.id)?;
                let resume = e.last_unit_id.map(|u| format!("/learn/{}/units/{u}", course.slug));
                let certificate = crate::certificates::for_user_run(conn, id, run.id)?;
                out.push(json!({
                    "certificate": certificate.map(|c| json!({ "code": c.code, "valid": c.is_valid() })),
                    "title": course.title, "slug": course.slug, "standing": st, "resume": resume,
                    "access": e.has_access(t),
                    "access_until": e.access_expires_at.map(|x| x.format("%e %B %Y").to_string()),
                    "starts": run.starts_at.format("%e %B %Y").to_string(), "track": e.track,
                }));
            }
            Ok::<_, AppError>(out)
        })
        .await?;
    Ok(Page::new(
        "accounts/dashboard",
        "Your dashboard",
        json!({ "me": { "first_name": user.first_name, "verified": user.email_verified, "email": user.email }, "courses": courses }),
    ))
}

/// A course's content as the learner (or an author previewing) sees it.
struct Access {
    course: Course,
    /// `None` when an author previews without being enrolled.
    enrollment: Option<Enrollment>,
    run: Option<crate::learning::model::Run>,
}

fn access(conn: &mut crate::db::Conn, user: &crate::kernel::SessionUser, slug: &str) -> AppResult<Access> {
    // A learner opening a course they take: one query. Everyone else (staff
    // previewing, access ended, not enrolled) takes the longer way below.
    if let Some((e, run, course)) = learning::enrollment_by_slug(conn, user.id, slug)?
        && e.has_access(now())
    {
        return Ok(Access { course, enrollment: Some(e), run: Some(run) });
    }
    let course = learning::course_by_slug(conn, slug)?;
    match learning::active_enrollment(conn, user.id, course.id, now()) {
        Ok((e, r)) => Ok(Access { course, enrollment: Some(e), run: Some(r) }),
        Err(_) if learning::can_author(user, course.member_id) => Ok(Access { course, enrollment: None, run: None }),
        Err(LearningError::Forbidden(m)) if course.published => Err(AppError::Forbidden(m)),
        Err(LearningError::Forbidden(_)) => Err(AppError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[get("/learn/<slug>")]
pub async fn course_home(
    db: &State<Db>,
    payments: &State<crate::certificates::payments::Payments>,
    user: CurrentUser,
    slug: &str,
) -> AppResult<Page> {
    let slug = slug.to_string();
    let buying = payments.0.is_some();
    let ctx = db
        .run(move |conn| {
            let a = access(conn, &user, &slug)?;
            let outline = learning::outline(conn, a.course.id)?;
            let done = match &a.enrollment {
                Some(e) => learning::completed_units(conn, e.id)?,
                None => Default::default(),
            };
            let standing = match &a.enrollment {
                Some(e) => Some(learning::standing(conn, e, a.course.id)?),
                None => None,
            };
            let first_open = outline.iter().flat_map(|(_, us)| us.iter()).find(|u| !done.contains(&u.id)).map(|u| u.id);
            let certificate = match (&a.enrollment, &a.run) {
                (Some(e), Some(run)) => {
                    Some(crate::certificates::routes::card(conn, user.id, run, &a.course.slug, &e.track, buying)?)
                }
                _ => None,
            };
            Ok::<_, AppError>(json!({
                "certificate": certificate,
                "course": course_json(&a.course),
                "preview": a.enrollment.is_none(),
                "standing": standing,
                "pass_threshold": a.run.as_ref().map(|r| r.pass_threshold),
                "next_unit": first_open,
                "resume": a.enrollment.as_ref().and_then(|e| e.last_unit_id),
                "sections": outline.iter().map(|(s, us)| json!({
                    "title": s.title,
                    "units": us.iter().map(|u| json!({ "id": u.id, "title": u.title, "done": done.contains(&u.id) })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }))
        })
        .await?;
    let title = ctx["course"]["title"].as_str().unwrap_or("Course").to_string();
    Ok(Page::new("learning/course", title, ctx))
}

/// A block as the unit template shows it.
fn block_view(
    conn: &mut crate::db::Conn,
    slug: &str,
    b: &Block,
    enrollment: Option<&Enrollment>,
    attended: bool,
    answer_errors: &[(usize, String)],
    t: chrono::NaiveDateTime,
) -> AppResult<Value> {
    let data = learning::block_data(b)?;
    let mut view = match data {
        BlockData::Text { markdown } => json!({ "kind": "text", "html": render_markdown(&markdown) }),
        BlockData::Video { url, file, transcript } => json!({
            "kind": "video", "id": b.id,
            "embed": url.as_deref().and_then(embed_url), "url": url,
            "file": file.map(|_| format!("/learn/{slug}/files/{}", b.id)),
            "transcript_html": transcript.map(|t| render_markdown(&t)),
        }),
        BlockData::Resource { title, file } => json!({
            "kind": "resource", "title": title, "filename": file.filename, "href": format!("/learn/{slug}/files/{}", b.id),
        }),
        BlockData::Live { title, starts_at, link: _ } => json!({
            "kind": "live", "title": title, "starts": starts_at.format("%e %B %Y, %H:%M UTC").to_string(),
            "href": format!("/learn/{slug}/live/{}", b.id), "attended": attended, "past": starts_at < t,
        }),
        BlockData::Quiz(quiz) => {
            let tries = match enrollment {
                Some(e) => learning::attempts(conn, e.id, b.id)?,
                None => Vec::new(),
            };
            let used = tries.len() as u32;
            let best = tries.iter().map(|(_, s, _)| *s).fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
            let last_answers: Answers =
                tries.last().and_then(|(_, _, a)| serde_json::from_str(a).ok()).unwrap_or_default();
            let reveal = match quiz.show_answers {
                ShowAnswers::AfterLastAttempt => used >= quiz.attempts,
                ShowAnswers::AfterDue => quiz.due_at.is_some_and(|d| t > d),
            };
            let (_, results) = quiz.grade(&last_answers);
            // A proctored exam takes answers only within a proctoring session (CRT-7).
            let session = match (quiz.proctored, enrollment) {
                (true, Some(e)) => crate::certificates::proctoring::latest(conn, e.id, b.id)?,
                _ => None,
            };
            let in_session = session.as_ref().is_some_and(|(_, s)| {
                s == crate::certificates::proctoring::status::OPEN
                    || s == crate::certificates::proctoring::status::PASSED
            });
            json!({
                "kind": "quiz", "id": b.id, "title": quiz.title, "attempts": quiz.attempts, "used": used,
                "proctored": quiz.proctored, "in_session": in_session,
                "session_status": session.map(|(_, s)| s),
                "proctoring_action": format!("/learn/{slug}/exams/{}/proctoring", b.id),
                "left": quiz.attempts.saturating_sub(used), "can_submit": enrollment.is_some() && used < quiz.attempts && quiz.due_at.is_none_or(|d| t <= d) && (!quiz.proctored || in_session),
                "best": best.map(|s| format!("{:.0}", s * 100.0)), "reveal": reveal,
                "due": quiz.due_at.map(|d| d.format("%e %B %Y, %H:%M UTC").to_string()),
                "action": format!("/learn/{slug}/quiz/{}", b.id),
                "questions": quiz.questions.iter().enumerate().map(|(i, q)| {
                    let given = last_answers.get(&i).cloned().unwrap_or_default();
                    json!({
                        "index": i, "number": i + 1, "prompt_html": render_markdown(&q.prompt), "kind": q.kind,
                        "single": q.kind == crate::learning::content::QuestionKind::Single,
                        "multiple": q.kind == crate::learning::content::QuestionKind::Multiple,
                        "numeric": q.kind == crate::learning::content::QuestionKind::Numeric,
                        "text": q.kind == crate::learning::content::QuestionKind::Text,
                        "choices": q.choices.iter().enumerate().map(|(ci, c)| json!({
                            "index": ci, "label": c, "checked": given.contains(&ci.to_string()),
                            "correct": reveal && q.correct.contains(&ci),
                        })).collect::<Vec<_>>(),
                        "value": given.first().cloned().unwrap_or_default(),
                        "answered": used > 0, "was_correct": used > 0 && results.get(i).is_some_and(|r| r.correct),
                        "feedback": if reveal { q.feedback.clone() } else { None },
                        "solution": if reveal { match q.kind {
                            crate::learning::content::QuestionKind::Numeric => q.answer.map(|a| a.to_string()),
                            crate::learning::content::QuestionKind::Text => q.accepted.first().cloned(),
                            _ => None,
                        } } else { None },
                        "error": answer_errors.iter().find(|(qi, _)| *qi == i).map(|(_, m)| m.clone()),
                    })
                }).collect::<Vec<_>>(),
            })
        }
    };
    // Every block has its anchor (`#block-<id>`), whatever its kind.
    view["id"] = json!(b.id);
    Ok(view)
}

async fn unit_page(
    db: &Db,
    user: CurrentUser,
    slug: String,
    unit_id: i64,
    answer_errors: Vec<(usize, String)>,
) -> AppResult<Page> {
    let has_errors = !answer_errors.is_empty();
    let ctx = db
        .run(move |conn| {
            let a = access(conn, &user, &slug)?;
            // The outline gives the unit (when it is in this course) and its
            // neighbours in one query.
            let order: Vec<crate::learning::model::Unit> = learning::outline(conn, a.course.id)?.into_iter().flat_map(|(_, us)| us).collect();
            let pos = order.iter().position(|u| u.id == unit_id).ok_or(AppError::NotFound)?;
            let unit = &order[pos];
            let prev = pos.checked_sub(1).and_then(|p| order.get(p)).map(|u| u.id);
            let next = order.get(pos + 1).map(|u| u.id);
            let t = now();
            // Reading a unit records where the learner is, but only when that
            // changed or a while has passed: a page view should rarely be a write.
            if let Some(e) = &a.enrollment
                && (e.last_unit_id != Some(unit.id) || e.last_activity_at.is_none_or(|at| t - at > chrono::Duration::minutes(5)))
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
            let views: Vec<Value> = blocks
                .iter()
                .map(|b| block_view(conn, &slug, b, a.enrollment.as_ref(), attended.contains(&b.id), &answer_errors, t))
                .collect::<AppResult<_>>()?;
            Ok::<_, AppError>(json!({
                "course": course_json(&a.course), "unit": { "id": unit.id, "title": unit.title, "done": done.contains(&unit.id) },
                "blocks": views, "prev": prev, "next": next, "preview": a.enrollment.is_none(),
            }))
        })
        .await?;
    let title = ctx["unit"]["title"].as_str().unwrap_or("Unit").to_string();
    let page = Page::new("learning/unit", title, ctx);
    Ok(if has_errors { page.with_status(Status::UnprocessableEntity) } else { page })
}

#[get("/learn/<slug>/units/<unit_id>")]
pub async fn unit(db: &State<Db>, user: CurrentUser, slug: &str, unit_id: i64) -> AppResult<Page> {
    unit_page(db, user, slug.to_string(), unit_id, Vec::new()).await
}

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
            learning::complete_unit(conn, &e, &a.course, unit_id, now())?;
            let order = learning::unit_ids(conn, a.course.id)?;
            let next = order.iter().position(|u| *u == unit_id).and_then(|p| order.get(p + 1));
            Ok::<_, AppError>(match next {
                Some(n) => format!("/learn/{slug}/units/{n}"),
                None => format!("/learn/{slug}"),
            })
        })
        .await?;
    Ok(Redirect::to(to))
}

#[post("/learn/<slug>/quiz/<block_id>", data = "<form>")]
pub async fn submit_quiz(
    db: &State<Db>,
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
    let outcome = db
        .run(move |conn| {
            let a = access(conn, &u, &slug_s)?;
            let (Some(e), Some(run)) = (a.enrollment, a.run) else {
                return Err(AppError::Forbidden("Previews cannot submit quizzes.".into()));
            };
            let block = learning::block_in_course(conn, a.course.id, block_id)?;
            let BlockData::Quiz(quiz) = learning::block_data(&block)? else { return Err(AppError::NotFound) };
            if quiz.proctored && !crate::certificates::proctoring::may_submit(conn, e.id, block.id)? {
                return Err(AppError::Forbidden(
                    "This exam is proctored: start a proctoring session from the exam's page first.".into(),
                ));
            }
            let errors = quiz.check(&answers);
            if !errors.is_empty() {
                return Ok(Err((
                    block.unit_id,
                    errors.into_iter().map(|e| (e.question, e.message)).collect::<Vec<_>>(),
                )));
            }
            let result = learning::submit_quiz(conn, &e, &run, &block, &quiz, &answers, now());
            Ok(Ok((block.unit_id, result)))
        })
        .await?;
    match outcome {
        Err((unit_id, errors)) => Ok(Either::Right(unit_page(db, user, slug.to_string(), unit_id, errors).await?)),
        Ok((unit_id, Ok(o))) => Ok(Either::Left(Flash::success(
            format!("/learn/{slug}/units/{unit_id}#block-{block_id}"),
            format!(
                "You scored {:.0}% ({} of {} right). {}",
                o.score * 100.0,
                o.results.iter().filter(|r| r.correct).count(),
                o.results.len(),
                if o.attempts_left > 0 {
                    format!("Attempts left: {}.", o.attempts_left)
                } else {
                    "That was your last attempt.".into()
                }
            ),
        ))),
        Ok((unit_id, Err(LearningError::Invalid(m)))) => {
            Ok(Either::Left(Flash::error(format!("/learn/{slug}/units/{unit_id}"), m)))
        }
        Ok((_, Err(e))) => Err(e.into()),
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
    signer: &State<crate::privacy::comms::LinkSigner>,
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
    signer: &State<crate::privacy::comms::LinkSigner>,
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
        let format = match ct.as_str() {
            "image/png" => image::ImageFormat::Png,
            "image/jpeg" => image::ImageFormat::Jpeg,
            _ => return Err(AppError::NotFound),
        };
        let body = blobs.get(&key).map_err(|_| AppError::NotFound)?.ok_or(AppError::NotFound)?;
        if image::guess_format(&body).ok() != Some(format) {
            return Err(AppError::NotFound);
        }
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
