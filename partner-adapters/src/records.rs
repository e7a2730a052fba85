//! The records a partner may receive. They are built only by Lyceum's consent
//! gate, which fills exactly the fields a live consent (or another recorded
//! legal basis) covers; every field a consent does not cover is `None`.
//! Adapters must write nothing that is not in these structs.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Who a record is about. `id` is a stable pseudonym per partner unless the
/// consent covers identity; the identity fields are `None` unless covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learner {
    pub id: String,
    /// True when `id` is a per-partner pseudonym rather than the learner's username.
    pub pseudonymous: bool,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
}

/// The course run a record belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseRef {
    /// Course slug, unique on the platform.
    pub id: String,
    pub title: String,
    /// Run key, unique within the course.
    pub run: String,
    /// Slug of the member institution that publishes the course.
    pub member: String,
    /// Absolute URL of the course's about page (used as xAPI activity id).
    pub url: String,
    /// When the run starts. Facts about the run, not about a learner.
    #[serde(skip)]
    pub starts_at: DateTime<Utc>,
    /// When the run ends; `None` for a run without an end (self-paced).
    #[serde(skip)]
    pub ends_at: Option<DateTime<Utc>>,
}

/// Category `enrollment`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedEnrollment {
    /// Opaque resume position; a client passes the last one it received as `since`.
    pub cursor: String,
    pub learner: Learner,
    pub course: CourseRef,
    /// `audit` or `verified`.
    pub track: String,
    /// `active`, `unenrolled` or `expired`.
    pub status: String,
    pub enrolled_at: DateTime<Utc>,
}

/// Categories `activity` (last activity) and `progress` (units, percent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedProgress {
    pub cursor: String,
    pub learner: Learner,
    pub course: CourseRef,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub units_completed: Option<u32>,
    pub units_total: Option<u32>,
    pub progress_percent: Option<f64>,
}

/// Categories `grades` (grade, passed) and `completion` (completed at, passed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedResult {
    pub cursor: String,
    pub learner: Learner,
    pub course: CourseRef,
    pub grade_percent: Option<f64>,
    pub passed: Option<bool>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Category `grades`: when the grade was last set (the learner's latest
    /// graded attempt). `None` when the learner never attempted anything
    /// graded: `grade_percent` and `passed` then say nothing was earned yet,
    /// not that the learner was graded zero.
    pub graded_at: Option<DateTime<Utc>>,
    /// Category `grades`: from when the learner can no longer change the
    /// outcome (the run ended or their access expired). `None` while they
    /// can still pass; only then is `passed == Some(false)` a failure.
    pub final_at: Option<DateTime<Utc>>,
}

/// A departure notice: the partner must delete what it holds about
/// `learner_id` in `course` (enrollment, progress, results), because the gate
/// no longer lets it through under that identifier: the learner withdrew
/// consent, restricted sharing, or was erased. When `learner_gone` is true
/// no other record under `learner_id` remains shareable either, so the
/// partner deletes the learner as well.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedDeparture {
    /// Opaque resume position in the departures feed.
    pub cursor: String,
    /// The id the partner received the learner's records under.
    pub learner_id: String,
    pub course: CourseRef,
    pub learner_gone: bool,
    /// `withdrawn`, `restricted` or `erased`.
    pub reason: String,
    pub departed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SharedRecord {
    Enrollment(SharedEnrollment),
    Progress(SharedProgress),
    Result(SharedResult),
    Departure(SharedDeparture),
}

impl SharedRecord {
    /// The learner a record describes; a departure carries only an id.
    pub fn learner(&self) -> Option<&Learner> {
        match self {
            SharedRecord::Enrollment(r) => Some(&r.learner),
            SharedRecord::Progress(r) => Some(&r.learner),
            SharedRecord::Result(r) => Some(&r.learner),
            SharedRecord::Departure(_) => None,
        }
    }

    /// The id the partner knows the learner by.
    pub fn learner_id(&self) -> &str {
        match self {
            SharedRecord::Enrollment(r) => &r.learner.id,
            SharedRecord::Progress(r) => &r.learner.id,
            SharedRecord::Result(r) => &r.learner.id,
            SharedRecord::Departure(r) => &r.learner_id,
        }
    }

    pub fn cursor(&self) -> &str {
        match self {
            SharedRecord::Enrollment(r) => &r.cursor,
            SharedRecord::Progress(r) => &r.cursor,
            SharedRecord::Result(r) => &r.cursor,
            SharedRecord::Departure(r) => &r.cursor,
        }
    }
}
