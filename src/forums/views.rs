//! What the forum pages show, as `Serialize` structs (one per page context,
//! field for field the keys its template reads), and the context of a
//! post's kept fragment (`forums/post_block`).

use chrono::NaiveDateTime;
use serde::Serialize;

use super::access::Access;
use super::attachments::Attachment;
use super::posts::PostView;
use super::search::Hit;
use crate::web::format::{Day, Moment};

/// The forum a page belongs to, for its breadcrumb and back link.
#[derive(Debug, Serialize)]
pub struct ForumLink {
    pub slug: String,
    pub title: String,
}

/// `/forums/<slug>/threads/<id>` for a reader who may not see the thread
/// yet (`forums/unseen`): why, and nothing of the thread itself.
#[derive(Debug, Serialize)]
pub struct UnseenPage {
    pub forum: ForumLink,
    pub heading: &'static str,
    pub explanation: &'static str,
}

/// A forum as its pages head it: the course it belongs to, if any.
#[derive(Debug, Clone, Serialize)]
pub struct ForumHead {
    pub slug: String,
    pub title: String,
    pub description: String,
    pub allow_anonymous: bool,
    pub course: Option<CourseOfForum>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CourseOfForum {
    pub slug: String,
    pub title: String,
    pub run: String,
}

impl ForumHead {
    pub fn of(acc: &Access) -> ForumHead {
        ForumHead {
            slug: acc.forum.slug.clone(),
            title: acc.forum.title.clone(),
            description: acc.forum.description.clone(),
            allow_anonymous: acc.forum.allow_anonymous,
            course: acc.course.as_ref().map(|(c, r)| CourseOfForum {
                slug: c.slug.clone(),
                title: c.title.clone(),
                run: r.run_key.clone(),
            }),
        }
    }
}

/// A forum in a list of forums.
#[derive(Debug, Serialize)]
pub struct ForumItem {
    pub slug: String,
    pub title: String,
    pub description: String,
}

impl From<super::Forum> for ForumItem {
    fn from(f: super::Forum) -> ForumItem {
        ForumItem { slug: f.slug, title: f.title, description: f.description }
    }
}

#[derive(Debug, Serialize)]
pub struct ModeratorItem {
    pub id: i64,
    pub username: String,
}

/// `/forums` (`forums/index`).
#[derive(Debug, Serialize)]
pub struct IndexPage {
    pub site: Vec<ForumItem>,
    pub courses: Vec<ForumItem>,
    pub is_staff: bool,
    pub moderates: bool,
    /// The search form's target and text (`forum_search` partial).
    pub action: &'static str,
    pub q: &'static str,
    /// No forum: the search covers them all.
    pub forum: Option<ForumHead>,
    pub moderators: Vec<ModeratorItem>,
}

/// What a failed form had typed, shown again.
#[derive(Debug, Default, Serialize)]
pub struct DraftView {
    pub title: String,
    pub body: String,
    pub alt: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct ThreadItem {
    pub id: i64,
    pub title: String,
    pub pinned: bool,
    pub locked: bool,
    pub author: String,
    pub replies: i64,
    pub pending: bool,
    pub unread: bool,
    pub last: Moment,
}

/// `/forums/<slug>` (`forums/forum`): a page of threads and the form to start one.
#[derive(Debug, Serialize)]
pub struct ForumPage {
    pub forum: ForumHead,
    pub moderator: bool,
    pub banned: bool,
    pub action: String,
    pub q: &'static str,
    pub threads: Vec<ThreadItem>,
    pub page: i64,
    pub pages: i64,
    pub prev: Option<i64>,
    pub next: Option<i64>,
    pub draft: DraftView,
    pub max_image_mb: usize,
}

#[derive(Debug, Serialize)]
pub struct ThreadHead {
    pub id: i64,
    pub title: String,
    pub pinned: bool,
    pub locked: bool,
    pub lock_reason: Option<String>,
}

/// `/forums/<slug>/threads/<id>` (`forums/thread`); its posts are kept
/// fragments (`PostBlock`) put in `opening_html` and `replies_html`.
#[derive(Debug, Serialize)]
pub struct ThreadPage {
    pub forum: ForumHead,
    pub moderator: bool,
    pub banned: bool,
    pub thread: ThreadHead,
    pub has_replies: bool,
    pub can_reply: bool,
    pub following: bool,
    pub page: i64,
    pub pages: i64,
    pub prev: Option<i64>,
    pub next: Option<i64>,
    pub draft: DraftView,
    pub max_image_mb: usize,
}

/// One post of a thread with its comments (`forums/post_block`), as a
/// viewer with these rights sees it.
#[derive(Debug, Serialize)]
pub struct PostBlock {
    pub post: PostView,
    pub moderator: bool,
    pub can_comment: bool,
}

#[derive(Debug, Serialize)]
pub struct ThreadLink {
    pub id: i64,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct PostShown {
    pub id: i64,
    pub author: String,
    pub created_at: NaiveDateTime,
    pub created: Moment,
    pub body_html: String,
}

/// `/forums/posts/<id>/<action>` (`forums/post`): report, edit or comment on a post.
#[derive(Debug, Serialize)]
pub struct PostPage {
    pub forum: ForumHead,
    pub thread: ThreadLink,
    pub back: String,
    pub post: PostShown,
    pub report: bool,
    pub edit: bool,
    pub comment: bool,
    pub heading: &'static str,
    pub body: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct QueueEntry {
    pub post_id: i64,
    pub forum: String,
    pub forum_slug: String,
    pub thread_id: i64,
    pub thread: String,
    pub author: String,
    pub body_html: String,
    pub images: Vec<Attachment>,
    pub pending: bool,
    pub hidden: bool,
    pub reports: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub when: Moment,
}

/// `/forums/moderation` (`forums/moderation`).
#[derive(Debug, Serialize)]
pub struct QueuePage {
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub items: Vec<QueueEntry>,
}

/// `/forums/search`, `/forums/<slug>/search` (`forums/search`).
#[derive(Debug, Serialize)]
pub struct SearchPage {
    pub q: String,
    pub searched: bool,
    pub forum: Option<ForumHead>,
    pub action: String,
    pub hits: Vec<Hit>,
}

#[derive(Debug, Serialize)]
pub struct CourseLink {
    pub slug: String,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct KindChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// `/learn/<slug>/honor` (`forums/honor_report`): report a breach of the honor code.
#[derive(Debug, Serialize)]
pub struct HonorReportPage {
    pub course: CourseLink,
    pub kinds: Vec<KindChoice>,
    pub subject: String,
    pub description: String,
    pub error: Option<String>,
    pub done: bool,
}

#[derive(Debug, Serialize)]
pub struct HonorItem {
    pub id: i64,
    pub subject: String,
    pub reporter: Option<String>,
    pub kind: String,
    pub description: String,
    pub status: String,
    pub note: Option<String>,
    pub open: bool,
    pub filed: Day,
}

/// `/studio/courses/<slug>/honor` (`forums/honor_list`).
#[derive(Debug, Serialize)]
pub struct HonorListPage {
    pub course: CourseLink,
    pub reports: Vec<HonorItem>,
}
