//! Partner push destinations and their outbox in the browser. Operator staff
//! add destinations (they hold credentials and reach outside addresses),
//! pause them, push at once and replay dead sends; a partner's admins see
//! the destinations and every send with its state.

use crate::web::trail::Trail;
use rand::Rng;
use rand::distributions::Alphanumeric;
use rocket::{FromForm, State, post};

use super::partner_pages::{PartnerLists, managed, partner_context, staff_only};
use super::push::{self, Destination, NewDestination, SendView, Target};
use super::views::{DestinationItem, NewSecret, SendItem};
use crate::db::{Db, now};
use crate::web::csrf::CsrfOnly;
use crate::web::format::Moment;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

/// A destination as the partner page lists it.
pub(super) fn destination_item(d: Destination) -> DestinationItem {
    let target = d.target().map(|t| t.describe()).unwrap_or_else(|e| e);
    DestinationItem {
        id: d.id,
        name: d.name,
        target,
        records: d.record_kind,
        format: d.format,
        every_minutes: d.every_minutes,
        enabled: d.enabled,
        next_run: Moment(d.next_run_at),
    }
}

/// A send as the partner page lists it.
pub(super) fn send_item(s: SendView) -> SendItem {
    let shown = s.rejections.len() as i64;
    SendItem {
        id: s.id,
        destination: s.destination,
        key: s.idempotency_key,
        trigger: s.trigger,
        status: s.status,
        attempts: s.attempts,
        max_attempts: s.max_attempts,
        last_error: s.last_error,
        next_attempt: s.next_attempt_at.map(Moment),
        digest: s.payload_digest.as_deref().map(|d| d[..d.len().min(16)].to_string()),
        records: s.record_count,
        location: s.location,
        created: Moment(s.created_at),
        delivered: s.delivered_at.map(Moment),
        replayable: s.replayable,
        rejected: (s.rejected > 0).then(|| match s.rejected {
            1 => "1 statement rejected".to_string(),
            n => format!("{n} statements rejected"),
        }),
        rejections: s.rejections,
        rejections_hidden: (s.rejected > shown).then(|| s.rejected - shown),
    }
}

#[derive(FromForm)]
pub struct DestinationForm {
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    records: String,
    #[field(default = String::new())]
    format: String,
    every_minutes: Option<i32>,
    #[field(default = String::new())]
    endpoint: String,
    #[field(default = String::new())]
    region: String,
    #[field(default = String::new())]
    bucket: String,
    #[field(default = String::new())]
    prefix: String,
    #[field(default = String::new())]
    access_key_id: String,
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    secret: String,
}

impl DestinationForm {
    fn target(&self) -> Option<Target> {
        let endpoint = self.endpoint.trim().to_string();
        Some(match self.kind.as_str() {
            "s3" => Target::S3 {
                endpoint: (!endpoint.is_empty()).then_some(endpoint),
                region: self.region.trim().to_string(),
                bucket: self.bucket.trim().to_string(),
                prefix: self.prefix.trim().to_string(),
                access_key_id: self.access_key_id.trim().to_string(),
            },
            "lrs" => Target::Lrs { endpoint, username: self.username.trim().to_string() },
            "webhook" => Target::Webhook { url: endpoint },
            _ => return None,
        })
    }
}

#[post("/partners/<slug>/destinations", data = "<form>")]
pub async fn create(
    db: &State<Db>,
    outbound: &State<crate::net::Outbound>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<DestinationForm>,
) -> AppResult<rocket::Either<Page, Flash>> {
    trail.partner_page(slug);
    staff_only(&user)?;
    let outbound = outbound.inner().clone();
    let slug = slug.to_string();
    let f = form.form;
    let user = user.0;
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        let Some(target) = f.target() else {
            return Ok(rocket::Either::Right(Flash::error(back, "Choose S3, an LRS or a webhook.")));
        };
        // A webhook's signing secret is ours to make; shown once, like an API key.
        let generated = (matches!(target, Target::Webhook { .. }) && f.secret.trim().is_empty()).then(|| {
            let token: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
            format!("whsec_{token}")
        });
        let secret = generated.clone().unwrap_or_else(|| f.secret.clone());
        let new = NewDestination {
            name: &f.name,
            target,
            record_kind: f.records.trim(),
            format: f.format.trim(),
            secret: &secret,
            every_minutes: f.every_minutes.unwrap_or(1440),
            by: Some(user.id),
        };
        match push::create(conn, &p, &new, now(), &outbound)? {
            Err(message) => Ok(rocket::Either::Right(Flash::error(back, message))),
            Ok(d) => match generated {
                Some(secret) => {
                    let mut view = partner_context(conn, &user, &p, None, PartnerLists::first())?;
                    view.new_secret = Some(NewSecret { destination: d.name, secret });
                    Ok(rocket::Either::Left(Page::view("consent/partner", p.name.clone(), view)))
                }
                None => Ok(rocket::Either::Right(Flash::success(
                    back,
                    format!("“{}” added; its first push is queued within a minute.", d.name),
                ))),
            },
        }
    })
    .await
}

#[derive(FromForm)]
pub struct EnabledForm {
    #[field(default = String::new())]
    enabled: String,
}

#[post("/partners/<slug>/destinations/<id>/schedule", data = "<form>")]
pub async fn schedule(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    form: CsrfForm<EnabledForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    staff_only(&user)?;
    let slug = slug.to_string();
    let enabled = match form.form.enabled.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(AppError::BadRequest("Say enabled=on or enabled=off.".into())),
    };
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        if !push::set_enabled(conn, &p, id, enabled, now())? {
            return Err(AppError::NotFound);
        }
        Ok(Flash::success(back, if enabled { "Pushes resumed; the next one is due now." } else { "Pushes paused." }))
    })
    .await
}

#[post("/partners/<slug>/destinations/<id>/push", data = "<_form>")]
pub async fn push_now(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    staff_only(&user)?;
    let slug = slug.to_string();
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        let dest = push::destination(conn, id).ok().filter(|d| d.partner_id == p.id).ok_or(AppError::NotFound)?;
        push::push_now(conn, &dest, user.id, now())?;
        Ok(Flash::success(back, format!("A push to “{}” is queued.", dest.name)))
    })
    .await
}

#[post("/partners/<slug>/sends/<id>/replay", data = "<_form>")]
pub async fn replay(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    staff_only(&user)?;
    let slug = slug.to_string();
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        Ok(if push::replay(conn, &p, id)? {
            Flash::success(back, "The send is queued again under the same idempotency key.")
        } else {
            Flash::error(back, "Only a send in the dead-letter list can be replayed.")
        })
    })
    .await
}
