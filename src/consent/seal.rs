//! The consent ledger's proof against someone who holds the database alone.
//!
//! The SHA-256 chain in `ledger` shows that a row was changed, but whoever
//! can write the database can also recompute every later hash, add a row at
//! the end or delete the newest rows. Two things close that:
//! - **a seal per row**: HMAC-SHA256 of the row's hash under a key derived
//!   from the site secret, which lives in the configuration, not in the
//!   database. A recomputed or added row has no valid seal.
//! - **a published head**: once a minute the newest row's id and hash,
//!   sealed, are appended to a file the operator keeps (and logged), so
//!   deleting the newest rows is caught: the published row is gone.
//!
//! `lyceum consent verify` checks the chain, the seals, the published heads
//! and that the consent state the gate reads matches the ledger.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::Conn;
use crate::db::schema::consent_ledger;

static SEAL_KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Derives the sealing key from the site secret; the first call wins.
pub fn install_key(secret: &[u8]) {
    let digest = Sha256::new_with_prefix(b"lyceum consent ledger seal\0").chain_update(secret).finalize();
    let _ = SEAL_KEY.set(digest.into());
}

/// Whether the site's key was installed (the digests and seals written
/// under a process-only key would verify nowhere else).
pub fn key_installed() -> bool {
    SEAL_KEY.get().is_some()
}

/// The key, or a random one for a process that never installed keys (its
/// seals then verify nowhere else, which `verify` reports).
fn key() -> &'static [u8; 32] {
    SEAL_KEY.get_or_init(|| {
        tracing::warn!("no site secret installed: consent ledger rows are sealed with a key of this process only");
        rand::random()
    })
}

fn mac(parts: &[&[u8]]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key()).expect("any key length");
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

/// The seal of a ledger row with hash `row_hash`.
pub fn row_seal(row_hash: &str) -> String {
    mac(&[b"row", row_hash.as_bytes()])
}

/// Whether `seal` is `row_hash`'s seal (compared in constant time).
pub fn row_seal_matches(row_hash: &str, seal: &str) -> bool {
    crate::kernel::tokens::constant_time_eq(row_seal(row_hash).as_bytes(), seal.as_bytes())
}

/// The seal of a disclosure manifest with hash `hash`.
pub fn manifest_seal(hash: &str) -> String {
    mac(&[b"manifest", hash.as_bytes()])
}

pub fn manifest_seal_matches(hash: &str, seal: &str) -> bool {
    crate::kernel::tokens::constant_time_eq(manifest_seal(hash).as_bytes(), seal.as_bytes())
}

/// The keyed digest of one entry of a manifest's set (a learner or a
/// record id): without the key, a set cannot be forged to match a digest.
pub fn entry_digest(kind: &[u8], id: u64) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key()).expect("any key length");
    m.update(b"manifest entry\0");
    m.update(&(kind.len() as u64).to_be_bytes());
    m.update(kind);
    m.update(&id.to_be_bytes());
    m.finalize().into_bytes().into()
}

/// One published head of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub ledger_id: i64,
    pub row_hash: String,
    /// When it was published, UTC.
    pub at: String,
    pub seal: String,
    /// The newest disclosure manifest then, and its hash (heads published
    /// before manifests existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_hash: Option<String>,
}

impl Anchor {
    fn seal_of(ledger_id: i64, row_hash: &str, at: &str, manifest: Option<(i64, &str)>) -> String {
        match manifest {
            None => mac(&[b"head", &ledger_id.to_be_bytes(), row_hash.as_bytes(), at.as_bytes()]),
            Some((id, hash)) => mac(&[
                b"heads",
                &ledger_id.to_be_bytes(),
                row_hash.as_bytes(),
                &id.to_be_bytes(),
                hash.as_bytes(),
                at.as_bytes(),
            ]),
        }
    }

    pub fn new(ledger_id: i64, row_hash: String, at: NaiveDateTime) -> Anchor {
        Anchor::with_manifest(ledger_id, row_hash, None, at)
    }

    /// The heads of both chains: the ledger's and the manifests'.
    pub fn with_manifest(
        ledger_id: i64,
        row_hash: String,
        manifest: Option<(i64, String)>,
        at: NaiveDateTime,
    ) -> Anchor {
        let at = crate::web::format::iso(at);
        let seal = Anchor::seal_of(ledger_id, &row_hash, &at, manifest.as_ref().map(|(i, h)| (*i, h.as_str())));
        let (manifest_id, manifest_hash) = manifest.unzip();
        Anchor { ledger_id, row_hash, at, seal, manifest_id, manifest_hash }
    }

    fn manifest(&self) -> Option<(i64, &str)> {
        Some((self.manifest_id?, self.manifest_hash.as_deref()?))
    }

    /// Whether this line was written with this site's key, unchanged.
    pub fn is_sealed(&self) -> bool {
        if self.manifest_id.is_some() != self.manifest_hash.is_some() {
            return false;
        }
        let expected = Anchor::seal_of(self.ledger_id, &self.row_hash, &self.at, self.manifest());
        crate::kernel::tokens::constant_time_eq(expected.as_bytes(), self.seal.as_bytes())
    }
}

/// The last head in `path`, read from its end (the file grows a line a
/// minute at most, and only its last line matters here).
fn last_published(path: &Path) -> Option<Anchor> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    tail.lines().rev().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str(l).ok())
}

/// The ledger's newest row and the newest disclosure manifest, sealed.
pub fn head(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<Option<Anchor>> {
    let newest: Option<(i64, String)> = consent_ledger::table
        .order(consent_ledger::id.desc())
        .select((consent_ledger::id, consent_ledger::row_hash))
        .first(conn)
        .optional()?;
    let manifest: Option<(i64, String)> = crate::db::schema::manifests::table
        .order(crate::db::schema::manifests::id.desc())
        .select((crate::db::schema::manifests::id, crate::db::schema::manifests::hash))
        .first(conn)
        .optional()?;
    Ok(newest.map(|(id, hash)| Anchor::with_manifest(id, hash, manifest, now)))
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("consent anchor {0}: {1}")]
    File(String, std::io::Error),
    #[error("consent anchor {0}, line {1}: {2}")]
    Line(String, usize, String),
}

/// Appends the ledger's head to `path` (and logs it) when it moved since
/// the file's last line; answers 1 when it wrote.
pub fn publish(conn: &mut Conn, path: &Path, now: NaiveDateTime) -> Result<usize, AnchorError> {
    let Some(anchor) = head(conn, now)? else { return Ok(0) };
    if last_published(path).is_some_and(|last| {
        last.ledger_id == anchor.ledger_id && last.row_hash == anchor.row_hash && last.manifest_id == anchor.manifest_id
    }) {
        return Ok(0);
    }
    let shown = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AnchorError::File(shown.clone(), e))?;
    }
    let mut line = serde_json::to_string(&anchor).expect("an anchor serializes");
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AnchorError::File(shown.clone(), e))?;
    file.write_all(line.as_bytes()).and_then(|_| file.sync_data()).map_err(|e| AnchorError::File(shown, e))?;
    tracing::info!(
        target: "lyceum::consent",
        ledger_head = anchor.ledger_id,
        head_hash = %anchor.row_hash,
        manifest_head = anchor.manifest_id,
        seal = %anchor.seal,
        "consent ledger head published"
    );
    Ok(1)
}

/// Every head published in `path`; none when the file does not exist.
pub fn read(path: &Path) -> Result<Vec<Anchor>, AnchorError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AnchorError::File(shown, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| AnchorError::Line(shown.clone(), i + 1, e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_cover_what_they_name() {
        install_key(b"a site secret of at least thirty-two bytes!");
        let seal = row_seal("abc");
        assert!(row_seal_matches("abc", &seal));
        assert!(!row_seal_matches("abd", &seal));
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(3, 0, 0).unwrap();
        let anchor = Anchor::new(7, "abc".into(), at);
        assert!(anchor.is_sealed());
        assert!(!Anchor { ledger_id: 8, ..anchor.clone() }.is_sealed(), "another head, same seal");
        assert!(!Anchor { row_hash: "abd".into(), ..anchor }.is_sealed());
    }
}
