//! Partner formats for records that passed Lyceum's consent gate.
//!
//! This crate depends on neither Diesel nor the `lyceum` crate: it can only
//! format what it is handed.

pub mod records;

pub use records::{CourseRef, Learner, SharedEnrollment, SharedProgress, SharedRecord, SharedResult};
