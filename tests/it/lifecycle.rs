//! Areas own their tables: every column that holds a user's id is declared
//! by the lifecycle hooks of the area that owns it (`privacy::AREAS`), with
//! what erasure does to it, so a table added without a hook fails here
//! instead of keeping an erased learner's data unnoticed.
//!
//! A column holds a user's id when it has a foreign key to `users`, or, for
//! the tables that keep ids without one (the ledger, the audit log), when it
//! has no foreign key and is named like one: `user_id`, `…_user_id`, `author_id`, `actor_id`,
//! `reporter_id`, `subject_id`, `editor_id`, `staff_id`, or `…_by`. The
//! schema is read from a freshly migrated SQLite database; the schema test
//! checks PostgreSQL has the same tables and columns.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use lyceum::db::{Db, DbConnection};
use lyceum::lifecycle::{AreaHooks, Fate};
use lyceum::privacy::AREAS;

/// User-keyed columns no listed area declares, and why.
const EXEMPT: &[(&str, &str, &str)] = &[
    (
        "org_staff",
        "user_id",
        "an organization's directory entry for its staff member; orgs start the erasure themselves and cannot be \
         listed by privacy without closing a dependency circle (orgs use privacy), so erasure leaves it as before",
    ),
    ("org_assignments", "assigned_by", "the organization's administrator who assigned a course, for the record"),
    ("org_invitations", "invited_by", "the organization's administrator who invited, for the record"),
    ("org_invitations", "accepted_by", "the account that accepted an invitation, for the record"),
];

#[derive(QueryableByName)]
struct Col {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    references: Option<String>,
}

fn named_like_a_user(column: &str) -> bool {
    column == "user_id"
        || column.ends_with("_user_id")
        || column.ends_with("_by")
        || ["author_id", "actor_id", "reporter_id", "subject_id", "editor_id", "staff_id"].contains(&column)
}

fn migrated() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("s.db").display()), 1).unwrap();
    db.migrate().unwrap();
    (dir, db)
}

/// Every (table, column) of the database, with the table its foreign key points at.
fn columns(db: &Db) -> Vec<Col> {
    let mut conn = db.get().unwrap();
    let DbConnection::Sqlite(c) = &mut *conn else { unreachable!("a SQLite database") };
    diesel::sql_query(
        "SELECT m.name AS table_name, p.name AS column_name, \
         (SELECT f.\"table\" FROM pragma_foreign_key_list(m.name) f WHERE f.\"from\" = p.name) AS \"references\" \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'",
    )
    .load(c)
    .unwrap()
}

fn user_keyed(columns: &[Col]) -> BTreeSet<(String, String)> {
    columns
        .iter()
        .filter(|c| match c.references.as_deref() {
            Some(table) => table == "users",
            None => named_like_a_user(&c.column_name),
        })
        .map(|c| (c.table_name.clone(), c.column_name.clone()))
        .collect()
}

/// The user-keyed columns that no hook declares and no exemption names.
fn uncovered(columns: &[Col], areas: &[AreaHooks]) -> Vec<(String, String)> {
    let declared: BTreeSet<(&str, &str)> = areas
        .iter()
        .flat_map(|a| a.covers)
        .map(|c| (c.table, c.column))
        .chain(EXEMPT.iter().map(|(t, c, _)| (*t, *c)))
        .collect();
    user_keyed(columns).into_iter().filter(|(t, c)| !declared.contains(&(t.as_str(), c.as_str()))).collect()
}

#[test]
fn every_user_keyed_column_is_covered_by_an_areas_hook() {
    let (_dir, db) = migrated();
    let columns = columns(&db);
    let keyed = user_keyed(&columns);
    assert!(keyed.contains(&("enrollments".into(), "user_id".into())), "{keyed:?}");
    assert!(keyed.contains(&("audit_log".into(), "actor_id".into())), "named like a user without a foreign key");
    let missing = uncovered(&columns, AREAS);
    assert!(
        missing.is_empty(),
        "user-keyed columns no area's lifecycle hook declares (add them to the owning area's `covers` in its \
         lifecycle.rs, with what erasure does to them): {missing:?}"
    );

    // Nothing is declared that is not there, or declared twice, or exempt as well.
    let all: BTreeSet<(&str, &str)> = columns.iter().map(|c| (c.table_name.as_str(), c.column_name.as_str())).collect();
    let mut seen = BTreeSet::new();
    for area in AREAS {
        for c in area.covers {
            assert!(
                all.contains(&(c.table, c.column)),
                "{} declares {}.{}, which does not exist",
                area.name,
                c.table,
                c.column
            );
            assert!(seen.insert((c.table, c.column)), "{}.{} is declared twice", c.table, c.column);
            assert!(
                keyed.contains(&(c.table.to_string(), c.column.to_string())),
                "{}.{} holds no user id",
                c.table,
                c.column
            );
            if let Fate::Kept(why) = c.fate {
                assert!(!why.trim().is_empty(), "{}.{} is kept without a reason", c.table, c.column);
            }
        }
    }
    for (t, c, why) in EXEMPT {
        assert!(all.contains(&(*t, *c)) && !seen.contains(&(*t, *c)), "exemption {t}.{c} is stale");
        assert!(!why.trim().is_empty());
    }

    // Each table is declared by one area, its owner; an exported table exists.
    let mut owner = std::collections::BTreeMap::new();
    for area in AREAS {
        for table in area.covers.iter().map(|c| c.table) {
            let first = *owner.entry(table).or_insert(area.name);
            assert_eq!(first, area.name, "{table} is declared by {first} and {}", area.name);
        }
        for s in area.export_user {
            assert!(all.iter().any(|(t, _)| *t == s.table), "{} exports {}, which does not exist", area.name, s.table);
        }
    }
}

/// The check is not empty: a new table that keeps a user's id, by a foreign
/// key or by name, and that no area declares, is reported.
#[test]
fn a_new_user_keyed_table_without_a_hook_is_reported() {
    let (_dir, db) = migrated();
    {
        let mut conn = db.get().unwrap();
        let DbConnection::Sqlite(c) = &mut *conn else { unreachable!() };
        diesel::sql_query("CREATE TABLE badges (id INTEGER PRIMARY KEY, holder BIGINT NOT NULL REFERENCES users(id))")
            .execute(c)
            .unwrap();
        diesel::sql_query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, written_by BIGINT)")
            .execute(c)
            .unwrap();
    }
    let missing = uncovered(&columns(&db), AREAS);
    assert_eq!(
        missing,
        vec![("badges".to_string(), "holder".to_string()), ("notes".to_string(), "written_by".to_string())]
    );
}
