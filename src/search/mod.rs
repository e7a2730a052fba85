//! Full-text course search: the `SearchIndex` abstraction over the course
//! catalog and its two backends, an embedded tantivy index on local disk
//! (`embedded`) and a Meilisearch server (`meili`). `open` picks one from the
//! configuration; callers only ever see `Arc<dyn SearchIndex>`.
//!
//! The index is derived data: the database is the source of truth and every
//! document can be rebuilt from it, so writers upsert whole documents by id
//! and a failed write is safe to retry.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod embedded;
pub mod meili;

pub use embedded::EmbeddedIndex;
pub use meili::MeiliIndex;

/// One course as the search backends see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseDocument {
    /// The course id; the document key.
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub summary: String,
    /// Plain text (markdown is fine).
    pub description: String,
    /// The member institution's name.
    pub member: String,
    pub subjects: Vec<String>,
    pub language: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index directory {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the search index in {0} is in use by another process; only one process may write it \
         (configure Meilisearch with search_url to share an index between processes)"
    )]
    Locked(std::path::PathBuf),
    #[error("the search index in {0} was built with a different schema; delete that directory and reindex the courses")]
    SchemaMismatch(std::path::PathBuf),
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index writer is unusable after an earlier panic; restart the process")]
    Poisoned,
    #[error("Meilisearch: {0}")]
    Meili(#[from] meilisearch_sdk::errors::Error),
    #[error("Meilisearch task failed: {0}")]
    MeiliTask(meilisearch_sdk::errors::MeilisearchError),
    #[error("search worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

#[async_trait::async_trait]
pub trait SearchIndex: Send + Sync {
    /// Adds or replaces documents (by id). Returns once the change is visible to `search`.
    async fn upsert(&self, docs: Vec<CourseDocument>) -> Result<(), SearchError>;
    /// Removes one document; removing an absent id is not an error.
    async fn remove(&self, id: i64) -> Result<(), SearchError>;
    /// Removes every document (the backend's settings stay).
    async fn clear(&self) -> Result<(), SearchError>;
    /// Course ids, best match first. Tolerates typos: e.g. "pyhton" finds "Python",
    /// "statistcs" finds "Statistics"; the last word also matches as a prefix.
    /// Empty/whitespace query → `Ok(vec![])`.
    async fn search(&self, query: &str, limit: usize) -> Result<Vec<i64>, SearchError>;
    /// `"embedded"` or `"meilisearch"`, for logs and the staff pages.
    fn backend_name(&self) -> &'static str;
}

/// Opens the configured backend: Meilisearch when `meili_url` is Some (and not
/// blank), else the embedded tantivy index stored in `data_dir/search`
/// (created if missing). `index_name` names the Meilisearch index; the
/// embedded index has one directory and ignores it.
///
/// Opening does no network I/O: the Meilisearch index and its settings are
/// created on first use, so a server that is still starting does not stop the
/// web process from starting.
pub fn open(
    data_dir: &Path,
    meili_url: Option<&str>,
    meili_key: Option<&str>,
    index_name: &str,
) -> Result<Arc<dyn SearchIndex>, SearchError> {
    // An empty LYCEUM_SEARCH_URL in an env file means "not configured", not "connect to ''".
    match meili_url.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => {
            let index = MeiliIndex::new(url, meili_key, index_name)?;
            tracing::info!(url, index = index_name, "search: Meilisearch");
            Ok(Arc::new(index))
        }
        None => {
            let path = data_dir.join("search");
            let index = EmbeddedIndex::open(&path)?;
            tracing::info!(path = %path.display(), "search: embedded index");
            Ok(Arc::new(index))
        }
    }
}
