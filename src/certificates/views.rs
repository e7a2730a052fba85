//! Typed page contexts of the certificates area.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Certificate, assistance, identity, payments};
use crate::db::now;
use crate::web::AppError;
use crate::web::format::{Day, Moment};
use crate::web::paging::PageNav;

/// A verification code that names no certificate: what was typed, whether
/// it had the shape of a code at all, and a form to try again.
#[derive(Serialize)]
pub struct NoSuchCertificate {
    pub code: String,
    pub well_formed: bool,
}

/// The certificate on the course page's card: its code and whether it stands.
#[derive(Serialize)]
pub struct CardCertificate {
    pub code: String,
    pub valid: bool,
}

/// What the course page shows about the verified certificate of a run the
/// learner is enrolled in: track, identity, assistance, the certificate.
#[derive(Serialize)]
pub struct CertificateCard {
    pub offered: bool,
    pub verified: bool,
    pub price: Option<String>,
    pub buy: bool,
    pub run: String,
    pub slug: String,
    pub identity_ok: bool,
    pub identity_pending: bool,
    pub assistance: Option<String>,
    pub certificate: Option<CardCertificate>,
}

/// The course page's card (see [`CertificateCard`]), as the learning area's
/// hook takes it.
pub fn card(
    conn: &mut crate::db::Conn,
    user_id: i64,
    run: &crate::learning::model::Run,
    course_slug: &str,
    track: &str,
    buying: bool,
) -> Result<Value, AppError> {
    let t = now();
    let cert = super::for_user_run(conn, user_id, run.id)?;
    let check = identity::latest(conn, user_id)?;
    let identity_ok = super::identity_valid(conn, user_id, t)?;
    let app = assistance::for_user_run(conn, user_id, run.id)?;
    let price = run.verified_price_cents.filter(|p| *p > 0).map(|c| payments::money(i64::from(c), &run.currency));
    let card = CertificateCard {
        offered: price.is_some(),
        verified: track == "verified",
        buy: buying && price.is_some() && run.enrollment_open(t),
        price,
        run: run.run_key.clone(),
        slug: course_slug.to_string(),
        identity_ok,
        identity_pending: check.as_ref().is_some_and(|c| c.status == identity::status::PENDING),
        assistance: app.map(|a| a.status),
        certificate: cert.map(|c| CardCertificate { valid: c.is_valid(), code: c.code }),
    };
    serde_json::to_value(card).map_err(|e| AppError::Internal(e.to_string()))
}

/// The learner's identity verification: where their latest check stands and
/// whether the form is offered (by [`identity::submission_refused`]).
#[derive(Serialize)]
pub struct Verification {
    pub valid: bool,
    pub valid_until: Option<Day>,
    pub pending: bool,
    pub denied: bool,
    pub retry: bool,
    pub reason: Option<String>,
    pub may_submit: bool,
}

impl Verification {
    pub fn new(latest: Option<&identity::Check>, now: chrono::NaiveDateTime) -> Verification {
        let is = |status: &str| latest.is_some_and(|c| c.status == status);
        let valid = latest.is_some_and(|c| c.verifies(now));
        Verification {
            valid,
            valid_until: latest.filter(|_| valid).and_then(|c| c.valid_until).map(Day::from),
            pending: is(identity::status::PENDING),
            denied: is(identity::status::DENIED),
            retry: is(identity::status::RETRY),
            reason: latest.and_then(|c| c.reason.clone()),
            may_submit: identity::submission_refused(latest, now).is_none(),
        }
    }
}

/// A check waiting in the staff queue.
#[derive(Serialize)]
pub struct QueuedCheck {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub submitted: Day,
}

#[derive(Serialize)]
pub struct IdentityQueue {
    pub checks: Vec<QueuedCheck>,
    pub nav: PageNav,
}

/// One identity check under review by staff.
#[derive(Serialize)]
pub struct IdentityReview {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub status: String,
    pub pending: bool,
    pub has_images: bool,
    pub submitted: Day,
    pub reason: Option<String>,
}

/// What the learner typed in the assistance form, shown again with its errors.
#[derive(Serialize, Default)]
pub struct AssistanceValues {
    pub reason: String,
    pub circumstances: String,
    pub goals: String,
}

/// The financial assistance form of a run: offered by [`assistance::refusal`].
#[derive(Serialize)]
pub struct AssistanceForm {
    pub slug: String,
    pub run: String,
    pub course: String,
    pub status: Option<String>,
    pub may_apply: bool,
    pub values: AssistanceValues,
    /// Field name to message.
    pub errors: BTreeMap<String, String>,
}

/// An application on the staff list.
#[derive(Serialize)]
pub struct AssistanceRow {
    pub id: i64,
    pub username: String,
    pub course: String,
    pub run: String,
    pub reason: String,
    pub circumstances: String,
    pub goals: String,
    pub status: String,
    pub pending: bool,
    pub submitted: Day,
    pub note: Option<String>,
}

impl AssistanceRow {
    pub fn new((a, username, course, run): (assistance::Application, String, String, String)) -> AssistanceRow {
        AssistanceRow {
            id: a.id,
            username,
            course,
            run,
            pending: a.status == assistance::status::PENDING,
            submitted: a.submitted_at.into(),
            reason: a.reason,
            circumstances: a.circumstances,
            goals: a.goals,
            status: a.status,
            note: a.note,
        }
    }
}

#[derive(Serialize)]
pub struct AssistanceList {
    pub applications: Vec<AssistanceRow>,
    pub nav: PageNav,
}

/// A certificate on the learner's own list.
#[derive(Serialize)]
pub struct MyCertificate {
    pub code: String,
    pub course: String,
    pub member: String,
    pub issued: Day,
    pub valid: bool,
}

#[derive(Serialize)]
pub struct MyCertificates {
    pub certificates: Vec<MyCertificate>,
}

impl MyCertificates {
    pub fn new(certs: Vec<Certificate>) -> MyCertificates {
        let certificates = certs
            .into_iter()
            .map(|c| MyCertificate {
                valid: c.is_valid(),
                issued: c.issued_at.into(),
                code: c.code,
                course: c.course_title,
                member: c.member_name,
            })
            .collect();
        MyCertificates { certificates }
    }
}

/// The public verification page of a certificate.
#[derive(Serialize)]
pub struct VerifyPage {
    pub code: String,
    pub name: String,
    pub course: String,
    pub member: String,
    pub member_slug: String,
    pub run: String,
    pub issued: Day,
    pub grade: String,
    pub valid: bool,
    pub revoked: Option<Day>,
    pub revoked_reason: Option<String>,
    pub course_slug: Option<String>,
    pub url: String,
}

impl VerifyPage {
    pub fn new(c: Certificate, course_slug: Option<String>, base: &str) -> VerifyPage {
        VerifyPage {
            url: format!("{base}/certificates/{}", c.code),
            grade: format!("{:.0}", c.grade_percent),
            valid: c.is_valid(),
            issued: c.issued_at.into(),
            revoked: c.revoked_at.map(Day::from),
            code: c.code,
            name: c.name_at_issue,
            course: c.course_title,
            member: c.member_name,
            member_slug: c.member_slug,
            run: c.run_key,
            revoked_reason: c.revoked_reason,
            course_slug,
        }
    }
}

/// A certificate on the staff list.
#[derive(Serialize)]
pub struct StaffCertificate {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub course: String,
    pub issued: Day,
    pub valid: bool,
    pub revoked: Option<Day>,
    pub reason: Option<String>,
}

#[derive(Serialize)]
pub struct StaffCertificates {
    pub certificates: Vec<StaffCertificate>,
    pub q: String,
    pub nav: PageNav,
}

impl StaffCertificates {
    pub fn new(certs: Vec<Certificate>, q: String, nav: PageNav) -> StaffCertificates {
        let certificates = certs
            .into_iter()
            .map(|c| StaffCertificate {
                id: c.id,
                valid: c.is_valid(),
                issued: c.issued_at.into(),
                revoked: c.revoked_at.map(Day::from),
                code: c.code,
                name: c.name_at_issue,
                course: c.course_title,
                reason: c.revoked_reason,
            })
            .collect();
        StaffCertificates { certificates, q, nav }
    }
}

/// A payment on the staff list.
#[derive(Serialize)]
pub struct PaymentRow {
    pub id: i64,
    pub who: Option<String>,
    pub course: Option<String>,
    pub purpose: String,
    pub quantity: i32,
    pub amount: String,
    pub status: String,
    pub created: Moment,
    pub refundable: bool,
}

impl PaymentRow {
    pub fn new((p, who, course): payments::StaffPayment) -> PaymentRow {
        PaymentRow {
            id: p.id,
            who,
            course,
            amount: payments::money(p.amount_cents, &p.currency),
            refundable: p.refundable(),
            created: p.created_at.into(),
            purpose: p.purpose,
            quantity: p.quantity,
            status: p.status,
        }
    }
}

#[derive(Serialize)]
pub struct PaymentsPage {
    pub payments: Vec<PaymentRow>,
    pub configured: bool,
    pub nav: PageNav,
}

/// The learner's proctoring session of an exam, with the link to the service.
#[derive(Serialize)]
pub struct ProctoringPage {
    pub launch_url: String,
    pub open: bool,
    pub status: String,
    pub back: String,
    pub course: String,
}
