//! What the organization's pages show: one `Serialize` struct per page
//! context (and its rows), field for field the keys the templates read.
//! Dates come formatted; `None` is `null` in the page.

use serde::Serialize;

use crate::web::format::{Day, Moment};
use crate::web::paging::PageNav;

/// The organization a page is about.
#[derive(Debug, Serialize)]
pub struct PartnerRef {
    pub slug: String,
    pub name: String,
}

/// An option of a select field.
#[derive(Debug, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// `/partners/<slug>/staff`: one page of staff with their training, one
/// page of the rights requests filed for them, and the forms.
#[derive(Debug, Serialize)]
pub struct StaffPage {
    pub partner: PartnerRef,
    pub rows: Vec<StaffRow>,
    pub nav: PageNav,
    /// Active staff, of all (not only this page's).
    pub staff_count: i64,
    /// Assignments past their due date and not completed, of all staff.
    pub overdue_count: usize,
    /// Whether the organization has any staff (active or not).
    pub has_staff: bool,
    pub requests: Vec<FiledRow>,
    pub requests_nav: PageNav,
    pub request_kinds: Vec<Choice>,
    /// The course runs an admin may assign, one page of them (`learning::service::run_choices`).
    pub runs: crate::learning::service::RunChoices,
    pub groups: Vec<Choice>,
    pub upload_text: String,
    pub upload_errors: Vec<String>,
}

/// A staff member with one of their assignments (or none).
#[derive(Debug, Serialize)]
pub struct StaffRow {
    pub name: String,
    pub email: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub active: bool,
    pub last_sign_in: Option<Moment>,
    pub course: Option<String>,
    pub due: Option<Day>,
    pub progress: Option<String>,
    pub completed: Option<Day>,
    pub overdue: bool,
}

/// A rights request filed for a staff member.
#[derive(Debug, Serialize)]
pub struct FiledRow {
    pub who: String,
    pub kind: &'static str,
    pub status: String,
    pub received: Day,
    pub due: Day,
    pub done: Option<Day>,
}

/// `/orgs/join/<token>`: what joining an organization's staff means.
#[derive(Debug, Serialize)]
pub struct Join {
    pub organization: String,
    pub email: String,
    pub sees: Vec<&'static str>,
}
