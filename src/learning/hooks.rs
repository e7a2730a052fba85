//! What learning's pages and rules take from the areas built on top of it
//! (certificates, exams, consent), without using them: the certificate card
//! and what a passing grade sets off, the proctoring session a proctored quiz
//! waits for, the exam sessions open for booking, the member's sharing
//! question at enrollment. Those areas offer plain functions, `lib.rs` puts
//! them in one `LearningHooks`, which Rocket manages; learning's handlers
//! take it as state and hand what a service function needs to it.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde_json::Value;

use crate::db::Conn;
use crate::kernel::ClientInfo;
use crate::learning::model::{Member, Run};
use crate::web::AppError;

/// Called in the transaction that records a passing grade (user, run, when):
/// issues the verified certificate when it is earned (CRT-3).
pub type OnPass = fn(&mut Conn, i64, i64, NaiveDateTime) -> QueryResult<()>;

/// The status of the latest proctoring session of an enrollment at a quiz
/// block (enrollment, block), if there is one (`model::proctoring_status`).
pub type ProctoringStatus = fn(&mut Conn, i64, i64) -> QueryResult<Option<String>>;

/// The verified-certificate card of a run the learner is enrolled in (user,
/// run, course slug, track, buying), as the certificates area words it.
pub type CertificateCard = fn(&mut Conn, i64, &Run, &str, &str, bool) -> Result<Value, AppError>;

/// The learner's certificate of a run (user, run), once issued: its
/// verification code and whether it is valid.
pub type CertificateBadge = fn(&mut Conn, i64, i64) -> QueryResult<Option<(String, bool)>>;

/// Records the answer to the sharing question, in the transaction that
/// enrolls, when the member asks one (CRS-3); a reason the learner can act on
/// as `Err`.
pub type SharingAnswered = fn(&mut Conn, &Member, &SharingAnswer<'_>, NaiveDateTime) -> QueryResult<Result<(), String>>;

/// A learner's answer to the member's sharing question on the enroll form.
pub struct SharingAnswer<'a> {
    pub user_id: i64,
    pub run_id: i64,
    /// Yes or no with the version of the text the page showed; none when
    /// the form asked nothing.
    pub share: Option<(bool, Option<i64>)>,
    pub client: &'a ClientInfo,
}

#[derive(Clone, Copy)]
pub struct LearningHooks {
    /// Verified certificates can be bought here (a payment provider is configured).
    pub buying: bool,
    pub certificate_card: CertificateCard,
    pub certificate: CertificateBadge,
    pub on_pass: OnPass,
    pub proctoring_status: ProctoringStatus,
    /// How many exam sessions of a course are open for booking now.
    pub open_exams: fn(&mut Conn, i64, NaiveDateTime) -> QueryResult<i64>,
    /// The member's sharing question on the course page, as the consent area words it.
    pub sharing_offer: fn(&mut Conn, &Member) -> QueryResult<Value>,
    pub sharing_answered: SharingAnswered,
}
