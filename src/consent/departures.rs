//! Departures: what a partner must delete when the gate stops letting a
//! learner's records through.
//!
//! The disclosure log says which identifier each partner received for each
//! enrollment (the username, the named pseudonym `n-…`, or the per-run code
//! `d-…` of de-identified records). When a learner withdraws a consent,
//! restricts sharing or is erased, [`reconcile`] asks the gate what it would
//! let through for that learner now; every (partner, enrollment, identifier)
//! that was sent and no longer would be becomes a departure row. The
//! partner's copy of those records must go.
//!
//! Departures reach partners on every channel that carried records:
//! - the pull API's departures feed (`GET /api/v1/exports/departures`),
//!   resumable with the cursor of the last one read;
//! - every push: a OneRoster zip carries `tobedeleted` rows, a webhook a
//!   `lyceum.departures` event, an LRS the voiding statements of what it
//!   received, CSV and JSON Lines files a departures file beside the records;
//! - the erasure notice email (see `privacy::erasure`).
//!
//! Each delivery of a departure writes a disclosure row (basis `departure`),
//! so the learner's Sharing page shows the notice as sent.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use partner_adapters::{CourseRef, SharedDeparture};

use super::partners::Partner;
use crate::db::Conn;
use crate::db::schema::{course_runs, courses, departures, enrollments, members, partners, users};

/// Why a partner is told to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A consent was withdrawn, declined or narrowed.
    Withdrawn,
    /// The learner restricted all sharing (RGT-3).
    Restricted,
    /// The learner's account was erased.
    Erased,
    /// The basis ended otherwise (an organization no longer has the person as staff).
    Ended,
    /// A new consent changed the identifier the records come under (a
    /// de-identified learner now consents to be named, or the reverse): the
    /// records go on arriving under the new one only.
    Replaced,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Withdrawn => "withdrawn",
            Reason::Restricted => "restricted",
            Reason::Erased => "erased",
            Reason::Ended => "ended",
            Reason::Replaced => "replaced",
        }
    }
}

/// The identifier a partner received, from the fields of a disclosure row:
/// the username when it was sent, else the named pseudonym when any identity
/// field was, else the per-run code of de-identified records.
fn identifier(partner: &Partner, user_id: i64, username: &str, run_id: i64, fields: &str) -> String {
    let fields: HashSet<&str> = fields.split(',').collect();
    if fields.contains("learner.username") {
        username.to_string()
    } else if ["learner.name", "learner.email", "learner.company"].iter().any(|f| fields.contains(f)) {
        partner.named_pseudonym(user_id)
    } else {
        partner.run_pseudonym(user_id, run_id)
    }
}

/// Records a departure for every identifier a partner holds about this
/// learner's enrollments that the gate no longer lets through; with
/// `everything` (erasure) every identifier departs. A held identifier that
/// already departed after it was last sent is not told twice. Returns how
/// many departures were recorded. Call it inside the transaction of the
/// change that caused it.
pub fn reconcile(
    conn: &mut Conn,
    user_id: i64,
    reason: Reason,
    everything: bool,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    // What partners received of this learner's enrollments, from the manifests.
    let sent: Vec<(i64, String, String, NaiveDateTime)> = super::manifests::disclosures_of(conn, user_id, i64::MAX)?
        .into_iter()
        .filter(|d| d.delivered && d.record_key.starts_with("enrollment:"))
        .filter_map(|d| Some((d.partner_id?, d.record_key, d.fields, d.created_at)))
        .collect();
    if sent.is_empty() {
        return Ok(0);
    }
    let eids: Vec<i64> = sent
        .iter()
        .filter_map(|(_, key, _, _)| key.strip_prefix("enrollment:")?.parse().ok())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let runs: HashMap<i64, i64> = enrollments::table
        .filter(enrollments::id.eq_any(&eids))
        .select((enrollments::id, enrollments::run_id))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    let username: String = users::table.find(user_id).select(users::username).first(conn)?;
    let partner_ids: HashSet<i64> = sent.iter().map(|s| s.0).collect();
    let mut by_id: HashMap<i64, Partner> = HashMap::new();
    for p in partners::table.filter(partners::id.eq_any(&partner_ids)).select(Partner::as_select()).load(conn)? {
        by_id.insert(p.id, p);
    }

    // What each partner holds: (partner, enrollment, identifier) → when last sent.
    let mut held: HashMap<(i64, i64, String), NaiveDateTime> = HashMap::new();
    for (partner_id, key, fields, at) in &sent {
        let Some(eid) = key.strip_prefix("enrollment:").and_then(|k| k.parse::<i64>().ok()) else { continue };
        let (Some(run_id), Some(partner)) = (runs.get(&eid), by_id.get(partner_id)) else { continue };
        let id = identifier(partner, user_id, &username, *run_id, fields);
        let last = held.entry((*partner_id, eid, id)).or_insert(*at);
        *last = (*last).max(*at);
    }

    // What the gate lets through now, per partner.
    let mut now_shareable: HashMap<i64, HashSet<(i64, String)>> = HashMap::new();
    if !everything {
        for (partner_id, partner) in &by_id {
            let ids = match partner.record_purpose() {
                Some(purpose) => super::sharing::shareable_ids(conn, partner, purpose, user_id, now)?,
                None => HashSet::new(),
            };
            now_shareable.insert(*partner_id, ids);
        }
    }

    // Departures already told, newest per (partner, enrollment, identifier).
    let told: HashMap<(i64, i64, String), NaiveDateTime> = departures::table
        .filter(departures::user_id.eq(user_id))
        .select((departures::partner_id, departures::enrollment_id, departures::learner_id, departures::created_at))
        .load::<(i64, i64, String, NaiveDateTime)>(conn)?
        .into_iter()
        .fold(HashMap::new(), |mut m, (p, e, l, at)| {
            let last = m.entry((p, e, l)).or_insert(at);
            *last = (*last).max(at);
            m
        });

    let mut rows = Vec::new();
    let mut keys: Vec<_> = held.into_iter().collect();
    keys.sort();
    for ((partner_id, eid, learner_id), last_sent) in keys {
        let shareable = now_shareable.get(&partner_id);
        if shareable.is_some_and(|s| s.contains(&(eid, learner_id.clone()))) {
            continue;
        }
        if told.get(&(partner_id, eid, learner_id.clone())).is_some_and(|at| *at >= last_sent) {
            continue;
        }
        // The learner as a whole goes when no record under this id remains.
        let gone = !shareable.is_some_and(|s| s.iter().any(|(_, id)| *id == learner_id));
        rows.push((
            departures::partner_id.eq(partner_id),
            departures::user_id.eq(user_id),
            departures::enrollment_id.eq(eid),
            departures::run_id.eq(runs[&eid]),
            departures::learner_id.eq(learner_id),
            departures::learner_gone.eq(gone),
            departures::reason.eq(reason.as_str()),
            departures::created_at.eq(now),
        ));
    }
    let n = rows.len();
    for row in rows {
        diesel::insert_into(departures::table).values(row).execute(conn)?;
    }
    if n > 0 {
        tracing::info!(user_id, departures = n, reason = reason.as_str(), "partners told to delete");
    }
    Ok(n)
}

/// One departure row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = departures)]
pub struct Departure {
    pub id: i64,
    pub partner_id: i64,
    pub user_id: i64,
    pub enrollment_id: i64,
    pub run_id: i64,
    pub learner_id: String,
    pub learner_gone: bool,
    pub reason: String,
    pub created_at: NaiveDateTime,
}

/// The partner's departures with ids in `(after, upto]` (all after `after`
/// when `upto` is `None`), oldest first, at most `limit`, as partner records;
/// a disclosure manifest (basis `departure`) is written for each, naming
/// `export_id`. The cursor of each is sealed as the gate's cursors are.
#[allow(clippy::too_many_arguments)]
pub fn deliver(
    conn: &mut Conn,
    partner: &Partner,
    after: i64,
    upto: Option<i64>,
    limit: i64,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<(Departure, SharedDeparture)>> {
    crate::db::transaction(conn, |conn| {
        let mut q = departures::table
            .inner_join(course_runs::table.inner_join(courses::table.inner_join(members::table)))
            .filter(departures::partner_id.eq(partner.id))
            .filter(departures::id.gt(after))
            .order(departures::id.asc())
            .limit(limit)
            .select((
                Departure::as_select(),
                (
                    course_runs::run_key,
                    courses::slug,
                    courses::title,
                    members::slug,
                    course_runs::starts_at,
                    course_runs::ends_at,
                ),
            ))
            .into_boxed();
        if let Some(upto) = upto {
            q = q.filter(departures::id.le(upto));
        }
        type Run = (String, String, String, String, NaiveDateTime, Option<NaiveDateTime>);
        let rows: Vec<(Departure, Run)> = q.load(conn)?;
        let purpose = partner.record_purpose().map(|p| p.as_str()).unwrap_or("member_sharing");
        let mut out = Vec::with_capacity(rows.len());
        // One manifest per notice: each carries its own note. A notice sent
        // again under the same export id is recorded once.
        let mut notices: Vec<(super::manifests::Item, String)> = Vec::new();
        for (d, (run, slug, title, member, starts_at, ends_at)) in rows {
            let key = format!("departure:{}", d.id);
            notices.push((
                super::manifests::Item {
                    user_id: d.user_id,
                    purpose: purpose.to_string(),
                    record_key: key,
                    fields: "departure.notice".into(),
                    basis: "departure".into(),
                    ledger_id: None,
                },
                format!("Told to delete what it holds under {} ({})", d.learner_id, d.reason),
            ));
            let record = SharedDeparture {
                cursor: super::sharing::encode_cursor(d.id, export_id),
                learner_id: d.learner_id.clone(),
                course: CourseRef {
                    url: format!("{}/courses/{slug}", base_url.trim_end_matches('/')),
                    id: slug,
                    title,
                    run,
                    member,
                    starts_at: starts_at.and_utc(),
                    ends_at: ends_at.map(|t| t.and_utc()),
                },
                learner_gone: d.learner_gone,
                reason: d.reason.clone(),
                departed_at: d.created_at.and_utc(),
            };
            out.push((d, record));
        }
        let head = super::manifests::ledger_head(conn)?;
        // The notice of an erasure is recorded, then its learner taken out at
        // once as erasure takes them out of every manifest (counted, the
        // chain intact): an erased learner is in no manifest.
        let erased: HashSet<i64> =
            out.iter().filter(|(d, _)| d.reason == Reason::Erased.as_str()).map(|(d, _)| d.user_id).collect();
        for (item, note) in notices {
            let header = super::manifests::Header {
                partner_id: Some(partner.id),
                recipient: &partner.name,
                export_id,
                state: super::manifests::State::Delivered,
                sha256: None,
                ledger_head: head,
                legal_reference: None,
                note: Some(&note),
                recorded_by: None,
                at: now,
            };
            super::manifests::write(conn, &header, vec![item])?;
        }
        for user_id in erased {
            super::manifests::erase(conn, user_id)?;
        }
        Ok(out)
    })
}

/// The newest departure id of a partner (0 when none).
pub fn latest(conn: &mut Conn, partner_id: i64) -> QueryResult<i64> {
    departures::table
        .filter(departures::partner_id.eq(partner_id))
        .select(diesel::dsl::max(departures::id))
        .first::<Option<i64>>(conn)
        .map(|m| m.unwrap_or(0))
}
