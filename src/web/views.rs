//! What the edge's own pages show: one `Serialize` struct per page context.

use serde::Serialize;

/// An error page: the status, its title, what went wrong in words for the
/// person, and the request's reference for support.
#[derive(Debug, Serialize)]
pub struct ErrorPage<'a> {
    pub code: u16,
    pub title: &'a str,
    pub detail: &'a str,
    pub request_id: &'a str,
}
