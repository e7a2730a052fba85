//! Moderation (FRM-3): reports by readers, moderators' decisions on posts,
//! pinning and locking threads, bans, and the queue of posts that wait.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::access::{Access, site_moderator};
use super::follows::notify_followers;
use super::model::{FResult, Forum, ForumError, Post, REPORTS_TO_HIDE, Thread, status};
use super::writing::{author_label, is_trusted, reportable};
use super::{attachments, search};
use crate::db::Conn;
use crate::db::schema::{
    course_runs, courses, forum_bans, forum_posts, forum_reports, forum_threads, forum_trusted, forums, users,
};
use crate::kernel::{Role, SessionUser};

/// A report by a reader; enough open reports hide the post until a moderator decides.
pub fn report(conn: &mut Conn, user: &SessionUser, post: &Post, reason: &str, now: NaiveDateTime) -> FResult<bool> {
    reportable(user, post)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(ForumError::Invalid("Say briefly what is wrong with this post.".into()));
    }
    let inserted = diesel::insert_into(forum_reports::table)
        .values((
            forum_reports::post_id.eq(post.id),
            forum_reports::reporter_id.eq(user.id),
            forum_reports::reason.eq(reason),
            forum_reports::status.eq("open"),
            forum_reports::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ForumError::Invalid("You have reported this post already.".into()));
        }
        other => other.map(|_| ())?,
    }
    let open: i64 = forum_reports::table
        .filter(forum_reports::post_id.eq(post.id))
        .filter(forum_reports::status.eq("open"))
        .count()
        .get_result(conn)?;
    // A report by someone the moderators trust hides the post at once;
    // otherwise it takes several. Moderators restore what was hidden wrongly.
    let trusted_reporter = is_trusted(conn, user.id)? || site_moderator(user);
    let hide = (trusted_reporter || open >= REPORTS_TO_HIDE) && post.status == status::VISIBLE;
    if hide {
        diesel::update(forum_posts::table.find(post.id)).set(forum_posts::status.eq(status::HIDDEN)).execute(conn)?;
        search::queue_index(conn, post.thread_id)?;
    }
    Ok(hide)
}

/// A moderator's decision on a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    Approve,
    Reject,
    Hide,
    Restore,
    Delete,
    Endorse,
    Unendorse,
    Dismiss,
}

impl Moderation {
    pub fn parse(s: &str) -> Option<Moderation> {
        Some(match s {
            "approve" => Moderation::Approve,
            "reject" => Moderation::Reject,
            "hide" => Moderation::Hide,
            "restore" => Moderation::Restore,
            "delete" => Moderation::Delete,
            "endorse" => Moderation::Endorse,
            "unendorse" => Moderation::Unendorse,
            "dismiss" => Moderation::Dismiss,
            _ => return None,
        })
    }
}

pub fn moderate(
    conn: &mut Conn,
    moderator: &SessionUser,
    post: &Post,
    m: Moderation,
    now: NaiveDateTime,
) -> FResult<()> {
    crate::db::transaction(conn, |conn| {
        let set_status = |conn: &mut Conn, s: &str| {
            diesel::update(forum_posts::table.find(post.id)).set(forum_posts::status.eq(s)).execute(conn)
        };
        let close_reports = |conn: &mut Conn, outcome: &str| {
            diesel::update(
                forum_reports::table
                    .filter(forum_reports::post_id.eq(post.id))
                    .filter(forum_reports::status.eq("open")),
            )
            .set((
                forum_reports::status.eq(outcome),
                forum_reports::decided_by.eq(moderator.id),
                forum_reports::decided_at.eq(now),
            ))
            .execute(conn)
        };
        match m {
            Moderation::Approve => {
                if post.status != status::PENDING {
                    return Err(ForumError::Invalid("Only a waiting post can be approved.".into()));
                }
                set_status(conn, status::VISIBLE)?;
                let trusted = is_trusted(conn, post.author_id)?;
                if !trusted {
                    diesel::insert_into(forum_trusted::table)
                        .values((
                            forum_trusted::user_id.eq(post.author_id),
                            forum_trusted::approved_by.eq(moderator.id),
                            forum_trusted::approved_at.eq(now),
                        ))
                        .execute(conn)?;
                }
                diesel::update(forum_threads::table.find(post.thread_id))
                    .set(forum_threads::last_post_at.eq(now))
                    .execute(conn)?;
                notify_followers(conn, post.id)?;
            }
            Moderation::Reject => {
                if post.status != status::PENDING {
                    return Err(ForumError::Invalid("Only a waiting post can be rejected.".into()));
                }
                set_status(conn, status::DELETED)?;
            }
            Moderation::Hide => {
                set_status(conn, status::HIDDEN)?;
                close_reports(conn, "upheld")?;
            }
            Moderation::Restore => {
                set_status(conn, status::VISIBLE)?;
                close_reports(conn, "dismissed")?;
            }
            Moderation::Delete => {
                set_status(conn, status::DELETED)?;
                close_reports(conn, "upheld")?;
            }
            Moderation::Dismiss => {
                close_reports(conn, "dismissed")?;
            }
            Moderation::Endorse | Moderation::Unendorse => {
                diesel::update(forum_posts::table.find(post.id))
                    .set(forum_posts::endorsed.eq(m == Moderation::Endorse))
                    .execute(conn)?;
            }
        }
        if matches!(m, Moderation::Approve | Moderation::Hide | Moderation::Restore | Moderation::Delete) {
            search::queue_index(conn, post.thread_id)?;
        }
        Ok(())
    })
}

/// Pins, unpins, locks (with a reason) or unlocks a thread.
pub fn set_thread(conn: &mut Conn, thread: &Thread, pinned: bool, locked: bool, reason: Option<&str>) -> FResult<()> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if locked && !thread.locked && reason.is_none() {
        return Err(ForumError::Invalid("Say why the thread is locked; readers will see it.".into()));
    }
    diesel::update(forum_threads::table.find(thread.id))
        .set((
            forum_threads::pinned.eq(pinned),
            forum_threads::locked.eq(locked),
            forum_threads::lock_reason.eq(if locked {
                reason.map(str::to_string).or(thread.lock_reason.clone())
            } else {
                None
            }),
        ))
        .execute(conn)?;
    Ok(())
}

/// Bars a user from posting in a forum.
pub fn ban(
    conn: &mut Conn,
    acc: &Access,
    by: &SessionUser,
    user_id: i64,
    reason: &str,
    now: NaiveDateTime,
) -> FResult<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ForumError::Invalid("Say why this person may no longer post here.".into()));
    }
    let already: i64 = forum_bans::table.find((acc.forum.id, user_id)).count().get_result(conn)?;
    if already == 0 {
        diesel::insert_into(forum_bans::table)
            .values((
                forum_bans::forum_id.eq(acc.forum.id),
                forum_bans::user_id.eq(user_id),
                forum_bans::reason.eq(reason),
                forum_bans::banned_by.eq(by.id),
                forum_bans::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub post_id: i64,
    pub forum: String,
    pub forum_slug: String,
    pub thread_id: i64,
    pub thread: String,
    pub author: String,
    pub author_id: i64,
    pub body_html: String,
    /// Its images: a moderator decides on them as on the text.
    pub images: Vec<attachments::Attachment>,
    pub status: String,
    pub reports: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Posts per page of the moderation queue.
pub const QUEUE_PAGE: i64 = 50;

/// One page of the moderation queue, oldest first, and how many posts wait
/// in all.
pub struct Queue {
    pub items: Vec<QueueItem>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

/// Waiting posts and reported posts in the forums this user moderates, one
/// page at a time: the page is read in the database (waiting posts through
/// the status index, reported ones through the open reports), and only the
/// shown posts' reports are read.
pub fn queue(conn: &mut Conn, user: &SessionUser, page: i64) -> QueryResult<Queue> {
    // Site moderators moderate every forum; course staff their members' course forums.
    let members: Option<Vec<i64>> = (!site_moderator(user)).then(|| {
        user.roles
            .iter()
            .filter(|(r, _)| matches!(r, Role::MemberAdmin | Role::Instructor | Role::CourseStaff))
            .filter_map(|(_, scope)| scope.strip_prefix("member:")?.parse().ok())
            .collect()
    });
    if members.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Queue { items: Vec::new(), total: 0, page: 1, pages: 1 });
    }
    let open_reports = forum_reports::table.filter(forum_reports::status.eq("open")).select(forum_reports::post_id);
    let waiting = || {
        let mut q = forum_posts::table
            .inner_join(users::table)
            .inner_join(forum_threads::table.inner_join(forums::table))
            .filter(forum_posts::status.ne(status::DELETED))
            .filter(forum_posts::status.eq(status::PENDING).or(forum_posts::id.eq_any(open_reports)))
            .into_boxed();
        if let Some(members) = &members {
            q = q.filter(
                forums::run_id.eq_any(
                    course_runs::table
                        .inner_join(courses::table)
                        .filter(courses::member_id.eq_any(members.clone()))
                        .select(course_runs::id.nullable()),
                ),
            );
        }
        q
    };
    let total: i64 = waiting().count().get_result(conn)?;
    let pages = ((total + QUEUE_PAGE - 1) / QUEUE_PAGE).max(1);
    let page = page.clamp(1, pages);
    let rows: Vec<(Post, String, Thread, Forum)> = waiting()
        .order(forum_posts::id.asc())
        .limit(QUEUE_PAGE)
        .offset((page - 1) * QUEUE_PAGE)
        .select((Post::as_select(), users::username, Thread::as_select(), Forum::as_select()))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(p, ..)| p.id).collect();
    let mut reported: HashMap<i64, Vec<String>> = HashMap::new();
    for (post, reason) in forum_reports::table
        .filter(forum_reports::status.eq("open"))
        .filter(forum_reports::post_id.eq_any(&ids))
        .order(forum_reports::id.asc())
        .select((forum_reports::post_id, forum_reports::reason))
        .load::<(i64, String)>(conn)?
    {
        reported.entry(post).or_default().push(reason);
    }
    let mut images = attachments::of_posts(conn, &ids)?;
    let items = rows
        .into_iter()
        .map(|(p, username, t, f)| QueueItem {
            reports: reported.remove(&p.id).unwrap_or_default(),
            post_id: p.id,
            forum: f.title,
            forum_slug: f.slug,
            thread_id: t.id,
            thread: t.title,
            author: author_label(&p, &username, true),
            author_id: p.author_id,
            body_html: p.body_html,
            images: images.remove(&p.id).unwrap_or_default(),
            status: p.status,
            ip: p.ip,
            user_agent: p.user_agent,
            created_at: p.created_at,
        })
        .collect();
    Ok(Queue { items, total, page, pages })
}
