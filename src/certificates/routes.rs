//! Pages of the certificates area: buying the verified track and the
//! provider's webhook, the identity check, financial assistance, the
//! learner's certificates and their public verification, the signed
//! credential and its keys, and the staff queues.

use crate::web::trail::Trail;
use std::sync::Arc;

use crate::web::upload::{ImageLimit, Upload};
use diesel::prelude::*;
use rocket::data::{Data, ToByteUnit};
use rocket::form::Form;
use rocket::http::{ContentType, CookieJar, Header, Status};
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{Either, FromForm, Responder, State, get, post};
use serde_json::{Value, json};

use super::payments::{self, Payments};
use super::views;
use super::{CertError, Certificate, assistance, credential::Issuer, identity, render};
use crate::config::Config;
use crate::db::schema::{certificates, course_runs, courses, members};
use crate::db::{Db, now};
use crate::storage::BlobStore;
use crate::web::csrf::CsrfOnly;
use crate::web::guards::MachineReadable;
use crate::web::paging::PageRequest;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page, StaffUser};

/// A service outcome as a flash on `back`: refused input goes back with its reason.
fn settle(back: &str, outcome: Result<(), CertError>, done: &str) -> AppResult<Flash> {
    match outcome {
        Ok(()) => Ok(Flash::success(back, done)),
        Err(CertError::Invalid(m) | CertError::Forbidden(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- buying

#[post("/courses/<slug>/runs/<run_key>/buy", data = "<_form>")]
pub async fn buy(
    db: &State<Db>,
    provider: &State<Payments>,
    config: &State<Config>,
    user: CurrentUser,
    slug: &str,
    run_key: &str,
    _form: CsrfOnly,
) -> AppResult<Either<Redirect, Flash>> {
    let back = format!("/courses/{slug}");
    let Some(provider) = provider.0.clone() else {
        return Ok(Either::Right(Flash::info(
            back,
            "Certificates cannot be bought on this site; apply for financial assistance instead.",
        )));
    };
    let (user_id, email) = (user.id, user.email.clone());
    let (s, r) = (slug.to_string(), run_key.to_string());
    let quote = match db.run(move |conn| payments::quote_verified(conn, user_id, &s, &r, now())).await {
        Ok(q) => q,
        Err(CertError::Invalid(m) | CertError::Forbidden(m)) => return Ok(Either::Right(Flash::error(back, m))),
        Err(e) => return Err(e.into()),
    };
    let purchase = Purchase {
        user_id,
        email,
        purpose: payments::purpose::VERIFIED,
        partner_id: None,
        quantity: 1,
        cancel_path: format!("/payments/cancelled?course={}", quote.course_slug),
        reference: format!("user-{user_id}-run-{}", quote.run_id),
        quote,
    };
    open_checkout(db, provider.as_ref(), &config.base_url(), back, purchase).await
}

/// What is being bought, by whom.
struct Purchase {
    quote: payments::Quote,
    user_id: i64,
    email: String,
    purpose: &'static str,
    partner_id: Option<i64>,
    quantity: i32,
    /// Where the provider's "back" link leads, on this site.
    cancel_path: String,
    reference: String,
}

/// Opens the provider's checkout, records it as a pending payment and sends
/// the buyer there; a provider that does not answer leaves nothing behind.
async fn open_checkout(
    db: &Db,
    provider: &dyn payments::PaymentProvider,
    base: &str,
    back: String,
    p: Purchase,
) -> AppResult<Either<Redirect, Flash>> {
    let request = payments::CheckoutRequest {
        description: p.quote.description.clone(),
        unit_amount_cents: p.quote.amount_cents,
        quantity: i64::from(p.quantity),
        currency: p.quote.currency.clone(),
        customer_email: p.email.clone(),
        reference: p.reference.clone(),
        success_url: format!("{base}/payments/return?checkout={{CHECKOUT_SESSION_ID}}"),
        cancel_url: format!("{base}{}", p.cancel_path),
    };
    let checkout = match provider.create_checkout(&request).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "creating a checkout failed");
            return Ok(Either::Right(Flash::error(
                back,
                "The payment service is not answering; nothing was charged. Please try again in a few minutes.",
            )));
        }
    };
    let (id, name) = (checkout.id.clone(), provider.name());
    db.run(move |conn| {
        payments::record_checkout(
            conn,
            &payments::NewPayment {
                user_id: p.user_id,
                run_id: p.quote.run_id,
                purpose: p.purpose,
                partner_id: p.partner_id,
                quantity: p.quantity,
                provider: name,
                checkout_id: &id,
                amount_cents: p.quote.amount_cents * i64::from(p.quantity),
                currency: &p.quote.currency,
            },
            now(),
        )
        .map_err(AppError::from)
    })
    .await?;
    Ok(Either::Left(Redirect::to(checkout.url)))
}

#[derive(FromForm)]
pub struct SeatPurchase {
    run_id: Option<i64>,
    seats: Option<i32>,
}

/// A sponsor buys seats in a run through the same provider.
#[post("/partners/<slug>/seats/buy", data = "<form>")]
pub async fn buy_seats(
    db: &State<Db>,
    provider: &State<Payments>,
    config: &State<Config>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<SeatPurchase>,
) -> AppResult<Either<Redirect, Flash>> {
    trail.partner_page(slug);
    let back = format!("/partners/{slug}");
    let Some(provider) = provider.0.clone() else {
        return Ok(Either::Right(Flash::info(back, "Seats cannot be bought on this site; our staff allocate them.")));
    };
    let (Some(run_id), Some(seats)) = (form.form.run_id, form.form.seats) else {
        return Ok(Either::Right(Flash::error(back, "Choose a course run and a number of seats.")));
    };
    let (s, who) = (slug.to_string(), user.0.clone());
    let checked = db
        .run(move |conn| {
            let partner = crate::consent::partners::managed(conn, &who, &s)?.ok_or(AppError::NotFound)?;
            if partner.kind() != crate::consent::PartnerKind::Sponsor {
                return Err(AppError::NotFound);
            }
            Ok(payments::quote_seats(conn, run_id, seats, now()).map(|q| (q, partner.id)))
        })
        .await?;
    let (quote, partner_id) = match checked {
        Ok(v) => v,
        Err(CertError::Invalid(m)) => return Ok(Either::Right(Flash::error(back, m))),
        Err(e) => return Err(e.into()),
    };
    let purchase = Purchase {
        user_id: user.id,
        email: user.email.clone(),
        purpose: payments::purpose::SEATS,
        partner_id: Some(partner_id),
        quantity: seats,
        cancel_path: format!("/partners/{slug}"),
        reference: format!("partner-{partner_id}-run-{run_id}"),
        quote,
    };
    open_checkout(db, provider.as_ref(), &config.base_url(), back, purchase).await
}

/// The learner is back from the provider's page: the provider says whether
/// the checkout is paid (the webhook may not have arrived yet).
#[get("/payments/return?<checkout>")]
pub async fn returned(
    db: &State<Db>,
    provider: &State<Payments>,
    user: CurrentUser,
    checkout: &str,
) -> AppResult<Flash> {
    let id = checkout.to_string();
    let user_id = user.id;
    let found = db
        .run(move |conn| {
            let p = payments::by_checkout(conn, &id)?;
            let slug: Option<String> = match p.as_ref().and_then(|p| p.run_id) {
                Some(run) => course_runs::table
                    .inner_join(courses::table)
                    .filter(course_runs::id.eq(run))
                    .select(courses::slug)
                    .first(conn)
                    .optional()?,
                None => None,
            };
            Ok::<_, AppError>(p.zip(slug))
        })
        .await?;
    let Some((payment, slug)) = found.filter(|(p, _)| p.user_id == Some(user_id)) else {
        return Err(AppError::NotFound);
    };
    let partner = match payment.partner_id {
        Some(id) => Some(db.run(move |conn| crate::consent::partners::by_id(conn, id).map_err(AppError::from)).await?),
        None => None,
    };
    let (back, done) = match &partner {
        Some(p) => (
            format!("/partners/{}", p.slug),
            format!(
                "Payment received: {} seat(s) are yours to hand out. Your receipt is on its way.",
                payment.quantity
            ),
        ),
        None => (
            format!("/learn/{slug}"),
            "Payment received: you are on the verified track. Your receipt is on its way.".to_string(),
        ),
    };
    if payment.status == payments::status::PAID {
        return Ok(Flash::success(back, done));
    }
    let Some(provider) = provider.0.clone() else { return Err(AppError::NotFound) };
    let state = match provider.checkout_state(&payment.checkout_id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "checking a checkout failed");
            return Ok(Flash::info(
                back,
                "We are confirming your payment with the payment service; this page will show it shortly.",
            ));
        }
    };
    let checkout_id = payment.checkout_id.clone();
    let outcome =
        db.run(move |conn| payments::fulfil(conn, &checkout_id, &state, now()).map_err(AppError::from)).await?;
    Ok(match outcome {
        payments::Fulfilled::Now | payments::Fulfilled::Already => Flash::success(back, done),
        payments::Fulfilled::Mismatch => {
            Flash::error(back, "The payment does not match the price; our staff will look into it.")
        }
        payments::Fulfilled::Unknown => Flash::info(back, "The payment is not complete yet; nothing was charged."),
    })
}

#[get("/payments/cancelled?<course>")]
pub fn cancelled(course: Option<&str>) -> Flash {
    let back = course
        .filter(|c| c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
        .map_or_else(|| "/dashboard".to_string(), |c| format!("/courses/{c}"));
    Flash::info(back, "Payment cancelled: nothing was charged.")
}

/// The header a payment webhook is signed in.
pub struct Signature(Option<String>);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Signature {
    type Error = ();
    async fn from_request(req: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::request::Outcome::Success(Signature(req.headers().get_one("Stripe-Signature").map(str::to_string)))
    }
}

/// The payment provider's events: signature checked, each event once.
#[post("/payments/stripe/webhook", data = "<body>")]
pub async fn webhook(
    db: &State<Db>,
    provider: &State<Payments>,
    signature: Signature,
    body: Data<'_>,
) -> AppResult<(Status, Json<Value>)> {
    let Some(provider) = provider.0.clone() else { return Err(AppError::NotFound) };
    let body = body.open(1.mebibytes()).into_bytes().await.map_err(|e| AppError::Internal(e.to_string()))?;
    if !body.is_complete() {
        return Err(AppError::BadRequest("The event is larger than 1 MiB.".into()));
    }
    let event = provider
        .verify_webhook(signature.0.as_deref(), &body, chrono::Utc::now().timestamp())
        .map_err(|e| AppError::BadRequest(format!("Webhook refused: {e}.")))?;
    let handled = db.run(move |conn| payments::handle_event(conn, &event, now()).map_err(AppError::from)).await?;
    let word = match handled {
        payments::Handled::Applied => "applied",
        payments::Handled::Duplicate => "duplicate",
        payments::Handled::Ignored => "ignored",
    };
    Ok((Status::Ok, Json(json!({ "received": true, "result": word }))))
}

// ---------------------------------------------------------------- identity

#[get("/account/verification")]
pub async fn verification_page(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let user_id = user.id;
    let latest = db.run(move |conn| Ok::<_, AppError>(identity::latest(conn, user_id)?)).await?;
    let view = views::Verification::new(latest.as_ref(), now());
    Ok(Page::view("certificates/verification", "Verify your identity", view))
}

#[derive(FromForm)]
pub struct IdentityUpload {
    #[field(default = String::new())]
    csrf_token: String,
    id_photo: Upload<ImageLimit>,
    face_photo: Upload<ImageLimit>,
}

#[post("/account/verification", data = "<form>")]
pub async fn submit_verification(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    form: Form<IdentityUpload>,
) -> AppResult<Flash> {
    crate::web::csrf::verify_token(cookies, &form.csrf_token)?;
    let back = "/account/verification";
    if matches!(form.id_photo, Upload::TooLarge) || matches!(form.face_photo, Upload::TooLarge) {
        return Ok(Flash::error(back, Upload::<ImageLimit>::too_large_message()));
    }
    let (Ok(id_bytes), Ok(face_bytes)) = (form.id_photo.bytes(), form.face_photo.bytes()) else {
        return Ok(Flash::error(back, "Add both photos: your photo ID and a photo of your face."));
    };
    if id_bytes.is_empty() || face_bytes.is_empty() {
        return Ok(Flash::error(back, "Add both photos: your photo ID and a photo of your face."));
    }
    let (id_bytes, face_bytes) = (id_bytes.to_vec(), face_bytes.to_vec());
    let blobs = blobs.inner().clone();
    let user_id = user.id;
    let outcome = db
        .run(move |conn| match identity::submit(conn, blobs.as_ref(), user_id, &id_bytes, &face_bytes, now()) {
            Ok(_) => Ok(Ok(())),
            Err(CertError::Invalid(m)) => Ok(Err(m)),
            Err(e) => Err(AppError::from(e)),
        })
        .await?;
    Ok(match outcome {
        Ok(()) => Flash::success(
            back,
            "Thank you. Our staff will review your photos and email you; the photos are deleted as soon as they decide.",
        ),
        Err(m) => Flash::error(back, m),
    })
}

/// Checks on the identity queue's page.
const IDENTITY_PAGE: i64 = 50;

#[get("/staff/identity?<page>")]
pub async fn identity_queue(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    page: Option<&str>,
) -> AppResult<Page> {
    let paging = PageRequest::parse(page, IDENTITY_PAGE);
    let rows = db.run(move |conn| Ok::<_, AppError>(identity::queue(conn, paging.offset(), paging.fetch())?)).await?;
    let (rows, nav) = paging.finish(rows, |p| format!("/staff/identity?page={p}"));
    trail.users(rows.iter().map(|(c, _, _)| c.user_id));
    let checks = rows
        .into_iter()
        .map(|(c, username, name)| views::QueuedCheck { id: c.id, username, name, submitted: c.submitted_at.into() })
        .collect();
    Ok(Page::view("certificates/identity_queue", "Identity checks", views::IdentityQueue { checks, nav }))
}

#[get("/staff/identity/<id>")]
pub async fn identity_review(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, id: i64) -> AppResult<Page> {
    let (ctx, subject) = db
        .run(move |conn| {
            let check = identity::get(conn, id)?.ok_or(AppError::NotFound)?;
            let (username, first, last): (String, String, String) = crate::db::schema::users::table
                .find(check.user_id)
                .select((
                    crate::db::schema::users::username,
                    crate::db::schema::users::first_name,
                    crate::db::schema::users::last_name,
                ))
                .first(conn)?;
            Ok::<_, AppError>((
                views::IdentityReview {
                    id: check.id,
                    username,
                    name: format!("{first} {last}"),
                    pending: check.status == identity::status::PENDING,
                    status: check.status,
                    has_images: check.id_photo_blob.is_some(),
                    submitted: check.submitted_at.into(),
                    reason: check.reason,
                },
                check.user_id,
            ))
        })
        .await?;
    trail.user(subject);
    Ok(Page::view("certificates/identity_review", "Review an identity check", ctx))
}

#[derive(Responder)]
#[response(status = 200)]
pub struct PrivateImage {
    body: Vec<u8>,
    content_type: ContentType,
    cache: Header<'static>,
}

#[get("/staff/identity/<id>/<which>")]
pub async fn identity_image(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    which: &str,
) -> AppResult<PrivateImage> {
    let which = which.strip_suffix(".img").unwrap_or(which).to_string();
    let blobs = blobs.inner().clone();
    let (bytes, subject) = db
        .run(move |conn| {
            let subject = identity::get(conn, id)?.ok_or(AppError::NotFound)?.user_id;
            Ok::<_, AppError>((identity::image(conn, blobs.as_ref(), id, &which)?, subject))
        })
        .await?;
    trail.user(subject);
    let content_type = if bytes.starts_with(b"\x89PNG") { ContentType::PNG } else { ContentType::JPEG };
    Ok(PrivateImage { body: bytes, content_type, cache: Header::new("Cache-Control", "no-store") })
}

#[derive(FromForm)]
pub struct DecisionForm {
    #[field(default = String::new())]
    decision: String,
    #[field(default = String::new())]
    reason: String,
}

#[post("/staff/identity/<id>", data = "<form>")]
pub async fn identity_decide(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    config: &State<Config>,
    staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<DecisionForm>,
) -> AppResult<Flash> {
    let back = format!("/staff/identity/{id}");
    let subject = db.run(move |conn| Ok::<_, AppError>(identity::get(conn, id)?.map(|c| c.user_id))).await?;
    trail.users(subject);
    let Some(decision) = identity::Decision::parse(&form.form.decision) else {
        return Ok(Flash::error(back, "Choose approve, deny or ask for new photos."));
    };
    let (reason, by, days) = (form.form.reason.clone(), staff.0.id, config.identity_valid_days);
    let blobs = blobs.inner().clone();
    let outcome = db
        .run(move |conn| {
            Ok::<_, AppError>(identity::decide(
                conn,
                blobs.as_ref(),
                id,
                &identity::Verdict { by, decision, reason: &reason },
                days,
                now(),
            ))
        })
        .await?;
    match outcome {
        Ok(()) => Ok(Flash::success(
            "/staff/identity",
            "Decision recorded; the photos are deleted and the learner is emailed.",
        )),
        Err(CertError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- assistance

fn run_of(conn: &mut crate::db::Conn, slug: &str, run_key: &str) -> Result<(i64, String), AppError> {
    course_runs::table
        .inner_join(courses::table)
        .filter(courses::slug.eq(slug))
        .filter(courses::published.eq(true))
        .filter(course_runs::run_key.eq(run_key))
        .select((course_runs::id, courses::title))
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

#[get("/courses/<slug>/assistance?<run>")]
pub async fn assistance_form(db: &State<Db>, user: CurrentUser, slug: &str, run: &str) -> AppResult<Page> {
    let (s, r, user_id) = (slug.to_string(), run.to_string(), user.id);
    let ctx = db
        .run(move |conn| {
            let (run_id, title) = run_of(conn, &s, &r)?;
            let existing = assistance::for_user_run(conn, user_id, run_id)?;
            Ok::<_, AppError>(views::AssistanceForm {
                slug: s,
                run: r,
                course: title,
                may_apply: assistance::refusal(existing.as_ref()).is_none(),
                status: existing.map(|a| a.status),
                values: views::AssistanceValues::default(),
                errors: Default::default(),
            })
        })
        .await?;
    Ok(Page::view("certificates/assistance", "Financial assistance", ctx))
}

#[derive(FromForm)]
pub struct AssistanceForm {
    #[field(default = String::new())]
    reason: String,
    #[field(default = String::new())]
    circumstances: String,
    #[field(default = String::new())]
    goals: String,
}

#[post("/courses/<slug>/assistance?<run>", data = "<form>")]
pub async fn apply(
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    run: Option<&str>,
    form: CsrfForm<AssistanceForm>,
) -> AppResult<Either<Page, Flash>> {
    let run = run.ok_or(AppError::NotFound)?;
    let f = form.form;
    let answers = assistance::Answers { reason: &f.reason, circumstances: &f.circumstances, goals: &f.goals };
    let errors = assistance::check(&answers);
    let (s, r, user_id) = (slug.to_string(), run.to_string(), user.id);
    if !errors.is_empty() {
        let title = db.run(move |conn| run_of(conn, &s, &r)).await?.1;
        let view = views::AssistanceForm {
            slug: slug.to_string(),
            run: run.to_string(),
            course: title,
            status: None,
            may_apply: true,
            errors: errors.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            values: views::AssistanceValues { reason: f.reason, circumstances: f.circumstances, goals: f.goals },
        };
        return Ok(Either::Left(
            Page::view("certificates/assistance", "Financial assistance", view)
                .with_status(Status::UnprocessableEntity),
        ));
    }
    let back = format!("/courses/{slug}/assistance?run={run}");
    let (reason, circumstances, goals) = (f.reason.clone(), f.circumstances.clone(), f.goals.clone());
    let outcome = db
        .run(move |conn| {
            let (run_id, _) = run_of(conn, &s, &r)?;
            let a = assistance::Answers { reason: &reason, circumstances: &circumstances, goals: &goals };
            Ok::<_, AppError>(assistance::apply(conn, user_id, run_id, &a, now()).map(|_| ()))
        })
        .await?;
    settle(&back, outcome, "Your application is in. Our staff will email you their decision.").map(Either::Right)
}

/// Applications on the staff list's page.
const ASSISTANCE_PAGE: i64 = 50;

#[get("/staff/assistance?<page>")]
pub async fn assistance_list(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    page: Option<&str>,
) -> AppResult<Page> {
    let paging = PageRequest::parse(page, ASSISTANCE_PAGE);
    let rows = db.run(move |conn| Ok::<_, AppError>(assistance::list(conn, paging.offset(), paging.fetch())?)).await?;
    let (rows, nav) = paging.finish(rows, |p| format!("/staff/assistance?page={p}"));
    trail.users(rows.iter().map(|(a, ..)| a.user_id));
    let applications = rows.into_iter().map(views::AssistanceRow::new).collect();
    Ok(Page::view("certificates/assistance_list", "Financial assistance", views::AssistanceList { applications, nav }))
}

#[derive(FromForm)]
pub struct AssistanceDecision {
    #[field(default = String::new())]
    decision: String,
    #[field(default = String::new())]
    note: String,
}

#[post("/staff/assistance/<id>", data = "<form>")]
pub async fn assistance_decide(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<AssistanceDecision>,
) -> AppResult<Flash> {
    let subject = db
        .run(move |conn| {
            use crate::db::schema::assistance_applications as a;
            Ok::<_, AppError>(a::table.find(id).select(a::user_id).first::<i64>(conn).optional()?)
        })
        .await?;
    trail.users(subject);
    let approve = match form.form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Ok(Flash::error("/staff/assistance", "Choose approve or decline.")),
    };
    let (note, by) = (form.form.note.clone(), staff.0.id);
    let outcome =
        db.run(move |conn| Ok::<_, AppError>(assistance::decide(conn, id, by, approve, &note, now()))).await?;
    settle("/staff/assistance", outcome, "Decision recorded; the learner is emailed.")
}

// ---------------------------------------------------------------- certificates

#[get("/account/certificates")]
pub async fn mine(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let user_id = user.id;
    let certs = db.run(move |conn| Ok::<_, AppError>(super::of_user(conn, user_id)?)).await?;
    Ok(Page::view("certificates/mine", "Your certificates", views::MyCertificates::new(certs)))
}

/// The certificate by a code as people type it; `None` for a code of the wrong shape.
async fn find(db: &Db, code: &str) -> AppResult<(Certificate, Option<(String, i32)>)> {
    let code = super::normalise_code(code).ok_or(AppError::NotFound)?;
    db.run(move |conn| {
        let c = super::by_code(conn, &code)?.ok_or(AppError::NotFound)?;
        let course: Option<(String, i32)> = match c.run_id {
            Some(run) => course_runs::table
                .inner_join(courses::table)
                .filter(course_runs::id.eq(run))
                .select((courses::slug, course_runs::pass_threshold))
                .first(conn)
                .optional()?,
            None => None,
        };
        Ok::<_, AppError>((c, course))
    })
    .await
}

/// The public verification page (CRT-4): valid, or revoked with reason and date.
#[get("/certificates/<code>")]
pub async fn verify_page(db: &State<Db>, config: &State<Config>, code: &str) -> AppResult<Page> {
    let (c, course) = match find(db, code).await {
        Err(AppError::NotFound) => return Ok(no_such_certificate(code)),
        found => found?,
    };
    let base = config.base_url();
    let title = format!("Certificate {}", c.code);
    Ok(Page::view("certificates/verify", title, views::VerifyPage::new(c, course.map(|(s, _)| s), &base)))
}

/// The 404 page of a code that names no certificate: it says which code was
/// looked up, what a code looks like, and offers to look up another.
fn no_such_certificate(code: &str) -> Page {
    let view = views::NoSuchCertificate {
        code: code.chars().take(64).collect(),
        well_formed: super::normalise_code(code).is_some(),
    };
    Page::view("certificates/not_found", "No such certificate", view).with_status(Status::NotFound)
}

/// The look-up form's target: the code as typed, tidied, to its page.
#[get("/certificates/find?<code>")]
pub fn find_page(code: Option<&str>) -> Either<Redirect, Page> {
    let typed = code.unwrap_or("").trim();
    match super::normalise_code(typed) {
        Some(code) => Either::Left(Redirect::to(format!("/certificates/{code}"))),
        None => Either::Right(no_such_certificate(typed)),
    }
}

#[derive(Responder)]
#[response(status = 200)]
pub struct Download {
    body: Vec<u8>,
    content_type: ContentType,
    disposition: Header<'static>,
}

/// The certificate drawn by `draw`, with its file name and disposition.
async fn drawn(
    db: &Db,
    config: &Config,
    code: &str,
    draw: fn(&Certificate, &str) -> Vec<u8>,
    (content_type, extension, disposition): (ContentType, &str, &str),
) -> AppResult<Download> {
    let (c, _) = find(db, code).await?;
    let url = format!("{}/certificates/{}", config.base_url(), c.code);
    let name = format!("certificate-{}.{extension}", c.code);
    // Drawing is CPU work: off the async executor.
    let body =
        tokio::task::spawn_blocking(move || draw(&c, &url)).await.map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Download {
        body,
        content_type,
        disposition: Header::new("Content-Disposition", format!("{disposition}; filename=\"{name}\"")),
    })
}

#[get("/certificates/<code>/certificate.png")]
pub async fn png(db: &State<Db>, config: &State<Config>, code: &str) -> AppResult<Download> {
    drawn(db, config, code, render::png, (ContentType::PNG, "png", "inline")).await
}

#[get("/certificates/<code>/certificate.pdf")]
pub async fn pdf(db: &State<Db>, config: &State<Config>, code: &str) -> AppResult<Download> {
    drawn(db, config, code, render::pdf, (ContentType::PDF, "pdf", "attachment")).await
}

/// The certificate behind a credential a verifier asks for; an unknown code
/// is a 404 that says so (a problem document for software).
async fn find_credential(db: &Db, code: &str) -> AppResult<(Certificate, Option<(String, i32)>)> {
    find(db, code).await.map_err(|e| match e {
        AppError::NotFound => AppError::Missing(
            "No credential has this code: check the address, which the certificate's page and PDF show.".into(),
        ),
        other => other,
    })
}

/// The signed Open Badges 3.0 credential (VC-JWT).
#[get("/certificates/<code>/credential.jwt")]
pub async fn credential_jwt(
    db: &State<Db>,
    issuer: &State<Issuer>,
    code: &str,
    _software: MachineReadable,
) -> AppResult<(ContentType, String)> {
    let (c, course) = find_credential(db, code).await?;
    let jwt = issuer.vc_jwt(&c, course.as_ref().map(|(s, _)| s.as_str()), course.as_ref().map(|(_, t)| *t));
    Ok((ContentType::new("application", "vc+jwt"), jwt))
}

/// The same credential unsigned, for people and JSON-LD tools.
#[get("/certificates/<code>/credential.json")]
pub async fn credential_json(
    db: &State<Db>,
    issuer: &State<Issuer>,
    code: &str,
    _software: MachineReadable,
) -> AppResult<Json<Value>> {
    let (c, course) = find_credential(db, code).await?;
    Ok(Json(issuer.credential(&c, course.as_ref().map(|(s, _)| s.as_str()), course.as_ref().map(|(_, t)| *t))))
}

#[get("/.well-known/jwks.json")]
pub fn jwks(issuer: &State<Issuer>) -> Json<Value> {
    Json(issuer.jwks())
}

#[get("/issuers/<slug>")]
pub async fn issuer_profile(
    db: &State<Db>,
    issuer: &State<Issuer>,
    slug: &str,
    _software: MachineReadable,
) -> AppResult<Json<Value>> {
    let s = slug.to_string();
    let missing = "No credential issuer has this address.".to_string();
    let member: (String, String) = db
        .run(move |conn| {
            members::table
                .filter(members::slug.eq(&s))
                .select((members::name, members::description))
                .first(conn)
                .optional()?
                .ok_or(AppError::Missing(missing))
        })
        .await?;
    Ok(Json(issuer.profile(slug, &member.0, &member.1)))
}

/// The revocation list, a signed `BitstringStatusListCredential`.
#[get("/credentials/status/revocation")]
pub async fn status_list(db: &State<Db>, issuer: &State<Issuer>) -> AppResult<(ContentType, String)> {
    let (revoked, issued) = db
        .run(|conn| {
            let revoked: Vec<i64> = certificates::table
                .filter(certificates::revoked_at.is_not_null())
                .select(certificates::status_index)
                .load(conn)?;
            let top: Option<i64> =
                certificates::table.select(diesel::dsl::max(certificates::status_index)).first(conn)?;
            Ok::<_, AppError>((revoked, top.map_or(0, |t| t + 1)))
        })
        .await?;
    Ok((ContentType::new("application", "vc+jwt"), issuer.status_list(&revoked, issued, now())))
}

/// Certificates on the staff list's page.
const STAFF_LIST_PAGE: i64 = 50;

#[get("/staff/certificates?<q>&<page>")]
pub async fn staff_list(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    q: Option<&str>,
    page: Option<&str>,
) -> AppResult<Page> {
    let q = q.unwrap_or("").trim().to_string();
    let needle = q.clone();
    let paging = PageRequest::parse(page, STAFF_LIST_PAGE);
    let certs = db
        .run(move |conn| {
            let mut query = certificates::table
                .order(certificates::id.desc())
                .offset(paging.offset())
                .limit(paging.fetch())
                .into_boxed();
            if let Some(code) = super::normalise_code(&needle) {
                query = query.filter(certificates::code.eq(code));
            } else if !needle.is_empty() {
                let like = format!("%{}%", needle.replace(['%', '_'], ""));
                query = query
                    .filter(certificates::name_at_issue.like(like.clone()).or(certificates::course_title.like(like)));
            }
            Ok::<_, AppError>(query.select(Certificate::as_select()).load(conn)?)
        })
        .await?;
    let (certs, nav) = paging.finish(certs, |p| format!("/staff/certificates?q={}&page={p}", urlencoding::encode(&q)));
    trail.users(certs.iter().filter_map(|c| c.user_id));
    Ok(Page::view("certificates/staff", "Certificates", views::StaffCertificates::new(certs, q, nav)))
}

#[derive(FromForm)]
pub struct RevokeForm {
    #[field(default = String::new())]
    reason: String,
}

#[post("/staff/certificates/<id>/revoke", data = "<form>")]
pub async fn revoke(
    db: &State<Db>,
    staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<RevokeForm>,
) -> AppResult<Flash> {
    let (reason, by) = (form.form.reason.clone(), staff.0.id);
    let outcome = db
        .run(move |conn| {
            let Some(holder) = certificates::table.find(id).select(certificates::user_id).first(conn).optional()?
            else {
                return Err(AppError::NotFound);
            };
            Ok((holder, super::revoke(conn, id, Some(by), &reason, now())))
        })
        .await?;
    let (holder, outcome): (Option<i64>, _) = outcome;
    trail.users(holder);
    match outcome {
        Ok(true) => {
            Ok(Flash::success("/staff/certificates", "Certificate revoked; its page and the status list say so now."))
        }
        Ok(false) => Ok(Flash::info("/staff/certificates", "That certificate was already revoked.")),
        Err(CertError::Invalid(m)) => Ok(Flash::error("/staff/certificates", m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(FromForm)]
pub struct GrantForm {
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    course: String,
    #[field(default = String::new())]
    run: String,
}

/// Staff give a learner the verified track (a scholarship agreed elsewhere).
#[post("/staff/certificates/grant", data = "<form>")]
pub async fn grant(db: &State<Db>, _staff: StaffUser, trail: Trail<'_>, form: CsrfForm<GrantForm>) -> AppResult<Flash> {
    let f = form.form;
    let outcome = db
        .run(move |conn| {
            use crate::db::schema::users;
            let user: Option<i64> =
                users::table.filter(users::username.eq(f.username.trim())).select(users::id).first(conn).optional()?;
            let Some(user_id) = user else {
                return Ok(Err(format!("No learner is called “{}”.", f.username.trim())));
            };
            let run = course_runs::table
                .inner_join(courses::table)
                .filter(courses::slug.eq(f.course.trim()))
                .filter(course_runs::run_key.eq(f.run.trim()))
                .select(course_runs::id)
                .first::<i64>(conn)
                .optional()?;
            let Some(run_id) = run else {
                return Ok(Err("No such course run: give the course's address name and the run key.".into()));
            };
            super::grant_verified(conn, user_id, run_id, now())?;
            Ok::<_, AppError>(Ok(user_id))
        })
        .await?;
    trail.users(outcome.as_ref().ok().copied());
    Ok(match outcome {
        Ok(_) => Flash::success("/staff/certificates", "The learner is on the verified track of that run."),
        Err(m) => Flash::error("/staff/certificates", m),
    })
}

/// Payments on the staff page's page.
const PAYMENTS_PAGE: i64 = 50;

#[get("/staff/payments?<page>")]
pub async fn payments_page(
    db: &State<Db>,
    _staff: StaffUser,
    trail: Trail<'_>,
    provider: &State<Payments>,
    page: Option<&str>,
) -> AppResult<Page> {
    let paging = PageRequest::parse(page, PAYMENTS_PAGE);
    let list = db.run(move |conn| Ok::<_, AppError>(payments::recent(conn, paging.offset(), paging.fetch())?)).await?;
    let (list, nav) = paging.finish(list, |p| format!("/staff/payments?page={p}"));
    trail.users(list.iter().filter_map(|(p, ..)| p.user_id));
    let payments = list.into_iter().map(views::PaymentRow::new).collect();
    let view = views::PaymentsPage { payments, configured: provider.0.is_some(), nav };
    Ok(Page::view("certificates/payments", "Payments", view))
}

/// Staff refund a payment through the provider; the track and certificate go at once.
#[post("/staff/payments/<id>/refund", data = "<_form>")]
pub async fn refund(
    db: &State<Db>,
    provider: &State<Payments>,
    _staff: StaffUser,
    trail: Trail<'_>,
    id: i64,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let Some(provider) = provider.0.clone() else { return Err(AppError::NotFound) };
    let payment = db.run(move |conn| Ok::<_, AppError>(payments::by_id(conn, id)?)).await?.ok_or(AppError::NotFound)?;
    trail.users(payment.user_id);
    let Some(reference) = payment.refundable_ref().map(str::to_string) else {
        return Ok(Flash::error("/staff/payments", "Only a paid payment can be refunded."));
    };
    if let Err(e) = provider.refund(&reference).await {
        tracing::error!(error = %e, "refund failed");
        return Ok(Flash::error("/staff/payments", "The payment service refused the refund; nothing changed."));
    }
    db.run(move |conn| Ok::<_, AppError>(payments::refunded(conn, &reference, now())?)).await?;
    Ok(Flash::success(
        "/staff/payments",
        "Refunded: the learner is back on the audit track and any certificate is revoked.",
    ))
}

// ---------------------------------------------------------------- proctoring

/// Opens a proctoring session for a proctored exam and sends the learner to it.
#[post("/learn/<slug>/exams/<block_id>/proctoring", data = "<_form>")]
pub async fn start_proctoring(
    db: &State<Db>,
    proctoring: &State<super::proctoring::Proctoring>,
    config: &State<Config>,
    user: CurrentUser,
    slug: &str,
    block_id: i64,
    _form: CsrfOnly,
) -> AppResult<Either<Redirect, Flash>> {
    use crate::learning::content::BlockData;
    let (s, user_id) = (slug.to_string(), user.id);
    let (enrollment_id, unit_id, title) = db
        .run(move |conn| {
            let course = crate::learning::service::course_by_slug(conn, &s)?;
            let (e, _) = crate::learning::service::enrollment_in_course(conn, user_id, course.id)?
                .filter(|(e, _)| e.has_access(now()))
                .ok_or_else(|| AppError::Forbidden("Enroll in the course to take its exams.".into()))?;
            let block = crate::learning::service::block_in_course(conn, course.id, block_id)?;
            let BlockData::Quiz(quiz) = crate::learning::service::block_data(&block)? else {
                return Err(AppError::NotFound);
            };
            if !quiz.proctored {
                return Err(AppError::NotFound);
            }
            Ok((e.id, block.unit_id, quiz.title))
        })
        .await?;
    let back = format!("/learn/{slug}/units/{unit_id}#block-{block_id}");
    let Some(provider) = proctoring.provider.clone() else {
        return Ok(Either::Right(Flash::error(
            back,
            "This exam needs a proctoring service, which this site has not set up. Please contact the course team.",
        )));
    };
    let base = config.base_url();
    let request = super::proctoring::SessionRequest {
        exam_id: block_id.to_string(),
        exam_title: title,
        candidate: proctoring.candidate(user_id),
        callback_url: format!("{base}/proctoring/callback"),
        return_url: format!("{base}{back}"),
    };
    let created = match provider.create_session(&request).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "opening a proctoring session failed");
            return Ok(Either::Right(Flash::error(
                back,
                "The proctoring service is not answering; please try again in a few minutes.",
            )));
        }
    };
    db.run(move |conn| {
        super::proctoring::record(conn, enrollment_id, block_id, &created, now()).map_err(AppError::from)
    })
    .await?;
    // A page on the site links to the service: browsers refuse a form's
    // redirect to an origin the site's form-action does not list.
    Ok(Either::Left(Redirect::to(format!("/learn/{slug}/exams/{block_id}/proctoring"))))
}

/// The learner's open proctoring session for an exam, with the link to the service.
#[get("/learn/<slug>/exams/<block_id>/proctoring")]
pub async fn proctoring_page(db: &State<Db>, user: CurrentUser, slug: &str, block_id: i64) -> AppResult<Page> {
    use crate::db::schema::proctoring_sessions;
    let (s, user_id) = (slug.to_string(), user.id);
    let ctx = db
        .run(move |conn| {
            let course = crate::learning::service::course_by_slug(conn, &s)?;
            let (e, _) =
                crate::learning::service::enrollment_in_course(conn, user_id, course.id)?.ok_or(AppError::NotFound)?;
            let block = crate::learning::service::block_in_course(conn, course.id, block_id)?;
            let session: Option<(String, String)> = proctoring_sessions::table
                .filter(proctoring_sessions::enrollment_id.eq(e.id))
                .filter(proctoring_sessions::block_id.eq(block_id))
                .order(proctoring_sessions::id.desc())
                .select((proctoring_sessions::launch_url, proctoring_sessions::status))
                .first(conn)
                .optional()?;
            let (launch_url, status) = session.ok_or(AppError::NotFound)?;
            Ok::<_, AppError>(views::ProctoringPage {
                launch_url,
                open: status == super::proctoring::status::OPEN,
                status,
                back: format!("/learn/{s}/units/{}#block-{block_id}", block.unit_id),
                course: course.title,
            })
        })
        .await?;
    Ok(Page::view("certificates/proctoring", "Proctored exam", ctx))
}

/// The header a proctoring callback is signed in.
pub struct ProctoringSignature(Option<String>);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for ProctoringSignature {
    type Error = ();
    async fn from_request(req: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::request::Outcome::Success(ProctoringSignature(
            req.headers().get_one("Proctoring-Signature").map(str::to_string),
        ))
    }
}

/// The proctoring service's verdict on a session: signature checked, applied once.
#[post("/proctoring/callback", data = "<body>")]
pub async fn proctoring_callback(
    db: &State<Db>,
    proctoring: &State<super::proctoring::Proctoring>,
    signature: ProctoringSignature,
    body: Data<'_>,
) -> AppResult<Json<Value>> {
    let Some(provider) = proctoring.provider.clone() else { return Err(AppError::NotFound) };
    let body = body.open(64.kibibytes()).into_bytes().await.map_err(|e| AppError::Internal(e.to_string()))?;
    if !body.is_complete() {
        return Err(AppError::BadRequest("The callback is larger than 64 KiB.".into()));
    }
    let outcome = provider
        .verify_callback(signature.0.as_deref(), &body, chrono::Utc::now().timestamp())
        .map_err(|e| AppError::BadRequest(format!("Callback refused: {e}.")))?;
    let applied = db.run(move |conn| super::proctoring::apply(conn, &outcome, now()).map_err(AppError::from)).await?;
    Ok(Json(json!({ "received": true, "applied": applied })))
}
