//! File storage behind the `BlobStore` trait: course resources, images, video
//! files. Blobs are content-addressed (SHA-256 of the bytes), so the same file
//! uploaded twice is stored once and a key can never point at other content.
//! The `blob_files` table records each blob's type and size. This module does
//! not decide who may read a blob; the area that links to it does.

use std::path::PathBuf;

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::{Conn, schema::blob_files};

pub mod s3;
pub use s3::{S3Blobs, S3Settings};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a blob key: {0}")]
    BadKey(String),
    #[error("blob storage: {0}")]
    Remote(String),
}

/// Synchronous on purpose: callers are services running on the blocking pool.
pub trait BlobStore: Send + Sync {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError>;
    fn delete(&self, key: &str) -> Result<(), BlobError>;
}

pub fn key_for(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn check_key(key: &str) -> Result<(), BlobError> {
    if key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(BlobError::BadKey(key.chars().take(80).collect()))
    }
}

/// Blobs as files under a directory (`data/blobs/ab/abcdef…`).
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn new(root: PathBuf) -> LocalBlobs {
        LocalBlobs { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        Ok(self.root.join(&key[..2]).join(key))
    }
}

impl BlobStore for LocalBlobs {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.path(key)?;
        if path.exists() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            crate::private_files::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        crate::private_files::write(&tmp, bytes)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        match std::fs::read(self.path(key)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, key: &str) -> Result<(), BlobError> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Stores `bytes` and records the blob; returns its key.
pub fn store(conn: &mut Conn, blobs: &dyn BlobStore, bytes: &[u8], content_type: &str) -> Result<String, StoreError> {
    let key = key_for(bytes);
    blobs.put(&key, bytes)?;
    let known: i64 = blob_files::table.filter(blob_files::key.eq(&key)).count().get_result(conn)?;
    if known == 0 {
        diesel::insert_into(blob_files::table)
            .values((
                blob_files::key.eq(&key),
                blob_files::content_type.eq(content_type),
                blob_files::size.eq(bytes.len() as i64),
                blob_files::created_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
    }
    Ok(key)
}

pub fn content_type(conn: &mut Conn, key: &str) -> QueryResult<Option<String>> {
    blob_files::table.find(key).select(blob_files::content_type).first(conn).optional()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Content type by file name, for files whose type the uploader did not say.
pub fn guess_type(filename: &str) -> String {
    mime_guess::from_path(filename).first_or_octet_stream().essence_str().to_string()
}
