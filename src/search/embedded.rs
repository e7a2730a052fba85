//! The embedded search backend: a tantivy index in a local directory, for
//! single-process deployments that should not need a search server.
//!
//! It owns the schema, the text analyzer and the typo-tolerant query built
//! from the user's words. Tantivy is synchronous, so every call runs on
//! Tokio's blocking pool. There is one `IndexWriter` per directory (tantivy
//! enforces this with a lock file); every write commits and reloads the
//! reader before returning, so `search` sees it at once.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::directory::MmapDirectory;
use tantivy::directory::error::LockError;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

use super::{Document, Rebuild, SearchError, SearchIndex};

/// Registered on every open: tantivy persists the tokenizer's name in the
/// schema, not the tokenizer itself.
const TOKENIZER: &str = "lyceum_text";
/// One indexing thread: a catalog is small, and the machine is shared with the
/// web server. Tantivy needs at least 15 MB per thread.
const WRITER_MEMORY_BYTES: usize = 20_000_000;
/// Bounds the work (and automata) one query can cause.
const MAX_QUERY_TERMS: usize = 16;
/// An exact word beats any typo or prefix match of the same word.
const EXACT_BOOST: f32 = 2.0;
/// Prefix matching for one letter would match nearly everything.
const MIN_PREFIX_CHARS: usize = 2;

/// Directories opened by this process, so a second `open` of the same
/// directory shares the first one's writer instead of failing on tantivy's
/// lock. Weak, so dropping the last handle still releases the lock.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = LazyLock::new(Default::default);

/// A handle on one index directory holding documents `D`; cheap to share
/// behind an `Arc`.
pub struct EmbeddedIndex<D> {
    inner: Arc<Inner>,
    kind: PhantomData<fn() -> D>,
}

struct Inner {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// Held by every write and, for its whole length, by a rebuild, whose
    /// uncommitted documents another write's commit would otherwise publish.
    gate: Arc<tokio::sync::Mutex<()>>,
    fields: Fields,
}

/// The schema's fields: the key, the group when documents have one, and the
/// searched text fields with their weights.
struct Fields {
    id: Field,
    group: Option<Field>,
    /// (name, field, weight), in `Document::FIELDS` order.
    weighted: Vec<(&'static str, Field, f32)>,
}

impl Fields {
    fn text(&self, name: &str) -> Option<Field> {
        self.weighted.iter().find(|(n, _, _)| *n == name).map(|(_, field, _)| *field)
    }
}

/// The schema for documents `D`. A kind without a group gets no group field,
/// so the course index keeps the schema it was first built with.
fn schema<D: Document>() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    // Frequencies feed BM25; positions would only serve phrase queries, which we do not build.
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(TOKENIZER).set_index_option(IndexRecordOption::WithFreqs),
    );
    let id = builder.add_i64_field("id", INDEXED | STORED | FAST);
    let weighted =
        D::FIELDS.iter().map(|&(name, weight)| (name, builder.add_text_field(name, text.clone()), weight)).collect();
    let group = D::GROUP.map(|name| builder.add_i64_field(name, INDEXED));
    (builder.build(), Fields { id, group, weighted })
}

/// Words split on anything not alphanumeric, lowercased and folded to ASCII,
/// so "Café" and "cafe" meet. No stemming: it would fight the typo and prefix
/// matching, which work on the surface form the user typed.
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Edits tolerated in a word: none for short words (too many neighbours),
/// one from 4 characters, two from 8. A transposition counts as one edit.
fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

impl<D: Document> EmbeddedIndex<D> {
    /// Opens the index in `path`, creating the directory and the index if
    /// missing. Opening a directory this process already has open returns a
    /// handle to the same index.
    pub fn open(path: &Path) -> Result<EmbeddedIndex<D>, SearchError> {
        let io_error = |source| SearchError::Io { path: path.to_path_buf(), source };
        crate::private_files::create_dir_all(path).map_err(io_error)?;
        let path = path.canonicalize().map_err(io_error)?;

        // Held across the open so two threads opening one directory cannot both reach the lock file.
        let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|_, inner| inner.strong_count() > 0);
        if let Some(inner) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(EmbeddedIndex { inner, kind: PhantomData });
        }
        let inner = Arc::new(Inner::open(path.clone(), schema::<D>())?);
        open.insert(path, Arc::downgrade(&inner));
        Ok(EmbeddedIndex { inner, kind: PhantomData })
    }

    /// The directory holding the index.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, SearchError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SearchError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner)).await?
    }

    /// As `blocking`, for a write: waits for a rebuild in progress to finish.
    async fn writing<F>(&self, work: F) -> Result<(), SearchError>
    where
        F: FnOnce(&Inner) -> Result<(), SearchError> + Send + 'static,
    {
        let _gate = self.inner.gate.lock().await;
        self.blocking(work).await
    }
}

impl<D> fmt::Debug for EmbeddedIndex<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedIndex").field("path", &self.inner.path).finish()
    }
}

impl Inner {
    fn open(path: PathBuf, (schema, fields): (Schema, Fields)) -> Result<Inner, SearchError> {
        let directory = MmapDirectory::open(&path).map_err(TantivyError::from)?;
        let index = Index::open_or_create(directory, schema).map_err(|e| match e {
            TantivyError::SchemaError(_) => SearchError::SchemaMismatch(path.clone()),
            other => other.into(),
        })?;
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES).map_err(|e| match e {
            TantivyError::LockFailure(LockError::LockBusy, _) => SearchError::Locked(path.clone()),
            other => other.into(),
        })?;
        // Our own commits reload explicitly; the watcher picks up commits by anything else.
        let reader = index.reader_builder().reload_policy(ReloadPolicy::OnCommitWithDelay).try_into()?;
        Ok(Inner { path, index, reader, writer: Mutex::new(writer), gate: Arc::default(), fields })
    }

    /// Applies `change`, commits and reloads the reader. On failure the
    /// uncommitted operations are rolled back so the next commit cannot
    /// publish half of this one.
    fn write(&self, change: impl FnOnce(&mut IndexWriter, &Fields) -> tantivy::Result<()>) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        let result = change(&mut writer, &self.fields).and_then(|()| writer.commit());
        if let Err(error) = result {
            if let Err(rollback) = writer.rollback() {
                tracing::warn!(path = %self.path.display(), %rollback, "search index rollback failed");
            }
            return Err(error.into());
        }
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// Adds `docs` to the writer, each replacing the document with its id.
    fn add<D: Document>(&self, writer: &mut IndexWriter, fields: &Fields, docs: &[D]) -> tantivy::Result<()> {
        for doc in docs {
            // A delete only affects documents added before it, so the new version survives
            // and repeating an upsert (or an id twice in one batch) leaves one document.
            writer.delete_term(Term::from_field_i64(fields.id, doc.id()));
            writer.add_document(self.document(doc))?;
        }
        Ok(())
    }

    fn document<D: Document>(&self, source: &D) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_i64(f.id, source.id());
        if let (Some(field), Some(group)) = (f.group, source.group()) {
            doc.add_i64(field, group);
        }
        for (name, text) in source.texts() {
            if let Some(field) = f.text(name) {
                doc.add_text(field, text);
            }
        }
        doc
    }

    /// The query's words, analyzed exactly as the indexed text was, in order and without repeats.
    fn words(&self, query: &str) -> Result<Vec<String>, SearchError> {
        let Some(&(_, first, _)) = self.fields.weighted.first() else { return Ok(Vec::new()) };
        let mut analyzer = self.index.tokenizer_for_field(first)?;
        let mut stream = analyzer.token_stream(query);
        let mut words: Vec<String> = Vec::new();
        while let Some(token) = stream.next() {
            if !words.contains(&token.text) {
                words.push(token.text.clone());
            }
            if words.len() == MAX_QUERY_TERMS {
                break;
            }
        }
        Ok(words)
    }

    /// Each word may match any field, exactly (scored by BM25, boosted), with
    /// typos, or, for the last word, as a prefix (both constant-scored). Words
    /// are alternatives, so a document matching more of them ranks higher.
    /// With `groups`, a document must also belong to one of them.
    fn query(&self, words: &[String], groups: Option<&[i64]>) -> BooleanQuery {
        let last = words.len().saturating_sub(1);
        let per_word = words.iter().enumerate().map(|(position, word)| {
            let distance = typo_distance(word);
            let prefix = position == last && word.chars().count() >= MIN_PREFIX_CHARS;
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for &(_, field, weight) in &self.fields.weighted {
                let term = Term::from_field_text(field, word);
                let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(exact), weight * EXACT_BOOST))));
                if distance > 0 {
                    let fuzzy = FuzzyTermQuery::new(term.clone(), distance, true);
                    clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(fuzzy), weight))));
                }
                if prefix {
                    let starts = FuzzyTermQuery::new_prefix(term, 0, true);
                    clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(starts), weight))));
                }
            }
            (Occur::Should, Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
        });
        let words = BooleanQuery::new(per_word.collect());
        match (groups, self.fields.group) {
            (Some(groups), Some(field)) => {
                let any_group = groups.iter().map(|&group| {
                    let term = TermQuery::new(Term::from_field_i64(field, group), IndexRecordOption::Basic);
                    (Occur::Should, Box::new(term) as Box<dyn Query>)
                });
                BooleanQuery::new(vec![
                    (Occur::Must, Box::new(words) as Box<dyn Query>),
                    (Occur::Must, Box::new(BooleanQuery::new(any_group.collect()))),
                ])
            }
            _ => words,
        }
    }

    fn search(&self, query: &str, groups: Option<&[i64]>, limit: usize) -> Result<Vec<i64>, SearchError> {
        let words = self.words(query)?;
        let searcher = self.reader.searcher();
        // TopDocs panics on 0 and reserves room for `limit` hits, so clamp to what exists.
        let limit = limit.min(usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX));
        if words.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let hits = searcher.search(&self.query(&words, groups), &TopDocs::with_limit(limit).order_by_score())?;
        let mut columns: HashMap<u32, Column<i64>> = HashMap::new();
        let mut ids = Vec::with_capacity(hits.len());
        for (_score, address) in hits {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(searcher.segment_reader(address.segment_ord).fast_fields().i64("id")?)
                }
            };
            if let Some(id) = column.first(address.doc_id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl<D: Document> SearchIndex<D> for EmbeddedIndex<D> {
    async fn upsert(&self, docs: Vec<D>) -> Result<(), SearchError> {
        if docs.is_empty() {
            return Ok(());
        }
        self.writing(move |inner| inner.write(|writer, fields| inner.add(writer, fields, &docs))).await
    }

    async fn remove(&self, id: i64) -> Result<(), SearchError> {
        self.writing(move |inner| {
            inner.write(|writer, fields| {
                writer.delete_term(Term::from_field_i64(fields.id, id));
                Ok(())
            })
        })
        .await
    }

    async fn clear(&self) -> Result<(), SearchError> {
        self.writing(|inner| inner.write(|writer, _| writer.delete_all_documents().map(drop))).await
    }

    async fn search_in(&self, query: &str, groups: Option<Vec<i64>>, limit: usize) -> Result<Vec<i64>, SearchError> {
        if query.trim().is_empty() || limit == 0 || groups.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let query = query.to_owned();
        self.blocking(move |inner| inner.search(&query, groups.as_deref(), limit)).await
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }

    /// Tantivy publishes nothing until a commit: the rebuild deletes every
    /// document and adds the new ones in the one writer without committing,
    /// and `finish` commits them together. Other writes wait meanwhile.
    async fn rebuild(&self) -> Result<Box<dyn Rebuild<D>>, SearchError> {
        let gate = Arc::clone(&self.inner.gate).lock_owned().await;
        self.blocking(|inner| {
            let writer = inner.writer.lock().map_err(|_| SearchError::Poisoned)?;
            writer.delete_all_documents()?;
            Ok(())
        })
        .await?;
        Ok(Box::new(EmbeddedRebuild::<D> {
            index: EmbeddedIndex { inner: Arc::clone(&self.inner), kind: PhantomData },
            finished: false,
            _gate: gate,
        }))
    }
}

struct EmbeddedRebuild<D> {
    index: EmbeddedIndex<D>,
    finished: bool,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

#[async_trait::async_trait]
impl<D: Document> Rebuild<D> for EmbeddedRebuild<D> {
    async fn add(&mut self, docs: Vec<D>) -> Result<(), SearchError> {
        self.index
            .blocking(move |inner| {
                let mut writer = inner.writer.lock().map_err(|_| SearchError::Poisoned)?;
                Ok(inner.add(&mut writer, &inner.fields, &docs)?)
            })
            .await
    }

    async fn finish(mut self: Box<Self>) -> Result<(), SearchError> {
        self.finished = true;
        // `write` commits what the rebuild added and rolls it all back on failure.
        self.index.blocking(|inner| inner.write(|_, _| Ok(()))).await
    }
}

impl<D> Drop for EmbeddedRebuild<D> {
    fn drop(&mut self) {
        if !self.finished
            && let Ok(mut writer) = self.index.inner.writer.lock()
            && let Err(error) = writer.rollback()
        {
            tracing::warn!(path = %self.index.inner.path.display(), %error, "search index rollback failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_distance_grows_with_word_length() {
        assert_eq!(typo_distance("sql"), 0);
        assert_eq!(typo_distance("clim"), 1);
        assert_eq!(typo_distance("pyhton"), 1);
        assert_eq!(typo_distance("statistcs"), 2);
    }

    #[test]
    fn analyzer_lowercases_and_folds() {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream("Café, Naïve PYTHON-3");
        let mut words = Vec::new();
        while let Some(token) = stream.next() {
            words.push(token.text.clone());
        }
        assert_eq!(words, ["cafe", "naive", "python", "3"]);
    }
}
