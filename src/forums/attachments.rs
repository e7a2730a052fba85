//! Images attached to forum posts (FRM-5). An image goes through
//! `crate::media::reencode` before anything is stored, so no metadata of the
//! uploaded file (EXIF with GPS position and camera serials, XMP, ICC) is
//! kept; the re-encoded bytes go to the blob store (local files or S3) and a
//! `forum_attachments` row ties them to their post with the author's
//! description (the image's alt text).
//!
//! An image is served only to someone who may read its post (the post's
//! visibility rules, `post_access`), never by its blob key alone: a course
//! forum's images stay with the course's learners, and a waiting or hidden
//! post's images with its author and the moderators. When an author's
//! posts are blanked on erasure (FRM-4) their images go too; this module
//! does not decide who may attach, `check_writing` does.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::ForumError;
use crate::db::Conn;
use crate::db::schema::{forum_attachments, forum_posts, profiles};
use crate::media::ProcessedImage;
use crate::storage::BlobStore;

/// The longer side of a stored image, in pixels: sharp on a wide screen,
/// small enough that a thread of photos loads quickly.
pub const MAX_SIDE: u32 = 1600;
/// The longest description of an image, in characters.
pub const ALT_MAX: usize = 300;

/// An image on its way into a post: already re-encoded, not yet stored.
pub struct Upload<'a> {
    pub image: ProcessedImage,
    pub alt: String,
    pub blobs: &'a dyn BlobStore,
}

/// An attached image as a post shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Queryable, Selectable, Serialize)]
#[diesel(table_name = forum_attachments)]
pub struct Attachment {
    pub id: i64,
    pub post_id: i64,
    pub alt: String,
    pub width: i32,
    pub height: i32,
}

/// The author's description of an image, tidied; refused when empty or long.
pub fn check_alt(alt: &str) -> Result<String, ForumError> {
    let alt = alt.split_whitespace().collect::<Vec<_>>().join(" ");
    if alt.is_empty() {
        return Err(ForumError::Invalid(
            "Describe the image in a few words (what it shows), for people who cannot see it.".into(),
        ));
    }
    if alt.chars().count() > ALT_MAX {
        return Err(ForumError::Invalid(format!("An image's description can be at most {ALT_MAX} characters.")));
    }
    Ok(alt)
}

/// Stores the re-encoded image and attaches it to the post; part of the
/// transaction that writes the post.
pub fn attach(conn: &mut Conn, post_id: i64, upload: &Upload<'_>, now: NaiveDateTime) -> Result<(), ForumError> {
    let image = &upload.image;
    let key = crate::storage::store(conn, upload.blobs, &image.bytes, image.content_type)
        .map_err(|e| ForumError::Storage(e.to_string()))?;
    diesel::insert_into(forum_attachments::table)
        .values((
            forum_attachments::post_id.eq(post_id),
            forum_attachments::blob_key.eq(&key),
            forum_attachments::content_type.eq(image.content_type),
            forum_attachments::width.eq(image.width as i32),
            forum_attachments::height.eq(image.height as i32),
            forum_attachments::alt.eq(&upload.alt),
            forum_attachments::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The images of these posts, by post, oldest first.
pub fn of_posts(conn: &mut Conn, post_ids: &[i64]) -> QueryResult<HashMap<i64, Vec<Attachment>>> {
    let mut by_post: HashMap<i64, Vec<Attachment>> = HashMap::new();
    if post_ids.is_empty() {
        return Ok(by_post);
    }
    for a in forum_attachments::table
        .filter(forum_attachments::post_id.eq_any(post_ids))
        .order(forum_attachments::id.asc())
        .select(Attachment::as_select())
        .load(conn)?
    {
        by_post.entry(a.post_id).or_default().push(a);
    }
    Ok(by_post)
}

/// An image to serve: its post (for the caller's access check), blob key
/// and type.
pub fn find(conn: &mut Conn, id: i64) -> QueryResult<Option<(i64, String, String)>> {
    forum_attachments::table
        .find(id)
        .select((forum_attachments::post_id, forum_attachments::blob_key, forum_attachments::content_type))
        .first(conn)
        .optional()
}

/// The blob keys of the images on a user's posts that nothing else uses
/// (blobs are content-addressed, so the same bytes may be someone else's
/// image or avatar): the files erasure may delete.
pub fn keys_only_of_author(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<String>> {
    let own_posts = forum_posts::table.filter(forum_posts::author_id.eq(user_id)).select(forum_posts::id);
    let mut keys: Vec<String> = forum_attachments::table
        .filter(forum_attachments::post_id.eq_any(own_posts))
        .select(forum_attachments::blob_key)
        .distinct()
        .load(conn)?;
    keys.sort();
    let others_posts = forum_posts::table.filter(forum_posts::author_id.ne(user_id)).select(forum_posts::id);
    let shared: Vec<String> = forum_attachments::table
        .filter(forum_attachments::blob_key.eq_any(&keys))
        .filter(forum_attachments::post_id.eq_any(others_posts))
        .select(forum_attachments::blob_key)
        .load(conn)?;
    let avatars: Vec<Option<String>> =
        profiles::table.filter(profiles::avatar_key.eq_any(&keys)).select(profiles::avatar_key).load(conn)?;
    keys.retain(|k| !shared.contains(k) && !avatars.iter().flatten().any(|a| a == k));
    Ok(keys)
}

/// Removes the images of a user's posts (their files are the caller's);
/// returns how many.
pub fn detach_all_of_author(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    let own_posts = forum_posts::table.filter(forum_posts::author_id.eq(user_id)).select(forum_posts::id);
    diesel::delete(forum_attachments::table.filter(forum_attachments::post_id.eq_any(own_posts))).execute(conn)
}
