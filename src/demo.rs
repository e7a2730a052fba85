//! Demo mode: on first start with an empty database, a staff admin and a
//! learner with known passwords, shown on the home page so a new user can look
//! around at once. Never runs when `demo` is off.

use diesel::prelude::*;

use crate::accounts::domain::{Email, PersonName, Username};
use crate::accounts::roles::{self, Role};
use crate::accounts::{passwords, service};
use crate::db::{Conn, schema::users};
use crate::web::page::DemoAccount;

pub fn accounts() -> Vec<DemoAccount> {
    vec![
        DemoAccount {
            role: "Staff".into(),
            email: "staff@demo.lyceum.local".into(),
            password: "lyceum-staff-demo".into(),
        },
        DemoAccount {
            role: "Learner".into(),
            email: "learner@demo.lyceum.local".into(),
            password: "lyceum-learner-demo".into(),
        },
    ]
}

/// Seeds the demo accounts when there are no users; returns whether it did.
pub fn seed_if_empty(conn: &mut Conn) -> Result<bool, String> {
    let count: i64 = users::table.count().get_result(conn).map_err(|e| e.to_string())?;
    if count > 0 {
        return Ok(false);
    }
    let people = [("staff", "Grace", "Hopper", true), ("learner", "Ada", "Lovelace", false)];
    for (account, (username, first, last, staff)) in accounts().iter().zip(people) {
        let hash = passwords::hash_blocking(&account.password)?;
        let id = service::insert_operator_account(
            conn,
            &Username::parse(username)?,
            &Email::parse(&account.email)?,
            &PersonName::parse(first, "first name")?,
            &PersonName::parse(last, "last name")?,
            &hash,
        )
        .map_err(|e| e.to_string())?;
        if staff {
            roles::grant(conn, id, Role::Staff, "", None).map_err(|e| e.to_string())?;
        }
    }
    Ok(true)
}
