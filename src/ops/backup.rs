//! Backups of a SQLite site, taken while it runs, and their restore.
//!
//! A backup is a folder: `lyceum.db`, a consistent copy of the database made
//! by SQLite's `VACUUM INTO` (one read transaction, so learners' writes go on
//! and the copy is what was committed at its start); `blobs/`, the uploaded
//! files when they are stored on local disk (copied after the database, so
//! every file the copy refers to is there); and `secret.key` when the demo
//! generated one. The secret and encryption keys set in the environment are
//! not in it: keep them where they are kept today, apart from the backups.
//! PostgreSQL sites use `pg_dump` and the bucket's own versioning
//! (docs/OPERATIONS.md).

use std::path::{Path, PathBuf};

use diesel::RunQueryDsl;
use diesel::sql_types::Text;

use crate::config::Config;
use crate::db::{Db, DbConnection};

pub const DATABASE_FILE: &str = "lyceum.db";
pub const BLOBS_DIR: &str = "blobs";
pub const SECRET_FILE: &str = "secret.key";

/// What a backup or restore copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub database_bytes: u64,
    pub files: u64,
    pub secret: bool,
}

fn sqlite_path(config: &Config) -> Result<PathBuf, String> {
    if !config.is_sqlite() {
        return Err("`lyceum backup` copies a SQLite site. For PostgreSQL use its own tools: \
             `pg_dump --format=custom` (and `pg_restore`), with the S3 bucket's versioning for uploads; \
             see docs/OPERATIONS.md"
            .into());
    }
    let url = &config.database_url;
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    if path == ":memory:" || path.starts_with("file:") {
        return Err(format!("the database {url} is not a file that can be backed up"));
    }
    Ok(PathBuf::from(path))
}

fn local_blobs(config: &Config) -> Option<PathBuf> {
    config.blob_s3_bucket.is_none().then(|| config.data_dir.join(BLOBS_DIR))
}

/// Writes a backup of the running site into `out`, a folder that must not
/// exist yet or be empty.
pub fn backup(config: &Config, out: &Path) -> Result<Copied, String> {
    let database = sqlite_path(config)?;
    if !database.exists() {
        return Err(format!("there is no database at {} to back up", database.display()));
    }
    if out.exists() && std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?.next().is_some() {
        return Err(format!("{} is not empty: back up into a new folder", out.display()));
    }
    crate::private_files::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let db = Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let target = out.join(DATABASE_FILE);
    let DbConnection::Sqlite(c) = &mut *conn else { return Err("not a SQLite database".into()) };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target.to_string_lossy().to_string())
        .execute(c)
        .map_err(|e| format!("the database could not be copied: {e}"))?;
    let mut copied = Copied { database_bytes: file_len(&target), ..Copied::default() };
    if let Some(blobs) = local_blobs(config)
        && blobs.is_dir()
    {
        copied.files = copy_tree(&blobs, &out.join(BLOBS_DIR))?;
    }
    let secret = config.data_dir.join(SECRET_FILE);
    if config.secret_key.is_none() && secret.is_file() {
        copy_private(&secret, &out.join(SECRET_FILE))?;
        copied.secret = true;
    }
    Ok(copied)
}

/// Puts a backup made by [`backup`] in place of the site's database and
/// files. The site must be stopped. An existing database is replaced only
/// with `replace`, and then kept beside it (`….before-restore-<time>`), as
/// are the files it replaces: a restore never destroys what it replaces.
pub fn restore(config: &Config, from: &Path, replace: bool) -> Result<Copied, String> {
    let database = sqlite_path(config)?;
    let source = from.join(DATABASE_FILE);
    if !source.is_file() {
        return Err(format!("{} has no {DATABASE_FILE}: is it a folder written by `lyceum backup`?", from.display()));
    }
    check_database(&source)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    if database.exists() {
        if !replace {
            return Err(format!(
                "{} exists; stop the site and run again with --replace to put the backup in its place \
                 (the current database is kept beside it)",
                database.display()
            ));
        }
        let kept = PathBuf::from(format!("{}.before-restore-{stamp}", database.display()));
        std::fs::rename(&database, &kept).map_err(|e| format!("cannot move {} aside: {e}", database.display()))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", database.display()));
            if side.exists() {
                let kept_side = PathBuf::from(format!("{}{suffix}", kept.display()));
                std::fs::rename(&side, &kept_side).map_err(|e| format!("cannot move {} aside: {e}", side.display()))?;
            }
        }
    }
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::private_files::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    copy_private(&source, &database)?;
    let mut copied = Copied { database_bytes: file_len(&database), ..Copied::default() };
    let saved_blobs = from.join(BLOBS_DIR);
    if let Some(blobs) = local_blobs(config)
        && saved_blobs.is_dir()
    {
        if blobs.exists() {
            let kept = config.data_dir.join(format!("{BLOBS_DIR}.before-restore-{stamp}"));
            std::fs::rename(&blobs, &kept).map_err(|e| format!("cannot move {} aside: {e}", blobs.display()))?;
        }
        copied.files = copy_tree(&saved_blobs, &blobs)?;
    }
    let saved_secret = from.join(SECRET_FILE);
    if config.secret_key.is_none() && saved_secret.is_file() {
        copy_private(&saved_secret, &config.data_dir.join(SECRET_FILE))?;
        copied.secret = true;
    }
    Ok(copied)
}

/// A backup's database opens and passes SQLite's own check.
fn check_database(path: &Path) -> Result<(), String> {
    use diesel::Connection;
    #[derive(diesel::QueryableByName)]
    struct Answer {
        #[diesel(sql_type = Text)]
        quick_check: String,
    }
    let mut conn = diesel::SqliteConnection::establish(&format!("file:{}?mode=ro", path.display()))
        .map_err(|e| format!("{} cannot be opened: {e}", path.display()))?;
    let answers: Vec<Answer> = diesel::sql_query("PRAGMA quick_check")
        .load(&mut conn)
        .map_err(|e| format!("{} is not a readable SQLite database: {e}", path.display()))?;
    match answers.first() {
        Some(a) if a.quick_check == "ok" => Ok(()),
        Some(a) => Err(format!("{} is damaged: {}", path.display(), a.quick_check)),
        None => Err(format!("{} could not be checked", path.display())),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn copy_private(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = std::fs::read(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    crate::private_files::write(to, &bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))
}

/// Copies a folder of files (and subfolders); returns the number of files.
fn copy_tree(from: &Path, to: &Path) -> Result<u64, String> {
    crate::private_files::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let mut files = 0;
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let kind = entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            files += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
            files += 1;
        }
    }
    Ok(files)
}
