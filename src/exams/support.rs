//! Support needs: optional, sealed at rest (SEC-2), read only by the support
//! team.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{support_needs, users};
use crate::kernel::vault;

use super::{ADJUSTMENTS_FIELD, EResult, ExamError, MAX_TEXT, NEEDS_FIELD};

/// A learner's support needs, opened.
pub struct SupportNeeds {
    pub needs: String,
    pub adjustments: String,
    pub updated_at: NaiveDateTime,
}

pub fn support_needs_of(conn: &mut Conn, user_id: i64) -> EResult<Option<SupportNeeds>> {
    let row: Option<(String, String, NaiveDateTime)> = support_needs::table
        .find(user_id)
        .select((support_needs::needs, support_needs::adjustments, support_needs::updated_at))
        .first(conn)
        .optional()?;
    let Some((needs, adjustments, updated_at)) = row else { return Ok(None) };
    Ok(Some(SupportNeeds {
        needs: vault::open(NEEDS_FIELD, &needs)?,
        adjustments: vault::open(ADJUSTMENTS_FIELD, &adjustments)?,
        updated_at,
    }))
}

pub fn save_support_needs(
    conn: &mut Conn,
    user_id: i64,
    needs: &str,
    adjustments: &str,
    now: NaiveDateTime,
) -> EResult<()> {
    let (needs, adjustments) = (needs.trim(), adjustments.trim());
    if needs.is_empty() && adjustments.is_empty() {
        return Err(ExamError::Invalid(
            "Describe your needs or the adjustments you need, or delete the record instead.".into(),
        ));
    }
    if needs.chars().count() > MAX_TEXT || adjustments.chars().count() > MAX_TEXT {
        return Err(ExamError::Invalid(format!("Each answer can be at most {MAX_TEXT} characters.")));
    }
    let sealed_needs = vault::seal(NEEDS_FIELD, needs)?;
    let sealed_adjustments = vault::seal(ADJUSTMENTS_FIELD, adjustments)?;
    crate::db::transaction(conn, |conn| {
        diesel::delete(support_needs::table.find(user_id)).execute(conn)?;
        diesel::insert_into(support_needs::table)
            .values((
                support_needs::user_id.eq(user_id),
                support_needs::needs.eq(sealed_needs),
                support_needs::adjustments.eq(sealed_adjustments),
                support_needs::updated_at.eq(now),
            ))
            .execute(conn)
    })?;
    Ok(())
}

pub fn delete_support_needs(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(support_needs::table.find(user_id)).execute(conn)
}

/// A page of who has recorded support needs (for the support team's list):
/// user id, username, updated; `limit` rows from `offset`.
pub fn with_support_needs(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<(i64, String, NaiveDateTime)>> {
    support_needs::table
        .inner_join(users::table.on(users::id.eq(support_needs::user_id)))
        .order((users::username.asc(), users::id.asc()))
        .offset(offset)
        .limit(limit)
        .select((users::id, users::username, support_needs::updated_at))
        .load(conn)
}
