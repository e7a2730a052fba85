//! The consent ledger: grant, decline, withdraw, restrict and lift rows,
//! appended with their evidence and chained by SHA-256 (each row stores the
//! hash of the previous one). Appending also updates the derived state the
//! gate reads (`consents`, `sharing_restrictions`) in the same transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::departures::Reason;
use super::texts::ConsentText;
use super::{Categories, ConsentStatus};
use crate::db::schema::{consent_ledger, consents, sharing_restrictions};
use crate::db::{Conn, DbConnection};

/// Hash the first row chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Purpose recorded on restriction rows, which concern all sharing.
pub const ALL_SHARING: &str = "all";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Grant,
    Decline,
    Withdraw,
    Restrict,
    Lift,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Grant => "grant",
            Action::Decline => "decline",
            Action::Withdraw => "withdraw",
            Action::Restrict => "restrict",
            Action::Lift => "lift",
        }
    }
}

/// How a decision reached the platform and who made it.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// `web_form`, `api`, `email_link`, `staff_entry`.
    pub method: &'static str,
    /// `learner`, `parent` or `staff`.
    pub actor: &'static str,
    pub actor_user_id: Option<i64>,
    /// The parent's name when a parent acts for a minor.
    pub actor_name: Option<String>,
    /// Required for staff entries.
    pub note: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Evidence {
    /// The learner, through a form on the site.
    pub fn learner_web(user_id: i64, client: &crate::kernel::ClientInfo) -> Evidence {
        Evidence {
            method: "web_form",
            actor: "learner",
            actor_user_id: Some(user_id),
            actor_name: None,
            note: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        }
    }
}

/// One decision to append.
pub struct Entry<'a> {
    pub user_id: i64,
    pub partner_id: Option<i64>,
    pub purpose: &'a str,
    pub scope: &'a str,
    pub action: Action,
    pub categories: &'a Categories,
    pub text: Option<&'a ConsentText>,
    pub evidence: &'a Evidence,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = consent_ledger)]
pub struct LedgerRow {
    pub id: i64,
    pub user_id: i64,
    pub partner_id: Option<i64>,
    pub purpose: String,
    pub scope: String,
    pub action: String,
    pub categories: String,
    pub text_id: Option<i64>,
    pub text_version: Option<i32>,
    pub text_sha256: Option<String>,
    pub method: String,
    pub actor: String,
    pub actor_user_id: Option<i64>,
    pub actor_name: Option<String>,
    pub note: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
    pub prev_hash: String,
    pub row_hash: String,
    /// The row's seal under the key outside the database (`seal`); none on
    /// rows written before rows were sealed.
    pub row_mac: Option<String>,
}

impl LedgerRow {
    /// The hash of this row's content chained to `prev_hash`. Every column
    /// except the id and the hash itself is covered; JSON keeps the encoding
    /// unambiguous.
    pub fn compute_hash(&self) -> String {
        let canonical = json!([
            self.prev_hash,
            self.user_id,
            self.partner_id,
            self.purpose,
            self.scope,
            self.action,
            self.categories,
            self.text_id,
            self.text_version,
            self.text_sha256,
            self.method,
            self.actor,
            self.actor_user_id,
            self.actor_name,
            self.note,
            self.ip,
            self.user_agent,
            self.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Takes the ledger's write lock for the rest of the transaction so that two
/// appends cannot chain to the same row (and, taken before reading the
/// derived state, so that two racing decisions cannot both see the old one).
pub(crate) fn lock(conn: &mut Conn) -> QueryResult<()> {
    let sql = match conn {
        DbConnection::Pg(_) => "LOCK TABLE consent_ledger IN SHARE ROW EXCLUSIVE MODE",
        // Any write statement takes SQLite's single writer lock at once; this
        // one matches no row, so the append-only trigger never fires.
        DbConnection::Sqlite(_) => "UPDATE consent_ledger SET id = id WHERE 0",
    };
    diesel::sql_query(sql).execute(conn).map(|_| ())
}

/// Appends one decision and updates the derived state. Returns the row.
pub fn append(conn: &mut Conn, entry: Entry<'_>, now: NaiveDateTime) -> QueryResult<LedgerRow> {
    crate::db::transaction(conn, |conn| {
        lock(conn)?;
        let prev: Option<String> = consent_ledger::table
            .order(consent_ledger::id.desc())
            .select(consent_ledger::row_hash)
            .first(conn)
            .optional()?;
        let mut row = LedgerRow {
            id: 0,
            user_id: entry.user_id,
            partner_id: entry.partner_id,
            purpose: entry.purpose.to_string(),
            scope: entry.scope.to_string(),
            action: entry.action.as_str().to_string(),
            categories: entry.categories.to_string(),
            text_id: entry.text.map(|t| t.id),
            text_version: entry.text.map(|t| t.version),
            text_sha256: entry.text.map(|t| t.sha256.clone()),
            method: entry.evidence.method.to_string(),
            actor: entry.evidence.actor.to_string(),
            actor_user_id: entry.evidence.actor_user_id,
            actor_name: entry.evidence.actor_name.clone(),
            note: entry.evidence.note.clone(),
            ip: entry.evidence.ip.clone(),
            user_agent: entry.evidence.user_agent.clone(),
            created_at: now,
            prev_hash: prev.unwrap_or_else(|| GENESIS.to_string()),
            row_hash: String::new(),
            row_mac: None,
        };
        row.row_hash = row.compute_hash();
        row.row_mac = Some(super::seal::row_seal(&row.row_hash));
        row.id = diesel::insert_into(consent_ledger::table)
            .values((
                consent_ledger::user_id.eq(row.user_id),
                consent_ledger::partner_id.eq(row.partner_id),
                consent_ledger::purpose.eq(&row.purpose),
                consent_ledger::scope.eq(&row.scope),
                consent_ledger::action.eq(&row.action),
                consent_ledger::categories.eq(&row.categories),
                consent_ledger::text_id.eq(row.text_id),
                consent_ledger::text_version.eq(row.text_version),
                consent_ledger::text_sha256.eq(&row.text_sha256),
                consent_ledger::method.eq(&row.method),
                consent_ledger::actor.eq(&row.actor),
                consent_ledger::actor_user_id.eq(row.actor_user_id),
                consent_ledger::actor_name.eq(&row.actor_name),
                consent_ledger::note.eq(&row.note),
                consent_ledger::ip.eq(&row.ip),
                consent_ledger::user_agent.eq(&row.user_agent),
                consent_ledger::created_at.eq(row.created_at),
                consent_ledger::prev_hash.eq(&row.prev_hash),
                consent_ledger::row_hash.eq(&row.row_hash),
                consent_ledger::row_mac.eq(&row.row_mac),
            ))
            .returning(consent_ledger::id)
            .get_result(conn)?;
        apply(conn, &row)?;
        // What partners received and may no longer hold is told to them.
        let reason = match (row.action.as_str(), row.method.as_str()) {
            ("lift", _) => None,
            (_, "erasure") => Some(Reason::Erased),
            ("restrict", _) => Some(Reason::Restricted),
            ("grant", _) => Some(Reason::Replaced),
            _ => Some(Reason::Withdrawn),
        };
        if let Some(reason) = reason {
            super::departures::reconcile(conn, row.user_id, reason, false, now)?;
        }
        Ok(row)
    })
}

/// Brings the derived state in line with one new ledger row.
fn apply(conn: &mut Conn, row: &LedgerRow) -> QueryResult<()> {
    match row.action.as_str() {
        "restrict" => {
            diesel::delete(sharing_restrictions::table.find(row.user_id)).execute(conn)?;
            diesel::insert_into(sharing_restrictions::table)
                .values((
                    sharing_restrictions::user_id.eq(row.user_id),
                    sharing_restrictions::ledger_id.eq(row.id),
                    sharing_restrictions::since.eq(row.created_at),
                ))
                .execute(conn)?;
        }
        "lift" => {
            diesel::delete(sharing_restrictions::table.find(row.user_id)).execute(conn)?;
        }
        action => {
            let Some(partner_id) = row.partner_id else { return Ok(()) };
            let status = match action {
                "grant" => ConsentStatus::Granted,
                "decline" => ConsentStatus::Declined,
                _ => ConsentStatus::Withdrawn,
            }
            .as_str();
            let target = consents::table
                .filter(consents::user_id.eq(row.user_id))
                .filter(consents::partner_id.eq(partner_id))
                .filter(consents::purpose.eq(&row.purpose))
                .filter(consents::scope.eq(&row.scope));
            let updated = diesel::update(target)
                .set((
                    consents::status.eq(status),
                    consents::categories.eq(&row.categories),
                    consents::ledger_id.eq(row.id),
                    consents::updated_at.eq(row.created_at),
                ))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(consents::table)
                    .values((
                        consents::user_id.eq(row.user_id),
                        consents::partner_id.eq(partner_id),
                        consents::purpose.eq(&row.purpose),
                        consents::scope.eq(&row.scope),
                        consents::status.eq(status),
                        consents::categories.eq(&row.categories),
                        consents::ledger_id.eq(row.id),
                        consents::updated_at.eq(row.created_at),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Outcome of checking the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows: u64,
    /// The first row whose stored hashes or seal do not match, and why.
    pub first_broken: Option<(i64, String)>,
    /// Rows carrying a seal (the rest predate sealing).
    pub sealed: u64,
    /// Published heads checked, and the newest of them.
    pub anchors: u64,
    pub newest_anchor: Option<i64>,
    /// A published head the ledger no longer matches, and why.
    pub anchor_broken: Option<String>,
    /// Where the consent state the gate reads differs from the ledger.
    pub state_broken: Option<String>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.first_broken.is_none() && self.anchor_broken.is_none() && self.state_broken.is_none()
    }
}

/// Recomputes every row's hash in order, page by page, and checks each seal.
pub fn verify(conn: &mut Conn) -> QueryResult<Verification> {
    verify_against(conn, &[])
}

/// [`verify`], then checks that every published head in `anchors` is still
/// in the ledger as it was published, and replays the ledger against the
/// consent state the gate reads.
pub fn verify_against(conn: &mut Conn, anchors: &[super::seal::Anchor]) -> QueryResult<Verification> {
    use std::collections::HashMap;
    let mut v = Verification {
        rows: 0,
        first_broken: None,
        sealed: 0,
        anchors: anchors.len() as u64,
        newest_anchor: anchors.iter().map(|a| a.ledger_id).max(),
        anchor_broken: None,
        state_broken: None,
    };
    if let Some(a) = anchors.iter().find(|a| !a.is_sealed()) {
        v.anchor_broken = Some(format!(
            "the head published at {} (row {}) does not carry this site's seal: it was written or changed by someone \
             without the key",
            a.at, a.ledger_id
        ));
    }
    let mut published: HashMap<i64, &super::seal::Anchor> = anchors.iter().map(|a| (a.ledger_id, a)).collect();
    let mut expected_prev = GENESIS.to_string();
    let mut after = 0i64;
    let mut sealing = false;
    'pages: loop {
        let page: Vec<LedgerRow> = consent_ledger::table
            .filter(consent_ledger::id.gt(after))
            .order(consent_ledger::id.asc())
            .limit(1000)
            .select(LedgerRow::as_select())
            .load(conn)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for row in page {
            v.rows += 1;
            let broken = if row.prev_hash != expected_prev {
                Some("its link to the previous row is broken (a row before it was changed, removed or inserted)")
            } else if row.compute_hash() != row.row_hash {
                Some("its content does not match its hash (the row was changed)")
            } else {
                match &row.row_mac {
                    Some(seal) if super::seal::row_seal_matches(&row.row_hash, seal) => None,
                    Some(_) => Some(
                        "its seal does not match its hash (the chain was recomputed, or the row written, by someone \
                         without the key)",
                    ),
                    None if sealing => {
                        Some("it has no seal although rows before it do (it was added by someone without the key)")
                    }
                    None => None,
                }
            };
            if let Some(why) = broken {
                v.first_broken = Some((row.id, why.into()));
                break 'pages;
            }
            if row.row_mac.is_some() {
                sealing = true;
                v.sealed += 1;
            }
            if let Some(a) = published.remove(&row.id)
                && a.row_hash != row.row_hash
                && v.anchor_broken.is_none()
            {
                v.anchor_broken = Some(format!(
                    "row {} is not the row published at {} (the ledger was rewritten after it)",
                    row.id, a.at
                ));
            }
            expected_prev = row.row_hash;
        }
    }
    if v.first_broken.is_none()
        && v.anchor_broken.is_none()
        && let Some(a) = published.values().min_by_key(|a| a.ledger_id)
    {
        v.anchor_broken = Some(format!(
            "row {} was published at {} and is no longer in the ledger (the newest rows were deleted)",
            a.ledger_id, a.at
        ));
    }
    v.state_broken = replay(conn)?;
    Ok(v)
}

/// The ledger replayed against the state the gate reads: every `consents`
/// row must say what the newest ledger row for its learner, partner,
/// purpose and scope says; every live grant in the ledger must have its
/// row; and every learner whose newest restrict or lift is a restriction
/// must be restricted (unless erased). Answers the first difference.
fn replay(conn: &mut Conn) -> QueryResult<Option<String>> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        what: String,
    }
    const NEWER: &str = "SELECT 1 FROM consent_ledger n WHERE n.user_id = l.user_id AND n.partner_id = l.partner_id \
         AND n.purpose = l.purpose AND n.scope = l.scope AND n.id > l.id AND n.action IN ('grant', 'decline', 'withdraw')";
    const STATUS: &str =
        "CASE l.action WHEN 'grant' THEN 'granted' WHEN 'decline' THEN 'declined' WHEN 'withdraw' THEN 'withdrawn' END";
    let checks = [
        format!(
            "SELECT c.id AS id, 'consent' AS what FROM consents c LEFT JOIN consent_ledger l ON l.id = c.ledger_id \
             WHERE l.id IS NULL OR l.user_id <> c.user_id OR l.partner_id IS NULL OR l.partner_id <> c.partner_id \
             OR l.purpose <> c.purpose OR l.scope <> c.scope OR l.categories <> c.categories \
             OR {STATUS} IS NULL OR c.status <> {STATUS} OR EXISTS ({NEWER}) ORDER BY c.id LIMIT 1"
        ),
        format!(
            "SELECT l.id AS id, 'grant' AS what FROM consent_ledger l WHERE l.action = 'grant' \
             AND l.partner_id IS NOT NULL AND NOT EXISTS ({NEWER}) \
             AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.ledger_id = l.id) \
             AND EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id AND u.status <> 'erased') \
             AND EXISTS (SELECT 1 FROM partners p WHERE p.id = l.partner_id) ORDER BY l.id LIMIT 1"
        ),
        "SELECT l.id AS id, 'restrict' AS what FROM consent_ledger l WHERE l.action = 'restrict' \
         AND NOT EXISTS (SELECT 1 FROM consent_ledger n WHERE n.user_id = l.user_id AND n.id > l.id \
                         AND n.action IN ('restrict', 'lift')) \
         AND NOT EXISTS (SELECT 1 FROM sharing_restrictions r WHERE r.user_id = l.user_id) \
         AND EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id AND u.status <> 'erased') ORDER BY l.id LIMIT 1"
            .to_string(),
    ];
    for sql in checks {
        if let Some(f) = diesel::sql_query(sql).load::<Found>(conn)?.into_iter().next() {
            return Ok(Some(match f.what.as_str() {
                "consent" => format!(
                    "consent row {} does not say what the ledger's newest entry for it says (it was changed outside \
                     the ledger)",
                    f.id
                ),
                "grant" => {
                    format!("the grant in ledger row {} has no consent row (it was removed outside the ledger)", f.id)
                }
                _ => {
                    format!("the restriction in ledger row {} is not in force (it was lifted outside the ledger)", f.id)
                }
            }));
        }
    }
    Ok(None)
}

/// A learner's own ledger, newest first.
pub fn for_user(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<LedgerRow>> {
    consent_ledger::table
        .filter(consent_ledger::user_id.eq(user_id))
        .order(consent_ledger::id.desc())
        .select(LedgerRow::as_select())
        .load(conn)
}

pub fn is_restricted(conn: &mut Conn, user_id: i64) -> QueryResult<Option<NaiveDateTime>> {
    sharing_restrictions::table.find(user_id).select(sharing_restrictions::since).first(conn).optional()
}
