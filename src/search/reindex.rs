//! `lyceum search reindex`: every index rebuilt from the database, the source
//! of truth, beside the live documents and swapped in when complete (see
//! [`SearchIndex::rebuild`]), so searches keep answering throughout.

use std::sync::Arc;

use super::{CourseDocument, Document, SearchError, SearchIndex, ThreadDocument};
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

/// Rebuilds the course index from the published courses; returns how many were indexed.
pub async fn courses(
    db: &Db,
    index: &Arc<dyn SearchIndex>,
    progress: impl FnMut(u64, u64),
) -> Result<u64, ReindexError> {
    let ids = db.run(|conn| crate::learning::catalog::all_course_ids(conn).map_err(DbError::from)).await?;
    rebuild(db, index, ids, published_course, progress).await
}

/// Rebuilds the forum index from the threads; returns how many were indexed.
pub async fn threads(
    db: &Db,
    index: &Arc<dyn SearchIndex<ThreadDocument>>,
    progress: impl FnMut(u64, u64),
) -> Result<u64, ReindexError> {
    let ids = db.run(|conn| crate::forums::search::all_thread_ids(conn).map_err(DbError::from)).await?;
    rebuild(db, index, ids, crate::forums::search::document, progress).await
}

fn published_course(conn: &mut Conn, id: i64) -> diesel::QueryResult<Option<CourseDocument>> {
    crate::learning::catalog::document(conn, id).map(|doc| doc.filter(|(published, _)| *published).map(|(_, d)| d))
}

/// Fills a rebuild of `index` with the documents `load` makes of `ids`
/// (skipping those it returns `None` for) and swaps it in. `progress` hears
/// (ids done, ids in all) after each batch.
async fn rebuild<D: Document>(
    db: &Db,
    index: &Arc<dyn SearchIndex<D>>,
    ids: Vec<i64>,
    load: fn(&mut Conn, i64) -> diesel::QueryResult<Option<D>>,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ReindexError> {
    let total = ids.len() as u64;
    let mut rebuild = index.rebuild().await?;
    let (mut done, mut indexed) = (0, 0);
    for batch in ids.chunks(BATCH) {
        let batch = batch.to_vec();
        done += batch.len() as u64;
        let docs = db
            .run(move |conn| {
                let docs: diesel::QueryResult<Vec<Option<D>>> = batch.into_iter().map(|id| load(conn, id)).collect();
                docs.map_err(DbError::from)
            })
            .await?;
        let docs: Vec<D> = docs.into_iter().flatten().collect();
        indexed += docs.len() as u64;
        rebuild.add(docs).await?;
        progress(done, total);
    }
    rebuild.finish().await?;
    Ok(indexed)
}
