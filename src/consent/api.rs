//! The partner pull API: enrollments, progress and results of what the gate
//! lets through, streamed as CSV or JSON Lines page by page (memory stays
//! flat), resumable with the cursor every record carries (`since`).
//! Authenticated by partner API key (`Authorization: Bearer lyk_…`), scoped
//! to that partner: a member's key reaches only its own courses (SEC-3).
//! Exports go out through `feed`, so one cut short by a failure never ends
//! like a whole one, and a whole one carries figures the partner can check.

use crate::web::trail::{Subject, Trail};
use partner_adapters::{ExportOptions, Format, RecordKind};
use rocket::futures;
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{State, get};

use super::feed;
use super::partners::{self, ApiKey, KeyCheck, Partner};
use super::sharing::{self, Want};
use crate::config::Config;
use crate::db::{Db, now};
use crate::web::error::set_detail;
use crate::web::stream::Connection;
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
            Ok(KeyCheck::Valid(partner, key)) => {
                // The audit log names the key for requests it makes.
                req.local_cache(|| crate::web::trail::ApiCaller(Some((key.id, key.prefix.clone(), partner.id))));
                Outcome::Success(PartnerKey { partner: *partner, key: *key })
            }
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

/// The `format` of a pull: `csv` (the default) or `jsonl`.
fn pull_format(format: Option<&str>) -> AppResult<Format> {
    match format.unwrap_or("csv") {
        "csv" => Ok(Format::Csv),
        "jsonl" => Ok(Format::JsonLines),
        other => Err(AppError::BadRequest(format!("Unknown format “{other}”. Use format=csv or format=jsonl."))),
    }
}

/// The position a pull resumes after: 0 without `since`, else the one its cursor seals.
fn resume_after(since: Option<&str>, what: &str) -> AppResult<i64> {
    match since {
        None | Some("") => Ok(0),
        Some(c) => sharing::decode_cursor(c).ok_or_else(|| {
            AppError::BadRequest(format!(
                "The `since` cursor is malformed. Pass the `cursor` value of the last {what} you received."
            ))
        }),
    }
}

/// The position an export resumes after: the start without `since`, else the
/// one its cursor seals.
fn resume_position(since: Option<&str>) -> AppResult<sharing::Position> {
    match since {
        None | Some("") => Ok(sharing::Position::START),
        Some(c) => sharing::decode_position(c).map_err(|e| {
            AppError::BadRequest(match e {
                sharing::CursorError::Former => "The `since` cursor is from before exports went by learner, then \
                    enrollment (2026-12-08): it cannot resume in the new order. Pull the export from the start."
                    .into(),
                sharing::CursorError::Malformed => {
                    "The `since` cursor is malformed. Pass the `cursor` value of the last record you received.".into()
                }
            })
        }),
    }
}

fn pull_content_type(format: Format) -> ContentType {
    if format == Format::Csv {
        ContentType::new("text", "csv").with_params(("charset", "utf-8"))
    } else {
        ContentType::new("application", "jsonl").with_params(("charset", "utf-8"))
    }
}

#[get("/api/v1/exports/<kind>?<format>&<since>")]
#[allow(clippy::too_many_arguments)] // request guards, one each
pub async fn export(
    db: &State<Db>,
    config: &State<Config>,
    auth: PartnerKey,
    trail: Trail<'_>,
    connection: Connection,
    kind: &str,
    format: Option<&str>,
    since: Option<&str>,
) -> AppResult<feed::Streamed> {
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
    let format = pull_format(format)?;
    let after = resume_position(since)?;
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
    let content_type = pull_content_type(format);
    let mut head = Vec::new();
    adapter.begin(&mut head).map_err(|e| AppError::Internal(e.to_string()))?;
    let db = db.inner().clone();
    let partner = auth.partner;
    let export_id = format!("api-{}", uuid::Uuid::new_v4());
    tracing::info!(partner = %partner.slug, export = %export_id, kind = scope, "partner export");
    // Each learner in it is in their disclosure log under this export id.
    trail.add(Subject::of_partner(partner.id).item(format!("export {export_id} ({scope})")));
    let feed = feed::Feed {
        db: db.clone(),
        partner_id: partner.id,
        export_id: export_id.clone(),
        kind: scope.to_string(),
        format: format.as_str().to_string(),
        connection,
        content_type,
        summary_line: format == Format::JsonLines,
        since: since.filter(|s| !s.is_empty()).map(str::to_string),
    };
    // Page by page, each read (and its disclosures written) only when the
    // client has taken the one before.
    let pages = futures::stream::unfold(Some((after, adapter)), move |state| {
        let (db, partner, export_id, base) = (db.clone(), partner.clone(), export_id.clone(), base.clone());
        async move {
            let (after, mut adapter) = state?;
            let page = db
                .run(move |conn| {
                    let req = sharing::Request {
                        partner: &partner,
                        purpose,
                        want,
                        after,
                        limit: PAGE,
                        export_id: &export_id,
                        base_url: &base,
                    };
                    Ok::<_, AppError>(sharing::next_page(conn, &req, now())?)
                })
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => return Some((Err(e), None)),
            };
            let mut out = feed::Page { bytes: Vec::new(), records: 0, last_cursor: None };
            for rec in page.shared.iter().flat_map(|shared| shared.records()) {
                // A record left out would leave the export incomplete: fail it instead.
                if let Err(e) = adapter.record(&rec, &mut out.bytes) {
                    return Some((Err(AppError::Internal(format!("export record: {e}"))), None));
                }
                out.records += 1;
                out.last_cursor = Some(rec.cursor().to_string());
            }
            if page.next_after.is_none()
                && let Err(e) = adapter.finish(&mut out.bytes)
            {
                return Some((Err(AppError::Internal(format!("export end: {e}"))), None));
            }
            Some((Ok(out), page.next_after.map(|n| (n, adapter))))
        }
    });
    feed::summarised(feed, head, pages).await
}

/// The summary of one of the partner's own exports (named by the
/// `Lyceum-Export-Id` header of its response): the record count, byte count
/// and SHA-256 of the exact body once it was sent whole, or that it was not.
#[get("/api/v1/exports/summary/<export_id>")]
pub async fn export_summary(
    db: &State<Db>,
    auth: PartnerKey,
    trail: Trail<'_>,
    export_id: &str,
) -> AppResult<Json<feed::SummaryView>> {
    let (partner_id, id) = (auth.partner.id, export_id.to_string());
    trail.add(Subject::of_partner(partner_id).item(format!("summary of export {export_id}")));
    let summary = db.run(move |conn| Ok::<_, AppError>(feed::of_partner(conn, partner_id, &id)?)).await?;
    match summary {
        Some(s) => Ok(Json(s.into())),
        None => Err(AppError::Missing(format!("Your partner account has no export “{export_id}”."))),
    }
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
    trail: Trail<'_>,
    connection: Connection,
    format: Option<&str>,
    since: Option<&str>,
) -> AppResult<feed::Streamed> {
    let format = pull_format(format)?;
    let after = resume_after(since, "departure")?;
    let base = config.base_url();
    let options = ExportOptions::new(RecordKind::Departure, base.clone(), chrono::Utc::now());
    let mut adapter = format.adapter(&options);
    let content_type = pull_content_type(format);
    let mut head = Vec::new();
    adapter.begin(&mut head).map_err(|e| AppError::Internal(e.to_string()))?;
    let db = db.inner().clone();
    let partner = auth.partner;
    let export_id = format!("api-{}", uuid::Uuid::new_v4());
    tracing::info!(partner = %partner.slug, export = %export_id, "partner departures feed");
    trail.add(Subject::of_partner(partner.id).item(format!("export {export_id} (departures)")));
    let feed = feed::Feed {
        db: db.clone(),
        partner_id: partner.id,
        export_id: export_id.clone(),
        kind: "departures".to_string(),
        format: format.as_str().to_string(),
        connection,
        content_type,
        summary_line: format == Format::JsonLines,
        since: since.filter(|s| !s.is_empty()).map(str::to_string),
    };
    let pages = futures::stream::unfold(Some((after, adapter)), move |state| {
        let (db, partner, export_id, base) = (db.clone(), partner.clone(), export_id.clone(), base.clone());
        async move {
            let (after, mut adapter) = state?;
            let page = db
                .run(move |conn| {
                    Ok::<_, AppError>(super::departures::deliver(
                        conn,
                        &partner,
                        after,
                        None,
                        PAGE,
                        &export_id,
                        &base,
                        now(),
                    )?)
                })
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => return Some((Err(e), None)),
            };
            let mut out = feed::Page { bytes: Vec::new(), records: 0, last_cursor: None };
            for (_, d) in &page {
                let rec = partner_adapters::SharedRecord::Departure(d.clone());
                if let Err(e) = adapter.record(&rec, &mut out.bytes) {
                    return Some((Err(AppError::Internal(format!("departure record: {e}"))), None));
                }
                out.records += 1;
                out.last_cursor = Some(d.cursor.clone());
            }
            let next = match page.last() {
                Some((d, _)) if page.len() as i64 == PAGE => Some(d.id),
                _ => None,
            };
            if next.is_none()
                && let Err(e) = adapter.finish(&mut out.bytes)
            {
                return Some((Err(AppError::Internal(format!("departures end: {e}"))), None));
            }
            Some((Ok(out), next.map(|n| (n, adapter))))
        }
    });
    feed::summarised(feed, head, pages).await
}

/// De-identified aggregates per course run for research partners (SHR-6):
/// counts under five and means over fewer than five learners are `null`.
#[get("/api/v1/aggregates")]
pub async fn aggregates(db: &State<Db>, auth: PartnerKey, trail: Trail<'_>) -> AppResult<Json<serde_json::Value>> {
    // De-identified: small counts and means are withheld (SHR-6).
    trail.nobody();
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
