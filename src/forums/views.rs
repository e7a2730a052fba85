//! What the forum pages show, as `Serialize` structs (one per page context,
//! field for field the keys its template reads). Most forum pages still
//! build untyped contexts in `routes.rs`; new pages start here.

use serde::Serialize;

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
