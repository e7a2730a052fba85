//! Typed page contexts of the certificates area.

use serde::Serialize;
use serde_json::{Value, json};

use super::{assistance, identity, payments};
use crate::db::now;
use crate::web::AppError;

/// A verification code that names no certificate: what was typed, whether
/// it had the shape of a code at all, and a form to try again.
#[derive(Serialize)]
pub struct NoSuchCertificate {
    pub code: String,
    pub well_formed: bool,
}

/// What the course page shows about the verified certificate of a run the
/// learner is enrolled in: track, identity, assistance, the certificate.
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
    Ok(json!({
        "offered": price.is_some(),
        "verified": track == "verified",
        "price": price,
        "buy": buying && price.is_some() && run.enrollment_open(t),
        "run": run.run_key,
        "slug": course_slug,
        "identity_ok": identity_ok,
        "identity_pending": check.as_ref().is_some_and(|c| c.status == identity::status::PENDING),
        "assistance": app.map(|a| a.status),
        "certificate": cert.map(|c| json!({ "code": c.code, "valid": c.is_valid() })),
    }))
}
