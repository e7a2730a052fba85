//! The disclosure log as manifests (SHR-5): one row per delivered page or
//! send, and per group of identical (purpose, basis, fields, record kind)
//! inside it, instead of a row per record.
//!
//! A manifest names its learners and its records (enrollment ids, booking
//! ids… whatever the record key carried) as compressed bitmaps (roaring,
//! portable serialization), with their ranges, count, the payload's SHA-256
//! where there is one, and `ledger_head`: the newest consent ledger id at
//! the instant of the decision. The consent each learner's record left under
//! is then the newest ledger row for that learner, partner, purpose and the
//! record's scope at or before the head (`decide` reads `consents`, whose
//! `ledger_id` is by construction that newest row, from a snapshot at the
//! head: see `sharing::decide_then_disclose`). Where a decision read a
//! consent newer than the head (PostgreSQL, whose statements each see the
//! latest commits), that ledger id is kept in `pinned`, so the answer stays
//! exact.
//!
//! Manifests are append-only and hash-chained like the consent ledger, each
//! hash sealed with a key outside the database (`seal`). The chain covers
//! the learners and records through a keyed set digest (the sum modulo
//! 2^256 of one HMAC per entry), so erasure can take a learner out of the
//! bitmaps, add what it took to `erased_digest`, and the chain still
//! verifies: digest(bitmaps) + erased_digest = set_digest.
//!
//! [`disclosures_of`] is the one reader: the Sharing page, the data export,
//! the staff audit view, departures and lifecycle all read through it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use roaring::RoaringTreemap;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::schema::{
    consent_ledger, departures, enrollments, exam_bookings, exam_results, exam_sessions, manifests,
};
use crate::db::{Conn, DbConnection};

/// Whether a manifest's records arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Handed over (a pull page) or confirmed by the destination (a push).
    Delivered,
    /// Sent and never confirmed: a push that went to the dead letters.
    Attempted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Delivered => "delivered",
            State::Attempted => "attempted",
        }
    }
}

/// One record handed out, as the gate decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub user_id: i64,
    pub purpose: String,
    /// `enrollment:12`, `exam_booking:3`, `contact:7`, `user:7`, `departure:4`.
    pub record_key: String,
    pub fields: String,
    /// `consent`, `deidentified`, `processor`, `legal` or `departure`.
    pub basis: String,
    pub ledger_id: Option<i64>,
}

/// What every manifest of one write shares.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    pub partner_id: Option<i64>,
    pub recipient: &'a str,
    pub export_id: &'a str,
    pub state: State,
    pub sha256: Option<&'a str>,
    /// The newest consent ledger id when the decision was read.
    pub ledger_head: i64,
    pub legal_reference: Option<&'a str>,
    pub note: Option<&'a str>,
    pub recorded_by: Option<i64>,
    pub at: NaiveDateTime,
}

/// One disclosed record as the log tells it, read back from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// The manifest it is in.
    pub id: i64,
    pub user_id: i64,
    pub partner_id: Option<i64>,
    pub recipient: String,
    pub purpose: String,
    pub fields: String,
    pub basis: String,
    pub consent_ledger_id: Option<i64>,
    pub legal_reference: Option<String>,
    pub note: Option<String>,
    pub recorded_by: Option<i64>,
    pub export_id: String,
    pub record_key: String,
    pub created_at: NaiveDateTime,
    /// False for an attempt that never arrived.
    pub delivered: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = manifests)]
pub struct Manifest {
    pub id: i64,
    pub partner_id: Option<i64>,
    pub recipient: String,
    pub purpose: String,
    pub basis: String,
    pub fields: String,
    pub record_kind: String,
    pub export_id: String,
    pub part: i64,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub sha256: Option<String>,
    pub ledger_head: i64,
    pub pinned: Option<String>,
    pub legal_reference: Option<String>,
    pub note: Option<String>,
    pub recorded_by: Option<i64>,
    pub learners: Vec<u8>,
    pub records: Vec<u8>,
    pub user_min: i64,
    pub user_max: i64,
    pub record_min: i64,
    pub record_max: i64,
    pub entries: i64,
    pub erased: i64,
    pub set_digest: String,
    pub erased_digest: String,
    pub prev_hash: String,
    pub hash: String,
    pub mac: Option<String>,
    /// The width class of the learner range ([`span_class`]), which the
    /// learner's lookup finds it by.
    pub user_span: i16,
}

fn corrupt(what: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(format!("manifest {what} is not a roaring bitmap").into())
}

/// A bitmap in roaring's portable serialization (runs compressed: a page's
/// consecutive record ids cost a few bytes in all).
pub fn encode(set: &RoaringTreemap) -> Vec<u8> {
    let mut set = set.clone();
    set.optimize();
    let mut out = Vec::with_capacity(set.serialized_size());
    set.serialize_into(&mut out).expect("writing to a Vec");
    out
}

pub fn decode(bytes: &[u8]) -> Option<RoaringTreemap> {
    RoaringTreemap::deserialize_from(bytes).ok()
}

impl Manifest {
    pub fn learner_set(&self) -> QueryResult<RoaringTreemap> {
        decode(&self.learners).ok_or_else(|| corrupt("learners"))
    }

    pub fn record_set(&self) -> QueryResult<RoaringTreemap> {
        decode(&self.records).ok_or_else(|| corrupt("records"))
    }

    fn pinned_ids(&self) -> Vec<i64> {
        self.pinned.as_deref().unwrap_or("").split(',').filter_map(|s| s.parse().ok()).collect()
    }

    /// The hash of the manifest's content chained to `prev_hash`: every
    /// column except the id, the bitmaps (covered by `set_digest`), the
    /// erasure columns and the hash and seal themselves.
    pub fn compute_hash(&self) -> String {
        let canonical = json!([
            self.prev_hash,
            self.partner_id,
            self.recipient,
            self.purpose,
            self.basis,
            self.fields,
            self.record_kind,
            self.export_id,
            self.part,
            self.state,
            self.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            self.sha256,
            self.ledger_head,
            self.pinned,
            self.legal_reference,
            self.note,
            self.recorded_by,
            self.user_min,
            self.user_max,
            self.record_min,
            self.record_max,
            self.entries,
            self.set_digest,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The keyed digest of what the bitmaps hold now.
    pub fn current_digest(&self) -> QueryResult<[u8; 32]> {
        Ok(set_digest(&self.learner_set()?, &self.record_set()?))
    }
}

/// The sum modulo 2^256 of two big-endian numbers.
pub fn add256(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

/// The keyed digest of a set of learners and records: the sum of one HMAC
/// per entry. Order-free, and a subset's digest plus the rest's is the
/// whole's, which is what lets erasure take entries out.
pub fn set_digest(learners: &RoaringTreemap, records: &RoaringTreemap) -> [u8; 32] {
    let mut sum = [0u8; 32];
    for u in learners {
        sum = add256(&sum, &super::seal::entry_digest(b"learner", u));
    }
    for r in records {
        sum = add256(&sum, &super::seal::entry_digest(b"record", r));
    }
    sum
}

/// The width class of a learner range: the bit length of
/// `user_max - user_min`. A manifest of class c whose range holds learner u
/// has `user_min` in (u - 2^c, u], so the manifests holding u are one short
/// index range of `manifests(user_span, user_min, user_max)` per class
/// (docs/ARCHITECTURE.md, "Finding a learner's manifests").
pub fn span_class(user_min: i64, user_max: i64) -> i16 {
    let width = user_max.saturating_sub(user_min).max(0) as u64;
    (64 - width.leading_zeros()) as i16
}

fn split_key(key: &str) -> Option<(&str, u64)> {
    let (kind, id) = key.split_once(':')?;
    Some((kind, id.parse().ok()?))
}

/// Takes the manifests' append lock for the rest of the transaction, so two
/// writers cannot chain to the same manifest.
fn lock(conn: &mut Conn) -> QueryResult<()> {
    let sql = match conn {
        DbConnection::Pg(_) => "LOCK TABLE manifests IN SHARE ROW EXCLUSIVE MODE",
        DbConnection::Sqlite(_) => "UPDATE manifests SET id = id WHERE 0",
    };
    diesel::sql_query(sql).execute(conn).map(|_| ())
}

/// The newest consent ledger id now: the head a decision read next is taken at.
pub fn ledger_head(conn: &mut Conn) -> QueryResult<i64> {
    Ok(consent_ledger::table.select(diesel::dsl::max(consent_ledger::id)).first::<Option<i64>>(conn)?.unwrap_or(0))
}

type GroupKey = (String, String, String, String);

/// Writes the manifests of one page or send: one per group of identical
/// purpose, basis, fields and record kind. A record already delivered under
/// this export id with the same fields, basis and consent is not recorded
/// again (a resumed pull, a retried send): only the export's manifests whose
/// learner and record ranges overlap these records' are read for that. Returns the ids
/// written. Call it inside the transaction that decided what left.
pub fn write(conn: &mut Conn, h: &Header<'_>, items: Vec<Item>) -> QueryResult<Vec<i64>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    crate::db::transaction(conn, |conn| write_in(conn, h, items))
}

fn write_in(conn: &mut Conn, h: &Header<'_>, items: Vec<Item>) -> QueryResult<Vec<i64>> {
    let mut groups: BTreeMap<GroupKey, Vec<(u64, u64, Option<i64>)>> = BTreeMap::new();
    for it in items {
        let Some((kind, rid)) = split_key(&it.record_key) else {
            return Err(diesel::result::Error::QueryBuilderError(
                format!("a disclosed record key must be kind:number, not {:?}", it.record_key).into(),
            ));
        };
        groups.entry((it.purpose, it.basis, it.fields, kind.to_string())).or_default().push((
            it.user_id as u64,
            rid,
            it.ledger_id,
        ));
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let (rmin, rmax) = groups.values().flatten().fold((u64::MAX, 0u64), |(lo, hi), (_, r, _)| (lo.min(*r), hi.max(*r)));
    let (umin, umax) = groups.values().flatten().fold((u64::MAX, 0u64), |(lo, hi), (u, ..)| (lo.min(*u), hi.max(*u)));
    // What this export already recorded among these records, in this
    // state (an attempt retried is one attempt; a delivery after it is new).
    // A manifest that holds one of these records holds its learner, so only
    // the export's manifests whose learner range overlaps these learners
    // are read (`manifests_export (export_id, user_max, user_min)`): pages
    // go by learner, so on a first walk that is none, and on a resume the
    // pages it repeats.
    let earlier: Vec<Manifest> = manifests::table
        .filter(manifests::export_id.eq(h.export_id))
        .filter(manifests::user_max.ge(umin as i64))
        .filter(manifests::user_min.le(umax as i64))
        .filter(manifests::record_max.ge(rmin as i64))
        .filter(manifests::record_min.le(rmax as i64))
        .filter(manifests::state.eq(h.state.as_str()))
        .select(Manifest::as_select())
        .load(conn)?;
    let mut seen: Vec<(GroupKey, RoaringTreemap, i64, Vec<i64>)> = Vec::with_capacity(earlier.len());
    for m in &earlier {
        seen.push((
            (m.purpose.clone(), m.basis.clone(), m.fields.clone(), m.record_kind.clone()),
            m.record_set()?,
            m.ledger_head,
            m.pinned_ids(),
        ));
    }
    lock(conn)?;
    let mut part: i64 = manifests::table
        .filter(manifests::export_id.eq(h.export_id))
        .select(diesel::dsl::max(manifests::part))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0);
    let mut prev: String = manifests::table
        .order(manifests::id.desc())
        .select(manifests::hash)
        .first(conn)
        .optional()?
        .unwrap_or_else(|| super::ledger::GENESIS.to_string());
    let mut ids = Vec::new();
    for (key, rows) in groups {
        let mut learners = RoaringTreemap::new();
        let mut records = RoaringTreemap::new();
        let mut pinned: Vec<i64> = Vec::new();
        for (user, rid, ledger) in rows {
            let again = seen.iter().any(|(k, set, head, pins)| {
                *k == key && set.contains(rid) && ledger.is_none_or(|l| l <= *head || pins.contains(&l))
            });
            if again || records.contains(rid) {
                continue;
            }
            learners.insert(user);
            records.insert(rid);
            if let Some(l) = ledger.filter(|l| *l > h.ledger_head) {
                pinned.push(l);
            }
        }
        if records.is_empty() {
            continue;
        }
        pinned.sort_unstable();
        pinned.dedup();
        part += 1;
        let (purpose, basis, fields, record_kind) = key;
        let mut m = Manifest {
            id: 0,
            partner_id: h.partner_id,
            recipient: h.recipient.to_string(),
            purpose,
            basis,
            fields,
            record_kind,
            export_id: h.export_id.to_string(),
            part,
            state: h.state.as_str().to_string(),
            created_at: h.at,
            sha256: h.sha256.map(str::to_string),
            ledger_head: h.ledger_head,
            pinned: (!pinned.is_empty()).then(|| pinned.iter().map(i64::to_string).collect::<Vec<_>>().join(",")),
            legal_reference: h.legal_reference.map(str::to_string),
            note: h.note.map(str::to_string),
            recorded_by: h.recorded_by,
            learners: encode(&learners),
            records: encode(&records),
            user_min: learners.min().unwrap_or(0) as i64,
            user_max: learners.max().unwrap_or(0) as i64,
            record_min: records.min().unwrap_or(0) as i64,
            record_max: records.max().unwrap_or(0) as i64,
            entries: records.len() as i64,
            erased: 0,
            set_digest: hex::encode(set_digest(&learners, &records)),
            erased_digest: hex::encode([0u8; 32]),
            prev_hash: prev.clone(),
            hash: String::new(),
            mac: None,
            user_span: 0,
        };
        m.user_span = span_class(m.user_min, m.user_max);
        m.hash = m.compute_hash();
        m.mac = Some(super::seal::manifest_seal(&m.hash));
        let id = insert(conn, &m)?;
        prev = m.hash;
        ids.push(id);
    }
    Ok(ids)
}

fn insert(conn: &mut Conn, m: &Manifest) -> QueryResult<i64> {
    diesel::insert_into(manifests::table)
        .values((
            manifests::partner_id.eq(m.partner_id),
            manifests::recipient.eq(&m.recipient),
            manifests::purpose.eq(&m.purpose),
            manifests::basis.eq(&m.basis),
            manifests::fields.eq(&m.fields),
            manifests::record_kind.eq(&m.record_kind),
            manifests::export_id.eq(&m.export_id),
            manifests::part.eq(m.part),
            manifests::state.eq(&m.state),
            manifests::created_at.eq(m.created_at),
            manifests::sha256.eq(&m.sha256),
            manifests::ledger_head.eq(m.ledger_head),
            manifests::pinned.eq(&m.pinned),
            manifests::legal_reference.eq(&m.legal_reference),
            manifests::note.eq(&m.note),
            manifests::recorded_by.eq(m.recorded_by),
            manifests::learners.eq(&m.learners),
            manifests::records.eq(&m.records),
            manifests::user_min.eq(m.user_min),
            manifests::user_max.eq(m.user_max),
            manifests::record_min.eq(m.record_min),
            manifests::record_max.eq(m.record_max),
            manifests::entries.eq(m.entries),
            manifests::erased.eq(m.erased),
            manifests::set_digest.eq(&m.set_digest),
            manifests::erased_digest.eq(&m.erased_digest),
            manifests::prev_hash.eq(&m.prev_hash),
            manifests::hash.eq(&m.hash),
            manifests::mac.eq(&m.mac),
            manifests::user_span.eq(m.user_span),
        ))
        .returning(manifests::id)
        .get_result(conn)
}

/// Which manifests to expand.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub user_id: Option<i64>,
    pub export_id: Option<&'a str>,
    pub partner_id: Option<i64>,
}

/// A learner's disclosures, newest first, at most `limit`: see [`learner_log`].
pub fn disclosures_of(conn: &mut Conn, user_id: i64, limit: i64) -> QueryResult<Vec<Disclosure>> {
    let mut out = learner_log(conn, user_id, &Filter::default())?;
    out.reverse();
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

/// Every disclosure the filter selects, expanded to one per record, oldest
/// first (for audits, departures and tests; a learner's own log reads
/// [`disclosures_of`], and a filter naming a learner goes the same way).
pub fn expand(conn: &mut Conn, f: &Filter<'_>) -> QueryResult<Vec<Disclosure>> {
    if let Some(u) = f.user_id {
        return learner_log(conn, u, f);
    }
    let mut q = manifests::table.order(manifests::id.asc()).select(Manifest::as_select()).into_boxed();
    if let Some(e) = f.export_id {
        q = q.filter(manifests::export_id.eq(e));
    }
    if let Some(p) = f.partner_id {
        q = q.filter(manifests::partner_id.eq(p));
    }
    let mut found: Vec<(Manifest, RoaringTreemap, RoaringTreemap)> = Vec::new();
    for m in q.load(conn)? {
        let learners = m.learner_set()?;
        let records = m.record_set()?;
        found.push((m, learners, records));
    }
    // Who each record belongs to, and the consent scope it falls under.
    let mut wanted: HashMap<String, Vec<i64>> = HashMap::new();
    for (m, _, records) in &found {
        wanted.entry(m.record_kind.clone()).or_default().extend(records.iter().map(|r| r as i64));
    }
    let owners = owners(conn, &wanted)?;
    let users: Vec<i64> = found
        .iter()
        .filter(|(m, ..)| m.basis == "consent")
        .flat_map(|(_, l, _)| l.iter().map(|u| u as i64))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let ledger = ledger_of(conn, &users)?;
    let mut out = Vec::new();
    for (m, learners, records) in found {
        let pins = m.pinned_ids();
        for r in records.iter() {
            let owner = owners.get(&(m.record_kind.clone(), r as i64));
            let (user, scope) = match owner {
                Some((u, s)) => (*u, s.clone()),
                // A user-keyed record (a contact, a legal disclosure).
                None if user_keyed(&m.record_kind) => (r as i64, None),
                None => continue,
            };
            if !learners.contains(user as u64) {
                continue;
            }
            out.push(disclosure(&m, user, r, scope.as_deref(), &ledger, &pins));
        }
    }
    Ok(out)
}

/// Record kinds whose record id is the learner's own id.
fn user_keyed(kind: &str) -> bool {
    matches!(kind, "contact" | "user")
}

fn disclosure(
    m: &Manifest,
    user: i64,
    record: u64,
    scope: Option<&str>,
    ledger: &HashMap<i64, Vec<Decision>>,
    pins: &[i64],
) -> Disclosure {
    let consent_ledger_id = (m.basis == "consent").then(|| consent_at(ledger, user, m, scope, pins)).flatten();
    Disclosure {
        id: m.id,
        user_id: user,
        partner_id: m.partner_id,
        recipient: m.recipient.clone(),
        purpose: m.purpose.clone(),
        fields: m.fields.clone(),
        basis: m.basis.clone(),
        consent_ledger_id,
        legal_reference: m.legal_reference.clone(),
        note: m.note.clone(),
        recorded_by: m.recorded_by,
        export_id: m.export_id.clone(),
        record_key: format!("{}:{record}", m.record_kind),
        created_at: m.created_at,
        delivered: m.state == State::Delivered.as_str(),
    }
}

/// A learner's own records, by the record kinds manifests name: every id a
/// manifest may hold for them, with its consent scope.
#[derive(Debug, Default)]
pub struct Own {
    sets: HashMap<String, RoaringTreemap>,
    scopes: HashMap<(String, i64), String>,
}

impl Own {
    /// The learner's record ids of one kind.
    pub fn of_kind(&self, kind: &str) -> Option<&RoaringTreemap> {
        self.sets.get(kind)
    }

    fn add(&mut self, kind: &str, id: i64, scope: Option<String>) {
        self.sets.entry(kind.to_string()).or_default().insert(id as u64);
        if let Some(s) = scope {
            self.scopes.insert((kind.to_string(), id), s);
        }
    }
}

/// The learner's own records (their enrollments, exam bookings and results,
/// departure notices, and their id for contacts and legal disclosures):
/// each read by the learner's id, so the lookup never resolves anyone
/// else's records.
pub fn own_records(conn: &mut Conn, user_id: i64) -> QueryResult<Own> {
    let mut own = Own::default();
    let rows: Vec<(i64, i64)> = enrollments::table
        .filter(enrollments::user_id.eq(user_id))
        .select((enrollments::id, enrollments::run_id))
        .load(conn)?;
    for (id, run) in rows {
        own.add("enrollment", id, Some(super::run_scope(run)));
    }
    let rows: Vec<(i64, i64)> = exam_bookings::table
        .inner_join(exam_sessions::table)
        .filter(exam_bookings::user_id.eq(user_id))
        .select((exam_bookings::id, exam_sessions::course_id))
        .load(conn)?;
    for (id, course) in rows {
        own.add("exam_booking", id, Some(super::exam_records::course_scope(course)));
    }
    // Driven by the bookings' learner index; a result is its booking's.
    let rows: Vec<(i64, i64)> = exam_results::table
        .inner_join(exam_bookings::table.inner_join(exam_sessions::table))
        .filter(exam_bookings::user_id.eq(user_id))
        .filter(exam_results::user_id.eq(user_id))
        .select((exam_results::id, exam_sessions::course_id))
        .load(conn)?;
    for (id, course) in rows {
        own.add("exam_result", id, Some(super::exam_records::course_scope(course)));
    }
    let rows: Vec<i64> = departures::table.filter(departures::user_id.eq(user_id)).select(departures::id).load(conn)?;
    for id in rows {
        own.add("departure", id, None);
    }
    for kind in ["contact", "user"] {
        own.add(kind, user_id, None);
    }
    Ok(own)
}

/// The manifests whose learner range holds `user_id`, oldest first, within
/// the filter's export and partner: for each width class c (`span_class`),
/// those of class c starting in (u - 2^c, u] and ending at or after u, one
/// index range of `manifests_reach` each. The statement has no `ORDER BY`:
/// with one, SQLite's planner (given the statistics `ANALYZE` gathers, where
/// nearly every manifest is of one class) walked the whole table in id
/// order instead of the 64 ranges; the few found are sorted here.
fn holding(conn: &mut Conn, user_id: i64, f: &Filter<'_>) -> QueryResult<Vec<Manifest>> {
    let mut q = manifests::table.select(Manifest::as_select()).into_boxed();
    for class in 0..64i16 {
        let reach = ((1u64 << class) - 1) as i64;
        let term = manifests::user_span
            .eq(class)
            .and(manifests::user_min.between(user_id.saturating_sub(reach), user_id))
            .and(manifests::user_max.ge(user_id));
        q = if class == 0 { q.filter(term) } else { q.or_filter(term) };
    }
    if let Some(e) = f.export_id {
        q = q.filter(manifests::export_id.eq(e));
    }
    if let Some(p) = f.partner_id {
        q = q.filter(manifests::partner_id.eq(p));
    }
    let mut found: Vec<Manifest> = q.load(conn)?;
    found.sort_unstable_by_key(|m| m.id);
    Ok(found)
}

/// The ids of the manifests a learner's lookup reads (those whose learner
/// range holds them), oldest first.
pub fn read_for(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<i64>> {
    Ok(holding(conn, user_id, &Filter::default())?.into_iter().map(|m| m.id).collect())
}

/// A learner's disclosures, oldest first: the manifests whose learner range
/// holds them (`holding`), kept where the learner set has them, and in
/// each, the records of theirs it names (its record set intersected with
/// the learner's own records of its kind). Nobody else's record is read.
fn learner_log(conn: &mut Conn, user_id: i64, f: &Filter<'_>) -> QueryResult<Vec<Disclosure>> {
    let found = holding(conn, user_id, f)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let own = own_records(conn, user_id)?;
    let ledger = if found.iter().any(|m| m.basis == "consent") { ledger_of(conn, &[user_id])? } else { HashMap::new() };
    let mut out = Vec::new();
    for m in found {
        let Some(mine) = own.of_kind(&m.record_kind) else { continue };
        if !m.learner_set()?.contains(user_id as u64) {
            continue;
        }
        let theirs = &m.record_set()? & mine;
        let pins = m.pinned_ids();
        for r in theirs.iter() {
            let scope = own.scopes.get(&(m.record_kind.clone(), r as i64)).map(String::as_str);
            out.push(disclosure(&m, user_id, r, scope, &ledger, &pins));
        }
    }
    Ok(out)
}

/// (kind, record id) → (learner, consent scope).
type Owners = HashMap<(String, i64), (i64, Option<String>)>;

/// Who each of the records asked belongs to, and its consent scope.
fn owners(conn: &mut Conn, wanted: &HashMap<String, Vec<i64>>) -> QueryResult<Owners> {
    let mut out = HashMap::new();
    let none = Vec::new();
    let get = |k: &str| wanted.get(k).unwrap_or(&none);
    for chunk in get("enrollment").chunks(10_000) {
        let rows: Vec<(i64, i64, i64)> = enrollments::table
            .filter(enrollments::id.eq_any(chunk))
            .select((enrollments::id, enrollments::user_id, enrollments::run_id))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(id, u, run)| (("enrollment".into(), id), (u, Some(super::run_scope(run))))));
    }
    for chunk in get("exam_booking").chunks(10_000) {
        let rows: Vec<(i64, i64, i64)> = exam_bookings::table
            .inner_join(exam_sessions::table)
            .filter(exam_bookings::id.eq_any(chunk))
            .select((exam_bookings::id, exam_bookings::user_id, exam_sessions::course_id))
            .load(conn)?;
        out.extend(
            rows.into_iter()
                .map(|(id, u, c)| (("exam_booking".into(), id), (u, Some(super::exam_records::course_scope(c))))),
        );
    }
    for chunk in get("exam_result").chunks(10_000) {
        let rows: Vec<(i64, i64, i64)> = exam_results::table
            .inner_join(exam_bookings::table.inner_join(exam_sessions::table))
            .filter(exam_results::id.eq_any(chunk))
            .select((exam_results::id, exam_results::user_id, exam_sessions::course_id))
            .load(conn)?;
        out.extend(
            rows.into_iter()
                .map(|(id, u, c)| (("exam_result".into(), id), (u, Some(super::exam_records::course_scope(c))))),
        );
    }
    for chunk in get("departure").chunks(10_000) {
        let rows: Vec<(i64, i64)> = departures::table
            .filter(departures::id.eq_any(chunk))
            .select((departures::id, departures::user_id))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(id, u)| (("departure".into(), id), (u, None))));
    }
    Ok(out)
}

/// A learner's consent decisions: (id, partner, purpose, scope, action).
type Decision = (i64, Option<i64>, String, String, String);

fn ledger_of(conn: &mut Conn, users: &[i64]) -> QueryResult<HashMap<i64, Vec<Decision>>> {
    let mut out: HashMap<i64, Vec<Decision>> = HashMap::new();
    for chunk in users.chunks(10_000) {
        let rows: Vec<(i64, i64, Option<i64>, String, String, String)> = consent_ledger::table
            .filter(consent_ledger::user_id.eq_any(chunk))
            .filter(consent_ledger::action.eq_any(["grant", "decline", "withdraw"]))
            .order(consent_ledger::id.asc())
            .select((
                consent_ledger::user_id,
                consent_ledger::id,
                consent_ledger::partner_id,
                consent_ledger::purpose,
                consent_ledger::scope,
                consent_ledger::action,
            ))
            .load(conn)?;
        for (u, id, p, purpose, scope, action) in rows {
            out.entry(u).or_default().push((id, p, purpose, scope, action));
        }
    }
    Ok(out)
}

/// The consent a record of `user` left under in manifest `m`: the ledger id
/// pinned for it, else the newest decision for the learner, partner,
/// purpose and scope at or before the head, when that is a grant. Where the
/// record's scope is not known (a contact), the newest such grant in any scope.
fn consent_at(
    ledger: &HashMap<i64, Vec<Decision>>,
    user: i64,
    m: &Manifest,
    scope: Option<&str>,
    pins: &[i64],
) -> Option<i64> {
    let rows = ledger.get(&user)?;
    let ours = |r: &&Decision| r.1 == m.partner_id && r.2 == m.purpose && scope.is_none_or(|s| r.3 == s);
    if let Some(pinned) = rows.iter().filter(ours).filter(|r| pins.contains(&r.0)).map(|r| r.0).max() {
        return Some(pinned);
    }
    let mut newest: HashMap<&str, &Decision> = HashMap::new();
    for r in rows.iter().filter(ours).filter(|r| r.0 <= m.ledger_head) {
        newest.insert(r.3.as_str(), r);
    }
    newest.values().filter(|r| r.4 == "grant").map(|r| r.0).max()
}

/// Outcome of checking the manifests' chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    pub manifests: u64,
    /// Records they name (as written, erased ones included).
    pub entries: u64,
    pub erased: u64,
    /// The first manifest whose hash, seal, link or learner set does not hold, and why.
    pub first_broken: Option<(i64, String)>,
    /// A published head the manifests no longer match, and why.
    pub anchor_broken: Option<String>,
    pub newest_anchor: Option<i64>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.first_broken.is_none() && self.anchor_broken.is_none()
    }
}

/// Walks the manifests in order, page by page: each must link to the one
/// before, match its hash and its seal, and its learner and record sets plus
/// what erasure took out must give the digest the chain covers. Then every
/// published head in `anchors` that names a manifest must still be there, as
/// published (deleting the newest manifests is caught so).
pub fn verify_against(conn: &mut Conn, anchors: &[super::seal::Anchor]) -> QueryResult<Verification> {
    let mut v = Verification::default();
    let mut published: HashMap<i64, (&str, &str)> =
        anchors.iter().filter_map(|a| Some((a.manifest_id?, (a.manifest_hash.as_deref()?, a.at.as_str())))).collect();
    v.newest_anchor = published.keys().max().copied();
    let mut expected_prev = super::ledger::GENESIS.to_string();
    let mut after = 0i64;
    'pages: loop {
        let page: Vec<Manifest> = manifests::table
            .filter(manifests::id.gt(after))
            .order(manifests::id.asc())
            .limit(500)
            .select(Manifest::as_select())
            .load(conn)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for m in page {
            v.manifests += 1;
            v.entries += m.entries.max(0) as u64;
            v.erased += m.erased.max(0) as u64;
            let broken = if m.prev_hash != expected_prev {
                Some("its link to the previous manifest is broken (one before it was changed, removed or inserted)")
            } else if m.compute_hash() != m.hash {
                Some("its content does not match its hash (the manifest was changed)")
            } else if !m.mac.as_deref().is_some_and(|mac| super::seal::manifest_seal_matches(&m.hash, mac)) {
                Some("its seal does not match its hash (written or recomputed by someone without the key)")
            } else if m.user_span != span_class(m.user_min, m.user_max) {
                Some("its learner range's class does not match the range (its learners' lookup would not find it)")
            } else {
                match (decode(&m.learners), decode(&m.records), hex_32(&m.erased_digest), hex_32(&m.set_digest)) {
                    (Some(l), Some(r), Some(erased), Some(chained)) => {
                        if add256(&set_digest(&l, &r), &erased) != chained {
                            Some("its learners or records are not the ones it was written with (the set was changed)")
                        } else if r.len() + m.erased.max(0) as u64 != m.entries.max(0) as u64 {
                            Some("its count of records does not match its sets and erasures")
                        } else {
                            None
                        }
                    }
                    _ => Some("its learner or record set cannot be read"),
                }
            };
            if let Some(why) = broken {
                v.first_broken = Some((m.id, why.into()));
                break 'pages;
            }
            if let Some((hash, at)) = published.remove(&m.id)
                && hash != m.hash
                && v.anchor_broken.is_none()
            {
                v.anchor_broken =
                    Some(format!("manifest {} is not the one published at {at} (rewritten after it)", m.id));
            }
            expected_prev = m.hash;
        }
    }
    if v.first_broken.is_none()
        && v.anchor_broken.is_none()
        && let Some((id, (_, at))) = published.iter().min_by_key(|(id, _)| **id)
    {
        v.anchor_broken = Some(format!(
            "manifest {id} was published at {at} and is no longer there (the newest manifests were deleted)"
        ));
    }
    Ok(v)
}

fn hex_32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// Takes an erased learner out of every manifest that names them: out of
/// the learner set, their records out of the record set, counted in
/// `erased`, their entries' digests added to `erased_digest`, so the chain
/// still verifies and the rest of each manifest is untouched. Answers how
/// many records were taken out.
pub fn erase(conn: &mut Conn, user_id: i64) -> QueryResult<u64> {
    crate::db::transaction(conn, |conn| {
        let found = holding(conn, user_id, &Filter::default())?;
        if found.is_empty() {
            return Ok(0);
        }
        let own = own_records(conn, user_id)?;
        let mut total = 0u64;
        for m in found {
            let mut learners = m.learner_set()?;
            if !learners.remove(user_id as u64) {
                continue;
            }
            let mut records = m.record_set()?;
            let taken = match own.of_kind(&m.record_kind) {
                Some(mine) => &records & mine,
                None => RoaringTreemap::new(),
            };
            records -= &taken;
            let gone = set_digest(&RoaringTreemap::from_iter([user_id as u64]), &taken);
            let erased_digest = hex_32(&m.erased_digest).ok_or_else(|| corrupt("erased digest"))?;
            diesel::update(manifests::table.find(m.id))
                .set((
                    manifests::learners.eq(encode(&learners)),
                    manifests::records.eq(encode(&records)),
                    manifests::erased.eq(m.erased + taken.len() as i64),
                    manifests::erased_digest.eq(hex::encode(add256(&erased_digest, &gone))),
                ))
                .execute(conn)?;
            total += taken.len();
        }
        Ok(total)
    })
}

/// What a payload file a partner received matches: the manifests that
/// carry its SHA-256 (a push's body or object), else the pull exports whose
/// whole response had it (`export_summaries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadMatch {
    Manifests { export_id: String, ids: Vec<i64>, recipient: String, entries: i64, state: String },
    PullExport { export_id: String, records: i64 },
    Nothing,
}

pub fn match_payload(conn: &mut Conn, bytes: &[u8]) -> QueryResult<PayloadMatch> {
    use crate::db::schema::export_summaries;
    let sum = hex::encode(Sha256::digest(bytes));
    let found: Vec<Manifest> = manifests::table
        .filter(manifests::sha256.eq(&sum))
        .order(manifests::id.asc())
        .select(Manifest::as_select())
        .load(conn)?;
    if let Some(first) = found.first() {
        return Ok(PayloadMatch::Manifests {
            export_id: first.export_id.clone(),
            ids: found.iter().map(|m| m.id).collect(),
            recipient: first.recipient.clone(),
            entries: found.iter().map(|m| m.entries).sum(),
            state: first.state.clone(),
        });
    }
    let pulled: Option<(String, i64)> = export_summaries::table
        .filter(export_summaries::sha256.eq(&sum))
        .select((export_summaries::export_id, export_summaries::records))
        .first(conn)
        .optional()?;
    Ok(match pulled {
        Some((export_id, records)) => PayloadMatch::PullExport { export_id, records },
        None => PayloadMatch::Nothing,
    })
}

/// A row of the table disclosures were logged in before manifests.
#[derive(Debug, Clone, QueryableByName)]
struct LegacyRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    user_id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    partner_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    recipient: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    purpose: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    fields: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    basis: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    consent_ledger_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    legal_reference: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    note: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    recorded_by: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    export_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    record_key: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    created_at: NaiveDateTime,
}

/// The table migration 000053 moves the old disclosure rows to.
pub const LEGACY_TABLE: &str = "disclosures_legacy";

fn legacy_exists(conn: &mut Conn) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'disclosures_legacy'"
        }
        DbConnection::Pg(_) => {
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'disclosures_legacy' \
             AND table_schema = current_schema()"
        }
    };
    Ok(diesel::sql_query(sql).get_result::<N>(conn)?.n > 0)
}

/// Moves the disclosure rows of before manifests (kept by migration 000053
/// as `disclosures_legacy`) into manifests, grouped by export id, time,
/// recipient, purpose, basis, fields and record kind, and drops the table,
/// in one transaction. Each consent a row named is pinned in its manifest
/// (`ledger_head` 0), and a learner named under two consents in one group
/// goes to a manifest of its own, so every row's consent reads back exactly.
/// Needs the seal key (the digests and seals are keyed): without it, nothing
/// moves and it answers `None`. Answers how many rows moved.
pub fn convert_legacy(conn: &mut Conn) -> QueryResult<Option<usize>> {
    if !legacy_exists(conn)? {
        return Ok(Some(0));
    }
    #[derive(QueryableByName)]
    struct Rows {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = diesel::sql_query("SELECT count(*) AS n FROM disclosures_legacy").get_result::<Rows>(conn)?.n;
    if count == 0 {
        diesel::sql_query("DROP TABLE disclosures_legacy").execute(conn)?;
        return Ok(Some(0));
    }
    if !super::seal::key_installed() {
        tracing::warn!("disclosure rows from before manifests wait for the site secret to be moved into manifests");
        return Ok(None);
    }
    crate::db::transaction(conn, |conn| {
        let rows: Vec<LegacyRow> = diesel::sql_query(
            "SELECT user_id, partner_id, recipient, purpose, fields, basis, consent_ledger_id, legal_reference, note, \
             recorded_by, export_id, record_key, created_at FROM disclosures_legacy ORDER BY id",
        )
        .load(conn)?;
        let n = rows.len();
        type Key = (String, NaiveDateTime, Option<i64>, String, Option<String>, Option<String>, Option<i64>);
        let mut groups: Vec<(Key, Vec<Vec<LegacyRow>>)> = Vec::new();
        let mut index: HashMap<Key, usize> = HashMap::new();
        for r in rows {
            let key: Key = (
                r.export_id.clone(),
                r.created_at,
                r.partner_id,
                r.recipient.clone(),
                r.legal_reference.clone(),
                r.note.clone(),
                r.recorded_by,
            );
            let i = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            // A learner under two consents in one group: another manifest.
            let subs = &mut groups[i].1;
            let fits = |sub: &Vec<LegacyRow>| {
                !sub.iter().any(|o| {
                    o.user_id == r.user_id
                        && o.purpose == r.purpose
                        && o.basis == r.basis
                        && o.fields == r.fields
                        && o.consent_ledger_id != r.consent_ledger_id
                })
            };
            match subs.iter_mut().find(|s| fits(s)) {
                Some(sub) => sub.push(r),
                None => subs.push(vec![r]),
            }
        }
        for ((export_id, at, partner_id, recipient, legal_reference, note, recorded_by), subs) in groups {
            for sub in subs {
                let pins: Vec<i64> = sub.iter().filter_map(|r| r.consent_ledger_id).collect();
                let header = Header {
                    partner_id,
                    recipient: &recipient,
                    export_id: &export_id,
                    state: State::Delivered,
                    sha256: None,
                    ledger_head: 0,
                    legal_reference: legal_reference.as_deref(),
                    note: note.as_deref(),
                    recorded_by,
                    at,
                };
                let items = sub
                    .into_iter()
                    .map(|r| Item {
                        user_id: r.user_id,
                        purpose: r.purpose,
                        record_key: r.record_key,
                        fields: r.fields,
                        basis: r.basis,
                        ledger_id: r.consent_ledger_id,
                    })
                    .collect();
                // Every consent is above head 0, so each is pinned.
                debug_assert!(pins.iter().all(|p| *p > 0));
                write_in(conn, &header, items)?;
            }
        }
        diesel::sql_query("DROP TABLE disclosures_legacy").execute(conn)?;
        Ok(Some(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_of_two_digests_carries_across_bytes() {
        let mut a = [0u8; 32];
        a[31] = 0xff;
        a[30] = 0xff;
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut want = [0u8; 32];
        want[29] = 1;
        assert_eq!(add256(&a, &one), want);
        assert_eq!(add256(&[0xff; 32], &one), [0u8; 32], "modulo 2^256");
    }

    #[test]
    fn a_sets_digest_is_its_parts_digests_summed() {
        let all: RoaringTreemap = [3u64, 9, 27, 81].into_iter().collect();
        let records: RoaringTreemap = [100u64, 101].into_iter().collect();
        let some: RoaringTreemap = [3u64, 27].into_iter().collect();
        let rest: RoaringTreemap = [9u64, 81].into_iter().collect();
        let part = set_digest(&some, &RoaringTreemap::from_iter([100u64]));
        let other = set_digest(&rest, &RoaringTreemap::from_iter([101u64]));
        assert_eq!(add256(&part, &other), set_digest(&all, &records));
        assert_ne!(set_digest(&some, &records), set_digest(&all, &records));
    }

    /// A manifest of class c that holds u starts within 2^c - 1 of u: the
    /// one range per class the learner's lookup reads finds it.
    #[test]
    fn a_range_is_found_in_its_class_window() {
        assert_eq!((span_class(5, 5), span_class(5, 6), span_class(0, 1000), span_class(1, 1025)), (0, 1, 10, 11));
        for (lo, hi) in [(1i64, 1), (3, 9), (1000, 1999), (65_535, 65_537), (1, 1_000_000)] {
            let reach = (1i64 << span_class(lo, hi)) - 1;
            for u in [lo, (lo + hi) / 2, hi] {
                assert!(lo >= u - reach && lo <= u, "[{lo}, {hi}] found from {u}");
            }
        }
    }

    /// The sets of one export page of 1,000 records: one set a run, the
    /// other scattered over a million (pages go by learner, so the learners
    /// are near-consecutive and their enrollment ids scattered; the pages
    /// of before went by enrollment id, the other way round). Measured: see
    /// docs/ARCHITECTURE.md.
    #[test]
    fn a_pages_sets_cost_a_few_bytes_a_record() {
        let records: RoaringTreemap = (5_000_000u64..5_001_000).collect();
        let learners: RoaringTreemap = (0..1000u64).map(|i| (i * 7919 * 131) % 1_000_000 + 1).collect();
        let (r, l) = (encode(&records).len(), encode(&learners).len());
        assert!(r < 40, "a run of record ids: {r} bytes");
        // Two bytes an id, and a header per 65,536 ids of range (2,148 in all).
        assert!(l <= 2 * 1000 + 200, "scattered learners, two bytes each: {l} bytes");
        assert_eq!(decode(&encode(&learners)), Some(learners));
    }
}
