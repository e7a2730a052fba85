//! Identity checks (CRT-2): a photo ID and a face photo, each re-encoded
//! through the image upload path (no metadata survives), sealed with
//! AES-256-GCM before it reaches the blob store, reviewed by staff, and
//! deleted from the store the moment a decision is made.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use super::{CResult, CertError};
use crate::db::Conn;
use crate::db::schema::{blob_files, identity_checks, users};
use crate::kernel::vault;
use crate::storage::BlobStore;

pub mod status {
    pub const PENDING: &str = "pending";
    pub const APPROVED: &str = "approved";
    pub const DENIED: &str = "denied";
    /// Staff asked the learner to submit new photos.
    pub const RETRY: &str = "retry";
}

/// The sealed fields' names (associated data: an ID image cannot pass for a face).
pub const ID_PHOTO: &str = "identity.id_photo";
pub const FACE_PHOTO: &str = "identity.face_photo";

/// Longest side kept of an identity image: enough to read a document.
pub const MAX_SIDE: u32 = 1600;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = identity_checks)]
pub struct Check {
    pub id: i64,
    pub user_id: i64,
    pub status: String,
    pub id_photo_blob: Option<String>,
    pub face_photo_blob: Option<String>,
    pub submitted_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    pub decided_by: Option<i64>,
    pub reason: Option<String>,
    pub valid_until: Option<NaiveDateTime>,
}

/// The learner's latest check.
pub fn latest(conn: &mut Conn, user_id: i64) -> QueryResult<Option<Check>> {
    identity_checks::table
        .filter(identity_checks::user_id.eq(user_id))
        .order(identity_checks::id.desc())
        .select(Check::as_select())
        .first(conn)
        .optional()
}

impl Check {
    /// An approval still in force at `now`.
    pub fn verifies(&self, now: NaiveDateTime) -> bool {
        self.status == status::APPROVED && self.valid_until.is_some_and(|t| t > now)
    }
}

/// Why new photos are not taken now, given the learner's latest check, or
/// `None` when they are: the verification page offers the form on this rule
/// and [`submit`] enforces it.
pub fn submission_refused(latest: Option<&Check>, now: NaiveDateTime) -> Option<&'static str> {
    let c = latest?;
    if c.status == status::PENDING {
        Some("Your photos are already with our reviewers; we will email you.")
    } else if c.verifies(now) {
        Some("Your identity is already verified.")
    } else {
        None
    }
}

pub fn get(conn: &mut Conn, id: i64) -> QueryResult<Option<Check>> {
    identity_checks::table.find(id).select(Check::as_select()).first(conn).optional()
}

/// Re-encodes both images (refusing what is not an image), seals them and
/// stores them; records a pending check. Refused while one is pending or a
/// valid approval exists.
pub fn submit(
    conn: &mut Conn,
    blobs: &dyn BlobStore,
    user_id: i64,
    id_photo: &[u8],
    face_photo: &[u8],
    now: NaiveDateTime,
) -> CResult<i64> {
    if let Some(refused) = submission_refused(latest(conn, user_id)?.as_ref(), now) {
        return Err(CertError::Invalid(refused.into()));
    }
    let id_image =
        crate::media::reencode(id_photo, MAX_SIDE).map_err(|e| CertError::Invalid(format!("Photo of your ID: {e}")))?;
    let face_image = crate::media::reencode(face_photo, MAX_SIDE)
        .map_err(|e| CertError::Invalid(format!("Photo of your face: {e}")))?;
    let vault = vault::installed().map_err(|e| CertError::Storage(e.to_string()))?;
    let id_sealed = vault.seal_bytes(ID_PHOTO, &id_image.bytes);
    let face_sealed = vault.seal_bytes(FACE_PHOTO, &face_image.bytes);
    let id_key = crate::storage::store(conn, blobs, &id_sealed, "application/octet-stream")?;
    let face_key = crate::storage::store(conn, blobs, &face_sealed, "application/octet-stream")?;
    Ok(diesel::insert_into(identity_checks::table)
        .values((
            identity_checks::user_id.eq(user_id),
            identity_checks::status.eq(status::PENDING),
            identity_checks::id_photo_blob.eq(&id_key),
            identity_checks::face_photo_blob.eq(&face_key),
            identity_checks::submitted_at.eq(now),
        ))
        .returning(identity_checks::id)
        .get_result(conn)?)
}

/// One of the images of a pending check, opened for a reviewer.
pub fn image(conn: &mut Conn, blobs: &dyn BlobStore, id: i64, which: &str) -> CResult<Vec<u8>> {
    let check = get(conn, id)?.ok_or(CertError::NotFound)?;
    let (key, field) = match which {
        "id" => (check.id_photo_blob, ID_PHOTO),
        "face" => (check.face_photo_blob, FACE_PHOTO),
        _ => return Err(CertError::NotFound),
    };
    let key = key.ok_or(CertError::NotFound)?;
    let sealed = blobs.get(&key)?.ok_or(CertError::NotFound)?;
    let vault = vault::installed().map_err(|e| CertError::Storage(e.to_string()))?;
    vault.open_bytes(field, &sealed).map_err(|e| CertError::Storage(e.to_string()))
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    Retry,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "deny" => Some(Decision::Deny),
            "retry" => Some(Decision::Retry),
            _ => None,
        }
    }
}

/// Re-seals the photos still waiting for a decision under the vault's current
/// key (SEC-2 key rotation); returns how many changed. A photo already under
/// the current key is left alone.
pub fn rewrap_images(conn: &mut Conn, blobs: &dyn BlobStore, vault: &crate::kernel::vault::Vault) -> CResult<usize> {
    let waiting: Vec<(i64, Option<String>, Option<String>)> = identity_checks::table
        .filter(identity_checks::id_photo_blob.is_not_null().or(identity_checks::face_photo_blob.is_not_null()))
        .select((identity_checks::id, identity_checks::id_photo_blob, identity_checks::face_photo_blob))
        .load(conn)?;
    let current = format!("env1:{}:", vault.current_key());
    let mut changed = 0;
    for (id, id_photo, face_photo) in waiting {
        for (key, field, id_column) in [(id_photo, ID_PHOTO, true), (face_photo, FACE_PHOTO, false)] {
            let Some(key) = key else { continue };
            let Some(stored) = blobs.get(&key)? else { continue };
            if stored.starts_with(current.as_bytes()) {
                continue;
            }
            let plain = vault.open_bytes(field, &stored).map_err(|e| CertError::Storage(format!("check {id}: {e}")))?;
            let new_key =
                crate::storage::store(conn, blobs, &vault.seal_bytes(field, &plain), "application/octet-stream")
                    .map_err(|e| CertError::Storage(e.to_string()))?;
            let target = identity_checks::table.find(id);
            if id_column {
                diesel::update(target).set(identity_checks::id_photo_blob.eq(&new_key)).execute(conn)?;
            } else {
                diesel::update(target).set(identity_checks::face_photo_blob.eq(&new_key)).execute(conn)?;
            }
            blobs.delete(&key)?;
            diesel::delete(blob_files::table.find(&key)).execute(conn)?;
            changed += 1;
        }
    }
    Ok(changed)
}

fn delete_images(conn: &mut Conn, blobs: &dyn BlobStore, check: &Check) -> CResult<()> {
    for key in [&check.id_photo_blob, &check.face_photo_blob].into_iter().flatten() {
        blobs.delete(key)?;
        diesel::delete(blob_files::table.find(key)).execute(conn)?;
    }
    diesel::update(identity_checks::table.find(check.id))
        .set((identity_checks::id_photo_blob.eq(None::<String>), identity_checks::face_photo_blob.eq(None::<String>)))
        .execute(conn)?;
    Ok(())
}

/// Records the decision, deletes both images from the store at once, emails
/// the learner, and on approval issues any certificate now earned.
/// Who decided what, and why (the learner reads the reason).
pub struct Verdict<'a> {
    pub by: i64,
    pub decision: Decision,
    pub reason: &'a str,
}

pub fn decide(
    conn: &mut Conn,
    blobs: &dyn BlobStore,
    id: i64,
    verdict: &Verdict<'_>,
    valid_days: i64,
    now: NaiveDateTime,
) -> CResult<()> {
    let Verdict { by, decision, reason } = *verdict;
    let reason = reason.trim();
    if decision != Decision::Approve && reason.is_empty() {
        return Err(CertError::Invalid("Tell the learner why: a reason is required to deny or ask again.".into()));
    }
    if reason.chars().count() > 1000 {
        return Err(CertError::Invalid("A reason can be at most 1,000 characters.".into()));
    }
    let check = get(conn, id)?.ok_or(CertError::NotFound)?;
    if check.status != status::PENDING {
        return Err(CertError::Invalid("This check was already decided.".into()));
    }
    // Images first: if the store fails, the check stays pending and nothing is lost.
    delete_images(conn, blobs, &check)?;
    let (state, valid_until) = match decision {
        Decision::Approve => (status::APPROVED, Some(now + Duration::days(valid_days.max(1)))),
        Decision::Deny => (status::DENIED, None),
        Decision::Retry => (status::RETRY, None),
    };
    crate::db::transaction(conn, |conn| {
        diesel::update(identity_checks::table.find(id))
            .set((
                identity_checks::status.eq(state),
                identity_checks::decided_at.eq(now),
                identity_checks::decided_by.eq(by),
                identity_checks::reason.eq((!reason.is_empty()).then_some(reason)),
                identity_checks::valid_until.eq(valid_until),
            ))
            .execute(conn)?;
        let (email, first): (String, String) =
            users::table.find(check.user_id).select((users::email, users::first_name)).first(conn)?;
        crate::notify::enqueue_email(
            conn,
            &email,
            match decision {
                Decision::Approve => "Your identity is verified",
                Decision::Deny => "We could not verify your identity",
                Decision::Retry => "Please send new photos to verify your identity",
            },
            "identity_decided",
            json!({
                "first_name": first, "approved": decision == Decision::Approve, "retry": decision == Decision::Retry,
                "reason": reason, "valid_until": valid_until.map(|t| crate::web::format::day(t.date())),
            }),
        )?;
        if decision == Decision::Approve {
            super::issue_all_earned(conn, check.user_id, now)?;
        }
        Ok::<_, CertError>(())
    })
}

/// Pending checks, oldest first, for the review queue.
pub fn queue(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<(Check, String, String)>> {
    identity_checks::table
        .inner_join(users::table)
        .filter(identity_checks::status.eq(status::PENDING))
        .order((identity_checks::submitted_at.asc(), identity_checks::id.asc()))
        .offset(offset)
        .limit(limit)
        .select((Check::as_select(), users::username, users::first_name.concat(" ").concat(users::last_name)))
        .load(conn)
}

/// At erasure: every image and check of the learner.
pub fn forget(conn: &mut Conn, blobs: &dyn BlobStore, user_id: i64) -> CResult<usize> {
    let checks: Vec<Check> =
        identity_checks::table.filter(identity_checks::user_id.eq(user_id)).select(Check::as_select()).load(conn)?;
    for c in &checks {
        delete_images(conn, blobs, c)?;
    }
    Ok(diesel::delete(identity_checks::table.filter(identity_checks::user_id.eq(user_id))).execute(conn)?)
}
