//! The gate: the only way learner data reaches a partner.
//!
//! Given a partner and a purpose, `next_page` walks the enrollments that
//! purpose could concern (a member's own courses; a sponsor's sponsored
//! runs), and for each one decides, inside one transaction, on what basis it
//! may be shared at this instant:
//! - a live consent for that partner, purpose and run: exactly the
//!   categories the consent names, within the purpose's ceiling;
//! - for a member institution without such a consent: de-identified records
//!   (pseudonym, enrollment, activity, performance; no profile field);
//! - for an organization and its own staff (SHR-7): the recorded basis
//!   "processor for the organization", within the purpose's ceiling, for as
//!   long as the organization has the person as staff;
//! - otherwise nothing.
//!
//! A learner who restricted sharing (RGT-3) yields nothing at all. Every
//! record handed out is recorded in a disclosure manifest naming partner,
//! learners, fields, basis, consent and export id (SHR-5, `manifests`),
//! written in the same transaction.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use partner_adapters::{CourseRef, Learner, SharedEnrollment, SharedProgress, SharedRecord, SharedResult};

use super::partners::Partner;
use super::{Categories, Category, PartnerKind, Purpose, run_scope};
use crate::db::Conn;
use crate::db::schema::{
    consent_ledger, consents, course_runs, courses, enrollments, members, org_staff, quiz_attempts, sections,
    sharing_restrictions, sponsorships, unit_completions, units, users,
};

/// Which record kinds a caller asks for; only those are built and disclosed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub enrollment: bool,
    pub progress: bool,
    pub result: bool,
}

impl Want {
    pub const ALL: Want = Want { enrollment: true, progress: true, result: true };
}

#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub partner: &'a Partner,
    pub purpose: Purpose,
    pub want: Want,
    /// Resume after this position ([`Position::START`] from the start).
    pub after: Position,
    pub limit: i64,
    /// Names the export, push or report in every disclosure row.
    pub export_id: &'a str,
    /// Site base URL, for course links in records.
    pub base_url: &'a str,
}

/// Why a record could leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    Consent {
        ledger_id: i64,
    },
    Deidentified,
    /// The partner is an organization and the learner its staff member.
    Processor,
}

/// What one enrollment yields: the kinds asked for that its basis covers.
#[derive(Debug, Clone)]
pub struct Shared {
    pub basis: Basis,
    pub categories: Categories,
    pub learner: Learner,
    pub course: CourseRef,
    pub enrollment: Option<SharedEnrollment>,
    pub progress: Option<SharedProgress>,
    pub result: Option<SharedResult>,
    /// The code of the learner's certificate for the run, when the consent
    /// covers it and one is in force; for reports (exports do not carry it).
    pub certificate: Option<String>,
}

impl Shared {
    pub fn records(&self) -> impl Iterator<Item = SharedRecord> + '_ {
        let e = self.enrollment.clone().map(SharedRecord::Enrollment);
        let p = self.progress.clone().map(SharedRecord::Progress);
        let r = self.result.clone().map(SharedRecord::Result);
        e.into_iter().chain(p).chain(r)
    }
}

pub struct Page {
    pub shared: Vec<Shared>,
    /// Position to resume from; `None` when the walk is complete.
    pub next_after: Option<Position>,
}

/// Where a walk of a partner's enrollments stands: after this learner's
/// enrollment. The walk goes by learner, then enrollment, so each page's
/// learners are a range no other page of the export holds, and a learner's
/// disclosures sit in about one manifest per export (docs/ARCHITECTURE.md,
/// "Finding a learner's manifests").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub user_id: i64,
    pub enrollment_id: i64,
}

impl Position {
    pub const START: Position = Position { user_id: 0, enrollment_id: 0 };
}

/// The key cursors are sealed with, from the site secret (`install_cursor_key`).
static CURSOR_KEY: std::sync::OnceLock<aes::Aes128> = std::sync::OnceLock::new();

/// Derives the cursor key from the site secret; the first call wins. Without
/// it (a tool that never installed keys) a random key serves the process.
pub fn install_cursor_key(secret: &[u8]) {
    use aes::cipher::KeyInit;
    use sha2::Digest;
    let digest = sha2::Sha256::new_with_prefix(b"lyceum export cursors\0").chain_update(secret).finalize();
    let _ = CURSOR_KEY.set(aes::Aes128::new_from_slice(&digest[..16]).expect("16 bytes"));
}

fn cursor_key() -> &'static aes::Aes128 {
    use aes::cipher::KeyInit;
    CURSOR_KEY.get_or_init(|| aes::Aes128::new(&rand::random::<[u8; 16]>().into()))
}

/// Opaque resume position handed to partners: the position and eight bytes
/// drawn from the export's id in one AES block. Each export's cursor for an
/// enrollment is new, so a cursor links nothing: not two exports, and not a
/// record that named the learner with one that did not (a plain enrollment
/// number would). Within one export it is the same, so a retried send is
/// the same send, byte for byte.
pub fn encode_cursor(position: i64, export_id: &str) -> String {
    use aes::cipher::BlockEncrypt;
    use sha2::Digest;
    let pad = sha2::Sha256::new_with_prefix(export_id.as_bytes()).chain_update(position.to_be_bytes()).finalize();
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(&position.to_be_bytes());
    block[8..].copy_from_slice(&pad[..8]);
    let mut block = block.into();
    cursor_key().encrypt_block(&mut block);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(block)
}

/// The record id a cursor names: the position of a single-position cursor
/// (exam candidates, departures), the enrollment of an export's
/// [`encode_position`] cursor.
pub fn decode_cursor(cursor: &str) -> Option<i64> {
    use aes::cipher::BlockDecrypt;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    if bytes.len() == 32 {
        return decode_position(cursor).ok().map(|p| p.enrollment_id);
    }
    if bytes.len() == 16 {
        let mut block = aes::Block::clone_from_slice(&bytes);
        cursor_key().decrypt_block(&mut block);
        let position = i64::from_be_bytes(block[..8].try_into().ok()?);
        return (position >= 0).then_some(position);
    }
    // Cursors handed out before they were sealed still resume.
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("e:")?.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// An export record's cursor: its position (learner, enrollment) and eight
/// bytes drawn from the export's id and the position in each of two AES
/// blocks, the second chained to the first. New in every export, the same
/// within one, as [`encode_cursor`].
pub fn encode_position(p: Position, export_id: &str) -> String {
    use aes::cipher::BlockEncrypt;
    use sha2::Digest;
    let pad = sha2::Sha256::new_with_prefix(export_id.as_bytes())
        .chain_update(p.user_id.to_be_bytes())
        .chain_update(p.enrollment_id.to_be_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first[..8].copy_from_slice(&p.user_id.to_be_bytes());
    first[8..].copy_from_slice(&pad[..8]);
    let mut first = first.into();
    cursor_key().encrypt_block(&mut first);
    let mut second = [0u8; 16];
    second[..8].copy_from_slice(&p.enrollment_id.to_be_bytes());
    second[8..].copy_from_slice(&pad[8..16]);
    for (b, c) in second.iter_mut().zip(first.iter()) {
        *b ^= c;
    }
    let mut second = second.into();
    cursor_key().encrypt_block(&mut second);
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&first);
    out.extend_from_slice(&second);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}

/// Why an export's `since` cursor cannot resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    Malformed,
    /// A cursor of the export's former order (by enrollment alone).
    Former,
}

/// The position an export's cursor seals.
pub fn decode_position(cursor: &str) -> Result<Position, CursorError> {
    use aes::cipher::BlockDecrypt;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| CursorError::Malformed)?;
    if bytes.len() != 32 {
        return Err(if decode_cursor(cursor).is_some() { CursorError::Former } else { CursorError::Malformed });
    }
    let mut first = aes::Block::clone_from_slice(&bytes[..16]);
    let mut second = aes::Block::clone_from_slice(&bytes[16..]);
    cursor_key().decrypt_block(&mut second);
    for (b, c) in second.iter_mut().zip(bytes[..16].iter()) {
        *b ^= c;
    }
    cursor_key().decrypt_block(&mut first);
    let word = |b: &aes::Block| i64::from_be_bytes(b[..8].try_into().expect("eight bytes"));
    let p = Position { user_id: word(&first), enrollment_id: word(&second) };
    if p.user_id < 0 || p.enrollment_id < 0 {
        return Err(CursorError::Malformed);
    }
    Ok(p)
}

type Candidate = (
    (
        i64,
        i64,
        i64,
        String,
        String,
        NaiveDateTime,
        Option<NaiveDateTime>,
        f64,
        bool,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
    ),
    (String, i64, String, String, String, NaiveDateTime, Option<NaiveDateTime>),
    (String, String, String, String, Option<String>),
);

/// Which of a request's candidates a decision reads: all, one learner's,
/// these learners' (a dashboard's page), or these enrollments only (a
/// report's page).
#[derive(Debug, Clone, Copy)]
enum Only<'a> {
    All,
    Learner(i64),
    Learners(&'a [i64]),
    Enrollments(&'a [i64]),
}

fn candidates(conn: &mut Conn, req: &Request<'_>, only: Only<'_>) -> QueryResult<Vec<Candidate>> {
    let mut q = enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table.inner_join(members::table)))
        .inner_join(users::table)
        // After the position, by learner then enrollment (the index
        // `enrollments(user_id, id)`), as one row comparison: PostgreSQL
        // estimates it as the rows left after the position. Written as
        // `user_id >= $1 AND (user_id > $1 OR id > $2)`, the terms'
        // selectivities were multiplied, and near the end of a million-row
        // export the planner expected a few hundred rows where 60,000 were
        // left, then hash-joined and sorted them all for every page (164 ms
        // a page instead of 5).
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(enrollments.user_id, enrollments.id) > (")
                .bind::<diesel::sql_types::BigInt, _>(req.after.user_id)
                .sql(", ")
                .bind::<diesel::sql_types::BigInt, _>(req.after.enrollment_id)
                .sql(")"),
        )
        // The same bound on the joined learners. PostgreSQL does not carry
        // an inequality across the join's equality, and at a million
        // learners it merge-joined the position's enrollments with the
        // users' primary key read from the first user: a page after
        // learner 700,000 read 700,000 index entries (203 ms a page, the
        // export slowing as it went); with the bound, 1,000 (4.5 ms).
        .filter(users::id.ge(req.after.user_id))
        .order((enrollments::user_id.asc(), enrollments::id.asc()))
        .select((
            (
                enrollments::id,
                enrollments::user_id,
                enrollments::run_id,
                enrollments::track,
                enrollments::status,
                enrollments::enrolled_at,
                enrollments::access_expires_at,
                enrollments::grade_percent,
                enrollments::passed,
                enrollments::completed_at,
                enrollments::last_activity_at,
            ),
            (
                course_runs::run_key,
                courses::id,
                courses::slug,
                courses::title,
                members::slug,
                course_runs::starts_at,
                course_runs::ends_at,
            ),
            (users::username, users::first_name, users::last_name, users::email, users::company),
        ))
        .into_boxed();
    match (req.purpose, req.partner.kind()) {
        (Purpose::MemberSharing, PartnerKind::Member) => {
            let Some(member_id) = req.partner.member_id else { return Ok(Vec::new()) };
            q = q.filter(courses::member_id.eq(member_id));
        }
        // A walk of a sponsor's or an organization's records starts from its
        // own learners (`user_id IN …`, an index probe of
        // `enrollments(user_id, run_id)` each), so a report's cost follows the
        // partner's learners, not every enrollment on the site. A read of one
        // learner, of a page's learners or of a page's enrollments (`only`)
        // leaves that list out, as it would be read whole each time: the
        // `EXISTS` probe by the learner's key is the whole check.
        (Purpose::Sponsorship, PartnerKind::Sponsor) => {
            if matches!(only, Only::All) {
                q = q.filter(
                    enrollments::user_id.eq_any(
                        sponsorships::table
                            .filter(sponsorships::partner_id.eq(req.partner.id))
                            .select(sponsorships::user_id),
                    ),
                );
            }
            q = q.filter(diesel::dsl::exists(
                sponsorships::table
                    .filter(sponsorships::partner_id.eq(req.partner.id))
                    .filter(sponsorships::user_id.eq(enrollments::user_id))
                    .filter(sponsorships::run_id.eq(enrollments::run_id)),
            ));
        }
        (Purpose::StaffTraining, PartnerKind::Organization) => {
            if matches!(only, Only::All) {
                q = q.filter(enrollments::user_id.eq_any(
                    org_staff::table.filter(org_staff::partner_id.eq(req.partner.id)).select(org_staff::user_id),
                ));
            }
            q = q.filter(diesel::dsl::exists(
                org_staff::table
                    .filter(org_staff::partner_id.eq(req.partner.id))
                    .filter(org_staff::user_id.eq(enrollments::user_id)),
            ));
        }
        // No other pairing concerns enrollments.
        _ => return Ok(Vec::new()),
    }
    match only {
        Only::All => {}
        Only::Learner(user_id) => q = q.filter(enrollments::user_id.eq(user_id)),
        Only::Learners(ids) => q = q.filter(enrollments::user_id.eq_any(ids)),
        Only::Enrollments(ids) => q = q.filter(enrollments::id.eq_any(ids)),
    }
    if req.limit < UNBOUNDED {
        q = q.limit(req.limit);
    }
    q.load(conn)
}

/// Units per course, for progress shares.
fn unit_totals(conn: &mut Conn, course_ids: &[i64]) -> QueryResult<HashMap<i64, i64>> {
    Ok(units::table
        .inner_join(sections::table)
        .filter(sections::course_id.eq_any(course_ids))
        .group_by(sections::course_id)
        .select((sections::course_id, diesel::dsl::count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect())
}

/// An enrollment's state as partners receive it.
pub fn enrollment_state(status: &str, access_expires_at: Option<NaiveDateTime>, now: NaiveDateTime) -> &'static str {
    if status != crate::learning::model::EnrollmentStatus::Active {
        "unenrolled"
    } else if access_expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// Categories of the de-identified records a member receives without consent.
pub fn deidentified() -> Categories {
    use Category::*;
    Categories::of([Enrollment, Activity, Progress, Grades, Completion])
}

/// The next page of what may leave, with its disclosures written.
pub fn next_page(conn: &mut Conn, req: &Request<'_>, now: NaiveDateTime) -> QueryResult<Page> {
    decide_then_disclose(conn, req.partner, req.export_id, now, |conn| {
        let (decided, next_after) = decide(conn, req, now, Only::All, false)?;
        let (shared, disclosed): (Vec<_>, Vec<_>) = decided.into_iter().unzip();
        Ok((Page { shared, next_after }, disclosed))
    })
}

/// How often a decision read from a snapshot is retried when a learner in it
/// changed their consent meanwhile, before deciding under the write lock.
const SNAPSHOT_TRIES: usize = 3;

/// Decides what may leave with `decide` and writes the disclosure rows of
/// what it decided, so that every record matches the consent of one
/// instant, without holding SQLite's single write lock while it reads: the
/// decision is read from a snapshot, and a short write transaction then
/// checks that no learner in it has a consent-ledger entry (a grant,
/// withdrawal, restriction or erasure) newer than the snapshot, nor left the
/// organization a processor record relied on, before it writes. If one has,
/// the decision is read again; after [`SNAPSHOT_TRIES`], or inside a caller's
/// transaction, or on PostgreSQL (whose readers never block writers), it is
/// decided and written in one write transaction as before.
fn decide_then_disclose<T>(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    now: NaiveDateTime,
    mut decide: impl FnMut(&mut Conn) -> QueryResult<(T, Vec<Disclosed>)>,
) -> QueryResult<T> {
    for _ in 0..SNAPSHOT_TRIES {
        let read = crate::db::read_snapshot(conn, |conn| {
            let seen: Option<i64> = consent_ledger::table.select(diesel::dsl::max(consent_ledger::id)).first(conn)?;
            Ok((seen.unwrap_or(0), decide(conn)?))
        });
        let Some(read) = read else { break };
        let (seen, (value, disclosed)) = read?;
        let written = crate::db::transaction(conn, |conn| {
            if changed_since(conn, partner, seen, &disclosed)? {
                return Ok(false);
            }
            write_disclosures(conn, partner, export_id, seen, disclosed, now)?;
            Ok::<_, diesel::result::Error>(true)
        })?;
        if written {
            return Ok(value);
        }
    }
    crate::db::transaction(conn, |conn| {
        // The head is read before the decision: a consent the decision then
        // reads newer than it is pinned in the manifest (`manifests`).
        let head = super::manifests::ledger_head(conn)?;
        let (value, disclosed) = decide(conn)?;
        write_disclosures(conn, partner, export_id, head, disclosed, now)?;
        Ok(value)
    })
}

/// Whether a decision read at ledger position `seen` may no longer hold for
/// what it disclosed: a learner in it has a newer ledger entry, or a
/// processor record's learner is no longer on the organization's staff.
fn changed_since(conn: &mut Conn, partner: &Partner, seen: i64, disclosed: &[Disclosed]) -> QueryResult<bool> {
    if disclosed.is_empty() {
        return Ok(false);
    }
    let changed: HashSet<i64> = consent_ledger::table
        .filter(consent_ledger::id.gt(seen))
        .select(consent_ledger::user_id)
        .distinct()
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    if disclosed.iter().any(|(user, ..)| changed.contains(user)) {
        return Ok(true);
    }
    let processed: HashSet<i64> =
        disclosed.iter().filter(|d| matches!(d.4, Basis::Processor)).map(|(user, ..)| *user).collect();
    // Read for these learners by their key (a person is on one
    // organization's staff at most), in lists SQLite binds: a page of a
    // dashboard reads its own people, not the organization's whole staff.
    let processed: Vec<i64> = processed.into_iter().collect();
    for chunk in processed.chunks(STAFF_CHECK_CHUNK) {
        let employers: Vec<i64> =
            org_staff::table.filter(org_staff::user_id.eq_any(chunk)).select(org_staff::partner_id).load(conn)?;
        if employers.iter().filter(|p| **p == partner.id).count() < chunk.len() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Learners whose place on the staff one statement checks.
const STAFF_CHECK_CHUNK: usize = 5_000;

/// A `Request::limit` that reads every candidate in one query.
const UNBOUNDED: i64 = i64::MAX;

/// The identifiers under which this learner's records may leave for
/// `partner` at this instant, as (enrollment id, learner id) pairs. Nothing
/// is disclosed or written: departures compare this with what was sent.
pub fn shareable_ids(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    user_id: i64,
    now: NaiveDateTime,
) -> QueryResult<HashSet<(i64, String)>> {
    let req = Request {
        partner,
        purpose,
        want: Want::ALL,
        after: Position::START,
        limit: UNBOUNDED,
        export_id: "",
        base_url: "",
    };
    let (decided, _) = decide(conn, &req, now, Only::Learner(user_id), false)?;
    Ok(decided
        .into_iter()
        .filter_map(|(shared, (_, _, key, _, _))| {
            let eid = key.strip_prefix("enrollment:")?.parse().ok()?;
            Some((eid, shared.learner.id))
        })
        .collect())
}

/// What may leave for a request (of one learner's records when `only` names
/// them) and the disclosure row each record needs; nothing is written.
/// Callers write the rows of what they hand out in the same transaction.
/// `certificates`: whether the caller hands out the learner's certificate
/// where the consent covers it (the sponsor report does; records and pushes
/// carry no certificate, so their disclosure rows never name one).
fn decide(
    conn: &mut Conn,
    req: &Request<'_>,
    now: NaiveDateTime,
    only: Only<'_>,
    certificates: bool,
) -> QueryResult<(Vec<Decided>, Option<Position>)> {
    if req.limit != UNBOUNDED {
        return decide_page(conn, req, now, only, certificates);
    }
    // A walk over all of a partner's records goes a bounded page at a time:
    // each page names its learners and enrollments in `IN (…)` lists, and
    // SQLite binds at most 32,766 values in one statement.
    let mut all = Vec::new();
    let mut page = Request { limit: WALK_PAGE, ..*req };
    loop {
        let (mut decided, next) = decide_page(conn, &page, now, only, certificates)?;
        all.append(&mut decided);
        match next {
            Some(after) => page.after = after,
            None => return Ok((all, None)),
        }
    }
}

/// Candidates a page of an unbounded walk reads at most.
const WALK_PAGE: i64 = 5_000;

fn decide_page(
    conn: &mut Conn,
    req: &Request<'_>,
    now: NaiveDateTime,
    only: Only<'_>,
    certificates: bool,
) -> QueryResult<(Vec<Decided>, Option<Position>)> {
    let rows = candidates(conn, req, only)?;
    let next_after = if (rows.len() as i64) < req.limit {
        None
    } else {
        rows.last().map(|r| Position { user_id: r.0.1, enrollment_id: r.0.0 })
    };
    let user_ids: Vec<i64> = rows.iter().map(|r| r.0.1).collect::<HashSet<_>>().into_iter().collect();
    let restricted = restricted_among(conn, &user_ids)?;
    let live = live_consents(conn, req.partner, req.purpose, &user_ids)?;

    // Decide each row's basis before reading any more about it.
    let mut decided = Vec::with_capacity(rows.len());
    for row in rows {
        let (e, _, _) = &row;
        if restricted.contains(&e.1) {
            continue;
        }
        let (basis, cats) = match live.get(&(e.1, run_scope(e.2))) {
            Some((ledger_id, cats)) => (Basis::Consent { ledger_id: *ledger_id }, cats.clone()),
            None if req.purpose == Purpose::MemberSharing => (Basis::Deidentified, deidentified()),
            None if req.purpose == Purpose::StaffTraining => (Basis::Processor, req.purpose.ceiling()),
            None => continue,
        };
        decided.push((row, basis, cats));
    }

    let need_progress = req.want.progress && decided.iter().any(|(_, _, c)| c.contains(Category::Progress));
    let (done, totals) = if need_progress {
        let ids: Vec<i64> = decided.iter().map(|(r, _, _)| r.0.0).collect();
        let course_ids: Vec<i64> = decided.iter().map(|(r, _, _)| r.1.1).collect::<HashSet<_>>().into_iter().collect();
        let done: HashMap<i64, i64> = unit_completions::table
            .filter(unit_completions::enrollment_id.eq_any(&ids))
            .group_by(unit_completions::enrollment_id)
            .select((unit_completions::enrollment_id, diesel::dsl::count_star()))
            .load::<(i64, i64)>(conn)?
            .into_iter()
            .collect();
        let totals = unit_totals(conn, &course_ids)?;
        (done, totals)
    } else {
        (HashMap::new(), HashMap::new())
    };

    // When each graded enrollment was last graded: its latest quiz attempt.
    let need_grades = req.want.result && decided.iter().any(|(_, _, c)| c.contains(Category::Grades));
    let graded_at: HashMap<i64, NaiveDateTime> = if need_grades {
        let ids: Vec<i64> = decided.iter().map(|(r, _, _)| r.0.0).collect();
        quiz_attempts::table
            .filter(quiz_attempts::enrollment_id.eq_any(&ids))
            .group_by(quiz_attempts::enrollment_id)
            .select((quiz_attempts::enrollment_id, diesel::dsl::max(quiz_attempts::submitted_at)))
            .load::<(i64, Option<NaiveDateTime>)>(conn)?
            .into_iter()
            .filter_map(|(id, at)| at.map(|at| (id, at)))
            .collect()
    } else {
        HashMap::new()
    };

    // The certificate in force for each (learner, run) whose consent covers it.
    let need_certificates =
        certificates && req.want.result && decided.iter().any(|(_, _, c)| c.contains(Category::Certificate));
    let certificate_codes: HashMap<(i64, i64), String> = if need_certificates {
        use crate::db::schema::certificates;
        let users: Vec<i64> = decided
            .iter()
            .filter(|(_, _, c)| c.contains(Category::Certificate))
            .map(|(r, _, _)| r.0.1)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        certificates::table
            .filter(certificates::user_id.eq_any(&users))
            .filter(certificates::revoked_at.is_null())
            .order(certificates::id.asc())
            .select((
                certificates::user_id.assume_not_null(),
                certificates::run_id.assume_not_null(),
                certificates::code,
            ))
            .filter(certificates::run_id.is_not_null())
            .load::<(i64, i64, String)>(conn)?
            .into_iter()
            .map(|(u, r, code)| ((u, r), code))
            .collect()
    } else {
        HashMap::new()
    };

    let mut out = Vec::with_capacity(decided.len());
    for ((e, c, u), basis, cats) in decided {
        let (eid, user_id, run_id, track, status, enrolled_at, expires, grade, passed, completed_at, last_activity) = e;
        let (run_key, course_id, slug, title, member_slug, run_starts_at, run_ends_at) = c;
        let (username, first, last, email, company) = u;
        let cursor = encode_position(Position { user_id, enrollment_id: eid }, req.export_id);
        let identified = cats.contains(Category::ProfileUsername);
        // A record naming the learner by any field is not de-identified, and
        // must never carry the code that de-identified records carry.
        let named = cats.iter().any(|c| c.is_identity());
        // Exact times single a learner out as well as a name does: records
        // without identity carry the day only.
        let when = |t: NaiveDateTime| if named { t } else { t.date().and_time(chrono::NaiveTime::MIN) };
        let id = if identified {
            username.clone()
        } else if named {
            req.partner.named_pseudonym(user_id)
        } else {
            req.partner.run_pseudonym(user_id, run_id)
        };
        let learner = Learner {
            id,
            pseudonymous: !identified,
            username: identified.then_some(username),
            name: cats.contains(Category::ProfileName).then(|| format!("{first} {last}").trim().to_string()),
            email: cats.contains(Category::ProfileEmail).then_some(email),
            company: if cats.contains(Category::ProfileCompany) { company } else { None },
        };
        let course = CourseRef {
            url: format!("{}/courses/{slug}", req.base_url.trim_end_matches('/')),
            id: slug,
            title,
            run: run_key,
            member: member_slug,
            starts_at: run_starts_at.and_utc(),
            ends_at: run_ends_at.map(|t| t.and_utc()),
        };
        let mut fields = learner_fields(&learner);
        let enrollment = (req.want.enrollment && cats.contains(Category::Enrollment)).then(|| {
            fields.extend(["enrollment.course", "enrollment.track", "enrollment.status", "enrollment.enrolled_at"]);
            let state = enrollment_state(&status, expires, now);
            SharedEnrollment {
                cursor: cursor.clone(),
                learner: learner.clone(),
                course: course.clone(),
                track: track.clone(),
                status: state.to_string(),
                enrolled_at: when(enrolled_at).and_utc(),
            }
        });
        let activity = cats.contains(Category::Activity);
        let progressed = cats.contains(Category::Progress);
        let progress = (req.want.progress && (activity || progressed)).then(|| {
            if activity {
                fields.push("progress.last_activity_at");
            }
            if progressed {
                fields.extend(["progress.units_completed", "progress.units_total", "progress.percent"]);
            }
            let done = done.get(&eid).copied().unwrap_or(0);
            let total = totals.get(&course_id).copied().unwrap_or(0);
            SharedProgress {
                cursor: cursor.clone(),
                learner: learner.clone(),
                course: course.clone(),
                last_activity_at: if activity { last_activity.map(|t| when(t).and_utc()) } else { None },
                units_completed: progressed.then_some(done as u32),
                units_total: progressed.then_some(total as u32),
                progress_percent: progressed.then(|| progress_percent(done, total)),
            }
        });
        let graded = cats.contains(Category::Grades);
        let completion = cats.contains(Category::Completion);
        let certified = certificates && req.want.result && cats.contains(Category::Certificate);
        let certificate = certified.then(|| certificate_codes.get(&(user_id, run_id)).cloned()).flatten();
        let result = (req.want.result && (graded || completion || certified)).then(|| {
            if graded {
                fields.extend(["result.grade_percent", "result.passed"]);
            }
            // A pass recorded without an attempt (granted by staff) dates from its completion.
            let graded_on = graded_at.get(&eid).copied().or(if passed { completed_at } else { None });
            // The outcome is final once the run has ended or the learner's access expired.
            let final_on = [run_ends_at, expires].into_iter().flatten().filter(|t| *t <= now).min();
            if graded && graded_on.is_some() {
                fields.push("result.graded_at");
            }
            if graded && final_on.is_some() {
                fields.push("result.final_at");
            }
            if completion {
                fields.push("result.completed_at");
            }
            if certified {
                fields.push("result.certificate");
            }
            SharedResult {
                cursor: cursor.clone(),
                learner: learner.clone(),
                course: course.clone(),
                grade_percent: graded.then_some(grade),
                passed: graded.then_some(passed),
                completed_at: if completion { completed_at.map(|t| when(t).and_utc()) } else { None },
                graded_at: if graded { graded_on.map(|t| when(t).and_utc()) } else { None },
                final_at: if graded { final_on.map(|t| when(t).and_utc()) } else { None },
            }
        });
        if enrollment.is_none() && progress.is_none() && result.is_none() {
            continue;
        }
        let disclosed = (user_id, req.purpose, format!("enrollment:{eid}"), fields.join(","), basis.clone());
        out.push((
            Shared { basis, categories: cats, learner, course, enrollment, progress, result, certificate },
            disclosed,
        ));
    }
    Ok((out, next_after))
}

/// The share of a course's units a learner completed, in percent to one
/// decimal, as records carry it.
fn progress_percent(done: i64, total: i64) -> f64 {
    if total == 0 { 0.0 } else { (done as f64 * 1000.0 / total as f64).round() / 10.0 }
}

/// Whether a decision under these categories hands out any record at all
/// (`decide_page` drops an enrollment that yields no record).
fn yields(want: Want, cats: &Categories, certificates: bool) -> bool {
    (want.enrollment && cats.contains(Category::Enrollment))
        || (want.progress && (cats.contains(Category::Activity) || cats.contains(Category::Progress)))
        || (want.result
            && (cats.contains(Category::Grades)
                || cats.contains(Category::Completion)
                || (certificates && cats.contains(Category::Certificate))))
}

/// One record handed out: learner, purpose, record key, fields, basis.
type Disclosed = (i64, Purpose, String, String, Basis);

/// A record the gate lets through, with the disclosure row it needs.
type Decided = (Shared, Disclosed);

/// Records every record handed out (SHR-5) in manifests, one per group of
/// identical purpose, basis and fields (`manifests::write`). At most once
/// per record, fields, basis, consent and export: a push retried after a
/// crash, or a pull resumed, walks the gate again under the same export id.
/// A record that leaves under another consent is recorded again.
/// `ledger_head`: the newest ledger id when the decision was read.
fn write_disclosures(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    ledger_head: i64,
    disclosed: Vec<Disclosed>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    record(conn, partner, export_id, ledger_head, super::manifests::State::Delivered, None, disclosed, now)
}

#[allow(clippy::too_many_arguments)]
fn record(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    ledger_head: i64,
    state: super::manifests::State,
    sha256: Option<&str>,
    disclosed: Vec<Disclosed>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    if disclosed.is_empty() {
        return Ok(());
    }
    let items = disclosed
        .into_iter()
        .map(|(user_id, purpose, record_key, fields, basis)| {
            let (basis, ledger_id) = match basis {
                Basis::Consent { ledger_id } => ("consent", Some(ledger_id)),
                Basis::Deidentified => ("deidentified", None),
                Basis::Processor => ("processor", None),
            };
            super::manifests::Item {
                user_id,
                purpose: purpose.as_str().to_string(),
                record_key,
                fields,
                basis: basis.to_string(),
                ledger_id,
            }
        })
        .collect();
    let header = super::manifests::Header {
        partner_id: Some(partner.id),
        recipient: &partner.name,
        export_id,
        state,
        sha256,
        ledger_head,
        legal_reference: None,
        note: None,
        recorded_by: None,
        at: now,
    };
    super::manifests::write(conn, &header, items).map(|_| ())
}

fn learner_fields(l: &Learner) -> Vec<&'static str> {
    let mut f = vec![if l.pseudonymous { "learner.pseudonym" } else { "learner.username" }];
    if l.name.is_some() {
        f.push("learner.name");
    }
    if l.email.is_some() {
        f.push("learner.email");
    }
    if l.company.is_some() {
        f.push("learner.company");
    }
    f
}

/// Everything that may leave for this partner and purpose right now, in
/// order, with a disclosure row for each record; for reports and pushes of
/// bounded size (one query, one transaction). Exports stream with
/// `next_page` instead.
pub fn all(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<Shared>> {
    let every = |f: &[Figures]| vec![true; f.len()];
    let (_, shared) = picked_with(conn, partner, purpose, want, export_id, base_url, now, false, every)?;
    Ok(shared)
}

/// What a push decided to send, recorded only once the partner confirmed
/// receipt ([`record_delivered`]): a disclosure is a delivery, not an attempt.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    disclosed: Vec<Disclosed>,
    /// The newest ledger id when the decision was read.
    ledger_head: i64,
}

impl Pending {
    /// The part of it about the enrollments in `delivered`.
    pub fn only(&self, delivered: &HashSet<i64>) -> Pending {
        let of = |key: &str| key.strip_prefix("enrollment:").and_then(|e| e.parse::<i64>().ok());
        Pending {
            ledger_head: self.ledger_head,
            disclosed: self
                .disclosed
                .iter()
                .filter(|d| of(&d.2).is_some_and(|e| delivered.contains(&e)))
                .cloned()
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.disclosed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.disclosed.is_empty()
    }
}

/// Everything that may leave for this partner and purpose right now,
/// decided at one instant (a consistent read), with what to record once the
/// partner confirms it arrived. For pushes: nothing is recorded for a send
/// that never arrives.
pub fn all_undelivered(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
) -> QueryResult<(Vec<Shared>, Pending)> {
    let req = Request { partner, purpose, want, after: Position::START, limit: UNBOUNDED, export_id, base_url };
    let decide_all = |conn: &mut Conn| {
        let ledger_head = super::manifests::ledger_head(conn)?;
        let (decided, _) = decide(conn, &req, now, Only::All, false)?;
        let (shared, disclosed): (Vec<_>, Vec<_>) = decided.into_iter().unzip();
        Ok((shared, Pending { disclosed, ledger_head }))
    };
    match crate::db::read_snapshot(conn, decide_all) {
        Some(read) => read,
        None => crate::db::transaction(conn, decide_all),
    }
}

/// Records what a partner confirmed it received, under the send's key
/// (at most once per record, fields, basis and key, so a retried send that
/// arrives twice is recorded once), with the digest of what was sent.
pub fn record_delivered(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    delivered: Pending,
    sha256: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let state = super::manifests::State::Delivered;
    record(conn, partner, export_id, delivered.ledger_head, state, sha256, delivered.disclosed, now)
}

/// Records a send the destination never confirmed, as attempted: the
/// learner's log tells it, and never as shared.
pub fn record_attempted(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    attempted: Pending,
    sha256: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let state = super::manifests::State::Attempted;
    record(conn, partner, export_id, attempted.ledger_head, state, sha256, attempted.disclosed, now)
}

/// What an aggregate may use of a record the gate lets through: no
/// identity, only figures within the categories of its basis.
#[derive(Debug, Clone)]
pub struct Figures {
    pub course_slug: String,
    pub course_title: String,
    pub progress_percent: Option<f64>,
    pub completed_at: Option<NaiveDateTime>,
}

impl Figures {
    fn of(s: &Shared) -> Figures {
        Figures {
            course_slug: s.course.id.clone(),
            course_title: s.course.title.clone(),
            progress_percent: s.progress.as_ref().and_then(|p| p.progress_percent),
            completed_at: s.result.as_ref().and_then(|r| r.completed_at).map(|t| t.naive_utc()),
        }
    }
}

/// Like [`all`], but only the records `pick` chooses leave (and get a
/// disclosure row); the figures of every record come back for aggregates.
/// A report that shows one page of learners and charts over all of them
/// discloses that page only. `pick` gets the figures in order and answers
/// one bool per record. Where the consent covers it, a record chosen also
/// carries the learner's certificate (`Shared::certificate`), for the
/// report's table.
#[allow(clippy::too_many_arguments)]
pub fn picked(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
    pick: impl FnMut(&[Figures]) -> Vec<bool>,
) -> QueryResult<(Vec<Figures>, Vec<Shared>)> {
    picked_with(conn, partner, purpose, want, export_id, base_url, now, true, pick)
}

#[allow(clippy::too_many_arguments)]
fn picked_with(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
    certificates: bool,
    mut pick: impl FnMut(&[Figures]) -> Vec<bool>,
) -> QueryResult<(Vec<Figures>, Vec<Shared>)> {
    decide_then_disclose(conn, partner, export_id, now, |conn| {
        let req = Request { partner, purpose, want, after: Position::START, limit: UNBOUNDED, export_id, base_url };
        let (decided, _) = decide(conn, &req, now, Only::All, certificates)?;
        let figures: Vec<Figures> = decided.iter().map(|(s, _)| Figures::of(s)).collect();
        let chosen = pick(&figures);
        let (shared, disclosed): (Vec<_>, Vec<_>) = decided
            .into_iter()
            .zip(chosen.into_iter().chain(std::iter::repeat(false)))
            .filter(|(_, keep)| *keep)
            .map(|(d, _)| d)
            .unzip();
        Ok(((figures, shared), disclosed))
    })
}

/// A sponsor's report page: `select` reads, in the same snapshot as the
/// gate's decision, whatever the page counts and which enrollments it lists;
/// only those enrollments are decided on, handed out (with the learner's
/// certificate where the consent covers it) and disclosed, in enrollment
/// order. The page's cost follows the rows it shows.
#[allow(clippy::too_many_arguments)]
pub fn report_page<T>(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
    mut select: impl FnMut(&mut Conn) -> QueryResult<(T, Vec<i64>)>,
) -> QueryResult<(T, Vec<Shared>)> {
    decide_then_disclose(conn, partner, export_id, now, |conn| {
        let (value, shown) = select(conn)?;
        if shown.is_empty() {
            return Ok(((value, Vec::new()), Vec::new()));
        }
        let req = Request { partner, purpose, want, after: Position::START, limit: UNBOUNDED, export_id, base_url };
        let (decided, _) = decide(conn, &req, now, Only::Enrollments(&shown), true)?;
        let (shared, disclosed): (Vec<_>, Vec<_>) = decided.into_iter().unzip();
        Ok(((value, shared), disclosed))
    })
}

/// Like [`picked`], for a download of everything: the walk goes a page of
/// candidates at a time, each page decided and disclosed at its own instant
/// (as a pull export's pages are), and only the records `pick` chooses leave
/// and are disclosed; `each` receives them page by page, so the whole walk
/// is never held at once.
#[allow(clippy::too_many_arguments)]
pub fn picked_pages(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
    mut pick: impl FnMut(&Figures) -> bool,
    mut each: impl FnMut(Vec<Shared>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut after = Position::START;
    loop {
        let req = Request { partner, purpose, want, after, limit: WALK_PAGE, export_id, base_url };
        let (shared, next) = decide_then_disclose(conn, partner, export_id, now, |conn| {
            let (decided, next) = decide_page(conn, &req, now, Only::All, true)?;
            let (shared, disclosed): (Vec<_>, Vec<_>) =
                decided.into_iter().filter(|(s, _)| pick(&Figures::of(s))).unzip();
            Ok(((shared, next), disclosed))
        })?;
        each(shared)?;
        match next {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

/// A group of the records the gate lets through for a sponsor's report
/// ([`sponsored_tallies`]): how many learners' records carry these figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub course_id: i64,
    pub course_slug: String,
    pub course_title: String,
    /// The consent's categories as stored: what [`sponsored_page`] selects by.
    pub consent: String,
    /// The progress the records carry (`None` where the consent does not cover it).
    pub progress_percent: Option<f64>,
    /// Whether the records carry a completion (the consent covers it and the learner completed).
    pub completed: bool,
    /// Which of the weeks asked about that completion falls in.
    pub week: Option<usize>,
    pub learners: u64,
}

/// The enrollments a sponsor's report concerns, under exactly the gate's
/// rule (`candidates` and `decide_page` for a sponsor and this purpose):
/// enrolled in a run this partner sponsors them for, not restricted, under
/// a live consent for this partner, purpose and run (`k`). Whether the
/// consent's categories yield a record is decided on its stored text
/// (`Tally::consent`), by the gate's own code.
fn sponsored_from(partner: &Partner, purpose: Purpose) -> String {
    format!(
        "FROM sponsorships s \
         JOIN enrollments e ON e.user_id = s.user_id AND e.run_id = s.run_id \
         JOIN course_runs r ON r.id = e.run_id JOIN courses c ON c.id = r.course_id \
         JOIN members m ON m.id = c.member_id JOIN users u ON u.id = e.user_id \
         JOIN consents k ON k.user_id = e.user_id AND k.partner_id = s.partner_id \
           AND k.purpose = '{purpose}' AND k.status = '{granted}' AND k.scope = ('run:' || e.run_id) \
         WHERE s.partner_id = {partner} \
           AND NOT EXISTS (SELECT 1 FROM sharing_restrictions x WHERE x.user_id = e.user_id)",
        purpose = purpose.as_str(),
        granted = super::ConsentStatus::Granted.as_str(),
        partner = partner.id,
    )
}

/// A timestamp as an SQL literal both backends compare with a stored one.
fn timestamp_literal(t: NaiveDateTime) -> String {
    format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.f"))
}

/// A text as an SQL literal.
fn text_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What the gate would let through for a sponsor's report, counted in the
/// database rather than decided record by record: the records of every
/// enrollment [`sponsored_from`] selects whose consent yields a record,
/// grouped by course, consent, progress and the week of completion among
/// `weeks` (each a week's start, ascending; the last ends the last week).
/// Nothing is read of any learner but these figures, and nothing leaves.
pub fn sponsored_tallies(conn: &mut Conn, partner: &Partner, weeks: &[NaiveDateTime]) -> QueryResult<Vec<Tally>> {
    use diesel::sql_types::{BigInt, Integer, Text};
    #[derive(QueryableByName)]
    struct Group {
        #[diesel(sql_type = BigInt)]
        course_id: i64,
        #[diesel(sql_type = Text)]
        slug: String,
        #[diesel(sql_type = Text)]
        title: String,
        #[diesel(sql_type = Text)]
        categories: String,
        #[diesel(sql_type = Integer)]
        completed: i32,
        #[diesel(sql_type = Integer)]
        week: i32,
        #[diesel(sql_type = BigInt)]
        done: i64,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let purpose = Purpose::Sponsorship;
    if partner.kind() != PartnerKind::Sponsor {
        return Ok(Vec::new());
    }
    let mut week = String::from("CASE WHEN e.completed_at IS NULL THEN -1");
    if let (Some(first), Some(end)) = (weeks.first(), weeks.last()) {
        week.push_str(&format!(
            " WHEN e.completed_at < {} OR e.completed_at >= {} THEN -1",
            timestamp_literal(*first),
            timestamp_literal(*end)
        ));
        for (i, start) in weeks.iter().enumerate().skip(1) {
            week.push_str(&format!(" WHEN e.completed_at < {} THEN {}", timestamp_literal(*start), i - 1));
        }
    }
    week.push_str(" ELSE -1 END");
    let sql = format!(
        "SELECT course_id, slug, title, categories, completed, week, done, count(*) AS n FROM ( \
           SELECT c.id AS course_id, c.slug AS slug, c.title AS title, k.categories AS categories, \
             CASE WHEN e.completed_at IS NULL THEN 0 ELSE 1 END AS completed, {week} AS week, \
             (SELECT count(*) FROM unit_completions uc WHERE uc.enrollment_id = e.id) AS done \
           {from} \
         ) t GROUP BY course_id, slug, title, categories, completed, week, done",
        from = sponsored_from(partner, purpose),
    );
    let groups = diesel::sql_query(sql).load::<Group>(conn)?;
    let course_ids: Vec<i64> = groups.iter().map(|g| g.course_id).collect::<HashSet<_>>().into_iter().collect();
    let totals = unit_totals(conn, &course_ids)?;
    let ceiling = purpose.ceiling();
    Ok(groups
        .into_iter()
        .filter_map(|g| {
            let cats = Categories::parse(&g.categories).intersect(&ceiling);
            if !yields(Want::ALL, &cats, true) {
                return None;
            }
            // As `decide_page` builds the records, and `Figures::of` reads them.
            let progress_percent = (Want::ALL.progress && cats.contains(Category::Progress))
                .then(|| progress_percent(g.done, totals.get(&g.course_id).copied().unwrap_or(0)));
            let completed = Want::ALL.result && cats.contains(Category::Completion) && g.completed == 1;
            Some(Tally {
                course_id: g.course_id,
                course_slug: g.slug,
                course_title: g.title,
                consent: g.categories,
                progress_percent,
                completed,
                week: (completed && g.week >= 0).then_some(g.week as usize),
                learners: g.n.max(0) as u64,
            })
        })
        .collect())
}

/// Which enrollments a page of a sponsor's report lists.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these courses (`None`: all).
    pub courses: Option<Vec<i64>>,
    /// Consents (as stored) whose records count (`Tally::consent`).
    pub consents: Vec<String>,
    /// Only the completed (`Some(true)`) or the others (`Some(false)`), by
    /// whether the records carry a completion: these consents cover it.
    pub completed: Option<(bool, Vec<String>)>,
}

/// The enrollments of a sponsor's report that `selection` lists, in
/// enrollment order (the gate's), `limit` of them after skipping `offset`;
/// read in the database, by the rule [`sponsored_tallies`] counts by.
pub fn sponsored_page(
    conn: &mut Conn,
    partner: &Partner,
    selection: &Selection,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    if partner.kind() != PartnerKind::Sponsor || selection.consents.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    let list = |items: &[String]| items.iter().map(|s| text_literal(s)).collect::<Vec<_>>().join(", ");
    let mut sql = format!(
        "SELECT e.id AS id {from} AND k.categories IN ({consents})",
        from = sponsored_from(partner, Purpose::Sponsorship),
        consents = list(selection.consents.as_slice()),
    );
    if let Some(courses) = &selection.courses {
        if courses.is_empty() {
            return Ok(Vec::new());
        }
        let ids = courses.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
        sql.push_str(&format!(" AND c.id IN ({ids})"));
    }
    if let Some((completed, covering)) = &selection.completed {
        let shows = if covering.is_empty() {
            "1 = 0".to_string()
        } else {
            format!("(e.completed_at IS NOT NULL AND k.categories IN ({}))", list(covering.as_slice()))
        };
        sql.push_str(&if *completed { format!(" AND {shows}") } else { format!(" AND NOT {shows}") });
    }
    sql.push_str(&format!(" ORDER BY e.id LIMIT {limit} OFFSET {}", offset.max(0)));
    Ok(diesel::sql_query(sql).load::<Id>(conn)?.into_iter().map(|r| r.id).collect())
}

/// A contact a partner may send marketing to: only learners who gave the
/// separate partner-marketing consent, not restricted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingContact {
    pub name: String,
    pub email: String,
}

pub fn marketing_contacts(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<MarketingContact>> {
    crate::db::transaction(conn, |conn| {
        let head = super::manifests::ledger_head(conn)?;
        let rows: Vec<(i64, i64, String, String, String, String)> = consents::table
            .inner_join(users::table)
            .filter(consents::partner_id.eq(partner.id))
            .filter(consents::purpose.eq(Purpose::PartnerMarketing.as_str()))
            .filter(consents::status.eq(super::ConsentStatus::Granted.as_str()))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                sharing_restrictions::table.filter(sharing_restrictions::user_id.eq(consents::user_id)),
            )))
            .order(consents::id)
            .select((
                consents::user_id,
                consents::ledger_id,
                consents::categories,
                users::first_name,
                users::last_name,
                users::email,
            ))
            .load(conn)?;
        let mut out = Vec::new();
        let mut disclosed: Vec<Disclosed> = Vec::new();
        for (user_id, ledger_id, cats, first, last, email) in rows {
            let cats = Categories::parse(&cats).intersect(&Purpose::PartnerMarketing.ceiling());
            if !cats.contains(Category::ProfileEmail) {
                continue;
            }
            let name = if cats.contains(Category::ProfileName) { format!("{first} {last}") } else { String::new() };
            let fields = if name.is_empty() { "learner.email" } else { "learner.name,learner.email" };
            disclosed.push((
                user_id,
                Purpose::PartnerMarketing,
                format!("contact:{user_id}"),
                fields.to_string(),
                Basis::Consent { ledger_id },
            ));
            out.push(MarketingContact { name, email });
        }
        write_disclosures(conn, partner, export_id, head, disclosed, now)?;
        Ok(out)
    })
}

/// A disclosure required by law (SHR-8), entered by staff with its legal
/// reference. It is logged like every other disclosure and shown to the
/// learner on their Sharing page.
pub struct LegalDisclosure<'a> {
    pub user_id: i64,
    /// The partner it went to, when it is one (an exam body told of malpractice).
    pub partner_id: Option<i64>,
    pub recipient: &'a str,
    pub legal_reference: &'a str,
    pub fields: &'a str,
    pub note: &'a str,
    pub recorded_by: i64,
}

pub fn record_legal(conn: &mut Conn, d: &LegalDisclosure<'_>, now: NaiveDateTime) -> QueryResult<i64> {
    let export_id = format!("legal-{}", uuid::Uuid::new_v4());
    let header = super::manifests::Header {
        partner_id: d.partner_id,
        recipient: d.recipient,
        export_id: &export_id,
        state: super::manifests::State::Delivered,
        sha256: None,
        ledger_head: 0,
        legal_reference: Some(d.legal_reference),
        note: Some(d.note),
        recorded_by: Some(d.recorded_by),
        at: now,
    };
    let item = super::manifests::Item {
        user_id: d.user_id,
        purpose: "legal_obligation".into(),
        record_key: format!("user:{}", d.user_id),
        fields: d.fields.to_string(),
        basis: "legal".into(),
        ledger_id: None,
    };
    crate::db::transaction(conn, |conn| {
        let head = super::manifests::ledger_head(conn)?;
        let header = super::manifests::Header { ledger_head: head, ..header };
        super::manifests::write(conn, &header, vec![item])?.first().copied().ok_or(diesel::result::Error::NotFound)
    })
}

pub use super::manifests::Disclosure;

/// A learner's disclosures, newest first, read from the manifests.
pub fn disclosures_of(conn: &mut Conn, user_id: i64, limit: i64) -> QueryResult<Vec<Disclosure>> {
    super::manifests::disclosures_of(conn, user_id, limit)
}

/// De-identified figures about one course run for researchers (SHR-6):
/// counts, never rows; any count under [`super::report::K_ANONYMITY`] is
/// `None`, and a mean is given only over at least that many learners.
/// Learners who restricted sharing (RGT-3) are not counted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunAggregate {
    pub course: String,
    pub course_title: String,
    pub member: String,
    pub run: String,
    pub enrolled: Option<u64>,
    pub active_last_30_days: Option<u64>,
    pub completed: Option<u64>,
    pub passed: Option<u64>,
    /// Learners by share of units completed: 0–24 %, 25–49 %, 50–74 %, 75–99 %, 100 %.
    pub progress: [Option<u64>; 5],
    pub mean_grade_percent: Option<f64>,
}

pub const PROGRESS_BUCKETS: [&str; 5] = ["0-24", "25-49", "50-74", "75-99", "100"];

/// enrollment id, run id, course id, completed at, passed, grade, last activity.
type AggregateRow = (i64, i64, i64, Option<NaiveDateTime>, bool, f64, Option<NaiveDateTime>);

/// Figures for every run of a published course, in course order.
pub fn aggregates(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<Vec<RunAggregate>> {
    use super::report::suppress;
    let rows: Vec<AggregateRow> = enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(courses::published.eq(true))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            sharing_restrictions::table.filter(sharing_restrictions::user_id.eq(enrollments::user_id)),
        )))
        .select((
            enrollments::id,
            enrollments::run_id,
            courses::id,
            enrollments::completed_at,
            enrollments::passed,
            enrollments::grade_percent,
            enrollments::last_activity_at,
        ))
        .load(conn)?;
    let done: HashMap<i64, i64> = unit_completions::table
        .inner_join(enrollments::table.inner_join(course_runs::table.inner_join(courses::table)))
        .filter(courses::published.eq(true))
        .group_by(unit_completions::enrollment_id)
        .select((unit_completions::enrollment_id, diesel::dsl::count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    let course_ids: Vec<i64> = rows.iter().map(|r| r.2).collect::<HashSet<_>>().into_iter().collect();
    let totals = unit_totals(conn, &course_ids)?;
    let runs: Vec<(i64, String, String, String, String)> = course_runs::table
        .inner_join(courses::table.inner_join(members::table))
        .filter(courses::published.eq(true))
        .order((courses::title.asc(), course_runs::id.asc()))
        .select((course_runs::id, courses::slug, courses::title, members::slug, course_runs::run_key))
        .load(conn)?;
    #[derive(Default)]
    struct Tally {
        enrolled: u64,
        active: u64,
        completed: u64,
        passed: u64,
        progress: [u64; 5],
        grades: Vec<f64>,
    }
    let mut tallies: HashMap<i64, Tally> = HashMap::new();
    let recent = now - chrono::Duration::days(30);
    for (eid, run_id, course_id, completed_at, passed, grade, last_activity) in rows {
        let t = tallies.entry(run_id).or_default();
        t.enrolled += 1;
        t.active += u64::from(last_activity.is_some_and(|a| a >= recent));
        t.completed += u64::from(completed_at.is_some());
        t.passed += u64::from(passed);
        let total = totals.get(&course_id).copied().unwrap_or(0);
        let share = if total == 0 { 0.0 } else { done.get(&eid).copied().unwrap_or(0) as f64 / total as f64 };
        let bucket = if share >= 1.0 { 4 } else { ((share * 4.0) as usize).min(3) };
        t.progress[bucket] += 1;
        if grade > 0.0 || passed {
            t.grades.push(grade);
        }
    }
    Ok(runs
        .into_iter()
        .map(|(run_id, course, course_title, member, run)| {
            let t = tallies.remove(&run_id).unwrap_or_default();
            let graded = t.grades.len() as u64;
            RunAggregate {
                course,
                course_title,
                member,
                run,
                enrolled: suppress(t.enrolled),
                active_last_30_days: suppress(t.active),
                completed: suppress(t.completed),
                passed: suppress(t.passed),
                progress: t.progress.map(suppress),
                mean_grade_percent: suppress(graded)
                    .map(|n| (t.grades.iter().sum::<f64>() / n as f64 * 10.0).round() / 10.0),
            }
        })
        .collect())
}

/// Live consents of these learners for a partner and purpose, by (learner,
/// scope): ledger id and categories within the purpose's ceiling.
fn live_consents(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    user_ids: &[i64],
) -> QueryResult<HashMap<(i64, String), (i64, Categories)>> {
    let mut live = HashMap::new();
    // In bounded lists: SQLite binds at most 32,766 values in one statement.
    for users in user_ids.chunks(WALK_PAGE as usize) {
        live.extend(
            consents::table
                .filter(consents::partner_id.eq(partner.id))
                .filter(consents::purpose.eq(purpose.as_str()))
                .filter(consents::status.eq(super::ConsentStatus::Granted.as_str()))
                .filter(consents::user_id.eq_any(users))
                .select((consents::user_id, consents::scope, consents::ledger_id, consents::categories))
                .load::<(i64, String, i64, String)>(conn)?
                .into_iter()
                .map(|(u, s, l, c)| ((u, s), (l, Categories::parse(&c).intersect(&purpose.ceiling())))),
        );
    }
    Ok(live)
}

fn restricted_among(conn: &mut Conn, user_ids: &[i64]) -> QueryResult<HashSet<i64>> {
    let mut restricted = HashSet::new();
    for users in user_ids.chunks(WALK_PAGE as usize) {
        restricted.extend(
            sharing_restrictions::table
                .filter(sharing_restrictions::user_id.eq_any(users))
                .select(sharing_restrictions::user_id)
                .load::<i64>(conn)?,
        );
    }
    Ok(restricted)
}

/// A candidate as an exam body receives it. A cancelled booking, or one
/// whose learner withdrew or restricted sharing, carries its reference and
/// status only.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExamCandidate {
    pub booking: String,
    pub session: i64,
    pub status: String,
    pub booked_at: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// Only under the learner's separate consent for support needs.
    pub support_needs: Option<String>,
    pub adjustments: Option<String>,
}

type CandidateRow =
    ((i64, i64, String, String, NaiveDateTime, i64), (i64, String, String, String, Option<chrono::NaiveDate>));

/// Which of an exam body's candidates a page holds, in booking order: those
/// after booking `after` (0 from the first), `skip` of them skipped, at
/// most `limit`. Only the page's candidates are read through the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateWindow {
    pub after: i64,
    pub skip: i64,
    pub limit: i64,
}

/// A page of an exam body's candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidatePage {
    pub candidates: Vec<ExamCandidate>,
    /// The learners the page's bookings are, in the same order (for the
    /// audit log; never handed out).
    pub learners: Vec<i64>,
    /// The booking the next page starts after; `None` on the last page.
    pub next_after: Option<i64>,
}

/// A page of an exam body's candidates (one session, or all), with a
/// disclosure row for each one on it whose details leave: registration
/// details under the registration consent, support needs under their own.
pub fn exam_candidates(
    conn: &mut Conn,
    partner: &Partner,
    session: Option<i64>,
    window: CandidateWindow,
    export_id: &str,
    now: NaiveDateTime,
) -> QueryResult<CandidatePage> {
    use crate::db::schema::{exam_bookings, exam_sessions, support_needs};
    let limit = window.limit.clamp(1, UNBOUNDED - 1);
    crate::db::transaction(conn, |conn| {
        let head = super::manifests::ledger_head(conn)?;
        let mut q = exam_bookings::table
            .inner_join(exam_sessions::table)
            .inner_join(users::table)
            .filter(exam_sessions::partner_id.eq(partner.id))
            .order(exam_bookings::id.asc())
            .select((
                (
                    exam_bookings::id,
                    exam_bookings::session_id,
                    exam_bookings::reference,
                    exam_bookings::status,
                    exam_bookings::created_at,
                    exam_sessions::course_id,
                ),
                (users::id, users::first_name, users::last_name, users::email, users::date_of_birth),
            ))
            .into_boxed();
        if let Some(id) = session {
            q = q.filter(exam_bookings::session_id.eq(id));
        }
        // One row more than the page says whether another follows; it is
        // not decided on, and nothing of it leaves.
        let mut rows: Vec<CandidateRow> =
            q.filter(exam_bookings::id.gt(window.after)).offset(window.skip.max(0)).limit(limit + 1).load(conn)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_after = if more { rows.last().map(|r| r.0.0) } else { None };
        let learners: Vec<i64> = rows.iter().map(|r| r.1.0).collect();
        let user_ids: Vec<i64> = rows.iter().map(|r| r.1.0).collect::<HashSet<_>>().into_iter().collect();
        let restricted = restricted_among(conn, &user_ids)?;
        let registered = live_consents(conn, partner, Purpose::ExamRegistration, &user_ids)?;
        let supported = live_consents(conn, partner, Purpose::ExamSupport, &user_ids)?;
        // The sealed needs of those who agreed to share them, in one query.
        let sharing_needs: Vec<i64> = supported.keys().map(|(u, _)| *u).collect();
        let sealed: HashMap<i64, (String, String)> = support_needs::table
            .filter(support_needs::user_id.eq_any(&sharing_needs))
            .select((support_needs::user_id, (support_needs::needs, support_needs::adjustments)))
            .load::<(i64, (String, String))>(conn)?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        let mut disclosed: Vec<Disclosed> = Vec::new();
        for ((id, session_id, reference, status, created_at, course_id), (user_id, first, last, email, dob)) in rows {
            let mut c = ExamCandidate {
                booking: reference,
                session: session_id,
                status: status.clone(),
                booked_at: created_at.and_utc().to_rfc3339(),
                name: None,
                email: None,
                date_of_birth: None,
                support_needs: None,
                adjustments: None,
            };
            let scope = super::exam_records::course_scope(course_id);
            let live = status == super::exam_records::BOOKED && !restricted.contains(&user_id);
            if let Some((ledger_id, cats)) = registered.get(&(user_id, scope.clone())).filter(|_| live) {
                let mut fields = Vec::new();
                if cats.contains(Category::ProfileName) {
                    c.name = Some(format!("{first} {last}").trim().to_string());
                    fields.push("learner.name");
                }
                if cats.contains(Category::ProfileEmail) {
                    c.email = Some(email);
                    fields.push("learner.email");
                }
                if cats.contains(Category::DateOfBirth) {
                    c.date_of_birth = dob;
                    fields.push("learner.date_of_birth");
                }
                let key = format!("exam_booking:{id}");
                if !fields.is_empty() {
                    disclosed.push((
                        user_id,
                        Purpose::ExamRegistration,
                        key.clone(),
                        fields.join(","),
                        Basis::Consent { ledger_id: *ledger_id },
                    ));
                }
                if let Some((ledger_id, cats)) = supported.get(&(user_id, scope))
                    && cats.contains(Category::SupportNeeds)
                    && let Some((needs, adjustments)) = sealed.get(&user_id)
                {
                    let open = |field, v: &str| {
                        crate::kernel::vault::open(field, v)
                            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
                    };
                    c.support_needs = Some(open(super::exam_records::NEEDS_FIELD, needs)?);
                    c.adjustments = Some(open(super::exam_records::ADJUSTMENTS_FIELD, adjustments)?);
                    disclosed.push((
                        user_id,
                        Purpose::ExamSupport,
                        key,
                        "support_needs.needs,support_needs.adjustments".into(),
                        Basis::Consent { ledger_id: *ledger_id },
                    ));
                }
            }
            out.push(c);
        }
        write_disclosures(conn, partner, export_id, head, disclosed, now)?;
        Ok(CandidatePage { candidates: out, learners, next_after })
    })
}

/// An exam result as the sponsor who funded the course sees it (SHR-3).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FundedResult {
    pub name: Option<String>,
    pub email: Option<String>,
    pub course: String,
    pub exam: String,
    pub grade: String,
    pub score: Option<f64>,
    pub passed: bool,
    pub received_at: String,
}

type FundedRow =
    ((i64, i64, String, Option<f64>, bool, NaiveDateTime), (i64, String, String), (String, String, String));

/// Results of the learners this sponsor funded, for the courses it funded,
/// each under the learner's live consent for this purpose; a learner who
/// declined, withdrew or restricted sharing is simply absent.
pub fn funded_results(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<FundedResult>> {
    use crate::db::schema::{exam_bookings, exam_results, exam_sessions};
    if partner.kind() != PartnerKind::Sponsor {
        return Ok(Vec::new());
    }
    crate::db::transaction(conn, |conn| {
        let head = super::manifests::ledger_head(conn)?;
        let rows: Vec<FundedRow> = exam_results::table
            .inner_join(exam_bookings::table.inner_join(exam_sessions::table.inner_join(courses::table)))
            .inner_join(users::table.on(users::id.eq(exam_results::user_id)))
            .filter(exam_results::user_id.eq_any(
                sponsorships::table.filter(sponsorships::partner_id.eq(partner.id)).select(sponsorships::user_id),
            ))
            .order(exam_results::id.asc())
            .select((
                (
                    exam_results::id,
                    exam_results::user_id,
                    exam_results::grade,
                    exam_results::score,
                    exam_results::passed,
                    exam_results::received_at,
                ),
                (courses::id, courses::title, exam_sessions::title),
                (users::first_name, users::last_name, users::email),
            ))
            .load(conn)?;
        // What decides on them is read for the learners with a result only,
        // not for every learner the sponsor funded.
        let user_ids: Vec<i64> = rows.iter().map(|r| r.0.1).collect::<HashSet<_>>().into_iter().collect();
        let mut funded: HashSet<(i64, i64)> = HashSet::new();
        for users in user_ids.chunks(WALK_PAGE as usize) {
            funded.extend(
                sponsorships::table
                    .inner_join(course_runs::table)
                    .filter(sponsorships::partner_id.eq(partner.id))
                    .filter(sponsorships::user_id.eq_any(users))
                    .select((sponsorships::user_id, course_runs::course_id))
                    .load::<(i64, i64)>(conn)?,
            );
        }
        let live = live_consents(conn, partner, Purpose::ExamResults, &user_ids)?;
        let restricted = restricted_among(conn, &user_ids)?;
        let mut out = Vec::new();
        let mut disclosed: Vec<Disclosed> = Vec::new();
        for ((id, user_id, grade, score, passed, received_at), (course_id, course, exam), (first, last, email)) in rows
        {
            if !funded.contains(&(user_id, course_id)) || restricted.contains(&user_id) {
                continue;
            }
            let Some((ledger_id, cats)) = live.get(&(user_id, super::exam_records::course_scope(course_id))) else {
                continue;
            };
            if !cats.contains(Category::ExamResult) {
                continue;
            }
            let mut fields = vec!["exam.grade", "exam.score", "exam.passed"];
            let name = cats.contains(Category::ProfileName).then(|| format!("{first} {last}").trim().to_string());
            let email = cats.contains(Category::ProfileEmail).then_some(email);
            if name.is_some() {
                fields.push("learner.name");
            }
            if email.is_some() {
                fields.push("learner.email");
            }
            disclosed.push((
                user_id,
                Purpose::ExamResults,
                format!("exam_result:{id}"),
                fields.join(","),
                Basis::Consent { ledger_id: *ledger_id },
            ));
            out.push(FundedResult {
                name,
                email,
                course,
                exam,
                grade,
                score,
                passed,
                received_at: received_at.and_utc().to_rfc3339(),
            });
        }
        write_disclosures(conn, partner, export_id, head, disclosed, now)?;
        Ok(out)
    })
}

/// How many learners one decision of [`of_learners`] reads.
const LEARNERS_AT_ONCE: usize = 1_000;

/// What may leave for this partner and purpose about these learners only,
/// recorded in the manifests: [`all`] for a page of an organization's
/// staff, in one decision over the page's learners, so that its cost
/// follows the learners shown rather than all of the partner's.
#[allow(clippy::too_many_arguments)]
pub fn of_learners(
    conn: &mut Conn,
    partner: &Partner,
    purpose: Purpose,
    want: Want,
    learners: &[i64],
    export_id: &str,
    base_url: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<Shared>> {
    if learners.is_empty() {
        return Ok(Vec::new());
    }
    decide_then_disclose(conn, partner, export_id, now, |conn| {
        let req = Request { partner, purpose, want, after: Position::START, limit: UNBOUNDED, export_id, base_url };
        let mut learners = learners.to_vec();
        learners.sort_unstable();
        learners.dedup();
        let (mut shared, mut disclosed) = (Vec::new(), Vec::new());
        // One decision for a page of learners (chunked only to stay under
        // the databases' limits on bound parameters).
        for chunk in learners.chunks(LEARNERS_AT_ONCE) {
            let (decided, _) = decide(conn, &req, now, Only::Learners(chunk), false)?;
            for (s, d) in decided {
                shared.push(s);
                disclosed.push(d);
            }
        }
        Ok((shared, disclosed))
    })
}
