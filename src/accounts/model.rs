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

/// Account states. `pending_parent`: a minor waiting for a parent's consent.
pub mod status {
    pub const ACTIVE: &str = "active";
    pub const PENDING_PARENT: &str = "pending_parent";
    /// Switched off by the organization that provisioned it (SHR-7).
    pub const DEACTIVATED: &str = "deactivated";
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
