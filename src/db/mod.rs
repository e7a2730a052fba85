//! The data layer: one Diesel codebase over SQLite and PostgreSQL, chosen at run
//! time from the database URL. Owns the pool, the migrations and the single
//! async boundary (`Db::run`). Knows nothing of HTTP or of any domain area.

pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Conn = DbConnection;

/// Runs a query on the backend's own connection: `on_backend!(conn, |c| q.load(c))`.
/// The body is written once and compiled for each backend. Through the
/// `MultiConnection`, Diesel builds a query's SQL text on every call to find
/// its prepared statement; a backend's own connection finds it by the query's
/// type, so a query on a hot page skips that work.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("database task failed: {0}")]
    Join(String),
}

/// Every SQLite connection: WAL for concurrent readers, a busy timeout instead of
/// immediate "database is locked", enforced foreign keys, and `secure_delete`,
/// so that deleted and overwritten rows are zeroed rather than left readable
/// in the file's free space (an erased learner must not be recoverable from a
/// copy of the file).
#[derive(Debug)]
struct ConnectionSetup {
    busy_timeout_ms: u32,
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            // journal_mode is set once in `Db::connect` (it is a property of the file).
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                 PRAGMA secure_delete = ON;",
                self.busy_timeout_ms
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Cloneable handle to the pool; the only way handlers reach the database.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<DbConnection>>,
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `sqlite://data/x.db`, `sqlite:///abs/x.db`, `sqlite:x.db` or a bare path → the
/// file path Diesel expects; PostgreSQL URLs pass through.
fn connection_target(url: &str) -> (Backend, String) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return (Backend::Postgres, url.to_string());
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    (Backend::Sqlite, path.to_string())
}

/// Process-wide SQLite settings, applied before the first connection opens
/// (SQLite refuses them afterwards, harmlessly). Memory statistics take a
/// global mutex on every allocation, which serialises all pooled connections;
/// multi-thread mode drops per-connection mutexes, safe because the pool
/// hands each connection to one thread at a time.
// SQLite's process-wide configuration is only reachable through its C API.
#[allow(unsafe_code)]
fn configure_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called with documented option codes and int
        // arguments, once, before this code opens any connection; if another
        // component already initialised SQLite it returns SQLITE_MISUSE and
        // changes nothing.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD);
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
        }
    });
}

/// How long a SQLite statement waits for the write lock unless configured.
pub const DEFAULT_BUSY_TIMEOUT_MS: u32 = 10_000;

impl Db {
    pub fn connect(url: &str, pool_size: u32) -> Result<Db, DbError> {
        Self::connect_with_busy_timeout(url, pool_size, DEFAULT_BUSY_TIMEOUT_MS)
    }

    /// [`Db::connect`] with SQLite's busy timeout (the wait for another
    /// connection's write lock) set to `busy_timeout_ms`.
    pub fn connect_with_busy_timeout(url: &str, pool_size: u32, busy_timeout_ms: u32) -> Result<Db, DbError> {
        let (backend, target) = connection_target(url);
        if backend == Backend::Sqlite {
            configure_sqlite_once();
        }
        if backend == Backend::Sqlite
            && let Some(parent) = std::path::Path::new(&target).parent()
            && !parent.as_os_str().is_empty()
        {
            crate::private_files::create_dir_all(parent).map_err(|e| DbError::Migration(e.to_string()))?;
        }
        if backend == Backend::Sqlite && target != ":memory:" && !target.starts_with("file:") {
            crate::private_files::touch(std::path::Path::new(&target))
                .map_err(|e| DbError::Migration(format!("cannot create the database file: {e}")))?;
        }
        if backend == Backend::Sqlite {
            use diesel::Connection;
            let mut first = SqliteConnection::establish(&target)
                .map_err(|e| DbError::Migration(format!("cannot open the database: {e}")))?;
            first.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;").map_err(DbError::Query)?;
        }
        let manager = ConnectionManager::<DbConnection>::new(target);
        // No `SELECT 1` round trip each time a connection leaves the pool (it
        // was a fifth of the PostgreSQL statements of a page): a connection
        // the server dropped fails its next query, Diesel then finds it
        // broken (libpq no longer knows its transaction state) and the pool
        // replaces it. `tests/it/schema.rs` shows it.
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .test_on_check_out(false)
            .connection_customizer(Box::new(ConnectionSetup { busy_timeout_ms }))
            .build(manager)
            .map_err(|e| DbError::Migration(format!("cannot open the database: {e}")))?;
        Ok(Db { pool, backend })
    }

    /// The pool's open connections and how many of them are idle.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn get(&self) -> Result<PooledConnection<ConnectionManager<DbConnection>>, DbError> {
        Ok(self.pool.get()?)
    }

    /// Applies the embedded migrations of this backend that are not yet applied.
    pub fn migrate(&self) -> Result<usize, DbError> {
        let mut conn = self.get()?;
        migrate_connection(&mut conn)
    }

    /// Runs synchronous Diesel work on the blocking pool, never on the executor.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Join(e.to_string())))?
    }
}

pub fn migrate_connection(conn: &mut DbConnection) -> Result<usize, DbError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
    };
    let applied = applied.map_err(|e| DbError::Migration(e.to_string()))?;
    // Data a migration set aside for code to move (disclosure rows of
    // before manifests need the site secret, which SQL has not): the areas
    // that own it register the step; `db` knows no area.
    if let Some(after) = AFTER_MIGRATIONS.get() {
        after(conn).map_err(DbError::Migration)?;
    }
    Ok(applied)
}

/// A step run after every migration, registered once at start by the crate
/// root (which knows the areas).
pub type AfterMigrations = fn(&mut DbConnection) -> Result<(), String>;
static AFTER_MIGRATIONS: std::sync::OnceLock<AfterMigrations> = std::sync::OnceLock::new();

/// Registers the step run after migrations; the first registration holds.
pub fn after_migrations(step: AfterMigrations) {
    let _ = AFTER_MIGRATIONS.set(step);
}

/// How many of this backend's embedded migrations are not applied yet (an
/// instance running newer code than its database, or the reverse, says so
/// in `/readyz`).
pub fn pending_migrations(conn: &mut DbConnection) -> Result<usize, DbError> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConnection::Pg(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
    };
    pending.map_err(|e| DbError::Migration(e.to_string()))
}

diesel::define_sql_function!(
    /// SQL `lower(text)`, for case-insensitive matches of usernames and addresses.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text
);

/// Runs `f` in a read-only snapshot when that takes no lock anyone waits
/// for: on SQLite, as the outermost transaction, a `DEFERRED` one that reads
/// one consistent snapshot of the WAL and never takes the writer's lock, so
/// learners' writes go on while it reads; `None` when the connection is
/// already inside a transaction or is PostgreSQL, whose readers never block
/// writers (the caller then does its work in one transaction as before).
pub fn read_snapshot<T, F>(conn: &mut DbConnection, f: F) -> Option<diesel::QueryResult<T>>
where
    F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
{
    use diesel::Connection;
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(c) = conn else { return None };
    match AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth() {
        Ok(None) => {}
        _ => return None,
    }
    Some(conn.transaction(f))
}

/// A transaction for work that reads and then writes. On SQLite it begins
/// `IMMEDIATE`, taking the single writer's lock first (waiting for it up to
/// the busy timeout): a `DEFERRED` transaction reads from a snapshot, and
/// once another connection commits it can no longer write, so SQLite fails
/// it at once with "database is locked". Nested calls are savepoints, as
/// with `Connection::transaction`; PostgreSQL is unchanged.
pub fn transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::Connection;
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let outermost = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?.is_none()
        }
        DbConnection::Pg(_) => false,
    };
    if !outermost {
        return conn.transaction(f);
    }
    if let DbConnection::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => match <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

impl DbError {
    /// PostgreSQL refuses text holding a NUL character (U+0000), which
    /// SQLite stores: the request carried one, so the client is at fault,
    /// not the server. (The message ends with the byte, `0x00`, in every
    /// language the server may speak.)
    pub fn is_nul_in_text(&self) -> bool {
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::Unknown, info)) => {
                info.message().ends_with(": 0x00")
            }
            _ => false,
        }
    }
}

/// After deleting personal data: on SQLite, copies the write-ahead log into
/// the database file and cuts the log to nothing, since the log still holds
/// the page images from before the delete. PostgreSQL's files are its own
/// (vacuum) matter; nothing to do there.
pub fn checkpoint(conn: &mut DbConnection) -> Result<(), diesel::result::Error> {
    if let DbConnection::Sqlite(c) = conn {
        c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok(())
}

/// `true` when the error is a unique-constraint violation (both backends).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}

/// Current time truncated to microseconds: both backends store that precision,
/// so values read back compare equal to values written.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
