//! Full-text search: the `SearchIndex` abstraction and its two backends, an
//! embedded tantivy index on local disk (`embedded`) and a Meilisearch server
//! (`meili`). An index holds one kind of [`Document`]: the course catalog
//! ([`CourseDocument`], the default) or forum threads ([`ThreadDocument`]).
//! `open` picks a backend from the configuration; callers only ever see
//! `Arc<dyn SearchIndex<D>>`.
//!
//! The index is derived data: the database is the source of truth and every
//! document can be rebuilt from it, so writers upsert whole documents by id
//! and a failed write is safe to retry.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod embedded;
pub mod meili;
pub mod reindex;

pub use embedded::EmbeddedIndex;
pub use meili::MeiliIndex;

/// What one index holds. The backends build their schema (embedded) or
/// settings (Meilisearch) from these constants, so a new kind of document
/// needs no backend code.
pub trait Document: Serialize + Send + Sync + 'static {
    /// The embedded index's directory under the data directory.
    const DIR: &'static str;
    /// Searched fields with their weights, most telling first (Meilisearch
    /// ranks by this order; the embedded index by the weights).
    const FIELDS: &'static [(&'static str, f32)];
    /// Fields Meilisearch may filter on.
    const FILTERABLE: &'static [&'static str];
    /// The numeric field that groups documents (a thread's forum), when
    /// searches are confined to some groups; serialized under this name.
    const GROUP: Option<&'static str> = None;
    /// The document key.
    fn id(&self) -> i64;
    /// The document's group, when `GROUP` is set.
    fn group(&self) -> Option<i64> {
        None
    }
    /// The text of each searched field; a field may appear more than once.
    fn texts(&self) -> Vec<(&'static str, &str)>;
}

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

impl Document for CourseDocument {
    const DIR: &'static str = "search";
    const FIELDS: &'static [(&'static str, f32)] = &[
        ("title", 3.0),
        ("subjects", 2.0),
        ("summary", 1.5),
        ("member", 1.5),
        ("description", 1.0),
        ("language", 1.0),
    ];
    /// For catalog facets ("courses by this member / in this subject / language").
    const FILTERABLE: &'static [&'static str] = &["member", "subjects", "language"];

    fn id(&self) -> i64 {
        self.id
    }

    fn texts(&self) -> Vec<(&'static str, &str)> {
        let mut texts = vec![
            ("title", self.title.as_str()),
            ("summary", self.summary.as_str()),
            ("description", self.description.as_str()),
            ("member", self.member.as_str()),
            ("language", self.language.as_str()),
        ];
        texts.extend(self.subjects.iter().map(|s| ("subjects", s.as_str())));
        texts
    }
}

/// One forum thread as the search backends see it: its title and the bodies
/// of its visible posts, and nothing about who wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadDocument {
    /// The thread id; the document key.
    pub id: i64,
    pub forum_id: i64,
    pub title: String,
    /// Markdown of the visible posts, in order.
    pub posts: Vec<String>,
}

impl Document for ThreadDocument {
    const DIR: &'static str = "search-forums";
    const FIELDS: &'static [(&'static str, f32)] = &[("title", 3.0), ("posts", 1.0)];
    const FILTERABLE: &'static [&'static str] = &["forum_id"];
    const GROUP: Option<&'static str> = Some("forum_id");

    fn id(&self) -> i64 {
        self.id
    }

    fn group(&self) -> Option<i64> {
        Some(self.forum_id)
    }

    fn texts(&self) -> Vec<(&'static str, &str)> {
        let mut texts = vec![("title", self.title.as_str())];
        texts.extend(self.posts.iter().map(|p| ("posts", p.as_str())));
        texts
    }
}

/// Attempts of a job that updates an index before it is dead: with the
/// jobs' backoff (30 s doubling to an hour), about 13 hours of a search
/// server being unreachable are waited out, and the updates made meanwhile
/// reach it when it is back.
pub const INDEX_JOB_MAX_ATTEMPTS: i32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index directory {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the search index in {0} is in use by another process (a running `lyceum serve` or `lyceum worker`?): \
         the embedded index serves one process only. To run several processes, run Meilisearch and set \
         search_url (LYCEUM_SEARCH_URL) and search_key (LYCEUM_SEARCH_KEY); otherwise stop the other process first"
    )]
    Locked(std::path::PathBuf),
    #[error(
        "the search index in {0} was built with a different schema; delete that directory and run `lyceum search reindex`"
    )]
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

/// An index of one kind of document; `dyn SearchIndex` is the course catalog.
#[async_trait::async_trait]
pub trait SearchIndex<D: Document = CourseDocument>: Send + Sync {
    /// Adds or replaces documents (by id). Returns once the change is visible to `search`.
    async fn upsert(&self, docs: Vec<D>) -> Result<(), SearchError>;
    /// Removes one document; removing an absent id is not an error.
    async fn remove(&self, id: i64) -> Result<(), SearchError>;
    /// Removes every document (the backend's settings stay).
    async fn clear(&self) -> Result<(), SearchError>;
    /// Document ids, best match first. Tolerates typos: e.g. "pyhton" finds "Python",
    /// "statistcs" finds "Statistics"; the last word also matches as a prefix.
    /// Empty/whitespace query → `Ok(vec![])`.
    async fn search(&self, query: &str, limit: usize) -> Result<Vec<i64>, SearchError> {
        self.search_in(query, None, limit).await
    }
    /// As `search`, confined to documents whose group is one of `groups`
    /// when given (an empty list finds nothing).
    async fn search_in(&self, query: &str, groups: Option<Vec<i64>>, limit: usize) -> Result<Vec<i64>, SearchError>;
    /// `"embedded"` or `"meilisearch"`, for logs and the staff pages.
    fn backend_name(&self) -> &'static str;
    /// Whether the backend answers: the readiness check of `/readyz`. An
    /// embedded index lives in the process and is ready when it opened.
    async fn ready(&self) -> Result<(), SearchError> {
        Ok(())
    }
    /// Starts replacing every document: what is added to the returned
    /// [`Rebuild`] is not searched until [`Rebuild::finish`] swaps it in at
    /// once, and until then searches keep answering from the current
    /// documents. Dropping an unfinished rebuild leaves the index as it was.
    async fn rebuild(&self) -> Result<Box<dyn Rebuild<D>>, SearchError>;
}

/// A replacement set of documents being built beside the live ones; see
/// [`SearchIndex::rebuild`].
#[async_trait::async_trait]
pub trait Rebuild<D: Document>: Send {
    /// Adds documents to the replacement set (by id, as `upsert`).
    async fn add(&mut self, docs: Vec<D>) -> Result<(), SearchError>;
    /// Makes the replacement set the index's documents, in one step.
    async fn finish(self: Box<Self>) -> Result<(), SearchError>;
}

/// Opens the configured course index: see [`open_for`].
pub fn open(
    data_dir: &Path,
    meili_url: Option<&str>,
    meili_key: Option<&str>,
    index_name: &str,
) -> Result<Arc<dyn SearchIndex>, SearchError> {
    open_for::<CourseDocument>(data_dir, meili_url, meili_key, index_name)
}

/// Opens the configured backend for documents `D`: Meilisearch when
/// `meili_url` is Some (and not blank), else the embedded tantivy index stored
/// in `data_dir/D::DIR` (created if missing). `index_name` names the
/// Meilisearch index; the embedded index ignores it.
///
/// Opening does no network I/O: the Meilisearch index and its settings are
/// created on first use, so a server that is still starting does not stop the
/// web process from starting.
pub fn open_for<D: Document>(
    data_dir: &Path,
    meili_url: Option<&str>,
    meili_key: Option<&str>,
    index_name: &str,
) -> Result<Arc<dyn SearchIndex<D>>, SearchError> {
    // An empty LYCEUM_SEARCH_URL in an env file means "not configured", not "connect to ''".
    match meili_url.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => {
            let index = MeiliIndex::<D>::new(url, meili_key, index_name)?;
            tracing::info!(url, index = index_name, "search: Meilisearch");
            Ok(Arc::new(index))
        }
        None => {
            let path = data_dir.join(D::DIR);
            let index = EmbeddedIndex::<D>::open(&path)?;
            tracing::info!(path = %path.display(), "search: embedded index");
            Ok(Arc::new(index))
        }
    }
}
