//! Single-use, expiring tokens sent by email: email verification, password
//! reset, email change and parental consent. Only a SHA-256 of each token is
//! stored, so a database copy cannot be used to take over an account.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::{Conn, schema::account_tokens};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    ParentConsent,
    /// Proving by email that a provider may be linked to the account (ACC-4).
    LinkProvider,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
            Purpose::ParentConsent => "parent_consent",
            Purpose::LinkProvider => "link_provider",
        }
    }

    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail => Duration::hours(48),
            Purpose::ResetPassword => Duration::hours(1),
            Purpose::ChangeEmail => Duration::hours(24),
            Purpose::ParentConsent => Duration::days(7),
            Purpose::LinkProvider => Duration::hours(1),
        }
    }
}

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a token; earlier unused tokens of the same purpose stop working.
pub fn issue(
    conn: &mut Conn,
    user_id: i64,
    purpose: Purpose,
    new_email: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let token = crate::kernel::tokens::random_token(32);
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(purpose.as_str()))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::expires_at.eq(now))
    .execute(conn)?;
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::user_id.eq(user_id),
            account_tokens::purpose.eq(purpose.as_str()),
            account_tokens::token_hash.eq(digest(&token)),
            account_tokens::new_email.eq(new_email),
            account_tokens::created_at.eq(now),
            account_tokens::expires_at.eq(now + purpose.lifetime()),
        ))
        .execute(conn)?;
    Ok(token)
}

/// A live token's owner and carried email, without using it up.
pub fn peek(
    conn: &mut Conn,
    token: &str,
    purpose: Purpose,
    now: NaiveDateTime,
) -> QueryResult<Option<(i64, Option<String>)>> {
    account_tokens::table
        .filter(account_tokens::token_hash.eq(digest(token)))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .filter(account_tokens::used_at.is_null())
        .filter(account_tokens::expires_at.gt(now))
        .select((account_tokens::user_id, account_tokens::new_email))
        .first(conn)
        .optional()
}

/// Uses a token up; `None` when it is unknown, used, expired or of another
/// purpose. The conditional update makes two concurrent uses impossible.
pub fn consume(
    conn: &mut Conn,
    token: &str,
    purpose: Purpose,
    now: NaiveDateTime,
) -> QueryResult<Option<(i64, Option<String>)>> {
    let Some(found) = peek(conn, token, purpose, now)? else { return Ok(None) };
    let updated = diesel::update(
        account_tokens::table
            .filter(account_tokens::token_hash.eq(digest(token)))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(now))
    .execute(conn)?;
    Ok((updated == 1).then_some(found))
}
