//! A copy of everything held about a learner (RGT-1).
//!
//! The learner asks on their privacy page; a `privacy.export` job builds a
//! zip with `data.json` (every section, for machines), one CSV per section
//! (for people) and a README describing each file, stores it in the blob
//! store and emails a link. The link needs the learner's own sign-in and
//! stops working after `EXPORT_DAYS`; the file is then deleted.
//!
//! Sections read whole rows (`SELECT` of every column) rather than a list of
//! fields kept by hand, so a column added later is exported without anyone
//! remembering to. Only secrets are withheld (password and token hashes,
//! storage keys), and other people's identities in records about the learner.
//! Each area declares the sections its tables give (`export_user` in its
//! lifecycle hooks); they come in the order of `privacy::AREAS`, then the
//! audit log's record of staff access.

use std::io::Write;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde_json::{Map, Value, json};

use super::{PResult, PrivacyError, kind, source, status as request_status};
use crate::db::schema::{data_exports, users};
use crate::db::{Conn, DbConnection};
use crate::lifecycle::Section;
use crate::storage::BlobStore;

pub const EXPORT: &str = "privacy.export";
/// Days a finished copy can be downloaded.
pub const EXPORT_DAYS: i64 = 7;
/// A copy still not built after this long has failed for good.
const STALE_HOURS: i64 = 6;

pub mod status {
    pub const BUILDING: &str = "building";
    pub const READY: &str = "ready";
    pub const FAILED: &str = "failed";
    pub const EXPIRED: &str = "expired";
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    row: String,
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The table's columns in their declared order.
fn columns(conn: &mut Conn, table: &str) -> QueryResult<Vec<String>> {
    let sql = match conn {
        DbConnection::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
        DbConnection::Pg(_) => format!(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    };
    Ok(diesel::sql_query(sql).load::<Column>(conn)?.into_iter().map(|c| c.name).collect())
}

/// Every row of a section as a JSON object in column order, withheld columns left out.
fn rows(conn: &mut Conn, s: &Section, columns: &[String], user_id: i64) -> QueryResult<Vec<Map<String, Value>>> {
    let filter = s.filter.replace("{u}", &user_id.to_string());
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', \"{c}\"")).collect();
            format!("SELECT json_object({}) AS row FROM {} WHERE {filter} ORDER BY 1", pairs.join(", "), s.table)
        }
        DbConnection::Pg(_) => {
            format!("SELECT row_to_json(t)::text AS row FROM {} t WHERE {filter} ORDER BY 1", s.table)
        }
    };
    let mut out = Vec::new();
    for JsonRow { row } in diesel::sql_query(sql).load::<JsonRow>(conn)? {
        let mut parsed: Map<String, Value> = serde_json::from_str(&row).unwrap_or_default();
        // Sealed fields are given back readable (SEC-2 protects them at rest, not from their owner).
        for &(column, field) in s.sealed {
            if let Some(Value::String(sealed)) = parsed.get(column) {
                let table = s.table;
                let open = super::vault::open(field, sealed)
                    .inspect_err(|e| tracing::error!(error = %e, table, column, "a sealed value cannot be opened"))
                    .ok();
                parsed.insert(column.into(), open.map_or(Value::Null, Value::String));
            }
        }
        let mut ordered = Map::new();
        for column in columns.iter().filter(|c| !s.withheld.contains(&c.as_str())) {
            ordered.insert(column.clone(), parsed.remove(column).unwrap_or(Value::Null));
        }
        out.push(ordered);
    }
    Ok(out)
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn readme(username: &str, generated: NaiveDateTime, counts: &[(&Section, usize)]) -> String {
    let mut text = format!(
        "# Your data on Lyceum\n\nA copy of everything Lyceum holds about the account `{username}`, made on {} UTC.\n\n\
         - `data.json` has every section below, for programs.\n\
         - `csv/<section>.csv` has one section each, for spreadsheets (one row per record, the first row names the columns).\n\
         - `sharing.md` tells in words what each partner received about you and your decisions (as your Sharing page does).\n\n\
         Times are UTC. Lyceum never receives card numbers, so there is no payment card data to include. \
         Identity photos are deleted as soon as they are reviewed.\n\n## Sections\n\n",
        generated.format("%Y-%m-%d %H:%M")
    );
    for (s, n) in counts {
        text.push_str(&format!("### {} ({} record{})\n\n{}\n", s.name, n, if *n == 1 { "" } else { "s" }, s.about));
        if !s.withheld.is_empty() {
            text.push_str(&format!(
                "\nLeft out: {} (a secret, a storage key, or another person's identity).\n",
                s.withheld.join(", ")
            ));
        }
        text.push('\n');
    }
    text
}

/// Staff access to the learner's data, from the audit log (SEC-4): the
/// entries that name them. Staff are named by role, not by name: they act
/// for the operator (or the partner or member their role names), who is the
/// recipient; an auditor can say who it was if the learner asks.
const STAFF_ACCESS: Section = Section {
    name: "staff_access",
    table: "audit_log",
    filter: "",
    withheld: &[],
    sealed: &[],
    about: "Every time someone acting in a role (operator staff, support team, moderators, course staff, a partner's staff or API key) viewed or changed your data: when, in which role(s), view or change, which page, the query that selected you (when the page was about you alone), the partner or course it applied to, and what was shown. Who it was is named by role; the audit log names the person, and our auditors can tell you on request.",
};

const STAFF_ACCESS_COLUMNS: [&str; 10] =
    ["at", "roles", "action", "method", "path", "query", "partner_id", "course_id", "item", "status"];

/// The audit entries naming the learner, oldest first.
fn staff_access(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<Map<String, Value>>> {
    use crate::db::schema::{audit_log, audit_queries, audit_subjects};
    type Row = (i64, NaiveDateTime, String, String, String, String, i32, Option<i64>, Option<i64>, Option<String>);
    let rows: Vec<Row> = audit_subjects::table
        .inner_join(audit_log::table.on(audit_log::id.eq(audit_subjects::audit_id)))
        .filter(audit_subjects::user_id.eq(user_id))
        .order((audit_log::id.asc(), audit_subjects::id.asc()))
        .select((
            audit_log::id,
            audit_log::created_at,
            audit_log::roles,
            audit_log::action,
            audit_log::method,
            audit_log::path,
            audit_log::status,
            audit_subjects::partner_id,
            audit_subjects::course_id,
            audit_subjects::item,
        ))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut queries = std::collections::HashMap::new();
    let mut people = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        queries.extend(
            audit_queries::table
                .filter(audit_queries::audit_id.eq_any(chunk))
                .select((audit_queries::audit_id, audit_queries::query))
                .load::<(i64, String)>(conn)?,
        );
        // How many people each entry names: its query is given only when it named the learner alone.
        people.extend(
            audit_subjects::table
                .filter(audit_subjects::audit_id.eq_any(chunk))
                .filter(audit_subjects::user_id.is_not_null())
                .group_by(audit_subjects::audit_id)
                .select((audit_subjects::audit_id, diesel::dsl::count_star()))
                .load::<(i64, i64)>(conn)?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|r| seen.insert(r.0))
        .map(|(id, at, roles, action, method, path, status, partner_id, course_id, item)| {
            let alone = people.get(&id).copied() == Some(1);
            let mut m = Map::new();
            m.insert("at".into(), json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
            m.insert("roles".into(), json!(roles));
            m.insert("action".into(), json!(action));
            m.insert("method".into(), json!(method));
            m.insert("path".into(), json!(path));
            m.insert("query".into(), json!(if alone { queries.get(&id).cloned() } else { None }));
            m.insert("partner_id".into(), json!(partner_id));
            m.insert("course_id".into(), json!(course_id));
            m.insert("item".into(), json!(item));
            m.insert("status".into(), json!(status));
            m
        })
        .collect())
}

/// The section the disclosure log fills: read from the manifests, one row
/// per record as the learner's own log tells it.
const DISCLOSURES: &str = "disclosures";

const DISCLOSURE_COLUMNS: [&str; 13] = [
    "created_at",
    "partner_id",
    "recipient",
    "purpose",
    "fields",
    "basis",
    "consent_ledger_id",
    "legal_reference",
    "note",
    "export_id",
    "record_key",
    "state",
    "manifest_id",
];

fn disclosures(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<Map<String, Value>>> {
    let mut rows = crate::consent::manifests::disclosures_of(conn, user_id, i64::MAX)?;
    rows.reverse();
    Ok(rows
        .into_iter()
        .map(|d| {
            let row = json!({
                "created_at": d.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "partner_id": d.partner_id,
                "recipient": d.recipient,
                "purpose": d.purpose,
                "fields": d.fields,
                "basis": d.basis,
                "consent_ledger_id": d.consent_ledger_id,
                "legal_reference": d.legal_reference,
                "note": d.note,
                "export_id": d.export_id,
                "record_key": d.record_key,
                "state": if d.delivered { "delivered" } else { "attempted" },
                "manifest_id": d.id,
            });
            match row {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        })
        .collect())
}

/// Builds the zip of everything held about `user_id`.
pub fn build(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> PResult<Vec<u8>> {
    let username: String =
        users::table.find(user_id).select(users::username).first(conn).optional()?.ok_or(PrivacyError::NotFound)?;
    let mut sections = Map::new();
    let mut csvs = Vec::new();
    let mut counts = Vec::new();
    for s in super::AREAS.iter().flat_map(|area| area.export_user).chain([&STAFF_ACCESS]) {
        let (columns, rows) = if s.name == STAFF_ACCESS.name {
            (STAFF_ACCESS_COLUMNS.iter().map(|c| c.to_string()).collect(), staff_access(conn, user_id)?)
        } else if s.name == DISCLOSURES {
            (DISCLOSURE_COLUMNS.iter().map(|c| c.to_string()).collect(), disclosures(conn, user_id)?)
        } else {
            let columns = columns(conn, s.table)?;
            let rows = rows(conn, s, &columns, user_id)?;
            (columns, rows)
        };
        let mut writer = crate::web::csv::Writer::in_memory();
        let header: Vec<&String> = columns.iter().filter(|c| !s.withheld.contains(&c.as_str())).collect();
        let write = |w: &mut crate::web::csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
            w.write_record(&header)?;
            for row in &rows {
                // By name: the row map keeps its keys sorted, not in the header's order.
                w.write_record(header.iter().map(|c| row.get(c.as_str()).map(cell).unwrap_or_default()))?;
            }
            w.flush()?;
            Ok(())
        };
        write(&mut writer).map_err(|e| PrivacyError::Invalid(format!("CSV: {e}")))?;
        csvs.push((s.name, writer.into_inner().map_err(|e| PrivacyError::Invalid(format!("CSV: {e}")))?));
        counts.push((s, rows.len()));
        sections.insert(s.name.to_string(), Value::Array(rows.into_iter().map(Value::Object).collect()));
    }
    let data = json!({
        "generated_at": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "username": username,
        "sections": sections,
    });
    let zip_error = |e: &dyn std::fmt::Display| PrivacyError::Invalid(format!("zip: {e}"));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let add = |zip: &mut zip::ZipWriter<_>, name: &str, bytes: &[u8]| -> PResult<()> {
        zip.start_file(name, options).map_err(|e| zip_error(&e))?;
        zip.write_all(bytes).map_err(|e| zip_error(&e))
    };
    add(&mut zip, "README.md", readme(&username, now, &counts).as_bytes())?;
    let json = serde_json::to_vec_pretty(&data).map_err(|e| zip_error(&e))?;
    add(&mut zip, "data.json", &json)?;
    // The disclosures and decisions of the sections above, in the Sharing page's words.
    add(&mut zip, "sharing.md", crate::consent::log::as_markdown(conn, user_id)?.as_bytes())?;
    for (name, bytes) in csvs {
        add(&mut zip, &format!("csv/{name}.csv"), &bytes)?;
    }
    Ok(zip.finish().map_err(|e| zip_error(&e))?.into_inner())
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = data_exports)]
pub struct DataExport {
    pub id: i64,
    pub request_id: i64,
    pub user_id: i64,
    pub status: String,
    pub blob_key: Option<String>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub ready_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    pub downloaded_at: Option<NaiveDateTime>,
}

/// The learner asks for a copy: a tracked request and a queued job.
pub fn request(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> PResult<i64> {
    crate::db::transaction(conn, |conn| {
        // A copy whose job died long ago no longer blocks a new one.
        diesel::update(
            data_exports::table
                .filter(data_exports::user_id.eq(user_id))
                .filter(data_exports::status.eq(status::BUILDING))
                .filter(data_exports::created_at.lt(now - Duration::hours(STALE_HOURS))),
        )
        .set((data_exports::status.eq(status::FAILED), data_exports::error.eq("not built in time")))
        .execute(conn)?;
        let building: i64 = data_exports::table
            .filter(data_exports::user_id.eq(user_id))
            .filter(data_exports::status.eq(status::BUILDING))
            .count()
            .get_result(conn)?;
        if building > 0 {
            return Err(PrivacyError::Invalid(
                "A copy of your data is being prepared already; we will email you when it is ready.".into(),
            ));
        }
        let request_id = super::open_request(
            conn,
            Some(user_id),
            kind::EXPORT,
            source::SELF_SERVICE,
            "Copy of my data, asked for on the site.",
            None,
            now,
        )?;
        let id = diesel::insert_into(data_exports::table)
            .values((
                data_exports::request_id.eq(request_id),
                data_exports::user_id.eq(user_id),
                data_exports::status.eq(status::BUILDING),
                data_exports::created_at.eq(now),
            ))
            .returning(data_exports::id)
            .get_result(conn)?;
        super::set_request_status(conn, request_id, request_status::IN_PROGRESS, None, now)?;
        crate::jobs::enqueue(conn, EXPORT, &json!({ "export_id": id }))?;
        Ok(id)
    })
}

pub fn exports_of(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<DataExport>> {
    data_exports::table
        .filter(data_exports::user_id.eq(user_id))
        .order(data_exports::id.desc())
        .limit(10)
        .select(DataExport::as_select())
        .load(conn)
}

fn find(conn: &mut Conn, id: i64) -> QueryResult<Option<DataExport>> {
    data_exports::table.find(id).select(DataExport::as_select()).first(conn).optional()
}

/// The job: builds the copy, stores it, marks the request done and emails the link.
pub fn run(conn: &mut Conn, blobs: &dyn BlobStore, export_id: i64, base_url: &str) -> Result<(), String> {
    let Some(export) = find(conn, export_id).map_err(|e| e.to_string())? else { return Ok(()) };
    if export.status != status::BUILDING {
        return Ok(());
    }
    let now = crate::db::now();
    let bytes = build(conn, export.user_id, now).map_err(|e| e.to_string())?;
    // Content-addressed like every blob; the time inside makes each copy's bytes unique.
    let key = crate::storage::key_for(&bytes);
    let sha = key.clone();
    blobs.put(&key, &bytes).map_err(|e| e.to_string())?;
    let (email, username): (String, String) = users::table
        .find(export.user_id)
        .select((users::email, users::username))
        .first(conn)
        .map_err(|e| e.to_string())?;
    let expires = now + Duration::days(EXPORT_DAYS);
    crate::db::transaction(conn, |conn| {
        diesel::update(data_exports::table.find(export_id))
            .set((
                data_exports::status.eq(status::READY),
                data_exports::blob_key.eq(&key),
                data_exports::size_bytes.eq(bytes.len() as i64),
                data_exports::sha256.eq(&sha),
                data_exports::ready_at.eq(now),
                data_exports::expires_at.eq(expires),
            ))
            .execute(conn)?;
        super::set_request_status(
            conn,
            export.request_id,
            request_status::DONE,
            Some("Copy sent by email link."),
            now,
        )?;
        crate::notify::enqueue_email(
            conn,
            &email,
            "Your Lyceum data is ready to download",
            "data_export_ready",
            json!({
                "username": username,
                "link": format!("{base_url}/account/privacy/exports/{export_id}"),
                "expires": expires.format("%e %B %Y").to_string(),
            }),
        )?;
        Ok::<_, diesel::result::Error>(())
    })
    .map_err(|e| e.to_string())
}

/// A finished copy for its owner; `NotFound` for anyone else's (not revealing
/// it exists) and `Gone` once expired.
pub fn download(conn: &mut Conn, blobs: &dyn BlobStore, user_id: i64, id: i64, now: NaiveDateTime) -> PResult<Vec<u8>> {
    let export = find(conn, id)?.filter(|e| e.user_id == user_id).ok_or(PrivacyError::NotFound)?;
    let expired = export.status == status::EXPIRED || export.expires_at.is_some_and(|at| at <= now);
    if expired {
        return Err(PrivacyError::Gone(
            "This download link has expired, and the file was deleted. Ask for a new copy on your privacy page.".into(),
        ));
    }
    match (export.status.as_str(), export.blob_key) {
        (status::READY, Some(key)) => {
            let bytes = blobs
                .get(&key)
                .map_err(|e| PrivacyError::Invalid(format!("The file could not be read: {e}")))?
                .ok_or_else(|| PrivacyError::Gone("The file is no longer stored. Ask for a new copy.".into()))?;
            diesel::update(data_exports::table.find(id)).set(data_exports::downloaded_at.eq(now)).execute(conn)?;
            Ok(bytes)
        }
        (status::FAILED, _) => Err(PrivacyError::Invalid("Building this copy failed. Ask for a new one.".into())),
        _ => {
            Err(PrivacyError::Invalid("This copy is still being prepared; we will email you when it is ready.".into()))
        }
    }
}

/// Deletes the files of expired copies; returns how many.
pub fn expire(conn: &mut Conn, blobs: &dyn BlobStore, now: NaiveDateTime) -> QueryResult<usize> {
    let due: Vec<(i64, Option<String>)> = data_exports::table
        .filter(data_exports::status.eq(status::READY))
        .filter(data_exports::expires_at.le(now))
        .select((data_exports::id, data_exports::blob_key))
        .load(conn)?;
    let mut n = 0;
    for (id, key) in due {
        if let Some(Err(e)) = key.map(|key| blobs.delete(&key)) {
            tracing::warn!(export = id, error = %e, "could not delete an expired data export; retried next run");
            continue;
        }
        diesel::update(data_exports::table.find(id))
            .set((data_exports::status.eq(status::EXPIRED), data_exports::blob_key.eq(None::<String>)))
            .execute(conn)?;
        n += 1;
    }
    Ok(n)
}
