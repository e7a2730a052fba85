//! Who may see a forum and who moderates it: a course forum is for its
//! run's learners while their access lasts, its course staff and the site's
//! moderators; site forums are for everyone signed in.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{FResult, Forum, ForumError, Post, Thread, status};
use crate::db::Conn;
use crate::db::schema::{
    course_runs, courses, enrollments, forum_bans, forum_follows, forum_posts, forum_reads, forum_threads, forums,
};
use crate::kernel::{Role, SessionUser};
use crate::learning::model::{Course, Run};

/// What a user may do in a forum.
pub struct Access {
    pub forum: Forum,
    pub course: Option<(Course, Run)>,
    pub moderator: bool,
    pub banned: bool,
}

impl Access {
    /// Whether this viewer sees a post that is not deleted: everyone the
    /// visible ones; authors also their own waiting and hidden ones (marked
    /// so), moderators all. Deleted posts are never read for a page.
    pub fn shows(&self, user: &SessionUser, visible: bool, author_id: i64) -> bool {
        visible || author_id == user.id || self.moderator
    }
}

pub(super) fn site_moderator(user: &SessionUser) -> bool {
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
