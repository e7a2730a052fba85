//! Payments (CRT-1) behind `PaymentProvider`, with Stripe Checkout: the
//! learner pays on the provider's page, so no card number ever reaches
//! Lyceum. A payment is fulfilled once, by the signed webhook or by the
//! learner's return (whichever comes first asks the provider), and undone by
//! a refund. Sponsors buy seats the same way.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{CResult, CertError};
use crate::db::schema::{course_runs, courses, payment_events, payments, users};
use crate::db::{Conn, is_unique_violation};

pub mod status {
    pub const PENDING: &str = "pending";
    pub const PAID: &str = "paid";
    pub const REFUNDED: &str = "refunded";
    pub const EXPIRED: &str = "expired";
}

pub mod purpose {
    /// A learner's verified track in one run.
    pub const VERIFIED: &str = "verified";
    /// Seats a sponsor buys in one run.
    pub const SEATS: &str = "seats";
}

/// What a checkout is for, as the provider shows it.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub description: String,
    pub unit_amount_cents: i64,
    pub quantity: i64,
    pub currency: String,
    pub customer_email: String,
    /// Our reference, echoed back by the provider.
    pub reference: String,
    /// `{CHECKOUT_SESSION_ID}` is replaced by the provider.
    pub success_url: String,
    pub cancel_url: String,
}

#[derive(Debug, Clone)]
pub struct Checkout {
    pub id: String,
    pub url: String,
}

/// The provider's view of a checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutState {
    pub paid: bool,
    pub payment_ref: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
}

/// A webhook event that passed the signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    CheckoutCompleted {
        id: String,
        checkout_id: String,
        state: CheckoutState,
    },
    CheckoutExpired {
        id: String,
        checkout_id: String,
    },
    Refunded {
        id: String,
        payment_ref: String,
    },
    /// Signed and well formed, but nothing Lyceum acts on.
    Other {
        id: String,
        kind: String,
    },
}

impl Event {
    pub fn id(&self) -> &str {
        match self {
            Event::CheckoutCompleted { id, .. }
            | Event::CheckoutExpired { id, .. }
            | Event::Refunded { id, .. }
            | Event::Other { id, .. } => id,
        }
    }
    fn kind(&self) -> &str {
        match self {
            Event::CheckoutCompleted { .. } => "checkout.session.completed",
            Event::CheckoutExpired { .. } => "checkout.session.expired",
            Event::Refunded { .. } => "charge.refunded",
            Event::Other { kind, .. } => kind,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing or malformed signature header")]
    Malformed,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the signature is too old or from the future")]
    Stale,
    #[error("the event is not valid JSON of the expected shape")]
    BadEvent,
}

#[rocket::async_trait]
pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<Checkout, String>;
    async fn checkout_state(&self, checkout_id: &str) -> Result<CheckoutState, String>;
    async fn refund(&self, payment_ref: &str) -> Result<(), String>;
    /// Origins of the provider's checkout pages, which forms on the site lead to.
    fn checkout_origins(&self) -> Vec<String>;
    /// Checks the signature of a webhook delivery and parses it; `now` in Unix seconds.
    fn verify_webhook(&self, signature: Option<&str>, body: &[u8], now: i64) -> Result<Event, WebhookError>;
}

/// Stripe, through its REST API (form-encoded requests, JSON answers).
pub struct Stripe {
    api_base: String,
    secret_key: String,
    webhook_secret: String,
    http: reqwest::Client,
    /// Why the configured API base may not be reached, if it may not.
    refused: Option<String>,
}

pub use crate::config::STRIPE_API;

/// Signatures older (or newer) than this are refused, as Stripe's own libraries do.
pub const TOLERANCE_SECS: i64 = 300;

impl Stripe {
    pub fn new(api_base: &str, secret_key: &str, webhook_secret: &str, outbound: &crate::net::Outbound) -> Stripe {
        Stripe {
            refused: outbound.refusal(api_base),
            api_base: api_base.trim_end_matches('/').to_string(),
            secret_key: secret_key.to_string(),
            webhook_secret: webhook_secret.to_string(),
            http: outbound.client_builder().timeout(std::time::Duration::from_secs(20)).build().unwrap_or_default(),
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        if let Some(refused) = &self.refused {
            return Err(format!("Stripe: {refused}"));
        }
        let response = request.bearer_auth(&self.secret_key).send().await.map_err(|e| format!("Stripe: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("Stripe answered {status} with no JSON: {e}"))?;
        if !status.is_success() {
            let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
            return Err(format!("Stripe answered {status}: {message}"));
        }
        Ok(body)
    }
}

fn checkout_state(session: &Value) -> CheckoutState {
    CheckoutState {
        paid: session["payment_status"].as_str() == Some("paid"),
        payment_ref: session["payment_intent"].as_str().map(str::to_string),
        amount_cents: session["amount_total"].as_i64().unwrap_or(0),
        currency: session["currency"].as_str().unwrap_or("").to_ascii_uppercase(),
    }
}

/// `t=…,v1=…` checked over `t.body` with HMAC-SHA256, within the tolerance.
pub fn check_signature(secret: &str, header: Option<&str>, body: &[u8], now: i64) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::Malformed)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(hex::decode(v).map_err(|_| WebhookError::Malformed)?),
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, candidates.is_empty()) else { return Err(WebhookError::Malformed) };
    let verified = candidates.iter().any(|c| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(c).is_ok()
    });
    if !verified {
        return Err(WebhookError::BadSignature);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: Value,
}

#[rocket::async_trait]
impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn create_checkout(&self, r: &CheckoutRequest) -> Result<Checkout, String> {
        let form = [
            ("mode", "payment".to_string()),
            ("line_items[0][price_data][currency]", r.currency.to_ascii_lowercase()),
            ("line_items[0][price_data][unit_amount]", r.unit_amount_cents.to_string()),
            ("line_items[0][price_data][product_data][name]", r.description.clone()),
            ("line_items[0][quantity]", r.quantity.to_string()),
            ("customer_email", r.customer_email.clone()),
            ("client_reference_id", r.reference.clone()),
            ("metadata[lyceum_reference]", r.reference.clone()),
            ("success_url", r.success_url.clone()),
            ("cancel_url", r.cancel_url.clone()),
        ];
        let body = self.call(self.http.post(format!("{}/v1/checkout/sessions", self.api_base)).form(&form)).await?;
        match (body["id"].as_str(), body["url"].as_str()) {
            (Some(id), Some(url)) => Ok(Checkout { id: id.to_string(), url: url.to_string() }),
            _ => Err("Stripe returned a checkout session without id or url".into()),
        }
    }

    async fn checkout_state(&self, checkout_id: &str) -> Result<CheckoutState, String> {
        let id: String = checkout_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let body = self.call(self.http.get(format!("{}/v1/checkout/sessions/{id}", self.api_base))).await?;
        Ok(checkout_state(&body))
    }

    async fn refund(&self, payment_ref: &str) -> Result<(), String> {
        self.call(self.http.post(format!("{}/v1/refunds", self.api_base)).form(&[("payment_intent", payment_ref)]))
            .await
            .map(|_| ())
    }

    fn checkout_origins(&self) -> Vec<String> {
        if self.api_base == STRIPE_API {
            return vec!["https://checkout.stripe.com".into()];
        }
        // Another address (a test double, a proxy) serves its own checkout pages.
        match url::Url::parse(&self.api_base) {
            Ok(u) => vec![u.origin().ascii_serialization()],
            Err(_) => Vec::new(),
        }
    }

    fn verify_webhook(&self, signature: Option<&str>, body: &[u8], now: i64) -> Result<Event, WebhookError> {
        check_signature(&self.webhook_secret, signature, body, now)?;
        let raw: RawEvent = serde_json::from_slice(body).map_err(|_| WebhookError::BadEvent)?;
        let object = &raw.data.object;
        let text = |key: &str| object[key].as_str().map(str::to_string).ok_or(WebhookError::BadEvent);
        Ok(match raw.kind.as_str() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                Event::CheckoutCompleted { id: raw.id, checkout_id: text("id")?, state: checkout_state(object) }
            }
            "checkout.session.expired" => Event::CheckoutExpired { id: raw.id, checkout_id: text("id")? },
            // Only a full refund gives the track back.
            "charge.refunded" if object["refunded"].as_bool() == Some(true) => {
                Event::Refunded { id: raw.id, payment_ref: text("payment_intent")? }
            }
            _ => Event::Other { id: raw.id, kind: raw.kind },
        })
    }
}

/// The configured provider, if any: without one, buying is hidden.
#[derive(Clone, Default)]
pub struct Payments(pub Option<std::sync::Arc<dyn PaymentProvider>>);

impl Payments {
    pub fn checkout_origins(&self) -> Vec<String> {
        self.0.as_ref().map(|p| p.checkout_origins()).unwrap_or_default()
    }

    pub fn from_config(config: &crate::config::Config) -> Payments {
        match (&config.stripe_secret_key, &config.stripe_webhook_secret) {
            (Some(key), Some(hook)) if !key.trim().is_empty() && !hook.trim().is_empty() => {
                Payments(Some(std::sync::Arc::new(Stripe::new(
                    &config.stripe_api_base,
                    key,
                    hook,
                    &crate::net::Outbound::new(&config.outbound_allow).unwrap_or_default(),
                ))))
            }
            _ => Payments(None),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payments)]
pub struct Payment {
    pub id: i64,
    pub user_id: Option<i64>,
    pub run_id: Option<i64>,
    pub purpose: String,
    pub partner_id: Option<i64>,
    pub quantity: i32,
    pub provider: String,
    pub checkout_id: String,
    pub payment_ref: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    pub refunded_at: Option<NaiveDateTime>,
}

impl Payment {
    /// The provider's reference of a paid payment, which a refund names; `None`
    /// when there is nothing to refund (the staff page offers the button on it).
    pub fn refundable_ref(&self) -> Option<&str> {
        self.payment_ref.as_deref().filter(|_| self.status == status::PAID)
    }

    pub fn refundable(&self) -> bool {
        self.refundable_ref().is_some()
    }
}

/// What a learner would pay for the verified track of a run, with the checks
/// that they may: a price exists, enrollment is open, not already verified.
pub struct Quote {
    pub run_id: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub description: String,
    pub course_slug: String,
}

pub fn quote_verified(
    conn: &mut Conn,
    user_id: i64,
    course_slug: &str,
    run_key: &str,
    now: NaiveDateTime,
) -> CResult<Quote> {
    let (run, title): (crate::learning::model::Run, String) = course_runs::table
        .inner_join(courses::table)
        .filter(courses::slug.eq(course_slug))
        .filter(courses::published.eq(true))
        .filter(course_runs::run_key.eq(run_key))
        .select((crate::learning::model::Run::as_select(), courses::title))
        .first(conn)
        .optional()?
        .ok_or(CertError::NotFound)?;
    let verified: Option<bool> =
        users::table.find(user_id).select(users::email_verified_at.is_not_null()).first(conn).optional()?;
    if verified != Some(true) {
        return Err(CertError::Forbidden("Please confirm your email address before buying a certificate.".into()));
    }
    let Some(price) = run.verified_price_cents.filter(|p| *p > 0) else {
        return Err(CertError::Invalid("This run offers no paid verified track.".into()));
    };
    if !run.enrollment_open(now) {
        return Err(CertError::Invalid("Enrollment in this run is closed.".into()));
    }
    let track: Option<String> = crate::db::schema::enrollments::table
        .filter(crate::db::schema::enrollments::user_id.eq(user_id))
        .filter(crate::db::schema::enrollments::run_id.eq(run.id))
        .filter(crate::db::schema::enrollments::status.eq(crate::learning::model::EnrollmentStatus::Active.as_str()))
        .select(crate::db::schema::enrollments::track)
        .first(conn)
        .optional()?;
    if track.as_deref() == Some("verified") {
        return Err(CertError::Invalid("You are already on the verified track of this run.".into()));
    }
    Ok(Quote {
        run_id: run.id,
        amount_cents: i64::from(price),
        currency: run.currency.to_ascii_uppercase(),
        description: format!("Verified certificate: {title} ({})", run.run_key),
        course_slug: course_slug.to_string(),
    })
}

/// Records a checkout the provider opened.
pub struct NewPayment<'a> {
    pub user_id: i64,
    pub run_id: i64,
    pub purpose: &'a str,
    pub partner_id: Option<i64>,
    pub quantity: i32,
    pub provider: &'a str,
    pub checkout_id: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
}

pub fn record_checkout(conn: &mut Conn, p: &NewPayment<'_>, now: NaiveDateTime) -> QueryResult<i64> {
    diesel::insert_into(payments::table)
        .values((
            payments::user_id.eq(p.user_id),
            payments::run_id.eq(p.run_id),
            payments::purpose.eq(p.purpose),
            payments::partner_id.eq(p.partner_id),
            payments::quantity.eq(p.quantity),
            payments::provider.eq(p.provider),
            payments::checkout_id.eq(p.checkout_id),
            payments::amount_cents.eq(p.amount_cents),
            payments::currency.eq(p.currency),
            payments::status.eq(status::PENDING),
            payments::created_at.eq(now),
        ))
        .returning(payments::id)
        .get_result(conn)
}

pub fn by_checkout(conn: &mut Conn, checkout_id: &str) -> QueryResult<Option<Payment>> {
    payments::table.filter(payments::checkout_id.eq(checkout_id)).select(Payment::as_select()).first(conn).optional()
}

pub fn by_id(conn: &mut Conn, id: i64) -> QueryResult<Option<Payment>> {
    payments::table.find(id).select(Payment::as_select()).first(conn).optional()
}

/// What became of a fulfilment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fulfilled {
    Now,
    Already,
    /// The provider's amount or currency is not what the checkout asked.
    Mismatch,
    Unknown,
}

/// Marks a checkout paid and gives what was bought: the verified track (and a
/// certificate already earned) or the sponsor's seats; emails the receipt.
/// Safe to call twice: the second call changes nothing.
pub fn fulfil(conn: &mut Conn, checkout_id: &str, state: &CheckoutState, now: NaiveDateTime) -> QueryResult<Fulfilled> {
    if !state.paid {
        return Ok(Fulfilled::Unknown);
    }
    crate::db::transaction(conn, |conn| {
        // The claim comes first: a write takes SQLite's write lock at once
        // (waiting out a concurrent one), so the webhook and the learner's
        // return cannot both start from a stale read.
        let claimed = diesel::update(
            payments::table
                .filter(payments::checkout_id.eq(checkout_id))
                .filter(payments::status.eq(status::PENDING))
                .filter(payments::amount_cents.eq(state.amount_cents))
                .filter(payments::currency.eq(state.currency.to_ascii_uppercase())),
        )
        .set((
            payments::status.eq(status::PAID),
            payments::paid_at.eq(now),
            payments::payment_ref.eq(&state.payment_ref),
        ))
        .execute(conn)?;
        let Some(p) = by_checkout(conn, checkout_id)? else { return Ok(Fulfilled::Unknown) };
        if claimed == 0 {
            if p.status == status::PENDING {
                tracing::warn!(
                    checkout_id,
                    expected = p.amount_cents,
                    got = state.amount_cents,
                    "payment amount mismatch"
                );
                return Ok(Fulfilled::Mismatch);
            }
            return Ok(Fulfilled::Already);
        }
        let (Some(user_id), Some(run_id)) = (p.user_id, p.run_id) else { return Ok(Fulfilled::Now) };
        let (title, slug): (String, String) = course_runs::table
            .inner_join(courses::table)
            .filter(course_runs::id.eq(run_id))
            .select((courses::title, courses::slug))
            .first(conn)?;
        let path = match p.purpose.as_str() {
            purpose::SEATS => format!("/partners/{}", give_seats(conn, &p, user_id, run_id, now)?),
            _ => {
                super::grant_verified(conn, user_id, run_id, now)?;
                format!("/learn/{slug}")
            }
        };
        let (email, first): (String, String) =
            users::table.find(user_id).select((users::email, users::first_name)).first(conn)?;
        crate::notify::enqueue_email(
            conn,
            &email,
            "Your receipt from Lyceum",
            "payment_receipt",
            json!({
                "first_name": first,
                "item": if p.purpose == purpose::SEATS { format!("{} seat(s) in {title}", p.quantity) } else { format!("Verified certificate track: {title}") },
                "amount": money(p.amount_cents, &p.currency),
                "reference": p.payment_ref.clone().or(state.payment_ref.clone()).unwrap_or_else(|| p.checkout_id.clone()),
                "receipt_no": p.id,
                "paid_at": crate::web::format::moment(now),
                "path": path,
            }),
        )?;
        Ok(Fulfilled::Now)
    })
}

/// Allocates the seats bought; returns the sponsor's slug.
fn give_seats(conn: &mut Conn, p: &Payment, user_id: i64, run_id: i64, now: NaiveDateTime) -> QueryResult<String> {
    let Some(partner_id) = p.partner_id else { return Ok(String::new()) };
    let partner = crate::consent::partners::by_id(conn, partner_id)?;
    let request = crate::consent::sponsors::SeatRequest {
        run_id,
        seats: p.quantity,
        expires_at: now + Duration::days(365),
        note: "bought online",
        by: Some(user_id),
    };
    crate::consent::sponsors::allocate(conn, &partner, &request, now)
        .map(|_| partner.slug.clone())
        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
}

/// A refund: the payment is marked refunded, the verified track goes back to
/// audit and a certificate is revoked. Idempotent.
pub fn refunded(conn: &mut Conn, payment_ref: &str, now: NaiveDateTime) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        // Claim first, as in `fulfil`: a refund is applied once.
        let claimed = diesel::update(
            payments::table.filter(payments::payment_ref.eq(payment_ref)).filter(payments::status.eq(status::PAID)),
        )
        .set((payments::status.eq(status::REFUNDED), payments::refunded_at.eq(now)))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(false);
        }
        let p: Payment = payments::table
            .filter(payments::payment_ref.eq(payment_ref))
            .filter(payments::refunded_at.eq(now))
            .select(Payment::as_select())
            .first(conn)?;
        if p.purpose == purpose::VERIFIED
            && let (Some(user_id), Some(run_id)) = (p.user_id, p.run_id)
        {
            super::downgrade(conn, user_id, run_id, "The payment for this certificate was refunded.", now)?;
        }
        Ok(true)
    })
}

/// What the webhook did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Applied,
    /// This event id was processed before; nothing changed.
    Duplicate,
    Ignored,
}

/// Applies a verified webhook event once per event id.
pub fn handle_event(conn: &mut Conn, event: &Event, now: NaiveDateTime) -> QueryResult<Handled> {
    crate::db::transaction(conn, |conn| {
        let inserted = diesel::insert_into(payment_events::table)
            .values((
                payment_events::event_id.eq(event.id()),
                payment_events::kind.eq(event.kind()),
                payment_events::received_at.eq(now),
            ))
            .execute(conn);
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(Handled::Duplicate),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        Ok(match event {
            Event::CheckoutCompleted { checkout_id, state, .. } => match fulfil(conn, checkout_id, state, now)? {
                Fulfilled::Now | Fulfilled::Already => Handled::Applied,
                Fulfilled::Mismatch | Fulfilled::Unknown => Handled::Ignored,
            },
            Event::CheckoutExpired { checkout_id, .. } => {
                diesel::update(
                    payments::table
                        .filter(payments::checkout_id.eq(checkout_id))
                        .filter(payments::status.eq(status::PENDING)),
                )
                .set(payments::status.eq(status::EXPIRED))
                .execute(conn)?;
                Handled::Applied
            }
            Event::Refunded { payment_ref, .. } => {
                if refunded(conn, payment_ref, now)? {
                    Handled::Applied
                } else {
                    Handled::Ignored
                }
            }
            Event::Other { .. } => Handled::Ignored,
        })
    })
}

/// Runs whose verified track has a price, open for enrollment: what sponsors can buy seats in.
pub fn priced_runs(conn: &mut Conn) -> QueryResult<Vec<Value>> {
    let now = crate::db::now();
    let rows: Vec<(crate::learning::model::Run, String)> = course_runs::table
        .inner_join(courses::table)
        .filter(courses::published.eq(true))
        .filter(course_runs::verified_price_cents.gt(0))
        .order((courses::title.asc(), course_runs::run_key.asc()))
        .select((crate::learning::model::Run::as_select(), courses::title))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(r, _)| r.enrollment_open(now))
        .map(|(r, title)| {
            json!({
                "id": r.id, "label": format!("{title} ({}): {} per seat", r.run_key,
                    money(i64::from(r.verified_price_cents.unwrap_or(0)), &r.currency)),
            })
        })
        .collect())
}

/// What a sponsor pays for `seats` seats in a run.
pub fn quote_seats(conn: &mut Conn, run_id: i64, seats: i32, now: NaiveDateTime) -> CResult<Quote> {
    if !(1..=1000).contains(&seats) {
        return Err(CertError::Invalid("Buy between 1 and 1,000 seats at a time.".into()));
    }
    let (run, title, slug): (crate::learning::model::Run, String, String) = course_runs::table
        .inner_join(courses::table)
        .filter(course_runs::id.eq(run_id))
        .filter(courses::published.eq(true))
        .select((crate::learning::model::Run::as_select(), courses::title, courses::slug))
        .first(conn)
        .optional()?
        .ok_or_else(|| CertError::Invalid("Choose a course run.".into()))?;
    let Some(price) = run.verified_price_cents.filter(|p| *p > 0) else {
        return Err(CertError::Invalid("This run has no priced verified track.".into()));
    };
    if !run.enrollment_open(now) {
        return Err(CertError::Invalid("Enrollment in this run is closed.".into()));
    }
    Ok(Quote {
        run_id,
        amount_cents: i64::from(price),
        currency: run.currency.to_ascii_uppercase(),
        description: format!("Verified seat: {title} ({})", run.run_key),
        course_slug: slug,
    })
}

pub fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {}", cents / 100, cents % 100, currency.to_ascii_uppercase())
}

/// A payment on the staff page: with who paid (username) and for which course.
pub type StaffPayment = (Payment, Option<String>, Option<String>);

/// Payments for the staff page, newest first.
pub fn recent(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<StaffPayment>> {
    payments::table
        .left_join(users::table)
        // Flat joins: SQLite would build all of a nested `runs JOIN courses` first.
        .left_join(course_runs::table)
        .left_join(courses::table.on(courses::id.eq(course_runs::course_id)))
        .order(payments::id.desc())
        .offset(offset)
        .limit(limit)
        .select((Payment::as_select(), users::username.nullable(), courses::title.nullable()))
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_over_timestamp_and_body_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("whsec_x", 1_000, body);
        assert_eq!(check_signature("whsec_x", Some(&header), body, 1_010), Ok(()));
        assert_eq!(check_signature("whsec_y", Some(&header), body, 1_010), Err(WebhookError::BadSignature));
        assert_eq!(check_signature("whsec_x", Some(&header), b"{}", 1_010), Err(WebhookError::BadSignature));
        assert_eq!(check_signature("whsec_x", Some(&header), body, 1_000 + 301), Err(WebhookError::Stale));
        assert_eq!(check_signature("whsec_x", Some("t=1000"), body, 1_000), Err(WebhookError::Malformed));
        assert_eq!(check_signature("whsec_x", None, body, 1_000), Err(WebhookError::Malformed));
        // A second signature (during secret rotation) is accepted when one matches.
        let two = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(check_signature("whsec_x", Some(&two), body, 1_000), Ok(()));
    }
}
