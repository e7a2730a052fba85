//! Scheduled pushes to partners: per partner, destinations (its S3 bucket,
//! its Learning Record Store, a webhook) with a schedule. Each send is a row
//! in the `partner_sends` outbox, unique by idempotency key, delivered by a
//! `partner.push` job, so status, attempts, last error, backoff, the
//! dead-letter list and staff replay are the job queue's.
//!
//! A send is a snapshot of what the gate lets through *when it is delivered*:
//! a retry after hours carries no record whose consent was withdrawn
//! meanwhile. Its records are recorded as disclosed under the idempotency
//! key as export id when the destination confirms them (the object stored,
//! the statements accepted, each webhook part answered 2xx), once per record
//! however often the delivery is retried; a send that never arrives (a dead
//! letter) discloses nothing.
//!
//! Nothing is sent twice for one key: a delivered send is never delivered
//! again; an S3 object is named by the key and not written when it exists;
//! the LRS receives statements whose ids are derived from the records (an LRS
//! stores a statement id once); webhook bodies carry the key as `id` for the
//! receiver to drop repeats, the one case (a crash between the partner's
//! answer and our commit) where a body can arrive twice.
//!
//! A statement the LRS refuses on its own (invalid, or conflicting with a
//! statement it holds) does not fail the send: the others are delivered, the
//! send is marked delivered, and each refused statement is kept in
//! `partner_send_rejections` with its id, the LRS's status and message, for
//! staff to see with the send. Failures of the send as a whole (credentials,
//! endpoint, 5xx, 429, the network) fail it and it is retried, as before.

use std::collections::HashSet;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use partner_adapters::{
    ExportOptions, Format, LrsClient, LrsConfig, RecordKind, Rejection, RetryPolicy, SharedDeparture, SharedRecord,
    WebhookClient, WebhookConfig, XapiOptions,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::partners::Partner;
use super::sharing::{self, Want};
use crate::db::schema::{
    jobs, partner_destinations, partner_send_rejections, partner_sends, partner_statements, partners,
};
use crate::db::{Conn, Db, DbError};
use crate::jobs as queue;

/// The job kind that delivers one send.
pub const PUSH: &str = "partner.push";
/// Records per webhook body.
const WEBHOOK_BATCH: usize = 500;
/// Statements per LRS request.
const LRS_BATCH: usize = 100;
/// Limits of one HTTP attempt, connection to last byte.
const LRS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The sealed column of destination secrets (S3 secret keys, LRS passwords,
/// webhook signing secrets), opened only to send.
pub const SECRET_FIELD: &str = "partner_destinations.secret";

/// Where a destination sends. Secrets live in their own column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    S3 {
        /// For S3-compatible services; AWS itself when unset.
        endpoint: Option<String>,
        region: String,
        bucket: String,
        /// Key prefix inside the bucket, e.g. `lyceum/`.
        prefix: String,
        access_key_id: String,
    },
    Lrs {
        endpoint: String,
        username: String,
    },
    Webhook {
        url: String,
    },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::S3 { .. } => "s3",
            Target::Lrs { .. } => "lrs",
            Target::Webhook { .. } => "webhook",
        }
    }

    /// One line for staff pages; never the secret.
    pub fn describe(&self) -> String {
        match self {
            Target::S3 { endpoint, bucket, prefix, .. } => match endpoint {
                Some(e) => format!("s3://{bucket}/{prefix} at {e}"),
                None => format!("s3://{bucket}/{prefix}"),
            },
            Target::Lrs { endpoint, .. } => format!("LRS {endpoint}"),
            Target::Webhook { url } => format!("webhook {url}"),
        }
    }

    /// Checks the settings, resolving host names now: a destination at a
    /// private address is refused when it is saved, and again when it is sent.
    fn check(&self, outbound: &crate::net::Outbound) -> Result<(), String> {
        let http = |url: &str, what: &str| match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                outbound.check_now(url).map_err(|e| format!("The {what} is refused: {e}."))
            }
            _ => Err(format!("The {what} must be an http(s) URL.")),
        };
        match self {
            Target::S3 { endpoint, region, bucket, prefix, access_key_id } => {
                if let Some(e) = endpoint {
                    http(e, "S3 endpoint")?;
                }
                if region.trim().is_empty() {
                    return Err("Give the bucket's region, e.g. eu-west-1.".into());
                }
                let valid_bucket = (3..=63).contains(&bucket.len())
                    && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
                if !valid_bucket {
                    return Err("A bucket name has 3 to 63 lowercase letters, digits, dots or hyphens.".into());
                }
                if prefix.starts_with('/') || prefix.contains("..") {
                    return Err("The key prefix may not start with / or contain “..”.".into());
                }
                if access_key_id.trim().is_empty() {
                    return Err("Give the access key id.".into());
                }
                Ok(())
            }
            Target::Lrs { endpoint, username } => {
                http(endpoint, "LRS endpoint")?;
                if username.trim().is_empty() { Err("Give the LRS key (user name).".into()) } else { Ok(()) }
            }
            Target::Webhook { url } => http(url, "webhook URL"),
        }
    }

    /// The formats this kind of destination takes.
    fn formats(&self) -> &'static [Format] {
        match self {
            Target::S3 { .. } => &[Format::Csv, Format::JsonLines, Format::OneRoster],
            Target::Lrs { .. } => &[Format::Xapi],
            Target::Webhook { .. } => &[Format::JsonLines],
        }
    }
}

/// Which records a destination receives: one kind, or all three.
fn want_of(record_kind: &str) -> Option<Want> {
    match record_kind {
        "all" => Some(Want::ALL),
        other => RecordKind::parse(other).map(|k| Want {
            enrollment: k == RecordKind::Enrollment,
            progress: k == RecordKind::Progress,
            result: k == RecordKind::Result,
        }),
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partner_destinations)]
pub struct Destination {
    pub id: i64,
    pub partner_id: i64,
    pub name: String,
    pub kind: String,
    pub record_kind: String,
    pub format: String,
    pub target: String,
    pub secret: String,
    pub every_minutes: i32,
    pub next_run_at: NaiveDateTime,
    pub enabled: bool,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
    /// The newest departure this destination has been told of.
    pub departures_sent: i64,
}

impl Destination {
    pub fn target(&self) -> Result<Target, String> {
        serde_json::from_str(&self.target).map_err(|e| format!("destination {} has unreadable settings: {e}", self.id))
    }

    /// The secret in the clear, for the moment of a send.
    fn open_secret(&self) -> Result<String, String> {
        crate::kernel::vault::open(SECRET_FIELD, &self.secret)
            .map_err(|e| format!("the secret of destination {} cannot be opened: {e}", self.id))
    }
}

/// What staff fill in to add a destination.
pub struct NewDestination<'a> {
    pub name: &'a str,
    pub target: Target,
    pub record_kind: &'a str,
    pub format: &'a str,
    pub secret: &'a str,
    pub every_minutes: i32,
    pub by: Option<i64>,
}

/// Adds a destination; its first push is due at once. The error is a
/// message for the person who filled in the form.
pub fn create(
    conn: &mut Conn,
    partner: &Partner,
    new: &NewDestination<'_>,
    now: NaiveDateTime,
    outbound: &crate::net::Outbound,
) -> QueryResult<Result<Destination, String>> {
    let invalid = |m: &str| Ok(Err(m.to_string()));
    if partner.record_purpose().is_none() {
        return invalid("This partner receives no course records, so it has nothing to push.");
    }
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return invalid("Give the destination a name of at most 100 characters.");
    }
    if let Err(m) = new.target.check(outbound) {
        return Ok(Err(m));
    }
    let Some(format) = Format::parse(new.format).filter(|f| new.target.formats().contains(f)) else {
        let names: Vec<&str> = new.target.formats().iter().map(|f| f.as_str()).collect();
        return Ok(Err(format!("This destination takes the format {}.", names.join(" or "))));
    };
    if want_of(new.record_kind).is_none() {
        return invalid("Choose enrollments, progress, results or all records.");
    }
    let single = new.record_kind != "all";
    if single != matches!(format, Format::Csv | Format::JsonLines) && !matches!(new.target, Target::Webhook { .. }) {
        return invalid(if single {
            "OneRoster and xAPI carry all records; choose “all records”."
        } else {
            "A CSV or JSON Lines file holds one kind of record; choose enrollments, progress or results."
        });
    }
    if new.secret.trim().is_empty() {
        return invalid("Give the secret (S3 secret access key, LRS password or webhook signing secret).");
    }
    if !(5..=43_200).contains(&new.every_minutes) {
        return invalid("Push every 5 minutes at the most often, and at least once a month (43200 minutes).");
    }
    let target = serde_json::to_string(&new.target).map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let secret = crate::kernel::vault::seal(SECRET_FIELD, new.secret.trim())
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let id = diesel::insert_into(partner_destinations::table)
        .values((
            partner_destinations::partner_id.eq(partner.id),
            partner_destinations::name.eq(name),
            partner_destinations::kind.eq(new.target.kind()),
            partner_destinations::record_kind.eq(new.record_kind),
            partner_destinations::format.eq(format.as_str()),
            partner_destinations::target.eq(target),
            partner_destinations::secret.eq(secret),
            partner_destinations::every_minutes.eq(new.every_minutes),
            partner_destinations::next_run_at.eq(now),
            partner_destinations::enabled.eq(true),
            partner_destinations::created_by.eq(new.by),
            partner_destinations::created_at.eq(now),
        ))
        .returning(partner_destinations::id)
        .get_result::<i64>(conn)?;
    Ok(Ok(destination(conn, id)?))
}

pub fn destination(conn: &mut Conn, id: i64) -> QueryResult<Destination> {
    partner_destinations::table.find(id).select(Destination::as_select()).first(conn)
}

/// The partner's destinations, oldest first, `limit` of them from `offset`.
pub fn destinations(conn: &mut Conn, partner: &Partner, offset: i64, limit: i64) -> QueryResult<Vec<Destination>> {
    partner_destinations::table
        .filter(partner_destinations::partner_id.eq(partner.id))
        .order(partner_destinations::id.asc())
        .limit(limit)
        .offset(offset)
        .select(Destination::as_select())
        .load(conn)
}

/// Pauses or resumes a destination's schedule; a resumed one is due at once.
pub fn set_enabled(
    conn: &mut Conn,
    partner: &Partner,
    id: i64,
    enabled: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let target = partner_destinations::table
        .filter(partner_destinations::id.eq(id))
        .filter(partner_destinations::partner_id.eq(partner.id));
    let n = if enabled {
        diesel::update(target)
            .set((partner_destinations::enabled.eq(true), partner_destinations::next_run_at.eq(now)))
            .execute(conn)?
    } else {
        diesel::update(target).set(partner_destinations::enabled.eq(false)).execute(conn)?
    };
    Ok(n == 1)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partner_sends)]
pub struct Send {
    pub id: i64,
    pub destination_id: i64,
    pub idempotency_key: String,
    pub job_id: Option<i64>,
    pub trigger: String,
    pub requested_by: Option<i64>,
    pub payload_digest: Option<String>,
    pub record_count: Option<i32>,
    pub location: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// The departures this send carries: ids in `(from, to]`, fixed at its first attempt.
    pub departures_from: Option<i64>,
    pub departures_to: Option<i64>,
}

/// Puts a send in the outbox with its delivery job, in one transaction.
/// `None` when a send with this key exists: nothing twice for one key.
pub fn request_send(
    conn: &mut Conn,
    dest: &Destination,
    key: &str,
    trigger: &str,
    by: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    let outcome = crate::db::transaction(conn, |conn| {
        let exists = partner_sends::table
            .filter(partner_sends::idempotency_key.eq(key))
            .select(partner_sends::id)
            .first::<i64>(conn)
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        let id = diesel::insert_into(partner_sends::table)
            .values((
                partner_sends::destination_id.eq(dest.id),
                partner_sends::idempotency_key.eq(key),
                partner_sends::trigger.eq(trigger),
                partner_sends::requested_by.eq(by),
                partner_sends::created_at.eq(now),
            ))
            .returning(partner_sends::id)
            .get_result::<i64>(conn)?;
        let job = queue::enqueue(conn, PUSH, &serde_json::json!({ "send_id": id }))?;
        diesel::update(partner_sends::table.find(id)).set(partner_sends::job_id.eq(job)).execute(conn)?;
        Ok(Some(id))
    });
    match outcome {
        // Another scheduler inserted the same key between our check and insert.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        other => other,
    }
}

/// The idempotency key of a scheduled slot: the same slot never yields two sends.
pub fn slot_key(dest: &Destination, slot: NaiveDateTime) -> String {
    format!("d{}-{}", dest.id, slot.format("%Y%m%dT%H%M%SZ"))
}

/// A send staff asked for now.
pub fn push_now(conn: &mut Conn, dest: &Destination, by: i64, now: NaiveDateTime) -> QueryResult<Option<i64>> {
    let key = format!("d{}-staff-{}", dest.id, uuid::Uuid::new_v4().simple());
    request_send(conn, dest, &key, "staff", Some(by), now)
}

/// Queues one send for every enabled destination whose slot has come, and
/// moves its schedule on (past slots missed while no worker ran are skipped,
/// not queued in a burst). Returns how many sends were queued.
pub fn schedule_due(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<usize> {
    let due: Vec<Destination> = partner_destinations::table
        .filter(partner_destinations::enabled.eq(true))
        .filter(partner_destinations::next_run_at.le(now))
        .select(Destination::as_select())
        .load(conn)?;
    let mut queued = 0;
    for dest in due {
        let slot = dest.next_run_at;
        if request_send(conn, &dest, &slot_key(&dest, slot), "schedule", None, now)?.is_some() {
            queued += 1;
        }
        let every = Duration::minutes(i64::from(dest.every_minutes.max(1)));
        let missed = (now - slot).num_minutes() / every.num_minutes();
        let next = slot + every * (missed as i32 + 1);
        diesel::update(partner_destinations::table.find(dest.id).filter(partner_destinations::next_run_at.eq(slot)))
            .set(partner_destinations::next_run_at.eq(next))
            .execute(conn)?;
    }
    Ok(queued)
}

/// A send as staff see it in the outbox, with its job's state.
#[derive(Debug, Clone, Serialize)]
pub struct SendView {
    pub id: i64,
    pub destination: String,
    pub idempotency_key: String,
    pub trigger: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub payload_digest: Option<String>,
    pub record_count: Option<i32>,
    pub location: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
    pub replayable: bool,
    /// Statements the LRS refused in this send, and the first
    /// [`REJECTIONS_SHOWN`] of them.
    pub rejected: i64,
    pub rejections: Vec<RejectionView>,
}

/// At most this many refused statements are listed per send.
pub const REJECTIONS_SHOWN: i64 = 50;

/// A statement an LRS refused, as staff see it.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct RejectionView {
    pub statement_id: String,
    pub status: i32,
    pub message: String,
}

type SendRow = (Send, String, Option<(String, i32, i32, Option<String>, NaiveDateTime)>);

fn view((send, destination, job): SendRow) -> SendView {
    let (status, attempts, max_attempts, last_error, run_at) = match job {
        Some((s, a, m, e, r)) => (s, a, m, e, Some(r)),
        None => {
            (if send.delivered_at.is_some() { queue::status::DONE.into() } else { "lost".into() }, 0, 0, None, None)
        }
    };
    let waiting = status == queue::status::QUEUED && attempts > 0;
    SendView {
        id: send.id,
        destination,
        idempotency_key: send.idempotency_key,
        trigger: send.trigger,
        replayable: status == queue::status::DEAD,
        next_attempt_at: if waiting { run_at } else { None },
        status,
        attempts,
        max_attempts,
        last_error,
        payload_digest: send.payload_digest,
        record_count: send.record_count,
        location: send.location,
        created_at: send.created_at,
        delivered_at: send.delivered_at,
        rejected: 0,
        rejections: Vec::new(),
    }
}

/// The partner's sends, newest first, `limit` of them from `offset`;
/// `dead_only` gives the dead-letter list.
pub fn sends(
    conn: &mut Conn,
    partner: &Partner,
    dead_only: bool,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<SendView>> {
    let mut q = partner_sends::table
        .inner_join(partner_destinations::table)
        .left_join(jobs::table)
        .filter(partner_destinations::partner_id.eq(partner.id))
        .order(partner_sends::id.desc())
        .limit(limit)
        .offset(offset)
        .select((
            Send::as_select(),
            partner_destinations::name,
            (jobs::status, jobs::attempts, jobs::max_attempts, jobs::last_error, jobs::run_at).nullable(),
        ))
        .into_boxed();
    if dead_only {
        q = q.filter(jobs::status.eq(queue::status::DEAD));
    }
    let mut sends: Vec<SendView> = q.load::<SendRow>(conn)?.into_iter().map(view).collect();
    let ids: Vec<i64> = sends.iter().map(|s| s.id).collect();
    let counts: Vec<(i64, i64)> = partner_send_rejections::table
        .filter(partner_send_rejections::send_id.eq_any(&ids))
        .group_by(partner_send_rejections::send_id)
        .select((partner_send_rejections::send_id, diesel::dsl::count_star()))
        .load(conn)?;
    for (send_id, count) in counts {
        let Some(send) = sends.iter_mut().find(|s| s.id == send_id) else { continue };
        send.rejected = count;
        send.rejections = partner_send_rejections::table
            .filter(partner_send_rejections::send_id.eq(send_id))
            .order(partner_send_rejections::id.asc())
            .limit(REJECTIONS_SHOWN)
            .select((
                partner_send_rejections::statement_id,
                partner_send_rejections::status,
                partner_send_rejections::message,
            ))
            .load(conn)?;
    }
    Ok(sends)
}

/// Puts a dead send back in the queue with fresh attempts (same key, same
/// destination). False when it is not the partner's or not dead.
/// Sends to every partner by state, for the operator's metrics: delivered
/// (the destination confirmed), waiting (queued or retrying) and dead (gave
/// up after every attempt; a staff member may replay them).
pub fn send_counts(conn: &mut Conn) -> QueryResult<[(&'static str, i64); 3]> {
    let delivered = partner_sends::table.filter(partner_sends::delivered_at.is_not_null()).count().get_result(conn)?;
    let undelivered = partner_sends::table
        .left_join(jobs::table)
        .filter(partner_sends::delivered_at.is_null())
        .select(jobs::status.nullable());
    let dead = undelivered.filter(jobs::status.eq(queue::status::DEAD)).count().get_result(conn)?;
    let waiting =
        undelivered.filter(jobs::status.ne(queue::status::DEAD).or(jobs::status.is_null())).count().get_result(conn)?;
    Ok([("delivered", delivered), ("waiting", waiting), ("dead", dead)])
}

pub fn replay(conn: &mut Conn, partner: &Partner, send_id: i64) -> QueryResult<bool> {
    let job: Option<Option<i64>> = partner_sends::table
        .inner_join(partner_destinations::table)
        .filter(partner_sends::id.eq(send_id))
        .filter(partner_destinations::partner_id.eq(partner.id))
        .select(partner_sends::job_id)
        .first(conn)
        .optional()?;
    let Some(Some(job_id)) = job else { return Ok(false) };
    let dead = jobs::table.find(job_id).select(jobs::status).first::<String>(conn)? == queue::status::DEAD;
    Ok(dead && queue::retry(conn, job_id)?)
}

/// What the worker needs to deliver one send.
struct Work {
    send: Send,
    dest: Destination,
    partner: Partner,
}

fn load_work(conn: &mut Conn, send_id: i64) -> QueryResult<Option<Work>> {
    let Some(send) = partner_sends::table.find(send_id).select(Send::as_select()).first(conn).optional()? else {
        return Ok(None);
    };
    let dest = destination(conn, send.destination_id)?;
    let partner = partners::table.find(dest.partner_id).select(Partner::as_select()).first(conn)?;
    Ok(Some(Work { send, dest, partner }))
}

/// Records the payload of this attempt before it leaves.
fn note_payload(conn: &mut Conn, send_id: i64, digest: &str, count: usize, location: &str) -> QueryResult<()> {
    diesel::update(partner_sends::table.find(send_id))
        .set((
            partner_sends::payload_digest.eq(digest),
            partner_sends::record_count.eq(count as i32),
            partner_sends::location.eq(location),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The departures a send carries, fixed at its first attempt (a retry
/// carries the same ones): those after what its destination was last told,
/// up to the partner's newest. A disclosure row (basis `departure`) is
/// written for each under the send's key.
fn send_departures(
    conn: &mut Conn,
    send: &Send,
    dest: &Destination,
    partner: &Partner,
    base_url: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<(super::departures::Departure, SharedDeparture)>> {
    let (from, to) = match (send.departures_from, send.departures_to) {
        (Some(from), Some(to)) => (from, to),
        _ => {
            let from = dest.departures_sent;
            let to = super::departures::latest(conn, partner.id)?.max(from);
            diesel::update(partner_sends::table.find(send.id))
                .set((partner_sends::departures_from.eq(from), partner_sends::departures_to.eq(to)))
                .execute(conn)?;
            (from, to)
        }
    };
    if to <= from {
        return Ok(Vec::new());
    }
    super::departures::deliver(conn, partner, from, Some(to), i64::MAX, &send.idempotency_key, base_url, now)
}

/// Marks the send delivered and keeps the statements the LRS refused, in one
/// transaction: a send delivered once keeps the rejections of that delivery.
/// What a delivery leaves to record with it.
#[derive(Default)]
struct Delivered {
    /// Statements the LRS refused (the rest of the push arrived).
    rejected: Vec<Rejection>,
    /// Statements the LRS holds now: (enrollment, learner id, statement id).
    statements: Vec<(i64, String, String)>,
    /// Statement ids voided by this send: nothing left there to void again.
    voided: Vec<String>,
}

/// Marks a send delivered, with what it leaves to record, in one
/// transaction: its refused statements, the statements its LRS now holds,
/// and that its destination has been told of the departures it carried.
fn note_delivered(conn: &mut Conn, send_id: i64, done: &Delivered, now: NaiveDateTime) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        let marked = diesel::update(partner_sends::table.find(send_id).filter(partner_sends::delivered_at.is_null()))
            .set(partner_sends::delivered_at.eq(now))
            .execute(conn)?;
        if marked == 0 {
            return Ok(());
        }
        let (dest, to): (i64, Option<i64>) = partner_sends::table
            .find(send_id)
            .select((partner_sends::destination_id, partner_sends::departures_to))
            .first(conn)?;
        if let Some(to) = to {
            diesel::update(partner_destinations::table.find(dest).filter(partner_destinations::departures_sent.lt(to)))
                .set(partner_destinations::departures_sent.eq(to))
                .execute(conn)?;
        }
        let rows: Vec<_> = done
            .rejected
            .iter()
            .map(|r| {
                (
                    partner_send_rejections::send_id.eq(send_id),
                    partner_send_rejections::statement_id.eq(r.statement_id.to_string()),
                    partner_send_rejections::status.eq(i32::from(r.status)),
                    partner_send_rejections::message.eq(r.message.clone()),
                    partner_send_rejections::created_at.eq(now),
                )
            })
            .collect();
        let held: Vec<_> = done
            .statements
            .iter()
            .map(|(eid, learner, id)| {
                (
                    partner_statements::destination_id.eq(dest),
                    partner_statements::statement_id.eq(id.clone()),
                    partner_statements::enrollment_id.eq(*eid),
                    partner_statements::learner_id.eq(learner.clone()),
                    partner_statements::created_at.eq(now),
                )
            })
            .collect();
        crate::on_backend!(conn, |c| {
            for chunk in rows.chunks(500) {
                diesel::insert_into(partner_send_rejections::table).values(chunk).execute(c)?;
            }
            for chunk in held.chunks(500) {
                diesel::insert_into(partner_statements::table).values(chunk).on_conflict_do_nothing().execute(c)?;
            }
        });
        for chunk in done.voided.chunks(500) {
            diesel::delete(
                partner_statements::table
                    .filter(partner_statements::destination_id.eq(dest))
                    .filter(partner_statements::statement_id.eq_any(chunk)),
            )
            .execute(conn)?;
        }
        Ok(())
    })
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs a `partner.push` job ([`PUSH`]).
pub async fn run_push(
    db: Db,
    base_url: String,
    outbound: crate::net::Outbound,
    job: crate::jobs::Run,
) -> Result<(), String> {
    let payload = job.payload;
    let id = payload["send_id"].as_i64().ok_or("payload has no send_id")?;
    deliver(&db, id, &base_url, &outbound).await
}

/// Delivers one send; the job worker calls it, and calls it again after a
/// failure or a crash. The error becomes the job's last error.
pub async fn deliver(db: &Db, send_id: i64, base_url: &str, outbound: &crate::net::Outbound) -> Result<(), String> {
    let work = db.run(move |conn| load_work(conn, send_id).map_err(DbError::from)).await.map_err(|e| e.to_string())?;
    let Some(Work { send, dest, partner }) = work else {
        return Err(format!("send {send_id} no longer exists"));
    };
    if send.delivered_at.is_some() {
        return Ok(());
    }
    let target = dest.target()?;
    let secret = dest.open_secret()?;
    // Checked again at send time (names may resolve elsewhere by now), and
    // before the gate, so nothing is disclosed for a send that cannot leave.
    // The AWS SDK connects with its own client, so this check is its only one;
    // LRS and webhook clients check every resolution again when they connect.
    match &target {
        Target::S3 { endpoint: Some(endpoint), .. } | Target::Lrs { endpoint, .. } => {
            outbound.check_before_request(endpoint).await?
        }
        Target::Webhook { url } => outbound.check_before_request(url).await?,
        Target::S3 { endpoint: None, .. } => {}
    }
    let purpose = partner.record_purpose().ok_or("this partner receives no course records")?;
    let want = want_of(&dest.record_kind).ok_or_else(|| format!("unknown record kind {}", dest.record_kind))?;
    let format = Format::parse(&dest.format).ok_or_else(|| format!("unknown format {}", dest.format))?;
    let key = send.idempotency_key.clone();
    // Times the gate withholds are given as the moment the send was requested.
    let xapi = XapiOptions::new(base_url, send.created_at.and_utc());

    // The S3 object is named by the key: when it exists, this key was sent.
    let s3 = match &target {
        Target::S3 { endpoint, region, bucket, prefix, access_key_id } => {
            let client = crate::storage::s3::client(endpoint.as_deref(), region, access_key_id, &secret);
            let extension = format
                .adapter(&ExportOptions::new(RecordKind::Enrollment, base_url, send.created_at.and_utc()))
                .file_extension();
            let object = format!("{prefix}{}/{}/{key}.{extension}", partner.slug, dest.record_kind);
            let location = format!("s3://{bucket}/{object}");
            if let Some(existing) = s3_existing_digest(&client, bucket, &object).await? {
                let count = send.record_count.unwrap_or(0) as usize;
                db.run(move |conn| {
                    crate::db::transaction(conn, |conn| {
                        note_payload(conn, send_id, &existing, count, &location)?;
                        note_delivered(conn, send_id, &Delivered::default(), crate::db::now())
                    })
                    .map_err(DbError::from)
                })
                .await
                .map_err(|e| e.to_string())?;
                return Ok(());
            }
            Some((client, bucket.clone(), object, location))
        }
        _ => None,
    };

    // The gate, at this instant, under the key as export id.
    // Nothing is recorded as disclosed yet: what arrives is, once the
    // destination confirms it (a 2xx, a stored object, accepted statements).
    let (records, pending): (Vec<SharedRecord>, sharing::Pending) = {
        let (partner, key, base) = (partner.clone(), key.clone(), base_url.to_string());
        db.run(move |conn| {
            let (shared, pending) =
                sharing::all_undelivered(conn, &partner, purpose, want, &key, &base, crate::db::now())?;
            Ok::<_, DbError>((shared.iter().flat_map(|s| s.records()).collect(), pending))
        })
        .await
        .map_err(|e| e.to_string())?
    };

    // The departures it carries: what the destination must delete.
    let departed: Vec<(super::departures::Departure, SharedDeparture)> = {
        let (send, dest, partner, base) = (send.clone(), dest.clone(), partner.clone(), base_url.to_string());
        db.run(move |conn| {
            send_departures(conn, &send, &dest, &partner, &base, crate::db::now()).map_err(DbError::from)
        })
        .await
        .map_err(|e| e.to_string())?
    };
    let departure_records: Vec<SharedRecord> =
        departed.iter().map(|(_, d)| SharedRecord::Departure(d.clone())).collect();
    let s3_prefix = match &target {
        Target::S3 { prefix, .. } => prefix.clone(),
        _ => String::new(),
    };

    let retry = RetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::from_millis(250),
        max_delay: std::time::Duration::from_secs(2),
    };
    let mut done = Delivered::default();
    // The SHA-256 of what was sent, for the manifests.
    let sent_sum: Option<String>;
    // What the destination confirmed, beyond what is recorded part by part.
    let mut arrived = sharing::Pending::default();
    match target {
        Target::S3 { .. } => {
            let Some((client, bucket, object, location)) = s3 else {
                return Err("no S3 client for an S3 destination".into());
            };
            let kind = RecordKind::parse(&dest.record_kind).unwrap_or(RecordKind::Enrollment);
            let options = ExportOptions { kind, xapi: xapi.clone(), generated_at: send.created_at.and_utc() };
            let mut adapter = format.adapter(&options);
            let mut body = Vec::new();
            // OneRoster and JSON Lines carry departures among the records (as
            // `tobedeleted` rows, as `departure` lines); a CSV holds one kind,
            // so departures go in a CSV of their own, written first: the
            // records object's presence means the whole send arrived.
            let together = format != Format::Csv;
            let all = records.iter().chain(departure_records.iter().filter(|_| together));
            partner_adapters::write_records(adapter.as_mut(), all, &mut body).map_err(|e| e.to_string())?;
            if !together && !departure_records.is_empty() {
                let options =
                    ExportOptions { kind: RecordKind::Departure, xapi, generated_at: send.created_at.and_utc() };
                let mut adapter = format.adapter(&options);
                let mut file = Vec::new();
                partner_adapters::write_records(adapter.as_mut(), &departure_records, &mut file)
                    .map_err(|e| e.to_string())?;
                let object = format!("{s3_prefix}{}/departures/{key}.csv", partner.slug);
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&object)
                    .content_type(adapter.content_type())
                    .metadata("sha256", digest(&file))
                    .metadata("idempotency-key", &key)
                    .body(file.into())
                    .send()
                    .await
                    .map_err(|e| {
                        format!("S3 PutObject s3://{bucket}/{object}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
                    })?;
            }
            let sum = digest(&body);
            let (s, l, n) = (sum.clone(), location.clone(), records.len() + departure_records.len());
            db.run(move |conn| note_payload(conn, send_id, &s, n, &l).map_err(DbError::from))
                .await
                .map_err(|e| e.to_string())?;
            let put = client
                .put_object()
                .bucket(&bucket)
                .key(&object)
                .content_type(adapter.content_type())
                .metadata("sha256", &sum)
                .metadata("idempotency-key", &key)
                .body(body.into())
                .send()
                .await
                .map_err(|e| format!("S3 PutObject {location}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
            if let Err(e) = put {
                return Err(note_attempted(db, &partner, &key, pending, Some(sum), e).await);
            }
            arrived = pending;
            sent_sum = Some(sum);
        }
        Target::Lrs { endpoint, username } => {
            let mut statements = Vec::new();
            let mut held = Vec::new();
            for r in &records {
                let eid = sharing::decode_cursor(r.cursor()).unwrap_or(0);
                for s in partner_adapters::xapi::statements(r, &xapi) {
                    held.push((eid, r.learner_id().to_string(), s.id.to_string()));
                    statements.push(s);
                }
            }
            // A departure voids every statement this LRS received about that
            // learner id in that enrollment (xAPI's way to retract them).
            let voided: Vec<(String, NaiveDateTime)> = {
                let (dest_id, gone) = (
                    dest.id,
                    departed
                        .iter()
                        .map(|(d, _)| (d.enrollment_id, d.learner_id.clone(), d.created_at))
                        .collect::<Vec<_>>(),
                );
                db.run(move |conn| statements_of(conn, dest_id, &gone).map_err(DbError::from))
                    .await
                    .map_err(|e| e.to_string())?
            };
            for (target, at) in &voided {
                if let Ok(target) = uuid::Uuid::parse_str(target) {
                    statements.push(partner_adapters::xapi::voiding(target, at.and_utc(), &xapi));
                }
            }
            let sum = digest(&serde_json::to_vec(&statements).map_err(|e| e.to_string())?);
            sent_sum = Some(sum.clone());
            let (s, l, n) = (sum, format!("{}/statements", endpoint.trim_end_matches('/')), statements.len());
            db.run(move |conn| note_payload(conn, send_id, &s, n, &l).map_err(DbError::from))
                .await
                .map_err(|e| e.to_string())?;
            let mut config = LrsConfig::new(endpoint, username, secret);
            config.retry = retry;
            config.batch_size = LRS_BATCH;
            let client =
                LrsClient::with_http(config, guarded_client(outbound, LRS_TIMEOUT)?).map_err(|e| e.to_string())?;
            let sent = match client.send_statements(&statements).await {
                Ok(sent) => sent,
                Err(e) => return Err(note_attempted(db, &partner, &key, pending, sent_sum, e.to_string()).await),
            };
            if !sent.rejected.is_empty() {
                tracing::warn!(
                    send = send_id,
                    refused = sent.rejected.len(),
                    accepted = sent.accepted,
                    "the LRS refused statements"
                );
            }
            let refused: std::collections::HashSet<String> =
                sent.rejected.iter().map(|r| r.statement_id.to_string()).collect();
            done.statements = held.into_iter().filter(|(_, _, id)| !refused.contains(id)).collect();
            arrived = pending.only(&done.statements.iter().map(|(eid, _, _)| *eid).collect());
            done.voided = voided.into_iter().map(|(id, _)| id).collect();
            done.rejected = sent.rejected;
        }
        Target::Webhook { url } => {
            let mut bodies = webhook_bodies(&records, &key, &partner, &dest.record_kind, send.created_at)?;
            if !departure_records.is_empty() {
                bodies.push(departures_body(&departure_records, &key, &partner, send.created_at)?);
            }
            let sum = digest(&bodies.concat());
            sent_sum = Some(sum.clone());
            let (s, l, n) = (sum, url.clone(), records.len() + departure_records.len());
            db.run(move |conn| note_payload(conn, send_id, &s, n, &l).map_err(DbError::from))
                .await
                .map_err(|e| e.to_string())?;
            let mut config = WebhookConfig::new(url, secret.into_bytes());
            config.retry = retry;
            let client = WebhookClient::with_http(config, guarded_client(outbound, WEBHOOK_TIMEOUT)?)
                .map_err(|e| e.to_string())?;
            // Each part the endpoint confirms is recorded at once: a send
            // that fails later has still delivered its earlier parts.
            let parts: Vec<HashSet<i64>> = records
                .chunks(WEBHOOK_BATCH)
                .map(|part| part.iter().map(|r| sharing::decode_cursor(r.cursor()).unwrap_or(0)).collect())
                .collect();
            for (i, body) in bodies.into_iter().enumerate() {
                if let Err(e) = client.send_body(body).await {
                    // What this part and the ones after it carried never arrived.
                    let rest: HashSet<i64> = parts.iter().skip(i).flatten().copied().collect();
                    let rest = pending.only(&rest);
                    return Err(note_attempted(db, &partner, &key, rest, sent_sum, e.to_string()).await);
                }
                if let Some(part) = parts.get(i) {
                    let (partner, key, part) = (partner.clone(), key.clone(), pending.only(part));
                    let sum = sent_sum.clone();
                    db.run(move |conn| {
                        sharing::record_delivered(conn, &partner, &key, part, sum.as_deref(), crate::db::now())
                            .map_err(DbError::from)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    db.run(move |conn| {
        crate::db::transaction(conn, |conn| {
            let now = crate::db::now();
            sharing::record_delivered(conn, &partner, &key, arrived, sent_sum.as_deref(), now)?;
            note_delivered(conn, send_id, &done, now)
        })
        .map_err(DbError::from)
    })
    .await
    .map_err(|e| e.to_string())
}

/// Records what a send carried and the destination never confirmed, as
/// attempted (the learner's log says so, and never that it was shared);
/// answers the send's error.
async fn note_attempted(
    db: &Db,
    partner: &super::partners::Partner,
    key: &str,
    pending: sharing::Pending,
    sum: Option<String>,
    error: String,
) -> String {
    if pending.is_empty() {
        return error;
    }
    let (partner, key) = (partner.clone(), key.to_string());
    let recorded = db
        .run(move |conn| {
            sharing::record_attempted(conn, &partner, &key, pending, sum.as_deref(), crate::db::now())
                .map_err(DbError::from)
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record an attempted send");
    }
    error
}

/// An HTTP client that connects only where the outbound policy permits and
/// follows no redirect (a redirected POST would change method or carry the
/// credentials elsewhere; a 3xx fails the attempt).
fn guarded_client(outbound: &crate::net::Outbound, timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    outbound
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent("lyceum-partner-push")
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// The JSON bodies of a webhook send: the records as JSON Lines objects, in
/// parts of at most [`WEBHOOK_BATCH`], each naming the send's key as `id`.
fn webhook_bodies(
    records: &[SharedRecord],
    key: &str,
    partner: &Partner,
    record_kind: &str,
    created_at: NaiveDateTime,
) -> Result<Vec<Vec<u8>>, String> {
    let mut adapter = Format::JsonLines.adapter(&ExportOptions::new(RecordKind::Enrollment, "", created_at.and_utc()));
    let mut lines = Vec::new();
    partner_adapters::write_records(adapter.as_mut(), records, &mut lines).map_err(|e| e.to_string())?;
    let objects: Vec<serde_json::Value> = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let parts: Vec<&[serde_json::Value]> =
        if objects.is_empty() { vec![&[][..]] } else { objects.chunks(WEBHOOK_BATCH).collect() };
    let total = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            serde_json::to_vec(&serde_json::json!({
                "id": key,
                "type": "lyceum.records",
                "partner": partner.slug,
                "records_kind": record_kind,
                "generated_at": created_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "part": i + 1,
                "parts": total,
                "records": part,
            }))
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// The webhook event of a send's departures: `lyceum.departures`, its `id`
/// the send's key with `-departures`, each departure as its JSON Lines object.
fn departures_body(
    departures: &[SharedRecord],
    key: &str,
    partner: &Partner,
    created_at: NaiveDateTime,
) -> Result<Vec<u8>, String> {
    let mut adapter = Format::JsonLines.adapter(&ExportOptions::new(RecordKind::Departure, "", created_at.and_utc()));
    let mut lines = Vec::new();
    partner_adapters::write_records(adapter.as_mut(), departures, &mut lines).map_err(|e| e.to_string())?;
    let objects: Vec<serde_json::Value> = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    serde_json::to_vec(&serde_json::json!({
        "id": format!("{key}-departures"),
        "type": "lyceum.departures",
        "partner": partner.slug,
        "generated_at": created_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "departures": objects,
    }))
    .map_err(|e| e.to_string())
}

/// The statements an LRS destination holds about these (enrollment, learner
/// id) pairs, with the time of the departure that voids them.
fn statements_of(
    conn: &mut Conn,
    dest_id: i64,
    gone: &[(i64, String, NaiveDateTime)],
) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let eids: Vec<i64> = gone.iter().map(|(e, _, _)| *e).collect();
    let rows: Vec<(String, i64, String)> = partner_statements::table
        .filter(partner_statements::destination_id.eq(dest_id))
        .filter(partner_statements::enrollment_id.eq_any(&eids))
        .order(partner_statements::statement_id)
        .select((partner_statements::statement_id, partner_statements::enrollment_id, partner_statements::learner_id))
        .load(conn)?;
    // The earliest departure of each pair in this send dates its voiding.
    let mut departed_at: std::collections::HashMap<(i64, String), NaiveDateTime> = std::collections::HashMap::new();
    for (eid, learner, at) in gone {
        let first = departed_at.entry((*eid, learner.clone())).or_insert(*at);
        *first = (*first).min(*at);
    }
    Ok(rows.into_iter().filter_map(|(id, eid, learner)| departed_at.get(&(eid, learner)).map(|at| (id, *at))).collect())
}

/// The digest stored with an object already in the bucket, if there is one.
async fn s3_existing_digest(client: &aws_sdk_s3::Client, bucket: &str, object: &str) -> Result<Option<String>, String> {
    match client.head_object().bucket(bucket).key(object).send().await {
        Ok(head) => Ok(Some(head.metadata().and_then(|m| m.get("sha256")).cloned().unwrap_or_default())),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
        Err(e) => Err(format!("S3 HeadObject s3://{bucket}/{object}: {}", aws_sdk_s3::error::DisplayErrorContext(e))),
    }
}

/// Seals destination secrets still stored in the clear (written before
/// they were sealed); run at start-up, so no plaintext outlives an upgrade.
/// Returns how many were sealed.
pub fn seal_plaintext_secrets(conn: &mut Conn) -> Result<usize, String> {
    let vault = crate::kernel::vault::installed().map_err(|e| e.to_string())?;
    let plain: Vec<(i64, String)> = partner_destinations::table
        .filter(partner_destinations::secret.not_like("env1:%"))
        .select((partner_destinations::id, partner_destinations::secret))
        .load(conn)
        .map_err(|e| e.to_string())?;
    for (id, secret) in &plain {
        diesel::update(partner_destinations::table.find(id).filter(partner_destinations::secret.eq(secret)))
            .set(partner_destinations::secret.eq(vault.seal(SECRET_FIELD, secret)))
            .execute(conn)
            .map_err(|e| e.to_string())?;
    }
    Ok(plain.len())
}
