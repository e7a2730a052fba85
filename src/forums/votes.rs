//! Upvotes on posts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{FResult, ForumError, Post, status};
use crate::db::Conn;
use crate::db::schema::{forum_posts, forum_votes};
use crate::kernel::SessionUser;

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
