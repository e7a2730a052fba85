//! Forum pages. A form that fails (empty post, too many links, locked
//! thread) is shown again with what was typed and the reason, status 422.

use std::sync::Arc;

use crate::web::trail::Trail;
use crate::web::upload::{ImageLimit, Upload as FileField};
use rocket::form::Form;
use rocket::http::{CookieJar, Status};
use rocket::{FromForm, State, get, post};

use super::attachments::{self, Upload};
use super::cache::ThreadPosts;
use super::views::{
    DraftView, ForumHead, ForumItem, ForumPage, IndexPage, ModeratorItem, PostBlock, PostPage, PostShown, QueueEntry,
    QueuePage, SearchPage, ThreadHead, ThreadItem, ThreadLink, ThreadPage,
};
use super::{Access, ForumError, Moderation, PostView, Unseen, Writing};
use crate::db::{Conn, Db, now};
use crate::kernel::SessionUser;
use crate::media::ProcessedImage;
use crate::storage::BlobStore;
use crate::web::format::Moment;
use crate::web::page::Fragment;
use crate::web::{AppError, AppResult, ClientInfo, CsrfForm, CurrentUser, Flash, Page};

impl From<ForumError> for AppError {
    fn from(e: ForumError) -> Self {
        match e {
            ForumError::NotFound | ForumError::Unseen(_) => AppError::NotFound,
            ForumError::Storage(m) => AppError::Internal(m),
            ForumError::Forbidden(m) => AppError::Forbidden(m),
            ForumError::Invalid(m) => AppError::Unprocessable(m),
            ForumError::Db(e) => AppError::from(e),
        }
    }
}

#[get("/forums")]
pub async fn index(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let user = user.0;
    let ctx = db
        .run(move |conn| {
            let site = super::site_forums(conn)?;
            let mine = super::my_course_forums(conn, user.id, now())?;
            use crate::kernel::Role;
            let moderates = user.roles.iter().any(|(r, _)| {
                matches!(r, Role::Staff | Role::Moderator | Role::MemberAdmin | Role::Instructor | Role::CourseStaff)
            });
            let moderators = if user.is_staff() { roles_holders(conn)? } else { Vec::new() };
            Ok::<_, AppError>(IndexPage {
                site: site.into_iter().map(ForumItem::from).collect(),
                courses: mine.into_iter().map(ForumItem::from).collect(),
                is_staff: user.is_staff(),
                moderates,
                action: "/forums/search",
                q: "",
                forum: None,
                moderators: moderators.into_iter().map(|(id, username)| ModeratorItem { id, username }).collect(),
            })
        })
        .await?;
    Ok(Page::view("forums/index", "Forums", ctx))
}

#[derive(FromForm)]
pub struct NewForum {
    #[field(default = String::new())]
    slug: String,
    #[field(default = String::new())]
    title: String,
    #[field(default = String::new())]
    description: String,
}

#[post("/forums", data = "<form>")]
pub async fn create(db: &State<Db>, user: CurrentUser, form: CsrfForm<NewForum>) -> AppResult<Flash> {
    if !user.is_staff() {
        return Err(AppError::Forbidden("Only operator staff can add forum categories.".into()));
    }
    let f = form.form;
    db.run(move |conn| {
        settle(
            "/forums".into(),
            super::create_site_forum(conn, &f.slug, &f.title, &f.description, now()),
            |_, forum| Flash::success(format!("/forums/{}", forum.slug), "The forum is open."),
        )
    })
    .await
}

/// Opens the forum of the run a learner (or course staff) is in.
#[get("/learn/<slug>/forum")]
pub async fn course_forum(db: &State<Db>, user: CurrentUser, slug: &str) -> AppResult<rocket::response::Redirect> {
    let slug = slug.to_string();
    let user = user.0;
    let forum = db
        .run(move |conn| {
            let course = crate::learning::service::course_by_slug(conn, &slug)?;
            let run = match crate::learning::service::active_enrollment(conn, user.id, course.id, now()) {
                Ok((_, run)) => run,
                Err(e) if !crate::learning::service::can_author(&user, course.member_id) => return Err(e.into()),
                Err(_) => crate::learning::service::runs(conn, course.id)?
                    .into_iter()
                    .last()
                    .ok_or_else(|| AppError::Unprocessable("This course has no run yet, so no forum.".into()))?,
            };
            Ok::<_, AppError>(super::course_forum(conn, &course, &run, now())?)
        })
        .await?;
    Ok(rocket::response::Redirect::to(format!("/forums/{}", forum.slug)))
}

/// The largest image a post takes, in MB, for the forms to say.
fn max_image_mb() -> usize {
    crate::media::MAX_UPLOAD_BYTES / (1024 * 1024)
}

/// What was typed into a failed form, shown again.
#[derive(Default, Clone)]
struct Draft {
    title: String,
    body: String,
    /// The description of an image that was attached (the file itself
    /// cannot be given back to the browser: it is chosen again).
    alt: String,
    error: String,
}

fn forum_page(conn: &mut Conn, user: &SessionUser, slug: &str, page: i64, draft: Option<Draft>) -> AppResult<Page> {
    let acc = super::access(conn, user, slug, now())?;
    let (threads, pages) = super::threads(conn, &acc, user, page)?;
    let failed = draft.is_some();
    let draft = draft.unwrap_or_default();
    let view = ForumPage {
        forum: ForumHead::of(&acc),
        moderator: acc.moderator,
        banned: acc.banned,
        action: format!("/forums/{}/search", acc.forum.slug),
        q: "",
        threads: threads
            .into_iter()
            .map(|t| ThreadItem {
                id: t.id,
                title: t.title,
                pinned: t.pinned,
                locked: t.locked,
                author: t.author,
                replies: t.replies,
                pending: t.pending,
                unread: t.unread,
                last: Moment(t.last_post_at),
            })
            .collect(),
        page: page.clamp(1, pages),
        pages,
        prev: (page > 1).then(|| page - 1),
        next: (page < pages).then(|| page + 1),
        draft: DraftView { title: draft.title, body: draft.body, alt: draft.alt, error: draft.error },
        max_image_mb: max_image_mb(),
    };
    let p = Page::view("forums/forum", acc.forum.title.clone(), view);
    Ok(if failed { p.with_status(Status::UnprocessableEntity) } else { p })
}

#[get("/forums/<slug>?<page>")]
pub async fn forum(db: &State<Db>, user: CurrentUser, slug: &str, page: Option<i64>) -> AppResult<Page> {
    let slug = slug.to_string();
    db.run(move |conn| forum_page(conn, &user, &slug, page.unwrap_or(1), None)).await
}

/// A new thread, a reply or a comment: urlencoded, or multipart when an
/// image is attached (the CSRF token is checked by hand, as `CsrfForm`
/// reads urlencoded forms only).
#[derive(FromForm)]
pub struct PostForm {
    #[field(default = String::new())]
    csrf_token: String,
    #[field(default = String::new())]
    title: String,
    #[field(default = String::new())]
    body: String,
    #[field(default = false)]
    anonymous: bool,
    parent_id: Option<i64>,
    /// A file over the size limit arrives as such rather than failing the
    /// whole form, so the author is told the limit.
    image: FileField<ImageLimit>,
    #[field(default = String::new())]
    image_alt: String,
}

/// The fields of a post form, owned, for the database closure.
struct Typed {
    title: String,
    body: String,
    anonymous: bool,
    parent_id: Option<i64>,
    alt: String,
}

/// Reads and checks a post form: the CSRF token, then the attached image
/// (if any) re-encoded without its metadata; `Err` in the inner result is
/// the message for the author.
async fn read_post_form(
    cookies: &CookieJar<'_>,
    form: &PostForm,
) -> AppResult<(Typed, Result<Option<(ProcessedImage, String)>, String>)> {
    crate::web::csrf::verify_token(cookies, &form.csrf_token)?;
    let typed = Typed {
        title: form.title.clone(),
        body: form.body.clone(),
        anonymous: form.anonymous,
        parent_id: form.parent_id,
        alt: form.image_alt.clone(),
    };
    let image = read_image(&form.image, &form.image_alt).await?;
    Ok((typed, image))
}

/// The attached image, re-encoded (FRM-5); `Ok(None)` when no file was
/// chosen (browsers send an empty, unnamed file then).
async fn read_image(
    file: &FileField<ImageLimit>,
    alt: &str,
) -> AppResult<Result<Option<(ProcessedImage, String)>, String>> {
    let bytes = match file {
        FileField::Missing => return Ok(Ok(None)),
        FileField::TooLarge => {
            let max_mb = crate::media::MAX_UPLOAD_BYTES / (1024 * 1024);
            return Ok(Err(format!(
                "That image is larger than {max_mb} MB, the most an image can be. Choose a smaller file (most \
                 phones can share a photo at a smaller size)."
            )));
        }
        FileField::File { bytes, .. } => bytes.clone(),
    };
    let alt = match attachments::check_alt(alt) {
        Ok(alt) => alt,
        Err(e) => return Ok(Err(format!("{e} Choose the image again."))),
    };
    // Decoding and re-encoding is CPU work: off the async executor.
    let processed = tokio::task::spawn_blocking(move || crate::media::reencode(&bytes, attachments::MAX_SIDE))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(processed.map(|image| Some((image, alt))).map_err(|e| e.to_string()))
}

/// The image of a post form as the service takes it.
fn upload(image: Option<(ProcessedImage, String)>, blobs: &dyn BlobStore) -> Option<Upload<'_>> {
    image.map(|(image, alt)| Upload { image, alt, blobs })
}

#[post("/forums/<slug>/threads", data = "<form>")]
pub async fn start_thread(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    slug: &str,
    form: Form<PostForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    let slug = slug.to_string();
    let (f, image) = read_post_form(cookies, &form).await?;
    let blobs = blobs.inner().clone();
    db.run(move |conn| {
        let fail = |conn: &mut Conn, error: String| {
            let draft = Draft { title: f.title.clone(), body: f.body.clone(), alt: f.alt.clone(), error };
            forum_page(conn, &user, &slug, 1, Some(draft)).map(rocket::Either::Right)
        };
        let image = match image {
            Ok(image) => image,
            Err(error) => return fail(conn, error),
        };
        let acc = super::access(conn, &user, &slug, now())?;
        let w = Writing {
            body: &f.body,
            anonymous: f.anonymous,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            image: upload(image, blobs.as_ref()),
        };
        match super::start_thread(conn, &acc, &user, &f.title, &w, now()) {
            Ok((id, status)) => {
                Ok(rocket::Either::Left(posted(format!("/forums/{slug}/threads/{id}"), status, &f.body)))
            }
            Err(ForumError::Invalid(error)) | Err(ForumError::Forbidden(error)) => fail(conn, error),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// The flash after posting: whether the post waits for a moderator, and
/// whether it showed images from other sites, which the site does not load
/// (they are shown as links; see `render_post`).
fn posted(to: String, status: &str, body: &str) -> Flash {
    let remote = match super::remote_images(body) {
        0 => "",
        _ => {
            " Images from other sites are not shown in posts (the site loads images from itself only, to keep \
             readers' visits private): they appear as links. To show an image, attach it to a post."
        }
    };
    if status == super::status::PENDING {
        Flash::info(
            to,
            format!(
                "Thanks! Your first post waits for a moderator: until one approves it, only you and the moderators \
                 see it. After that your posts appear at once.{remote}"
            ),
        )
    } else if remote.is_empty() {
        Flash::success(to, "Posted.")
    } else {
        Flash::info(to, format!("Posted.{remote}"))
    }
}

fn thread_page(
    conn: &mut Conn,
    kept: &ThreadPosts,
    user: &SessionUser,
    slug: &str,
    thread_id: i64,
    page: i64,
    draft: Option<Draft>,
) -> AppResult<Page> {
    let (acc, thread, following, seen) = super::thread_access(conn, user, slug, thread_id, now())?;
    let (opening, replies, pages) = match super::posts(conn, kept, &acc, user, &thread, page) {
        Err(ForumError::Unseen(why)) => return Ok(unseen_page(&acc, why)),
        other => other?,
    };
    let newest = std::iter::once(&opening)
        .chain(replies.iter())
        .chain(replies.iter().flat_map(|r| r.comments.iter()))
        .filter(|p| p.status == super::status::VISIBLE)
        .map(|p| p.id)
        .max();
    if let Some(newest) = newest {
        super::mark_read_after(conn, user.id, thread_id, seen, newest)?;
    }
    let failed = draft.is_some();
    let draft = draft.unwrap_or_default();
    let can_comment = !acc.banned && (!thread.locked || acc.moderator);
    let view = ThreadPage {
        forum: ForumHead::of(&acc),
        moderator: acc.moderator,
        banned: acc.banned,
        thread: ThreadHead {
            id: thread.id,
            title: thread.title.clone(),
            pinned: thread.pinned,
            locked: thread.locked,
            lock_reason: thread.lock_reason.clone(),
        },
        has_replies: !replies.is_empty(),
        can_reply: can_comment,
        following,
        page: page.clamp(1, pages),
        pages,
        prev: (page > 1).then(|| page - 1),
        next: (page < pages).then(|| page + 1),
        draft: DraftView { title: String::new(), body: draft.body, alt: draft.alt, error: draft.error },
        max_image_mb: max_image_mb(),
    };
    // Each post is rendered once for everyone who sees it the same way and
    // kept: a 200-post thread is the busiest page of a course.
    let viewer = (acc.moderator, can_comment, acc.forum.slug.clone(), thread.id);
    let block = |post: PostView| {
        let viewer = viewer.clone();
        let key = Fragment::key("forums/post_block", &(&post, &viewer));
        Fragment::new("forums/post_block", key, move || {
            let (moderator, can_comment, ..) = viewer;
            PostBlock { post, moderator, can_comment }
        })
    };
    let p = Page::view("forums/thread", thread.title.clone(), view)
        .with_fragments("opening_html", vec![block(opening)])
        .with_fragments("replies_html", replies.into_iter().map(block).collect());
    Ok(if failed { p.with_status(Status::UnprocessableEntity) } else { p })
}

/// A thread whose opening post the reader may not see yet: a page that
/// says why (status 404, as the thread is not there for them), without its
/// title or text, which no moderator has read yet.
fn unseen_page(acc: &Access, why: Unseen) -> Page {
    let (heading, explanation) = match why {
        Unseen::Pending => (
            "This thread waits for a moderator",
            "It was started by someone new to the forums: a moderator reads a new author's first post before \
             others see it. That usually happens within a day; the thread will be here once it is approved.",
        ),
        Unseen::Hidden => (
            "This thread is hidden for now",
            "Readers reported its opening post, or a moderator hid it, and it stays hidden until a moderator \
             has looked at it.",
        ),
    };
    let forum = super::views::ForumLink { slug: acc.forum.slug.clone(), title: acc.forum.title.clone() };
    Page::view("forums/unseen", heading, super::views::UnseenPage { forum, heading, explanation })
        .with_status(Status::NotFound)
}

#[get("/forums/<slug>/threads/<id>?<page>")]
pub async fn thread(
    db: &State<Db>,
    kept: &State<ThreadPosts>,
    user: CurrentUser,
    slug: &str,
    id: i64,
    page: Option<i64>,
) -> AppResult<Page> {
    let (slug, kept) = (slug.to_string(), kept.inner().clone());
    db.run(move |conn| thread_page(conn, &kept, &user, &slug, id, page.unwrap_or(1), None)).await
}

#[allow(clippy::too_many_arguments)]
#[post("/forums/<slug>/threads/<id>/replies", data = "<form>")]
pub async fn reply(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    kept: &State<ThreadPosts>,
    user: CurrentUser,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    slug: &str,
    id: i64,
    form: Form<PostForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    let (slug, kept) = (slug.to_string(), kept.inner().clone());
    let (f, image) = read_post_form(cookies, &form).await?;
    let blobs = blobs.inner().clone();
    db.run(move |conn| {
        let acc = super::access(conn, &user, &slug, now())?;
        let written = match image {
            Err(error) => Err(ForumError::Invalid(error)),
            Ok(image) => {
                let w = Writing {
                    body: &f.body,
                    anonymous: f.anonymous,
                    ip: client.ip.clone(),
                    user_agent: client.user_agent.clone(),
                    image: upload(image, blobs.as_ref()),
                };
                super::reply(conn, &acc, &user, id, f.parent_id, &w, now())
            }
        };
        match written {
            Ok((post, status)) => {
                let at = located(conn, &acc, &user, id, f.parent_id.unwrap_or(post), post)?;
                Ok(rocket::Either::Left(posted(at, status, &f.body)))
            }
            Err(ForumError::Invalid(error)) | Err(ForumError::Forbidden(error)) => {
                let draft = Draft { title: String::new(), body: f.body.clone(), alt: f.alt.clone(), error };
                // A comment comes back on its reply's page; one that cannot go
                // there (under a comment, in a locked thread) comes back in the
                // thread's reply form, so the text is never lost.
                let page = match f.parent_id {
                    Some(parent) => match post_page(conn, &user, parent, PostAction::Comment, Some(draft.clone())) {
                        Err(AppError::Unprocessable(_) | AppError::Forbidden(_) | AppError::NotFound) => None,
                        page => Some(page),
                    },
                    None => None,
                };
                page.unwrap_or_else(|| thread_page(conn, &kept, &user, &slug, id, 1, Some(draft)))
                    .map(rocket::Either::Right)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// The flash an action ends with: its own message, or the reason it was
/// refused; anything else is an error page.
fn settle<T>(back: String, outcome: Result<T, ForumError>, done: impl FnOnce(String, T) -> Flash) -> AppResult<Flash> {
    match outcome {
        Ok(v) => Ok(done(back, v)),
        Err(ForumError::Invalid(m)) => Ok(Flash::error(back, m)),
        Err(e) => Err(e.into()),
    }
}

/// Where a post is for this viewer: the page of its thread that shows it,
/// at the post.
fn back_to(conn: &mut Conn, acc: &Access, user: &SessionUser, post: &super::Post) -> AppResult<String> {
    located(conn, acc, user, post.thread_id, post.parent_id.unwrap_or(post.id), post.id)
}

fn located(conn: &mut Conn, acc: &Access, user: &SessionUser, thread: i64, top: i64, post: i64) -> AppResult<String> {
    let page = match super::page_of(conn, acc, user, thread, top)? {
        1 => String::new(),
        n => format!("?page={n}"),
    };
    Ok(format!("/forums/{}/threads/{thread}{page}#post-{post}", acc.forum.slug))
}

/// A post's lasting address, as emails and the moderation queue give it:
/// the page of its thread that shows it to this viewer, wherever later
/// replies have moved it.
#[get("/forums/posts/<id>")]
pub async fn post_link(db: &State<Db>, user: CurrentUser, id: i64) -> AppResult<rocket::response::Redirect> {
    db.run(move |conn| {
        let (post, acc) = super::post_access(conn, &user, id, now())?;
        Ok(rocket::response::Redirect::to(back_to(conn, &acc, &user, &post)?))
    })
    .await
}

/// What the page of one post is for. The thread page links to it rather
/// than carrying a form per post: a 50-reply page stays small, and a form
/// that fails comes back on its own page with what was typed.
#[derive(Clone, Copy, PartialEq)]
enum PostAction {
    Report,
    Edit,
    Comment,
}

impl PostAction {
    fn parse(s: &str) -> Option<PostAction> {
        match s {
            "report" => Some(PostAction::Report),
            "edit" => Some(PostAction::Edit),
            "comment" => Some(PostAction::Comment),
            _ => None,
        }
    }
}

fn post_page(
    conn: &mut Conn,
    user: &SessionUser,
    id: i64,
    action: PostAction,
    draft: Option<Draft>,
) -> AppResult<Page> {
    let (post, acc) = super::post_access(conn, user, id, now())?;
    let t = super::thread(conn, &acc, post.thread_id)?;
    match action {
        PostAction::Report => super::reportable(user, &post)?,
        PostAction::Edit => super::editable(&acc, user, &post)?,
        PostAction::Comment => {
            super::open_for_replies(&acc, &t)?;
            super::takes_comments(conn, &post)?;
        }
    }
    let author = super::author_of(conn, &post, acc.moderator)?;
    let failed = draft.is_some();
    let draft = draft.unwrap_or_default();
    let body = if action == PostAction::Edit && !failed { post.body.clone() } else { draft.body };
    let title = match action {
        PostAction::Report => "Report a post",
        PostAction::Edit => "Edit a post",
        PostAction::Comment => "Comment on a reply",
    };
    let view = PostPage {
        forum: ForumHead::of(&acc),
        thread: ThreadLink { id: t.id, title: t.title },
        back: back_to(conn, &acc, user, &post)?,
        post: PostShown {
            id: post.id,
            author,
            created_at: post.created_at,
            created: Moment(post.created_at),
            body_html: post.body_html,
        },
        report: action == PostAction::Report,
        edit: action == PostAction::Edit,
        comment: action == PostAction::Comment,
        heading: title,
        body,
        error: draft.error,
    };
    let p = Page::view("forums/post", title, view);
    Ok(if failed { p.with_status(Status::UnprocessableEntity) } else { p })
}

/// The page to report, edit or comment on one post.
#[get("/forums/posts/<id>/<action>")]
pub async fn post_action(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    id: i64,
    action: &str,
) -> AppResult<Page> {
    let action = PostAction::parse(action).ok_or(AppError::NotFound)?;
    let (page, author) = db
        .run(move |conn| {
            let page = post_page(conn, &user, id, action, None)?;
            Ok::<_, AppError>((page, author_of_post(conn, id)?))
        })
        .await?;
    // The post and its author's byline.
    trail.users(author);
    Ok(page)
}

/// Who wrote a post, for the audit log.
fn author_of_post(conn: &mut Conn, id: i64) -> diesel::QueryResult<Option<i64>> {
    use crate::db::schema::forum_posts;
    use diesel::prelude::*;
    forum_posts::table.find(id).select(forum_posts::author_id).first(conn).optional()
}

#[post("/forums/posts/<id>/vote", data = "<_form>")]
pub async fn vote(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    id: i64,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    trail.users(db.run(move |conn| Ok::<_, AppError>(author_of_post(conn, id)?)).await?);
    db.run(move |conn| {
        let (post, acc) = super::post_access(conn, &user, id, now())?;
        let back = back_to(conn, &acc, &user, &post)?;
        settle(back, super::toggle_vote(conn, &user, &post, now()), |back, up| {
            if up { Flash::success(back, "Upvoted.") } else { Flash::info(back, "Vote taken back.") }
        })
    })
    .await
}

#[derive(FromForm)]
pub struct ReasonForm {
    #[field(default = String::new())]
    reason: String,
}

#[post("/forums/posts/<id>/report", data = "<form>")]
pub async fn report(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    id: i64,
    form: CsrfForm<ReasonForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    trail.users(db.run(move |conn| Ok::<_, AppError>(author_of_post(conn, id)?)).await?);
    let reason = form.form.reason;
    db.run(move |conn| {
        let (post, acc) = super::post_access(conn, &user, id, now())?;
        match super::report(conn, &user, &post, &reason, now()) {
            Ok(hidden) => Ok(rocket::Either::Left(Flash::success(
                back_to(conn, &acc, &user, &post)?,
                if hidden {
                    "Reported. The post is hidden until a moderator looks at it."
                } else {
                    "Reported. A moderator will look at it."
                },
            ))),
            Err(ForumError::Invalid(error)) => {
                let draft = Draft { body: reason.clone(), error, ..Draft::default() };
                post_page(conn, &user, id, PostAction::Report, Some(draft)).map(rocket::Either::Right)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

#[derive(FromForm)]
pub struct EditForm {
    #[field(default = String::new())]
    body: String,
}

#[post("/forums/posts/<id>/edit", data = "<form>")]
pub async fn edit(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    id: i64,
    form: CsrfForm<EditForm>,
) -> AppResult<rocket::Either<Flash, Page>> {
    trail.users(db.run(move |conn| Ok::<_, AppError>(author_of_post(conn, id)?)).await?);
    let body = form.form.body;
    db.run(move |conn| {
        let (post, acc) = super::post_access(conn, &user, id, now())?;
        match super::edit(conn, &acc, &user, &post, &body, now()) {
            Ok(()) => Ok(rocket::Either::Left(Flash::success(back_to(conn, &acc, &user, &post)?, "Saved."))),
            Err(ForumError::Invalid(error)) => {
                let draft = Draft { body: body.clone(), error, ..Draft::default() };
                post_page(conn, &user, id, PostAction::Edit, Some(draft)).map(rocket::Either::Right)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

#[derive(FromForm)]
pub struct ModerateForm {
    #[field(default = String::new())]
    action: String,
    #[field(default = String::new())]
    reason: String,
    /// `queue` when decided in the moderation queue, with its page.
    #[field(default = String::new())]
    from: String,
    page: Option<i64>,
}

#[post("/forums/posts/<id>/moderate", data = "<form>")]
pub async fn moderate(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<ModerateForm>,
) -> AppResult<Flash> {
    trail.users(db.run(move |conn| Ok::<_, AppError>(author_of_post(conn, id)?)).await?);
    let f = form.form;
    db.run(move |conn| {
        let (post, acc) = super::post_access(conn, &user, id, now())?;
        if !acc.moderator {
            return Err(AppError::Forbidden("Only moderators can do this.".into()));
        }
        let back = back_to(conn, &acc, &user, &post)?;
        if f.action == "ban" {
            super::ban(conn, &acc, &user, post.author_id, &f.reason, now())?;
            return Ok(Flash::success(back, "The author can no longer post in this forum."));
        }
        let m =
            Moderation::parse(&f.action).ok_or_else(|| AppError::Unprocessable("Unknown moderation action.".into()))?;
        // A decision on a waiting post, or one taken in the queue, returns
        // to the queue: the next post that waits is there.
        let to_queue = f.from == "queue" || matches!(m, Moderation::Approve | Moderation::Reject);
        let back = if to_queue {
            match f.page.filter(|p| *p > 1) {
                Some(p) => format!("/forums/moderation?page={p}"),
                None => "/forums/moderation".to_string(),
            }
        } else {
            back
        };
        let outcome = super::moderate(conn, &user, &post, m, now());
        let (author, title) = (super::author_of(conn, &post, true)?, super::thread(conn, &acc, post.thread_id)?.title);
        settle(back, outcome, |back, ()| {
            let which = format!("{author}’s post in “{title}”");
            match m {
                Moderation::Approve => Flash::success(
                    back,
                    format!("Approved {which}: everyone sees it now, and their later posts appear at once."),
                ),
                Moderation::Reject => Flash::success(back, format!("Rejected {which}: nobody else will see it.")),
                Moderation::Hide => Flash::success(back, format!("Hid {which}.")),
                Moderation::Restore => Flash::success(back, format!("Restored {which}; its reports are dismissed.")),
                Moderation::Delete => Flash::success(back, format!("Deleted {which}.")),
                Moderation::Dismiss => Flash::success(back, format!("Dismissed the reports on {which}.")),
                Moderation::Endorse | Moderation::Unendorse => Flash::success(back, "Done."),
            }
        })
    })
    .await
}

/// An image attached to a post, for those who may read the post: the
/// re-encoded bytes (no metadata), as their recorded type, and only when
/// the bytes are that type.
#[get("/forums/images/<id>")]
pub async fn image(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    id: i64,
) -> AppResult<ForumImage> {
    let blobs = blobs.inner().clone();
    db.run(move |conn| {
        let (post_id, key, content_type) = attachments::find(conn, id)?.ok_or(AppError::NotFound)?;
        super::post_access(conn, &user, post_id, now())?;
        let body = blobs.get(&key).map_err(|_| AppError::NotFound)?.ok_or(AppError::NotFound)?;
        crate::media::servable_image(&content_type, &body).ok_or(AppError::NotFound)?;
        Ok(ForumImage { body, content_type })
    })
    .await
}

/// A forum image as it goes out: inert (`nosniff`, a sandbox CSP); the
/// site's headers keep it out of caches (a course forum's images are for its
/// learners).
pub struct ForumImage {
    body: Vec<u8>,
    content_type: String,
}

impl<'r> rocket::response::Responder<'r, 'static> for ForumImage {
    fn respond_to(self, _req: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        let ct =
            rocket::http::ContentType::parse_flexible(&self.content_type).unwrap_or(rocket::http::ContentType::Binary);
        rocket::Response::build()
            .header(ct)
            .raw_header("Content-Security-Policy", crate::media::files::CSP)
            .raw_header("X-Content-Type-Options", "nosniff")
            .raw_header("Content-Disposition", "inline")
            .sized_body(self.body.len(), std::io::Cursor::new(self.body))
            .ok()
    }
}

#[derive(FromForm)]
pub struct ThreadForm {
    #[field(default = false)]
    pinned: bool,
    #[field(default = false)]
    locked: bool,
    #[field(default = String::new())]
    reason: String,
}

#[post("/forums/<slug>/threads/<id>/settings", data = "<form>")]
pub async fn thread_settings(
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    id: i64,
    form: CsrfForm<ThreadForm>,
) -> AppResult<Flash> {
    let slug = slug.to_string();
    let f = form.form;
    db.run(move |conn| {
        let acc = super::access(conn, &user, &slug, now())?;
        if !acc.moderator {
            return Err(AppError::Forbidden("Only moderators can pin or lock threads.".into()));
        }
        let t = super::thread(conn, &acc, id)?;
        let back = format!("/forums/{slug}/threads/{id}");
        settle(back, super::set_thread(conn, &t, f.pinned, f.locked, Some(&f.reason)), |back, ()| {
            Flash::success(back, "Saved.")
        })
    })
    .await
}

#[get("/forums/moderation?<page>")]
pub async fn queue(db: &State<Db>, user: CurrentUser, page: Option<&str>, trail: Trail<'_>) -> AppResult<Page> {
    let user = user.0;
    // A page number that is not a number is the first page.
    let page = page.and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(1);
    let q = db.run(move |conn| Ok::<_, AppError>(super::queue(conn, &user, page)?)).await?;
    trail.users(q.items.iter().map(|i| i.author_id));
    let link = |p: i64| format!("/forums/moderation?page={p}");
    let view = QueuePage {
        total: q.total,
        page: q.page,
        pages: q.pages,
        previous: (q.page > 1).then(|| link(q.page - 1)),
        next: (q.page < q.pages).then(|| link(q.page + 1)),
        items: q
            .items
            .into_iter()
            .map(|i| QueueEntry {
                pending: i.status == super::status::PENDING,
                hidden: i.status == super::status::HIDDEN,
                post_id: i.post_id,
                forum: i.forum,
                forum_slug: i.forum_slug,
                thread_id: i.thread_id,
                thread: i.thread,
                author: i.author,
                body_html: i.body_html,
                images: i.images,
                reports: i.reports,
                ip: i.ip,
                user_agent: i.user_agent,
                when: Moment(i.created_at),
            })
            .collect(),
    };
    Ok(Page::view("forums/moderation", "Moderation", view))
}

#[derive(FromForm)]
pub struct FollowForm {
    #[field(default = false)]
    follow: bool,
}

#[post("/forums/<slug>/threads/<id>/follow", data = "<form>")]
pub async fn follow(
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    id: i64,
    form: CsrfForm<FollowForm>,
) -> AppResult<Flash> {
    let slug = slug.to_string();
    let on = form.form.follow;
    db.run(move |conn| {
        let acc = super::access(conn, &user, &slug, now())?;
        let t = super::thread(conn, &acc, id)?;
        super::follow(conn, user.id, t.id, on, now())?;
        let back = format!("/forums/{slug}/threads/{id}");
        Ok(if on {
            Flash::success(back, "You will get an email for each new reply.")
        } else {
            Flash::info(back, "You no longer get emails about this thread.")
        })
    })
    .await
}

fn roles_holders(conn: &mut Conn) -> diesel::QueryResult<Vec<(i64, String)>> {
    crate::accounts::roles::holders(conn, crate::kernel::Role::Moderator, "")
}

#[derive(FromForm)]
pub struct LoginForm {
    #[field(default = String::new())]
    login: String,
}

/// Operator staff appoint site moderators, who moderate every forum.
#[post("/forums/moderators", data = "<form>")]
pub async fn appoint_moderator(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    form: CsrfForm<LoginForm>,
) -> AppResult<Flash> {
    if !user.is_staff() {
        return Err(AppError::Forbidden("Only operator staff can appoint moderators.".into()));
    }
    let login = form.form.login;
    let (flash, target) = db
        .run(move |conn| {
            let Some(target) = crate::accounts::service::find_for_login(conn, login.trim())? else {
                return Ok((Flash::error("/forums", "No account has that username or email."), None));
            };
            crate::accounts::roles::grant(conn, target.id, crate::kernel::Role::Moderator, "", Some(user.id))?;
            Ok::<_, AppError>((
                Flash::success("/forums", format!("{} now moderates the forums.", target.username)),
                Some(target.id),
            ))
        })
        .await?;
    trail.users(target);
    Ok(flash)
}

#[post("/forums/moderators/<id>/remove", data = "<_form>")]
pub async fn remove_moderator(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    id: i64,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    trail.user(id);
    if !user.is_staff() {
        return Err(AppError::Forbidden("Only operator staff can remove moderators.".into()));
    }
    db.run(move |conn| {
        Ok(if crate::accounts::roles::revoke(conn, id, crate::kernel::Role::Moderator, "")? {
            Flash::success("/forums", "No longer a moderator.")
        } else {
            Flash::error("/forums", "That person is not a moderator.")
        })
    })
    .await
}

type ThreadIndex = std::sync::Arc<dyn crate::search::SearchIndex<crate::search::ThreadDocument>>;

/// Searches every forum the user may read, or one forum (`within`).
async fn search_page(
    db: &Db,
    index: &ThreadIndex,
    user: crate::kernel::SessionUser,
    within: Option<String>,
    q: Option<String>,
) -> AppResult<Page> {
    let q = q.unwrap_or_default().trim().to_string();
    if q.chars().count() > super::search::MAX_QUERY_CHARS {
        return Err(AppError::Unprocessable(format!(
            "Search for at most {} characters.",
            super::search::MAX_QUERY_CHARS
        )));
    }
    let scope = within.clone();
    let (readable, forum) = {
        let user = user.clone();
        db.run(move |conn| match scope {
            Some(slug) => {
                let acc = super::access(conn, &user, &slug, now())?;
                let head = ForumHead::of(&acc);
                Ok::<_, AppError>((vec![acc.forum], Some(head)))
            }
            None => Ok((super::search::readable_forums(conn, &user, now())?, None)),
        })
        .await?
    };
    let ids = if q.is_empty() {
        Vec::new()
    } else {
        let groups = readable.iter().map(|f| f.id).collect();
        index
            .search_in(&q, Some(groups), super::search::MAX_HITS)
            .await
            .map_err(|e| AppError::SearchUnavailable(format!("forum search: {e}")))?
    };
    let query = q.clone();
    let hits = db.run(move |conn| Ok::<_, AppError>(super::search::hits(conn, &ids, &readable, &query)?)).await?;
    let action = within.as_ref().map_or("/forums/search".to_string(), |slug| format!("/forums/{slug}/search"));
    let title = if q.is_empty() { "Search the forums".to_string() } else { format!("“{q}” in the forums") };
    Ok(Page::view("forums/search", title, SearchPage { searched: !q.is_empty(), q, forum, action, hits }))
}

#[get("/forums/search?<q>")]
pub async fn search_all(
    db: &State<Db>,
    index: &State<ThreadIndex>,
    user: CurrentUser,
    q: Option<String>,
) -> AppResult<Page> {
    search_page(db, index, user.0, None, q).await
}

#[get("/forums/<slug>/search?<q>")]
pub async fn search_forum(
    db: &State<Db>,
    index: &State<ThreadIndex>,
    user: CurrentUser,
    slug: &str,
    q: Option<String>,
) -> AppResult<Page> {
    search_page(db, index, user.0, Some(slug.to_string()), q).await
}
