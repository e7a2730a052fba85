//! The partner pull API: enrollments, progress and results of what the gate
//! lets through, streamed as CSV or JSON Lines page by page (memory stays
//! flat), resumable with the cursor every record carries (`since`).
//! Authenticated by partner API key (`Authorization: Bearer lyk_…`), scoped
//! to that partner: a member's key reaches only its own courses (SEC-3).

use partner_adapters::{ExportOptions, Format, RecordKind};
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::stream::ByteStream;
use rocket::serde::json::Json;
use rocket::{State, get};

use super::partners::{self, ApiKey, KeyCheck, Partner};
use super::sharing::{self, Want};
use crate::config::Config;
use crate::db::{Db, now};
use crate::web::error::set_detail;
use crate::web::{AppError, AppResult};

/// A request authenticated by a live partner API key.
pub struct PartnerKey {
    pub partner: Partner,
    pub key: ApiKey,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PartnerKey {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let Some(presented) = req.headers().get_one("Authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
            set_detail(req, "Send your partner API key in the header `Authorization: Bearer <key>`.");
            return Outcome::Error((Status::Unauthorized, ()));
        };
        let Some(db) = req.rocket().state::<Db>() else { return Outcome::Error((Status::InternalServerError, ())) };
        let presented = presented.trim().to_string();
        match db.run(move |conn| Ok::<_, AppError>(partners::authenticate(conn, &presented, now())?)).await {
            Ok(KeyCheck::Valid(partner, key)) => Outcome::Success(PartnerKey { partner: *partner, key: *key }),
            Ok(KeyCheck::Revoked) => {
                set_detail(req, "This API key has been revoked. Ask the partner's administrator for a new one.");
                Outcome::Error((Status::Unauthorized, ()))
            }
            Ok(KeyCheck::Unknown) => {
                set_detail(req, "This API key is not valid.");
                Outcome::Error((Status::Unauthorized, ()))
            }
            Err(e) => {
                tracing::error!(error = %e, "API key check failed");
                Outcome::Error((Status::InternalServerError, ()))
            }
        }
    }
}

const PAGE: i64 = 1000;

#[get("/api/v1/exports/<kind>?<format>&<since>")]
pub async fn export(
    db: &State<Db>,
    config: &State<Config>,
    auth: PartnerKey,
    kind: &str,
    format: Option<&str>,
    since: Option<&str>,
) -> AppResult<(ContentType, ByteStream![Vec<u8>])> {
    let Some(record_kind) = RecordKind::parse(kind) else {
        return Err(AppError::NotFound);
    };
    let scope = match record_kind {
        RecordKind::Enrollment => "enrollments",
        RecordKind::Progress => "progress",
        RecordKind::Result => "results",
        // The departures feed has a route of its own.
        RecordKind::Departure => return Err(AppError::NotFound),
    };
    let format = match format.unwrap_or("csv") {
        "csv" => Format::Csv,
        "jsonl" => Format::JsonLines,
        other => {
            return Err(AppError::BadRequest(format!("Unknown format “{other}”. Use format=csv or format=jsonl.")));
        }
    };
    let after = match since {
        None | Some("") => 0,
        Some(c) => sharing::decode_cursor(c).ok_or_else(|| {
            AppError::BadRequest(
                "The `since` cursor is malformed. Pass the `cursor` value of the last record you received.".into(),
            )
        })?,
    };
    if !auth.key.allows(scope) {
        return Err(AppError::Forbidden(format!("This API key may not read {scope}.")));
    }
    let Some(purpose) = auth.partner.record_purpose() else {
        return Err(AppError::Forbidden("This partner has no export of course records.".into()));
    };
    let want = Want {
        enrollment: record_kind == RecordKind::Enrollment,
        progress: record_kind == RecordKind::Progress,
        result: record_kind == RecordKind::Result,
    };
    let base = config.base_url();
    let options = ExportOptions::new(record_kind, base.clone(), chrono::Utc::now());
    let mut adapter = format.adapter(&options);
    let content_type = if format == Format::Csv {
        ContentType::new("text", "csv").with_params(("charset", "utf-8"))
    } else {
        ContentType::new("application", "jsonl").with_params(("charset", "utf-8"))
    };
    let mut head = Vec::new();
    adapter.begin(&mut head).map_err(|e| AppError::Internal(e.to_string()))?;
    let db = db.inner().clone();
    let partner = auth.partner;
    let export_id = format!("api-{}", uuid::Uuid::new_v4());
    tracing::info!(partner = %partner.slug, export = %export_id, kind = scope, "partner export");
    Ok((
        content_type,
        ByteStream! {
            yield head;
            let mut after = after;
            loop {
                let (p, id, b) = (partner.clone(), export_id.clone(), base.clone());
                let page = db
                    .run(move |conn| {
                        let req = sharing::Request { partner: &p, purpose, want, after, limit: PAGE, export_id: &id, base_url: &b };
                        Ok::<_, AppError>(sharing::next_page(conn, &req, now())?)
                    })
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        // The status is sent already; the client resumes from its last cursor.
                        tracing::error!(error = %e, export = %export_id, "export stopped");
                        break;
                    }
                };
                let mut out = Vec::new();
                for shared in &page.shared {
                    for rec in shared.records() {
                        if let Err(e) = adapter.record(&rec, &mut out) {
                            tracing::error!(error = %e, "export record");
                        }
                    }
                }
                yield out;
                match page.next_after {
                    Some(n) => after = n,
                    None => break,
                }
            }
            let mut tail = Vec::new();
            if adapter.finish(&mut tail).is_ok() {
                yield tail;
            }
        },
    ))
}

/// The departures feed: what this partner must delete, oldest first, after
/// the `since` cursor (the `cursor` of the last departure received). Every
/// key of the partner may read it: whoever received records must learn
/// when they have to go. CSV ([`partner_adapters::tabular::DEPARTURE_COLUMNS`])
/// or JSON Lines (`"type": "departure"`). Each departure handed out is
/// written to the learner's disclosure log as a departure notice.
#[get("/api/v1/exports/departures?<format>&<since>")]
pub async fn departures(
    db: &State<Db>,
    config: &State<Config>,
    auth: PartnerKey,
    format: Option<&str>,
    since: Option<&str>,
) -> AppResult<(ContentType, ByteStream![Vec<u8>])> {
    let format = match format.unwrap_or("csv") {
        "csv" => Format::Csv,
        "jsonl" => Format::JsonLines,
        other => {
            return Err(AppError::BadRequest(format!("Unknown format “{other}”. Use format=csv or format=jsonl.")));
        }
    };
    let after = match since {
        None | Some("") => 0,
        Some(c) => sharing::decode_cursor(c).ok_or_else(|| {
            AppError::BadRequest(
                "The `since` cursor is malformed. Pass the `cursor` value of the last departure you received.".into(),
            )
        })?,
    };
    let base = config.base_url();
    let options = ExportOptions::new(RecordKind::Departure, base.clone(), chrono::Utc::now());
    let mut adapter = format.adapter(&options);
    let content_type = if format == Format::Csv {
        ContentType::new("text", "csv").with_params(("charset", "utf-8"))
    } else {
        ContentType::new("application", "jsonl").with_params(("charset", "utf-8"))
    };
    let mut head = Vec::new();
    adapter.begin(&mut head).map_err(|e| AppError::Internal(e.to_string()))?;
    let db = db.inner().clone();
    let partner = auth.partner;
    let export_id = format!("api-{}", uuid::Uuid::new_v4());
    tracing::info!(partner = %partner.slug, export = %export_id, "partner departures feed");
    Ok((
        content_type,
        ByteStream! {
            yield head;
            let mut after = after;
            loop {
                let (p, id, b) = (partner.clone(), export_id.clone(), base.clone());
                let page = db
                    .run(move |conn| {
                        Ok::<_, AppError>(super::departures::deliver(conn, &p, after, None, PAGE, &id, &b, now())?)
                    })
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, export = %export_id, "departures feed stopped");
                        break;
                    }
                };
                let mut out = Vec::new();
                for (_, d) in &page {
                    if let Err(e) = adapter.record(&partner_adapters::SharedRecord::Departure(d.clone()), &mut out) {
                        tracing::error!(error = %e, "departure record");
                    }
                }
                yield out;
                match page.last() {
                    Some((d, _)) if page.len() as i64 == PAGE => after = d.id,
                    _ => break,
                }
            }
            let mut tail = Vec::new();
            if adapter.finish(&mut tail).is_ok() {
                yield tail;
            }
        },
    ))
}

/// De-identified aggregates per course run for research partners (SHR-6):
/// counts under five and means over fewer than five learners are `null`.
#[get("/api/v1/aggregates")]
pub async fn aggregates(db: &State<Db>, auth: PartnerKey) -> AppResult<Json<serde_json::Value>> {
    if !auth.key.allows("aggregates") {
        return Err(AppError::Forbidden("This API key may not read aggregates.".into()));
    }
    if auth.partner.kind() != super::PartnerKind::Researcher {
        return Err(AppError::Forbidden("Aggregates are for research partners.".into()));
    }
    let runs = db.run(|conn| Ok::<_, AppError>(sharing::aggregates(conn, now())?)).await?;
    tracing::info!(partner = %auth.partner.slug, runs = runs.len(), "research aggregates");
    Ok(Json(serde_json::json!({
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "k_anonymity": super::report::K_ANONYMITY,
        "progress_buckets": sharing::PROGRESS_BUCKETS,
        "runs": runs,
    })))
}
