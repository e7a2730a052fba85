//! A thread's posts as a viewer sees them, one page of replies at a time.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::access::Access;
use super::model::{FResult, ForumError, POSTS_PER_PAGE, Thread, Unseen, status};
use super::writing::byline;
use super::{attachments, cache};
use crate::db::Conn;
use crate::db::schema::{forum_post_edits, forum_reports, forum_votes};
use crate::kernel::SessionUser;
use crate::web::format::Moment;

#[derive(Debug, Clone, Serialize, Hash)]
pub struct PostView {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub author: String,
    /// The username to link to, when the viewer may know who wrote it.
    pub author_profile: Option<String>,
    pub avatar: Option<String>,
    pub mine: bool,
    pub body_html: String,
    /// Images attached to the post, with their authors' descriptions.
    pub images: Vec<attachments::Attachment>,
    pub status: String,
    /// The status as flags, so the template tests a field, not a helper.
    pub pending: bool,
    pub hidden: bool,
    /// Others may upvote and report it: visible, and not the viewer's own.
    pub actionable: bool,
    /// A reply (not the opening post, not a comment): it takes comments.
    pub is_reply: bool,
    pub endorsed: bool,
    pub votes: i64,
    pub voted: bool,
    pub created_at: NaiveDateTime,
    /// `created_at` as people read it.
    pub created: Moment,
    pub edited_at: Option<NaiveDateTime>,
    /// Moderators only.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub history: Vec<String>,
    pub reports: i64,
    pub comments: Vec<PostView>,
}

/// The page of its thread on which this viewer sees the reply `top` (a
/// comment is on the page of its reply; the opening post heads every page).
pub fn page_of(conn: &mut Conn, acc: &Access, user: &SessionUser, thread_id: i64, top: i64) -> QueryResult<i64> {
    // Counts the opening post too, which is on no page of replies.
    let before = cache::read_top(conn, thread_id)?
        .iter()
        .filter(|t| t.id < top && acc.shows(user, t.status_visible, t.author_id))
        .count() as i64;
    Ok(if before == 0 { 1 } else { (before - 1) / POSTS_PER_PAGE + 1 })
}

/// The thread's posts a viewer may see: the opening post, then replies with
/// their comments, oldest first, one page of replies at a time.
pub fn posts(
    conn: &mut Conn,
    kept: &cache::ThreadPosts,
    acc: &Access,
    user: &SessionUser,
    thread: &Thread,
    page: i64,
) -> FResult<(PostView, Vec<PostView>, i64)> {
    // The thread's posts come from `cache` while the thread is unchanged;
    // what this viewer sees of them (`Access::shows`) and which of them they
    // upvoted are decided here, on every request.
    let shown = |visible: bool, author_id: i64| acc.shows(user, visible, author_id);
    let top = kept.top(conn, thread.id, thread.version)?;
    // The opening post is the first top-level post that is not deleted; a
    // reader who may not see it yet is told why (FRM-3), not shown a bare
    // "not found".
    match top.first() {
        None => return Err(ForumError::NotFound),
        Some(t) if !shown(t.status_visible, t.author_id) => {
            return Err(ForumError::Unseen(if t.pending { Unseen::Pending } else { Unseen::Hidden }));
        }
        Some(_) => {}
    }
    let mut top_ids = top.iter().filter(|t| shown(t.status_visible, t.author_id)).map(|t| t.id);
    let Some(opening_id) = top_ids.next() else { return Err(ForumError::NotFound) };
    let reply_ids: Vec<i64> = top_ids.collect();
    let pages = ((reply_ids.len() as i64 + POSTS_PER_PAGE - 1) / POSTS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let on_page: Vec<i64> =
        reply_ids.iter().skip(((page - 1) * POSTS_PER_PAGE) as usize).take(POSTS_PER_PAGE as usize).copied().collect();
    // The page is the opening post, a run of replies and their comments.
    // (An empty run is 1..=0.)
    let (lo, hi) = (on_page.first().copied().unwrap_or(1), on_page.last().copied().unwrap_or(0));
    let span = kept.span(conn, thread.id, thread.version, cache::Span { opening: opening_id, lo, hi })?;
    let rows: Vec<&cache::Row> =
        span.iter().filter(|r| shown(r.post.status == status::VISIBLE, r.post.author_id)).collect();
    // The viewer's upvotes among them (the counts are kept on the posts).
    let voted: HashSet<i64> = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => crate::on_backend!(conn, |c| forum_votes::table
            .filter(forum_votes::user_id.eq(user.id))
            .filter(forum_votes::post_id.between(first.post.id, last.post.id))
            .select(forum_votes::post_id)
            .load::<i64>(c))?
        .into_iter()
        .collect(),
        _ => HashSet::new(),
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.post.id).collect();
    let (mut history, mut reports): (HashMap<i64, Vec<String>>, HashMap<i64, i64>) = Default::default();
    if acc.moderator {
        for (post, body) in forum_post_edits::table
            .filter(forum_post_edits::post_id.eq_any(&ids))
            .order(forum_post_edits::id.asc())
            .select((forum_post_edits::post_id, forum_post_edits::body))
            .load::<(i64, String)>(conn)?
        {
            history.entry(post).or_default().push(body);
        }
        reports = forum_reports::table
            .filter(forum_reports::post_id.eq_any(&ids))
            .filter(forum_reports::status.eq("open"))
            .group_by(forum_reports::post_id)
            .select((forum_reports::post_id, diesel::dsl::count_star()))
            .load::<(i64, i64)>(conn)?
            .into_iter()
            .collect();
    }
    let view = |r: &cache::Row| {
        let (p, username) = (&r.post, &r.username);
        let mine = p.author_id == user.id && !p.author_erased;
        PostView {
            id: p.id,
            parent_id: p.parent_id,
            author: byline(p.author_erased, p.anonymous, username, acc.moderator),
            author_profile: (!p.author_erased && (!p.anonymous || acc.moderator)).then(|| username.clone()),
            avatar: r.avatar.clone().filter(|_| !p.author_erased && !p.anonymous),
            mine,
            pending: p.status == status::PENDING,
            hidden: p.status == status::HIDDEN,
            actionable: !mine && p.status == status::VISIBLE,
            is_reply: p.parent_id.is_none() && p.id != opening_id,
            votes: p.vote_count,
            voted: voted.contains(&p.id),
            ip: if acc.moderator { p.ip.clone() } else { None },
            user_agent: if acc.moderator { p.user_agent.clone() } else { None },
            history: history.remove(&p.id).unwrap_or_default(),
            reports: reports.get(&p.id).copied().unwrap_or(0),
            body_html: p.body_html.clone(),
            images: r.images.clone(),
            status: p.status.clone(),
            endorsed: p.endorsed,
            created: Moment(p.created_at),
            created_at: p.created_at,
            edited_at: p.edited_at,
            comments: Vec::new(),
        }
    };
    let views: Vec<PostView> = rows.into_iter().map(view).collect();
    let (mut opening, mut replies, mut comments) = (None, Vec::with_capacity(on_page.len()), Vec::new());
    for v in views {
        if v.id == opening_id {
            opening = Some(v);
        } else if v.parent_id.is_some() {
            comments.push(v);
        } else {
            replies.push(v);
        }
    }
    let opening = opening.ok_or(ForumError::NotFound)?;
    let at: HashMap<i64, usize> = replies.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for c in comments {
        if let Some(&i) = c.parent_id.and_then(|p| at.get(&p)) {
            replies[i].comments.push(c);
        }
    }
    Ok((opening, replies, pages))
}
