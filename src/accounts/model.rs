//! Diesel rows of the accounts area.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::users;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub company: Option<String>,
    /// None where it was never asked for (SHR-7 staff, operators) or erased.
    pub date_of_birth: Option<NaiveDate>,
    pub password_hash: String,
    pub status: String,
    pub email_verified_at: Option<NaiveDateTime>,
    pub terms_version: String,
    pub terms_accepted_at: NaiveDateTime,
    pub last_sign_in_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The states of an account (`users.status`), the one definition of the
/// text stored for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// A minor waiting for a parent's consent (ACC-9).
    PendingParent,
    /// Switched off by the organization that provisions it (SCIM).
    Deactivated,
    /// Retired by erasure (RGT-2): the row stays, with nothing personal in it.
    Erased,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 4] =
        [AccountStatus::Active, AccountStatus::PendingParent, AccountStatus::Deactivated, AccountStatus::Erased];

    /// The text stored in `users.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::PendingParent => "pending_parent",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Erased => "erased",
        }
    }

    pub fn parse(text: &str) -> Option<AccountStatus> {
        AccountStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<AccountStatus> for String {
    fn eq(&self, other: &AccountStatus) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<AccountStatus> for &str {
    fn eq(&self, other: &AccountStatus) -> bool {
        *self == other.as_str()
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub phone: Option<&'a str>,
    pub company: Option<&'a str>,
    pub date_of_birth: Option<NaiveDate>,
    pub password_hash: &'a str,
    pub status: &'a str,
    pub email_verified_at: Option<NaiveDateTime>,
    pub terms_version: &'a str,
    pub terms_accepted_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}
