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
    /// The title as HTML: escaped, the words the query matched in `<mark>`.
    pub title_html: String,
    pub forum_slug: String,
    pub forum_title: String,
    /// The text of the posts (their Markdown read as plain text) around the
    /// first word the query matched, as HTML: escaped, matches in `<mark>`.
    pub excerpt_html: String,
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
    let terms = Terms::of(query);
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
            let texts: Vec<String> = posts.iter().map(|(_, body)| plain_text(body)).collect();
            Some(Hit {
                thread_id: thread.id,
                title_html: highlight(&thread.title, &terms),
                title: thread.title.clone(),
                forum_slug: forum.slug.clone(),
                forum_title: forum.title.clone(),
                excerpt_html: excerpt(&texts, &terms),
            })
        })
        .collect())
}

/// The words of a query as the search backends match them: each word
/// (lowercase) matches a word of the text that is the same, or one typo away
/// when it has 5 letters or more, or two when it has 9 or more (Meilisearch's
/// default typo tolerance; the embedded index is as lenient); the last word
/// also matches as a prefix, as both backends search as one types.
struct Terms {
    words: Vec<String>,
}

impl Terms {
    fn of(query: &str) -> Terms {
        Terms { words: words(query).map(|(_, w)| w.to_lowercase()).filter(|w| !w.is_empty()).collect() }
    }

    fn matches(&self, word: &str) -> bool {
        let word = word.to_lowercase();
        let last = self.words.len().saturating_sub(1);
        self.words.iter().enumerate().any(|(i, term)| {
            let typos = match term.chars().count() {
                0..=4 => 0,
                5..=8 => 1,
                _ => 2,
            };
            word == *term
                || (i == last && term.chars().count() >= 2 && word.starts_with(term.as_str()))
                || (typos > 0 && strsim::damerau_levenshtein(&word, term) <= typos)
        })
    }
}

/// The words of a text (runs of letters and digits) with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// A post's Markdown as the plain text a reader sees: no markup, no link
/// addresses, an image as its description; blocks separated by spaces.
pub fn plain_text(markdown: &str) -> String {
    use pulldown_cmark::{Event, Parser, TagEnd};
    let mut out = String::with_capacity(markdown.len());
    for event in Parser::new(markdown) {
        match event {
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak | Event::Rule => out.push(' '),
            Event::End(
                TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item | TagEnd::CodeBlock | TagEnd::TableCell,
            ) => out.push(' '),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` as HTML: escaped, each word `terms` matches in `<mark>`.
fn highlight(text: &str, terms: &Terms) -> String {
    let mut html = String::with_capacity(text.len() + 32);
    let mut at = 0;
    for (start, word) in words(text) {
        if terms.matches(word) {
            html.push_str(&handlebars::html_escape(&text[at..start]));
            html.push_str("<mark>");
            html.push_str(&handlebars::html_escape(word));
            html.push_str("</mark>");
            at = start + word.len();
        }
    }
    html.push_str(&handlebars::html_escape(&text[at..]));
    html
}

/// About `EXCERPT_CHARS` characters of the first text holding a word the
/// query matches, starting a little before it, as highlighted HTML; the first
/// text's start when none does.
fn excerpt(texts: &[String], terms: &Terms) -> String {
    let found =
        texts.iter().find_map(|text| words(text).find(|(_, w)| terms.matches(w)).map(|(at, _)| (text.as_str(), at)));
    let (text, at) = match found {
        Some(hit) => hit,
        None => (texts.first().map_or("", String::as_str), 0),
    };
    // Up to 60 characters of lead-in, from the start of a word.
    let mut start = text[..at].char_indices().rev().take(60).last().map_or(at, |(i, _)| i);
    if start > 0 {
        start = text[start..].find(' ').map_or(start, |space| (start + space + 1).min(at));
    }
    let rest = &text[start..];
    let end = rest.char_indices().nth(EXCERPT_CHARS).map_or(rest.len(), |(i, _)| i);
    // Do not cut the last word in two.
    let end = if end < rest.len() { rest[..end].rfind(' ').filter(|&e| e > 0).unwrap_or(end) } else { end };
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        highlight(&rest[..end], terms),
        if end < rest.len() { "…" } else { "" }
    )
}

/// Rebuilds the forum search index from the threads, beside the live one
/// (`lyceum search reindex`); returns how many were indexed.
pub async fn reindex(
    db: &crate::db::Db,
    index: &std::sync::Arc<dyn crate::search::SearchIndex<crate::search::ThreadDocument>>,
    progress: impl FnMut(u64, u64),
) -> Result<u64, crate::search::reindex::ReindexError> {
    let ids = db.run(|conn| all_thread_ids(conn).map_err(crate::db::DbError::from)).await?;
    let jobs = crate::search::reindex::IndexJobs { kind: INDEX_THREAD, key: "thread_id" };
    crate::search::reindex::rebuild(db, index, ids, document, jobs, progress).await
}

#[cfg(test)]
mod tests {
    use super::{Terms, excerpt, highlight, plain_text};

    #[test]
    fn excerpt_starts_near_the_first_matching_word() {
        let long = format!("{} photosynthesis needs light {}", "word ".repeat(40), "more ".repeat(80));
        let text = excerpt(&[plain_text(&long)], &Terms::of("photosynthesis"));
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert!(text.contains("<mark>photosynthesis</mark> needs light"), "{text}");
        assert!(text.chars().count() <= 222 + "<mark></mark>".len(), "{}", text.chars().count());
    }

    #[test]
    fn excerpt_falls_back_to_the_first_body() {
        let texts = [plain_text("Short  opening\npost"), plain_text("reply")];
        assert_eq!(excerpt(&texts, &Terms::of("zzz")), "Short opening post");
        let texts = ["Ünïcode first".to_string(), "then Café".to_string()];
        assert_eq!(excerpt(&texts, &Terms::of("CAFÉ")), "then <mark>Café</mark>");
    }

    #[test]
    fn snippets_are_plain_escaped_text_with_the_matches_marked() {
        let md = "## Loops\n\nHow do **list comprehensions** differ from [generators](https://example.org/gen)? \
                  ![a diagram](/forums/images/3) `x<y` <script>alert(1)</script>";
        let text = plain_text(md);
        assert!(!text.contains("**") && !text.contains("](") && !text.contains("##"), "{text}");
        assert!(text.contains("list comprehensions differ from generators?") && text.contains("a diagram"), "{text}");
        // A typo (one letter changed), a prefix of the last word, and markup that stays text.
        let html = excerpt(&[text], &Terms::of("comprehenshions gen"));
        assert!(html.contains("<mark>comprehensions</mark>") && html.contains("<mark>generators</mark>"), "{html}");
        // Code stays text, escaped; inline HTML is markup, dropped (its text kept).
        assert!(html.contains("x&lt;y") && !html.contains("<script>") && html.contains("alert(1)"), "{html}");
        assert_eq!(highlight("Loops & <b>", &Terms::of("loops")), "<mark>Loops</mark> &amp; &lt;b&gt;");
        // Short words match exactly, not by typo.
        assert_eq!(highlight("cat cut", &Terms::of("cat dog")), "<mark>cat</mark> cut");
    }
}
