//! What an area does with a person's data at the ends of its life: the
//! vocabulary of the per-area lifecycle hooks.
//!
//! Each business area owns its tables, so each says, in a `lifecycle.rs` of
//! its own, what becomes of them when a learner is erased (`erase_user`),
//! which of them a learner's copy of their data reads (`export_user`), and
//! what its retention periods delete (`expire`), and it declares every
//! user-keyed column it owns with its fate at erasure (`covers`). The
//! privacy area runs the hooks in the order of its one list
//! (`privacy::AREAS`); a test compares the declarations with the schema.
//!
//! This module sits at the bottom (it knows the database and the blob store
//! only), so an area can describe its hooks without depending on privacy.

use std::path::Path;

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::Conn;
use crate::storage::BlobStore;

/// One area's hooks. An area leaves out (`None`, `&[]`) what it does not need.
pub struct AreaHooks {
    pub name: &'static str,
    /// Every column of this area's tables that holds a user's id, with what erasure does to it.
    pub covers: &'static [Covered],
    /// Called at every erasure step, in the order of the list; an area acts on the steps it has a part in.
    pub erase_user: Option<EraseUser>,
    /// The sections of the learner's copy of their data that this area's tables give.
    pub export_user: &'static [Section],
    /// The area's retention rules; each returns what it did (or, dry, would do).
    pub expire: Option<Expire>,
}

/// An area's part in one erasure step.
pub type EraseUser = fn(&mut Conn, &Erasing<'_>) -> QueryResult<Erased>;

/// An area's retention rules.
pub type Expire = fn(&mut Conn, &Expiring<'_>) -> QueryResult<Vec<Line>>;

/// A user-keyed column and its fate at erasure.
#[derive(Debug, Clone, Copy)]
pub struct Covered {
    pub table: &'static str,
    pub column: &'static str,
    pub fate: Fate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The rows go.
    Deleted,
    /// The rows stay without the id (set to NULL) or without the person's content.
    Blanked,
    /// The rows keep the (retired) id, for the reason given.
    Kept(&'static str),
}

impl Covered {
    pub const fn deleted(table: &'static str, column: &'static str) -> Covered {
        Covered { table, column, fate: Fate::Deleted }
    }

    pub const fn blanked(table: &'static str, column: &'static str) -> Covered {
        Covered { table, column, fate: Fate::Blanked }
    }

    pub const fn kept(table: &'static str, column: &'static str, why: &'static str) -> Covered {
        Covered { table, column, fate: Fate::Kept(why) }
    }
}

/// The erasure's steps that areas take part in, in the order they run
/// (`privacy::erasure::STEPS` names them; closing the request is privacy's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SignOut,
    WithdrawConsents,
    NotifyPartners,
    PseudonymisePosts,
    DeletePersonalData,
    RetireAccount,
}

/// One erasure step for one learner, as each hook sees it. Every step runs
/// in one transaction, and may run again after a failure.
pub struct Erasing<'a> {
    pub step: Step,
    pub user_id: i64,
    /// The data request the erasure answers.
    pub request_id: i64,
    /// The account's email and username as they were before this step.
    pub email: &'a str,
    pub username: &'a str,
    /// Forum posts lose their text too (FRM-4).
    pub blank_posts: bool,
    pub blobs: &'a dyn BlobStore,
    /// The mail file outbox (`data_dir/outbox`).
    pub outbox: &'a Path,
    pub now: NaiveDateTime,
}

/// What a hook did at one step: counts for the step's log line, or the line itself.
#[derive(Debug, Default)]
pub struct Erased {
    pub records: usize,
    pub files: usize,
    pub mails: usize,
    /// The log line of a step that one area carries alone.
    pub detail: Option<String>,
}

impl Erased {
    pub fn records(records: usize) -> Erased {
        Erased { records, ..Erased::default() }
    }

    pub fn detail(detail: String) -> Erased {
        Erased { detail: Some(detail), ..Erased::default() }
    }
}

/// The failure of something that is not a query (a file, a message) inside a step.
pub fn failure(message: impl std::fmt::Display) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(message.to_string().into())
}

/// One section of a learner's copy of their data: the rows of `table` that `filter` selects.
pub struct Section {
    pub name: &'static str,
    pub table: &'static str,
    /// SQL condition; `{u}` is replaced by the user's numeric id.
    pub filter: &'static str,
    /// Columns left out, and why (told in the README).
    pub withheld: &'static [&'static str],
    /// Sealed columns (column, vault field), opened for their owner.
    pub sealed: &'static [(&'static str, &'static str)],
    pub about: &'static str,
}

/// A retention run as each hook sees it.
pub struct Expiring<'a> {
    pub periods: &'a Periods,
    /// Accounts under a legal hold (RET-3): nothing linked to them goes.
    pub held: &'a [i64],
    /// The mail file outbox: the files of mail jobs deleted go with them.
    pub outbox: &'a Path,
    pub now: NaiveDateTime,
    pub dry_run: bool,
}

/// The retention periods in days; 0 keeps the category for ever.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    pub inactive_account_days: i64,
    pub inactive_warning_days: i64,
    pub course_record_days: i64,
    pub forum_post_days: i64,
    pub log_days: i64,
    /// Certificates, counted from issue, whether or not the account still exists (CRT-6).
    pub certificate_days: i64,
    /// Proctoring session references (CRT-7).
    pub proctoring_days: i64,
    /// Exam results, counted from arrival (CRT-8).
    pub exam_result_days: i64,
    /// Page views (usage statistics), counted from the view.
    pub page_view_days: i64,
    /// Recorded cookie choices, counted from the choice.
    pub cookie_choice_days: i64,
    /// Newsletter events (sent, opened, clicked), counted from the event.
    pub campaign_event_days: i64,
    /// Support requests with their answers, counted from their last activity.
    pub support_request_days: i64,
}

/// One line of what a retention run did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub category: &'static str,
    pub action: String,
    pub count: usize,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<15} {:>7}  {}", self.category, self.count, self.action)
    }
}
