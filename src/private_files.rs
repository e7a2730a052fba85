//! Files and directories Lyceum creates under its data directory (the
//! database, the generated secret key, mail in the outbox, blobs, search
//! indexes): they hold personal data or keys, so on Unix they are created
//! readable by the server's own user only (files 0600, directories 0700),
//! whatever the process umask. Knows no business area.

use std::io::Write;
use std::path::Path;

/// Creates `dir` and any missing parents, each new one 0700.
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Writes `bytes` to a new or truncated file, created 0600.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = options().write(true).create(true).truncate(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `path` empty (0600) unless it exists, so that a library which
/// opens it afterwards (SQLite, which gives its `-wal` and `-shm` files the
/// mode of the database file) keeps that mode.
pub fn touch(path: &Path) -> std::io::Result<()> {
    options().write(true).create(true).truncate(false).open(path).map(|_| ())
}
