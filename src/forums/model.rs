//! What the forums are made of: forums, threads and posts as stored, the
//! statuses a post moves through, the limits on writing, and the errors.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{forum_posts, forum_threads, forums};

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

pub(super) type FResult<T> = Result<T, ForumError>;

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
