//! Test records: one pseudonymous learner (every identity field `None`), one
//! identified learner, and records with `None` fields of each kind.

use chrono::{DateTime, TimeZone, Utc};

use crate::records::{
    CourseRef, Learner, SharedDeparture, SharedEnrollment, SharedProgress, SharedRecord, SharedResult,
};
use crate::xapi::XapiOptions;

pub const BASE_URL: &str = "https://lyceum.example";

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

pub fn generated_at() -> DateTime<Utc> {
    at(2025, 6, 30, 12, 0)
}

pub fn pseudonymous() -> Learner {
    Learner { id: "p-5f1c9e2a".into(), pseudonymous: true, username: None, name: None, email: None, company: None }
}

pub fn identified() -> Learner {
    Learner {
        id: "ada".into(),
        pseudonymous: false,
        username: Some("ada".into()),
        name: Some("Ada King Lovelace".into()),
        email: Some("ada@example.org".into()),
        company: Some("Analytical Engines, Ltd.".into()),
    }
}

/// Title with a comma and quotes, to pin CSV quoting.
pub fn course() -> CourseRef {
    CourseRef {
        id: "rust-101".into(),
        title: "Rust, \"the\" basics".into(),
        run: "2025-spring".into(),
        member: "uni-north".into(),
        url: "https://lyceum.example/courses/rust-101/".into(),
        starts_at: at(2025, 3, 1, 0, 0),
        ends_at: Some(at(2025, 6, 15, 0, 0)),
    }
}

pub fn enrollments() -> Vec<SharedRecord> {
    vec![
        SharedRecord::Enrollment(SharedEnrollment {
            cursor: "e-0001".into(),
            learner: pseudonymous(),
            course: course(),
            track: "audit".into(),
            status: "active".into(),
            enrolled_at: at(2025, 3, 1, 9, 30),
        }),
        SharedRecord::Enrollment(SharedEnrollment {
            cursor: "e-0002".into(),
            learner: identified(),
            course: course(),
            track: "verified".into(),
            status: "unenrolled".into(),
            enrolled_at: at(2025, 3, 2, 14, 0),
        }),
    ]
}

pub fn progress() -> Vec<SharedRecord> {
    vec![
        // Consent covers progress but not activity: no timestamp, no units.
        SharedRecord::Progress(SharedProgress {
            cursor: "p-0001".into(),
            learner: pseudonymous(),
            course: course(),
            last_activity_at: None,
            units_completed: None,
            units_total: None,
            progress_percent: Some(42.5),
        }),
        SharedRecord::Progress(SharedProgress {
            cursor: "p-0002".into(),
            learner: identified(),
            course: course(),
            last_activity_at: Some(at(2025, 4, 10, 18, 45)),
            units_completed: Some(7),
            units_total: Some(12),
            progress_percent: Some(58.3),
        }),
    ]
}

pub fn results() -> Vec<SharedRecord> {
    vec![
        SharedRecord::Result(SharedResult {
            cursor: "r-0001".into(),
            learner: pseudonymous(),
            course: course(),
            grade_percent: Some(87.5),
            passed: Some(true),
            completed_at: Some(at(2025, 5, 20, 11, 0)),
            graded_at: Some(at(2025, 5, 20, 11, 0)),
            final_at: None,
        }),
        // Consent covers completion's `passed` but neither grade nor date.
        SharedRecord::Result(SharedResult {
            cursor: "r-0002".into(),
            learner: identified(),
            course: course(),
            grade_percent: None,
            passed: Some(false),
            completed_at: None,
            graded_at: None,
            final_at: None,
        }),
    ]
}

pub fn all() -> Vec<SharedRecord> {
    let mut v = enrollments();
    v.extend(progress());
    v.extend(results());
    v
}

/// Two departures: an identified learner who withdrew from one run, and a
/// pseudonymous learner erased altogether.
pub fn departures() -> Vec<SharedRecord> {
    vec![
        SharedRecord::Departure(SharedDeparture {
            cursor: "d1".into(),
            learner_id: identified().id,
            course: course(),
            learner_gone: false,
            reason: "withdrawn".into(),
            departed_at: at(2025, 6, 1, 9, 30),
        }),
        SharedRecord::Departure(SharedDeparture {
            cursor: "d2".into(),
            learner_id: pseudonymous().id,
            course: course(),
            learner_gone: true,
            reason: "erased".into(),
            departed_at: at(2025, 6, 2, 10, 0),
        }),
    ]
}

pub fn xapi_options(identified_actors: bool) -> XapiOptions {
    XapiOptions { platform_base_url: BASE_URL.into(), identified_actors, as_of: generated_at() }
}

/// `rec` with every optional field (identity included) set to `None`.
pub fn strip_optionals(rec: &SharedRecord) -> SharedRecord {
    fn strip(l: &Learner) -> Learner {
        Learner { username: None, name: None, email: None, company: None, ..l.clone() }
    }
    match rec {
        SharedRecord::Enrollment(r) => {
            SharedRecord::Enrollment(SharedEnrollment { learner: strip(&r.learner), ..r.clone() })
        }
        SharedRecord::Progress(r) => SharedRecord::Progress(SharedProgress {
            learner: strip(&r.learner),
            last_activity_at: None,
            units_completed: None,
            units_total: None,
            progress_percent: None,
            ..r.clone()
        }),
        SharedRecord::Result(r) => SharedRecord::Result(SharedResult {
            learner: strip(&r.learner),
            grade_percent: None,
            passed: None,
            completed_at: None,
            graded_at: None,
            final_at: None,
            ..r.clone()
        }),
        // A departure has no optional field.
        SharedRecord::Departure(_) => rec.clone(),
    }
}
