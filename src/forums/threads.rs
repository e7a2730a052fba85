//! A forum's list of threads, one page read in the database.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::access::Access;
use super::follows::unread;
use super::model::{THREADS_PER_PAGE, Thread, status};
use super::writing::byline;
use crate::db::Conn;
use crate::db::schema::{forum_posts, forum_threads, users};
use crate::kernel::SessionUser;

/// What the thread list reads of an opening post: who wrote it and whether
/// it is shown, never its body.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = forum_posts)]
struct Opening {
    anonymous: bool,
    author_erased: bool,
    status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadRow {
    pub id: i64,
    pub title: String,
    pub pinned: bool,
    pub locked: bool,
    pub author: String,
    pub replies: i64,
    pub pending: bool,
    pub unread: bool,
    pub last_post_at: NaiveDateTime,
}

/// The forum's threads a viewer may see, pinned first, newest activity
/// first; the number of pages.
///
/// One page is read in the database: threads in the order of the
/// `forum_threads_order` index, each joined to its opening post (its first
/// post without a parent: an index probe), until the page is full; no post
/// body is read. The number of threads is the forum's count less the few
/// whose opening post this viewer may not see, found through the status
/// index (all but a few posts are visible).
pub fn threads(conn: &mut Conn, acc: &Access, user: &SessionUser, page: i64) -> QueryResult<(Vec<ThreadRow>, i64)> {
    let opening = diesel::alias!(forum_posts as opening);
    let first_post = || {
        opening
            .filter(opening.field(forum_posts::thread_id).eq(forum_threads::id))
            .filter(opening.field(forum_posts::parent_id).is_null())
            .select(diesel::dsl::min(opening.field(forum_posts::id)))
            .single_value()
    };
    let total: i64 = forum_threads::table.filter(forum_threads::forum_id.eq(acc.forum.id)).count().get_result(conn)?;
    let in_forum = forum_threads::table
        .filter(forum_threads::id.eq(forum_posts::thread_id))
        .filter(forum_threads::forum_id.eq(acc.forum.id));
    let opens_its_thread = opening
        .filter(opening.field(forum_posts::thread_id).eq(forum_posts::thread_id))
        .filter(opening.field(forum_posts::parent_id).is_null())
        .select(diesel::dsl::min(opening.field(forum_posts::id)))
        .single_value();
    let mut unseen = forum_posts::table
        .filter(forum_posts::status.eq_any([status::PENDING, status::HIDDEN, status::DELETED]))
        .filter(forum_posts::parent_id.is_null())
        .filter(diesel::dsl::exists(in_forum))
        .filter(forum_posts::id.nullable().eq(opens_its_thread))
        .into_boxed();
    unseen = if acc.moderator {
        unseen.filter(forum_posts::status.eq(status::DELETED))
    } else {
        unseen.filter(diesel::dsl::not(forum_posts::author_id.eq(user.id).and(forum_posts::status.eq(status::PENDING))))
    };
    let unseen: i64 = unseen.count().get_result(conn)?;
    let pages = ((total - unseen).max(0) + THREADS_PER_PAGE - 1) / THREADS_PER_PAGE;
    let page = page.clamp(1, pages.max(1));

    let mut q = forum_threads::table
        .inner_join(forum_posts::table.inner_join(users::table))
        .filter(forum_threads::forum_id.eq(acc.forum.id))
        .filter(forum_posts::id.nullable().eq(first_post()))
        .into_boxed();
    q = if acc.moderator {
        q.filter(forum_posts::status.ne(status::DELETED))
    } else {
        q.filter(
            forum_posts::status
                .eq(status::VISIBLE)
                .or(forum_posts::author_id.eq(user.id).and(forum_posts::status.eq(status::PENDING))),
        )
    };
    let shown: Vec<(Thread, Opening, String)> = q
        .order((forum_threads::pinned.desc(), forum_threads::last_post_at.desc(), forum_threads::id.desc()))
        .limit(THREADS_PER_PAGE)
        .offset((page - 1) * THREADS_PER_PAGE)
        .select((Thread::as_select(), Opening::as_select(), users::username))
        .load(conn)?;
    let ids: Vec<i64> = shown.iter().map(|(t, _, _)| t.id).collect();
    let counts: HashMap<i64, i64> = forum_posts::table
        .filter(forum_posts::thread_id.eq_any(&ids))
        .filter(forum_posts::status.eq(status::VISIBLE))
        .group_by(forum_posts::thread_id)
        .select((forum_posts::thread_id, diesel::dsl::count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    let unread = unread(conn, user.id, &ids)?;
    let rows = shown
        .into_iter()
        .map(|(t, p, username)| ThreadRow {
            unread: unread.contains(&t.id),
            id: t.id,
            author: byline(p.author_erased, p.anonymous, &username, acc.moderator),
            replies: counts.get(&t.id).copied().unwrap_or(0).saturating_sub(1),
            pending: p.status == status::PENDING,
            title: t.title,
            pinned: t.pinned,
            locked: t.locked,
            last_post_at: t.last_post_at,
        })
        .collect();
    Ok((rows, pages.max(1)))
}
