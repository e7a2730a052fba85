//! The exams area's rows: a session of an exam body, a booking, a result.

use chrono::{NaiveDateTime, TimeZone};
use diesel::prelude::*;
use serde_json::json;

use crate::db::schema::{exam_bookings, exam_results, exam_sessions};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = exam_sessions)]
pub struct Session {
    pub id: i64,
    pub partner_id: i64,
    pub course_id: i64,
    pub title: String,
    pub starts_at: NaiveDateTime,
    pub time_zone: String,
    pub mode: String,
    pub location: String,
    pub capacity: i32,
    pub booked: i32,
    pub booking_deadline: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl Session {
    fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// A UTC instant as the session's local time, naming the zone.
    pub fn local(&self, t: NaiveDateTime) -> String {
        let zone = self.zone();
        format!("{} ({})", zone.from_utc_datetime(&t).format("%a %e %B %Y, %H:%M"), self.time_zone)
    }

    pub fn open(&self, now: NaiveDateTime) -> bool {
        now < self.booking_deadline && self.booked < self.capacity
    }

    /// Another session of the same exam: same course, same exam body.
    pub fn same_exam(&self, other: &Session) -> bool {
        self.course_id == other.course_id && self.partner_id == other.partner_id
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = exam_bookings)]
pub struct Booking {
    pub id: i64,
    pub session_id: i64,
    pub user_id: i64,
    pub reference: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub cancelled_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = exam_results)]
pub struct ExamResult {
    pub id: i64,
    pub booking_id: i64,
    pub user_id: i64,
    pub grade: String,
    pub score: Option<f64>,
    pub passed: bool,
    pub source: String,
    pub received_at: NaiveDateTime,
}

impl ExamResult {
    /// The score as people read it: 72, not 72.0.
    pub fn score_text(&self) -> Option<String> {
        self.score.map(|s| if s.fract() == 0.0 { format!("{s:.0}") } else { s.to_string() })
    }

    pub fn json(&self) -> serde_json::Value {
        json!({ "grade": self.grade, "score": self.score, "passed": self.passed,
                "received_at": self.received_at.and_utc().to_rfc3339() })
    }
}
