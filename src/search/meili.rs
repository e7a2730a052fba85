//! The Meilisearch search backend, for deployments that run several
//! processes or want a search server's ranking and typo tolerance.
//!
//! It owns the index's settings (primary key, searchable and filterable
//! attributes). They are applied on first use rather than at open, because
//! opening must not need the server. Meilisearch applies writes
//! asynchronously as tasks; every write here waits for its task so that, as
//! with the embedded index, a change is visible once the call returns.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use meilisearch_sdk::client::{Client, SwapIndexes};
use meilisearch_sdk::errors::{Error, ErrorCode};
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::search::Selectors;
use meilisearch_sdk::settings::Settings;
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::Task;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{Document, Rebuild, SearchError, SearchIndex};

const PRIMARY_KEY: &str = "id";
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Small catalog writes take milliseconds; this allows for a busy task queue
/// (Meilisearch runs one batch at a time for all indexes, and a settings
/// change re-indexes everything) without hanging a job forever. A write that
/// times out is still applied later and its job retries anyway.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// Meilisearch refuses to page past `maxTotalHits` (1000 by default) anyway.
const MAX_LIMIT: usize = 1000;

/// A handle on one Meilisearch index holding documents `D`.
pub struct MeiliIndex<D> {
    url: String,
    client: Client,
    index: Index,
    /// Set once the index and its settings are known to be in place; cleared
    /// when a search shows they are not (the server lost its data).
    ready: AtomicBool,
    /// Held while the index and its settings are being put in place.
    setup: Mutex<()>,
    kind: PhantomData<fn() -> D>,
}

#[derive(Deserialize)]
struct Hit {
    id: i64,
}

impl<D: Document> MeiliIndex<D> {
    /// A handle on index `index_name` at `url`; no request is made yet.
    pub fn new(url: &str, api_key: Option<&str>, index_name: &str) -> Result<MeiliIndex<D>, SearchError> {
        // The SDK appends paths to the host and would produce `//indexes`.
        let url = url.trim_end_matches('/').to_owned();
        let client = Client::new(url.clone(), api_key)?;
        Ok(MeiliIndex::with_client(url, client, index_name))
    }

    fn with_client(url: String, client: Client, index_name: &str) -> MeiliIndex<D> {
        let index = client.index(index_name);
        MeiliIndex { url, client, index, ready: AtomicBool::new(false), setup: Mutex::new(()), kind: PhantomData }
    }

    /// Deletes the index, if it exists.
    async fn delete(&self) -> Result<(), SearchError> {
        let deleted = self.client.delete_index(&self.index.uid).await?;
        match self.finish(deleted).await {
            Err(SearchError::MeiliTask(error)) if error.error_code == ErrorCode::IndexNotFound => Ok(()),
            other => other,
        }
    }

    /// Creates the index with its primary key and applies the settings, once
    /// per handle (and again after [`Self::search_in`] found them gone). A
    /// failure leaves the handle unready, so the next call retries.
    async fn ready(&self) -> Result<(), SearchError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _setup = self.setup.lock().await;
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let created = self.client.create_index(&self.index.uid, Some(PRIMARY_KEY)).await?;
        match self.finish(created).await {
            Err(SearchError::MeiliTask(error)) if error.error_code == ErrorCode::IndexAlreadyExists => {}
            other => other?,
        }
        // In ranking order: Meilisearch's `attribute` rule prefers matches in earlier attributes.
        let searchable = D::FIELDS.iter().map(|(name, _)| *name);
        let settings = Settings::new().with_searchable_attributes(searchable).with_filterable_attributes(D::FILTERABLE);
        let updated = self.index.set_settings(&settings).await?;
        self.finish(updated).await?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// One search request; see `search_in`.
    async fn query(&self, query: &str, filter: Option<&str>, limit: usize) -> Result<Vec<i64>, Error> {
        let mut search = self.index.search();
        search
            .with_query(query)
            .with_limit(limit.min(MAX_LIMIT))
            .with_attributes_to_retrieve(Selectors::Some(&[PRIMARY_KEY]));
        if let Some(filter) = filter {
            search.with_filter(filter);
        }
        let results = search.execute::<Hit>().await?;
        Ok(results.hits.into_iter().map(|hit| hit.result.id).collect())
    }

    /// Waits for `task` and turns a failed task into an error.
    async fn finish(&self, task: TaskInfo) -> Result<(), SearchError> {
        match task.wait_for_completion(&self.client, Some(POLL_INTERVAL), Some(TASK_TIMEOUT)).await? {
            Task::Succeeded { .. } => Ok(()),
            Task::Failed { content } => Err(SearchError::MeiliTask(content.error)),
            Task::Enqueued { .. } | Task::Processing { .. } => Err(SearchError::Meili(Error::Timeout)),
        }
    }
}

impl<D> fmt::Debug for MeiliIndex<D> {
    // By hand, so the API key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeiliIndex").field("url", &self.url).field("index", &self.index.uid).finish()
    }
}

#[async_trait::async_trait]
impl<D: Document> SearchIndex<D> for MeiliIndex<D> {
    async fn ready(&self) -> Result<(), SearchError> {
        self.client.health().await?;
        Ok(())
    }

    async fn upsert(&self, docs: Vec<D>) -> Result<(), SearchError> {
        if docs.is_empty() {
            return Ok(());
        }
        self.ready().await?;
        let task = self.index.add_or_replace(&docs, Some(PRIMARY_KEY)).await?;
        self.finish(task).await
    }

    async fn remove(&self, id: i64) -> Result<(), SearchError> {
        self.ready().await?;
        let task = self.index.delete_document(id).await?;
        self.finish(task).await
    }

    async fn clear(&self) -> Result<(), SearchError> {
        self.ready().await?;
        let task = self.index.delete_all_documents().await?;
        self.finish(task).await
    }

    async fn search_in(&self, query: &str, groups: Option<Vec<i64>>, limit: usize) -> Result<Vec<i64>, SearchError> {
        // An empty query is a "placeholder search" in Meilisearch and would return every document.
        if query.trim().is_empty() || limit == 0 || groups.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        self.ready().await?;
        // Numbers only, so the filter expression cannot be injected into.
        let filter = match (groups, D::GROUP) {
            (Some(groups), Some(field)) => {
                let ids: Vec<String> = groups.iter().map(i64::to_string).collect();
                Some(format!("{field} IN [{}]", ids.join(", ")))
            }
            _ => None,
        };
        match self.query(query, filter.as_deref(), limit).await {
            // The server lost the index, or recreated it on a write without
            // the settings (so the group is not filterable): put them back, once.
            Err(Error::Meilisearch(error))
                if matches!(error.error_code, ErrorCode::IndexNotFound | ErrorCode::InvalidSearchFilter) =>
            {
                tracing::warn!(index = %self.index.uid, %error, "Meilisearch index or settings missing; recreating");
                self.ready.store(false, Ordering::Release);
                self.ready().await?;
                Ok(self.query(query, filter.as_deref(), limit).await?)
            }
            other => Ok(other?),
        }
    }

    fn backend_name(&self) -> &'static str {
        "meilisearch"
    }

    /// Builds a staging index beside this one (`<name>__rebuild`, with the
    /// same settings), then swaps the two with Meilisearch's swap-indexes,
    /// which is atomic, and deletes the staging index, which then holds the
    /// old documents.
    async fn rebuild(&self) -> Result<Box<dyn Rebuild<D>>, SearchError> {
        self.ready().await?;
        let staging = MeiliIndex::<D>::with_client(
            self.url.clone(),
            self.client.clone(),
            &format!("{}{STAGING_SUFFIX}", self.index.uid),
        );
        // What an interrupted rebuild left behind.
        staging.delete().await?;
        staging.ready().await?;
        Ok(Box::new(MeiliRebuild { live: self.index.uid.clone(), staging }))
    }
}

/// Appended to an index's name for the index a rebuild fills.
const STAGING_SUFFIX: &str = "__rebuild";

struct MeiliRebuild<D> {
    live: String,
    staging: MeiliIndex<D>,
}

#[async_trait::async_trait]
impl<D: Document> Rebuild<D> for MeiliRebuild<D> {
    async fn add(&mut self, docs: Vec<D>) -> Result<(), SearchError> {
        self.staging.upsert(docs).await
    }

    async fn finish(self: Box<Self>) -> Result<(), SearchError> {
        let swap = SwapIndexes { indexes: (self.live.clone(), self.staging.index.uid.clone()), rename: None };
        let swapped = self.staging.client.swap_indexes([&swap]).await?;
        self.staging.finish(swapped).await?;
        self.staging.delete().await
    }
}
