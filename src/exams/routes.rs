//! Exam pages and the exam API: "My exams" and booking for learners, the
//! support-needs page, an exam body's sessions, candidates and result upload,
//! the support team's and the malpractice pages for staff, and the API where
//! exam bodies read candidates and post results and sponsors read the results
//! they may see.

use crate::web::trail::{Subject, Trail};
use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use rocket::data::{Data, ToByteUnit};
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{FromForm, State, get, post};
use serde_json::{Value, json};

use super::views::{self, SessionView};
use super::{BookingChoice, ExamError, Recorded, ResultInput, SessionInput};
use crate::consent::api::PartnerKey;
use crate::consent::ledger::Evidence;
use crate::consent::partners::{self, Partner};
use crate::consent::sharing;
use crate::consent::{PartnerKind, Purpose, texts};
use crate::db::schema::{courses, exam_bookings, exam_results, users};
use crate::db::{Conn, Db, now};
use crate::kernel::ClientInfo;
use crate::kernel::Role;
use crate::kernel::SessionUser;
use crate::web::paging::PageRequest;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page, StaffUser};

/// A user-facing refusal becomes a message on `back`; the rest are errors.
fn flash_or(back: &str, e: ExamError) -> AppResult<Flash> {
    match e {
        ExamError::Db(e) => Err(e.into()),
        ExamError::Vault(e) => Err(AppError::Internal(e.to_string())),
        ExamError::NotFound => Err(AppError::NotFound),
        other => Ok(Flash::error(back, other.to_string())),
    }
}

impl From<ExamError> for AppError {
    fn from(e: ExamError) -> Self {
        match e {
            ExamError::Db(e) => e.into(),
            ExamError::Vault(e) => AppError::Internal(e.to_string()),
            ExamError::NotFound => AppError::NotFound,
            ExamError::Conflict(m) => AppError::Conflict(m),
            other => AppError::Unprocessable(other.to_string()),
        }
    }
}

// ---- learners ----

#[get("/exams")]
pub async fn mine(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let user = user.0;
    let ctx = db
        .run(move |conn| {
            let now = now();
            let bookings = super::bookings_of(conn, user.id)?;
            let bookable = super::bookable_for(conn, user.id, now)?;
            let has_needs = super::support_needs_of(conn, user.id)?.is_some();
            Ok::<_, AppError>(views::MyExams::new(&bookings, &bookable, has_needs, now))
        })
        .await?;
    Ok(Page::view("exams/mine", "My exams", ctx))
}

/// Everything the booking form shows: what leaves, to whom, under which text.
fn booking_context(conn: &mut Conn, user: &SessionUser, session_id: i64) -> AppResult<views::BookPage> {
    let now = now();
    let s = super::session(conn, session_id)?;
    let body = partners::by_id(conn, s.partner_id)?;
    let course: String = courses::table.find(s.course_id).select(courses::title).first(conn)?;
    let registration = texts::current(conn, &body, Purpose::ExamRegistration, "en")?
        .ok_or_else(|| AppError::Unprocessable("This exam body cannot take bookings yet.".into()))?;
    let support = if super::support_needs_of(conn, user.id)?.is_some() {
        texts::current(conn, &body, Purpose::ExamSupport, "en")?
    } else {
        None
    };
    let mut funders = Vec::new();
    for (sponsor, _) in super::funders(conn, user.id, s.course_id)? {
        if let Some(t) = texts::current(conn, &sponsor, Purpose::ExamResults, "en")? {
            funders.push(views::FunderOffer {
                shown: partners::offered(&sponsor, Purpose::ExamResults).labels(),
                id: sponsor.id,
                name: sponsor.name,
                text_id: t.id,
                text: t.body,
            });
        }
    }
    let dob: Option<NaiveDate> = users::table.find(user.id).select(users::date_of_birth).first(conn)?;
    Ok(views::BookPage {
        session: SessionView::new(&s, now),
        course,
        shown: partners::offered(&body, Purpose::ExamRegistration).labels(),
        support: support.map(|t| views::Offer {
            text_id: t.id,
            text: t.body,
            shown: partners::offered(&body, Purpose::ExamSupport).labels(),
        }),
        exam_body: body.name,
        text_id: registration.id,
        text: registration.body,
        needs_dob: dob.is_none(),
        funders,
    })
}

#[get("/exams/sessions/<id>/book")]
pub async fn book_form(db: &State<Db>, user: CurrentUser, id: i64) -> AppResult<Page> {
    let user = user.0;
    let ctx = db.run(move |conn| booking_context(conn, &user, id)).await?;
    Ok(Page::view("exams/book", "Book an exam", ctx))
}

#[derive(FromForm)]
pub struct BookForm {
    #[field(default = String::new())]
    date_of_birth: String,
    text_id: i64,
    support_text_id: Option<i64>,
    #[field(default = false)]
    share_support: bool,
    /// Per funding sponsor: "yes" or "no".
    #[field(default = HashMap::new())]
    share_result: HashMap<i64, String>,
    #[field(default = HashMap::new())]
    result_text: HashMap<i64, i64>,
}

#[post("/exams/sessions/<id>/book", data = "<form>")]
pub async fn book(
    db: &State<Db>,
    user: CurrentUser,
    client: ClientInfo,
    id: i64,
    form: CsrfForm<BookForm>,
) -> AppResult<Flash> {
    let back = format!("/exams/sessions/{id}/book");
    let f = form.form;
    let date_of_birth = match f.date_of_birth.trim() {
        "" => None,
        d => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => return Ok(Flash::error(back, "Enter your date of birth as a date, such as 1990-04-21.")),
        },
    };
    let mut funders = Vec::new();
    for (partner, text) in &f.result_text {
        match f.share_result.get(partner).map(String::as_str) {
            Some("yes") => funders.push((*partner, *text, true)),
            Some("no") => funders.push((*partner, *text, false)),
            _ => return Ok(Flash::error(back, "Say whether your sponsor may see your result.")),
        }
    }
    let choice = BookingChoice {
        date_of_birth,
        registration_text_id: f.text_id,
        support: f.support_text_id.map(|t| (t, f.share_support)),
        funders,
    };
    let user = user.0;
    let evidence = Evidence::learner_web(user.id, &client);
    let done = db.run(move |conn| Ok::<_, AppError>(super::book(conn, &user, id, &choice, &evidence, now()))).await?;
    match done {
        Ok(b) => Ok(Flash::success("/exams", format!("Booked. Your booking reference is {}.", b.reference))),
        Err(e) => flash_or(&back, e),
    }
}

#[derive(FromForm)]
pub struct RescheduleForm {
    session_id: i64,
}

#[get("/exams/bookings/<id>/reschedule")]
pub async fn reschedule_form(db: &State<Db>, user: CurrentUser, id: i64) -> AppResult<Page> {
    let user = user.0;
    let ctx = db
        .run(move |conn| {
            let now = now();
            let mine = super::bookings_of(conn, user.id)?;
            let b = mine
                .iter()
                .find(|b| b.booking.id == id && b.booking.status == super::BOOKED)
                .ok_or(AppError::NotFound)?;
            let others = super::bookable_for(conn, user.id, now)?
                .into_iter()
                .filter(|(s, _, _)| s.id != b.session.id && s.same_exam(&b.session))
                .map(|(s, _, _)| SessionView::new(&s, now))
                .collect();
            Ok::<_, AppError>(views::ReschedulePage {
                id,
                reference: b.booking.reference.clone(),
                current: SessionView::new(&b.session, now),
                course: b.course.clone(),
                others,
            })
        })
        .await?;
    Ok(Page::view("exams/reschedule", "Reschedule an exam", ctx))
}

#[post("/exams/bookings/<id>/reschedule", data = "<form>")]
pub async fn reschedule(
    db: &State<Db>,
    user: CurrentUser,
    id: i64,
    form: CsrfForm<RescheduleForm>,
) -> AppResult<Flash> {
    let (uid, to) = (user.0.id, form.form.session_id);
    let done = db.run(move |conn| Ok::<_, AppError>(super::reschedule(conn, uid, id, to, now()))).await?;
    match done {
        Ok(b) => Ok(Flash::success("/exams", format!("Moved. Your new booking reference is {}.", b.reference))),
        Err(e) => flash_or(&format!("/exams/bookings/{id}/reschedule"), e),
    }
}

#[post("/exams/bookings/<id>/cancel", data = "<_form>")]
pub async fn cancel(db: &State<Db>, user: CurrentUser, id: i64, _form: crate::web::csrf::CsrfOnly) -> AppResult<Flash> {
    let uid = user.0.id;
    let done = db.run(move |conn| Ok::<_, AppError>(super::cancel(conn, uid, id, now()))).await?;
    match done {
        Ok(()) => Ok(Flash::success("/exams", "Your booking is cancelled and the exam body is told.")),
        Err(e) => flash_or("/exams", e),
    }
}

// ---- support needs ----

#[get("/account/support-needs")]
pub async fn needs_form(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let uid = user.0.id;
    let needs = db.run(move |conn| Ok::<_, AppError>(super::support_needs_of(conn, uid)?)).await?;
    let view = views::SupportNeedsPage {
        recorded: needs.is_some(),
        updated: needs.as_ref().map(|n| n.updated_at.into()),
        adjustments: needs.as_ref().map(|n| n.adjustments.clone()),
        needs: needs.map(|n| n.needs),
    };
    Ok(Page::view("exams/support_needs", "Support needs", view))
}

#[derive(FromForm)]
pub struct NeedsForm {
    #[field(default = String::new())]
    needs: String,
    #[field(default = String::new())]
    adjustments: String,
}

#[post("/account/support-needs", data = "<form>")]
pub async fn save_needs(db: &State<Db>, user: CurrentUser, form: CsrfForm<NeedsForm>) -> AppResult<Flash> {
    let (uid, f) = (user.0.id, form.form);
    let done = db
        .run(move |conn| Ok::<_, AppError>(super::save_support_needs(conn, uid, &f.needs, &f.adjustments, now())))
        .await?;
    match done {
        Ok(()) => Ok(Flash::success("/account/support-needs", "Saved. Only the support team can read it.")),
        Err(e) => flash_or("/account/support-needs", e),
    }
}

#[post("/account/support-needs/delete", data = "<_form>")]
pub async fn delete_needs(db: &State<Db>, user: CurrentUser, _form: crate::web::csrf::CsrfOnly) -> AppResult<Flash> {
    let uid = user.0.id;
    db.run(move |conn| Ok::<_, AppError>(super::delete_support_needs(conn, uid)?)).await?;
    Ok(Flash::success("/account/support-needs", "Your support needs are deleted."))
}

/// The support team only (not staff as such): each view is in the audit log.
fn support_team(user: &SessionUser) -> AppResult<()> {
    if user.has_role(Role::Support) {
        Ok(())
    } else {
        Err(AppError::Forbidden("Only the support team can read support needs.".into()))
    }
}

/// Rows on a page of the staff and exam body lists.
pub const LIST_PAGE: i64 = 50;

#[get("/staff/support-needs?<page>")]
pub async fn needs_list(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    support_team(&user.0)?;
    let paging = PageRequest::parse(page, LIST_PAGE);
    let list = db
        .run(move |conn| Ok::<_, AppError>(super::with_support_needs(conn, paging.offset(), paging.fetch())?))
        .await?;
    let (list, nav) = paging.finish(list, |p| format!("/staff/support-needs?page={p}"));
    trail.users(list.iter().map(|(id, ..)| *id));
    let people =
        list.into_iter().map(|(id, username, at)| views::NeedsPerson { id, username, updated: at.into() }).collect();
    Ok(Page::view("exams/needs_list", "Support needs", views::NeedsList { people, nav }))
}

#[get("/staff/support-needs/<user_id>")]
pub async fn needs_of(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, user_id: i64) -> AppResult<Page> {
    support_team(&user.0)?;
    trail.user(user_id);
    let (username, needs) = db
        .run(move |conn| {
            let username: String = users::table.find(user_id).select(users::username).first(conn)?;
            Ok::<_, AppError>((username, super::support_needs_of(conn, user_id)?.ok_or(AppError::NotFound)?))
        })
        .await?;
    let view = views::NeedsOf {
        username,
        needs: needs.needs,
        adjustments: needs.adjustments,
        updated: needs.updated_at.into(),
    };
    Ok(Page::view("exams/needs_of", "Support needs", view))
}

// ---- exam bodies ----

fn exam_body(conn: &mut Conn, user: &SessionUser, slug: &str) -> AppResult<Partner> {
    let p = crate::consent::partners::managed(conn, user, slug)?.ok_or(AppError::NotFound)?;
    if p.kind() != PartnerKind::ExamBody {
        return Err(AppError::NotFound);
    }
    Ok(p)
}

#[get("/partners/<slug>/exams?<page>")]
pub async fn sessions(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    page: Option<&str>,
) -> AppResult<Page> {
    // Sessions, times and places; the candidates are on each session's page.
    trail.nobody();
    let (slug, user) = (slug.to_string(), user.0);
    let paging = PageRequest::parse(page, LIST_PAGE);
    let ctx = db
        .run(move |conn| {
            let p = exam_body(conn, &user, &slug)?;
            let now = now();
            let list = super::sessions_of(conn, &p, paging.offset(), paging.fetch())?;
            let (list, nav) = paging.finish(list, |n| format!("/partners/{}/exams?page={n}", p.slug));
            let courses: Vec<(i64, String)> = courses::table
                .filter(courses::published.eq(true))
                .order(courses::title.asc())
                .select((courses::id, courses::title))
                .load(conn)?;
            Ok::<_, AppError>(views::SessionsPage {
                partner: views::PartnerRef { slug: p.slug, name: p.name },
                sessions: list
                    .into_iter()
                    .map(|(s, course)| views::SessionRow { session: SessionView::new(&s, now), course })
                    .collect(),
                courses: courses.into_iter().map(|(id, title)| views::CourseChoice { id, title }).collect(),
                nav,
            })
        })
        .await?;
    Ok(Page::view("exams/sessions", "Exam sessions", ctx))
}

#[derive(FromForm)]
pub struct SessionForm {
    course_id: Option<i64>,
    #[field(default = String::new())]
    title: String,
    #[field(default = String::new())]
    starts: String,
    #[field(default = String::new())]
    time_zone: String,
    #[field(default = String::new())]
    mode: String,
    #[field(default = String::new())]
    location: String,
    capacity: Option<i32>,
    #[field(default = String::new())]
    deadline: String,
}

fn local_time(s: &str, what: &str) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .map_err(|_| format!("Enter the {what} as a date and time, such as 2027-03-14 09:30."))
}

#[post("/partners/<slug>/exams", data = "<form>")]
pub async fn create_session(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<SessionForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let back = format!("/partners/{slug}/exams");
    let f = form.form;
    let input = match (local_time(&f.starts, "start"), local_time(&f.deadline, "booking deadline")) {
        (Ok(starts_local), Ok(deadline_local)) => SessionInput {
            course_id: f.course_id.unwrap_or(0),
            title: f.title,
            starts_local,
            time_zone: f.time_zone,
            mode: f.mode,
            location: f.location,
            capacity: f.capacity.unwrap_or(0),
            deadline_local,
        },
        (Err(m), _) | (_, Err(m)) => return Ok(Flash::error(back, m)),
    };
    let (slug, user) = (slug.to_string(), user.0);
    let done = db
        .run(move |conn| {
            let p = exam_body(conn, &user, &slug)?;
            Ok::<_, AppError>(super::create_session(conn, &p, &input, now()))
        })
        .await?;
    match done {
        Ok(s) => Ok(Flash::success(format!("{back}/{}", s.id), "The session is open for booking.")),
        Err(e) => flash_or(&back, e),
    }
}

/// The candidates of a session, for the audit log: each with the exam body
/// and the course, and the session as the item.
fn candidates_of(conn: &mut Conn, session: i64) -> diesel::QueryResult<Vec<Subject>> {
    let people: Vec<i64> =
        exam_bookings::table.filter(exam_bookings::session_id.eq(session)).select(exam_bookings::user_id).load(conn)?;
    session_subjects(conn, session, people)
}

/// These learners as subjects of a view of `session` (the session itself
/// when there are none).
fn session_subjects(conn: &mut Conn, session: i64, people: Vec<i64>) -> diesel::QueryResult<Vec<Subject>> {
    use crate::db::schema::exam_sessions;
    let (partner, course): (i64, i64) =
        exam_sessions::table.find(session).select((exam_sessions::partner_id, exam_sessions::course_id)).first(conn)?;
    let item = format!("exam session {session}");
    let mut list: Vec<Subject> =
        people.into_iter().map(|u| Subject::user(u).partner(partner).course(course).item(item.clone())).collect();
    if list.is_empty() {
        list.push(Subject::of_partner(partner).course(course).item(item));
    }
    Ok(list)
}

/// The session page at `paging`: that page of its candidates read through
/// the gate (each one shown a disclosure), their results, and the result
/// upload; with the learners it shows.
fn session_context(
    conn: &mut Conn,
    user: &SessionUser,
    slug: &str,
    id: i64,
    paging: PageRequest,
) -> AppResult<(views::SessionPage, Vec<i64>)> {
    let p = exam_body(conn, user, slug)?;
    let s = super::session(conn, id)?;
    if s.partner_id != p.id {
        return Err(AppError::NotFound);
    }
    let export_id = format!("page-{}", uuid::Uuid::new_v4());
    let window = sharing::CandidateWindow { after: 0, skip: paging.offset(), limit: paging.per_page() };
    let page = sharing::exam_candidates(conn, &p, Some(s.id), window, &export_id, now())?;
    let nav = paging.nav(page.next_after.is_some(), |n| {
        if n > 1 {
            format!("/partners/{}/exams/{}?page={n}", p.slug, s.id)
        } else {
            format!("/partners/{}/exams/{}", p.slug, s.id)
        }
    });
    let references: Vec<&String> = page.candidates.iter().map(|c| &c.booking).collect();
    let results: HashMap<String, super::ExamResult> = {
        exam_results::table
            .inner_join(exam_bookings::table)
            .filter(exam_bookings::session_id.eq(s.id))
            .filter(exam_bookings::reference.eq_any(references))
            .select((exam_bookings::reference, super::ExamResult::as_select()))
            .load::<(String, super::ExamResult)>(conn)?
            .into_iter()
            .collect()
    };
    let view = views::SessionPage {
        partner: views::PartnerRef { slug: p.slug, name: p.name },
        session: SessionView::new(&s, now()),
        is_staff: user.is_staff(),
        upload_text: String::new(),
        upload_errors: Vec::new(),
        candidates: page
            .candidates
            .into_iter()
            .map(|c| {
                let result = results.get(&c.booking);
                views::CandidateView::new(c, result)
            })
            .collect(),
        nav,
    };
    Ok((view, page.learners))
}

#[get("/partners/<slug>/exams/<id>?<page>")]
pub async fn session_page(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    page: Option<&str>,
) -> AppResult<Page> {
    let (slug, user) = (slug.to_string(), user.0);
    let paging = PageRequest::parse(page, LIST_PAGE);
    let (ctx, shown) = db
        .run(move |conn| {
            let (ctx, people) = session_context(conn, &user, &slug, id, paging)?;
            Ok::<_, AppError>((ctx, session_subjects(conn, id, people)?))
        })
        .await?;
    trail.add_all(shown);
    Ok(Page::view("exams/session", "Exam session", ctx))
}

#[derive(FromForm)]
pub struct ResultsForm {
    #[field(default = String::new())]
    csrf_token: String,
    #[field(default = String::new())]
    csv: String,
    csv_file: crate::web::upload::Upload<crate::web::upload::CsvLimit>,
}

#[post("/partners/<slug>/exams/<id>/results", data = "<form>")]
pub async fn upload_results(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    cookies: &rocket::http::CookieJar<'_>,
    form: rocket::form::Form<ResultsForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    crate::web::csrf::verify_token(cookies, &form.csrf_token)?;
    let back = format!("/partners/{slug}/exams/{id}");
    // A file is read by the site's encoding rule; pasted text is checked by it.
    let (parsed, text) = match crate::web::csv::form_text(&form.csv, &form.csv_file) {
        Ok(read) => (super::parse_results_csv(&read.text), read.text),
        Err(message) => (Err(vec![message]), form.csv.clone()),
    };
    let (slug, user) = (slug.to_string(), user.0);
    let outcome = db
        .run(move |conn| {
            let p = exam_body(conn, &user, &slug)?;
            let shown = candidates_of(conn, id).optional()?.unwrap_or_default();
            let errors = match parsed {
                Ok(rows) => match super::record_upload(conn, &p, id, &rows, now()) {
                    Ok(counts) => return Ok::<_, AppError>((Ok(counts), shown)),
                    Err(ExamError::Invalid(m)) => vec![m],
                    Err(e) => return Err(e.into()),
                },
                Err(errors) => errors,
            };
            let (mut ctx, _) = session_context(conn, &user, &slug, id, PageRequest::parse(None, LIST_PAGE))?;
            ctx.upload_errors = errors;
            ctx.upload_text = text;
            Ok((Err(ctx), shown))
        })
        .await?;
    let (outcome, shown) = outcome;
    trail.add_all(shown);
    Ok(match outcome {
        Ok((new, same)) => rocket::Either::Left(Flash::success(
            back,
            format!("{new} result(s) recorded and the candidates emailed; {same} had been received already."),
        )),
        // Nothing is recorded; the page comes back with the text and what to fix.
        Err(ctx) => rocket::Either::Right(
            Page::view("exams/session", "Exam session", ctx).with_status(Status::UnprocessableEntity),
        ),
    })
}

// ---- malpractice (operator staff) ----

#[get("/staff/malpractice?<page>")]
pub async fn cases(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    let paging = PageRequest::parse(page, LIST_PAGE);
    let list = db.run(move |conn| Ok::<_, AppError>(super::cases(conn, paging.offset(), paging.fetch())?)).await?;
    let (list, nav) = paging.finish(list, |p| format!("/staff/malpractice?page={p}"));
    trail.add_all(list.iter().map(case_subject));
    let cases = list.iter().map(views::CaseView::new).collect();
    Ok(Page::view("exams/cases", "Malpractice cases", views::CasesPage { cases, nav }))
}

fn case_subject(c: &super::Case) -> Subject {
    Subject::user(c.user_id).partner(c.exam_body_id).item(format!("malpractice case {}", c.id))
}

#[derive(FromForm)]
pub struct CaseForm {
    #[field(default = String::new())]
    reference: String,
    #[field(default = String::new())]
    details: String,
}

#[post("/staff/malpractice", data = "<form>")]
pub async fn open_case(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    form: CsrfForm<CaseForm>,
) -> AppResult<Flash> {
    let (by, f) = (staff.0.id, form.form);
    let done =
        db.run(move |conn| Ok::<_, AppError>(super::open_case(conn, &f.reference, &f.details, by, now()))).await?;
    // The candidate the booking reference named (nobody when it named no booking).
    let case = match &done {
        Ok(id) => {
            let id = *id;
            db.run(move |conn| Ok::<_, AppError>(super::case(conn, id).ok())).await?
        }
        Err(_) => None,
    };
    trail.add_all(case.as_ref().map(case_subject));
    match done {
        Ok(id) => Ok(Flash::success(format!("/staff/malpractice/{id}"), "The case is open.")),
        Err(e) => flash_or("/staff/malpractice", e),
    }
}

#[get("/staff/malpractice/<id>")]
pub async fn case_page(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, id: i64) -> AppResult<Page> {
    let c = db.run(move |conn| Ok::<_, AppError>(super::case(conn, id)?)).await?;
    trail.add(case_subject(&c));
    Ok(Page::view("exams/case", "Malpractice case", views::CasePage { case: views::CaseView::new(&c) }))
}

#[derive(FromForm)]
pub struct DiscloseForm {
    #[field(default = String::new())]
    legal_reference: String,
    #[field(default = String::new())]
    fields: String,
}

#[post("/staff/malpractice/<id>/disclose", data = "<form>")]
pub async fn disclose(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<DiscloseForm>,
) -> AppResult<Flash> {
    let (by, f) = (staff.0.id, form.form);
    if let Ok(c) = db.run(move |conn| Ok::<_, AppError>(super::case(conn, id)?)).await {
        trail.add(case_subject(&c));
    }
    let back = format!("/staff/malpractice/{id}");
    let done = db
        .run(move |conn| Ok::<_, AppError>(super::disclose_case(conn, id, &f.legal_reference, &f.fields, by, now())))
        .await?;
    match done {
        Ok(_) => Ok(Flash::success(back, "The disclosure is recorded; the learner sees it on their Sharing page.")),
        Err(e) => flash_or(&back, e),
    }
}

#[derive(FromForm)]
pub struct CloseForm {
    #[field(default = String::new())]
    outcome: String,
}

#[post("/staff/malpractice/<id>/close", data = "<form>")]
pub async fn close_case(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<CloseForm>,
) -> AppResult<Flash> {
    let outcome = form.form.outcome;
    if let Ok(c) = db.run(move |conn| Ok::<_, AppError>(super::case(conn, id)?)).await {
        trail.add(case_subject(&c));
    }
    let back = format!("/staff/malpractice/{id}");
    let done = db.run(move |conn| Ok::<_, AppError>(super::close_case(conn, id, &outcome, now()))).await?;
    match done {
        Ok(()) => Ok(Flash::success(back, "The case is closed.")),
        Err(e) => flash_or(&back, e),
    }
}

// ---- API ----

fn exam_key(auth: &PartnerKey) -> AppResult<()> {
    if auth.partner.kind() != PartnerKind::ExamBody {
        return Err(AppError::Forbidden("Only exam bodies have candidates and results.".into()));
    }
    if !auth.key.allows("exams") {
        return Err(AppError::Forbidden("This API key may not read or send exams.".into()));
    }
    Ok(())
}

/// Candidates per page of the API.
pub const API_PAGE: i64 = 100;

/// A page of a JSON list, with the address of the next page in a `Link`
/// header (RFC 8288) when there is one.
pub struct Paged {
    body: Json<Value>,
    next: Option<String>,
}

impl<'r> rocket::response::Responder<'r, 'static> for Paged {
    fn respond_to(self, req: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        let mut res = rocket::response::Responder::respond_to(self.body, req)?;
        if let Some(next) = self.next {
            res.set_raw_header("Link", format!("<{next}>; rel=\"next\""));
        }
        Ok(res)
    }
}

/// The exam body's candidates, one session or all, a page at a time in
/// booking order: `since` is the `next` cursor of the page before.
#[get("/api/v1/exams/candidates?<session>&<since>")]
pub async fn api_candidates(
    db: &State<Db>,
    auth: PartnerKey,
    trail: Trail<'_>,
    session: Option<i64>,
    since: Option<&str>,
) -> AppResult<Paged> {
    exam_key(&auth)?;
    let after = match since.map(str::trim).filter(|s| !s.is_empty()) {
        None => 0,
        Some(c) => sharing::decode_cursor(c).ok_or_else(|| {
            AppError::BadRequest("The `since` cursor is malformed. Pass the `next` value of the page before.".into())
        })?,
    };
    let partner = auth.partner;
    let export_id = format!("api-{}", uuid::Uuid::new_v4());
    // Each candidate is in their disclosure log under this export id.
    trail.add(Subject::of_partner(partner.id).item(format!("export {export_id} (exam candidates)")));
    let window = sharing::CandidateWindow { after, skip: 0, limit: API_PAGE };
    let id = export_id.clone();
    let page = db
        .run(move |conn| Ok::<_, AppError>(sharing::exam_candidates(conn, &partner, session, window, &id, now())?))
        .await?;
    let next = page.next_after.map(|n| sharing::encode_cursor(n, &export_id));
    let link = next.as_ref().map(|cursor| match session {
        Some(s) => format!("/api/v1/exams/candidates?session={s}&since={cursor}"),
        None => format!("/api/v1/exams/candidates?since={cursor}"),
    });
    Ok(Paged { body: Json(json!({ "candidates": page.candidates, "next": next })), next: link })
}

/// One result for one booking; the same result again answers 200 and
/// changes nothing, a different one 409.
#[post("/api/v1/exams/results", data = "<body>")]
pub async fn api_result(
    db: &State<Db>,
    auth: PartnerKey,
    trail: Trail<'_>,
    body: Data<'_>,
) -> AppResult<(Status, Json<Value>)> {
    exam_key(&auth)?;
    let bytes = body
        .open(64.kibibytes())
        .into_bytes()
        .await
        .map_err(|e| AppError::BadRequest(format!("The body could not be read: {e}")))?;
    if !bytes.is_complete() {
        return Err(AppError::BadRequest("The body is too large (at most 64 KiB).".into()));
    }
    let input: ResultInput = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::BadRequest(format!(
            "The body must be a JSON object {{\"booking\", \"grade\", \"score\", \"passed\"}}: {e}"
        ))
    })?;
    let partner = auth.partner;
    let booking = input.booking.clone();
    let partner_id = partner.id;
    let recorded =
        db.run(move |conn| Ok::<_, AppError>(super::record_result(conn, &partner, &input, "api", now())?)).await?;
    let candidate = db
        .run(move |conn| {
            Ok::<_, AppError>(
                exam_bookings::table
                    .filter(exam_bookings::reference.eq(booking))
                    .select(exam_bookings::user_id)
                    .first::<i64>(conn)
                    .optional()?,
            )
        })
        .await?;
    trail.add_all(candidate.map(|u| Subject::user(u).partner(partner_id)));
    let (status, r, duplicate) = match recorded {
        Recorded::New(r) => (Status::Created, r, false),
        Recorded::Same(r) => (Status::Ok, r, true),
    };
    let mut out = r.json();
    out["duplicate"] = json!(duplicate);
    Ok((status, Json(out)))
}

/// Exam results a sponsor may see (SHR-3).
#[get("/api/v1/exams/funded-results")]
pub async fn api_funded(db: &State<Db>, auth: PartnerKey, trail: Trail<'_>) -> AppResult<Json<Value>> {
    if auth.partner.kind() != PartnerKind::Sponsor || !auth.key.allows("results") {
        return Err(AppError::Forbidden("Only a sponsor's key with the results scope reads funded results.".into()));
    }
    let partner = auth.partner;
    let export_id = format!("api-{}", uuid::Uuid::new_v4());
    // Each learner is in their disclosure log under this export id.
    trail.add(Subject::of_partner(partner.id).item(format!("export {export_id} (funded results)")));
    let list =
        db.run(move |conn| Ok::<_, AppError>(sharing::funded_results(conn, &partner, &export_id, now())?)).await?;
    Ok(Json(json!({ "results": list })))
}
