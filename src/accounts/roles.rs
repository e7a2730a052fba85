//! Roles are grants (role + scope) rather than a column on the user, so later
//! areas add member staff, partner admins and moderators without touching the
//! checks that exist. The scope names what the role applies to (`member:12`),
//! empty for site-wide roles.

use diesel::prelude::*;

use crate::db::{Conn, schema::role_grants};

pub use crate::kernel::Role;

pub fn grant(conn: &mut Conn, user_id: i64, role: Role, scope: &str, by: Option<i64>) -> QueryResult<()> {
    let exists: i64 = role_grants::table
        .filter(role_grants::user_id.eq(user_id))
        .filter(role_grants::role.eq(role.as_str()))
        .filter(role_grants::scope.eq(scope))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(role_grants::table)
            .values((
                role_grants::user_id.eq(user_id),
                role_grants::role.eq(role.as_str()),
                role_grants::scope.eq(scope),
                role_grants::granted_by.eq(by),
                role_grants::granted_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Role grants as read from `role_grants` (role, scope), the unknown ones left out.
pub fn from_grants(rows: impl IntoIterator<Item = (String, String)>) -> Vec<(Role, String)> {
    rows.into_iter().filter_map(|(r, s)| Role::parse(&r).map(|r| (r, s))).collect()
}

/// Takes a role back; false when the person did not hold it.
pub fn revoke(conn: &mut Conn, user_id: i64, role: Role, scope: &str) -> QueryResult<bool> {
    let n = diesel::delete(
        role_grants::table
            .filter(role_grants::user_id.eq(user_id))
            .filter(role_grants::role.eq(role.as_str()))
            .filter(role_grants::scope.eq(scope)),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// Who holds a role in a scope: (user id, username), by username.
pub fn holders(conn: &mut Conn, role: Role, scope: &str) -> QueryResult<Vec<(i64, String)>> {
    use crate::db::schema::users;
    role_grants::table
        .inner_join(users::table)
        .filter(role_grants::role.eq(role.as_str()))
        .filter(role_grants::scope.eq(scope))
        .order(users::username.asc())
        .select((users::id, users::username))
        .load(conn)
}
