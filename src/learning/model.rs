//! Diesel rows of the learning area.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{blocks, course_runs, courses, enrollments, members, sections, units};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = members)]
pub struct Member {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub logo_blob: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = courses)]
pub struct Course {
    pub id: i64,
    pub member_id: i64,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub description: String,
    /// Comma-separated subject slugs.
    pub subjects: String,
    pub language: String,
    pub effort: Option<String>,
    pub image_blob: Option<String>,
    pub published: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Course {
    pub fn subject_list(&self) -> Vec<String> {
        self.subjects.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = course_runs)]
pub struct Run {
    pub id: i64,
    pub course_id: i64,
    pub run_key: String,
    pub starts_at: NaiveDateTime,
    pub ends_at: Option<NaiveDateTime>,
    pub enrollment_opens_at: Option<NaiveDateTime>,
    pub enrollment_closes_at: Option<NaiveDateTime>,
    pub pacing: String,
    pub access_days: Option<i32>,
    pub pass_threshold: i32,
    pub audit: bool,
    pub verified_price_cents: Option<i32>,
    pub currency: String,
    pub reminder_sent_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Run {
    pub fn enrollment_open(&self, now: NaiveDateTime) -> bool {
        self.enrollment_opens_at.is_none_or(|t| t <= now)
            && self.enrollment_closes_at.is_none_or(|t| now < t)
            && self.ends_at.is_none_or(|t| now < t)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sections)]
pub struct Section {
    pub id: i64,
    pub course_id: i64,
    pub position: i32,
    pub title: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = units)]
pub struct Unit {
    pub id: i64,
    pub section_id: i64,
    pub position: i32,
    pub title: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = blocks)]
pub struct Block {
    pub id: i64,
    pub unit_id: i64,
    pub position: i32,
    pub kind: String,
    pub data: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = enrollments)]
pub struct Enrollment {
    pub id: i64,
    pub user_id: i64,
    pub run_id: i64,
    pub track: String,
    pub status: String,
    pub enrolled_at: NaiveDateTime,
    pub access_expires_at: Option<NaiveDateTime>,
    pub unenrolled_at: Option<NaiveDateTime>,
    pub grade_percent: f64,
    pub passed: bool,
    pub completed_at: Option<NaiveDateTime>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub last_unit_id: Option<i64>,
}

/// The states of an enrollment (`enrollments.status`), the one definition
/// of the text stored for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentStatus {
    Active,
    Unenrolled,
}

impl EnrollmentStatus {
    pub const ALL: [EnrollmentStatus; 2] = [EnrollmentStatus::Active, EnrollmentStatus::Unenrolled];

    /// The text stored in `enrollments.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Active => "active",
            EnrollmentStatus::Unenrolled => "unenrolled",
        }
    }

    pub fn parse(text: &str) -> Option<EnrollmentStatus> {
        EnrollmentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for EnrollmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<EnrollmentStatus> for String {
    fn eq(&self, other: &EnrollmentStatus) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<EnrollmentStatus> for &str {
    fn eq(&self, other: &EnrollmentStatus) -> bool {
        *self == other.as_str()
    }
}

impl Enrollment {
    /// Active and not past its access window (CRS-5): access ends by itself.
    pub fn has_access(&self, now: NaiveDateTime) -> bool {
        self.status == EnrollmentStatus::Active && self.access_expires_at.is_none_or(|t| now < t)
    }
}

/// The states of a proctoring session at a proctored quiz: the quiz takes
/// answers during an open or passed session. The certificates area, which
/// runs the sessions, uses these same names (`certificates::proctoring::status`).
pub mod proctoring_status {
    pub const OPEN: &str = "open";
    pub const PASSED: &str = "passed";
    pub const FAILED: &str = "failed";
}
