//! Exams with partner exam bodies (CRT-8, SHR-3).
//!
//! An exam body offers sessions for a course: a date in its own time zone,
//! online or at a centre, a capacity and a booking deadline. A learner
//! enrolled in the course books, reschedules or cancels; booking records the
//! learner's consent for the candidate details (name, email, date of birth)
//! under the purpose "exam registration", and, separately and only when
//! ticked, for their support needs. The exam body reads its candidates
//! through the gate (`consent::sharing::exam_candidates`), so each one is a
//! disclosure. Results come back by the exam body's API key or a CSV upload,
//! once per booking however often they are sent; the learner sees them and
//! is emailed. A sponsor who funded the course sees a result only under the
//! learner's own consent for that purpose. Results are purged by retention
//! after the configured period unless a legal hold stands.
//!
//! Support needs are optional, sealed at rest (SEC-2) and read only by the
//! support team, each view audited (SEC-4). Malpractice cases on a booking
//! record their disclosure to the exam body with its legal reference (SHR-8).
//!
//! Files: `model` (the rows), `sessions` (what an exam body offers),
//! `bookings` (booking, cancelling, rescheduling), `results` (by API or CSV,
//! and their purge), `support` (support needs), `cases` (malpractice),
//! `routes` (the pages and the exam bodies' API), `lifecycle` (erasure,
//! export, retention). What they offer is re-exported here (`exams::book`…).

mod bookings;
mod cases;
pub mod lifecycle;
mod model;
mod results;
pub mod routes;
mod sessions;
mod support;
pub mod views;

use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{exam_bookings, exam_results, malpractice_cases, support_needs};
use crate::kernel::vault;

pub use crate::consent::exam_records::{ADJUSTMENTS_FIELD, BOOKED, NEEDS_FIELD, course_scope};

pub const ONLINE: &str = "online";
pub const CENTRE: &str = "centre";
pub const CANCELLED: &str = "cancelled";
const MAX_TEXT: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum ExamError {
    #[error("{0}")]
    Invalid(String),
    #[error("No such exam session or booking.")]
    NotFound,
    #[error("This session is full. Choose another session.")]
    Full,
    #[error("Booking for this session has closed.")]
    Closed,
    #[error("{0}")]
    Conflict(String),
    #[error("Sealed data could not be read: {0}")]
    Vault(#[from] vault::VaultError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub type EResult<T> = Result<T, ExamError>;

pub use bookings::{
    BookingChoice, Change, MyBooking, book, bookings_of, cancel, change_refused, funders, holds_exam, reschedule,
};
pub use cases::{Case, case, cases, close_case, disclose_case, open_case};
pub use model::{Booking, ExamResult, Session};
pub use results::{Recorded, ResultInput, parse_results_csv, purge_results, record_result, record_upload};
pub use sessions::{SessionInput, bookable_for, create_session, open_count, session, sessions_of};
pub use support::{SupportNeeds, delete_support_needs, save_support_needs, support_needs_of, with_support_needs};

/// What erasure deletes: support needs and bookings (with their results and cases).
pub fn erase(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    let mut n = diesel::delete(support_needs::table.find(user_id)).execute(conn)?;
    let bookings = exam_bookings::table.filter(exam_bookings::user_id.eq(user_id)).select(exam_bookings::id);
    n += diesel::delete(malpractice_cases::table.filter(malpractice_cases::booking_id.eq_any(bookings)))
        .execute(conn)?;
    n += diesel::delete(exam_results::table.filter(exam_results::user_id.eq(user_id))).execute(conn)?;
    n += diesel::delete(exam_bookings::table.filter(exam_bookings::user_id.eq(user_id))).execute(conn)?;
    Ok(n)
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::mine,
        routes::book_form,
        routes::book,
        routes::reschedule_form,
        routes::reschedule,
        routes::cancel,
        routes::needs_form,
        routes::save_needs,
        routes::delete_needs,
        routes::needs_list,
        routes::needs_of,
        routes::sessions,
        routes::create_session,
        routes::session_page,
        routes::upload_results,
        routes::cases,
        routes::open_case,
        routes::case_page,
        routes::disclose,
        routes::close_case,
        routes::api_candidates,
        routes::api_result,
        routes::api_funded,
    ]
}
