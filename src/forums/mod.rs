//! Forums (FRM-1): site-wide categories and one forum per course run, open
//! to the run's enrolled learners and its course staff. Threads have an
//! opening post and replies; a reply can carry one level of comments.
//!
//! Moderation: a user's first post waits for a moderator; once one of their
//! posts is approved, later ones appear at once (FRM-3). Anyone can report a
//! post; a report by a trusted author (or three by anyone) hides it until a
//! moderator decides; moderators hide, restore or delete posts, pin and lock
//! threads, endorse answers and ban from a forum. Each post keeps the author's IP address and
//! user agent, shown to moderators only (FRM-2). Peers only ever see
//! usernames (ACC-7), or "Anonymous" where the forum allows it.

pub mod attachments;
pub mod cache;
pub mod honor;
pub mod lifecycle;
pub mod routes;
pub mod search;
pub mod views;

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::Conn;
use crate::db::schema::{
    course_runs, courses, enrollments, forum_bans, forum_follows, forum_post_edits, forum_posts, forum_reads,
    forum_reports, forum_threads, forum_trusted, forum_votes, forums, users,
};
use crate::kernel::Role;
use crate::kernel::SessionUser;
use crate::learning::content::{check_text, markdown_options};
use crate::learning::model::{Course, Run};

pub mod status {
    pub const PENDING: &str = "pending";
    pub const VISIBLE: &str = "visible";
    pub const HIDDEN: &str = "hidden";
    pub const DELETED: &str = "deleted";
}

/// Threads per page and posts per page.
pub const THREADS_PER_PAGE: i64 = 25;
pub const POSTS_PER_PAGE: i64 = 50;
/// Links an author may put in a post before a moderator approved one of theirs.
pub const NEW_AUTHOR_LINKS: usize = 2;
/// Posts per author in any ten minutes.
pub const POSTS_PER_TEN_MINUTES: i64 = 10;
/// Open reports from different people that hide a post until a moderator
/// looks (one is enough from a trusted author).
pub const REPORTS_TO_HIDE: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ForumError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// A thread whose opening post this viewer may not see yet, and why.
    #[error("not shown yet")]
    Unseen(Unseen),
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

type FResult<T> = Result<T, ForumError>;

/// Why a thread's opening post is not shown to a reader who is neither its
/// author nor a moderator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// It waits for a moderator (a new author's first post, FRM-3).
    Pending,
    /// Reports hid it, or a moderator did, until a moderator decides.
    Hidden,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = forums)]
pub struct Forum {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub run_id: Option<i64>,
    pub allow_anonymous: bool,
    pub position: i32,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = forum_threads)]
pub struct Thread {
    pub id: i64,
    pub forum_id: i64,
    pub title: String,
    pub pinned: bool,
    pub locked: bool,
    pub lock_reason: Option<String>,
    pub last_post_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    /// Raised by the database with every change to what the thread's pages
    /// list (see `cache`).
    pub version: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = forum_posts)]
pub struct Post {
    pub id: i64,
    pub thread_id: i64,
    pub parent_id: Option<i64>,
    pub author_id: i64,
    pub anonymous: bool,
    pub author_erased: bool,
    pub body: String,
    pub body_html: String,
    pub status: String,
    pub endorsed: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
    pub edited_at: Option<NaiveDateTime>,
    pub vote_count: i64,
}

/// What a user may do in a forum.
pub struct Access {
    pub forum: Forum,
    pub course: Option<(Course, Run)>,
    pub moderator: bool,
    pub banned: bool,
}

fn site_moderator(user: &SessionUser) -> bool {
    user.is_staff() || user.has_role(Role::Moderator)
}

/// The columns of a `Standing`, selected over `forum_with_standing`.
macro_rules! standing {
    () => {
        (
            forum_bans::user_id.nullable(),
            Option::<Run>::as_select(),
            Option::<Course>::as_select(),
            enrollments::id.nullable(),
        )
    };
}

/// The forum and the user's standing in it; `NotFound` for a course forum
/// the user may not see (not revealing it exists).
pub fn access(conn: &mut Conn, user: &SessionUser, slug: &str, now: NaiveDateTime) -> FResult<Access> {
    // The forum, whether this person is banned from it and, for a course
    // forum, its run, its course and their enrollment in that run: one query.
    let found: Option<(Forum, Standing)> = crate::on_backend!(conn, |c| forum_with_standing(user.id, now)
        .filter(forums::slug.eq(slug))
        .select((Forum::as_select(), standing!(),))
        .first(c)
        .optional())?;
    let (forum, standing) = found.ok_or(ForumError::NotFound)?;
    decide(user, forum, standing)
}

/// A forum page's joins: the viewer's ban, the forum's run and course, and
/// the viewer's enrollment in that run.
type Standing = (Option<i64>, Option<Run>, Option<Course>, Option<i64>);

/// A forum with the viewer's ban, its run and course, and the viewer's
/// enrollment in that run if it still gives access (`Enrollment::has_access`).
/// Flat joins: SQLite would build the whole of a nested `course_runs JOIN
/// courses` before looking up this forum's run.
#[diesel::dsl::auto_type]
fn forum_with_standing(user_id: i64, now: NaiveDateTime) -> _ {
    let banned = forum_bans::forum_id.eq(forums::id).and(forum_bans::user_id.eq(user_id));
    let course = courses::id.eq(course_runs::course_id);
    let active: &'static str = crate::learning::model::EnrollmentStatus::Active.as_str();
    let enrolled = enrollments::run_id
        .nullable()
        .eq(forums::run_id)
        .and(enrollments::user_id.eq(user_id))
        .and(enrollments::status.eq(active))
        .and(enrollments::access_expires_at.is_null().or(enrollments::access_expires_at.gt(now)));
    forums::table
        .left_join(forum_bans::table.on(banned))
        .left_join(course_runs::table)
        .left_join(courses::table.on(course))
        .left_join(enrollments::table.on(enrolled))
}

/// Who may see the forum, and who moderates it: a course forum is for its
/// run's learners while their access lasts, its course staff and the site's
/// moderators.
fn decide(user: &SessionUser, forum: Forum, (ban, run, course, enrollment): Standing) -> FResult<Access> {
    let mut moderator = site_moderator(user);
    let course = match (forum.run_id, run.zip(course)) {
        (None, _) => None,
        (Some(_), None) => return Err(ForumError::NotFound),
        (Some(_), Some((run, course))) => {
            moderator |= crate::learning::service::can_author(user, course.member_id);
            if !moderator && enrollment.is_none() {
                return Err(ForumError::NotFound);
            }
            Some((course, run))
        }
    };
    Ok(Access { forum, course, moderator, banned: ban.is_some() })
}

/// A thread page's forum, the viewer's standing in it, the thread, whether
/// they follow it and the newest post they had seen (for
/// `mark_read_after`): one query.
pub fn thread_access(
    conn: &mut Conn,
    user: &SessionUser,
    slug: &str,
    thread_id: i64,
    now: NaiveDateTime,
) -> FResult<(Access, Thread, bool, Option<i64>)> {
    type Found = (Forum, Option<Thread>, Option<i64>, Option<i64>, Standing);
    let found: Option<Found> =
        crate::on_backend!(conn, |c| forum_with_standing(user.id, now)
            .left_join(
                forum_threads::table.on(forum_threads::forum_id.eq(forums::id).and(forum_threads::id.eq(thread_id))),
            )
            .left_join(
                forum_follows::table.on(forum_follows::thread_id.eq(thread_id).and(forum_follows::user_id.eq(user.id))),
            )
            .left_join(
                forum_reads::table.on(forum_reads::thread_id.eq(thread_id).and(forum_reads::user_id.eq(user.id)))
            )
            .filter(forums::slug.eq(slug))
            .select((
                Forum::as_select(),
                Option::<Thread>::as_select(),
                forum_follows::user_id.nullable(),
                forum_reads::last_post_id.nullable(),
                standing!(),
            ))
            .first(c)
            .optional())?;
    let (forum, thread, follow, seen, standing) = found.ok_or(ForumError::NotFound)?;
    let acc = decide(user, forum, standing)?;
    let thread = thread.ok_or(ForumError::NotFound)?;
    Ok((acc, thread, follow.is_some(), seen))
}

/// The forum of a course run, made on first need.
pub fn course_forum(conn: &mut Conn, course: &Course, run: &Run, now: NaiveDateTime) -> QueryResult<Forum> {
    if let Some(f) =
        forums::table.filter(forums::run_id.eq(run.id)).select(Forum::as_select()).first(conn).optional()?
    {
        return Ok(f);
    }
    let slug: String = format!("{}-{}", course.slug, run.run_key)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let slug = format!("course-{slug}-{}", run.id);
    diesel::insert_into(forums::table)
        .values((
            forums::slug.eq(&slug),
            forums::title.eq(format!("{} ({})", course.title, run.run_key)),
            forums::description.eq("Questions and discussion for this course run."),
            forums::run_id.eq(run.id),
            forums::allow_anonymous.eq(true),
            forums::position.eq(0),
            forums::created_at.eq(now),
        ))
        .execute(conn)?;
    forums::table.filter(forums::run_id.eq(run.id)).select(Forum::as_select()).first(conn)
}

/// A site-wide category; staff only (checked by the caller).
pub fn create_site_forum(
    conn: &mut Conn,
    slug: &str,
    title: &str,
    description: &str,
    now: NaiveDateTime,
) -> FResult<Forum> {
    let slug = slug.trim();
    if !crate::kernel::slug::valid_slug(slug) || slug.starts_with("course-") {
        return Err(ForumError::Invalid(
            "A forum's address has 2 to 60 lowercase letters, digits and hyphens, and does not start with “course-”."
                .into(),
        ));
    }
    // These are pages under /forums/ already.
    if ["search", "moderation", "moderators", "posts", "images"].contains(&slug) {
        return Err(ForumError::Invalid(format!("“{slug}” is the address of a page of the forums; choose another.")));
    }
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 120 {
        return Err(ForumError::Invalid("Give the forum a title of at most 120 characters.".into()));
    }
    let position: i32 = forums::table.filter(forums::run_id.is_null()).count().get_result::<i64>(conn)? as i32;
    let inserted = diesel::insert_into(forums::table)
        .values((
            forums::slug.eq(slug),
            forums::title.eq(title),
            forums::description.eq(description.trim()),
            forums::run_id.eq(None::<i64>),
            forums::allow_anonymous.eq(false),
            forums::position.eq(position),
            forums::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ForumError::Invalid("A forum with this address exists already.".into()));
        }
        other => other.map(|_| ())?,
    };
    Ok(forums::table.filter(forums::slug.eq(slug)).select(Forum::as_select()).first(conn)?)
}

pub fn site_forums(conn: &mut Conn) -> QueryResult<Vec<Forum>> {
    forums::table.filter(forums::run_id.is_null()).order(forums::position.asc()).select(Forum::as_select()).load(conn)
}

/// The course forums of the runs a user is enrolled in, made on first need.
pub fn my_course_forums(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<Forum>> {
    let runs: Vec<(Run, Course)> = enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(enrollments::user_id.eq(user_id))
        .filter(enrollments::status.eq(crate::learning::model::EnrollmentStatus::Active.as_str()))
        .select((Run::as_select(), Course::as_select()))
        .load(conn)?;
    runs.iter().map(|(r, c)| course_forum(conn, c, r, now)).collect()
}

fn is_trusted(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    Ok(forum_trusted::table.find(user_id).count().get_result::<i64>(conn)? > 0)
}

/// What someone writes, with where it came from.
pub struct Writing<'a> {
    pub body: &'a str,
    pub anonymous: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// An image attached to the post, re-encoded already.
    pub image: Option<attachments::Upload<'a>>,
}

/// A post's Markdown as the HTML its readers see: sanitised, and with every
/// image from another site turned into a link to it (its alt text as the
/// link's text). The site's Content-Security-Policy would block such an
/// image anyway (`img-src 'self'`), leaving a broken picture; a link keeps
/// what the author meant and tells the reader where it points. Images on
/// the site itself (an attachment's address) stay images.
pub fn render_post(markdown: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd, html};
    if let Err(limit) = check_text(markdown) {
        return format!("<p class=\"notice\" role=\"note\">This text is not shown. {limit}</p>");
    }
    let mut remote = Vec::new();
    let events = Parser::new_ext(markdown, markdown_options()).map(|event| match event {
        Event::Start(Tag::Image { link_type, dest_url, title, id }) if is_remote(&dest_url) => {
            remote.push(true);
            Event::Start(Tag::Link { link_type, dest_url, title, id })
        }
        Event::Start(Tag::Image { .. }) => {
            remote.push(false);
            event
        }
        Event::End(TagEnd::Image) if remote.pop() == Some(true) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    ammonia::Builder::default().link_rel(Some("noopener noreferrer nofollow")).clean(&out).to_string()
}

/// Whether an image address points away from the site: a scheme (`https:`,
/// `data:`…) or a network path (`//host/…`).
fn is_remote(dest: &str) -> bool {
    let dest = dest.trim();
    dest.starts_with("//") || url::Url::parse(dest).is_ok()
}

/// How many images from other sites a post's Markdown shows (as links, see
/// `render_post`): the author is told when they post.
pub fn remote_images(markdown: &str) -> usize {
    use pulldown_cmark::{Event, Parser, Tag};
    if check_text(markdown).is_err() {
        return 0;
    }
    Parser::new_ext(markdown, markdown_options())
        .filter(|e| matches!(e, Event::Start(Tag::Image { dest_url, .. }) if is_remote(dest_url)))
        .count()
}

fn links_in(markdown: &str) -> usize {
    markdown.matches("http://").count() + markdown.matches("https://").count() + markdown.matches("www.").count()
}

/// Checks a post before it is stored: size, spam guard, bans.
fn check_writing(
    conn: &mut Conn,
    acc: &Access,
    user: &SessionUser,
    w: &Writing<'_>,
    now: NaiveDateTime,
) -> FResult<()> {
    if acc.banned {
        return Err(ForumError::Forbidden("You can no longer post in this forum.".into()));
    }
    let body = w.body.trim();
    if body.is_empty() && w.image.is_none() {
        return Err(ForumError::Invalid("Write something first.".into()));
    }
    if body.chars().count() > 20_000 {
        return Err(ForumError::Invalid("A post can be at most 20,000 characters.".into()));
    }
    if w.anonymous && !acc.forum.allow_anonymous {
        return Err(ForumError::Invalid("This forum does not allow anonymous posts.".into()));
    }
    if acc.moderator {
        return Ok(());
    }
    let recent: i64 = forum_posts::table
        .filter(forum_posts::author_id.eq(user.id))
        .filter(forum_posts::created_at.gt(now - Duration::minutes(10)))
        .count()
        .get_result(conn)?;
    if recent >= POSTS_PER_TEN_MINUTES {
        return Err(ForumError::Invalid("You are posting very fast. Please wait a few minutes.".into()));
    }
    if !is_trusted(conn, user.id)? && links_in(body) > NEW_AUTHOR_LINKS {
        return Err(ForumError::Invalid(format!(
            "Until a moderator has approved one of your posts, a post may contain at most {NEW_AUTHOR_LINKS} links."
        )));
    }
    Ok(())
}

fn insert_post(
    conn: &mut Conn,
    acc: &Access,
    user: &SessionUser,
    thread_id: i64,
    parent_id: Option<i64>,
    w: &Writing<'_>,
    now: NaiveDateTime,
) -> FResult<(i64, &'static str)> {
    let status = if acc.moderator || is_trusted(conn, user.id)? { status::VISIBLE } else { status::PENDING };
    let body = w.body.trim();
    let id = diesel::insert_into(forum_posts::table)
        .values((
            forum_posts::thread_id.eq(thread_id),
            forum_posts::parent_id.eq(parent_id),
            forum_posts::author_id.eq(user.id),
            forum_posts::anonymous.eq(w.anonymous),
            forum_posts::author_erased.eq(false),
            forum_posts::body.eq(body),
            forum_posts::body_html.eq(render_post(body)),
            forum_posts::status.eq(status),
            forum_posts::endorsed.eq(false),
            forum_posts::ip.eq(&w.ip),
            forum_posts::user_agent.eq(&w.user_agent),
            forum_posts::created_at.eq(now),
        ))
        .returning(forum_posts::id)
        .get_result::<i64>(conn)?;
    if let Some(upload) = &w.image {
        attachments::attach(conn, id, upload, now)?;
    }
    if status == status::VISIBLE {
        diesel::update(forum_threads::table.find(thread_id)).set(forum_threads::last_post_at.eq(now)).execute(conn)?;
        notify_followers(conn, id)?;
        search::queue_index(conn, thread_id)?;
    }
    // Writing in a thread follows it.
    follow(conn, user.id, thread_id, true, now)?;
    Ok((id, status))
}

/// Starts a thread; returns its id and the opening post's status.
pub fn start_thread(
    conn: &mut Conn,
    acc: &Access,
    user: &SessionUser,
    title: &str,
    w: &Writing<'_>,
    now: NaiveDateTime,
) -> FResult<(i64, &'static str)> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ForumError::Invalid("Give the thread a title of at most 200 characters.".into()));
    }
    check_writing(conn, acc, user, w, now)?;
    crate::db::transaction(conn, |conn| {
        let thread_id = diesel::insert_into(forum_threads::table)
            .values((
                forum_threads::forum_id.eq(acc.forum.id),
                forum_threads::title.eq(title),
                forum_threads::pinned.eq(false),
                forum_threads::locked.eq(false),
                forum_threads::last_post_at.eq(now),
                forum_threads::created_at.eq(now),
            ))
            .returning(forum_threads::id)
            .get_result::<i64>(conn)?;
        let (_, status) = insert_post(conn, acc, user, thread_id, None, w, now)?;
        Ok((thread_id, status))
    })
}

pub fn thread(conn: &mut Conn, acc: &Access, thread_id: i64) -> FResult<Thread> {
    forum_threads::table
        .filter(forum_threads::id.eq(thread_id))
        .filter(forum_threads::forum_id.eq(acc.forum.id))
        .select(Thread::as_select())
        .first(conn)
        .optional()?
        .ok_or(ForumError::NotFound)
}

/// A reply to the thread, or a comment under a reply (`parent_id`).
pub fn reply(
    conn: &mut Conn,
    acc: &Access,
    user: &SessionUser,
    thread_id: i64,
    parent_id: Option<i64>,
    w: &Writing<'_>,
    now: NaiveDateTime,
) -> FResult<(i64, &'static str)> {
    let t = thread(conn, acc, thread_id)?;
    open_for_replies(acc, &t)?;
    if let Some(parent) = parent_id {
        let parent = post_in_thread(conn, thread_id, parent)?;
        takes_comments(conn, &parent)?;
    }
    check_writing(conn, acc, user, w, now)?;
    crate::db::transaction(conn, |conn| insert_post(conn, acc, user, thread_id, parent_id, w, now))
}

/// A locked thread takes replies from moderators only.
pub fn open_for_replies(acc: &Access, t: &Thread) -> FResult<()> {
    if acc.banned {
        return Err(ForumError::Forbidden("You can no longer post in this forum.".into()));
    }
    if t.locked && !acc.moderator {
        return Err(ForumError::Forbidden(match &t.lock_reason {
            Some(r) => format!("This thread is locked: {r}"),
            None => "This thread is locked.".into(),
        }));
    }
    Ok(())
}

/// Comments go one level deep, under a reply: not under the opening post,
/// not under another comment.
pub fn takes_comments(conn: &mut Conn, post: &Post) -> FResult<()> {
    let opening: i64 = forum_posts::table
        .filter(forum_posts::thread_id.eq(post.thread_id))
        .order(forum_posts::id.asc())
        .select(forum_posts::id)
        .first(conn)?;
    if post.parent_id.is_some() || post.id == opening {
        return Err(ForumError::Invalid("Comments go under a reply, one level deep.".into()));
    }
    Ok(())
}

/// Readers report others' posts; their own they edit.
pub fn reportable(user: &SessionUser, post: &Post) -> FResult<()> {
    if post.author_id == user.id {
        return Err(ForumError::Invalid("You cannot report your own post; edit it instead.".into()));
    }
    Ok(())
}

/// The author edits a post, and moderators may.
pub fn editable(acc: &Access, user: &SessionUser, post: &Post) -> FResult<()> {
    if post.author_id != user.id && !acc.moderator {
        return Err(ForumError::Forbidden("Only the author or a moderator can edit a post.".into()));
    }
    Ok(())
}

/// The author as this viewer may see them: a username, never a real name (ACC-7).
pub fn author_of(conn: &mut Conn, post: &Post, moderator: bool) -> FResult<String> {
    let username: String = users::table.find(post.author_id).select(users::username).first(conn)?;
    Ok(author_label(post, &username, moderator))
}

fn post_in_thread(conn: &mut Conn, thread_id: i64, post_id: i64) -> FResult<Post> {
    forum_posts::table
        .filter(forum_posts::id.eq(post_id))
        .filter(forum_posts::thread_id.eq(thread_id))
        .select(Post::as_select())
        .first(conn)
        .optional()?
        .ok_or(ForumError::NotFound)
}

/// The post and its forum access, for actions addressed by post id.
pub fn post_access(conn: &mut Conn, user: &SessionUser, post_id: i64, now: NaiveDateTime) -> FResult<(Post, Access)> {
    let found: Option<(Post, String)> = forum_posts::table
        .inner_join(forum_threads::table.inner_join(forums::table))
        .filter(forum_posts::id.eq(post_id))
        .select((Post::as_select(), forums::slug))
        .first(conn)
        .optional()?;
    let (post, slug) = found.ok_or(ForumError::NotFound)?;
    let acc = access(conn, user, &slug, now)?;
    let visible = post.status == status::VISIBLE || acc.moderator || post.author_id == user.id;
    if !visible || post.status == status::DELETED && !acc.moderator {
        return Err(ForumError::NotFound);
    }
    Ok((post, acc))
}

/// How a post's author is shown to this viewer: usernames only (ACC-7).
fn author_label(post: &Post, username: &str, moderator: bool) -> String {
    byline(post.author_erased, post.anonymous, username, moderator)
}

/// How a post's author is named to a reader (ACC-7: a username at most).
fn byline(author_erased: bool, anonymous: bool, username: &str, moderator: bool) -> String {
    if author_erased {
        "Former member".into()
    } else if anonymous && moderator {
        format!("{username} (anonymous to peers)")
    } else if anonymous {
        "Anonymous".into()
    } else {
        username.to_string()
    }
}

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

/// `t` as people read it, like `format("%e %b %Y %H:%M")` ("24 Nov 2026
/// 09:05") but written out directly: chrono parses the format string on
/// every call, and a thread page shows a time for each of its posts.
pub fn when(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{:>2} {} {:04} {:02}:{:02}", t.day(), MONTHS[t.month0() as usize % 12], t.year(), t.hour(), t.minute())
}

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
    pub created: String,
    pub edited_at: Option<NaiveDateTime>,
    /// Moderators only.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub history: Vec<String>,
    pub reports: i64,
    pub comments: Vec<PostView>,
}

impl Access {
    /// Whether this viewer sees a post that is not deleted: everyone the
    /// visible ones; authors also their own waiting and hidden ones (marked
    /// so), moderators all. Deleted posts are never read for a page.
    pub fn shows(&self, user: &SessionUser, visible: bool, author_id: i64) -> bool {
        visible || author_id == user.id || self.moderator
    }
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
            created: when(p.created_at),
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

/// Upvotes a post, or takes the vote back. A person cannot vote for their own post.
pub fn toggle_vote(conn: &mut Conn, user: &SessionUser, post: &Post, now: NaiveDateTime) -> FResult<bool> {
    if post.author_id == user.id {
        return Err(ForumError::Invalid("You cannot vote for your own post.".into()));
    }
    if post.status != status::VISIBLE {
        return Err(ForumError::Invalid("This post is not public.".into()));
    }
    let toggled = crate::db::transaction(conn, |conn| {
        let removed = diesel::delete(forum_votes::table.find((post.id, user.id))).execute(conn)?;
        if removed == 0 {
            diesel::insert_into(forum_votes::table)
                .values((
                    forum_votes::post_id.eq(post.id),
                    forum_votes::user_id.eq(user.id),
                    forum_votes::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        let change = if removed == 0 { 1 } else { -1 };
        diesel::update(forum_posts::table.find(post.id))
            .set(forum_posts::vote_count.eq(forum_posts::vote_count + change))
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(removed == 0)
    });
    match toggled {
        // A double click: the other request's upvote is in, and this one
        // rolled back without counting twice.
        Err(e) if crate::db::is_unique_violation(&e) => Ok(true),
        other => Ok(other?),
    }
}

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

/// The author (or a moderator) changes a post; the earlier text is kept for moderators.
pub fn edit(
    conn: &mut Conn,
    acc: &Access,
    user: &SessionUser,
    post: &Post,
    body: &str,
    now: NaiveDateTime,
) -> FResult<()> {
    editable(acc, user, post)?;
    let w = Writing { body, anonymous: post.anonymous, ip: None, user_agent: None, image: None };
    check_writing(conn, acc, user, &w, now)?;
    crate::db::transaction(conn, |conn| {
        diesel::insert_into(forum_post_edits::table)
            .values((
                forum_post_edits::post_id.eq(post.id),
                forum_post_edits::editor_id.eq(user.id),
                forum_post_edits::body.eq(&post.body),
                forum_post_edits::created_at.eq(now),
            ))
            .execute(conn)?;
        diesel::update(forum_posts::table.find(post.id))
            .set((
                forum_posts::body.eq(body.trim()),
                forum_posts::body_html.eq(render_post(body.trim())),
                forum_posts::edited_at.eq(now),
            ))
            .execute(conn)?;
        if post.status == status::VISIBLE {
            search::queue_index(conn, post.thread_id)?;
        }
        Ok(())
    })
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

/// The erasure hook (FRM-4): an erased user's posts stay in their threads
/// under a former-member placeholder, their bodies blanked when `blank`,
/// and the network details are dropped. Returns how many posts it changed.
pub fn erase_author(conn: &mut Conn, user_id: i64, blank: bool) -> QueryResult<usize> {
    crate::db::transaction(conn, |conn| {
        let target = forum_posts::table.filter(forum_posts::author_id.eq(user_id));
        let n = diesel::update(target)
            .set((
                forum_posts::author_erased.eq(true),
                forum_posts::ip.eq(None::<String>),
                forum_posts::user_agent.eq(None::<String>),
            ))
            .execute(conn)?;
        if blank {
            diesel::update(forum_posts::table.filter(forum_posts::author_id.eq(user_id)))
                .set((
                    forum_posts::body.eq("[removed at the author's request]"),
                    forum_posts::body_html.eq("<p>[removed at the author's request]</p>"),
                ))
                .execute(conn)?;
            let ids: Vec<i64> =
                forum_posts::table.filter(forum_posts::author_id.eq(user_id)).select(forum_posts::id).load(conn)?;
            diesel::delete(forum_post_edits::table.filter(forum_post_edits::post_id.eq_any(&ids))).execute(conn)?;
            // Their images go with their words (the files are deleted by
            // the lifecycle hook, which has the blob store).
            attachments::detach_all_of_author(conn, user_id)?;
            // A title often names its author's question in their own words:
            // the threads they opened lose it with the posts. The search
            // documents are rebuilt below, from the blanked title.
            let opened = threads_opened_by(conn, user_id)?;
            diesel::update(forum_threads::table.filter(forum_threads::id.eq_any(&opened)))
                .set(forum_threads::title.eq("[removed at the author's request]"))
                .execute(conn)?;
            search::queue_index_of_posts(conn, &ids)?;
        }
        // Their upvotes go, and with them what they added to each post's count.
        let voted = forum_votes::table.filter(forum_votes::user_id.eq(user_id)).select(forum_votes::post_id);
        diesel::update(forum_posts::table.filter(forum_posts::id.eq_any(voted)))
            .set(forum_posts::vote_count.eq(forum_posts::vote_count - 1))
            .execute(conn)?;
        diesel::delete(forum_votes::table.filter(forum_votes::user_id.eq(user_id))).execute(conn)?;
        diesel::delete(forum_trusted::table.filter(forum_trusted::user_id.eq(user_id))).execute(conn)?;
        Ok(n)
    })
}

/// The threads whose opening post (their first post without a parent) is the user's.
fn threads_opened_by(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<i64>> {
    let candidates: Vec<i64> = forum_posts::table
        .filter(forum_posts::author_id.eq(user_id))
        .filter(forum_posts::parent_id.is_null())
        .select(forum_posts::thread_id)
        .distinct()
        .load(conn)?;
    let mut opened = Vec::new();
    for thread in candidates {
        let opener: i64 = forum_posts::table
            .filter(forum_posts::thread_id.eq(thread))
            .filter(forum_posts::parent_id.is_null())
            .order(forum_posts::id.asc())
            .select(forum_posts::author_id)
            .first(conn)?;
        if opener == user_id {
            opened.push(thread);
        }
    }
    Ok(opened)
}

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
fn notify_followers(conn: &mut Conn, post_id: i64) -> QueryResult<()> {
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

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        honor::form,
        honor::submit,
        honor::list,
        honor::update,
        routes::index,
        routes::create,
        routes::course_forum,
        routes::queue,
        routes::search_all,
        routes::search_forum,
        routes::forum,
        routes::start_thread,
        routes::thread,
        routes::reply,
        routes::post_action,
        routes::post_link,
        routes::image,
        routes::vote,
        routes::report,
        routes::edit,
        routes::moderate,
        routes::thread_settings,
        routes::follow,
        routes::appoint_moderator,
        routes::remove_moderator,
    ]
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    #[test]
    fn when_reads_like_the_strftime_format_it_replaces() {
        for (y, m, d, h, min) in
            [(2026, 11, 24, 9, 5), (2026, 1, 1, 0, 0), (1999, 12, 31, 23, 59), (2030, 6, 15, 12, 30)]
        {
            let t = NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 7).unwrap();
            assert_eq!(super::when(t), t.format("%e %b %Y %H:%M").to_string());
        }
    }
}
