//! Partner feeds that cannot pass for complete when they are not. Owns the
//! export summaries (`export_summaries`): one row per response of the pull
//! API, scoped to its partner, holding the record count, the byte count and
//! the SHA-256 of the exact body once it was sent whole, or the fact that it
//! was not. No learner data.
//!
//! [`summarised`] streams a feed's pages behind a `Lyceum-Export-Id` header
//! and keeps the tally. When a page fails (the database, a record that cannot
//! be written) the connection is cut off ([`Connection::abort`]), so the
//! client's body read fails instead of ending normally, and the summary says
//! `failed`. A JSON Lines body ends, once whole, with a summary line
//! (`"type":"summary"`) whose figures cover every byte before it. Any feed of
//! the pull API can use it: it knows pages, not what is in them.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::futures::stream::{BoxStream, Stream, StreamExt};
use rocket::http::{ContentType, Header};
use rocket::request::Request;
use rocket::response::stream::ReaderStream;
use rocket::response::{self, Responder};
use serde::Serialize;

use crate::db::schema::export_summaries;
use crate::db::{Conn, Db, now};
use crate::web::AppError;
use crate::web::stream::{Chunk, Connection, Tally};

/// The response header that names an export's summary.
pub const EXPORT_ID_HEADER: &str = "Lyceum-Export-Id";

/// Where an export stands. Only `Complete` means the client got everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Still being sent, or the server could not record how it ended.
    Running,
    Complete,
    /// Stopped by a failure on the server's side; the connection was cut off.
    Failed,
    /// The client went away before the end.
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = export_summaries)]
pub struct Summary {
    pub export_id: String,
    pub partner_id: i64,
    pub kind: String,
    pub format: String,
    pub status: String,
    pub records: i64,
    pub bytes: i64,
    pub sha256: Option<String>,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

/// The summary as a partner reads it.
#[derive(Debug, Serialize)]
pub struct SummaryView {
    pub export_id: String,
    pub kind: String,
    pub format: String,
    pub status: String,
    pub complete: bool,
    pub records: i64,
    pub bytes: i64,
    pub sha256: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl From<Summary> for SummaryView {
    fn from(s: Summary) -> Self {
        SummaryView {
            complete: s.status == Status::Complete.as_str(),
            export_id: s.export_id,
            kind: s.kind,
            format: s.format,
            status: s.status,
            records: s.records,
            bytes: s.bytes,
            sha256: s.sha256,
            started_at: rfc3339(s.started_at),
            finished_at: s.finished_at.map(rfc3339),
        }
    }
}

/// Records that an export starts.
pub fn begin(
    conn: &mut Conn,
    partner_id: i64,
    export_id: &str,
    kind: &str,
    format: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(export_summaries::table)
        .values((
            export_summaries::export_id.eq(export_id),
            export_summaries::partner_id.eq(partner_id),
            export_summaries::kind.eq(kind),
            export_summaries::format.eq(format),
            export_summaries::status.eq(Status::Running.as_str()),
            export_summaries::started_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Records how an export ended, once: a summary that has ended keeps its
/// figures. The digest is kept only for a complete export.
pub fn end(conn: &mut Conn, export_id: &str, status: Status, tally: &Tally, now: NaiveDateTime) -> QueryResult<()> {
    let sha256 = (status == Status::Complete).then(|| tally.sha256_hex());
    diesel::update(
        export_summaries::table
            .filter(export_summaries::export_id.eq(export_id))
            .filter(export_summaries::status.eq(Status::Running.as_str())),
    )
    .set((
        export_summaries::status.eq(status.as_str()),
        export_summaries::records.eq(tally.records as i64),
        export_summaries::bytes.eq(tally.bytes as i64),
        export_summaries::sha256.eq(sha256),
        export_summaries::finished_at.eq(now),
    ))
    .execute(conn)
    .map(|_| ())
}

/// The summary of one of this partner's exports; `None` for another
/// partner's, as for an id that does not exist.
pub fn of_partner(conn: &mut Conn, partner_id: i64, export_id: &str) -> QueryResult<Option<Summary>> {
    export_summaries::table
        .filter(export_summaries::export_id.eq(export_id))
        .filter(export_summaries::partner_id.eq(partner_id))
        .select(Summary::as_select())
        .first(conn)
        .optional()
}

/// One page of a feed as the client will receive it.
pub struct Page {
    pub bytes: Vec<u8>,
    pub records: u64,
    /// The `cursor` of the page's last record.
    pub last_cursor: Option<String>,
}

/// An export about to be streamed: who gets it, under which id, how.
pub struct Feed {
    pub db: Db,
    pub partner_id: i64,
    pub export_id: String,
    /// What the export holds (`enrollments`, …), as the summary names it.
    pub kind: String,
    /// How it is written (`csv`, `jsonl`), as the summary names it.
    pub format: String,
    pub connection: Connection,
    pub content_type: ContentType,
    /// JSON Lines: end a whole body with the summary line.
    pub summary_line: bool,
    /// The cursor the client resumed from (the summary line's cursor when
    /// the export holds no record).
    pub since: Option<String>,
}

/// A streamed export: the body, its type and the `Lyceum-Export-Id` header.
pub struct Streamed {
    body: ReaderStream<BoxStream<'static, Chunk>>,
    content_type: ContentType,
    export_id: Header<'static>,
}

impl<'r> Responder<'r, 'r> for Streamed {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'r> {
        let mut res = self.body.respond_to(req)?;
        res.set_header(self.content_type);
        res.set_header(self.export_id);
        Ok(res)
    }
}

/// Records that the export starts (before anything is sent, so its id
/// resolves as soon as the client sees it) and streams `head`, then each
/// page of `pages`, keeping the tally. See the module's text for what a
/// failure does.
pub async fn summarised<S>(feed: Feed, head: Vec<u8>, pages: S) -> Result<Streamed, AppError>
where
    S: Stream<Item = Result<Page, AppError>> + Send + 'static,
{
    let Feed { db, partner_id, export_id, kind, format, connection, content_type, summary_line, since } = feed;
    let id = export_id.clone();
    db.run(move |conn| Ok::<_, AppError>(begin(conn, partner_id, &id, &kind, &format, now())?)).await?;
    let header = Header::new(EXPORT_ID_HEADER, export_id.clone());
    let body = rocket::response::stream::stream! {
        let mut ending = Ending { db: db.clone(), export_id: export_id.clone(), tally: Tally::new(), ended: false };
        yield ending.tally.pass(head, 0);
        let mut cursor = since;
        let mut pages = std::pin::pin!(pages);
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    if page.last_cursor.is_some() {
                        cursor = page.last_cursor;
                    }
                    yield ending.tally.pass(page.bytes, page.records);
                }
                Err(e) => {
                    tracing::error!(error = %e, export = %export_id, "export stopped; cutting the connection off");
                    yield ending.fail(&connection);
                    return;
                }
            }
        }
        let (id, tally) = (export_id.clone(), ending.tally.clone());
        let recorded = db.run(move |conn| Ok::<_, AppError>(end(conn, &id, Status::Complete, &tally, now())?)).await;
        if let Err(e) = recorded {
            // Whole, but nothing could confirm it: the client must not take it as whole.
            tracing::error!(error = %e, export = %export_id, "export summary not recorded; cutting the connection off");
            yield ending.fail(&connection);
            return;
        }
        ending.ended = true;
        if summary_line {
            let line = serde_json::json!({
                "type": "summary",
                "export_id": export_id,
                "records": ending.tally.records,
                "bytes": ending.tally.bytes,
                "sha256": ending.tally.sha256_hex(),
                "complete": true,
                "cursor": cursor,
            });
            yield Chunk::Data(std::io::Cursor::new(format!("{line}\n").into_bytes()));
        }
    };
    Ok(Streamed { body: ReaderStream::from(body.boxed()), content_type, export_id: header })
}

/// The tally of an export being streamed; records how it ended even when the
/// stream is dropped mid-way (the client went away).
struct Ending {
    db: Db,
    export_id: String,
    tally: Tally,
    ended: bool,
}

impl Ending {
    /// Cuts the connection off, records the failure, and returns the chunk
    /// that ends the body with an error.
    fn fail(&mut self, connection: &Connection) -> Chunk {
        if !connection.abort() {
            tracing::warn!(export = %self.export_id, "no connection to cut off; the body ends with an error only");
        }
        self.record_later(Status::Failed);
        Chunk::Failed
    }

    /// Records the end off the stream, retrying for a while: the database
    /// that just failed may be back in a moment.
    fn record_later(&mut self, status: Status) {
        self.ended = true;
        let Ok(runtime) = rocket::tokio::runtime::Handle::try_current() else { return };
        let (db, id, tally) = (self.db.clone(), self.export_id.clone(), self.tally.clone());
        runtime.spawn(async move {
            for attempt in 0..5u32 {
                let (i, t) = (id.clone(), tally.clone());
                match db.run(move |conn| Ok::<_, AppError>(end(conn, &i, status, &t, now())?)).await {
                    Ok(()) => return,
                    Err(e) if attempt == 4 => {
                        tracing::error!(error = %e, export = %id, status = status.as_str(), "export end not recorded")
                    }
                    Err(_) => rocket::tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await,
                }
            }
        });
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.ended {
            self.record_later(Status::Interrupted);
        }
    }
}
