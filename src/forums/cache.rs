//! The posts of thread pages, kept across requests and checked against the
//! database on every one.
//!
//! Every thread has a `version` that database triggers raise in the same
//! transaction as any change to what its pages list: a post added, edited,
//! voted on, moderated or deleted, or an author's username or avatar changed
//! (migration 000031). A page reads the thread with its version, as it must
//! anyway for access, and takes the posts from here when nothing changed
//! since they were read; otherwise it reads them again. The version is read
//! before the posts, so what is kept under a version is never older than it.
//!
//! What is kept is the same for every viewer: the thread's top-level posts
//! (for paging), and for each page the posts in its range with their authors,
//! pending and hidden ones included. Each request filters them for its viewer
//! (`Access::shows`), and reads the viewer's own votes from the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{forum_posts, profiles, users};

/// A post as a thread page lists it: all but its Markdown source.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = forum_posts)]
pub struct Listed {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub author_id: i64,
    pub anonymous: bool,
    pub author_erased: bool,
    pub body_html: String,
    pub status: String,
    pub endorsed: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
    pub edited_at: Option<NaiveDateTime>,
    pub vote_count: i64,
}

/// A listed post with its author's username and avatar, and its images.
#[derive(Debug, Clone)]
pub struct Row {
    pub post: Listed,
    pub username: String,
    pub avatar: Option<String>,
    pub images: Vec<super::attachments::Attachment>,
}

/// A top-level post (the opening post or a reply), as paging needs it.
#[derive(Debug, Clone, Copy, Queryable)]
pub struct Top {
    pub id: i64,
    pub status_visible: bool,
    pub author_id: i64,
    /// Waiting for a moderator (else, when not visible, hidden).
    pub pending: bool,
}

/// One page's posts: the opening post, the replies with ids in `lo..=hi`
/// and their comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub opening: i64,
    pub lo: i64,
    pub hi: i64,
}

struct Kept {
    version: i64,
    read_at: Instant,
    top: Arc<Vec<Top>>,
    spans: Mutex<HashMap<Span, Arc<Vec<Row>>>>,
}

impl Kept {
    /// Kept for this version, and not for longer than `MAX_AGE`: a bound on
    /// what a change that bypassed the triggers (a database restored from a
    /// backup under a running site, triggers dropped by hand) could leave
    /// showing.
    fn serves(&self, version: i64) -> bool {
        self.version == version && self.read_at.elapsed() < MAX_AGE
    }
}

const MAX_AGE: Duration = Duration::from_secs(600);

/// What the cache may read before it starts over, in bytes of post HTML
/// (plus a fixed allowance per row). Replaced entries are not subtracted, so
/// this bounds what it holds at any time.
const BUDGET: usize = 64 << 20;
const ROW_BYTES: usize = 256;

/// The thread's top-level posts that are not deleted, oldest first, read now.
pub fn read_top(conn: &mut Conn, thread_id: i64) -> QueryResult<Vec<Top>> {
    crate::on_backend!(conn, |c| forum_posts::table
        .filter(forum_posts::thread_id.eq(thread_id))
        .filter(forum_posts::parent_id.is_null())
        .filter(forum_posts::status.ne(super::status::DELETED))
        .order(forum_posts::id.asc())
        .select((
            forum_posts::id,
            forum_posts::status.eq(super::status::VISIBLE),
            forum_posts::author_id,
            forum_posts::status.eq(super::status::PENDING),
        ))
        .load(c))
}

/// The kept posts of every thread, shared by the site's requests (managed
/// state; cheap to clone into a database closure).
#[derive(Clone, Default)]
pub struct ThreadPosts(Arc<Inner>);

#[derive(Default)]
struct Inner {
    kept: dashmap::DashMap<i64, Arc<Kept>>,
    bytes: AtomicUsize,
}

impl ThreadPosts {
    /// The thread's top-level posts that are not deleted, oldest first.
    pub fn top(&self, conn: &mut Conn, thread_id: i64, version: i64) -> QueryResult<Arc<Vec<Top>>> {
        if let Some(k) = self.0.kept.get(&thread_id).filter(|k| k.serves(version)) {
            return Ok(k.top.clone());
        }
        let top = read_top(conn, thread_id)?;
        let top = Arc::new(top);
        self.spend(top.len() * std::mem::size_of::<Top>());
        let fresh = Arc::new(Kept { version, read_at: Instant::now(), top: top.clone(), spans: Mutex::default() });
        // A request that read an older version does not replace a newer one.
        match self.0.kept.entry(thread_id) {
            dashmap::Entry::Occupied(mut e) if e.get().version <= version => {
                e.insert(fresh);
            }
            dashmap::Entry::Occupied(_) => {}
            dashmap::Entry::Vacant(e) => {
                e.insert(fresh);
            }
        }
        Ok(top)
    }

    /// The posts of one page of the thread that are not deleted, oldest first.
    pub fn span(&self, conn: &mut Conn, thread_id: i64, version: i64, span: Span) -> QueryResult<Arc<Vec<Row>>> {
        let kept = self.0.kept.get(&thread_id).filter(|k| k.serves(version)).map(|k| k.clone());
        if let Some(rows) = kept.as_ref().and_then(|k| k.spans.lock().ok()?.get(&span).cloned()) {
            return Ok(rows);
        }
        let Span { opening, lo, hi } = span;
        let rows: Vec<(Listed, String, Option<String>)> = crate::on_backend!(conn, |c| forum_posts::table
            .inner_join(users::table)
            .left_join(profiles::table.on(profiles::user_id.eq(forum_posts::author_id)))
            .filter(forum_posts::thread_id.eq(thread_id))
            .filter(forum_posts::status.ne(super::status::DELETED))
            .filter(
                forum_posts::id
                    .eq(opening)
                    .or(forum_posts::parent_id.is_null().and(forum_posts::id.between(lo, hi)))
                    .or(forum_posts::parent_id.between(lo, hi)),
            )
            .order(forum_posts::id.asc())
            .select((Listed::as_select(), users::username, profiles::avatar_key.nullable()))
            .load(c))?;
        // The page's images, in one more query (attached with the post, in
        // the transaction that raised the version).
        let ids: Vec<i64> = rows.iter().map(|(p, ..)| p.id).collect();
        let mut images = super::attachments::of_posts(conn, &ids)?;
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(post, username, avatar)| Row {
                images: images.remove(&post.id).unwrap_or_default(),
                post,
                username,
                avatar,
            })
            .collect();
        let rows = Arc::new(rows);
        if let Some(kept) = kept {
            self.spend(rows.iter().map(|r| r.post.body_html.len() + ROW_BYTES).sum());
            if let Ok(mut spans) = kept.spans.lock() {
                spans.insert(span, rows.clone());
            }
        }
        Ok(rows)
    }

    /// Counts what is about to be kept; past the budget, starts over.
    fn spend(&self, bytes: usize) {
        if self.0.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > BUDGET {
            self.0.kept.clear();
            self.0.bytes.store(bytes, Ordering::Relaxed);
        }
    }
}
