//! What the staff pages show: one `Serialize` struct per page context, field
//! for field the keys the templates read.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::web::format::Moment;
use crate::web::paging::PageNav;

/// `/staff`: the overview, with the count of jobs per status.
#[derive(Debug, Serialize)]
pub struct Index {
    pub counts: BTreeMap<String, i64>,
}

/// `/staff/jobs`: a page of the job queue, filtered by status or not.
#[derive(Debug, Serialize)]
pub struct Jobs {
    pub jobs: Vec<JobRow>,
    pub filter: Option<String>,
    pub nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: Moment,
    pub last_error: Option<String>,
    pub dead: bool,
    /// The badge colour of the status.
    pub badge: &'static str,
}
