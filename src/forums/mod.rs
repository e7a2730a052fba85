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
//!
//! Where things are: `model` (forums, threads, posts, statuses, limits),
//! `access` (who sees and moderates a forum), `directory` (which forums
//! exist), `writing` (threads, replies, comments, edits), `threads` (a
//! forum's thread list), `posts` (a thread's posts as a viewer sees them),
//! `votes`, `moderation` (reports, decisions, bans, the queue), `follows`
//! (following and read marks), `attachments`, `search`, `cache`, `honor`
//! (honor-code reports), `lifecycle` (erasure, export, retention), `routes`
//! and `views` (the pages).

pub mod access;
pub mod attachments;
pub mod cache;
pub mod directory;
pub mod follows;
pub mod honor;
pub mod lifecycle;
pub mod model;
pub mod moderation;
pub mod posts;
pub mod routes;
pub mod search;
pub mod threads;
pub mod views;
pub mod votes;
pub mod writing;

pub use access::*;
pub use directory::*;
pub use follows::*;
pub use lifecycle::erase_author;
pub use model::*;
pub use moderation::*;
pub use posts::*;
pub use threads::*;
pub use votes::*;
pub use writing::*;

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
