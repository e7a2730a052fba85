//! Typed page contexts of the exams area.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::{Case, ExamResult, MyBooking, ONLINE, Session};
use crate::consent::sharing::ExamCandidate;
use crate::web::format::Day;
use crate::web::paging::PageNav;

/// A session as the pages show it: its times in the session's own time zone.
#[derive(Serialize)]
pub struct SessionView {
    pub id: i64,
    pub title: String,
    pub starts: String,
    pub time_zone: String,
    pub online: bool,
    pub mode: &'static str,
    pub location: String,
    pub capacity: i32,
    pub booked: i32,
    pub free: i32,
    pub deadline: String,
    pub open: bool,
    pub full: bool,
    pub closed: bool,
}

impl SessionView {
    pub fn new(s: &Session, now: NaiveDateTime) -> SessionView {
        SessionView {
            id: s.id,
            title: s.title.clone(),
            starts: s.local(s.starts_at),
            time_zone: s.time_zone.clone(),
            online: s.mode == ONLINE,
            mode: if s.mode == ONLINE { "Online" } else { "At a centre" },
            location: s.location.clone(),
            capacity: s.capacity,
            booked: s.booked,
            free: (s.capacity - s.booked).max(0),
            deadline: s.local(s.booking_deadline),
            open: s.open(now),
            full: s.booked >= s.capacity,
            closed: now >= s.booking_deadline,
        }
    }
}

/// A result as people read it: the score 72, not 72.0.
#[derive(Serialize)]
pub struct ResultView {
    pub grade: String,
    pub score: Option<String>,
    pub passed: bool,
    pub received: Day,
}

impl ResultView {
    pub fn new(r: &ExamResult) -> ResultView {
        ResultView { grade: r.grade.clone(), score: r.score_text(), passed: r.passed, received: r.received_at.into() }
    }
}

/// One of the learner's bookings on "My exams".
#[derive(Serialize)]
pub struct BookingView {
    pub id: i64,
    pub reference: String,
    pub course: String,
    pub exam_body: String,
    pub session: SessionView,
    pub booked: bool,
    /// Cancel and reschedule are offered (by [`MyBooking::change_refused`]).
    pub changeable: bool,
    pub result: Option<ResultView>,
}

/// A session the learner may book.
#[derive(Serialize)]
pub struct BookableView {
    pub session: SessionView,
    pub course: String,
    pub exam_body: String,
    /// The learner holds a live booking for this exam (one per exam).
    pub held: bool,
}

#[derive(Serialize)]
pub struct MyExams {
    pub bookings: Vec<BookingView>,
    pub bookable: Vec<BookableView>,
    pub has_needs: bool,
}

impl MyExams {
    pub fn new(
        bookings: &[MyBooking],
        bookable: &[(Session, String, String)],
        has_needs: bool,
        now: NaiveDateTime,
    ) -> MyExams {
        MyExams {
            bookings: bookings
                .iter()
                .map(|b| BookingView {
                    id: b.booking.id,
                    reference: b.booking.reference.clone(),
                    course: b.course.clone(),
                    exam_body: b.exam_body.clone(),
                    session: SessionView::new(&b.session, now),
                    booked: b.booking.status == super::BOOKED,
                    changeable: b.change_refused(super::Change::Cancel, now).is_none(),
                    result: b.result.as_ref().map(ResultView::new),
                })
                .collect(),
            bookable: bookable
                .iter()
                .map(|(s, course, body)| BookableView {
                    session: SessionView::new(s, now),
                    course: course.clone(),
                    exam_body: body.clone(),
                    held: super::holds_exam(bookings, s),
                })
                .collect(),
            has_needs,
        }
    }
}

/// A consent text offered on the booking form, with what it lets leave.
#[derive(Serialize)]
pub struct Offer {
    pub text_id: i64,
    pub text: String,
    pub shown: Vec<&'static str>,
}

/// A sponsor who funded the course and may see the result if the learner agrees.
#[derive(Serialize)]
pub struct FunderOffer {
    pub id: i64,
    pub name: String,
    pub text_id: i64,
    pub text: String,
    pub shown: Vec<&'static str>,
}

/// The booking form: what leaves, to whom, under which text.
#[derive(Serialize)]
pub struct BookPage {
    pub session: SessionView,
    pub course: String,
    pub exam_body: String,
    pub text_id: i64,
    pub text: String,
    pub shown: Vec<&'static str>,
    pub needs_dob: bool,
    pub support: Option<Offer>,
    pub funders: Vec<FunderOffer>,
}

#[derive(Serialize)]
pub struct ReschedulePage {
    pub id: i64,
    pub reference: String,
    pub current: SessionView,
    pub course: String,
    pub others: Vec<SessionView>,
}

/// The learner's own support needs form.
#[derive(Serialize)]
pub struct SupportNeedsPage {
    pub recorded: bool,
    pub needs: Option<String>,
    pub adjustments: Option<String>,
    pub updated: Option<Day>,
}

/// A learner on the support team's list.
#[derive(Serialize)]
pub struct NeedsPerson {
    pub id: i64,
    pub username: String,
    pub updated: Day,
}

#[derive(Serialize)]
pub struct NeedsList {
    pub people: Vec<NeedsPerson>,
    pub nav: PageNav,
}

#[derive(Serialize)]
pub struct NeedsOf {
    pub username: String,
    pub needs: String,
    pub adjustments: String,
    pub updated: Day,
}

/// The exam body a page belongs to.
#[derive(Serialize)]
pub struct PartnerRef {
    pub slug: String,
    pub name: String,
}

#[derive(Serialize)]
pub struct SessionRow {
    pub session: SessionView,
    pub course: String,
}

#[derive(Serialize)]
pub struct CourseChoice {
    pub id: i64,
    pub title: String,
}

/// An exam body's sessions, a page at a time, and the form for a new one.
#[derive(Serialize)]
pub struct SessionsPage {
    pub partner: PartnerRef,
    pub sessions: Vec<SessionRow>,
    pub courses: Vec<CourseChoice>,
    pub nav: PageNav,
}

/// A candidate as the exam body may see them (through the consent gate).
#[derive(Serialize)]
pub struct CandidateView {
    pub booking: String,
    pub status: String,
    pub booked: bool,
    pub name: Option<String>,
    pub email: Option<String>,
    pub date_of_birth: Option<Day>,
    pub support_needs: Option<String>,
    pub adjustments: Option<String>,
    pub result: Option<ResultView>,
}

impl CandidateView {
    pub fn new(c: ExamCandidate, result: Option<&ExamResult>) -> CandidateView {
        CandidateView {
            booked: c.status == super::BOOKED,
            date_of_birth: c.date_of_birth.map(Day),
            result: result.map(ResultView::new),
            booking: c.booking,
            status: c.status,
            name: c.name,
            email: c.email,
            support_needs: c.support_needs,
            adjustments: c.adjustments,
        }
    }
}

/// A session's page: its candidates, their results and the result upload
/// (with the text sent and what to fix when an upload was refused).
#[derive(Serialize)]
pub struct SessionPage {
    pub partner: PartnerRef,
    pub session: SessionView,
    pub is_staff: bool,
    pub upload_text: String,
    pub upload_errors: Vec<String>,
    /// A page of the session's candidates.
    pub candidates: Vec<CandidateView>,
    pub nav: PageNav,
}

/// A malpractice case, on the list and on its page.
#[derive(Serialize)]
pub struct CaseView {
    pub id: i64,
    pub details: String,
    pub open: bool,
    pub outcome: Option<String>,
    pub disclosed: bool,
    pub opened: Day,
    pub reference: String,
    pub username: String,
    pub exam: String,
    pub exam_body: String,
}

impl CaseView {
    pub fn new(c: &Case) -> CaseView {
        CaseView {
            id: c.id,
            details: c.details.clone(),
            open: c.is_open(),
            outcome: c.outcome.clone(),
            disclosed: c.disclosure_id.is_some(),
            opened: c.created_at.into(),
            reference: c.reference.clone(),
            username: c.username.clone(),
            exam: c.exam.clone(),
            exam_body: c.exam_body.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct CasesPage {
    pub cases: Vec<CaseView>,
    pub nav: PageNav,
}

#[derive(Serialize)]
pub struct CasePage {
    pub case: CaseView,
}
