//! The certificates area's lifecycle hooks (see `crate::lifecycle`):
//! erasure deletes identity images and assistance applications and detaches
//! certificates and payments from the account (CRT-6, CRT-2); the copy of
//! the learner's data gives all four; retention deletes certificates and
//! proctoring references past their periods (CRT-6, CRT-7).

use chrono::Duration;
use diesel::prelude::*;

use crate::db::Conn;
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Expiring, Line, Section, Step, failure};

const STAFF: &str = "staff who decided, for the record";

pub const HOOKS: AreaHooks = AreaHooks {
    name: "certificates",
    covers: &[
        Covered::deleted("identity_checks", "user_id"),
        Covered::kept("identity_checks", "decided_by", STAFF),
        Covered::deleted("assistance_applications", "user_id"),
        Covered::kept("assistance_applications", "decided_by", STAFF),
        Covered::blanked("certificates", "user_id"),
        Covered::kept("certificates", "revoked_by", STAFF),
        Covered::blanked("payments", "user_id"),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: Some(expire),
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    if e.step != Step::DeletePersonalData {
        return Ok(Erased::default());
    }
    // Identity images and applications go; certificates stay, detached (CRT-6).
    let n = super::on_erasure(conn, e.blobs, e.user_id).map_err(|e| match e {
        super::CertError::Db(e) => e,
        other => failure(other),
    })?;
    Ok(Erased::records(n))
}

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let p = x.periods;
    let mut lines = Vec::new();
    if p.certificate_days > 0 {
        let n = super::expire(conn, p.certificate_days, x.now, x.dry_run)?;
        let before = x.now - Duration::days(p.certificate_days);
        lines.push(Line {
            category: "certificates",
            count: n,
            action: format!("certificates issued before {}", before.date()),
        });
    }
    if p.proctoring_days > 0 {
        let n = super::proctoring::purge(conn, p.proctoring_days, x.now, x.dry_run)?;
        let before = x.now - Duration::days(p.proctoring_days);
        lines.push(Line {
            category: "proctoring",
            count: n,
            action: format!("proctoring session references from before {}", before.date()),
        });
    }
    Ok(lines)
}

const EXPORT: &[Section] = &[
    Section {
        name: "certificates",
        table: "certificates",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Your verified certificates as issued: the name on them, course, member, grade, date, verification code, and any revocation.",
    },
    Section {
        name: "payments",
        table: "payments",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "What you paid through the payment service: amount, currency, status and the service's references. Card details never reach this site.",
    },
    Section {
        name: "identity_checks",
        table: "identity_checks",
        filter: "user_id = {u}",
        withheld: &["id_photo_blob", "face_photo_blob"],
        sealed: &[],
        about: "Your identity checks and their decisions. The photos themselves are deleted as soon as a decision is made; while one waits for review, its storage keys are left out.",
    },
    Section {
        name: "financial_assistance",
        table: "assistance_applications",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Your applications for financial assistance, with what you wrote and the decision.",
    },
];
