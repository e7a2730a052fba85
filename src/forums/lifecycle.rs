//! The forums area's lifecycle hooks (see `crate::lifecycle`): erasure
//! shows the learner's posts under a former-member placeholder (FRM-4) and
//! deletes their follows, read marks, bans and reports; when their posts'
//! text is blanked, the images attached to them go too, rows and files; the
//! copy of their data gives what they posted and did in the forums;
//! retention deletes threads quiet for the period.

use chrono::Duration;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{
    forum_bans, forum_follows, forum_post_edits, forum_posts, forum_reads, forum_reports, forum_threads, forum_trusted,
    forum_votes, honor_reports,
};
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Expiring, Line, Section, Step, failure};

const MODERATOR: &str = "the moderator who acted, for the record";

pub const HOOKS: AreaHooks = AreaHooks {
    name: "forums",
    covers: &[
        Covered::kept(
            "forum_posts",
            "author_id",
            "posts stay in their threads under a former-member placeholder, text blanked on request (FRM-4)",
        ),
        Covered::kept(
            "forum_post_edits",
            "editor_id",
            "a moderator's edit stays in the post's history; the author's own go when their posts are blanked",
        ),
        Covered::deleted("forum_votes", "user_id"),
        Covered::deleted("forum_trusted", "user_id"),
        Covered::kept("forum_trusted", "approved_by", MODERATOR),
        Covered::deleted("forum_follows", "user_id"),
        Covered::deleted("forum_reads", "user_id"),
        Covered::deleted("forum_bans", "user_id"),
        Covered::kept("forum_bans", "banned_by", MODERATOR),
        Covered::deleted("forum_reports", "reporter_id"),
        Covered::kept("forum_reports", "decided_by", MODERATOR),
        Covered::deleted("honor_reports", "subject_id"),
        Covered::blanked("honor_reports", "reporter_id"),
        Covered::kept("honor_reports", "decided_by", MODERATOR),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: Some(expire),
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    let user_id = e.user_id;
    match e.step {
        Step::PseudonymisePosts => {
            // The files first: a failure leaves the rows, so the retry finds
            // the keys again. Kept posts keep their images, as their text.
            let mut files = 0;
            if e.blank_posts {
                for key in super::attachments::keys_only_of_author(conn, user_id)? {
                    e.blobs.delete(&key).map_err(failure)?;
                    files += 1;
                }
            }
            let n = erase_author(conn, user_id, e.blank_posts)?;
            let detail = Erased::detail(format!(
                "{n} forum post(s) now shown as a former member's{}.",
                if e.blank_posts { format!(", their text and {files} image file(s) removed") } else { String::new() }
            ));
            Ok(Erased { files, ..detail })
        }
        Step::DeletePersonalData => {
            let mut n =
                diesel::delete(forum_follows::table.filter(forum_follows::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(forum_reads::table.filter(forum_reads::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(forum_bans::table.filter(forum_bans::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(forum_reports::table.filter(forum_reports::reporter_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(honor_reports::table.filter(honor_reports::subject_id.eq(user_id))).execute(conn)?;
            n += diesel::update(honor_reports::table.filter(honor_reports::reporter_id.eq(user_id)))
                .set(honor_reports::reporter_id.eq(None::<i64>))
                .execute(conn)?;
            Ok(Erased::records(n))
        }
        _ => Ok(Erased::default()),
    }
}

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let days = x.periods.forum_post_days;
    if days <= 0 {
        return Ok(Vec::new());
    }
    let before = x.now - Duration::days(days);
    // A thread goes whole, and not while any of its posts belongs to a held account.
    let touched_by_held = forum_posts::table
        .filter(forum_posts::thread_id.eq(forum_threads::id))
        .filter(forum_posts::author_id.eq_any(x.held));
    let ids: Vec<i64> = forum_threads::table
        .filter(forum_threads::last_post_at.le(before))
        .filter(not(exists(touched_by_held)))
        .select(forum_threads::id)
        .load(conn)?;
    if !x.dry_run {
        diesel::delete(forum_threads::table.filter(forum_threads::id.eq_any(&ids))).execute(conn)?;
        for id in &ids {
            super::search::queue_index(conn, *id)?;
        }
    }
    Ok(vec![Line {
        category: "posts",
        count: ids.len(),
        action: format!("forum threads quiet since before {}", before.date()),
    }])
}

const EXPORT: &[Section] = &[
    Section {
        name: "forum_posts",
        table: "forum_posts",
        filter: "author_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Everything you posted in the forums, with its status, and the IP address and device it was posted from.",
    },
    Section {
        name: "forum_attachments",
        table: "forum_attachments",
        filter: "post_id IN (SELECT id FROM forum_posts WHERE author_id = {u})",
        withheld: &["blob_key"],
        sealed: &[],
        about: "Images you attached to your posts: the post, your description, size and type. Each image is at \
                /forums/images/<id> while you are signed in; what is stored is the re-encoded image, with no \
                camera or location details.",
    },
    Section {
        name: "forum_post_edits",
        table: "forum_post_edits",
        filter: "post_id IN (SELECT id FROM forum_posts WHERE author_id = {u})",
        withheld: &["editor_id"],
        sealed: &[],
        about: "Earlier versions of your posts.",
    },
    Section {
        name: "forum_votes",
        table: "forum_votes",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Posts you voted for.",
    },
    Section {
        name: "forum_follows",
        table: "forum_follows",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Threads you follow.",
    },
    Section {
        name: "forum_reads",
        table: "forum_reads",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "How far you have read each thread.",
    },
    Section {
        name: "forum_reports_filed",
        table: "forum_reports",
        filter: "reporter_id = {u}",
        withheld: &["decided_by"],
        sealed: &[],
        about: "Posts you reported, and the outcome.",
    },
    Section {
        name: "forum_bans",
        table: "forum_bans",
        filter: "user_id = {u}",
        withheld: &["banned_by"],
        sealed: &[],
        about: "Forums you may no longer post in, and why.",
    },
    Section {
        name: "honor_reports_about_you",
        table: "honor_reports",
        filter: "subject_id = {u}",
        withheld: &["reporter_id", "decided_by"],
        sealed: &[],
        about: "Honor-code reports filed about you and their decision. Who filed them is left out.",
    },
    Section {
        name: "honor_reports_filed",
        table: "honor_reports",
        filter: "reporter_id = {u}",
        withheld: &["decided_by"],
        sealed: &[],
        about: "Honor-code reports you filed.",
    },
];

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
            super::attachments::detach_all_of_author(conn, user_id)?;
            // A title often names its author's question in their own words:
            // the threads they opened lose it with the posts. The search
            // documents are rebuilt below, from the blanked title.
            let opened = threads_opened_by(conn, user_id)?;
            diesel::update(forum_threads::table.filter(forum_threads::id.eq_any(&opened)))
                .set(forum_threads::title.eq("[removed at the author's request]"))
                .execute(conn)?;
            super::search::queue_index_of_posts(conn, &ids)?;
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
