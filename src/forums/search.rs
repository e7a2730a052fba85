//! Forum search (FRM-1) through the `SearchIndex` trait, so it runs on the
//! embedded index by default and on Meilisearch in production. The index
//! holds one document per thread: its title and the Markdown of its visible
//! posts, and nothing about who wrote them. Anything that changes what a
//! thread shows queues an `index_forum_thread` job; the worker rebuilds the
//! thread's document from the database, or removes it when the thread has no
//! visible opening post. Hits are checked against the database again, so an
//! index that has not caught up yet never shows anyone a thread they may not
//! read.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::{Forum, Thread, site_moderator, status};
use crate::db::Conn;
use crate::db::schema::{course_runs, courses, forum_posts, forum_threads, forums};
use crate::kernel::SessionUser;
use crate::search::ThreadDocument;

pub const INDEX_THREAD: &str = "index_forum_thread";
/// Hits asked of the index per search.
pub const MAX_HITS: usize = 50;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Characters of context around the first matching word.
const EXCERPT_CHARS: usize = 220;

/// Queues a rebuild of the thread's search document.
pub fn queue_index(conn: &mut Conn, thread_id: i64) -> QueryResult<()> {
    let payload = json!({ "thread_id": thread_id });
    crate::jobs::enqueue_with_attempts(conn, INDEX_THREAD, &payload, crate::search::INDEX_JOB_MAX_ATTEMPTS).map(drop)
}

/// Queues a rebuild of every thread these posts are in.
pub fn queue_index_of_posts(conn: &mut Conn, post_ids: &[i64]) -> QueryResult<()> {
    let mut threads: Vec<i64> = forum_posts::table
        .filter(forum_posts::id.eq_any(post_ids))
        .select(forum_posts::thread_id)
        .distinct()
        .load(conn)?;
    threads.sort_unstable();
    threads.into_iter().try_for_each(|t| queue_index(conn, t))
}

/// Visible posts of the threads, oldest first: (thread, post id, body).
fn visible_posts(conn: &mut Conn, thread_ids: &[i64]) -> QueryResult<Vec<(i64, i64, String)>> {
    forum_posts::table
        .filter(forum_posts::thread_id.eq_any(thread_ids))
        .filter(forum_posts::status.eq(status::VISIBLE))
        .order(forum_posts::id.asc())
        .select((forum_posts::thread_id, forum_posts::id, forum_posts::body))
        .load(conn)
}

/// The opening post of each thread: its first post without a parent.
fn opening_posts(conn: &mut Conn, thread_ids: &[i64]) -> QueryResult<HashMap<i64, i64>> {
    let rows: Vec<(i64, Option<i64>)> = forum_posts::table
        .filter(forum_posts::thread_id.eq_any(thread_ids))
        .filter(forum_posts::parent_id.is_null())
        .group_by(forum_posts::thread_id)
        .select((forum_posts::thread_id, diesel::dsl::min(forum_posts::id)))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(thread, post)| post.map(|p| (thread, p))).collect())
}

/// Runs an `index_forum_thread` job: the thread's document is rebuilt from
/// the database, or removed when the thread shows nothing.
pub async fn run_index_thread(
    db: crate::db::Db,
    forum_search: std::sync::Arc<dyn crate::search::SearchIndex<ThreadDocument>>,
    job: crate::jobs::Run,
) -> Result<(), String> {
    let payload = job.payload;
    let id = payload["thread_id"].as_i64().ok_or("payload has no thread_id")?;
    let doc =
        db.run(move |conn| document(conn, id).map_err(crate::db::DbError::from)).await.map_err(|e| e.to_string())?;
    match doc {
        Some(doc) => forum_search.upsert(vec![doc]).await.map_err(|e| e.to_string()),
        None => forum_search.remove(id).await.map_err(|e| e.to_string()),
    }
}

/// The thread's search document, or `None` when it should not be found:
/// the thread is gone or its opening post is not visible.
pub fn document(conn: &mut Conn, thread_id: i64) -> QueryResult<Option<ThreadDocument>> {
    let Some(thread) = forum_threads::table.find(thread_id).select(Thread::as_select()).first(conn).optional()? else {
        return Ok(None);
    };
    let opening = opening_posts(conn, &[thread_id])?.get(&thread_id).copied();
    let posts = visible_posts(conn, &[thread_id])?;
    if opening.is_none_or(|o| !posts.iter().any(|(_, id, _)| *id == o)) {
        return Ok(None);
    }
    Ok(Some(ThreadDocument {
        id: thread.id,
        forum_id: thread.forum_id,
        title: thread.title,
        posts: posts.into_iter().map(|(_, _, body)| body).collect(),
    }))
}

pub fn all_thread_ids(conn: &mut Conn) -> QueryResult<Vec<i64>> {
    forum_threads::table.select(forum_threads::id).order(forum_threads::id.asc()).load(conn)
}

/// The forums a user may read: site forums, the forums of the runs they are
/// enrolled in, and those of courses they teach; every forum for site moderators.
pub fn readable_forums(conn: &mut Conn, user: &SessionUser, now: NaiveDateTime) -> QueryResult<Vec<Forum>> {
    if site_moderator(user) {
        return forums::table.order(forums::id.asc()).select(Forum::as_select()).load(conn);
    }
    let mut readable = super::site_forums(conn)?;
    readable.extend(super::my_course_forums(conn, user.id, now)?);
    if user.roles.iter().any(|(_, scope)| scope.starts_with("member:")) {
        let taught: Vec<(Forum, i64)> = forums::table
            .inner_join(course_runs::table.inner_join(courses::table))
            .select((Forum::as_select(), courses::member_id))
            .load(conn)?;
        readable.extend(
            taught
                .into_iter()
                .filter(|(_, member)| crate::learning::service::can_author(user, *member))
                .map(|(forum, _)| forum),
        );
    }
    readable.sort_by_key(|f| f.id);
    readable.dedup_by_key(|f| f.id);
    Ok(readable)
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub thread_id: i64,
    pub title: String,
    pub forum_slug: String,
    pub forum_title: String,
    /// Plain Markdown around the first word of the query found in the thread.
    pub excerpt: String,
}

/// Turns the index's thread ids into results, in the index's order, keeping
/// only threads in `readable` whose opening post is visible now.
pub fn hits(conn: &mut Conn, ids: &[i64], readable: &[Forum], query: &str) -> QueryResult<Vec<Hit>> {
    let forums: HashMap<i64, &Forum> = readable.iter().map(|f| (f.id, f)).collect();
    let threads: HashMap<i64, Thread> = forum_threads::table
        .filter(forum_threads::id.eq_any(ids))
        .select(Thread::as_select())
        .load(conn)?
        .into_iter()
        .filter(|t| forums.contains_key(&t.forum_id))
        .map(|t| (t.id, t))
        .collect();
    let found: Vec<i64> = ids.iter().copied().filter(|id| threads.contains_key(id)).collect();
    let opening = opening_posts(conn, &found)?;
    let mut bodies: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for (thread, post, body) in visible_posts(conn, &found)? {
        bodies.entry(thread).or_default().push((post, body));
    }
    let words: Vec<String> =
        query.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3).map(str::to_lowercase).collect();
    Ok(found
        .iter()
        .filter_map(|id| {
            let thread = &threads[id];
            let posts = bodies.get(id)?;
            let first = opening.get(id)?;
            if !posts.iter().any(|(post, _)| post == first) {
                return None;
            }
            let forum = forums[&thread.forum_id];
            Some(Hit {
                thread_id: thread.id,
                title: thread.title.clone(),
                forum_slug: forum.slug.clone(),
                forum_title: forum.title.clone(),
                excerpt: excerpt(posts.iter().map(|(_, body)| body.as_str()), &words),
            })
        })
        .collect())
}

/// About `EXCERPT_CHARS` characters of the first body holding one of `words`
/// (lowercase), starting a little before the word; the first body's start
/// when none does (a typo or prefix match).
fn excerpt<'a>(mut bodies: impl Iterator<Item = &'a str> + Clone, words: &[String]) -> String {
    let found = bodies.clone().find_map(|body| {
        let lower = body.to_lowercase();
        // Lowercasing can change lengths; only use a match when it maps back exactly.
        (lower.len() == body.len())
            .then(|| words.iter().filter_map(|w| lower.find(w.as_str())).min().map(|at| (body, at)))
            .flatten()
    });
    let (body, at) = match found {
        Some(hit) => hit,
        None => (bodies.next().unwrap_or_default(), 0),
    };
    // Up to 60 characters of lead-in.
    let start = body[..at].char_indices().rev().take(60).last().map_or(at, |(i, _)| i);
    let text: String = body[start..].chars().take(EXCERPT_CHARS).collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut = body[start..].chars().count() > EXCERPT_CHARS;
    format!("{}{}{}", if start > 0 { "…" } else { "" }, text, if cut { "…" } else { "" })
}

/// Rebuilds the forum search index from the threads, beside the live one
/// (`lyceum search reindex`); returns how many were indexed.
pub async fn reindex(
    db: &crate::db::Db,
    index: &std::sync::Arc<dyn crate::search::SearchIndex<crate::search::ThreadDocument>>,
    progress: impl FnMut(u64, u64),
) -> Result<u64, crate::search::reindex::ReindexError> {
    let ids = db.run(|conn| all_thread_ids(conn).map_err(crate::db::DbError::from)).await?;
    crate::search::reindex::rebuild(db, index, ids, document, progress).await
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn excerpt_starts_near_the_first_matching_word() {
        let long = format!("{} photosynthesis needs light {}", "word ".repeat(40), "more ".repeat(80));
        let text = excerpt([long.as_str()].into_iter(), &["photosynthesis".into()]);
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert!(text.contains("photosynthesis needs light"), "{text}");
        assert!(text.chars().count() <= 222, "{}", text.chars().count());
    }

    #[test]
    fn excerpt_falls_back_to_the_first_body() {
        assert_eq!(excerpt(["Short  opening\npost", "reply"].into_iter(), &["zzz".into()]), "Short opening post");
        assert_eq!(excerpt(["Ünïcode first", "then Café"].into_iter(), &["café".into()]), "then Café");
    }
}
