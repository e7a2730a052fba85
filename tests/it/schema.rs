//! Both backends end up with the same tables and columns.

use diesel::prelude::*;
use diesel::sql_types::Text;
use lyceum::db::{Db, DbConnection};

#[derive(QueryableByName, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

fn columns(db: &Db) -> Vec<Column> {
    let mut conn = db.get().unwrap();
    let mut cols: Vec<Column> = match &mut *conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'",
        )
        .load(c)
        .unwrap(),
        DbConnection::Pg(c) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
        )
        .load(c)
        .unwrap(),
    };
    cols.sort();
    cols
}

#[test]
fn both_backends_have_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::connect(&format!("sqlite://{}", dir.path().join("s.db").display()), 1).unwrap();
    sqlite.migrate().unwrap();
    let sqlite_cols = columns(&sqlite);
    assert!(sqlite_cols.iter().any(|c| c.table_name == "users" && c.column_name == "password_hash"));
    let Some(pg) = crate::common::postgres::TestDatabase::create() else { return };
    let postgres = Db::connect(&pg.url, 1).unwrap();
    let pg_cols = columns(&postgres);
    drop(postgres);
    assert_eq!(sqlite_cols, pg_cols);
}

#[derive(QueryableByName)]
struct Used {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    used: i32,
}

/// Built with the query planner stability guarantee (`.cargo/config.toml`):
/// without it a statement with `LIMIT ?` is planned again on every run.
#[test]
fn sqlite_plans_a_statement_once_whatever_values_are_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("s.db").display()), 1).unwrap();
    let mut conn = db.get().unwrap();
    let DbConnection::Sqlite(c) = &mut *conn else { unreachable!("a SQLite URL") };
    let used: Used =
        diesel::sql_query("SELECT sqlite_compileoption_used('ENABLE_QPSG') AS used").get_result(c).unwrap();
    assert_eq!(used.used, 1, "libsqlite3-sys was built without SQLITE_ENABLE_QPSG");
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

fn backend_pid(db: &Db) -> i32 {
    let mut conn = db.get().unwrap();
    let DbConnection::Pg(c) = &mut *conn else { unreachable!("a PostgreSQL URL") };
    diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Pid>(c).unwrap().pid
}

/// The pool does not test each connection with a round trip when it hands it
/// out; a connection the server dropped is thrown away after the query that
/// found out, and the next one works.
#[test]
fn a_dropped_postgres_connection_is_replaced_after_the_query_that_finds_out() {
    let Some(pg) = crate::common::postgres::TestDatabase::create() else { return };
    let db = Db::connect(&pg.url, 1).unwrap();
    let pid = backend_pid(&db);
    let admin = Db::connect(&pg.url, 1).unwrap();
    {
        let mut conn = admin.get().unwrap();
        let DbConnection::Pg(c) = &mut *conn else { unreachable!() };
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})")).execute(c).unwrap();
        for _ in 0..100 {
            let gone: Used = diesel::sql_query(format!(
                "SELECT (count(*) = 0)::int AS used FROM pg_stat_activity WHERE pid = {pid}"
            ))
            .get_result(c)
            .unwrap();
            if gone.used == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    {
        let mut conn = db.get().unwrap();
        let DbConnection::Pg(c) = &mut *conn else { unreachable!() };
        assert!(diesel::sql_query("SELECT 1").execute(c).is_err(), "the terminated connection fails once");
    }
    let fresh = backend_pid(&db);
    assert_ne!(fresh, pid, "a new connection took its place");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Counts the rows, runs `between`, then writes a row saying what it saw.
fn count_then_insert(conn: &mut DbConnection, who: i64, between: impl FnOnce()) -> QueryResult<i64> {
    let seen: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM tally").get_result(conn)?;
    between();
    diesel::sql_query(format!("INSERT INTO tally (who, seen) VALUES ({who}, {})", seen.n)).execute(conn)?;
    Ok(seen.n)
}

/// Two SQLite transactions that each read and then write, overlapping: the
/// second to write waits for the first instead of failing. (A transaction
/// begun `DEFERRED` reads from a snapshot; once another connection commits,
/// it can no longer write, and SQLite says "database is locked" at once,
/// without waiting out the busy timeout.)
#[test]
fn overlapping_sqlite_transactions_that_read_then_write_both_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), 2).unwrap();
    diesel::sql_query("CREATE TABLE tally (who BIGINT NOT NULL, seen BIGINT NOT NULL)")
        .execute(&mut *db.get().unwrap())
        .unwrap();
    let (read_tx, read) = std::sync::mpsc::channel::<()>();
    let first = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut conn = db.get().unwrap();
            lyceum::db::transaction(&mut conn, |conn| {
                count_then_insert(conn, 1, || {
                    read_tx.send(()).unwrap();
                    // Long enough for the other transaction to start and, if
                    // it can, commit before this one writes.
                    std::thread::sleep(std::time::Duration::from_millis(300));
                })
            })
        })
    };
    read.recv().unwrap();
    let mut conn = db.get().unwrap();
    let second = lyceum::db::transaction(&mut conn, |conn| count_then_insert(conn, 2, || ()));
    let first = first.join().unwrap();
    assert!(first.is_ok(), "first: {first:?}");
    assert!(second.is_ok(), "second: {second:?}");
    // One went first and the other saw its row: the two did not interleave.
    let mut seen = [first.unwrap(), second.unwrap()];
    seen.sort();
    assert_eq!(seen, [0, 1]);
}
