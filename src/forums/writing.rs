//! Writing in a forum: threads, replies, comments and edits, with the checks
//! before a post is stored (size, spam guard, bans) and the Markdown readers
//! see; how an author is named to readers (ACC-7).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::access::Access;
use super::follows::{follow, notify_followers};
use super::model::{FResult, ForumError, NEW_AUTHOR_LINKS, POSTS_PER_TEN_MINUTES, Post, Thread, status};
use super::{attachments, search};
use crate::db::Conn;
use crate::db::schema::{forum_post_edits, forum_posts, forum_threads, forum_trusted, users};
use crate::kernel::SessionUser;
use crate::learning::content::{check_text, markdown_options};

pub(super) fn is_trusted(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
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

/// How a post's author is shown to this viewer: usernames only (ACC-7).
pub(super) fn author_label(post: &Post, username: &str, moderator: bool) -> String {
    byline(post.author_erased, post.anonymous, username, moderator)
}

/// How a post's author is named to a reader (ACC-7: a username at most).
pub(super) fn byline(author_erased: bool, anonymous: bool, username: &str, moderator: bool) -> String {
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
