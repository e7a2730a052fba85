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

/// Fills a rebuild of `index` with the documents `load` makes of `ids`
/// (skipping those it returns `None` for) and swaps it in. `progress` hears
/// (ids done, ids in all) after each batch.
pub async fn rebuild<D: Document>(
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
