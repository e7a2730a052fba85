//! `lyceum search reindex`: every index rebuilt from the database, the source
//! of truth, beside the live documents and swapped in when complete (see
//! [`SearchIndex::rebuild`]), so searches keep answering throughout. Each
//! area rebuilds its own index with [`rebuild`] from the documents it makes
//! (`learning::catalog::reindex`, `forums::search::reindex`): this module
//! knows no area.

use std::sync::Arc;

use super::{Document, SearchError, SearchIndex};
use crate::db::{Conn, Db, DbError};

/// Documents loaded from the database and sent to the index at a time.
const BATCH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// The jobs that keep an index in step with the database as it changes:
/// jobs of `kind`, naming the document under `key` in their payload (as
/// `learning::authoring::INDEX_COURSE` names `course_id`).
#[derive(Debug, Clone, Copy)]
pub struct IndexJobs {
    pub kind: &'static str,
    pub key: &'static str,
}

/// How long before a rebuild started a change's index job may have been
/// queued and its transaction still commit after the rebuild read the
/// document: far longer than any transaction, as reading a few documents
/// again costs little.
const SLACK_SECONDS: i64 = 300;

/// Fills a rebuild of `index` with the documents `load` makes of `ids`
/// (skipping those it returns `None` for) and swaps it in. `progress` hears
/// (ids done, ids in all) after each batch.
///
/// A document changed while the rebuild reads (a course edited, unpublished
/// or created) may be in the rebuild as it was, and its index job may have
/// updated the live index before the swap replaced it; so once swapped in,
/// every document whose job (`jobs`) was queued since the rebuild started
/// is read from the database again and upserted, or removed when `load`
/// makes nothing of it. The index ends as the database is; jobs queued
/// later update the new index as usual.
pub async fn rebuild<D: Document>(
    db: &Db,
    index: &Arc<dyn SearchIndex<D>>,
    ids: Vec<i64>,
    load: fn(&mut Conn, i64) -> diesel::QueryResult<Option<D>>,
    jobs: IndexJobs,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ReindexError> {
    let started = crate::db::now() - chrono::Duration::seconds(SLACK_SECONDS);
    let total = ids.len() as u64;
    let mut rebuild = index.rebuild().await?;
    let (mut done, mut indexed) = (0, 0);
    for batch in ids.chunks(BATCH) {
        let batch = batch.to_vec();
        done += batch.len() as u64;
        let docs = load_all(db, batch, load).await?;
        let docs: Vec<D> = docs.into_iter().flat_map(|(_, doc)| doc).collect();
        indexed += docs.len() as u64;
        rebuild.add(docs).await?;
        progress(done, total);
    }
    rebuild.finish().await?;
    let changed = db.run(move |conn| changed_since(conn, jobs, started).map_err(DbError::from)).await?;
    for batch in changed.chunks(BATCH) {
        let mut upserts = Vec::new();
        for (id, doc) in load_all(db, batch.to_vec(), load).await? {
            match doc {
                Some(doc) => upserts.push(doc),
                None => index.remove(id).await?,
            }
        }
        if !upserts.is_empty() {
            index.upsert(upserts).await?;
        }
    }
    Ok(indexed)
}

/// The documents `load` makes of `ids`, by id.
async fn load_all<D: Document>(
    db: &Db,
    ids: Vec<i64>,
    load: fn(&mut Conn, i64) -> diesel::QueryResult<Option<D>>,
) -> Result<Vec<(i64, Option<D>)>, ReindexError> {
    Ok(db
        .run(move |conn| {
            let docs: diesel::QueryResult<Vec<(i64, Option<D>)>> =
                ids.into_iter().map(|id| load(conn, id).map(|doc| (id, doc))).collect();
            docs.map_err(DbError::from)
        })
        .await?)
}

/// The documents whose index jobs were queued at or after `since`, once each.
fn changed_since(conn: &mut Conn, jobs: IndexJobs, since: chrono::NaiveDateTime) -> diesel::QueryResult<Vec<i64>> {
    use crate::db::schema::jobs as table;
    use diesel::prelude::*;
    let payloads: Vec<String> = table::table
        .filter(table::kind.eq(jobs.kind))
        .filter(table::created_at.ge(since))
        .select(table::payload)
        .load(conn)?;
    let ids: std::collections::BTreeSet<i64> = payloads
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok()?.get(jobs.key)?.as_i64())
        .collect();
    Ok(ids.into_iter().collect())
}
