//! Following threads (with an email on each new visible post) and read
//! marks (which threads have posts a person has not seen).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{Forum, Post, Thread, status};
use super::writing::author_label;
use crate::db::Conn;
use crate::db::schema::{forum_follows, forum_posts, forum_reads, forum_threads, forums, users};

/// Follows (or stops following) a thread.
pub fn follow(conn: &mut Conn, user_id: i64, thread_id: i64, on: bool, now: NaiveDateTime) -> QueryResult<()> {
    let exists = forum_follows::table.find((user_id, thread_id)).count().get_result::<i64>(conn)? > 0;
    if on && !exists {
        diesel::insert_into(forum_follows::table)
            .values((
                forum_follows::user_id.eq(user_id),
                forum_follows::thread_id.eq(thread_id),
                forum_follows::created_at.eq(now),
            ))
            .execute(conn)?;
    } else if !on && exists {
        diesel::delete(forum_follows::table.find((user_id, thread_id))).execute(conn)?;
    }
    Ok(())
}

/// Queues an email about a newly visible post to everyone following its
/// thread but its author. The mail names the author as peers see them.
pub(super) fn notify_followers(conn: &mut Conn, post_id: i64) -> QueryResult<()> {
    let (post, username, thread, forum): (Post, String, Thread, Forum) = forum_posts::table
        .inner_join(users::table)
        .inner_join(forum_threads::table.inner_join(forums::table))
        .filter(forum_posts::id.eq(post_id))
        .select((Post::as_select(), users::username, Thread::as_select(), Forum::as_select()))
        .first(conn)?;
    let followers: Vec<(i64, String)> = forum_follows::table
        .inner_join(users::table)
        .filter(forum_follows::thread_id.eq(thread.id))
        .filter(forum_follows::user_id.ne(post.author_id))
        .filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()))
        .select((users::id, users::email))
        .load(conn)?;
    let author = author_label(&post, &username, false);
    for (_, email) in followers {
        crate::notify::enqueue_email(
            conn,
            &email,
            &format!("New reply in “{}”", thread.title),
            "forum_reply",
            serde_json::json!({
                "thread": thread.title, "forum": forum.title, "author": author,
                "path": format!("/forums/posts/{}", post.id),
            }),
        )?;
    }
    Ok(())
}

/// Remembers the newest post a person has seen in a thread.
pub fn mark_read(conn: &mut Conn, user_id: i64, thread_id: i64, last_post_id: i64) -> QueryResult<()> {
    let seen: Option<i64> =
        forum_reads::table.find((user_id, thread_id)).select(forum_reads::last_post_id).first(conn).optional()?;
    mark_read_after(conn, user_id, thread_id, seen, last_post_id)
}

/// `mark_read` when the caller already read the mark (`seen`).
pub fn mark_read_after(
    conn: &mut Conn,
    user_id: i64,
    thread_id: i64,
    seen: Option<i64>,
    last_post_id: i64,
) -> QueryResult<()> {
    let advance = |conn: &mut Conn| {
        diesel::update(forum_reads::table.find((user_id, thread_id)))
            .filter(forum_reads::last_post_id.lt(last_post_id))
            .set(forum_reads::last_post_id.eq(last_post_id))
            .execute(conn)
            .map(|_| ())
    };
    match seen {
        None => {
            // Two tabs opening the thread at once both find no row; the
            // second insert loses and only moves the mark forward. The
            // savepoint keeps a PostgreSQL transaction usable after it.
            let inserted = crate::db::transaction(conn, |conn| {
                diesel::insert_into(forum_reads::table)
                    .values((
                        forum_reads::user_id.eq(user_id),
                        forum_reads::thread_id.eq(thread_id),
                        forum_reads::last_post_id.eq(last_post_id),
                    ))
                    .execute(conn)
            });
            match inserted {
                Ok(_) => Ok(()),
                Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
                    advance(conn)
                }
                Err(e) => Err(e),
            }
        }
        Some(s) if s < last_post_id => advance(conn),
        Some(_) => Ok(()),
    }
}

/// Threads among `ids` with visible posts newer than what the person has seen.
pub fn unread(conn: &mut Conn, user_id: i64, ids: &[i64]) -> QueryResult<HashSet<i64>> {
    let newest: Vec<(i64, Option<i64>)> = forum_posts::table
        .filter(forum_posts::thread_id.eq_any(ids))
        .filter(forum_posts::status.eq(status::VISIBLE))
        .group_by(forum_posts::thread_id)
        .select((forum_posts::thread_id, diesel::dsl::max(forum_posts::id)))
        .load(conn)?;
    let seen: HashMap<i64, i64> = forum_reads::table
        .filter(forum_reads::user_id.eq(user_id))
        .filter(forum_reads::thread_id.eq_any(ids))
        .select((forum_reads::thread_id, forum_reads::last_post_id))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    Ok(newest
        .into_iter()
        .filter_map(|(t, max)| max.filter(|m| seen.get(&t).is_none_or(|s| s < m)).map(|_| t))
        .collect())
}
