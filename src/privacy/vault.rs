//! Sealed fields' rotation (SEC-2): `lyceum keys rotate` re-seals every
//! sealed column under the current master key. The envelope itself lives in
//! `kernel::vault`, below every area that seals a field.

pub use crate::kernel::vault::*;

/// Re-seals the values of one sealed column under the current key.
macro_rules! rewrap_column {
    ($conn:expr, $vault:expr, $table:ident, $key:ident, $column:ident, $field:expr) => {{
        use crate::db::schema::$table;
        let rows: Vec<(i64, String)> = $table::table
            // Read as nullable (idempotent for nullable columns): one shape for every column.
            .select(($table::$key, $table::$column.nullable()))
            .load::<(i64, Option<String>)>($conn)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|(id, v)| v.map(|v| (id, v)))
            .collect();
        let mut changed = 0;
        for (id, stored) in rows {
            let new = $vault
                .rewrap($field, &stored)
                .map_err(|e| format!("{}.{} of {id}: {e}", stringify!($table), stringify!($column)))?;
            if let Some(new) = new {
                diesel::update($table::table.filter($table::$key.eq(id)))
                    .set($table::$column.eq(new))
                    .execute($conn)
                    .map_err(|e| e.to_string())?;
                changed += 1;
            }
        }
        changed
    }};
}

/// Re-seals every sealed column under the current key (SEC-2); returns how
/// many values changed. Identity photos waiting for a decision live in the
/// blob store and are re-sealed by `certificates::identity::rewrap_images`.
pub fn rotate(conn: &mut crate::db::Conn, vault: &Vault) -> Result<usize, String> {
    use diesel::prelude::*;
    let mut changed = 0;
    changed += rewrap_column!(conn, vault, users, id, phone, PHONE);
    changed += rewrap_column!(conn, vault, oidc_links, id, access_token, crate::accounts::oidc::ACCESS_TOKEN_FIELD);
    changed += rewrap_column!(conn, vault, oidc_links, id, refresh_token, crate::accounts::oidc::REFRESH_TOKEN_FIELD);
    changed += rewrap_column!(conn, vault, totp_credentials, user_id, secret, crate::accounts::twofactor::TOTP_FIELD);
    changed += rewrap_column!(conn, vault, sms_numbers, user_id, phone, crate::accounts::sms::PHONE_FIELD);
    changed += rewrap_column!(conn, vault, sms_outbox, id, phone, crate::accounts::sms::OUTBOX_FIELD);
    changed += rewrap_column!(conn, vault, support_needs, user_id, needs, crate::exams::NEEDS_FIELD);
    changed += rewrap_column!(conn, vault, support_needs, user_id, adjustments, crate::exams::ADJUSTMENTS_FIELD);
    changed += rewrap_column!(conn, vault, partner_destinations, id, secret, crate::consent::push::SECRET_FIELD);
    changed += rewrap_column!(conn, vault, survey_pending, run_id, answers, crate::privacy::surveys::PENDING_FIELD);
    Ok(changed)
}
